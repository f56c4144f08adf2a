package channel

import (
	"fmt"
	"slices"
	"strings"
)

// Error codes of update answers (docs/protocol.md §1.3(c)). All but [CodeKeyIDRequired]
// and [CodeAppNotFound] are Capgo's own codes, with Capgo's kind.
const (
	// CodeNoNewVersion (kind up_to_date): nothing to download; also sent when the channel
	// has no version yet, and when every candidate is one the device reported failing.
	CodeNoNewVersion = "no_new_version_available"
	// CodeAlreadyOnBuiltin (kind up_to_date): the channel serves "builtin" and the device
	// already runs its built-in assets.
	CodeAlreadyOnBuiltin = "already_on_builtin"
	// CodeMissingInfo (kind failed): a required device field is missing or has a value the
	// relay does not know (platform other than ios, android, electron; malformed device_id).
	CodeMissingInfo = "missing_info"
	// CodeAppNotFound (kind failed): the app id is not configured on this relay. Capgo
	// answers HTTP 429 on_premise_app here, which plugins read as a rate limit; Ferry does not.
	CodeAppNotFound = "app_not_found"
	// CodePrivateChannel (kind blocked): the device asked for a channel that exists but does
	// not allow devices to select it.
	CodePrivateChannel = "cannot_update_via_private_channel"
	// CodeDisableEmulator and CodeDisableDevBuild (kind blocked): the channel refuses
	// emulators or non-production builds.
	CodeDisableEmulator = "disable_emulator"
	CodeDisableDevBuild = "disable_dev_build"
	// CodeDisabledPlatformIOS, CodeDisabledPlatformAndroid and CodeDisabledPlatformElectron
	// (kind blocked, with version and old): the channel does not serve the platform.
	CodeDisabledPlatformIOS      = "disabled_platform_ios"
	CodeDisabledPlatformAndroid  = "disabled_platform_android"
	CodeDisabledPlatformElectron = "disabled_platform_electron"
	// CodeDisableToMajor, CodeDisableToMinor and CodeDisableToPatch (kind blocked, with
	// major, version and old): the channel's disable_auto_update policy refuses an update
	// that changes that part of the version.
	CodeDisableToMajor = "disable_auto_update_to_major"
	CodeDisableToMinor = "disable_auto_update_to_minor"
	CodeDisableToPatch = "disable_auto_update_to_patch"
	// CodeUnderNative (kind blocked, with version and old): no bundle of the channel (its
	// version, or an older one from its history) declares support for the device's native
	// version_build. Capgo uses this code for "would go below the native version"; it is
	// the closest Capgo code for a native-compatibility refusal and does not make the plugin
	// report download_fail.
	CodeUnderNative = "disable_auto_update_under_native"
	// CodeUnknownVersionBuild (kind failed): a native range must be checked but the device's
	// version_build contains no version number.
	CodeUnknownVersionBuild = "unknown_version_build"
	// CodeSemverError (kind failed): a disable_auto_update policy applies but the device's
	// current version or the candidate is not a semantic version.
	CodeSemverError = "semver_error"
	// CodeKeyIDMismatch (kind blocked, with deviceKeyId and bundleKeyId): the device's
	// public key is not the key the bundle was encrypted for, or the bundle is not
	// encrypted although the device verifies with a key.
	CodeKeyIDMismatch = "key_id_mismatch"
	// CodeKeyIDRequired (kind blocked, with bundleKeyId; Ferry's own code): the bundle is
	// encrypted but the device has no public key (a plugin that sends key_id when one is
	// configured sent none), so it could not verify the bundle.
	CodeKeyIDRequired = "key_id_required"
	// CodeNoBundle (kind failed): the channel names a version whose bundle the relay does
	// not have.
	CodeNoBundle = "no_bundle"
	// CodeNoBundleURL (kind failed): the bundle has no download URL.
	CodeNoBundleURL = "no_bundle_url"
)

// Outcome labels of a [Decision] besides error codes.
const (
	OutcomeOffered  = "offered"
	OutcomeBuiltin  = "builtin"
	OutcomeUpToDate = "up_to_date"
)

// builtin is the reserved version name of the app's built-in assets.
const builtin = "builtin"

// Snapshot is the in-process view of one app the relay answers devices from. It is read-only
// once built: [Decide] may be called on it from many goroutines at once.
type Snapshot struct {
	App     *App
	States  map[string]*State  // by channel name
	Bundles map[string]*Bundle // by version: every version referenced by States
}

// Versions returns, sorted by byte order and without duplicates, every version the
// snapshot's states reference (Version, History, Rollout.Version), i.e. the bundles the
// relay must load into Bundles. "builtin" is not a bundle and is left out.
func (s *Snapshot) Versions() []string {
	var vs []string
	add := func(v string) {
		if v != "" && v != builtin {
			vs = append(vs, v)
		}
	}
	for _, st := range s.States {
		if st == nil {
			continue
		}
		add(st.Version)
		for _, h := range st.History {
			add(h)
		}
		if st.Rollout != nil {
			add(st.Rollout.Version)
		}
	}
	slices.Sort(vs)
	return slices.Compact(vs)
}

// Channel returns the channel name as [Decide] sees it: its effective policy (the state's
// Policy override, else the configured policy by name or "*", else the zero Policy), its
// state (nil if none), and whether the channel exists: it is configured, or has a state with
// a policy or a version. The relay's /channel_self endpoints use it to agree with Decide.
func (s *Snapshot) Channel(name string) (pol Policy, st *State, ok bool) {
	st = s.States[name]
	if st != nil && st.Policy != nil {
		return *st.Policy, st, true
	}
	if s.App != nil {
		if p, ok := s.App.Policy(name); ok {
			return p, st, true
		}
	}
	return Policy{}, st, st != nil && st.Version != ""
}

// Decision is the answer to one update check.
type Decision struct {
	// Response is the JSON body to send, always with HTTP 200.
	Response UpdateResponse
	// Outcome is a bounded label for metrics: "offered", "builtin" (revert to the built-in
	// assets), "up_to_date" (any answer of kind up_to_date), or the error code.
	Outcome string
	// Channel is the channel the decision used; empty when none was chosen.
	Channel string
	// Bundle is the bundle offered, nil otherwise.
	Bundle *Bundle
}

// refuse builds an error answer.
func refuse(ch, code, kind, msg string) Decision {
	out := code
	if kind == KindUpToDate {
		out = OutcomeUpToDate
	}
	return Decision{Response: UpdateResponse{Error: code, Message: msg, Kind: kind}, Outcome: out, Channel: ch}
}

// upToDate is the plain no-update answer (docs/protocol.md §1.3(b)).
func upToDate(ch string) Decision {
	return refuse(ch, CodeNoNewVersion, KindUpToDate, "No new version available")
}

// Decide answers an update check from device req against the snapshot s of req's app.
// failed lists the versions this device reported update_fail for; they are never offered
// again. The answer is always one of: an offer (version, url, checksum, session_key for
// encrypted bundles, manifest when the bundle has one), {"version":"builtin"} when the
// channel serves the built-in assets, or {error, message, kind} with the extras of its code
// (see the Code constants). In order:
//
//  1. Device fields: device_id, app_id, platform (ios, android, electron), version_build
//     and version_name are required, else missing_info (failed). A nil snapshot, or one of
//     another app, answers app_not_found (failed), never Capgo's HTTP 429.
//  2. Channel: req.DefaultChannel when that channel exists and the device may use it (its
//     policy has allow_device_self_set, or it is the app's default); an existing channel it
//     may not use answers cannot_update_via_private_channel (blocked); an unknown one falls
//     back to the app's default channel.
//  3. A channel never promoted answers no_new_version_available (up_to_date): nothing is
//     wrong with the device, and a failed kind would make the plugin report download_fail.
//  4. Policy gates: platforms (disabled_platform_<p>), allow_emulator (disable_emulator),
//     allow_dev (disable_dev_build, when is_prod is false), all blocked.
//  5. Candidate: a device in the cohort of an active rollout ([InCohort]) gets the rollout's
//     version, others the stable version; a device already on the version of a paused
//     rollout keeps it. A candidate is skipped when the device reported it failing, its
//     bundle is missing, or its native range (the one set when it was
//     promoted to the channel, [State.NativeFor], else the bundle's own) does not admit
//     version_build; then the stable
//     version, then the newest version of History older than the stable one that passes is
//     served (a fallback never goes below the device's current version for failures alone).
//     When none passes: unknown_version_build (failed) if version_build has no number,
//     disable_auto_update_under_native (blocked) if a native range refused, no_bundle
//     (failed) if bundles are missing, and otherwise no_new_version_available.
//  6. The device already on the candidate: no_new_version_available (up_to_date). When
//     the candidate is "builtin" (a channel promoted to "builtin"), the answer is
//     {"version":"builtin"}, or already_on_builtin (up_to_date) for a device running it.
//  7. disable_auto_update, for upgrades only (a rollback is never refused): policy major
//     refuses a change of the major part, minor a change of the major or minor part, patch
//     any of the three. The code names the part that changed,
//     disable_auto_update_to_major|minor|patch (blocked, with {major:true, version, old}).
//     The device's current version is version_name, or version_build when it runs
//     "builtin"; if either side is not a semantic version the answer is semver_error.
//  8. Encryption: a device that sent key_id gets only a bundle encrypted for that key
//     (key_id_mismatch otherwise; a shorter key_id of older plugins matches as a prefix).
//     A device that sent none gets an encrypted bundle only if its plugin predates key_id
//     (below 8.2.0, or below x.50 on the 5/6/7 lines); otherwise key_id_required (blocked).
//  9. A bundle without a download URL: no_bundle_url (failed). Otherwise the offer.
//
// Decide does no I/O, is safe for concurrent use on one snapshot, and allocates only for
// refusals that carry a formatted message and for manifests with sizes. The returned
// response may share the bundle's manifest slice; callers must not modify it.
func Decide(s *Snapshot, req *DeviceInfo, failed []string) Decision {
	// 1. Device fields.
	if d, refused := requestRefusal(s, req); refused {
		return d
	}

	// 2. Channel.
	ch, d, refused := chooseChannel(s, req)
	if refused {
		return d
	}
	name, pol, st := ch.name, ch.pol, ch.st

	// 3. Never promoted.
	if st == nil || st.Version == "" {
		return refuse(name, CodeNoNewVersion, KindUpToDate, "No new version available: the channel has no version yet")
	}

	// 4. Policy gates.
	if d, refused := gateRefusal(ch, req); refused {
		return d
	}

	// 5. Candidate.
	p := picker{s: s, st: st, versionName: req.VersionName, versionBuild: req.VersionBuild, deviceID: req.DeviceID, failed: failed}
	target, b, keep := p.candidate(st)
	if keep {
		return upToDate(name)
	}
	if target == "" {
		return p.noCandidate(name, st)
	}

	// Revert to the built-in assets (docs/protocol.md §1.3(d)).
	if target == builtin {
		if req.VersionName == builtin {
			return refuse(name, CodeAlreadyOnBuiltin, KindUpToDate, "Already on the builtin version")
		}
		return Decision{Response: UpdateResponse{Version: builtin}, Outcome: OutcomeBuiltin, Channel: name}
	}

	// 6. Already there.
	if req.VersionName == target {
		return upToDate(name)
	}

	// 7. disable_auto_update.
	if d, refused := autoUpdateRefusal(name, pol.DisableAutoUpdate, req, target); refused {
		return d
	}

	// 8. Encryption.
	if d, refused := keyRefusal(name, req, target, b); refused {
		return d
	}

	// 9. The offer.
	if b.URL == "" {
		return refuse(name, CodeNoBundleURL, KindFailed, "bundle "+target+" has no download URL")
	}
	resp := UpdateResponse{Version: b.Version, URL: b.URL, Checksum: b.Checksum, Manifest: deviceManifest(b.Manifest)}
	if b.Encrypted() {
		resp.SessionKey = b.SessionKey
	}
	return Decision{Response: resp, Outcome: OutcomeOffered, Channel: name, Bundle: b}
}

// requestRefusal is step 1 of [Decide]: it refuses a request that lacks a required device
// field, and one for an app the snapshot does not serve.
func requestRefusal(s *Snapshot, req *DeviceInfo) (d Decision, refused bool) {
	if req == nil {
		return refuse("", CodeMissingInfo, KindFailed, "empty request"), true
	}
	if msg := checkDevice(req); msg != "" {
		return refuse("", CodeMissingInfo, KindFailed, msg), true
	}
	if s == nil || s.App == nil || s.App.ID != req.AppID {
		return refuse("", CodeAppNotFound, KindFailed, fmt.Sprintf("app %q is not served by this relay", req.AppID)), true
	}
	return Decision{}, false
}

// chosenChannel is the channel an update check is answered from, with its effective policy
// and its state (nil if none).
type chosenChannel struct {
	name string
	pol  Policy
	st   *State
}

// chooseChannel is step 2 of [Decide]: the device's channel when it exists and the device
// may select it, a refusal when it exists but may not, and otherwise the app's default.
func chooseChannel(s *Snapshot, req *DeviceInfo) (ch chosenChannel, d Decision, refused bool) {
	a := s.App
	ch.name = a.DefaultChannel
	ch.pol, ch.st, _ = s.Channel(ch.name)
	if want := req.DefaultChannel; want != "" && want != a.DefaultChannel {
		if p, st, ok := s.Channel(want); ok {
			if !p.AllowDeviceSelfSet {
				return ch, refuse(want, CodePrivateChannel, KindBlocked,
					fmt.Sprintf("channel %q does not allow devices to select it (allow_device_self_set is off)", want)), true
			}
			ch = chosenChannel{name: want, pol: p, st: st}
		}
	}
	return ch, Decision{}, false
}

// gateRefusal is step 4 of [Decide]: the channel policy's platform, emulator and
// development-build gates. ch.st is not nil.
func gateRefusal(ch chosenChannel, req *DeviceInfo) (d Decision, refused bool) {
	name, pol := ch.name, ch.pol
	if len(pol.Platforms) > 0 && !slices.Contains(pol.Platforms, req.Platform) {
		d := refuse(name, platformCode(req.Platform), KindBlocked,
			fmt.Sprintf("channel %q does not serve platform %s", name, req.Platform))
		d.Response.Version, d.Response.Old = ch.st.Version, req.VersionName
		return d, true
	}
	if pol.DenyEmulator && req.IsEmulator {
		return refuse(name, CodeDisableEmulator, KindBlocked, "This channel does not serve emulators"), true
	}
	if pol.DenyDev && !req.IsProd {
		return refuse(name, CodeDisableDevBuild, KindBlocked, "This channel does not serve development builds"), true
	}
	return Decision{}, false
}

// candidate is step 5 of [Decide]: the version to serve from channel state st and its
// bundle (nil for "builtin"): the rollout's version for a device in its cohort, else the
// stable version, else the newest usable older version of History. keep reports that the
// device should keep what it runs (it is on a paused rollout's version, or every newer
// candidate failed on it); target is "" when nothing is usable.
func (p *picker) candidate(st *State) (target string, b *Bundle, keep bool) {
	if r := st.Rollout; r != nil && r.Version != "" && r.Version != st.Version {
		switch {
		case r.Paused && p.versionName == r.Version && !slices.Contains(p.failed, r.Version):
			return "", nil, true
		case !r.Paused && InCohort(p.deviceID, r.Version, r.Percent):
			if rb, ok := p.usable(r.Version); ok {
				target, b = r.Version, rb
			}
		}
	}
	if target == "" {
		if sb, ok := p.usable(st.Version); ok {
			target, b = st.Version, sb
		}
	}
	if target == "" {
		nativeRefused := p.native || p.badVB
		for _, h := range st.History {
			if h == builtin || h == target || CompareVersions(h, st.Version) >= 0 {
				continue
			}
			if target != "" && CompareVersions(h, target) <= 0 {
				continue
			}
			if hb, ok := p.usable(h); ok {
				target, b = h, hb
			}
		}
		if target != "" && !nativeRefused && p.versionName != builtin && CompareVersions(target, p.versionName) < 0 {
			// Failures alone never move a device back below what it runs.
			if _, ok := parseVersion(p.versionName); ok {
				return "", nil, true
			}
		}
	}
	return target, b, false
}

// noCandidate answers when [picker.candidate] found no usable version, naming the reason
// the picker saw: version_build without a number, a native range, a missing bundle, or
// only versions the device reported failing.
func (p *picker) noCandidate(name string, st *State) Decision {
	switch {
	case p.badVB:
		return refuse(name, CodeUnknownVersionBuild, KindFailed,
			fmt.Sprintf("version_build %q has no version number to check against the bundles' native ranges", p.versionBuild))
	case p.native:
		d := refuse(name, CodeUnderNative, KindBlocked,
			fmt.Sprintf("no bundle of channel %q supports native version %s", name, p.versionBuild))
		d.Response.Version, d.Response.Old = st.Version, p.versionName
		return d
	case p.missing:
		return refuse(name, CodeNoBundle, KindFailed, fmt.Sprintf("bundle %s of channel %q is not available", st.Version, name))
	default:
		return upToDate(name)
	}
}

// autoUpdateRefusal is step 7 of [Decide]: the channel's disable_auto_update policy refuses
// an upgrade to target that changes the major, minor or patch part the policy names.
func autoUpdateRefusal(name, policy string, req *DeviceInfo, target string) (d Decision, refused bool) {
	lvl := policyLevel(policy)
	if lvl == 0 {
		return Decision{}, false
	}
	var cur semver
	var ok bool
	if req.VersionName == builtin {
		cur, ok = coerceVersion(req.VersionBuild)
	} else {
		cur, ok = parseVersion(req.VersionName)
	}
	tv, tok := parseVersion(target)
	if !ok || !tok {
		return refuse(name, CodeSemverError, KindFailed,
			fmt.Sprintf("disable_auto_update %s needs semantic versions, got current %q and new %q", policy, req.VersionName, target)), true
	}
	if tv.compare(cur) > 0 {
		if change, code := changeLevel(cur, tv); change >= lvl {
			d := refuse(name, code, KindBlocked,
				fmt.Sprintf("channel %q does not auto-update across %s versions (%s to %s)", name, levelNames[change], req.VersionName, target))
			d.Response.Major, d.Response.Version, d.Response.Old = true, target, req.VersionName
			return d, true
		}
	}
	return Decision{}, false
}

// keyRefusal is step 8 of [Decide]: a device that sent key_id gets only a bundle encrypted
// for that key, and one that sent none gets an encrypted bundle only if its plugin predates
// key_id.
func keyRefusal(name string, req *DeviceInfo, target string, b *Bundle) (d Decision, refused bool) {
	if req.KeyID != "" {
		if !b.Encrypted() || !keyMatches(req.KeyID, b.KeyID) {
			msg := "bundle " + target + " is not encrypted, but the device verifies bundles with a public key"
			if b.Encrypted() {
				msg = "bundle " + target + " is encrypted for another key than the device's public key"
			}
			d := refuse(name, CodeKeyIDMismatch, KindBlocked, msg)
			d.Response.DeviceKeyID, d.Response.BundleKeyID = req.KeyID, b.KeyID
			return d, true
		}
	} else if b.Encrypted() && pluginSendsKeyID(req.PluginVersion) {
		d := refuse(name, CodeKeyIDRequired, KindBlocked,
			"bundle "+target+" is encrypted, but the device has no public key configured (plugins.CapacitorUpdater.publicKey)")
		d.Response.BundleKeyID = b.KeyID
		return d, true
	}
	return Decision{}, false
}

// picker checks candidates for one device and remembers why it refused them.
type picker struct {
	s      *Snapshot
	st     *State // the channel's state, for its native-range overrides
	failed []string

	// The device's fields the picker reads (copied rather than a pointer to its
	// DeviceInfo, so that a caller's DeviceInfo can stay on its stack).
	versionName, versionBuild, deviceID string

	vb      semver
	vbState int8 // 0 not parsed yet, 1 parsed, -1 no version number

	native  bool // a native range refused the device
	badVB   bool // a native range had to be checked but version_build has no number
	missing bool // a bundle was missing
}

// usable reports whether version v may be offered to the device, and its bundle (nil for
// "builtin").
func (p *picker) usable(v string) (*Bundle, bool) {
	if v == "" || slices.Contains(p.failed, v) {
		return nil, false
	}
	if v == builtin {
		return nil, true
	}
	b := p.s.Bundles[v]
	if b == nil {
		p.missing = true
		return nil, false
	}
	rng := b.Native
	if o, ok := p.st.NativeFor(v); ok {
		rng = o
	}
	if admitsAll(rng) {
		return b, true
	}
	r, err := lookupRange(rng)
	if err != nil {
		// Registration refuses invalid ranges; one that slipped in admits nothing.
		p.native = true
		return nil, false
	}
	if p.vbState == 0 {
		p.vbState = -1
		if v, ok := coerceVersion(p.versionBuild); ok {
			p.vb, p.vbState = v, 1
		}
	}
	if p.vbState < 0 {
		p.badVB = true
		return nil, false
	}
	if !r.admits(p.vb) {
		p.native = true
		return nil, false
	}
	return b, true
}

// checkDevice returns why req lacks required information, or "".
func checkDevice(req *DeviceInfo) string {
	switch {
	case req.DeviceID == "":
		return "device_id is missing"
	case !ValidDeviceID(req.DeviceID):
		return "device_id is not valid: at most 128 printable ASCII characters"
	case req.AppID == "":
		return "app_id is missing"
	case req.Platform == "":
		return "platform is missing"
	case platformCode(req.Platform) == "":
		return "platform is not ios, android or electron"
	case req.VersionBuild == "":
		return "version_build is missing"
	case req.VersionName == "":
		return "version_name is missing"
	}
	return ""
}

// ValidDeviceID reports whether s is a device id the relay accepts: 1 to 128 printable
// ASCII characters, no space. [Decide] refuses other ids with missing_info, and the relay's
// per-device rate limit puts them all in one bucket.
func ValidDeviceID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// platformCode returns the disabled_platform_ code of a known platform, or "".
func platformCode(p string) string {
	switch p {
	case "ios":
		return CodeDisabledPlatformIOS
	case "android":
		return CodeDisabledPlatformAndroid
	case "electron":
		return CodeDisabledPlatformElectron
	}
	return ""
}

// Levels of a version change and of a disable_auto_update policy.
const (
	levelMetadata = iota
	levelPatch
	levelMinor
	levelMajor
)

var levelNames = [...]string{"pre-release", "patch", "minor", "major"}

// policyLevel maps disable_auto_update to the lowest change level it refuses; 0 refuses
// nothing.
func policyLevel(p string) int {
	switch p {
	case "patch":
		return levelPatch
	case "minor":
		return levelMinor
	case "major":
		return levelMajor
	}
	return 0
}

// changeLevel returns the most significant part that differs between from and to, and the
// code refusing it.
func changeLevel(from, to semver) (int, string) {
	switch {
	case from.major != to.major:
		return levelMajor, CodeDisableToMajor
	case from.minor != to.minor:
		return levelMinor, CodeDisableToMinor
	case from.patch != to.patch:
		return levelPatch, CodeDisableToPatch
	}
	return levelMetadata, ""
}

// keyMatches compares the device's key_id with the bundle's. Plugins before about 8.40 sent
// the first 4 characters instead of 20, so a shorter device key_id matches as a prefix.
func keyMatches(device, bundle string) bool {
	if bundle == "" {
		return false
	}
	if device == bundle {
		return true
	}
	return len(device) >= 4 && len(device) < len(bundle) && strings.HasPrefix(bundle, device)
}

// pluginSendsKeyID reports whether a plugin of that version sends key_id whenever a public
// key is configured (docs/protocol.md §1.2: 8.2.0 and later, and the x.50 backports of 5, 6
// and 7). For older or unknown versions an absent key_id says nothing about the device's key.
func pluginSendsKeyID(version string) bool {
	v, ok := parseVersion(version)
	if !ok {
		return false
	}
	switch {
	case cmpNum(v.major, "8") > 0:
		return true
	case v.major == "8":
		return cmpNum(v.minor, "2") >= 0
	case v.major == "5" || v.major == "6" || v.major == "7":
		return cmpNum(v.minor, "50") >= 0
	}
	return false
}

// deviceManifest returns the manifest as devices get it: file_name, file_hash and
// download_url only. It copies only when an entry carries a size.
func deviceManifest(m []ManifestEntry) []ManifestEntry {
	if len(m) == 0 {
		return nil
	}
	sized := false
	for i := range m {
		if m[i].Size != 0 {
			sized = true
			break
		}
	}
	if !sized {
		return m
	}
	out := make([]ManifestEntry, len(m))
	for i, e := range m {
		out[i] = ManifestEntry{FileName: e.FileName, FileHash: e.FileHash, DownloadURL: e.DownloadURL}
	}
	return out
}
