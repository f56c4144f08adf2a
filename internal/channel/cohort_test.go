package channel

import (
	"strings"
	"testing"
)

func TestInCohortDistribution(t *testing.T) {
	t.Parallel()
	ids := deviceIDs(2000)
	tests := []struct {
		version  string
		percent  int
		min, max int // of 2000 devices
	}{
		{"1.4.0", 10, 160, 240},
		{"1.5.0", 10, 160, 240},
		{"2.0.0-rc.1", 25, 440, 560},
		{"1.4.0", 50, 900, 1100},
		{"1.4.0", 1, 5, 40},
		{"1.4.0", 0, 0, 0},
		{"1.4.0", -5, 0, 0},
		{"1.4.0", 100, 2000, 2000},
		{"1.4.0", 150, 2000, 2000},
	}
	for _, tc := range tests {
		n := 0
		for _, id := range ids {
			if InCohort(id, tc.version, tc.percent) {
				n++
			}
			if again := InCohort(id, tc.version, tc.percent); again != InCohort(id, tc.version, tc.percent) {
				t.Fatalf("InCohort(%q, %q, %d) not stable", id, tc.version, tc.percent)
			}
		}
		if n < tc.min || n > tc.max {
			t.Errorf("InCohort(_, %q, %d) admitted %d of 2000, want %d..%d", tc.version, tc.percent, n, tc.min, tc.max)
		}
	}
}

func TestInCohortProperties(t *testing.T) {
	t.Parallel()
	ids := deviceIDs(2000)
	// Raising the percentage only adds devices.
	for _, id := range ids {
		for p := 1; p < 100; p++ {
			if InCohort(id, "1.4.0", p) && !InCohort(id, "1.4.0", p+1) {
				t.Fatalf("device %s in the cohort at %d%% but not at %d%%", id, p, p+1)
			}
		}
	}
	// Device ids compare case-insensitively.
	for _, id := range ids[:200] {
		if cohortBucket(id, "1.4.0") != cohortBucket(strings.ToUpper(id), "1.4.0") {
			t.Fatalf("bucket of %s depends on case", id)
		}
	}
	// Cohorts of different versions are independent samples: about 10% of the 10% cohort
	// of one version is in the 10% cohort of another.
	both, first := 0, 0
	for _, id := range ids {
		if InCohort(id, "1.4.0", 10) {
			first++
			if InCohort(id, "1.5.0", 10) {
				both++
			}
		}
	}
	if first == 0 || both > first/3 {
		t.Errorf("%d of %d devices in the 1.4.0 cohort are also in the 1.5.0 cohort; want about 10%%", both, first)
	}
	// The device id and version are separated, so ("ab", "c") and ("a", "bc") differ.
	same := 0
	for i := range 100 {
		v := deviceIDs(100)[i]
		if cohortBucket(v+"1", ".0") == cohortBucket(v, "1.0") {
			same++
		}
	}
	if same > 10 {
		t.Errorf("%d of 100 concatenation pairs share a bucket; want about 1", same)
	}
}

func BenchmarkInCohort(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		InCohort("7239a82f-4ea8-4e33-9085-f4ad974d3fc4", "1.4.0", 10)
	}
}
