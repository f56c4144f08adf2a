package relay

import (
	"strconv"
	"unicode/utf8"

	"github.com/ferryhq/ferry/internal/channel"
)

// appendUpdateResponse appends r as JSON, byte for byte what encoding/json writes for
// channel.UpdateResponse with HTML escaping off (field order, omitempty), without
// reflection: it is the body of every update check. TestAppendUpdateResponse checks it
// against encoding/json and fails when UpdateResponse gains a field this does not know.
func appendUpdateResponse(dst []byte, r *channel.UpdateResponse) []byte {
	dst = append(dst, '{')
	first := true
	str := func(key, v string) {
		if v == "" {
			return
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, key...)
		dst = append(dst, '"', ':')
		dst = appendJSONString(dst, v)
	}
	boolean := func(key string, v bool) {
		if !v {
			return
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, key...)
		dst = append(dst, `":true`...)
	}
	str("version", r.Version)
	str("url", r.URL)
	str("checksum", r.Checksum)
	str("session_key", r.SessionKey)
	if len(r.Manifest) > 0 {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `"manifest":[`...)
		for i := range r.Manifest {
			if i > 0 {
				dst = append(dst, ',')
			}
			f := &r.Manifest[i]
			dst = append(dst, `{"file_name":`...)
			dst = appendJSONString(dst, f.FileName)
			dst = append(dst, `,"file_hash":`...)
			dst = appendJSONString(dst, f.FileHash)
			dst = append(dst, `,"download_url":`...)
			dst = appendJSONString(dst, f.DownloadURL)
			if f.Size != 0 {
				dst = append(dst, `,"size":`...)
				dst = strconv.AppendInt(dst, f.Size, 10)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	boolean("breaking", r.Breaking)
	boolean("major", r.Major)
	str("link", r.Link)
	str("comment", r.Comment)
	str("error", r.Error)
	str("message", r.Message)
	str("kind", r.Kind)
	str("old", r.Old)
	str("deviceKeyId", r.DeviceKeyID)
	str("bundleKeyId", r.BundleKeyID)
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string exactly as encoding/json does without HTML
// escaping: \" \\ \b \f \n \r \t, other control characters as \u00XX, invalid UTF-8 as
// \ufffd, and U+2028/U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
