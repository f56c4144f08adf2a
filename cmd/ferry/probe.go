package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/device"
)

// probeReport is the --json output of ferry probe.
type probeReport struct {
	Request  channel.DeviceInfo      `json:"request"`
	Response *channel.UpdateResponse `json:"response,omitempty"`
	Outcome  string                  `json:"outcome"`
	Bundle   *probeBundle            `json:"bundle,omitempty"`
	Channels []device.ChannelInfo    `json:"channels,omitempty"`
	Error    string                  `json:"error,omitempty"`
	Code     string                  `json:"code,omitempty"`
}

type probeBundle struct {
	Version          string   `json:"version"`
	Dir              string   `json:"dir"`
	Encrypted        bool     `json:"encrypted"`
	SHA256           string   `json:"sha256,omitempty"`
	BytesTransferred int64    `json:"bytes_transferred"`
	FilesDownloaded  int      `json:"files_downloaded,omitempty"`
	FilesReused      int      `json:"files_reused,omitempty"`
	Files            []string `json:"files"`
}

// runProbe implements `ferry probe`: one update check as a device would make it, with the
// decision explained in plain words, and with --download the whole device path (download,
// decrypt, verify, unpack). It exits 1 when the relay's answer is a failure or the bundle
// does not verify; "no update" and "blocked" answers are not failures.
func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	relay := fs.String("relay", "", "relay base URL, e.g. https://relay.example.com (required)")
	app := fs.String("app", "", "app id, e.g. com.example.app (required)")
	ch := fs.String("channel", "", "the device's channel (defaultChannel); empty: the app's default channel")
	native := fs.String("native", "1.0.0", "native app version (version_build)")
	running := fs.String("running", "builtin", "web bundle the device runs now (version_name)")
	platform := fs.String("platform", "android", "android, ios or electron")
	osVersion := fs.String("os-version", "", "OS version (version_os); default 14 on android, 17.5 on ios")
	deviceID := fs.String("device-id", "", "device id; default a random UUID (printed, so you can repeat the probe)")
	pluginVersion := fs.String("plugin-version", device.DefaultPluginVersion, "@capgo/capacitor-updater version to imitate")
	pubFile := fs.String("public-key", "", "the app's public key (PKCS#1 PEM, .capgo_key_v2.pub); the device then asks for an encrypted bundle")
	emulator := fs.Bool("emulator", false, "report is_emulator=true")
	dev := fs.Bool("dev", false, "report is_prod=false (a debug or TestFlight build)")
	download := fs.Bool("download", false, "also download, decrypt, verify and unpack the offered bundle")
	listChannels := fs.Bool("list-channels", false, "also list the channels this device may choose (listChannels, GET /channel_self)")
	dir := fs.String("dir", "", "where --download unpacks (default: a temporary directory, removed afterwards)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of sentences")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var problems []string
	if *relay == "" {
		problems = append(problems, "--relay is required")
	}
	if *app == "" {
		problems = append(problems, "--app is required")
	}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "ferry probe: %s\n", strings.Join(problems, "; "))
		fs.Usage()
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var pub *rsa.PublicKey
	if *pubFile != "" {
		pemBytes, err := os.ReadFile(*pubFile)
		if err != nil {
			return fmt.Errorf("read public key: %w", err)
		}
		if pub, err = archive.ParsePublicKey(pemBytes); err != nil {
			return err
		}
	}
	if *deviceID == "" {
		*deviceID = randomUUID()
	}
	if *osVersion == "" {
		*osVersion = map[bool]string{true: "17.5", false: "14"}[*platform == "ios"]
	}
	base := strings.TrimRight(*relay, "/")
	c := &device.Client{
		UpdateURL:  base + "/updates",
		ChannelURL: base + "/channel_self",
		Info: channel.DeviceInfo{
			Platform: *platform, DeviceID: *deviceID, AppID: *app, VersionBuild: *native,
			VersionCode: "1", VersionOS: *osVersion, VersionName: *running, PluginVersion: *pluginVersion,
			IsEmulator: *emulator, IsProd: !*dev, DefaultChannel: *ch,
		},
		PublicKey: pub,
	}
	rep := probeReport{Request: c.Info}
	if pub != nil {
		rep.Request.KeyID = archive.KeyID(pub)
	}
	say := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(stdout, format+"\n", a...)
		}
	}
	finish := func(err error) error {
		if err != nil {
			rep.Error, rep.Code = err.Error(), device.Code(err)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(rep); jerr != nil {
				return jerr
			}
		}
		return err
	}

	chName := *ch
	if chName == "" {
		chName = "the app's default channel"
	} else {
		chName = fmt.Sprintf("channel %q", chName)
	}
	say("Asking %s what an %s device would get:", c.UpdateURL, *platform)
	say("  app %s, native version %s, running web bundle %q, %s", *app, *native, *running, chName)
	if pub != nil {
		say("  the app has a public key (key_id %s), so it expects an encrypted bundle", rep.Request.KeyID)
	} else {
		say("  the app has no public key, so it expects an unencrypted bundle")
	}
	say("  device id %s", *deviceID)

	if *listChannels {
		list, err := c.ListChannels(ctx)
		if err != nil {
			say("")
			say("Listing channels failed: %v", err)
			return finish(fmt.Errorf("list channels: %w", err))
		}
		rep.Channels = list
		say("")
		if len(list) == 0 {
			say("Channels this device may choose: none (no channel is public or allows allow_device_self_set)")
		} else {
			say("Channels this device may choose (setChannel):")
		}
		for _, ch := range list {
			var how []string
			if ch.Public {
				how = append(how, "public")
			}
			if ch.AllowSelfSet {
				how = append(how, "devices may select it")
			}
			say("  %-20s %s", ch.Name, strings.Join(how, ", "))
		}
	}

	resp, err := c.Check(ctx)
	rep.Response = resp
	if resp == nil {
		rep.Outcome = "error"
		say("")
		say("The relay could not be asked: %v", err)
		return finish(err)
	}
	rep.Outcome = device.Outcome(resp, *running)
	say("")
	switch rep.Outcome {
	case channel.KindUpToDate:
		say("Decision: no update (%s). %s", resp.Error, resp.Message)
		return finish(nil)
	case channel.KindBlocked:
		say("Decision: blocked (%s). %s", resp.Error, resp.Message)
		if resp.Error == "key_id_mismatch" {
			say("  the device's key_id is %s, the bundle was encrypted for key_id %s: ship the new public key in a store release, or publish with the old key", resp.DeviceKeyID, resp.BundleKeyID)
		}
		return finish(nil)
	case channel.KindFailed:
		say("Decision: the relay answered with a failure (%s). %s", resp.Error, resp.Message)
		say("  the plugin would report download_fail for this")
		return finish(fmt.Errorf("relay refused: %s: %s", resp.Error, resp.Message))
	case "builtin":
		say("Decision: go back to the web assets built into the app (builtin).")
		return finish(nil)
	case "same_version":
		say("Decision: keep running %s; it is what the relay serves.", *running)
		return finish(nil)
	case "invalid":
		say("Decision: the answer offers %q but has no usable url; the plugin would report download_fail.", resp.Version)
		return finish(fmt.Errorf("answer without a valid url"))
	}
	kind := "unencrypted, checksum = SHA-256 of the zip"
	if resp.SessionKey != "" {
		kind = "encrypted, with a session key and a V3 (RSA-signed) checksum"
	}
	say("Decision: update to version %s (%s).", resp.Version, kind)
	say("  url: %s", resp.URL)
	if len(resp.Manifest) > 0 {
		say("  delta manifest: %d files (a device downloads only the ones it does not have)", len(resp.Manifest))
	}
	if !*download {
		say("")
		say("Run again with --download to fetch, decrypt, verify and unpack it as the device would.")
		return finish(nil)
	}

	target := *dir
	if target == "" {
		tmp, err := os.MkdirTemp("", "ferry-probe-")
		if err != nil {
			return finish(err)
		}
		defer os.RemoveAll(tmp)
		target = tmp
	}
	c.Dir = target
	say("")
	say("Downloading as the device would...")
	start := time.Now()
	b, err := c.Download(ctx, resp)
	if err != nil {
		say("FAILED (%s): %v", device.Code(err), err)
		say("  the plugin would report %q and %q, and keep running %q", device.Code(err), "download_fail", *running)
		return finish(err)
	}
	say("  downloaded %s in %s", humanBytes(b.BytesTransferred), time.Since(start).Round(time.Millisecond))
	if len(resp.Manifest) > 0 {
		say("  %d files downloaded, %d reused from earlier bundles", b.FilesDownloaded, b.FilesReused)
	}
	if b.Encrypted {
		say("  decrypted with the app's public key (the AES session key was unwrapped with RSA)")
		if b.Checksum != "" {
			say("  checksum verified: the RSA-signed checksum opens to SHA-256 %s, which matches the decrypted zip", b.Checksum)
		} else {
			say("  every file's signed hash verified")
		}
	} else if b.Checksum != "" {
		say("  checksum verified: SHA-256 %s", b.Checksum)
	} else {
		say("  every file's hash verified")
	}
	say("  unpacked %d files with index.html at the root into %s:", len(b.Files), b.Path)
	for _, f := range b.Files {
		size := ""
		if st, err := os.Stat(filepath.Join(b.Path, filepath.FromSlash(f))); err == nil {
			size = humanBytes(st.Size())
		}
		say("    %-40s %s", f, size)
	}
	rep.Bundle = &probeBundle{Version: b.Version, Dir: b.Path, Encrypted: b.Encrypted, SHA256: b.Checksum,
		BytesTransferred: b.BytesTransferred, FilesDownloaded: b.FilesDownloaded, FilesReused: b.FilesReused, Files: b.Files}
	if *dir == "" {
		rep.Bundle.Dir = ""
	}
	say("")
	say("Verdict: a device would install %s and it verifies.", b.Version)
	return finish(nil)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// randomUUID returns a random lowercase version-4 UUID, like the plugin's device id.
func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
