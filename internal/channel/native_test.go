package channel

import (
	"errors"
	"testing"
)

func TestNativeAllows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rng, build string
		want       bool
	}{
		{"", "1.0.0", true},
		{"", "no number at all", true},
		{"*", "0.0.1", true},
		{"x", "9.9.9", true},
		{" * ", "3", true},
		{">=2.0.0 <3.0.0", "2.0.0", true},
		{">=2.0.0 <3.0.0", "2.9.99", true},
		{">=2.0.0 <3.0.0", "3.0.0", false},
		{">=2.0.0 <3.0.0", "1.9.9", false},
		{">= 2.0.0 < 3.0.0", "2.5.0", true},
		{">=2.0.0 <3.0.0", "2.5", true},
		{">=2.0.0 <3.0.0", "v2.5.0-debug", true},
		{"^2.1", "2.1.0", true},
		{"^2.1", "2.9.0", true},
		{"^2.1", "2.0.9", false},
		{"^2.1", "3.0.0", false},
		{"^0.2.3", "0.2.9", true},
		{"^0.2.3", "0.3.0", false},
		{"^0.0.3", "0.0.3", true},
		{"^0.0.3", "0.0.4", false},
		{"^0.x", "0.9.9", true},
		{"^0.x", "1.0.0", false},
		{"^1", "1.99.0", true},
		{"~1.4", "1.4.0", true},
		{"~1.4", "1.4.99", true},
		{"~1.4", "1.5.0", false},
		{"~1.4.2", "1.4.1", false},
		{"~1", "1.9.0", true},
		{"~1", "2.0.0", false},
		{"~>1.4", "1.4.3", true},
		{"2.x", "2.0.0", true},
		{"2.x", "2.99.1", true},
		{"2.x", "3.0.0", false},
		{"2.*", "1.9.9", false},
		{"2.1.x", "2.1.7", true},
		{"2.1.x", "2.2.0", false},
		{"2", "2.3.4", true},
		{"2.1", "2.1.4", true},
		{"2.1", "2.2.0", false},
		{"1.2.3", "1.2.3", true},
		{"=1.2.3", "1.2.3", true},
		{"v1.2.3", "1.2.4", false},
		{">1.2.3", "1.2.4", true},
		{">1.2.3", "1.2.3", false},
		{">1.2", "1.2.9", false},
		{">1.2", "1.3.0", true},
		{"<1.2", "1.1.99", true},
		{"<1.2", "1.2.0", false},
		{"<=1.2", "1.2.99", true},
		{"<=1.2", "1.3.0", false},
		{"<=1.2.3", "1.2.3", true},
		{">*", "1.0.0", false},
		{"<*", "0.0.0", false},
		{"1.2.3 - 2.3.4", "1.2.3", true},
		{"1.2.3 - 2.3.4", "2.3.4", true},
		{"1.2.3 - 2.3.4", "2.3.5", false},
		{"1.2 - 2.3", "2.3.9", true},
		{"1.2 - 2.3", "2.4.0", false},
		{"1.2 - 2.3", "1.1.9", false},
		{"<2.0.0 || >=3.1.0", "1.0.0", true},
		{"<2.0.0 || >=3.1.0", "2.5.0", false},
		{"<2.0.0 || >=3.1.0", "3.1.0", true},
		{"1.x || 3.x", "3.4.0", true},
		{">=1.0.0-beta", "1.0.0", true},
		{">=99999999999999999999.0.0", "100000000000000000000.0.0", true},
		{"<99999999999999999999.0.0", "100000000000000000000.0.0", false},
		{"^9999999999999999999999", "9999999999999999999999.5", true},
	}
	for _, tc := range tests {
		t.Run(tc.rng+"|"+tc.build, func(t *testing.T) {
			t.Parallel()
			got, err := NativeAllows(tc.rng, tc.build)
			if err != nil {
				t.Fatalf("NativeAllows(%q, %q) error: %v", tc.rng, tc.build, err)
			}
			if got != tc.want {
				t.Errorf("NativeAllows(%q, %q) = %v, want %v", tc.rng, tc.build, got, tc.want)
			}
		})
	}
}

func TestNativeAllowsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rng, build string
		wantErr    error
	}{
		{">=2.0.0", "debug", ErrInvalidVersionBuild},
		{">=2.0.0", "", ErrInvalidVersionBuild},
		{"banana", "1.0.0", ErrInvalidRange},
		{">=", "1.0.0", ErrInvalidRange},
		{"1.2.3.4", "1.0.0", ErrInvalidRange},
		{"1.x.3", "1.0.0", ErrInvalidRange},
		{">=1.0.0 ||", "1.0.0", ErrInvalidRange},
		{"1 - 2 - 3", "1.0.0", ErrInvalidRange},
		{"1.2-beta", "1.0.0", ErrInvalidRange},
		{"1.2.3-", "1.0.0", ErrInvalidRange},
		{"1.2.3+", "1.0.0", ErrInvalidRange},
		{"- 1.0.0", "1.0.0", ErrInvalidRange},
		{">=1.0.0 <=", "1.0.0", ErrInvalidRange},
	}
	for _, tc := range tests {
		t.Run(tc.rng+"|"+tc.build, func(t *testing.T) {
			t.Parallel()
			if _, err := NativeAllows(tc.rng, tc.build); !errors.Is(err, tc.wantErr) {
				t.Errorf("NativeAllows(%q, %q) error = %v, want %v", tc.rng, tc.build, err, tc.wantErr)
			}
			if errors.Is(tc.wantErr, ErrInvalidRange) {
				if err := ParseRange(tc.rng); !errors.Is(err, ErrInvalidRange) {
					t.Errorf("ParseRange(%q) = %v, want %v", tc.rng, err, ErrInvalidRange)
				}
			}
		})
	}
	long := make([]byte, maxRangeLen+1)
	for i := range long {
		long[i] = '1'
	}
	if err := ParseRange(string(long)); !errors.Is(err, ErrInvalidRange) {
		t.Errorf("ParseRange(too long) = %v, want %v", err, ErrInvalidRange)
	}
}

func TestParseRangeValid(t *testing.T) {
	t.Parallel()
	for _, rng := range []string{"", "*", ">=2.0.0 <3.0.0", "^2.1", "~1.4", "2.x", "1.2.3 - 2", "<1 || >=2.1.0-rc.1", "=v1.0.0+build.5"} {
		if err := ParseRange(rng); err != nil {
			t.Errorf("ParseRange(%q) = %v, want nil", rng, err)
		}
	}
}

func FuzzNativeAllows(f *testing.F) {
	for _, s := range [][2]string{
		{">=2.0.0 <3.0.0", "2.1.0"}, {"^2.1", "2.1"}, {"~1.4", "1.4.7"}, {"2.x", "2"}, {"*", ""},
		{"1.2.3 - 2.3.4", "v2.0.0-beta"}, {"<1 || >2", "1.5"}, {">= 1.0.0-rc.1+b", "junk 3.4"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rng, build string) {
		ok, err := NativeAllows(rng, build)
		perr := ParseRange(rng)
		if perr != nil {
			if !errors.Is(perr, ErrInvalidRange) {
				t.Fatalf("ParseRange(%q) = %v, not ErrInvalidRange", rng, perr)
			}
			if err == nil {
				t.Fatalf("NativeAllows(%q, %q) = %v, nil but ParseRange failed: %v", rng, build, ok, perr)
			}
			return
		}
		if err != nil && !errors.Is(err, ErrInvalidVersionBuild) {
			t.Fatalf("NativeAllows(%q, %q) error %v for a valid range", rng, build, err)
		}
		// Deterministic (and the cache agrees with a fresh parse).
		ok2, err2 := NativeAllows(rng, build)
		if ok2 != ok || (err2 == nil) != (err == nil) {
			t.Fatalf("NativeAllows(%q, %q) not stable", rng, build)
		}
		if err == nil && !admitsAll(rng) {
			r, perr := parseRange(rng)
			v, _ := coerceVersion(build)
			if perr != nil || r.admits(v) != ok {
				t.Fatalf("cached and fresh parse of %q disagree", rng)
			}
		}
	})
}
