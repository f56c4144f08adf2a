// Package archive turns a web build directory into a bundle that the unmodified
// @capgo/capacitor-updater plugin can download, decrypt, verify and unzip, and holds the
// reverse operations the device side needs. It imports no other Ferry package and uses only
// the standard library's crypto (plus github.com/andybalholm/brotli for delta files and
// golang.org/x/text to compare file names as iOS and macOS do).
//
// # The archive
//
// [WriteZip] writes a deterministic zip: the same directory content gives the same bytes,
// whatever the file times, modes, creation order or number of CPUs, so checksums and
// provenance reproduce. Entries are sorted by name (byte order), use "/" separators, carry
// a fixed time ([ZipOptions.ModTime], default 1980-01-01, or SOURCE_DATE_EPOCH through
// [ModTimeFromEpoch]) and fixed modes (0644 files, 0755 directories), and every directory
// gets an entry such as "assets/" as the CLI writes. Every file is Deflate-compressed, at
// [CompressionLevel] or, for the chunks of files over 1 MiB, [ChunkedCompressionLevel]: Android's ZipInputStream refuses a Stored entry with a data descriptor
// (docs/protocol.md §6). Chunks that do not compress (fonts, images) are written as Deflate stored
// blocks, still method Deflate. Files are compressed in parallel in 1 MiB chunks (big files
// too, each chunk primed with the previous 32 KiB as dictionary) and written in order, so
// memory stays at a few MiB per CPU whatever the build's size. Single-chunk entries carry
// their CRC and sizes in the local header; multi-chunk entries stream with a data
// descriptor, which ZipInputStream accepts for Deflate entries.
//
// File policy, shared by [WriteZip] and [Delta]:
//   - index.html must be a regular file at the root ([ErrNoIndex]); point the packager at
//     dist/ or www/, not at the project.
//   - Names starting with "." are skipped (.git, .env, .DS_Store) unless
//     [ZipOptions.IncludeHidden]; ".well-known" is always included.
//   - A symlink is followed when its target is inside the build directory (the entry holds
//     the target's content; a linked directory is walked, cycles are refused) and refused
//     with [ErrUnsafeFile] when it points outside or dangles, or (without
//     [ZipOptions.IncludeHidden]) when any element of its target's path relative to the
//     build directory is hidden (config.js -> .env, assets -> .git/objects), so a link
//     cannot ship what the hidden-file rule keeps out. Devices, sockets and pipes are
//     refused, and so are names the plugin would refuse (backslash) or that are not UTF-8.
//   - A build a device could not unpack as built is refused: over [MaxBundleBytes] of files
//     or [MaxBundleEntries] entries ([ErrTooLarge]), or two paths differing only in Unicode
//     normalization, which iOS takes for one file ([ErrUnsafeFile], naming both). Such twins
//     with the same bytes, and paths differing only in letter case (one file on desktop file
//     systems only), are packed with a warning in [ZipStats.Warnings].
//
// # Encryption and checksums
//
// Capgo's v2 scheme (docs/protocol.md §5): a random AES-128 key and IV ([SessionKey]) encrypt the
// whole zip with CBC and PKCS#7 padding ([SessionKey.NewEncrypter], streaming); the key is wrapped
// with RSA PKCS#1 v1.5 type-1 padding under the publisher's private key ("private
// encrypt"), giving the session_key "b64(iv):b64(wrapped)" ([SessionKey.Wrap]). The V3
// checksum is the same operation over the raw SHA-256 of the plain zip, as 512 hex
// characters ([ChecksumV3]). Devices reverse both with the public key ([UnwrapSessionKey],
// [OpenChecksumV3], [VerifyChecksum]). Unencrypted bundles use the plain lowercase hex
// SHA-256 of the zip. Keys are PKCS#1 PEM RSA 2048 with e = 65537, exactly Capgo's
// .capgo_key_v2 files; anything else is refused with [ErrKeyFormat] and advice.
//
// [Package] is what the action calls: zip, hash and encrypt in one streaming pass, reporting
// the checksum devices verify, the session key, key_id, and the SHA-256 of the published
// artifact (what gets signed).
//
// # Delta files and extraction
//
// [Delta] prepares the per-file manifest of a delta update (docs/protocol.md §4): Brotli when the
// CLI's rule says so, then encryption with the bundle's session key, file_hash in V3 form when
// encrypting, and content-addressed object names. [Extract] is the device's unzip with the
// plugin's path rules ([ValidateEntryName], [PathError] carrying the plugin's stat) and
// zip-bomb limits.
//
// Typical use, as in the action:
//
//	key, err := archive.ParsePrivateKey(pemFromSecret)
//	...
//	res, err := archive.Package(ctx, "dist", file, archive.Options{Key: key})
//	// register res.Checksum, res.SessionKey, res.KeyID, res.SHA256 with the relay;
//	// sign the file, whose digest is res.ArtifactSHA256.
//
// All functions are safe for concurrent use; the writers and readers they return are not.
package archive
