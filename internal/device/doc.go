// Package device is Ferry's reference device: a Go client that behaves as
// @capgo/capacitor-updater 8.51.x does against a self-hosted server
// (docs/protocol.md §1–§7). It drives Ferry's end-to-end tests and the `ferry probe`
// command, which answers "what would a device on channel X with native version Y get right
// now, and does it verify?".
//
// A [Client] is one simulated install. It sends the plugin's exact update-check body and
// User-Agent (with key_id when the app has a public key), downloads with Range resume,
// decrypts with the public key (a session key is then required), verifies the checksum (the
// RSA-opened V3 value for encrypted bundles, plain SHA-256 otherwise), unzips with the
// plugin's path rules and requires index.html at the root. For delta (manifest) answers it
// downloads file by file, decrypts and un-Brotlis each, checks its hash and reuses files it
// already holds from earlier bundles, counting the bytes it transferred. It reports stats in
// 8.51's batch format and calls /channel_self the way the plugin does (setChannel POST,
// getChannel PUT, listChannels GET with the info object as query parameters).
//
// Failures wrap sentinel errors named after the plugin's stat actions ([ErrChecksumFail] is
// "checksum_fail", [ErrDecryptFail] "decrypt_fail", …); [Code] maps an error to its action.
//
//	c := &device.Client{
//		UpdateURL: relay + "/updates", StatsURL: relay + "/stats", ChannelURL: relay + "/channel_self",
//		Info:      channel.DeviceInfo{AppID: "com.example.app", DeviceID: id, VersionBuild: "1.0.0", DefaultChannel: "beta"},
//		PublicKey: pub,
//		Dir:       dir,
//	}
//	res, err := c.Update(ctx) // check → download → verify → unpack → set, with stats
//	if err == nil && res.Outcome == "update" {
//		c.NotifyAppReady()
//	}
package device
