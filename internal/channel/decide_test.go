package channel

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/golden files")

// outcome is what a Decide test checks of a Decision; the golden files lock the full JSON.
type outcome struct {
	Outcome, Channel, Error, Kind, Version, Old string
	Major                                       bool
	DeviceKeyID, BundleKeyID                    string
	SessionKey                                  bool
	Manifest                                    int
}

func summarize(d Decision) outcome {
	r := d.Response
	return outcome{
		Outcome: d.Outcome, Channel: d.Channel, Error: r.Error, Kind: r.Kind, Version: r.Version, Old: r.Old,
		Major: r.Major, DeviceKeyID: r.DeviceKeyID, BundleKeyID: r.BundleKeyID,
		SessionKey: r.SessionKey != "", Manifest: len(r.Manifest),
	}
}

func offered(ch, version string) outcome {
	return outcome{Outcome: OutcomeOffered, Channel: ch, Version: version}
}

func noNew(ch string) outcome {
	return outcome{Outcome: OutcomeUpToDate, Channel: ch, Error: CodeNoNewVersion, Kind: KindUpToDate}
}

func refused(ch, code, kind string) outcome {
	return outcome{Outcome: code, Channel: ch, Error: code, Kind: kind}
}

type decideCase struct {
	name   string
	snap   func(s *Snapshot)
	dev    func(d *DeviceInfo)
	failed []string
	want   outcome
	golden string // testdata/golden/<golden>.json when set
}

func on(ch string) func(*DeviceInfo) { return func(d *DeviceInfo) { d.DefaultChannel = ch } }

func decideCases(t *testing.T) []decideCase {
	t.Helper()
	inRollout := cohortDevice(t, "1.1.0", 50, true)
	outRollout := cohortDevice(t, "1.1.0", 50, false)
	with := func(fs ...func(*DeviceInfo)) func(*DeviceInfo) {
		return func(d *DeviceInfo) {
			for _, f := range fs {
				f(d)
			}
		}
	}
	version := func(v string) func(*DeviceInfo) { return func(d *DeviceInfo) { d.VersionName = v } }
	build := func(v string) func(*DeviceInfo) { return func(d *DeviceInfo) { d.VersionBuild = v } }
	device := func(id string) func(*DeviceInfo) { return func(d *DeviceInfo) { d.DeviceID = id } }
	key := func(k string) func(*DeviceInfo) { return func(d *DeviceInfo) { d.KeyID = k } }
	plugin := func(v string) func(*DeviceInfo) { return func(d *DeviceInfo) { d.PluginVersion = v } }
	rollout := func(r Rollout) func(*Snapshot) { return func(s *Snapshot) { s.States["rollout"].Rollout = &r } }

	return []decideCase{
		// Offers.
		{name: "default channel offer", want: offered("production", "1.2.0"), golden: "offer_plain"},
		{name: "device on older bundle gets stable", dev: version("1.1.0"), want: offered("production", "1.2.0")},
		{name: "device on newer bundle goes back to stable after rollback", dev: version("1.3.0"), want: offered("production", "1.2.0")},
		{name: "self-set channel", dev: on("beta"), want: offered("beta", "1.3.0-beta.1")},
		{name: "explicit default channel", dev: on("production"), want: offered("production", "1.2.0")},
		{name: "unknown channel falls back to default", dev: on("nosuch"), want: offered("production", "1.2.0")},
		{name: "builtin channel name falls back to default", dev: on("builtin"), want: offered("production", "1.2.0")},
		{name: "delta bundle sends manifest without sizes", dev: on("delta"),
			want: outcome{Outcome: OutcomeOffered, Channel: "delta", Version: "1.4.0", Manifest: 2}, golden: "offer_manifest"},
		{name: "encrypted bundle for matching key", dev: with(on("secure"), key(testKeyID)),
			want: outcome{Outcome: OutcomeOffered, Channel: "secure", Version: "2.0.0-enc", SessionKey: true}, golden: "offer_encrypted"},
		{name: "encrypted bundle for 4-character key_id of older plugins", dev: with(on("secure"), key(testKeyID[:4]), plugin("8.20.0")),
			want: outcome{Outcome: OutcomeOffered, Channel: "secure", Version: "2.0.0-enc", SessionKey: true}},
		{name: "encrypted bundle to plugin predating key_id", dev: with(on("secure"), plugin("6.20.0")),
			want: outcome{Outcome: OutcomeOffered, Channel: "secure", Version: "2.0.0-enc", SessionKey: true}},
		{name: "encrypted bundle to plugin with unknown version", dev: with(on("secure"), plugin("")),
			want: outcome{Outcome: OutcomeOffered, Channel: "secure", Version: "2.0.0-enc", SessionKey: true}},
		{name: "platform allowed", dev: with(on("iosonly"), func(d *DeviceInfo) { d.Platform = "ios" }), want: offered("iosonly", "1.2.0")},
		{name: "strict channel serves production devices", dev: on("strict"), want: offered("strict", "1.2.0")},
		{name: "wildcard policy lets devices pick an unlisted channel", dev: on("feature-x"),
			snap: func(s *Snapshot) {
				s.App.Channels["*"] = Policy{AllowDeviceSelfSet: true}
				s.States["feature-x"] = &State{App: s.App.ID, Channel: "feature-x", Version: "1.3.0"}
			},
			want: offered("feature-x", "1.3.0")},
		{name: "builtin channel reverts device", dev: with(on("revert"), version("1.0.0")),
			want: outcome{Outcome: OutcomeBuiltin, Channel: "revert", Version: builtin}, golden: "builtin"},

		// Up to date.
		{name: "already on stable", dev: version("1.2.0"), want: noNew("production"), golden: "no_new_version"},
		{name: "never promoted channel", dev: on("empty"), want: noNew("empty"), golden: "no_version_yet"},
		{name: "channel state absent", dev: on("empty"), snap: func(s *Snapshot) { delete(s.States, "empty") }, want: noNew("empty")},
		{name: "already on builtin", dev: on("revert"),
			want: outcome{Outcome: OutcomeUpToDate, Channel: "revert", Error: CodeAlreadyOnBuiltin, Kind: KindUpToDate}, golden: "already_on_builtin"},

		// Missing info.
		{name: "missing device_id", dev: device(""), want: refused("", CodeMissingInfo, KindFailed), golden: "missing_info"},
		{name: "device_id with spaces", dev: device("a b"), want: refused("", CodeMissingInfo, KindFailed)},
		{name: "missing app_id", dev: func(d *DeviceInfo) { d.AppID = "" }, want: refused("", CodeMissingInfo, KindFailed)},
		{name: "missing platform", dev: func(d *DeviceInfo) { d.Platform = "" }, want: refused("", CodeMissingInfo, KindFailed)},
		{name: "unknown platform", dev: func(d *DeviceInfo) { d.Platform = "windows" }, want: refused("", CodeMissingInfo, KindFailed)},
		{name: "missing version_build", dev: build(""), want: refused("", CodeMissingInfo, KindFailed)},
		{name: "missing version_name", dev: version(""), want: refused("", CodeMissingInfo, KindFailed)},
		{name: "other app", dev: func(d *DeviceInfo) { d.AppID = "com.other.app" }, want: refused("", CodeAppNotFound, KindFailed), golden: "app_not_found"},

		// Blocked by channel policy.
		{name: "private channel", dev: on("private"), want: refused("private", CodePrivateChannel, KindBlocked), golden: "private_channel"},
		{name: "configured but unlisted channel with state is private", dev: on("feature-y"),
			snap: func(s *Snapshot) {
				s.States["feature-y"] = &State{App: s.App.ID, Channel: "feature-y", Version: "1.3.0"}
			},
			want: refused("feature-y", CodePrivateChannel, KindBlocked)},
		{name: "disabled platform", dev: on("iosonly"),
			want:   outcome{Outcome: CodeDisabledPlatformAndroid, Channel: "iosonly", Error: CodeDisabledPlatformAndroid, Kind: KindBlocked, Version: "1.2.0", Old: builtin},
			golden: "disabled_platform"},
		{name: "disabled ios", dev: func(d *DeviceInfo) { d.Platform = "ios" },
			snap: func(s *Snapshot) { s.States["production"].Policy = &Policy{Platforms: []string{"android"}} },
			want: outcome{Outcome: CodeDisabledPlatformIOS, Channel: "production", Error: CodeDisabledPlatformIOS, Kind: KindBlocked, Version: "1.2.0", Old: builtin}},
		{name: "state policy overrides configuration", dev: func(d *DeviceInfo) { d.Platform = "electron" },
			snap: func(s *Snapshot) { s.States["production"].Policy = &Policy{Platforms: []string{"ios", "android"}} },
			want: outcome{Outcome: CodeDisabledPlatformElectron, Channel: "production", Error: CodeDisabledPlatformElectron, Kind: KindBlocked, Version: "1.2.0", Old: builtin}},
		{name: "emulator refused", dev: with(on("strict"), func(d *DeviceInfo) { d.IsEmulator = true }),
			want: refused("strict", CodeDisableEmulator, KindBlocked), golden: "disable_emulator"},
		{name: "dev build refused", dev: with(on("strict"), func(d *DeviceInfo) { d.IsProd = false }),
			want: refused("strict", CodeDisableDevBuild, KindBlocked), golden: "disable_dev_build"},
		{name: "major update refused", dev: with(on("major"), version("1.2.0")),
			want:   outcome{Outcome: CodeDisableToMajor, Channel: "major", Error: CodeDisableToMajor, Kind: KindBlocked, Version: "2.0.0", Old: "1.2.0", Major: true},
			golden: "disable_auto_update_to_major"},
		{name: "major policy compares builtin by version_build", dev: with(on("major"), build("1.9")),
			want: outcome{Outcome: CodeDisableToMajor, Channel: "major", Error: CodeDisableToMajor, Kind: KindBlocked, Version: "2.0.0", Old: builtin, Major: true}},
		{name: "major policy allows same major from builtin", dev: with(on("major"), build("2.0")), want: offered("major", "2.0.0")},
		{name: "major policy allows minor update", dev: with(on("major"), version("2.0.0"), build("2.0")),
			snap: func(s *Snapshot) { s.States["major"].Version = "2.1.0" }, want: offered("major", "2.1.0")},
		{name: "major policy allows downgrade", dev: with(on("major"), version("3.0.0")), want: offered("major", "2.0.0")},
		{name: "minor update refused", dev: with(on("minor"), version("1.2.0")),
			want:   outcome{Outcome: CodeDisableToMinor, Channel: "minor", Error: CodeDisableToMinor, Kind: KindBlocked, Version: "1.3.0", Old: "1.2.0", Major: true},
			golden: "disable_auto_update_to_minor"},
		{name: "minor policy refuses major as major", dev: with(on("minor"), version("0.9.0")),
			want: outcome{Outcome: CodeDisableToMajor, Channel: "minor", Error: CodeDisableToMajor, Kind: KindBlocked, Version: "1.3.0", Old: "0.9.0", Major: true}},
		{name: "minor policy allows patch", dev: with(on("minor"), version("1.3.0")), snap: func(s *Snapshot) { s.States["minor"].Version = "1.2.1" },
			want: offered("minor", "1.2.1")},
		{name: "patch update refused", dev: with(on("patch"), version("1.2.0")),
			want:   outcome{Outcome: CodeDisableToPatch, Channel: "patch", Error: CodeDisableToPatch, Kind: KindBlocked, Version: "1.2.1", Old: "1.2.0", Major: true},
			golden: "disable_auto_update_to_patch"},
		{name: "patch policy allows pre-release to release", dev: with(on("patch"), version("1.2.1-rc.1")), want: offered("patch", "1.2.1")},
		{name: "disable_auto_update with non-semver current", dev: with(on("major"), version("nightly")),
			want: refused("major", CodeSemverError, KindFailed), golden: "semver_error"},

		// Native targeting.
		{name: "native admits stable", dev: with(on("native"), build("3.1")), want: offered("native", "3.0.0")},
		{name: "native falls back to history", dev: with(on("native"), build("2.5.0")), want: offered("native", "2.1.0")},
		{name: "native coerces version_build", dev: with(on("native"), build("2.5 (debug)")), want: offered("native", "2.1.0")},
		{name: "native falls back further", dev: with(on("native"), build("1.4.7")), want: offered("native", "1.5.0")},
		{name: "native falls back to oldest", dev: with(on("native"), build("0.5")), want: offered("native", "0.9.0")},
		{name: "native device already on its newest compatible", dev: with(on("native"), build("2.5.0"), version("2.1.0")), want: noNew("native")},
		{name: "native override narrows the stable bundle's range", dev: with(on("native"), build("3.1")),
			snap: func(s *Snapshot) { s.States["native"].Native = map[string]string{"3.0.0": ">=3.5.0"} },
			want: outcome{Outcome: CodeUnderNative, Channel: "native", Error: CodeUnderNative, Kind: KindBlocked, Version: "3.0.0", Old: builtin}},
		{name: "native override narrows the stable bundle's range, device inside", dev: with(on("native"), build("3.6")),
			snap: func(s *Snapshot) { s.States["native"].Native = map[string]string{"3.0.0": ">=3.5.0"} },
			want: offered("native", "3.0.0")},
		{name: "native override widens the stable bundle's range", dev: with(on("native"), build("1.0.0")),
			snap: func(s *Snapshot) { s.States["native"].Native = map[string]string{"3.0.0": ">=1.0.0"} },
			want: offered("native", "3.0.0")},
		{name: "native override applies to history fallbacks", dev: with(on("native"), build("2.5.0")),
			snap: func(s *Snapshot) { s.States["native"].Native = map[string]string{"2.1.0": "^9", "1.5.0": ">=2"} },
			want: offered("native", "1.5.0")},
		{name: "native override of another channel does not apply", dev: with(on("native"), build("3.1")),
			snap: func(s *Snapshot) { s.States["production"].Native = map[string]string{"3.0.0": ">=9"} },
			want: offered("native", "3.0.0")},
		{name: "no bundle for native version", dev: with(on("native"), build("1.0.0")),
			want:   outcome{Outcome: CodeUnderNative, Channel: "native", Error: CodeUnderNative, Kind: KindBlocked, Version: "3.0.0", Old: builtin},
			golden: "under_native"},
		{name: "version_build without number", dev: with(on("native"), build("dev")),
			want: refused("native", CodeUnknownVersionBuild, KindFailed), golden: "unknown_version_build"},
		{name: "invalid stored native range admits nothing", dev: with(on("native"), build("3.1")),
			snap: func(s *Snapshot) { s.Bundles["3.0.0"].Native = "banana"; s.States["native"].History = nil },
			want: outcome{Outcome: CodeUnderNative, Channel: "native", Error: CodeUnderNative, Kind: KindBlocked, Version: "3.0.0", Old: builtin}},
		{name: "version_build without number is fine without ranges", dev: build("dev"), want: offered("production", "1.2.0")},
		{name: "native fallback skips history newer than stable", dev: with(on("native"), build("2.5.0")),
			snap: func(s *Snapshot) {
				s.States["native"].Version = "1.5.0"
				s.States["native"].History = []string{"2.1.0", "0.9.0"}
			},
			want: outcome{Outcome: CodeUnderNative, Channel: "native", Error: CodeUnderNative, Kind: KindBlocked, Version: "1.5.0", Old: builtin}},

		// Failed versions.
		{name: "failed stable falls back to newest older", failed: []string{"1.2.0"}, want: offered("production", "1.1.0")},
		{name: "failed stable and newest older", failed: []string{"1.2.0", "1.1.0"}, want: offered("production", "1.0.0")},
		{name: "every version failed", failed: []string{"1.2.0", "1.1.0", "1.0.0"}, want: noNew("production")},
		{name: "failed stable never downgrades", dev: version("1.1.5"), failed: []string{"1.2.0"}, want: noNew("production")},
		{name: "failed stable, device on fallback", dev: version("1.1.0"), failed: []string{"1.2.0"}, want: noNew("production")},
		{name: "failed unrelated version", failed: []string{"0.1.0"}, want: offered("production", "1.2.0")},

		// Rollouts.
		{name: "rollout cohort gets candidate", dev: with(on("rollout"), device(inRollout)), want: offered("rollout", "1.1.0")},
		{name: "outside cohort keeps stable", dev: with(on("rollout"), device(outRollout)), want: offered("rollout", "1.0.0")},
		{name: "outside cohort already on stable", dev: with(on("rollout"), device(outRollout), version("1.0.0")), want: noNew("rollout")},
		{name: "cohort device that failed candidate gets stable", dev: with(on("rollout"), device(inRollout)), failed: []string{"1.1.0"},
			want: offered("rollout", "1.0.0")},
		{name: "paused rollout offers stable", dev: with(on("rollout"), device(inRollout)),
			snap: rollout(Rollout{Version: "1.1.0", Percent: 50, Paused: true}), want: offered("rollout", "1.0.0")},
		{name: "paused rollout keeps devices on candidate", dev: with(on("rollout"), device(outRollout), version("1.1.0")),
			snap: rollout(Rollout{Version: "1.1.0", Percent: 50, Paused: true}), want: noNew("rollout")},
		{name: "rollout at 0 percent brings candidate devices back", dev: with(on("rollout"), device(inRollout), version("1.1.0")),
			snap: rollout(Rollout{Version: "1.1.0", Percent: 0}), want: offered("rollout", "1.0.0")},
		{name: "rollout at 100 percent", dev: with(on("rollout"), device(outRollout)),
			snap: rollout(Rollout{Version: "1.1.0", Percent: 100}), want: offered("rollout", "1.1.0")},
		{name: "rollout candidate refused by native range", dev: with(on("rollout"), device(inRollout), build("1.0.0")),
			snap: rollout(Rollout{Version: "3.0.0", Percent: 100}), want: offered("rollout", "1.0.0")},
		{name: "rollout candidate bundle missing", dev: with(on("rollout"), device(inRollout)),
			snap: rollout(Rollout{Version: "7.0.0", Percent: 100}), want: offered("rollout", "1.0.0")},

		// Encryption.
		{name: "key mismatch", dev: with(on("secure"), key("MIIBCgKCAQEAotherkey")),
			want:   outcome{Outcome: CodeKeyIDMismatch, Channel: "secure", Error: CodeKeyIDMismatch, Kind: KindBlocked, DeviceKeyID: "MIIBCgKCAQEAotherkey", BundleKeyID: testKeyID},
			golden: "key_id_mismatch"},
		{name: "device with key, bundle not encrypted", dev: key(testKeyID),
			want: outcome{Outcome: CodeKeyIDMismatch, Channel: "production", Error: CodeKeyIDMismatch, Kind: KindBlocked, DeviceKeyID: testKeyID}},
		{name: "device without key, bundle encrypted", dev: on("secure"),
			want:   outcome{Outcome: CodeKeyIDRequired, Channel: "secure", Error: CodeKeyIDRequired, Kind: KindBlocked, BundleKeyID: testKeyID},
			golden: "key_id_required"},
		{name: "backport plugin without key, bundle encrypted", dev: with(on("secure"), plugin("7.50.1")),
			want: outcome{Outcome: CodeKeyIDRequired, Channel: "secure", Error: CodeKeyIDRequired, Kind: KindBlocked, BundleKeyID: testKeyID}},
		{name: "too short key_id", dev: with(on("secure"), key("MII")),
			want: outcome{Outcome: CodeKeyIDMismatch, Channel: "secure", Error: CodeKeyIDMismatch, Kind: KindBlocked, DeviceKeyID: "MII", BundleKeyID: testKeyID}},

		// Broken data.
		{name: "bundle missing", dev: on("broken"), want: refused("broken", CodeNoBundle, KindFailed), golden: "no_bundle"},
		{name: "bundle missing falls back to history", dev: on("broken"), snap: func(s *Snapshot) { s.States["broken"].History = []string{"1.1.0"} },
			want: offered("broken", "1.1.0")},
		{name: "bundle without url", dev: on("broken"), snap: func(s *Snapshot) { s.States["broken"].Version = "1.9.0" },
			want: refused("broken", CodeNoBundleURL, KindFailed), golden: "no_bundle_url"},
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	for _, tc := range decideCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := fixture(t)
			if tc.snap != nil {
				tc.snap(s)
			}
			req := baseDevice()
			if tc.dev != nil {
				tc.dev(req)
			}
			d := Decide(s, req, tc.failed)
			if diff := cmp.Diff(tc.want, summarize(d)); diff != "" {
				t.Errorf("Decide() mismatch (-want +got):\n%s\nresponse: %+v", diff, d.Response)
			}
			// Invariants of every answer.
			if d.Response.Offers() != (d.Outcome == OutcomeOffered) {
				t.Errorf("Offers() = %v with outcome %q", d.Response.Offers(), d.Outcome)
			}
			if (d.Bundle != nil) != (d.Outcome == OutcomeOffered) {
				t.Errorf("Bundle = %v with outcome %q", d.Bundle, d.Outcome)
			}
			if d.Bundle != nil {
				b := d.Bundle
				if d.Response.Version != b.Version || d.Response.URL != b.URL || d.Response.Checksum != b.Checksum || d.Response.SessionKey != b.SessionKey {
					t.Errorf("offer %+v does not carry bundle %+v", d.Response, b)
				}
				if slices.Contains(tc.failed, b.Version) {
					t.Errorf("offered %s, which the device reported failing", b.Version)
				}
				rng := s.States[d.Channel].NativeRange(b)
				if ok, err := NativeAllows(rng, req.VersionBuild); err != nil || !ok {
					t.Errorf("offered %s with native %q to version_build %q: %v, %v", b.Version, rng, req.VersionBuild, ok, err)
				}
			}
			body, err := json.Marshal(d.Response)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if p := checkIOSStrict(body); len(p) > 0 {
				t.Errorf("iOS-strict check of %s: %v", body, p)
			}
			if tc.golden != "" {
				checkGolden(t, tc.golden, body)
			}
		})
	}
}

// checkGolden compares body with testdata/golden/<name>.json; -update rewrites it.
func checkGolden(t *testing.T, name string, body []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "", "  "); err != nil {
		t.Fatalf("Indent: %v", err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if diff := cmp.Diff(string(want), pretty.String()); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// TestGoldenIOSStrict decodes every golden answer with the iOS-strict rules, so the files
// stay valid even when edited by hand, and checks the checker itself rejects bad shapes.
func TestGoldenIOSStrict(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if p := checkIOSStrict(body); len(p) > 0 {
			t.Errorf("%s: %v", f, p)
		}
	}
	bad := []struct {
		name string
		body string
	}{
		{"not an object", `[]`},
		{"number version", `{"version":1,"url":"https://x/y.zip","checksum":"ab"}`},
		{"string major", `{"error":"disable_auto_update_to_major","message":"m","kind":"blocked","major":"true"}`},
		{"unknown kind", `{"error":"x","message":"m","kind":"maybe"}`},
		{"kind missing", `{"error":"x","message":"m"}`},
		{"relative url", `{"version":"1.0.0","url":"/b.zip","checksum":"ab"}`},
		{"empty object", `{}`},
		{"no checksum", `{"version":"1.0.0","url":"https://x/b.zip"}`},
		{"manifest entry number", `{"version":"1.0.0","url":"https://x/b.zip","checksum":"a","manifest":[{"file_name":"a","file_hash":1,"download_url":"https://x/a"}]}`},
		{"manifest size leaked", `{"version":"1.0.0","url":"https://x/b.zip","checksum":"a","manifest":[{"file_name":"a","file_hash":"h","download_url":"https://x/a","size":3}]}`},
		{"data not strings", `{"version":"1.0.0","url":"https://x/b.zip","checksum":"a","data":{"a":1}}`},
		{"bad session key", `{"version":"1.0.0","url":"https://x/b.zip","checksum":"a","session_key":"nocolon"}`},
		{"builtin with url", `{"version":"builtin","url":"https://x/b.zip"}`},
	}
	for _, tc := range bad {
		if p := checkIOSStrict([]byte(tc.body)); len(p) == 0 {
			t.Errorf("checkIOSStrict(%s) found no problem in %q", tc.name, tc.body)
		}
	}
}

func TestDecideNilInputs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    *Snapshot
		req  *DeviceInfo
		want string
	}{
		{"nil request", fixture(t), nil, CodeMissingInfo},
		{"nil snapshot", nil, baseDevice(), CodeAppNotFound},
		{"snapshot without app", &Snapshot{}, baseDevice(), CodeAppNotFound},
		{"empty snapshot maps", &Snapshot{App: fixture(t).App}, baseDevice(), CodeNoNewVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := Decide(tc.s, tc.req, nil)
			if d.Response.Error != tc.want {
				t.Errorf("Decide() error = %q, want %q", d.Response.Error, tc.want)
			}
		})
	}
}

// TestDecideRolloutShare checks the cohort end to end: about half of many devices get the
// candidate of a 50% rollout, and each device gets the same answer every time.
func TestDecideRolloutShare(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	ids := deviceIDs(2000)
	got := 0
	for _, id := range ids {
		req := baseDevice()
		req.DefaultChannel, req.DeviceID = "rollout", id
		d := Decide(s, req, nil)
		if d.Response.Version == "1.1.0" {
			got++
		}
		if again := Decide(s, req, nil); again.Response.Version != d.Response.Version {
			t.Fatalf("device %s got %s then %s", id, d.Response.Version, again.Response.Version)
		}
	}
	if got < 900 || got > 1100 {
		t.Errorf("%d of 2000 devices got the 50%% candidate, want 900..1100", got)
	}
}

func TestSnapshotVersions(t *testing.T) {
	t.Parallel()
	s := &Snapshot{States: map[string]*State{
		"a": {Version: "1.2.0", History: []string{"1.1.0", "1.0.0"}, Rollout: &Rollout{Version: "1.3.0", Percent: 10}},
		"b": {Version: "1.1.0", History: []string{builtin}},
		"c": {Version: builtin},
		"d": {},
		"e": nil,
	}}
	want := []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0"}
	if diff := cmp.Diff(want, s.Versions()); diff != "" {
		t.Errorf("Versions() mismatch (-want +got):\n%s", diff)
	}
	// Every version Versions names is what Decide may look up: a snapshot filled with
	// exactly those bundles answers every channel without no_bundle.
	f := fixture(t)
	for _, v := range f.Versions() {
		if f.Bundles[v] == nil && v != "9.9.9" {
			t.Errorf("fixture references %s without a bundle", v)
		}
	}
}

// TestDecideDoesNotMutate checks that Decide leaves the shared snapshot untouched.
func TestDecideDoesNotMutate(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	before, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range decideCases(t) {
		if tc.snap != nil {
			continue
		}
		req := baseDevice()
		if tc.dev != nil {
			tc.dev(req)
		}
		Decide(s, req, tc.failed)
	}
	after, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("Decide changed the snapshot")
	}
}

func BenchmarkDecide(b *testing.B) {
	s := fixture(b)
	ids := deviceIDs(1024)
	reqs := make([]*DeviceInfo, len(ids))
	channels := []string{"", "beta", "rollout", "native"}
	for i, id := range ids {
		r := baseDevice()
		r.DeviceID, r.DefaultChannel = id, channels[i%len(channels)]
		if i%3 == 0 {
			r.VersionName = "1.2.0" // up to date on production
		}
		if i%len(channels) == 3 {
			r.VersionBuild = "2.4.1"
		}
		reqs[i] = r
	}
	failed := []string{"0.1.0"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		d := Decide(s, reqs[i%len(reqs)], failed)
		if d.Outcome == "" {
			b.Fatal("empty outcome")
		}
	}
}

func TestSnapshotChannel(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	s.States["production"].Policy = &Policy{Platforms: []string{"ios"}}
	s.States["adhoc"] = &State{Channel: "adhoc", Version: "1.0.0"}
	s.States["ghost"] = &State{Channel: "ghost"}
	tests := []struct {
		name      string
		wantPol   Policy
		wantState bool
		wantOK    bool
	}{
		{"production", Policy{Platforms: []string{"ios"}}, true, true},
		{"beta", Policy{AllowDeviceSelfSet: true, Public: true}, true, true},
		{"empty", Policy{AllowDeviceSelfSet: true}, false, true},
		{"adhoc", Policy{}, true, true},
		{"ghost", Policy{}, true, false},
		{"nosuch", Policy{}, false, false},
	}
	for _, tc := range tests {
		pol, st, ok := s.Channel(tc.name)
		if diff := cmp.Diff(tc.wantPol, pol); diff != "" {
			t.Errorf("Channel(%q) policy mismatch (-want +got):\n%s", tc.name, diff)
		}
		if (st != nil) != tc.wantState || ok != tc.wantOK {
			t.Errorf("Channel(%q) = state %v, ok %v; want state %v, ok %v", tc.name, st, ok, tc.wantState, tc.wantOK)
		}
	}
}

func TestPluginSendsKeyID(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{
		"8.51.23": true, "8.2.0": true, "8.1.9": false, "8.0.0": false, "9.0.0": true, "10.0.0": true,
		"7.51.13": true, "7.50.0": true, "7.49.9": false, "6.50.2": true, "6.27.1": false, "5.50.2": true,
		"5.10.0": false, "4.99.0": false, "": false, "next": false,
	} {
		if got := pluginSendsKeyID(v); got != want {
			t.Errorf("pluginSendsKeyID(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestKeyMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		device, bundle string
		want           bool
	}{
		{testKeyID, testKeyID, true},
		{testKeyID[:4], testKeyID, true},
		{testKeyID[:12], testKeyID, true},
		{testKeyID[:3], testKeyID, false},
		{"MIIB", "", false},
		{testKeyID, "", false},
		{testKeyID + "X", testKeyID, false},
		{"XIIB", testKeyID, false},
	}
	for _, tc := range tests {
		if got := keyMatches(tc.device, tc.bundle); got != tc.want {
			t.Errorf("keyMatches(%q, %q) = %v, want %v", tc.device, tc.bundle, got, tc.want)
		}
	}
}

// TestDecideCoversEveryCode checks that the Decide table exercises every answer code.
func TestDecideCoversEveryCode(t *testing.T) {
	t.Parallel()
	all := []string{
		CodeNoNewVersion, CodeAlreadyOnBuiltin, CodeMissingInfo, CodeAppNotFound, CodePrivateChannel,
		CodeDisableEmulator, CodeDisableDevBuild, CodeDisabledPlatformIOS, CodeDisabledPlatformAndroid,
		CodeDisabledPlatformElectron, CodeDisableToMajor, CodeDisableToMinor, CodeDisableToPatch,
		CodeUnderNative, CodeUnknownVersionBuild, CodeSemverError, CodeKeyIDMismatch, CodeKeyIDRequired,
		CodeNoBundle, CodeNoBundleURL, OutcomeOffered, OutcomeBuiltin,
	}
	seen := map[string]bool{}
	for _, tc := range decideCases(t) {
		seen[tc.want.Error] = true
		seen[tc.want.Outcome] = true
	}
	for _, c := range all {
		if !seen[c] {
			t.Errorf("no Decide case answers %q", c)
		}
	}
}

func TestValidDeviceID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"6aa8a4ed-4bba-4bd5-9e2c-9c1b7e8c8b4f": true, "x": true, strings.Repeat("a", 128): true,
		"": false, strings.Repeat("a", 129): false, "a b": false, "tab\t": false, "é": false, "\x7f": false,
	} {
		if got := ValidDeviceID(id); got != want {
			t.Errorf("ValidDeviceID(%q) = %v, want %v", id, got, want)
		}
	}
}
