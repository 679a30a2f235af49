package keyring

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"github.com/stewardhq/steward"
)

const messageKeyInfo = "steward/outbox-message/v1"

func deriveMessageKey(blindKey []byte) []byte {
	k, err := hkdf.Key(sha256.New, blindKey, nil, messageKeyInfo, KeySize)
	if err != nil {
		panic(err)
	}
	return k
}

// SealMessage seals an outbox payload (a recipient address and a body, which hold
// PI) under a key derived from the key file, so that a queued message is no more
// readable in the database than a field. label binds the ciphertext to its message
// id. The layout is version byte || 12-byte nonce || AES-256-GCM output.
func (r *Keyring) SealMessage(label string, plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+tagSize)
	out[0] = sealedV1
	if _, err := rand.Read(out[1 : 1+nonceSize]); err != nil {
		return nil, fmt.Errorf("keyring: nonce: %w", err)
	}
	return r.message.Seal(out, out[1:1+nonceSize], plaintext, []byte("steward/outbox\x00"+label)), nil
}

// OpenMessage opens what SealMessage sealed under the same label. It returns
// EINTERNAL when the ciphertext was altered, moved to another label or sealed
// under another key file.
func (r *Keyring) OpenMessage(label string, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < 1+nonceSize+tagSize || ciphertext[0] != sealedV1 {
		return nil, &steward.Error{Code: steward.EINTERNAL, Err: fmt.Errorf("keyring: message %s: malformed ciphertext", label)}
	}
	pt, err := r.message.Open(nil, ciphertext[1:1+nonceSize], ciphertext[1+nonceSize:], []byte("steward/outbox\x00"+label))
	if err != nil {
		return nil, &steward.Error{Code: steward.EINTERNAL, Err: fmt.Errorf("keyring: message %s: %w", label, err)}
	}
	return pt, nil
}

// Steward adapts a Keyring to the steward.Keys interface.
type Steward struct{ *Keyring }

var _ steward.Keys = Steward{}

// SubjectKey returns the subject's data key as a steward.SubjectKey.
func (s Steward) SubjectKey(ctx context.Context, subjectID string) (steward.SubjectKey, error) {
	k, err := s.Keyring.SubjectKey(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// NewSubjectKey returns a new subject's id and its stored data key.
func (s Steward) NewSubjectKey(ctx context.Context) (string, steward.SubjectKey, error) {
	k, err := s.Keyring.NewSubjectKey(ctx)
	if err != nil {
		return "", nil, err
	}
	return k.SubjectID(), k, nil
}
