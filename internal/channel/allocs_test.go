package channel

import "testing"

// TestDecideAllocations guards the hot path: offers and up-to-date answers allocate nothing,
// and a manifest with sizes costs one allocation. It is not parallel: AllocsPerRun refuses
// to run in parallel tests.
func TestDecideAllocations(t *testing.T) { //nolint:paralleltest // AllocsPerRun needs a serial test
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	s := fixture(t)
	inCohort := cohortDevice(t, "1.1.0", 50, true)
	tests := []struct {
		name   string
		dev    func(*DeviceInfo)
		failed []string
		want   float64
	}{
		{"offer", nil, nil, 0},
		{"up to date", func(d *DeviceInfo) { d.VersionName = "1.2.0" }, nil, 0},
		{"rollout offer", func(d *DeviceInfo) { d.DefaultChannel, d.DeviceID = "rollout", inCohort }, nil, 0},
		{"native fallback", func(d *DeviceInfo) { d.DefaultChannel, d.VersionBuild = "native", "1.4.2" }, nil, 0},
		{"failed fallback", nil, []string{"1.2.0"}, 0},
		{"encrypted offer", func(d *DeviceInfo) { d.DefaultChannel, d.KeyID = "secure", testKeyID }, nil, 0},
		{"manifest with sizes", func(d *DeviceInfo) { d.DefaultChannel = "delta" }, nil, 1},
	}
	for _, tc := range tests {
		req := baseDevice()
		if tc.dev != nil {
			tc.dev(req)
		}
		Decide(s, req, tc.failed) // warm the range cache
		got := testing.AllocsPerRun(200, func() { Decide(s, req, tc.failed) })
		if got != tc.want {
			t.Errorf("%s: Decide allocates %v times, want %v", tc.name, got, tc.want)
		}
	}
}
