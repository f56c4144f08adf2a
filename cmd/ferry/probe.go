package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
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

// probeOptions are ferry probe's flags.
type probeOptions struct {
	relay, app, channel       string
	native, running, platform string
	osVersion, deviceID       string
	pluginVersion, publicKey  string
	emulator, dev             bool
	download, listChannels    bool
	dir                       string
	asJSON                    bool
	timeout                   time.Duration
}

// runProbe implements `ferry probe`: one update check as a device would make it, with the
// decision explained in plain words, and with --download the whole device path (download,
// decrypt, verify, unpack). It exits 1 when the relay's answer is a failure or the bundle
// does not verify, when --channel names a channel the relay does not have (it would answer
// from the app's default channel instead), and with --download when the answer is
// "blocked" (there is nothing to download); "no update" and, without --download,
// "blocked" answers are not failures.
func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseProbeFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()

	c, err := newProbeClient(opts)
	if err != nil {
		return err
	}
	p := &prober{opts: opts, c: c, stdout: stdout, rep: probeReport{Request: c.Info}}
	if c.PublicKey != nil {
		p.rep.Request.KeyID = archive.KeyID(c.PublicKey)
	}
	p.describeRequest()

	if opts.listChannels {
		if err := p.listChannels(ctx); err != nil {
			return p.finish(err)
		}
	}

	if err := p.checkChannel(ctx); err != nil {
		return p.finish(err)
	}
	resp, err := c.Check(ctx)
	p.rep.Response = resp
	if resp == nil {
		p.rep.Outcome = "error"
		p.say("")
		p.say("The relay could not be asked: %v", err)
		return p.finish(err)
	}
	offered, err := p.explainDecision(resp)
	if !offered {
		if err == nil && opts.download && p.rep.Outcome == channel.KindBlocked {
			err = fmt.Errorf("blocked (%s): the relay offers this device nothing to download", resp.Error)
		}
		return p.finish(err)
	}
	if !opts.download {
		p.say("")
		p.say("Run again with --download to fetch, decrypt, verify and unpack it as the device would.")
		return p.finish(nil)
	}
	return p.finish(p.downloadBundle(ctx, resp))
}

// parseProbeFlags reads ferry probe's flags; on bad usage it has already told stderr why.
func parseProbeFlags(args []string, stderr io.Writer) (probeOptions, error) {
	var o probeOptions
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.relay, "relay", "", "relay base URL, e.g. https://relay.example.com (required)")
	fs.StringVar(&o.app, "app", "", "app id, e.g. com.example.app (required)")
	fs.StringVar(&o.channel, "channel", "", "the device's channel (defaultChannel); empty: the app's default channel")
	fs.StringVar(&o.native, "native", "1.0.0", "native app version (version_build)")
	fs.StringVar(&o.running, "running", "builtin", "web bundle the device runs now (version_name)")
	fs.StringVar(&o.platform, "platform", "android", "android, ios or electron")
	fs.StringVar(&o.osVersion, "os-version", "", "OS version (version_os); default 14 on android, 17.5 on ios")
	fs.StringVar(&o.deviceID, "device-id", "", "device id; default a random UUID (printed, so you can repeat the probe)")
	fs.StringVar(&o.pluginVersion, "plugin-version", device.DefaultPluginVersion, "@capgo/capacitor-updater version to imitate")
	fs.StringVar(&o.publicKey, "public-key", "", "the app's public key (PKCS#1 PEM, .capgo_key_v2.pub); the device then asks for an encrypted bundle")
	fs.BoolVar(&o.emulator, "emulator", false, "report is_emulator=true")
	fs.BoolVar(&o.dev, "dev", false, "report is_prod=false (a debug or TestFlight build)")
	fs.BoolVar(&o.download, "download", false, "also download, decrypt, verify and unpack the offered bundle")
	fs.BoolVar(&o.listChannels, "list-channels", false, "also list the channels this device may choose (listChannels, GET /channel_self)")
	fs.StringVar(&o.dir, "dir", "", "where --download unpacks (default: a temporary directory, removed afterwards)")
	fs.BoolVar(&o.asJSON, "json", false, "print one JSON object instead of sentences")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var problems []string
	if o.relay == "" {
		problems = append(problems, "--relay is required")
	}
	if o.app == "" {
		problems = append(problems, "--app is required")
	}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "ferry probe: %s\n", strings.Join(problems, "; "))
		fs.Usage()
		return o, errUsage
	}
	return o, nil
}

// newProbeClient builds the imitated device: it reads the public key, if any, and fills in
// the device id and OS version the flags left to their defaults.
func newProbeClient(o probeOptions) (*device.Client, error) {
	var pub *rsa.PublicKey
	if o.publicKey != "" {
		pemBytes, err := os.ReadFile(o.publicKey)
		if err != nil {
			return nil, fmt.Errorf("read public key: %w", err)
		}
		if pub, err = archive.ParsePublicKey(pemBytes); err != nil {
			return nil, err
		}
	}
	if o.deviceID == "" {
		o.deviceID = randomUUID()
	}
	if o.osVersion == "" {
		o.osVersion = map[bool]string{true: "17.5", false: "14"}[o.platform == "ios"]
	}
	base := strings.TrimRight(o.relay, "/")
	return &device.Client{
		UpdateURL:  base + "/updates",
		ChannelURL: base + "/channel_self",
		Info: channel.DeviceInfo{
			Platform: o.platform, DeviceID: o.deviceID, AppID: o.app, VersionBuild: o.native,
			VersionCode: "1", VersionOS: o.osVersion, VersionName: o.running, PluginVersion: o.pluginVersion,
			IsEmulator: o.emulator, IsProd: !o.dev, DefaultChannel: o.channel,
		},
		PublicKey: pub,
	}, nil
}

// prober runs one probe: it explains each step in sentences (unless --json) and collects
// the same facts in rep.
type prober struct {
	opts   probeOptions
	c      *device.Client
	stdout io.Writer
	rep    probeReport
}

// say prints one line of the explanation; --json silences it.
func (p *prober) say(format string, a ...any) {
	if !p.opts.asJSON {
		fmt.Fprintf(p.stdout, format+"\n", a...)
	}
}

// finish records err in the report, prints the report with --json, and returns err.
func (p *prober) finish(err error) error {
	if err != nil {
		p.rep.Error, p.rep.Code = err.Error(), device.Code(err)
	}
	if p.opts.asJSON {
		enc := json.NewEncoder(p.stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(p.rep); jerr != nil {
			return jerr
		}
	}
	return err
}

// describeRequest says what the device is about to ask.
func (p *prober) describeRequest() {
	chName := p.opts.channel
	if chName == "" {
		chName = "the app's default channel"
	} else {
		chName = fmt.Sprintf("channel %q", chName)
	}
	p.say("Asking %s what an %s device would get:", p.c.UpdateURL, p.opts.platform)
	p.say("  app %s, native version %s, running web bundle %q, %s", p.opts.app, p.opts.native, p.opts.running, chName)
	if p.c.PublicKey != nil {
		p.say("  the app has a public key (key_id %s), so it expects an encrypted bundle", p.rep.Request.KeyID)
	} else {
		p.say("  the app has no public key, so it expects an unencrypted bundle")
	}
	p.say("  device id %s", p.c.Info.DeviceID)
}

// checkChannel makes sure the channel --channel names exists, asking the relay as setChannel
// does: the relay answers an update check for an unknown channel from the app's default
// channel, so the probe would otherwise show another channel's answer as this one's. A
// relay that cannot answer the question (no /channel_self) is not a failure.
func (p *prober) checkChannel(ctx context.Context) error {
	name := p.opts.channel
	if name == "" {
		return nil
	}
	_, err := p.c.SetChannel(ctx, name)
	p.c.Info.DefaultChannel = name // the check asks for the channel given, whatever the answer
	var ce *device.ChannelError
	if !errors.As(err, &ce) || ce.Code != "channel_not_found" {
		return nil
	}
	p.rep.Outcome = "channel_not_found"
	p.say("")
	p.say("Channel %q does not exist on the relay: a device asking for it gets the app's default channel's answer instead.", name)
	return fmt.Errorf("channel %q does not exist on the relay (%s); check the name (--list-channels shows the channels devices may choose), or leave --channel out to ask for the app's default channel", name, ce.Code)
}

// listChannels lists the channels the device may choose (--list-channels).
func (p *prober) listChannels(ctx context.Context) error {
	list, err := p.c.ListChannels(ctx)
	if err != nil {
		p.say("")
		p.say("Listing channels failed: %v", err)
		return fmt.Errorf("list channels: %w", err)
	}
	p.rep.Channels = list
	p.say("")
	if len(list) == 0 {
		p.say("Channels this device may choose: none (no channel is public or allows allow_device_self_set)")
	} else {
		p.say("Channels this device may choose (setChannel):")
	}
	for _, ch := range list {
		var how []string
		if ch.Public {
			how = append(how, "public")
		}
		if ch.AllowSelfSet {
			how = append(how, "devices may select it")
		}
		p.say("  %-20s %s", ch.Name, strings.Join(how, ", "))
	}
	return nil
}

// explainDecision records and explains the relay's answer. It reports whether the answer
// offers a bundle to download; when it does not, err says whether the answer is a failure.
func (p *prober) explainDecision(resp *channel.UpdateResponse) (offered bool, err error) {
	p.rep.Outcome = device.Outcome(resp, p.opts.running)
	p.say("")
	switch p.rep.Outcome {
	case channel.KindUpToDate:
		p.say("Decision: no update (%s). %s", resp.Error, resp.Message)
		return false, nil
	case channel.KindBlocked:
		p.say("Decision: blocked (%s). %s", resp.Error, resp.Message)
		if resp.Error == "key_id_mismatch" {
			p.say("  the device's key_id is %s, the bundle was encrypted for key_id %s: ship the new public key in a store release, or publish with the old key", resp.DeviceKeyID, resp.BundleKeyID)
		}
		return false, nil
	case channel.KindFailed:
		p.say("Decision: the relay answered with a failure (%s). %s", resp.Error, resp.Message)
		p.say("  the plugin would report download_fail for this")
		return false, fmt.Errorf("relay refused: %s: %s", resp.Error, resp.Message)
	case "builtin":
		p.say("Decision: go back to the web assets built into the app (builtin).")
		return false, nil
	case "same_version":
		p.say("Decision: keep running %s; it is what the relay serves.", p.opts.running)
		return false, nil
	case "invalid":
		p.say("Decision: the answer offers %q but has no usable url; the plugin would report download_fail.", resp.Version)
		return false, fmt.Errorf("answer without a valid url")
	}
	kind := "unencrypted, checksum = SHA-256 of the zip"
	if resp.SessionKey != "" {
		kind = "encrypted, with a session key and a V3 (RSA-signed) checksum"
	}
	p.say("Decision: update to version %s (%s).", resp.Version, kind)
	p.say("  url: %s", resp.URL)
	if len(resp.Manifest) > 0 {
		p.say("  delta manifest: %d files (a device downloads only the ones it does not have)", len(resp.Manifest))
	}
	return true, nil
}

// downloadBundle fetches, decrypts, verifies and unpacks the offered bundle as the device
// would (--download), into --dir or a temporary directory removed afterwards.
func (p *prober) downloadBundle(ctx context.Context, resp *channel.UpdateResponse) error {
	target := p.opts.dir
	if target == "" {
		tmp, err := os.MkdirTemp("", "ferry-probe-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		target = tmp
	}
	p.c.Dir = target
	p.say("")
	p.say("Downloading as the device would...")
	start := time.Now()
	b, err := p.c.Download(ctx, resp)
	if err != nil {
		p.say("FAILED (%s): %v", device.Code(err), err)
		p.say("  the plugin would report %q and %q, and keep running %q", device.Code(err), "download_fail", p.opts.running)
		return err
	}
	p.say("  downloaded %s in %s", archive.FormatSize(b.BytesTransferred), time.Since(start).Round(time.Millisecond))
	if len(resp.Manifest) > 0 {
		p.say("  %d files downloaded, %d reused from earlier bundles", b.FilesDownloaded, b.FilesReused)
	}
	p.explainVerification(b)
	p.say("  unpacked %d files with index.html at the root into %s:", len(b.Files), b.Path)
	for _, f := range b.Files {
		size := ""
		if st, err := os.Stat(filepath.Join(b.Path, filepath.FromSlash(f))); err == nil {
			size = archive.FormatSize(st.Size())
		}
		p.say("    %-40s %s", f, size)
	}
	p.rep.Bundle = &probeBundle{Version: b.Version, Dir: b.Path, Encrypted: b.Encrypted, SHA256: b.Checksum,
		BytesTransferred: b.BytesTransferred, FilesDownloaded: b.FilesDownloaded, FilesReused: b.FilesReused, Files: b.Files}
	if p.opts.dir == "" {
		p.rep.Bundle.Dir = ""
	}
	p.say("")
	p.say("Verdict: a device would install %s and it verifies.", b.Version)
	return nil
}

// explainVerification says how the downloaded bundle was checked.
func (p *prober) explainVerification(b *device.Bundle) {
	if b.Encrypted {
		p.say("  decrypted with the app's public key (the AES session key was unwrapped with RSA)")
		if b.Checksum != "" {
			p.say("  checksum verified: the RSA-signed checksum opens to SHA-256 %s, which matches the decrypted zip", b.Checksum)
		} else {
			p.say("  every file's signed hash verified")
		}
	} else if b.Checksum != "" {
		p.say("  checksum verified: SHA-256 %s", b.Checksum)
	} else {
		p.say("  every file's hash verified")
	}
}

// randomUUID returns a random lowercase version-4 UUID, like the plugin's device id.
func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
