package keyring

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"

	"github.com/stewardhq/steward"
)

// The certificate signing key is derived, never stored: HKDF-SHA256 over an
// HMAC-SHA256 of a reserved label under the key file's blind-index key. The
// blind-index key is the one key a rotation keeps, so certificates signed before a
// `keys rotate` still verify with the key file afterwards.
const (
	// signingKind is the reserved blind-index kind whose HMAC is the HKDF input.
	// No blind index may use it; Steward's kinds are "phone", "wechat" and "contact".
	signingKind  = "steward/certificate-signing"
	signingValue = "v1"
	// signingInfo labels the HKDF expansion; changing it changes the key, and
	// certificates signed before would no longer verify with the key file.
	signingInfo = "steward/certificate-signing/ed25519/v1"
)

// signingKeyFromIKM expands ikm, the HMAC of the reserved label, into an Ed25519 key.
func signingKeyFromIKM(ikm []byte) ed25519.PrivateKey {
	seed, err := hkdf.Key(sha256.New, ikm, nil, signingInfo, ed25519.SeedSize)
	if err != nil {
		panic(err) // only for lengths beyond 255 hash sizes
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed)
}

// SigningKey returns the Ed25519 key that signs deletion certificates, derived
// from the key file's blind-index key (see Keyring.SigningKey). The
// `steward certificate verify` command uses it to check certificates offline,
// with no database.
func (kf *KeyFile) SigningKey() ed25519.PrivateKey {
	m := hmac.New(sha256.New, kf.blindKey)
	m.Write([]byte(signingKind))
	m.Write([]byte{0})
	m.Write([]byte(signingValue))
	ikm := m.Sum(nil)
	defer clear(ikm)
	return signingKeyFromIKM(ikm)
}

// SigningKey returns the Ed25519 key that signs deletion certificates: HKDF-SHA256
// (info "steward/certificate-signing/ed25519/v1") of the HMAC-SHA256, under the
// key file's blind-index key, of a reserved label. The same key file always gives
// the same key, KEK rotations included; KeyFile.SigningKey returns the same key.
// It is derived on each call (about 25 µs), so no copy outlives its use.
func (r *Keyring) SigningKey() ed25519.PrivateKey {
	ikm := r.blind.sum(signingKind, signingValue)
	defer clear(ikm)
	return signingKeyFromIKM(ikm)
}

// PublicKey returns the public half of SigningKey, 32 bytes, which verifies
// certificates; it may be published.
func (r *Keyring) PublicKey() ed25519.PublicKey {
	return r.SigningKey().Public().(ed25519.PublicKey)
}

// Sign returns the 64-byte Ed25519 signature of msg under SigningKey.
func (r *Keyring) Sign(msg []byte) []byte {
	k := r.SigningKey()
	defer clear(k)
	return ed25519.Sign(k, msg)
}

// SigningKeyID returns the id of the signing key, steward.SigningKeyID of its
// public key, such as "ed25519-3f9a0c…".
func (r *Keyring) SigningKeyID() string { return steward.SigningKeyID(r.PublicKey()) }

var _ steward.CertificateSigner = (*Keyring)(nil)
