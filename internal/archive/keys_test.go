package archive

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKeyRoundTrip(t *testing.T) {
	t.Parallel()
	k := sharedKey(t)
	privPEM := MarshalPrivateKey(k)
	if !strings.HasPrefix(string(privPEM), "-----BEGIN RSA PRIVATE KEY-----\n") {
		t.Errorf("MarshalPrivateKey starts %q, want PKCS#1 header", privPEM[:32])
	}
	pubPEM := MarshalPublicKey(&k.PublicKey)
	if !strings.HasPrefix(string(pubPEM), "-----BEGIN RSA PUBLIC KEY-----\n") || !strings.HasSuffix(string(pubPEM), "-----END RSA PUBLIC KEY-----\n") {
		t.Errorf("MarshalPublicKey = %q, want PKCS#1 PEM with trailing newline", pubPEM)
	}
	got, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(k) {
		t.Error("ParsePrivateKey(MarshalPrivateKey(k)) != k")
	}
	gotPub, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !gotPub.Equal(&k.PublicKey) {
		t.Error("ParsePublicKey(MarshalPublicKey(k)) != k")
	}
	if k.E != 65537 || k.N.BitLen() != 2048 {
		t.Errorf("GenerateKey: e=%d bits=%d, want 65537, 2048", k.E, k.N.BitLen())
	}
	id := KeyID(&k.PublicKey)
	if len(id) != 20 || !strings.HasPrefix(id, "MIIBCgKCAQEA") {
		t.Errorf("KeyID = %q, want 20 chars starting MIIBCgKCAQEA", id)
	}
}

func TestParseKeyErrors(t *testing.T) {
	t.Parallel()
	k := sharedKey(t)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	big, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	tests := []struct {
		name    string
		pem     []byte
		public  bool
		mention string // part of the message that tells the user what to do
	}{
		{"pkcs8 private", enc("PRIVATE KEY", pkcs8), false, "openssl rsa"},
		{"1024-bit private", MarshalPrivateKey(small), false, "2048"},
		{"4096-bit private", MarshalPrivateKey(big), false, "2048"},
		{"garbage", []byte("not a key"), false, "no PEM block"},
		{"ec private", enc("EC PRIVATE KEY", ecDER), false, "EC PRIVATE KEY"},
		{"public given as private", MarshalPublicKey(&k.PublicKey), false, "public key"},
		{"pkcs1 body broken", enc("RSA PRIVATE KEY", []byte{1, 2, 3}), false, "PKCS#1"},
		{"spki public", enc("PUBLIC KEY", spki), true, "RSAPublicKey_out"},
		{"1024-bit public", MarshalPublicKey(&small.PublicKey), true, "2048"},
		{"4096-bit public", MarshalPublicKey(&big.PublicKey), true, "2048"},
		{"private given as public", MarshalPrivateKey(k), true, "private key"},
		{"garbage public", []byte("-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n"), true, "PKCS#1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tc.public {
				_, err = ParsePublicKey(tc.pem)
			} else {
				_, err = ParsePrivateKey(tc.pem)
			}
			if !errors.Is(err, ErrKeyFormat) {
				t.Fatalf("parse = %v, want ErrKeyFormat", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestConfigSnippet(t *testing.T) {
	t.Parallel()
	k := sharedKey(t)
	s := ConfigSnippet(&k.PublicKey, "https://relay.example.com/")
	var got struct {
		Plugins struct {
			CapacitorUpdater map[string]string
		}
	}
	if err := json.Unmarshal([]byte(s), &got); err != nil {
		t.Fatalf("snippet is not JSON: %v\n%s", err, s)
	}
	want := map[string]string{
		"publicKey":  string(MarshalPublicKey(&k.PublicKey)),
		"updateUrl":  "https://relay.example.com/updates",
		"statsUrl":   "https://relay.example.com/stats",
		"channelUrl": "https://relay.example.com/channel_self",
	}
	if diff := cmp.Diff(want, got.Plugins.CapacitorUpdater); diff != "" {
		t.Errorf("ConfigSnippet (-want +got):\n%s", diff)
	}
}
