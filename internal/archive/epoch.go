package archive

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// MaxEpochLabel is the longest delta key epoch label [DeriveEpoch] accepts, in bytes.
const MaxEpochLabel = 64

// Form is how a delta file is stored: it is part of an epoch object's name, because the same
// content stored raw, Brotli-compressed or wrapped gives different bytes.
type Form string

// The forms of a delta file (docs/protocol.md §4).
const (
	FormRaw     Form = "raw"     // the file's bytes (under the Brotli rule's threshold or saving)
	FormBrotli  Form = "brotli"  // Brotli by the CLI's rule; the manifest name gets ".br"
	FormWrapped Form = "wrapped" // always Brotli: a name ending in ".br", or an empty file
)

// Epoch is what the delta files of every bundle published under one epoch share, so that an
// unchanged file is stored once and reused by later releases (docs/security.md, "Delta key
// epochs"): the session key (AES key and IV) that encrypts them, and the key that names their
// objects. An unencrypted epoch has no session key, and its names are a public function of the
// content (which is public too).
type Epoch struct {
	// ID names the epoch's object directory: "files/<ID>/". It changes with the private key
	// and the label, so a rotated epoch starts fresh objects and never reads older ones.
	ID string
	// Session encrypts the bundle zip and every delta file of the epoch; nil when unencrypted.
	Session *SessionKey
	naming  []byte
	hintKey []byte // HintTag's key; nil when unencrypted
	// namers and taggers recycle HMACs keyed with naming and hintKey: a reset HMAC reuses
	// its hashed key pads, a new one hashes them again (a third of its cost on a short input).
	namers, taggers sync.Pool
}

// mac computes the HMAC-SHA256 under key of the parts, with an HMAC from pool.
func mac(pool *sync.Pool, key []byte, parts ...[]byte) []byte {
	m, _ := pool.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, key)
	}
	for _, p := range parts {
		m.Write(p)
	}
	sum := m.Sum(nil)
	m.Reset()
	pool.Put(m)
	return sum
}

// DeriveEpoch derives the epoch of app's delta bundles named label with HKDF-SHA256 from the
// publisher's private key: the same key, app and label always give the same epoch. With key
// nil it returns the unencrypted epoch of label. The label must be 1 to [MaxEpochLabel]
// printable ASCII characters.
func DeriveEpoch(key *rsa.PrivateKey, appID, label string) (*Epoch, error) {
	if err := CheckEpochLabel(label); err != nil {
		return nil, err
	}
	info := "ferry delta epoch v1\x00" + appID + "\x00" + label
	if key == nil {
		sum := sha256.Sum256([]byte("ferry unencrypted delta names v1\x00" + info))
		return &Epoch{ID: "p" + hex.EncodeToString(sum[:8]), naming: sum[:]}, nil
	}
	okm, err := hkdf.Key(sha256.New, x509.MarshalPKCS1PrivateKey(key), []byte("ferry/epoch"), info, 16+16+32+8)
	if err != nil {
		return nil, fmt.Errorf("derive delta epoch: %w", err)
	}
	e := &Epoch{ID: "e" + hex.EncodeToString(okm[64:72]), Session: &SessionKey{}, naming: okm[32:64]}
	copy(e.Session.Key[:], okm[:16])
	copy(e.Session.IV[:], okm[16:32])
	m := hmac.New(sha256.New, e.naming)
	m.Write([]byte("ferry delta hint tag v1"))
	e.hintKey = m.Sum(nil)
	return e, nil
}

// HintTag authenticates a file_hash a manifest gives an epoch object, for a later release to
// reuse it without an RSA check ([Stored.Tag]): the hex HMAC-SHA256, under a key derived from
// the naming key (so from the private key), of the object name and the file_hash. The object
// name binds the file's SHA-256 and form, so a valid tag says that the publisher gave this
// file_hash to this content. "" for an unencrypted epoch, whose file_hash is the plain SHA-256.
func (e *Epoch) HintTag(object, fileHash string) string {
	if e.hintKey == nil {
		return ""
	}
	return hex.EncodeToString(mac(&e.taggers, e.hintKey, []byte(object), []byte{0}, []byte(fileHash)))
}

// CheckEpochLabel reports whether label can name a delta key epoch ([DeriveEpoch]).
func CheckEpochLabel(label string) error {
	if label == "" || len(label) > MaxEpochLabel {
		return fmt.Errorf("delta key epoch %q: want 1 to %d characters", label, MaxEpochLabel)
	}
	for _, r := range label {
		if r < 0x21 || r > 0x7e {
			return fmt.Errorf("delta key epoch %q: want printable ASCII without spaces", label)
		}
	}
	return nil
}

// Prefix is the directory of the epoch's objects, relative to the app's: "files/<ID>/".
func (e *Epoch) Prefix() string { return "files/" + e.ID + "/" }

// Object is the object name of a file whose original bytes have SHA-256 sum, stored in form:
// Prefix plus the hex HMAC-SHA256, under the epoch's naming key, of sum and form. It is
// computed without compressing or encrypting anything, and tells someone without the key
// nothing about the content.
func (e *Epoch) Object(sum []byte, form Form) string {
	return e.Prefix() + hex.EncodeToString(mac(&e.namers, e.naming, sum, []byte{0}, []byte(form)))
}

// IsObject reports whether name (relative to the app's directory) is one of e's object names.
func (e *Epoch) IsObject(name string) bool {
	h, ok := strings.CutPrefix(name, e.Prefix())
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}
