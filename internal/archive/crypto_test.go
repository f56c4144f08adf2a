package archive

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// Vector B of docs/protocol.md §5.6, made by
// `capgo bundle encrypt hello.bin <sha256> --key priv.pem --json`.
const (
	vecBSessionKey = "CjmjNLQUWi1rKb0PGKnbJQ==:DADRu47rFV/nce16RN4RXuablcZNPp4sDDQgUagwFMJlk7fi7ANIL+SnpT4lweq2c1G2FGMCW1Qvmrtxbi9gyl16hwmGIVu2pgyk8q+LYAbCRz4dbUf7ka0j4qpHNrScJ+pFJaYVlTjauGyfxLPotlIxJilIlCaxqLWRrfnIxpgVGhqtdMgShGhrGTeN8ZE25NReQ5oJR3Hv6/smIy56IC1vQkXtqki5E2J32yLhu3XZaAoyRQSUr2ijWwdH822+/xU6CMy9dJsZ55bfwBGbF8JHNHXK82APPo863tBDtM6BZp4C1CxT83gdJGbc/qdpQ1UmNhO2cT0DAaSoPsxbjA=="
	vecBIV         = "0a39a334b4145a2d6b29bd0f18a9db25"
	vecBKey        = "f51c0a3418f99b0bb6ff5d902a7c0286"
	vecBCipher     = "d8fa3d0c459e23431d84b91f10e6596f"
	vecBSHA256     = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	vecBChecksum   = "4756c1a7905aed72ab5a12a069e2acb7e64a3c7e6e73f6130e93aaa4e6ace0e6449e6bd30f4852479f210e8e80baee85603a16f1f8af57e9354c9d9e527cdbf31ed42f61d247bef36dd954e7cb931e96ba53530fba62690a4424f96e49ac59611a9d6dab9afc0dfcde57cdd4c097d10d5f07ed6ae2fcac87a98e6c8454ee2eb3c54bc11df4ff58a02663aadfd89cd545afc379cb52b5250577279f413c5def1462bc760f3c492356c8b36954b0213353f187d480cc65d5bba4f9ebc1a84fa67ca98c07f701c1ef35f2994d33d6f186d29aba20ae18b28c5c551670719586161d175f185b0a9ee25e1fe0ee46b8d1b88d1b69f2f34f7a26e6d4bf307c3477709e"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectorB(t *testing.T) {
	t.Parallel()
	pemData, err := os.ReadFile("testdata/vector-b.pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pemData)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := KeyID(pub), "MIIBCgKCAQEAwsCct5LR"; got != want {
		t.Errorf("KeyID = %q, want %q", got, want)
	}
	if diff := cmp.Diff(string(pemData), string(MarshalPublicKey(pub))); diff != "" {
		t.Errorf("MarshalPublicKey round trip (-want +got):\n%s", diff)
	}
	sk, err := UnwrapSessionKey(vecBSessionKey, pub)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sk.IV[:]); got != vecBIV {
		t.Errorf("iv = %s, want %s", got, vecBIV)
	}
	if got := hex.EncodeToString(sk.Key[:]); got != vecBKey {
		t.Errorf("key = %s, want %s", got, vecBKey)
	}
	plain, err := io.ReadAll(sk.NewDecrypter(bytes.NewReader(mustHex(t, vecBCipher))))
	if err != nil {
		t.Fatal(err)
	}
	if string(plain) != "hello" {
		t.Errorf("decrypted = %q, want %q", plain, "hello")
	}
	var enc bytes.Buffer
	w := sk.NewEncrypter(&enc)
	if _, err := io.WriteString(w, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(enc.Bytes()); got != vecBCipher {
		t.Errorf("encrypted = %s, want %s", got, vecBCipher)
	}
	sum, err := OpenChecksumV3(pub, vecBChecksum)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sum); got != vecBSHA256 {
		t.Errorf("OpenChecksumV3 = %s, want %s", got, vecBSHA256)
	}
	// The device also accepts base64 and upper-case hex.
	for _, form := range []string{strings.ToUpper(vecBChecksum), base64.StdEncoding.EncodeToString(mustHex(t, vecBChecksum))} {
		if err := VerifyChecksum(pub, form, mustHex(t, vecBSHA256)); err != nil {
			t.Errorf("VerifyChecksum(%.10s...) = %v", form, err)
		}
	}
	if err := VerifyChecksum(pub, vecBChecksum, make([]byte, 32)); !errors.Is(err, ErrChecksum) {
		t.Errorf("VerifyChecksum(wrong digest) = %v, want ErrChecksum", err)
	}
}

func TestWrapRoundTrip(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	sk, err := NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sk.Wrap(priv)
	if err != nil {
		t.Fatal(err)
	}
	iv, wrapped, _ := strings.Cut(s, ":")
	if b, _ := base64.StdEncoding.DecodeString(wrapped); len(b) != 256 {
		t.Errorf("wrapped key is %d bytes, want 256", len(b))
	}
	if b, _ := base64.StdEncoding.DecodeString(iv); len(b) != 16 {
		t.Errorf("iv is %d bytes, want 16", len(b))
	}
	again, _ := sk.Wrap(priv)
	if again != s {
		t.Errorf("Wrap is not deterministic: %q then %q", s, again)
	}
	got, err := UnwrapSessionKey(s, &priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*sk, *got); diff != "" {
		t.Errorf("UnwrapSessionKey (-want +got):\n%s", diff)
	}
	other, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnwrapSessionKey(s, &other.PublicKey); !errors.Is(err, ErrSessionKey) {
		t.Errorf("UnwrapSessionKey(other key) = %v, want ErrSessionKey", err)
	}
}

func TestChecksumV3RoundTrip(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	sum := sha256.Sum256([]byte("bundle"))
	c, err := ChecksumV3(priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 512 || strings.ToLower(c) != c {
		t.Errorf("ChecksumV3 = %q, want 512 lowercase hex", c)
	}
	got, err := OpenChecksumV3(&priv.PublicKey, c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sum[:]) {
		t.Errorf("OpenChecksumV3 = %x, want %x", got, sum)
	}
	if _, err := ChecksumV3(priv, sum[:16]); err == nil {
		t.Error("ChecksumV3(16 bytes) succeeded, want error")
	}
}

func TestOpenChecksumV3Errors(t *testing.T) {
	t.Parallel()
	pub := &sharedKey(t).PublicKey
	sum := sha256.Sum256(nil)
	good, err := ChecksumV3(sharedKey(t), sum[:])
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := privateEncrypt(sharedKey(t), make([]byte, 48)) // the CLI's legacy "V2" value
	if err != nil {
		t.Fatal(err)
	}
	// tampered differs from good in one hex digit, whatever good's digits are.
	flipped := byte('0')
	if good[100] == '0' {
		flipped = '1'
	}
	tampered := good[:100] + string(flipped) + good[101:]
	tests := []struct {
		name     string
		checksum string
	}{
		{"empty", ""},
		{"plain sha256", hex.EncodeToString(sum[:])},
		{"255 bytes", good[:510]},
		{"not base64", strings.Repeat("!", 344)},
		{"tampered", tampered},
		{"legacy v2 length", base64.StdEncoding.EncodeToString(legacy)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := OpenChecksumV3(pub, tc.checksum); !errors.Is(err, ErrChecksum) {
				t.Errorf("OpenChecksumV3(%.16q) = %v, want ErrChecksum", tc.checksum, err)
			}
		})
	}
}

func TestUnwrapSessionKeyErrors(t *testing.T) {
	t.Parallel()
	pub := &sharedKey(t).PublicKey
	iv := base64.StdEncoding.EncodeToString(make([]byte, 16))
	tests := []struct{ name, s string }{
		{"empty", ""},
		{"no colon", "abc"},
		{"empty iv", ":" + iv},
		{"empty key", iv + ":"},
		{"three parts", iv + ":" + iv + ":" + iv},
		{"short iv", base64.StdEncoding.EncodeToString(make([]byte, 8)) + ":" + strings.SplitN(vecBSessionKey, ":", 2)[1]},
		{"bad base64", "!!:??"},
		{"wrong key", vecBSessionKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := UnwrapSessionKey(tc.s, pub); !errors.Is(err, ErrSessionKey) {
				t.Errorf("UnwrapSessionKey(%.20q) = %v, want ErrSessionKey", tc.s, err)
			}
		})
	}
}

// TestEncrypterStreaming compares the streaming encrypter, fed in uneven pieces, with
// one-shot CBC, and decrypts back through a one-byte reader.
func TestEncrypterStreaming(t *testing.T) {
	t.Parallel()
	sk := &SessionKey{Key: [16]byte{1, 2, 3}, IV: [16]byte{9, 8, 7}}
	for _, size := range []int{0, 1, 15, 16, 17, 31, 32, 1000, encChunk - 1, encChunk, encChunk + 1, 3*encChunk + 7} {
		plain := make([]byte, size)
		if _, err := rand.Read(plain); err != nil {
			t.Fatal(err)
		}
		pad := 16 - size%16
		want := append(bytes.Clone(plain), bytes.Repeat([]byte{byte(pad)}, pad)...)
		b, _ := aes.NewCipher(sk.Key[:])
		cipher.NewCBCEncrypter(b, sk.IV[:]).CryptBlocks(want, want)

		var got bytes.Buffer
		w := sk.NewEncrypter(&got)
		for rest, step := plain, 1; len(rest) > 0; step = step*3 + 1 {
			n := min(step, len(rest))
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("size %d: streaming ciphertext differs from one-shot CBC", size)
		}
		back, err := io.ReadAll(sk.NewDecrypter(iotest.OneByteReader(bytes.NewReader(want))))
		if err != nil {
			t.Fatalf("size %d: decrypt: %v", size, err)
		}
		if !bytes.Equal(back, plain) {
			t.Fatalf("size %d: decrypt differs", size)
		}
	}
}

func TestDecrypterErrors(t *testing.T) {
	t.Parallel()
	sk := &SessionKey{Key: [16]byte{1}, IV: [16]byte{2}}
	var ct bytes.Buffer
	w := sk.NewEncrypter(&ct)
	if _, err := w.Write(bytes.Repeat([]byte("x"), 100)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wrong := &SessionKey{Key: [16]byte{3}, IV: [16]byte{2}}
	tests := []struct {
		name string
		key  *SessionKey
		data []byte
	}{
		{"empty", sk, nil},
		{"truncated to non-block", sk, ct.Bytes()[:ct.Len()-3]},
		{"truncated a block", sk, ct.Bytes()[:ct.Len()-16]},
		{"wrong key", wrong, ct.Bytes()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := io.ReadAll(tc.key.NewDecrypter(bytes.NewReader(tc.data))); !errors.Is(err, ErrPadding) {
				t.Errorf("decrypt = %v, want ErrPadding", err)
			}
		})
	}
}
