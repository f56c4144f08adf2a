package relaytest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Hex returns n lowercase hex digits derived from label: the SHA-256 of "label/0",
// "label/1", … in turn, as many as n needs. The same label and n always give the same
// digits, and a shorter n gives a prefix of a longer one.
func Hex(label string, n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		s := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", label, i)))
		b.WriteString(hex.EncodeToString(s[:]))
	}
	return b.String()[:n]
}

// Commit returns a stable 40-hex git commit id for label: the hex SHA-1 of label.
func Commit(label string) string {
	s := sha1.Sum([]byte(label))
	return hex.EncodeToString(s[:])
}
