package keyring

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/stewardhq/steward"
)

// WrappedKey is one subject's data key as a KeyStore keeps it: the DEK sealed
// under the KEK named by KEKID. Wrapped is 0x01 || 12-byte nonce || 48 bytes of
// AES-256-GCM output (a 32-byte DEK and its 16-byte tag), 61 bytes in all; it is
// useless without the key file. A destroyed key keeps its ids and CreatedAt but
// has no Wrapped bytes.
type WrappedKey struct {
	SubjectID string
	KeyID     string // "dek-…", random; bound into the wrapping's associated data
	KEKID     string // the KEK that wrapped it, from the key file
	Wrapped   []byte
	CreatedAt time.Time // UTC
}

// KeyStore keeps wrapped data keys, in a database separate from the data so that
// destroying a key erases the subject from every copy of the data store. Only a
// Keyring calls it. Implementations must be safe for concurrent use.
type KeyStore interface {
	// PutKey stores k. It returns ECONFLICT if the subject already has a key,
	// destroyed or not: a shredded subject is never given a fresh key.
	PutKey(ctx context.Context, k WrappedKey) error

	// PutKeys stores keys in one transaction: all of them or, on any error, none.
	// It returns ECONFLICT if any of their subjects has or had a key.
	PutKeys(ctx context.Context, keys []WrappedKey) error

	// GetKey returns the subject's key. It returns ENOTFOUND if the subject never
	// had one and EGONE if it was destroyed.
	GetKey(ctx context.Context, subjectID string) (WrappedKey, error)

	// DestroyKey removes the subject's wrapped key bytes for good (no soft delete),
	// keeping a tombstone with the ids, and returns the destroyed key ids. Called
	// again it returns the same ids; it returns ENOTFOUND if the subject never had
	// a key.
	DestroyKey(ctx context.Context, subjectID string) (keyIDs []string, err error)
}

// MemoryKeyStore is a KeyStore in memory, for tests. It is safe for concurrent use.
type MemoryKeyStore struct {
	mu   sync.Mutex
	keys map[string]WrappedKey // by subject id; Wrapped is nil once destroyed
}

// NewMemoryKeyStore returns an empty MemoryKeyStore.
func NewMemoryKeyStore() *MemoryKeyStore {
	return &MemoryKeyStore{keys: map[string]WrappedKey{}}
}

// PutKey implements KeyStore. It returns EINVALID if k has no subject id, key id
// or wrapped bytes, and ECONFLICT if the subject has or had a key.
func (s *MemoryKeyStore) PutKey(ctx context.Context, k WrappedKey) error {
	return s.PutKeys(ctx, []WrappedKey{k})
}

// PutKeys implements KeyStore.
func (s *MemoryKeyStore) PutKeys(ctx context.Context, keys []WrappedKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, k := range keys {
		if k.SubjectID == "" || k.KeyID == "" || k.KEKID == "" || len(k.Wrapped) == 0 {
			return steward.Errorf(steward.EINVALID, "Wrapped key is incomplete.")
		}
		if _, ok := s.keys[k.SubjectID]; ok || seen[k.SubjectID] {
			return steward.WrapError(steward.ECONFLICT, "The subject already has a data key.",
				fmt.Errorf("keyring: memory store: subject %s has a key", k.SubjectID))
		}
		seen[k.SubjectID] = true
	}
	for _, k := range keys {
		k.Wrapped = append([]byte(nil), k.Wrapped...)
		s.keys[k.SubjectID] = k
	}
	return nil
}

// GetKey implements KeyStore.
func (s *MemoryKeyStore) GetKey(ctx context.Context, subjectID string) (WrappedKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[subjectID]
	switch {
	case !ok:
		return WrappedKey{}, steward.WrapError(steward.ENOTFOUND, "The subject has no data key.",
			fmt.Errorf("keyring: memory store: no key for subject %s", subjectID))
	case k.Wrapped == nil:
		return WrappedKey{}, steward.WrapError(steward.EGONE, "The subject's data has been erased.",
			fmt.Errorf("keyring: memory store: key %s of subject %s was destroyed", k.KeyID, subjectID))
	}
	k.Wrapped = append([]byte(nil), k.Wrapped...)
	return k, nil
}

// DestroyKey implements KeyStore.
func (s *MemoryKeyStore) DestroyKey(ctx context.Context, subjectID string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[subjectID]
	if !ok {
		return nil, steward.WrapError(steward.ENOTFOUND, "The subject has no data key.",
			fmt.Errorf("keyring: memory store: no key for subject %s", subjectID))
	}
	clear(k.Wrapped)
	k.Wrapped = nil
	s.keys[subjectID] = k
	return []string{k.KeyID}, nil
}
