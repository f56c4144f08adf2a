package channel

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// orderedVersions is sorted ascending by CompareVersions: non-semver first (byte order), then
// semver precedence (semver.org §11 examples included), ties broken by byte order.
var orderedVersions = []string{
	"", "1..0", "1.0.0.0", "abc", "latest", "main-0123abc", "v",
	"0.0.0-0", "0.0.0", "0.9.0", "1.0.0-0", "1.0.0-1", "1.0.0-2", "1.0.0-10", "1.0.0-alpha", "1.0.0-alpha.1",
	"1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",
	"1", "1.0", "1.0.0", "1.0.0+build.1", "1.0.0+build.2", "V1.0.0", "v1.0.0", "1.0.1",
	"1.2.0", "1.10.0", "1.10.1", "2.0.0", "10.0.0", "18446744073709551616.0.0",
	"99999999999999999999999999.0.0",
}

func TestCompareVersionsOrder(t *testing.T) {
	t.Parallel()
	for i, a := range orderedVersions {
		for j, b := range orderedVersions {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := CompareVersions(a, b); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
	// Sorting a shuffled copy restores the order: the order is total.
	shuffled := slices.Clone(orderedVersions)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	slices.SortFunc(shuffled, CompareVersions)
	if diff := cmp.Diff(orderedVersions, shuffled); diff != "" {
		t.Errorf("sorted versions mismatch (-want +got):\n%s", diff)
	}
}

func TestCoerceVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"1.2.3", "1.2.3", true},
		{"1.2", "1.2.0", true},
		{"7", "7.0.0", true},
		{"v3.4.5-beta.1", "3.4.5", true},
		{"2.0.1 (debug)", "2.0.1", true},
		{"build 14.2.7.9", "14.2.7", true},
		{"01.002.0003", "1.2.3", true},
		{"1.", "1.0.0", true},
		{"dev", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			v, ok := coerceVersion(tc.in)
			got := ""
			if ok {
				got = v.major + "." + v.minor + "." + v.patch
			}
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("coerceVersion(%q) = %q, %v, want %q, %v", tc.in, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func FuzzCompareVersions(f *testing.F) {
	for _, v := range orderedVersions {
		f.Add(v, "1.0.0", "2.0.0-rc.1")
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		ab, ba := CompareVersions(a, b), CompareVersions(b, a)
		if ab != -ba {
			t.Fatalf("CompareVersions(%q, %q) = %d but reversed %d", a, b, ab, ba)
		}
		if (ab == 0) != (a == b) {
			t.Fatalf("CompareVersions(%q, %q) = %d", a, b, ab)
		}
		if ab <= 0 && CompareVersions(b, c) <= 0 && CompareVersions(a, c) > 0 {
			t.Fatalf("not transitive: %q <= %q <= %q but %q > %q", a, b, c, a, c)
		}
	})
}
