package channel_test

import (
	"encoding/json"
	"fmt"

	"github.com/ferryhq/ferry/internal/channel"
)

const exampleConfig = `
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels:
      production: {}
      beta: { allow_device_self_set: true }
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/channel/*", channel: "$1" }
      - { ref: "refs/tags/v*", channel: production }
`

func ExampleParseConfig() {
	cfg, err := channel.ParseConfig([]byte(exampleConfig))
	if err != nil {
		fmt.Println(err)
		return
	}
	app := cfg.App("com.example.app")
	p, _ := app.Policy("beta")
	fmt.Println(app.DefaultChannel, p.AllowDeviceSelfSet)

	_, err = channel.ParseConfig([]byte("apps:\n  - id: com.example.app\n    default_channel: prod\n    channels: {production: {}}\n"))
	fmt.Println(err)
	// Output:
	// production true
	// app 0 ("com.example.app"): repository "" must be "owner/name"
	// app 0 ("com.example.app"): default_channel "prod" is not listed under channels
}

func ExampleApp_MatchRef() {
	cfg, _ := channel.ParseConfig([]byte(exampleConfig))
	app := cfg.App("com.example.app")
	for _, ref := range []string{"refs/heads/main", "refs/tags/channel/beta", "refs/tags/v1.4.0", "refs/heads/feature"} {
		ch, ok := app.MatchRef(ref)
		fmt.Println(ref, "->", ch, ok)
	}
	// Output:
	// refs/heads/main -> beta true
	// refs/tags/channel/beta -> beta true
	// refs/tags/v1.4.0 -> production true
	// refs/heads/feature ->  false
}

func ExampleNativeAllows() {
	for _, build := range []string{"2.0", "2.7.1", "3.0.0"} {
		ok, _ := channel.NativeAllows("^2.0", build)
		fmt.Println(build, ok)
	}
	// Output:
	// 2.0 true
	// 2.7.1 true
	// 3.0.0 false
}

func ExampleDecide() {
	cfg, _ := channel.ParseConfig([]byte(exampleConfig))
	prod := &channel.State{App: "com.example.app", Channel: "production"}
	channel.Promote(prod, "1.0.0")
	channel.Promote(prod, "1.1.0")
	snap := &channel.Snapshot{
		App:    cfg.App("com.example.app"),
		States: map[string]*channel.State{"production": prod},
		Bundles: map[string]*channel.Bundle{
			"1.0.0": {Version: "1.0.0", URL: "https://cdn.example.com/1.0.0.zip", Checksum: "aa"},
			"1.1.0": {Version: "1.1.0", URL: "https://cdn.example.com/1.1.0.zip", Checksum: "bb", Native: ">=2.0.0"},
		},
	}
	device := &channel.DeviceInfo{
		Platform: "android", DeviceID: "7239a82f-4ea8-4e33-9085-f4ad974d3fc4", AppID: "com.example.app",
		VersionBuild: "2.1.0", VersionName: "builtin", PluginVersion: "8.51.23", IsProd: true,
	}
	for _, d := range []channel.Decision{
		channel.Decide(snap, device, nil),
		channel.Decide(snap, device, []string{"1.1.0"}), // the device reported update_fail for 1.1.0
		channel.Decide(snap, &channel.DeviceInfo{
			Platform: "ios", DeviceID: "x", AppID: "com.example.app", VersionBuild: "1.9", VersionName: "1.0.0",
		}, nil), // native 1.9 is not >=2.0.0; it already runs the newest bundle it supports
	} {
		body, _ := json.Marshal(d.Response)
		fmt.Println(d.Outcome, string(body))
	}
	// Output:
	// offered {"version":"1.1.0","url":"https://cdn.example.com/1.1.0.zip","checksum":"bb"}
	// offered {"version":"1.0.0","url":"https://cdn.example.com/1.0.0.zip","checksum":"aa"}
	// up_to_date {"error":"no_new_version_available","message":"No new version available","kind":"up_to_date"}
}

// ExampleDecide_nativeRanges is the example of docs/action.md "Native ranges: which bundle
// a device gets": a channel that served two bundles for the 1.x native shell and then one
// for 2.x answers each device with the newest bundle its native version supports.
func ExampleDecide_nativeRanges() {
	cfg, _ := channel.ParseConfig([]byte(exampleConfig))
	prod := &channel.State{App: "com.example.app", Channel: "production"}
	bundles := map[string]*channel.Bundle{}
	for _, b := range []struct{ version, native string }{
		{"1.0.0", ">=1.0.0 <2.0.0"}, {"1.1.0", ">=1.0.0 <2.0.0"}, {"2.0.0", ">=2.0.0"},
	} {
		bundles[b.version] = &channel.Bundle{Version: b.version, URL: "https://cdn.example.com/" + b.version + ".zip", Checksum: "aa", Native: b.native}
		channel.Promote(prod, b.version)
	}
	snap := &channel.Snapshot{App: cfg.App("com.example.app"), States: map[string]*channel.State{"production": prod}, Bundles: bundles}
	fmt.Println("production:", prod.Version, "history:", prod.History)
	for _, d := range []struct{ native, running string }{
		{"2.1.0", "builtin"},
		{"2.0.1 (debug)", "builtin"},
		{"1.4.0", "builtin"},
		{"1.4.0", "1.0.0"},
		{"1.4.0", "1.1.0"},
		{"1.4.0", "1.2.0"},
		{"0.9.0", "builtin"},
		{"dev", "builtin"},
	} {
		res := channel.Decide(snap, &channel.DeviceInfo{
			Platform: "android", DeviceID: "7239a82f-4ea8-4e33-9085-f4ad974d3fc4", AppID: "com.example.app",
			VersionBuild: d.native, VersionName: d.running, PluginVersion: "8.51.23", IsProd: true,
		}, nil)
		answer := res.Response.Error
		if answer == "" {
			answer = "update to " + res.Response.Version
		}
		fmt.Printf("native %-13s running %-7s -> %s\n", d.native, d.running, answer)
	}

	// A fix for the 1.x shell published to the same channel becomes its current version,
	// and the fallback looks only at older versions: 2.x devices now get nothing.
	bundles["1.1.1"] = &channel.Bundle{Version: "1.1.1", URL: "https://cdn.example.com/1.1.1.zip", Checksum: "aa", Native: "1.x"}
	channel.Promote(prod, "1.1.1")
	show := func(when string) {
		for _, native := range []string{"1.4.0", "2.1.0"} {
			res := channel.Decide(snap, &channel.DeviceInfo{
				Platform: "android", DeviceID: "7239a82f-4ea8-4e33-9085-f4ad974d3fc4", AppID: "com.example.app",
				VersionBuild: native, VersionName: "builtin", PluginVersion: "8.51.23", IsProd: true,
			}, nil)
			answer := res.Response.Error
			if answer == "" {
				answer = "update to " + res.Response.Version
			}
			fmt.Printf("%s: native %s -> %s\n", when, native, answer)
		}
	}
	show("after 1.1.1")
	// Promoting 2.0.0 again puts 1.1.1 in the history, where 1.x devices find it.
	channel.Promote(prod, "2.0.0")
	show("2.0.0 again")
	// Output:
	// production: 2.0.0 history: [1.1.0 1.0.0]
	// native 2.1.0         running builtin -> update to 2.0.0
	// native 2.0.1 (debug) running builtin -> update to 2.0.0
	// native 1.4.0         running builtin -> update to 1.1.0
	// native 1.4.0         running 1.0.0   -> update to 1.1.0
	// native 1.4.0         running 1.1.0   -> no_new_version_available
	// native 1.4.0         running 1.2.0   -> update to 1.1.0
	// native 0.9.0         running builtin -> disable_auto_update_under_native
	// native dev           running builtin -> unknown_version_build
	// after 1.1.1: native 1.4.0 -> update to 1.1.1
	// after 1.1.1: native 2.1.0 -> disable_auto_update_under_native
	// 2.0.0 again: native 1.4.0 -> update to 1.1.1
	// 2.0.0 again: native 2.1.0 -> update to 2.0.0
}
