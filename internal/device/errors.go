package device

import (
	"errors"
	"fmt"
)

// Errors a device reports, named after the stat actions the plugin sends for them
// (docs/protocol.md §2). Errors returned by [Client] wrap one of them; [Code] turns an
// error back into the stat action.
var (
	// ErrDownloadFail means the bundle or a manifest file could not be downloaded, or the
	// update answer could not be used (no URL).
	ErrDownloadFail = errors.New("download_fail")
	// ErrChecksumFail means the downloaded archive's SHA-256 does not match the checksum.
	ErrChecksumFail = errors.New("checksum_fail")
	// ErrChecksumRequired means a zip update came without a checksum (8.51.23 refuses it).
	ErrChecksumRequired = errors.New("checksum_required")
	// ErrSessionKeyRequired means the device has a public key but the answer carried no
	// valid "iv:key" session key.
	ErrSessionKeyRequired = errors.New("session_key_required")
	// ErrDecryptFail means the session key or the archive could not be decrypted.
	ErrDecryptFail = errors.New("decrypt_fail")
	// ErrUnzipFail means the archive is not a readable zip.
	ErrUnzipFail = errors.New("unzip_fail")
	// ErrWindowsPathFail means an archive entry name contains a backslash.
	ErrWindowsPathFail = errors.New("windows_path_fail")
	// ErrCanonicalPathFail means an archive entry is absolute or escapes the bundle directory.
	ErrCanonicalPathFail = errors.New("canonical_path_fail")
	// ErrSetFail means the unpacked bundle has no index.html at its root, so it cannot be set.
	ErrSetFail = errors.New("set_fail")
	// ErrManifestPathFail means a manifest file name is absolute, escapes the bundle,
	// contains a backslash or NUL, or names the same target twice.
	ErrManifestPathFail = errors.New("manifest_path_fail")
	// ErrManifestFileFail means one manifest file could not be downloaded.
	ErrManifestFileFail = errors.New("download_manifest_file_fail")
	// ErrManifestChecksumFail means a manifest file does not hash to its file_hash.
	ErrManifestChecksumFail = errors.New("download_manifest_checksum_fail")
	// ErrManifestBrotliFail means a .br manifest file could not be decompressed.
	ErrManifestBrotliFail = errors.New("download_manifest_brotli_fail")
	// ErrBundleFailed means the answer offers a version this device already marked as
	// failed; the plugin aborts instead of installing it again.
	ErrBundleFailed = errors.New("bundle_in_error")
)

// codes lists every sentinel for [Code].
var codes = []error{
	ErrChecksumFail, ErrChecksumRequired, ErrSessionKeyRequired, ErrDecryptFail,
	ErrWindowsPathFail, ErrCanonicalPathFail, ErrUnzipFail, ErrSetFail,
	ErrManifestPathFail, ErrManifestFileFail, ErrManifestChecksumFail, ErrManifestBrotliFail,
	ErrBundleFailed, ErrDownloadFail,
}

// Code returns the stat action that reports err ("checksum_fail", "decrypt_fail", …), or
// "download_fail" for any other error, or "" for nil.
func Code(err error) string {
	if err == nil {
		return ""
	}
	for _, c := range codes {
		if errors.Is(err, c) {
			return c.Error()
		}
	}
	return ErrDownloadFail.Error()
}

// ResponseError is a non-2xx answer from the relay. Code is the body's "error" when it has
// one; the plugin reports the rest as "response_error".
type ResponseError struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *ResponseError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("relay answered HTTP %d: %s: %s", e.StatusCode, e.Code, e.Message)
	}
	return fmt.Sprintf("relay answered HTTP %d (response_error)", e.StatusCode)
}

// ErrParse means the relay answered 2xx with something that is not the JSON the plugin
// expects (parse_error on Android, decode_error on iOS).
var ErrParse = errors.New("parse_error")

// codeError attaches a code sentinel to a cause, so both errors.Is(err, code) and the
// cause's own errors.Is checks keep working.
type codeError struct {
	code  error
	cause error
}

func (e *codeError) Error() string {
	if e.cause == nil {
		return e.code.Error()
	}
	return e.code.Error() + ": " + e.cause.Error()
}

func (e *codeError) Unwrap() []error { return []error{e.code, e.cause} }

// withCode wraps cause with a code unless it already carries one.
func withCode(code, cause error) error {
	if cause != nil {
		for _, c := range codes {
			if errors.Is(cause, c) {
				return cause
			}
		}
	}
	return &codeError{code: code, cause: cause}
}
