package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON scanner for the device endpoints' hot path. The info object is flat (string,
// number, bool and null values; the rare nested values are metadata and manifests), so a
// single pass over the bytes decodes it without reflection at several times the speed of
// encoding/json. It accepts exactly the JSON grammar (RFC 8259): anything else is a syntax
// error with its offset. Nested values under unknown keys are validated and skipped.

// maxDepth bounds the nesting of skipped values.
const maxDepth = 512

type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

// scanner reads b. The strings it returns without escapes are slices of b: they keep all
// of b alive as long as they live.
type scanner struct {
	b string
	i int
}

func (s *scanner) errorf(format string, args ...any) error {
	return &syntaxError{off: s.i, msg: fmt.Sprintf(format, args...)}
}

// unexpected reports what was expected, or the end of input when that is what came.
func (s *scanner) unexpected(want string) error {
	if s.i >= len(s.b) {
		return s.errorf("unexpected end of JSON input")
	}
	return s.errorf("invalid character %q, %s", s.b[s.i], want)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// trimJSONSpace returns s without its leading JSON whitespace (what ws skips).
func trimJSONSpace(s string) string {
	sc := scanner{b: s}
	sc.ws()
	return s[sc.i:]
}

// expect consumes c after optional whitespace.
func (s *scanner) expect(c byte) error {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != c {
		return s.unexpected(fmt.Sprintf("want %q", c))
	}
	s.i++
	return nil
}

// peek returns the next non-space byte, or 0 at the end (a NUL byte, never valid outside a
// string, also reads as 0; callers treat both as errors).
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// str scans a string at s.i (which holds '"') and returns its value.
func (s *scanner) str() (string, error) {
	start := s.i + 1
	i := start
	for i < len(s.b) {
		c := s.b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return s.b[start:i], nil
		case c == '\\':
			return s.strSlow(start)
		case c < 0x20:
			s.i = i
			return "", s.errorf("control character in string")
		}
		i++
	}
	s.i = i
	return "", s.errorf("unexpected end of JSON input in string")
}

// strSlow decodes a string with escapes, starting after the opening quote at start.
func (s *scanner) strSlow(start int) (string, error) {
	out := make([]byte, 0, 32)
	i := start
	for i < len(s.b) {
		c := s.b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return string(out), nil
		case c < 0x20:
			s.i = i
			return "", s.errorf("control character in string")
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s.b) {
			break
		}
		i++
		switch s.b[i] {
		case '"', '\\', '/':
			out = append(out, s.b[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n := s.hex4(i + 1)
			if n < 0 {
				s.i = i
				return "", s.errorf("invalid \\u escape")
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, n2 := s.hex4(i + 3); i+2 < len(s.b) && s.b[i+1] == '\\' && s.b[i+2] == 'u' && n2 >= 0 {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			s.i = i
			return "", s.errorf("invalid escape \\%c", s.b[i])
		}
		i++
	}
	s.i = i
	return "", s.errorf("unexpected end of JSON input in string")
}

func (s *scanner) hex4(at int) (rune, int) {
	if at+4 > len(s.b) {
		return 0, -1
	}
	var r rune
	for i := at; i < at+4; i++ {
		c := s.b[i] // bytes, not runes: the digits are ASCII
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, -1
		}
		r = r<<4 | rune(c)
	}
	return r, 4
}

// literal scans a number, true, false or null and returns its text.
func (s *scanner) literal() (string, error) {
	start := s.i
	for _, w := range []string{"true", "false", "null"} {
		if s.b[s.i] == w[0] {
			if len(s.b)-s.i >= len(w) && s.b[s.i:s.i+len(w)] == w {
				s.i += len(w)
				return s.b[start:s.i], nil
			}
			return "", s.errorf("invalid literal")
		}
	}
	// number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
	i := s.i
	if i < len(s.b) && s.b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s.b) && s.b[i] >= '0' && s.b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s.b) && s.b[i] == '0':
		i++
	case digits() == 0:
		s.i = i
		return "", s.errorf("invalid character in number")
	}
	if i < len(s.b) && s.b[i] == '.' {
		i++
		if digits() == 0 {
			s.i = i
			return "", s.errorf("invalid number: digits expected after '.'")
		}
	}
	if i < len(s.b) && (s.b[i] == 'e' || s.b[i] == 'E') {
		i++
		if i < len(s.b) && (s.b[i] == '+' || s.b[i] == '-') {
			i++
		}
		if digits() == 0 {
			s.i = i
			return "", s.errorf("invalid number: digits expected in exponent")
		}
	}
	s.i = i
	return s.b[start:i], nil
}

// skip validates and skips one value of any kind.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return s.errorf("nesting deeper than %d", maxDepth)
	}
	switch s.peek() {
	case 0:
		return s.errorf("unexpected end of JSON input")
	case '"':
		_, err := s.str()
		return err
	case '{':
		s.i++
		if s.peek() == '}' {
			s.i++
			return nil
		}
		for {
			if s.peek() != '"' {
				return s.unexpected("object key expected")
			}
			if _, err := s.str(); err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.i++
			case '}':
				s.i++
				return nil
			default:
				return s.unexpected("',' or '}' expected in object")
			}
		}
	case '[':
		s.i++
		if s.peek() == ']' {
			s.i++
			return nil
		}
		for {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return nil
			default:
				return s.unexpected("',' or ']' expected in array")
			}
		}
	default:
		_, err := s.literal()
		return err
	}
}

// end checks that only whitespace follows.
func (s *scanner) end() error {
	s.ws()
	if s.i < len(s.b) {
		return s.errorf("invalid character %q after top-level value", s.b[s.i])
	}
	return nil
}

// kindOf names the kind of value at the scanner's position, for type errors.
func kindOf(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// decodeObject decodes the JSON object in b into w: string fields take strings, numbers and
// bools (as written) and null; bool fields take bools, "true"/"false"/"1"/"0"/"", 1/0 and
// null; manifest takes an array of file objects; other keys are validated and skipped.
// Errors are *syntaxError, or else (the whole input being valid JSON) the first
// *fieldTypeError. The strings decoded into w may be slices of b.
func decodeObject(b string, w *wireRequest) error {
	s := scanner{b: b}
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return s.end()
	}
	var typeErr error
	for {
		if s.peek() != '"' {
			return s.unexpected("object key expected")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := decodeField(&s, key, w); err != nil {
			var fe *fieldTypeError
			if !errors.As(err, &fe) {
				return err
			}
			if typeErr == nil {
				typeErr = err
			}
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			if err := s.end(); err != nil {
				return err
			}
			return typeErr
		default:
			return s.unexpected("',' or '}' expected in object")
		}
	}
}

// fieldTypeError is a known field holding a value of the wrong kind.
type fieldTypeError struct {
	field, want, got string
}

func (e *fieldTypeError) Error() string {
	return "field " + e.field + ": want a " + e.want + ", got " + e.got
}

func decodeField(s *scanner, key string, w *wireRequest) error {
	var sp *flexString
	var bp *flexBool
	switch key {
	case "platform":
		sp = &w.Platform
	case "device_id":
		sp = &w.DeviceID
	case "app_id":
		sp = &w.AppID
	case "custom_id":
		sp = &w.CustomID
	case "version_build":
		sp = &w.VersionBuild
	case "version_code":
		sp = &w.VersionCode
	case "version_os":
		sp = &w.VersionOS
	case "version_name":
		sp = &w.VersionName
	case "plugin_version":
		sp = &w.PluginVersion
	case "install_source":
		sp = &w.InstallSource
	case "defaultChannel":
		sp = &w.DefaultChannel
	case "key_id":
		sp = &w.KeyID
	case "action":
		sp = &w.Action
	case "old_version_name":
		sp = &w.OldVersionName
	case "channel":
		sp = &w.Channel
	case "version":
		sp = &w.Version
	case "is_emulator":
		bp = &w.IsEmulator
	case "is_prod":
		bp = &w.IsProd
	case "manifest":
		return decodeManifest(s, w)
	default:
		return s.skip(1)
	}
	c := s.peek()
	switch {
	case c == 0:
		return s.errorf("unexpected end of JSON input")
	case c == '{' || c == '[':
		if err := s.skip(1); err != nil {
			return err
		}
		want := "string"
		if bp != nil {
			want = "bool"
		}
		return &fieldTypeError{field: key, want: want, got: kindOf(c)}
	case c == '"':
		v, err := s.str()
		if err != nil {
			return err
		}
		if sp != nil {
			*sp = flexString(v)
			return nil
		}
		b, ok := boolString(v)
		if !ok {
			return &fieldTypeError{field: key, want: "bool", got: "string"}
		}
		*bp = b
		return nil
	}
	lit, err := s.literal()
	if err != nil {
		return err
	}
	if sp != nil {
		if lit[0] == 'n' {
			*sp = ""
		} else {
			*sp = flexString(lit)
		}
		return nil
	}
	switch lit {
	case "true", "1":
		*bp = flexBool{set: true, v: true}
	case "false", "0":
		*bp = flexBool{set: true, v: false}
	case "null":
		*bp = flexBool{}
	default:
		return &fieldTypeError{field: key, want: "bool", got: "number"}
	}
	return nil
}

// decodeManifest decodes the manifest array of a manifest_size request (rare, so through
// encoding/json on the value's bytes).
func decodeManifest(s *scanner, w *wireRequest) error {
	c := s.peek()
	start := s.i
	if err := s.skip(1); err != nil {
		return err
	}
	switch c {
	case 'n':
		w.Manifest = nil
		return nil
	case '[':
	default:
		return &fieldTypeError{field: "manifest", want: "array", got: kindOf(c)}
	}
	var files []wireFile
	if err := json.Unmarshal([]byte(s.b[start:s.i]), &files); err != nil {
		return &fieldTypeError{field: "manifest", want: "array of file objects", got: strconv.Quote(shorten(err.Error()))}
	}
	w.Manifest = files
	return nil
}

func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// splitArray returns the raw elements of the JSON array in b.
func splitArray(b string, limit int) ([]string, error) {
	s := scanner{b: b}
	if err := s.expect('['); err != nil {
		return nil, err
	}
	var out []string
	if s.peek() == ']' {
		s.i++
		return out, s.end()
	}
	for {
		s.ws()
		start := s.i
		if err := s.skip(1); err != nil {
			return nil, err
		}
		if len(out) == limit {
			return nil, &limitError{n: limit}
		}
		out = append(out, b[start:s.i])
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return out, s.end()
		default:
			return nil, s.unexpected("',' or ']' expected in array")
		}
	}
}

type limitError struct{ n int }

func (e *limitError) Error() string { return "more than " + strconv.Itoa(e.n) + " elements" }
