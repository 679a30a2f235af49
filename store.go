package steward

import (
	"context"
	"time"
)

// Store holds Steward's state: subjects, sealed fields, consents, codes, sessions,
// tokens, the audit trail and the outbox. It holds no plaintext PI: field values
// arrive sealed, lookups use blind indexes. The sql package implements it for
// SQLite and PostgreSQL.
type Store interface {
	// Read runs fn in a read-only transaction.
	Read(ctx context.Context, fn func(Tx) error) error
	// Write runs fn in a read-write transaction. fn's writes are atomic: all or none.
	// Writes of concurrent callers may share one database commit (group commit),
	// each isolated by a savepoint, so an error in one fn never undoes another's.
	// fn may run more than once only if it returned an error the store retries.
	Write(ctx context.Context, fn func(Tx) error) error
	// Audit appends entries to the access log: the hash chain, kept apart from the
	// data, of events that change nothing else (reads, exports, refused reads).
	// Concurrent appends share a commit. The entries are durable when it returns
	// (as durable as the store's commits), in the order given and after every
	// entry whose Audit returned before this call began; Seq, PrevHash and Hash are
	// assigned when they join the chain, which may be after Audit returns. It sets
	// a missing ID.
	Audit(ctx context.Context, entries ...*AuditEntry) error
	// PurposeSnapshot answers as Tx.PurposeSnapshot in a read transaction of its
	// own; a store may answer from memory while provably nothing was committed
	// since it read the same snapshot (the SQLite store does). The snapshot may be
	// shared and must not be modified.
	PurposeSnapshot(ctx context.Context, subjectID, purpose string, fields []string) (*PurposeSnapshot, error)
	// ReadAccess runs fn in a read-only transaction on the access log; only
	// ScanAudit, AuditBySubject and AuditHead may be called on its Tx. Every entry
	// this Store's Audit accepted before the call is in it.
	ReadAccess(ctx context.Context, fn func(Tx) error) error
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// Instance returns the id of the process this Store serves, which owns the
	// outbox messages the process queues (OutboxMessage.ClaimFor) and claims the
	// ones it delivers: a random id per `steward serve` process, "" for a store
	// of a command-line tool, whose messages are queued unclaimed.
	Instance() string
	Close() error
}

// PurposeSnapshot is what Tx.PurposeSnapshot reads.
type PurposeSnapshot struct {
	Status  string
	Consent *ConsentState // nil when no consent was ever recorded for the purpose
	Holds   int           // legal holds on the subject not released
	Fields  []SealedField
}

// SealedField is one field value sealed under its subject's data key.
type SealedField struct {
	SubjectID string
	Field     string
	Value     []byte // keyring ciphertext; associated data binds it to SubjectID and Field
	UpdatedAt time.Time
}

// One-time code purposes: what a code may be spent on.
const (
	CodeRegister = "register" // create an account for a phone number
	CodeSignIn   = "sign_in"  // sign in to an existing account
	CodeCancel   = "cancel"   // confirm account cancellation (policy §6)
	CodeVerify   = "verify"   // verify identity for a rights request (policy §6)
)

// OneTimeCode is a 6-digit code sent by SMS. Only its keyed hash is stored.
type OneTimeCode struct {
	ID         string
	Purpose    string
	Target     []byte // blind index of the phone number the code was sent to
	SubjectID  string // for codes bound to an account (cancel, verify); "" otherwise
	CodeHash   []byte
	Attempts   int
	Client     string // keyed hash of the client address that asked for it
	CreatedAt  time.Time
	ExpiresAt  time.Time
	ConsumedAt time.Time
}

// Session is a subject's signed-in device. Only the token's keyed hash is stored.
type Session struct {
	ID        string
	TokenHash []byte
	SubjectID string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time
}

// Token kinds.
const (
	TokenStaff = "staff"
	TokenApp   = "app"
)

// APIToken is a bearer token for staff or a client app, created with
// `steward token create`. Only its keyed hash is stored.
type APIToken struct {
	ID        string    `json:"id"`
	TokenHash []byte    `json:"-"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name"` // staff member's handle or app id
	AppID     string    `json:"app_id,omitempty"`
	Roles     []string  `json:"roles,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// OutboxMessage is a message waiting for delivery. Its payload (recipient address
// and body, which hold PI) is sealed under the outbox key and wiped on delivery.
//
// A message is delivered by the process holding its claim: ClaimedBy, a Store's
// Instance, until ClaimedUntil. Several processes may share one database; a
// worker delivers only what it holds a live claim on, and takes a message whose
// claim is free (ClaimedUntil zero) or has run out with Tx.ClaimMessages first,
// so that each message goes out once.
type OutboxMessage struct {
	ID            string
	Channel       string // "sms", "email", "push", "webhook"
	SubjectID     string
	Kind          string // what the message is: "otp", "notice", "reminder"…
	Payload       []byte
	Attempts      int
	CreatedAt     time.Time
	NextAttemptAt time.Time
	DeliveredAt   time.Time
	LastError     string
	ClaimedBy     string    // instance id of the process that may deliver it; "" for none
	ClaimedUntil  time.Time // when the claim runs out; zero for none
}

// OutboxLease is how long an outbox claim lasts past the moment its holder means
// to attempt the message: a message stays with the process that queued or claimed
// it for this long after it falls due, then any process may take it over (the
// holder stopped or is stuck). It bounds how late a message of a stopped process
// goes out; it must exceed any one delivery attempt (the webhook sink gives up
// after 10 s) and the clock difference between nodes.
const OutboxLease = 60 * time.Second

// ClaimFor claims m for the process instance, as a process does for the messages
// it queues, so that it delivers them without claiming them first: until
// m.NextAttemptAt plus OutboxLease. An empty instance (a command-line tool, which
// delivers nothing) leaves m unclaimed, for any process to take.
func (m *OutboxMessage) ClaimFor(instance string) {
	if instance == "" {
		m.ClaimedBy, m.ClaimedUntil = "", time.Time{}
		return
	}
	m.ClaimedBy, m.ClaimedUntil = instance, m.NextAttemptAt.Add(OutboxLease)
}

// Tx is one transaction on the Store. Methods return ENOTFOUND when a looked-up
// row does not exist, ECONFLICT on a uniqueness violation, and wrap driver errors
// as EINTERNAL.
type Tx interface {
	RecipientTx // recipient.go: recipients, disclosures, notices, legal holds, certificates

	RequestTx // requests_service.go: rights requests, reminders, automated decisions

	ShieldTx // shield.go: address-book hashes, tracked links, retention

	CreateSubject(ctx context.Context, s *Subject) error
	GetSubject(ctx context.Context, id string) (*Subject, error)
	// CancelSubject turns the subject into a tombstone: status cancelled, no key id.
	CancelSubject(ctx context.Context, id string, at time.Time) error
	// PendingKeyDestructions returns up to limit ids of tombstones whose data key
	// is not yet recorded as destroyed (MarkKeyDestroyed), oldest cancellation first.
	PendingKeyDestructions(ctx context.Context, limit int) ([]string, error)
	// MarkKeyDestroyed records that the tombstone's data key was destroyed in the
	// key store; ENOTFOUND if id is not a tombstone.
	MarkKeyDestroyed(ctx context.Context, id string, at time.Time) error

	// PutIndex records a blind index (kind "phone", "wechat") for a subject; ECONFLICT if taken.
	PutIndex(ctx context.Context, kind string, value []byte, subjectID string) error
	LookupIndex(ctx context.Context, kind string, value []byte) (subjectID string, err error)
	DeleteIndexes(ctx context.Context, subjectID string) error

	// PurposeSnapshot reads in one statement what a purpose-bound read needs: the
	// subject's status, its consent for purpose, how many legal holds are not
	// released, and the named fields. ENOTFOUND if there is no such subject.
	PurposeSnapshot(ctx context.Context, subjectID, purpose string, fields []string) (*PurposeSnapshot, error)

	PutFields(ctx context.Context, fields []SealedField) error
	// GetFields returns the subject's fields named, or all of them if names is nil.
	GetFields(ctx context.Context, subjectID string, names []string) ([]SealedField, error)
	// DeleteFields deletes the subject's fields named; none when names is empty.
	DeleteFields(ctx context.Context, subjectID string, names []string) error
	// DeleteAllFields deletes every field of the subject (erasure).
	DeleteAllFields(ctx context.Context, subjectID string) error

	AddConsentEvent(ctx context.Context, e *ConsentEvent) error
	// AddConsentEvents is AddConsentEvent for several events at once, in order.
	AddConsentEvents(ctx context.Context, events []*ConsentEvent) error
	ConsentState(ctx context.Context, subjectID, purpose string) (*ConsentState, error)
	ConsentStates(ctx context.Context, subjectID string) ([]ConsentState, error)
	ConsentEvents(ctx context.Context, subjectID string) ([]ConsentEvent, error)

	CreateCode(ctx context.Context, c *OneTimeCode) error
	LatestCode(ctx context.Context, purpose string, target []byte) (*OneTimeCode, error)
	LatestSubjectCode(ctx context.Context, purpose, subjectID string) (*OneTimeCode, error)
	UpdateCode(ctx context.Context, c *OneTimeCode) error
	// ConsumeCode marks c consumed at at, in one statement, if its row is still
	// as read (not consumed, the same attempts, not expired at at) and it is still
	// the latest code for its purpose and target (LatestCode's order); it reports
	// whether it did. A false leaves the caller to find out why.
	ConsumeCode(ctx context.Context, c *OneTimeCode, at time.Time) (bool, error)
	// CountCodes counts codes created since the time given for target and for
	// client (0 for an empty client), and tells when the latest code for purpose
	// and target was created (zero if none): a send's limits in one statement.
	CountCodes(ctx context.Context, since time.Time, target []byte, client, purpose string) (byTarget, byClient int, latest time.Time, err error)
	DeleteCodes(ctx context.Context, subjectID string, target []byte) error

	CreateSession(ctx context.Context, s *Session) error
	SessionByHash(ctx context.Context, hash []byte) (*Session, error)
	// RevokeSessions revokes every live session of the subject and returns how many.
	RevokeSessions(ctx context.Context, subjectID string, at time.Time) (int, error)

	CreateAPIToken(ctx context.Context, t *APIToken) error
	APITokenByHash(ctx context.Context, hash []byte) (*APIToken, error)
	ListAPITokens(ctx context.Context) ([]APIToken, error)
	RevokeAPIToken(ctx context.Context, id string, at time.Time) error

	// AppendAudit assigns Seq, PrevHash and Hash to each entry, in order, and stores them.
	AppendAudit(ctx context.Context, entries ...*AuditEntry) error
	// AuditHead returns the chain head: the last entry's Seq and Hash (0 and empty
	// for an empty chain); ENOTFOUND if the head row is missing.
	AuditHead(ctx context.Context) (seq int64, hash []byte, err error)
	// ScanAudit calls fn for every entry with Seq > after, in order.
	ScanAudit(ctx context.Context, after int64, fn func(AuditEntry) error) error
	AuditBySubject(ctx context.Context, subjectID string) ([]AuditEntry, error)

	// Enqueue stores m as given, claim included (OutboxMessage.ClaimFor); it sets a
	// missing ID.
	Enqueue(ctx context.Context, m *OutboxMessage) error
	// DueMessages returns up to limit undelivered messages due at now (next attempt
	// at or before now) that the process instance may deliver: those claimed by it,
	// live or run out, and those whose claim is free or has run out by now (claimed
	// until at or before now). Messages under another process's live claim are left
	// out. Order: next attempt, then id. Only a message whose claim instance holds
	// past now may be delivered as read; the others must be claimed first.
	DueMessages(ctx context.Context, instance string, now time.Time, limit int) ([]OutboxMessage, error)
	// ClaimMessages claims for instance, until until, each undelivered message of
	// ids that is claimed by instance already or whose claim is free or has run out
	// by now, one conditional write each, and returns the ids it claimed in the
	// order given; the others belong to another process (or were delivered).
	// Concurrent claims of one message, from any process, are won by one. EINVALID
	// for an empty instance.
	ClaimMessages(ctx context.Context, instance string, ids []string, now, until time.Time) ([]string, error)
	// MarkDelivered records delivery at at and wipes the payload, which holds PI,
	// whoever holds the claim: a message is delivered once it went out, even by a
	// process whose claim ran out meanwhile.
	MarkDelivered(ctx context.Context, id string, at time.Time) error
	// MarkFailed records a failed attempt: the attempts so far, the next attempt at
	// next, the user-safe error, and the claim extended to claimedUntil (the next
	// attempt plus OutboxLease), so that instance retries it and another process
	// takes it over only if instance is gone. It changes nothing if instance no
	// longer holds the claim: the outcome of the process that took the message
	// over stands.
	MarkFailed(ctx context.Context, instance, id string, attempts int, next, claimedUntil time.Time, lastError string) error
	DeleteMessages(ctx context.Context, subjectID string) error
}
