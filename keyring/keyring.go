package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// Format versions: the first byte of every sealed value and wrapped DEK.
const (
	sealedV1  = 0x01
	wrappedV1 = 0x01
)

const (
	nonceSize = 12 // AES-GCM standard 96-bit nonce
	tagSize   = 16

	// SealOverhead is how many bytes Seal adds to a plaintext: 1 version byte,
	// a 12-byte nonce and a 16-byte tag.
	SealOverhead = 1 + nonceSize + tagSize

	// maxSubjectIDLen bounds subject ids so associated data stays small; real ids
	// are UUIDs or ULIDs.
	maxSubjectIDLen = 256

	// dekAD prefixes the associated data of a wrapped DEK: "steward/dek/v1|" +
	// subject id + "|" + key id. Key ids never contain '|', so the last '|'
	// separates unambiguously.
	dekAD = "steward/dek/v1|"
)

// Keyring creates, opens and destroys per-subject data keys, and computes blind
// indexes and secret hashes. It holds key material: its String, GoString and
// LogValue never show it. A Keyring is safe for concurrent use.
type Keyring struct {
	// Now returns the current time for WrappedKey.CreatedAt. New sets it to
	// time.Now; tests may replace it before first use.
	Now func() time.Time

	store    KeyStore
	activeID string
	keks     map[string]cipher.AEAD // by KEK id, active and retired
	blind    *macPool               // blind-index key
	secret   *macPool               // HKDF-derived secret-hash key
	message  cipher.AEAD            // HKDF-derived outbox message key
	pool     keyPool                // keys made ahead for new subjects
}

// New returns a Keyring over the keys of kf and the wrapped DEKs of ks. kf must
// come from LoadKeyFile, LoadOrCreateKeyFile, GenerateKeyFile or Rotate; New
// panics on a zero KeyFile. Later changes to the key file need a new Keyring.
func New(kf *KeyFile, ks KeyStore) *Keyring {
	if len(kf.active.key) != KeySize || len(kf.blindKey) != KeySize {
		panic("keyring: New called with a KeyFile that was not loaded or generated")
	}
	r := &Keyring{
		Now:      time.Now,
		store:    ks,
		activeID: kf.active.id,
		keks:     make(map[string]cipher.AEAD, 1+len(kf.retired)),
		blind:    newMACPool(kf.blindKey),
		secret:   newMACPool(deriveSecretKey(kf.blindKey)),
		message:  mustGCM(deriveMessageKey(kf.blindKey)),
	}
	for _, k := range kf.keks() {
		r.keks[k.id] = mustGCM(k.key)
	}
	return r
}

// String describes r by its active KEK id only.
func (r *Keyring) String() string {
	return fmt.Sprintf("keyring.Keyring{active_kek: %s, keks: %d, keys: REDACTED}", r.activeID, len(r.keks))
}

// GoString is String, so that %#v does not print key material either.
func (r *Keyring) GoString() string { return r.String() }

// LogValue implements slog.LogValuer without key material.
func (r *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("active_kek", r.activeID), slog.Int("keks", len(r.keks)))
}

// CreateSubjectKey makes a random 32-byte DEK for the subject, wraps it under the
// active KEK and stores it, returning its key id ("dek-" and 26 base32 characters).
// It returns EINVALID for an empty subject id, one longer than 256 bytes or one
// containing a NUL byte, ECONFLICT if the subject has or had a key, and the
// store's errors otherwise.
func (r *Keyring) CreateSubjectKey(ctx context.Context, subjectID string) (keyID string, err error) {
	if err := validSubjectID(subjectID); err != nil {
		return "", err
	}
	k := r.wrapNew(subjectID)
	if err := r.store.PutKey(ctx, k); err != nil {
		return "", fmt.Errorf("keyring: store key for subject %s: %w", subjectID, err)
	}
	return k.KeyID, nil
}

// wrapNew makes a random 32-byte DEK for subjectID and returns it wrapped under
// the active KEK; the DEK itself is wiped.
func (r *Keyring) wrapNew(subjectID string) WrappedKey {
	dek := randomKey()
	defer clear(dek)
	keyID := "dek-" + randomID(16)
	out := make([]byte, 1+nonceSize, 1+nonceSize+KeySize+tagSize)
	out[0] = wrappedV1
	rand.Read(out[1 : 1+nonceSize])
	out = r.keks[r.activeID].Seal(out, out[1:1+nonceSize], dek, wrapAD(subjectID, keyID))
	return WrappedKey{SubjectID: subjectID, KeyID: keyID, KEKID: r.activeID, Wrapped: out, CreatedAt: r.Now().UTC()}
}

// SubjectKey fetches and unwraps the subject's DEK and returns a handle that
// seals and opens that subject's field values. Handles are meant to live for one
// request: one kept longer still opens values after DestroySubjectKey. It returns
// EINVALID for a bad subject id, ENOTFOUND if the subject has no key, EGONE if
// the key was destroyed, and EINTERNAL if the wrapped key names an unknown KEK or
// fails authentication (tampered, or moved from another subject).
func (r *Keyring) SubjectKey(ctx context.Context, subjectID string) (*SubjectKey, error) {
	if err := validSubjectID(subjectID); err != nil {
		return nil, err
	}
	k, err := r.store.GetKey(ctx, subjectID)
	if err != nil {
		return nil, fmt.Errorf("keyring: get key for subject %s: %w", subjectID, err)
	}
	if k.SubjectID != subjectID {
		return nil, internal(fmt.Errorf("keyring: store returned key %s of subject %s for subject %s", k.KeyID, k.SubjectID, subjectID))
	}
	return r.unwrap(k)
}

// unwrap opens k under its KEK: EINTERNAL if the KEK is not in the key file or k
// fails authentication.
func (r *Keyring) unwrap(k WrappedKey) (*SubjectKey, error) {
	aead, ok := r.keks[k.KEKID]
	if !ok {
		return nil, internal(fmt.Errorf("keyring: key %s of subject %s is wrapped under kek %s, which is not in the key file", k.KeyID, k.SubjectID, k.KEKID))
	}
	if len(k.Wrapped) != 1+nonceSize+KeySize+tagSize || k.Wrapped[0] != wrappedV1 {
		return nil, internal(fmt.Errorf("keyring: key %s of subject %s: unknown wrapped key format", k.KeyID, k.SubjectID))
	}
	dek, err := aead.Open(nil, k.Wrapped[1:1+nonceSize], k.Wrapped[1+nonceSize:], wrapAD(k.SubjectID, k.KeyID))
	if err != nil {
		return nil, internal(fmt.Errorf("keyring: unwrap key %s of subject %s under kek %s: %w", k.KeyID, k.SubjectID, k.KEKID, err))
	}
	defer clear(dek)
	return &SubjectKey{subjectID: k.SubjectID, keyID: k.KeyID, aead: mustGCM(dek)}, nil
}

// DestroySubjectKey crypto-shreds the subject: the store deletes the wrapped DEK
// for good, so every value sealed under it, in any copy of the data store, can no
// longer be opened (policy §6 deletion, PIPL Art. 47). It returns the destroyed
// key ids, for the audit entry. Calling it again returns the same ids. It returns
// ENOTFOUND if the subject never had a key.
func (r *Keyring) DestroySubjectKey(ctx context.Context, subjectID string) ([]string, error) {
	ids, err := r.store.DestroyKey(ctx, subjectID)
	if err != nil {
		return nil, fmt.Errorf("keyring: destroy key for subject %s: %w", subjectID, err)
	}
	return ids, nil
}

// SubjectKey seals and opens one subject's field values under that subject's
// DEK. It is safe for concurrent use. Its String, GoString and LogValue show ids
// only.
type SubjectKey struct {
	subjectID string
	keyID     string
	aead      cipher.AEAD
}

// KeyID returns the id of the subject's DEK.
func (k *SubjectKey) KeyID() string { return k.keyID }

// SubjectID returns the id of the subject the key belongs to.
func (k *SubjectKey) SubjectID() string { return k.subjectID }

// String describes k by ids only.
func (k *SubjectKey) String() string {
	return fmt.Sprintf("keyring.SubjectKey{subject: %s, key: %s}", k.subjectID, k.keyID)
}

// GoString is String, so that %#v does not print key material either.
func (k *SubjectKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with ids only.
func (k *SubjectKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("subject", k.subjectID), slog.String("key", k.keyID))
}

// Seal encrypts plaintext as the value of field for this subject and returns
// 0x01 || 12-byte random nonce || AES-256-GCM ciphertext and tag, that is
// len(plaintext) + SealOverhead bytes. The subject id and field name are bound as
// associated data, so the value opens only for the same subject and field. It
// returns EINVALID for an empty field name or one containing a NUL byte.
func (k *SubjectKey) Seal(field string, plaintext []byte) ([]byte, error) {
	if err := validField(field); err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, len(plaintext)+SealOverhead)
	out[0] = sealedV1
	rand.Read(out[1 : 1+nonceSize])
	return k.aead.Seal(out, out[1:1+nonceSize], plaintext, k.fieldAD(field)), nil
}

// Open decrypts a value Seal returned for the same subject and field. It returns
// EINVALID for a bad field name and EINTERNAL if the value is truncated, has an
// unknown version or fails authentication (altered, or sealed for another subject,
// field or key); the error names the subject id and field, never the data.
func (k *SubjectKey) Open(field string, ciphertext []byte) ([]byte, error) {
	if err := validField(field); err != nil {
		return nil, err
	}
	if len(ciphertext) < SealOverhead {
		return nil, internal(fmt.Errorf("keyring: open %s of subject %s: sealed value too short", field, k.subjectID))
	}
	if ciphertext[0] != sealedV1 {
		return nil, internal(fmt.Errorf("keyring: open %s of subject %s: unknown sealed value version %d", field, k.subjectID, ciphertext[0]))
	}
	pt, err := k.aead.Open(nil, ciphertext[1:1+nonceSize], ciphertext[1+nonceSize:], k.fieldAD(field))
	if err != nil {
		return nil, internal(fmt.Errorf("keyring: open %s of subject %s with key %s: %w", field, k.subjectID, k.keyID, err))
	}
	return pt, nil
}

// fieldAD is subject id || 0x00 || field; neither may contain a NUL byte, so the
// pair is unambiguous.
func (k *SubjectKey) fieldAD(field string) []byte {
	ad := make([]byte, 0, len(k.subjectID)+1+len(field))
	ad = append(ad, k.subjectID...)
	ad = append(ad, 0)
	return append(ad, field...)
}

func wrapAD(subjectID, keyID string) []byte {
	ad := make([]byte, 0, len(dekAD)+len(subjectID)+1+len(keyID))
	ad = append(ad, dekAD...)
	ad = append(ad, subjectID...)
	ad = append(ad, '|')
	return append(ad, keyID...)
}

func validSubjectID(id string) error {
	if id == "" || len(id) > maxSubjectIDLen || strings.IndexByte(id, 0) >= 0 {
		return steward.Errorf(steward.EINVALID, "Subject id is empty, too long or contains a NUL byte.")
	}
	return nil
}

func validField(field string) error {
	if field == "" || strings.IndexByte(field, 0) >= 0 {
		return steward.Errorf(steward.EINVALID, "Field name is empty or contains a NUL byte.")
	}
	return nil
}

// internal wraps err as EINTERNAL with no user-facing message, so clients see the
// generic text and only the log sees the ids in err.
func internal(err error) error {
	return steward.WrapError(steward.EINTERNAL, "", err)
}

// mustGCM returns AES-256-GCM under key, which must be KeySize bytes; the
// key schedule is copied, so the caller may clear key afterwards.
func mustGCM(key []byte) cipher.AEAD {
	if len(key) != KeySize {
		panic(errors.New("keyring: key is not 32 bytes"))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}
