package keyring

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
)

func TestSigningKeyDerivation(t *testing.T) {
	r, _, kf := newTestKeyring(t)
	pub := r.PublicKey()
	if len(pub) != ed25519.PublicKeySize {
		t.Fatalf("public key has %d bytes, want 32", len(pub))
	}
	// The key file alone gives the same key: certificates verify offline.
	if !bytes.Equal(kf.SigningKey(), r.SigningKey()) {
		t.Fatal("KeyFile.SigningKey differs from Keyring.SigningKey")
	}
	msg := []byte(`{"schema":"steward.deletion-certificate/v1"}`)
	sig := r.Sign(msg)
	if !ed25519.Verify(pub, msg, sig) {
		t.Fatal("signature does not verify under PublicKey")
	}
	if ed25519.Verify(pub, append(msg, ' '), sig) {
		t.Fatal("signature verifies over altered bytes")
	}
	if id := r.SigningKeyID(); id != steward.SigningKeyID(pub) || !strings.HasPrefix(id, "ed25519-") || len(id) != len("ed25519-")+16 {
		t.Errorf("SigningKeyID = %q", id)
	}
	// The signing key is none of the file's keys.
	for _, k := range [][]byte{kf.blindKey, kf.active.key} {
		if bytes.Equal(r.SigningKey().Seed(), k) {
			t.Error("signing seed equals a key file key")
		}
	}
	// Another key file gives another key.
	r2, _, _ := newTestKeyring(t)
	if bytes.Equal(r2.PublicKey(), pub) {
		t.Error("two key files give the same signing key")
	}
}

func TestSigningKeySurvivesRotationAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steward.key")
	kf, _, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(New(kf, NewMemoryKeyStore()).PublicKey())
	rotated, err := kf.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, rotated); err != nil {
		t.Fatal(err)
	}
	reloaded, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(New(reloaded, NewMemoryKeyStore()).PublicKey()); got != want {
		t.Errorf("public key after rotation and reload = %s, want %s", got, want)
	}
}

// The derivation is fixed: a known blind-index key gives a known public key, so a
// change to the labels, which would orphan every certificate, fails here.
func TestSigningKeyKnownAnswer(t *testing.T) {
	kf := &KeyFile{blindKey: bytes.Repeat([]byte{0x42}, KeySize)}
	got := hex.EncodeToString(kf.SigningKey().Public().(ed25519.PublicKey))
	const want = "e5d1f68f77772567ceea172e3841cf4b69018e9a02ab13c469e97b9b0850587b" // computed independently with Python's hmac, hashlib and cryptography
	if got != want {
		t.Errorf("public key for blind key 0x42… = %s, want %s", got, want)
	}
}
