package archive

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// ErrSessionKey reports a session_key string that the plugin would refuse or that does not
// open with the given public key.
var ErrSessionKey = errors.New("invalid session key")

// ErrChecksum reports a V3 checksum that is malformed or does not open with the public key.
var ErrChecksum = errors.New("invalid checksum")

// ErrPadding reports ciphertext whose PKCS#7 padding or length is wrong: a wrong key or a
// truncated download.
var ErrPadding = errors.New("bad ciphertext padding")

// SessionKey is the AES-128 key and IV of one encrypted bundle. The same key and IV encrypt
// the bundle zip and, restarting CBC for each, its delta files (docs/protocol.md §4).
type SessionKey struct{ Key, IV [16]byte }

// NewSessionKey returns a random key and IV from crypto/rand.
func NewSessionKey() (*SessionKey, error) {
	var k SessionKey
	if _, err := io.ReadFull(rand.Reader, k.Key[:]); err != nil {
		return nil, fmt.Errorf("read random key: %w", err)
	}
	if _, err := io.ReadFull(rand.Reader, k.IV[:]); err != nil {
		return nil, fmt.Errorf("read random iv: %w", err)
	}
	return &k, nil
}

// Wrap returns the session_key for the update answer: "b64(iv):b64(wrapped)" where wrapped
// is the RSA PKCS#1 v1.5 type-1 "private encrypt" of the AES key (standard base64, padded).
// The output is deterministic for a given key and IV.
func (k *SessionKey) Wrap(priv *rsa.PrivateKey) (string, error) {
	wrapped, err := privateEncrypt(priv, k.Key[:])
	if err != nil {
		return "", fmt.Errorf("wrap session key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k.IV[:]) + ":" + base64.StdEncoding.EncodeToString(wrapped), nil
}

// UnwrapSessionKey recovers the key and IV from a session_key string with the public key,
// the way the plugin does: two non-empty base64 parts around ":", a 16-byte IV, a 256-byte
// wrapped value whose public decryption is a type-1 padded 16-byte key. Anything else gives an
// error wrapping [ErrSessionKey].
func UnwrapSessionKey(sessionKey string, pub *rsa.PublicKey) (*SessionKey, error) {
	ivPart, wrappedPart, ok := strings.Cut(sessionKey, ":")
	if !ok || ivPart == "" || wrappedPart == "" || strings.Contains(wrappedPart, ":") {
		return nil, fmt.Errorf("%w: want \"<base64 iv>:<base64 key>\"", ErrSessionKey)
	}
	iv, err := base64.StdEncoding.Strict().DecodeString(ivPart)
	if err != nil {
		return nil, fmt.Errorf("%w: iv: %v", ErrSessionKey, err)
	}
	if len(iv) != 16 {
		return nil, fmt.Errorf("%w: iv is %d bytes, want 16", ErrSessionKey, len(iv))
	}
	wrapped, err := base64.StdEncoding.Strict().DecodeString(wrappedPart)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %v", ErrSessionKey, err)
	}
	key, err := publicDecrypt(pub, wrapped)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSessionKey, err)
	}
	if len(key) != 16 {
		return nil, fmt.Errorf("%w: unwrapped key is %d bytes, want 16", ErrSessionKey, len(key))
	}
	var k SessionKey
	copy(k.Key[:], key)
	copy(k.IV[:], iv)
	return &k, nil
}

// ChecksumV3 returns the V3 checksum of sum, the raw 32-byte SHA-256 of the plain zip (or of
// one delta file): 512 lowercase hex characters of its RSA PKCS#1 v1.5 type-1 private
// encryption, byte-identical to the CLI's encryptChecksumV3.
func ChecksumV3(priv *rsa.PrivateKey, sum []byte) (string, error) {
	if len(sum) != sha256.Size {
		return "", fmt.Errorf("checksum v3: digest is %d bytes, want %d", len(sum), sha256.Size)
	}
	c, err := privateEncrypt(priv, sum)
	if err != nil {
		return "", fmt.Errorf("checksum v3: %w", err)
	}
	return hex.EncodeToString(c), nil
}

// OpenChecksumV3 recovers the 32-byte SHA-256 digest from a V3 checksum the way the plugin
// does: all-hex input is decoded as hex, anything else as base64; the result must be exactly
// 256 bytes and open with pub. Errors wrap [ErrChecksum].
func OpenChecksumV3(pub *rsa.PublicKey, checksum string) ([]byte, error) {
	var raw []byte
	var err error
	if isHex(checksum) {
		raw, err = hex.DecodeString(checksum)
	} else {
		raw, err = base64.StdEncoding.DecodeString(checksum)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: decode: %v", ErrChecksum, err)
	}
	if len(raw) != KeyBits/8 {
		return nil, fmt.Errorf("%w: %d bytes, want %d (a 2048-bit RSA V3 checksum)", ErrChecksum, len(raw), KeyBits/8)
	}
	sum, err := publicDecrypt(pub, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrChecksum, err)
	}
	if len(sum) != sha256.Size {
		return nil, fmt.Errorf("%w: opened value is %d bytes, want a %d-byte SHA-256 (legacy V2 checksum?)", ErrChecksum, len(sum), sha256.Size)
	}
	return sum, nil
}

// VerifyChecksum reports whether checksum matches the plain digest sum: a plain lowercase
// hex SHA-256 when pub is nil, a V3 checksum otherwise. It is the device's comparison.
func VerifyChecksum(pub *rsa.PublicKey, checksum string, sum []byte) error {
	if pub == nil {
		if checksum != hex.EncodeToString(sum) {
			return fmt.Errorf("%w: sha256 %x does not match %q", ErrChecksum, sum, checksum)
		}
		return nil
	}
	got, err := OpenChecksumV3(pub, checksum)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(got, sum) != 1 {
		return fmt.Errorf("%w: checksum opens to %x, content is %x", ErrChecksum, got, sum)
	}
	return nil
}

func isHex(s string) bool {
	if s == "" || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// privateEncrypt is Node's privateEncrypt with RSA_PKCS1_PADDING: a raw PKCS#1 v1.5
// signature over msg, no hash, no DigestInfo.
func privateEncrypt(priv *rsa.PrivateKey, msg []byte) ([]byte, error) {
	if priv == nil {
		return nil, errors.New("no private key")
	}
	return rsa.SignPKCS1v15(nil, priv, crypto.Hash(0), msg)
}

// publicDecrypt is the inverse of privateEncrypt ("RSA/ECB/PKCS1Padding" decrypt with a
// public key): m = c^e mod n, then strip 00 01 FF..FF 00 (at least 8 FF bytes).
func publicDecrypt(pub *rsa.PublicKey, c []byte) ([]byte, error) {
	if pub == nil || pub.N == nil {
		return nil, errors.New("no public key")
	}
	size := (pub.N.BitLen() + 7) / 8
	if len(c) != size {
		return nil, fmt.Errorf("ciphertext is %d bytes, want %d", len(c), size)
	}
	ci := new(big.Int).SetBytes(c)
	if ci.Cmp(pub.N) >= 0 {
		return nil, errors.New("ciphertext out of range")
	}
	m := new(big.Int).Exp(ci, big.NewInt(int64(pub.E)), pub.N)
	em := m.FillBytes(make([]byte, size))
	if em[0] != 0 || em[1] != 1 {
		return nil, errors.New("bad padding: not PKCS#1 type 1 (wrong key?)")
	}
	i := 2
	for i < len(em) && em[i] == 0xff {
		i++
	}
	if i == len(em) || em[i] != 0 || i-2 < 8 {
		return nil, errors.New("bad padding: not PKCS#1 type 1 (wrong key?)")
	}
	return em[i+1:], nil
}

// NewEncrypter returns a writer that AES-128-CBC encrypts what is written to it with k's key
// and IV and writes the ciphertext to w in whole blocks. Close writes the final PKCS#7-padded
// block (always at least one) and does not close w; the caller must call it and check its
// error. Not safe for concurrent use.
func (k *SessionKey) NewEncrypter(w io.Writer) io.WriteCloser {
	return k.newEncrypterBuffer(w, make([]byte, 0, encChunk))
}

// newEncrypterBuffer is NewEncrypter working in buf, whose capacity is a non-zero multiple of
// the block size: for a caller that encrypts many files one after the other and reuses buf
// once the encrypter is closed.
func (k *SessionKey) newEncrypterBuffer(w io.Writer, buf []byte) io.WriteCloser {
	b, _ := aes.NewCipher(k.Key[:]) // 16-byte key cannot fail
	return &encrypter{w: w, mode: cipher.NewCBCEncrypter(b, k.IV[:]), buf: buf[:0]}
}

const encChunk = 64 << 10

type encrypter struct {
	w      io.Writer
	mode   cipher.BlockMode
	buf    []byte // pending plaintext, < encChunk
	closed bool
	err    error
}

func (e *encrypter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.closed {
		return 0, errors.New("write to closed encrypter")
	}
	n := len(p)
	for len(p) > 0 {
		m := copy(e.buf[len(e.buf):cap(e.buf)], p)
		e.buf = e.buf[:len(e.buf)+m]
		p = p[m:]
		if len(e.buf) == cap(e.buf) {
			if err := e.flush(len(e.buf)); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// flush encrypts and writes the first n bytes (a multiple of the block size) of buf.
func (e *encrypter) flush(n int) error {
	e.mode.CryptBlocks(e.buf[:n], e.buf[:n])
	if _, err := e.w.Write(e.buf[:n]); err != nil {
		e.err = err
		return err
	}
	rest := copy(e.buf, e.buf[n:])
	e.buf = e.buf[:rest]
	return nil
}

func (e *encrypter) Close() error {
	if e.closed {
		return e.err
	}
	e.closed = true
	if e.err != nil {
		return e.err
	}
	pad := aes.BlockSize - len(e.buf)%aes.BlockSize
	for range pad {
		e.buf = append(e.buf, byte(pad))
	}
	return e.flush(len(e.buf))
}

// NewDecrypter returns a reader that AES-128-CBC decrypts r with k's key and IV and strips
// the PKCS#7 padding at EOF. A ciphertext that is empty, not a whole number of blocks, or
// badly padded gives an error wrapping [ErrPadding] at the end of the stream. Not safe for
// concurrent use.
func (k *SessionKey) NewDecrypter(r io.Reader) io.Reader {
	b, _ := aes.NewCipher(k.Key[:])
	return &decrypter{r: r, mode: cipher.NewCBCDecrypter(b, k.IV[:]), in: make([]byte, 0, encChunk+aes.BlockSize)}
}

type decrypter struct {
	r    io.Reader
	mode cipher.BlockMode
	in   []byte // ciphertext read but not yet decrypted
	out  []byte // plaintext ready to return
	eof  bool
	err  error
	seen bool // any ciphertext seen
}

func (d *decrypter) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		d.fill()
	}
	n := copy(p, d.out)
	d.out = d.out[n:]
	return n, nil
}

// fill reads more ciphertext and decrypts all whole blocks except the last one, which is
// kept until EOF so its padding can be removed.
func (d *decrypter) fill() {
	if d.eof {
		d.finish()
		return
	}
	n, err := d.r.Read(d.in[len(d.in):cap(d.in)])
	d.in = d.in[:len(d.in)+n]
	if n > 0 {
		d.seen = true
	}
	if err == io.EOF {
		d.eof = true
	} else if err != nil {
		d.err = err
		return
	}
	// Decrypt whole blocks, keeping at least one block back.
	whole := len(d.in) / aes.BlockSize * aes.BlockSize
	if whole == len(d.in) {
		whole -= aes.BlockSize
	}
	if whole <= 0 {
		if d.eof {
			d.finish()
		}
		return
	}
	out := make([]byte, whole)
	d.mode.CryptBlocks(out, d.in[:whole])
	rest := copy(d.in, d.in[whole:])
	d.in = d.in[:rest]
	d.out = out
}

func (d *decrypter) finish() {
	d.eof = true
	if !d.seen || len(d.in) != aes.BlockSize {
		if !d.seen {
			d.err = fmt.Errorf("%w: empty ciphertext", ErrPadding)
		} else {
			d.err = fmt.Errorf("%w: ciphertext is not a whole number of blocks (truncated?)", ErrPadding)
		}
		return
	}
	last := make([]byte, aes.BlockSize)
	d.mode.CryptBlocks(last, d.in)
	d.in = d.in[:0]
	pad := int(last[aes.BlockSize-1])
	if pad == 0 || pad > aes.BlockSize {
		d.err = fmt.Errorf("%w (wrong key?)", ErrPadding)
		return
	}
	for _, b := range last[aes.BlockSize-pad:] {
		if int(b) != pad {
			d.err = fmt.Errorf("%w (wrong key?)", ErrPadding)
			return
		}
	}
	d.out = last[:aes.BlockSize-pad]
	d.err = io.EOF
}
