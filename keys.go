package steward

import "context"

// Keys seals PI and derives lookups; the keyring package implements it.
type Keys interface {
	// CreateSubjectKey makes and stores the subject's data key; ECONFLICT if it has or had one.
	CreateSubjectKey(ctx context.Context, subjectID string) (keyID string, err error)
	// NewSubjectKey returns the id of a new subject (a UUIDv7, as NewID) and its
	// data key, already stored. Keys are made ahead in batches, so a registration
	// usually waits for no key-store write.
	NewSubjectKey(ctx context.Context) (subjectID string, key SubjectKey, err error)
	// SubjectKey returns the subject's data key: ENOTFOUND if none, EGONE if destroyed.
	SubjectKey(ctx context.Context, subjectID string) (SubjectKey, error)
	// DestroySubjectKey crypto-shreds the subject's data, returning the key ids destroyed.
	DestroySubjectKey(ctx context.Context, subjectID string) ([]string, error)
	// BlindIndex returns a keyed HMAC-SHA256 (32 bytes) of value, domain-separated by kind.
	BlindIndex(kind, value string) []byte
	// HashSecret returns the keyed hash (32 bytes) at rest of a code or token.
	HashSecret(kind, secret string) []byte
	// SealMessage and OpenMessage protect outbox payloads, bound to label.
	SealMessage(label string, plaintext []byte) ([]byte, error)
	OpenMessage(label string, ciphertext []byte) ([]byte, error)
}

// SubjectKey seals and opens one subject's field values (AES-256-GCM, associated
// data = subject id and field name). Keep it for one operation only.
type SubjectKey interface {
	Seal(field string, plaintext []byte) ([]byte, error)
	Open(field string, ciphertext []byte) ([]byte, error)
	KeyID() string
}

// MessagePayload is the sealed content of an outbox message.
type MessagePayload struct {
	To      string            `json:"to"` // E.164 number, e-mail address or webhook URL
	Body    string            `json:"body"`
	Subject string            `json:"subject,omitempty"` // e-mail subject line
	Headers map[string]string `json:"headers,omitempty"` // webhook headers (signature, idempotency key)
}
