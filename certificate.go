package steward

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// CertificateSchema names the deletion certificate format (doc/certificates.md).
const CertificateSchema = "steward.deletion-certificate/v1"

// CertificateAlgorithm is the only signature algorithm of certificates.
const CertificateAlgorithm = "Ed25519"

// CertificateSigner signs deletion certificates. The keyring implements it with a
// key derived from the key file.
type CertificateSigner interface {
	// Sign returns the Ed25519 signature of msg.
	Sign(msg []byte) []byte
	// PublicKey returns the key that verifies Sign's signatures.
	PublicKey() ed25519.PublicKey
}

// SigningKeyID returns the id of an Ed25519 public key: "ed25519-" and the first
// 16 hex digits of its SHA-256.
func SigningKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519-" + hex.EncodeToString(sum[:8])
}

// DeletionCertificate is the signed proof that a subject's PI was erased (policy
// §6 deletion and cancellation, P19; PIPL Art. 47): which request, which fields
// were erased and which are retained under a legal hold (with its case), which
// data keys were destroyed, when, which stores the erasure covers, and the date by
// which the last backup of the key store that could still hold those keys has aged
// out. It holds ids and field names, never values.
type DeletionCertificate struct {
	Schema             string              `json:"schema"`
	CertificateID      string              `json:"certificate_id"`
	Controller         string              `json:"controller"`
	RequestID          string              `json:"request_id"`
	RequestType        RequestType         `json:"request_type"`
	DeletionGround     DeletionGround      `json:"deletion_ground,omitempty"`
	SubjectID          string              `json:"subject_id"`
	ErasedAt           time.Time           `json:"erased_at"`
	IssuedAt           time.Time           `json:"issued_at"`
	FieldsErased       []string            `json:"fields_erased"`
	FieldsRetained     []RetainedField     `json:"fields_retained"`
	KeyIDsDestroyed    []string            `json:"key_ids_destroyed"`
	Stores             []StoreCovered      `json:"stores"`
	Backups            BackupAgeOut        `json:"backups"`
	RecipientsNotified []NotifiedRecipient `json:"recipients_notified"`
}

// RetainedField is a field kept after erasure under a legal hold, sealed under the
// hold's own data key KeyID.
type RetainedField struct {
	Field     string    `json:"field"`
	HoldID    string    `json:"hold_id"`
	Case      HoldCase  `json:"case"`
	Reference string    `json:"reference"`
	Purpose   string    `json:"purpose"`
	Until     time.Time `json:"until,omitzero"`
	KeyID     string    `json:"key_id"`
}

// StoreCovered says what the erasure did to one store.
type StoreCovered struct {
	Store  string `json:"store"`
	Effect string `json:"effect"`
}

// BackupAgeOut says when the last copy of the destroyed keys is gone: backups of
// the key store are kept KeyStoreRetention (ISO 8601 duration), so none taken
// before KeysDestroyedAt survives after LastBackupExpiresAt.
type BackupAgeOut struct {
	KeyStoreRetention   string    `json:"key_store_retention"`
	KeysDestroyedAt     time.Time `json:"keys_destroyed_at"`
	LastBackupExpiresAt time.Time `json:"last_backup_expires_at"`
	Statement           string    `json:"statement"`
}

// NotifiedRecipient is a recipient told to delete its copy, and the notice it must
// acknowledge.
type NotifiedRecipient struct {
	RecipientID   string        `json:"recipient_id"`
	Name          string        `json:"name"`
	Kind          RecipientKind `json:"kind"`
	NoticeID      string        `json:"notice_id"`
	Fields        []string      `json:"fields"`
	AcknowledgeBy time.Time     `json:"acknowledge_by"`
}

// SignedCertificate is the certificate envelope: Payload is the certificate's JSON
// and Signature the base64 Ed25519 signature of Payload's bytes in compact form
// (as issued; whitespace between tokens is ignored when verifying). PublicKey is
// informative only: a verifier trusts a key it got elsewhere (the key file, or
// GET /v1/certificates/public-key), never the one in the envelope.
type SignedCertificate struct {
	Payload   json.RawMessage `json:"payload"`
	Signature string          `json:"signature"`
	KeyID     string          `json:"key_id"`
	Algorithm string          `json:"algorithm"`
	PublicKey string          `json:"public_key"`
}

// SignCertificate encodes c and signs it with signer.
func SignCertificate(c *DeletionCertificate, signer CertificateSigner) (*SignedCertificate, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("steward: encode certificate: %w", err)
	}
	pub := signer.PublicKey()
	return &SignedCertificate{Payload: payload, Signature: base64.StdEncoding.EncodeToString(signer.Sign(payload)),
		KeyID: SigningKeyID(pub), Algorithm: CertificateAlgorithm, PublicKey: base64.StdEncoding.EncodeToString(pub)}, nil
}

// VerifyCertificate checks a signed certificate (the JSON of a SignedCertificate)
// against trusted, the controller's public key, and returns its payload. It
// returns EINVALID with a message naming what is wrong: not a signed certificate,
// another algorithm, signed by another key than trusted, a signature that does not
// match the payload (the payload was altered), or a payload of another schema.
func VerifyCertificate(data []byte, trusted ed25519.PublicKey) (*DeletionCertificate, error) {
	var env SignedCertificate
	if err := json.Unmarshal(data, &env); err != nil || len(env.Payload) == 0 || env.Signature == "" {
		return nil, Errorf(EINVALID, "The file is not a signed deletion certificate: it needs payload, signature, key_id and algorithm.")
	}
	if env.Algorithm != CertificateAlgorithm {
		return nil, Errorf(EINVALID, "The certificate's algorithm is %q; only Ed25519 is accepted.", env.Algorithm)
	}
	if len(trusted) != ed25519.PublicKeySize {
		return nil, Errorf(EINVALID, "The trusted public key must be %d bytes.", ed25519.PublicKeySize)
	}
	if want := SigningKeyID(trusted); env.KeyID != want {
		return nil, Errorf(EINVALID, "The certificate was signed by key %s, not by the trusted key %s.", env.KeyID, want)
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, Errorf(EINVALID, "The certificate's signature is not a base64 Ed25519 signature.")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, env.Payload); err != nil {
		return nil, Errorf(EINVALID, "The certificate's payload is not valid JSON.")
	}
	if !ed25519.Verify(trusted, compact.Bytes(), sig) {
		return nil, Errorf(EINVALID, "The signature does not match the payload: the certificate was altered after it was signed.")
	}
	var c DeletionCertificate
	if err := json.Unmarshal(compact.Bytes(), &c); err != nil || c.Schema != CertificateSchema {
		return nil, Errorf(EINVALID, "The signed payload is not a %s certificate.", CertificateSchema)
	}
	return &c, nil
}

// ErasureConfig configures Erasure.
type ErasureConfig struct {
	// Signer signs certificates; required.
	Signer CertificateSigner
	// KeyBackupRetention is how long backups of the key store are kept; the
	// certificate promises no backup holding a destroyed key survives longer.
	// Default 7 days.
	KeyBackupRetention time.Duration
	// Recipients, if set, notifies recipients of the erasure; its notices are the
	// request's pending steps.
	Recipients *Recipients
	// Holds, if set, keeps held fields out of the erasure.
	Holds *Holds
}

// Erasure fulfils deletion and cancellation requests: it erases the subject by
// destroying its data key (except fields kept by legal holds, which have keys of
// their own), notifies every recipient that received the subject's data, and
// answers with a signed DeletionCertificate. It implements Fulfiller.
type Erasure struct {
	svc        *Service
	signer     CertificateSigner
	retention  time.Duration
	recipients *Recipients
	holds      *Holds
}

var _ Fulfiller = (*Erasure)(nil)

// NewErasure returns the erasure fulfiller; it panics without a Signer.
func NewErasure(svc *Service, c ErasureConfig) *Erasure {
	if c.Signer == nil {
		panic("steward: NewErasure needs a Signer")
	}
	if c.KeyBackupRetention <= 0 {
		c.KeyBackupRetention = 7 * 24 * time.Hour
	}
	return &Erasure{svc: svc, signer: c.Signer, retention: c.KeyBackupRetention, recipients: c.Recipients, holds: c.Holds}
}

// PublicKeyInfo is the published certificate verification key.
type PublicKeyInfo struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"` // base64, 32 bytes
}

// PublicKey returns the key that verifies this deployment's certificates.
func (e *Erasure) PublicKey() PublicKeyInfo {
	pub := e.signer.PublicKey()
	return PublicKeyInfo{Algorithm: CertificateAlgorithm, KeyID: SigningKeyID(pub), PublicKey: base64.StdEncoding.EncodeToString(pub)}
}

// Fulfil erases r's subject and returns the signed certificate's JSON. It is
// repeatable: once a certificate was issued for r it returns that certificate;
// if an earlier attempt erased the subject but failed before the certificate, it
// completes from the store and the audit trail (the key store returns the ids of
// keys destroyed before). Errors: EINVALID for a request of another type,
// ENOTFOUND for an unknown subject, and the store's and keys' errors.
func (e *Erasure) Fulfil(ctx context.Context, r *Request) (json.RawMessage, error) {
	if r.Type != RequestDeletion && r.Type != RequestCancellation {
		return nil, Errorf(EINVALID, "request %s is a %s request; erasure fulfils deletion and cancellation", r.ID, r.Type)
	}
	s := e.svc
	var stored *StoredCertificate
	var subj *Subject
	err := s.store.Read(ctx, func(tx Tx) (err error) {
		if stored, err = tx.CertificateByRequest(ctx, r.ID); err == nil || ErrorCode(err) != ENOTFOUND {
			return err
		}
		subj, err = tx.GetSubject(ctx, r.SubjectID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if stored != nil {
		return stored.Body, nil
	}
	c := &DeletionCertificate{Schema: CertificateSchema, CertificateID: NewID(), Controller: s.decl.Controller.Name, RequestID: r.ID,
		RequestType: r.Type, DeletionGround: r.DeletionGround, SubjectID: r.SubjectID,
		FieldsRetained: []RetainedField{}, RecipientsNotified: []NotifiedRecipient{}}
	var erased []string
	if subj.Status == SubjectActive {
		rc, err := s.Erase(WithRequestID(ctx, r.ID), r.SubjectID, string(r.Type)+" request "+r.ID)
		if err != nil {
			return nil, err
		}
		c.ErasedAt, c.KeyIDsDestroyed, erased = rc.CancelledAt, rc.KeyIDsDestroyed, rc.FieldsErased
	} else {
		// Erased before: by an earlier attempt at this request, or by the subject's
		// own cancellation. The key store repeats the ids it destroyed; the audit
		// trail names the fields.
		if c.KeyIDsDestroyed, err = s.keys.DestroySubjectKey(ctx, r.SubjectID); err != nil {
			return nil, err
		}
		c.ErasedAt = subj.CancelledAt
		var entries []AuditEntry
		if err := s.store.Read(ctx, func(tx Tx) (err error) { entries, err = tx.AuditBySubject(ctx, r.SubjectID); return err }); err != nil {
			return nil, err
		}
		for _, a := range entries {
			if a.Action == AuditCancel {
				erased = a.Fields
			}
		}
	}
	destroyedAt := s.Now()
	if e.holds != nil {
		if err := e.holds.releaseExpiredOf(ctx, r.SubjectID); err != nil {
			return nil, err
		}
		if c.FieldsRetained, err = e.holds.retained(ctx, r.SubjectID); err != nil {
			return nil, err
		}
	}
	if c.FieldsRetained == nil {
		c.FieldsRetained = []RetainedField{}
	}
	c.FieldsErased = []string{}
	for _, f := range erased {
		if !slices.ContainsFunc(c.FieldsRetained, func(rf RetainedField) bool { return rf.Field == f }) {
			c.FieldsErased = append(c.FieldsErased, f)
		}
	}
	slices.Sort(c.FieldsErased)
	c.FieldsErased = slices.Compact(c.FieldsErased)
	if c.KeyIDsDestroyed == nil {
		c.KeyIDsDestroyed = []string{}
	}
	expires := destroyedAt.Add(e.retention)
	c.Backups = BackupAgeOut{KeyStoreRetention: isoDuration(e.retention), KeysDestroyedAt: destroyedAt, LastBackupExpiresAt: expires,
		Statement: fmt.Sprintf("No backup of the key store taken before %s survives after %s.", destroyedAt.Format(time.RFC3339), expires.Format(time.RFC3339))}
	c.Stores = []StoreCovered{
		{Store: "data store", Effect: "Sealed field values, blind indexes, one-time codes, sessions and queued messages deleted; the subject remains as a tombstone without personal information."},
		{Store: "key store", Effect: "The subject's data keys destroyed: the wrapped key bytes are wiped, so every value sealed under them is unreadable."},
		{Store: "data store backups and replicas", Effect: "They hold the subject's values sealed under the destroyed keys only, unreadable from the moment the keys were destroyed."},
		{Store: "key store backups", Effect: "Backups taken before the keys were destroyed age out by " + expires.Format(time.RFC3339) + "; none is kept longer."},
	}
	if len(c.FieldsRetained) > 0 {
		c.Stores = append(c.Stores, StoreCovered{Store: "legal holds", Effect: "The retained fields are copies sealed under each hold's own data key, read only for the hold's purpose and erased when the hold ends by destroying that key."})
	}
	if e.recipients != nil {
		if err := e.notified(ctx, c); err != nil {
			return nil, err
		}
	}
	c.IssuedAt = s.Now()
	signed, err := SignCertificate(c, e.signer)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(signed)
	if err != nil {
		return nil, err
	}
	err = s.store.Write(ctx, func(tx Tx) error {
		if err := tx.PutCertificate(ctx, &StoredCertificate{ID: c.CertificateID, RequestID: r.ID, SubjectID: r.SubjectID, Body: body, IssuedAt: c.IssuedAt}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditCertificate, r.SubjectID, "", c.FieldsErased,
			"certificate="+c.CertificateID+" request="+r.ID+" signing_key="+signed.KeyID))
	})
	if ErrorCode(err) == ECONFLICT {
		// A concurrent attempt issued one first; that one is the answer.
		err = s.store.Read(ctx, func(tx Tx) (err error) { stored, err = tx.CertificateByRequest(ctx, r.ID); return err })
		if err != nil {
			return nil, err
		}
		return stored.Body, nil
	} else if err != nil {
		return nil, err
	}
	s.notify()
	return body, nil
}

// notified lists in c the recipients told of the erasure by request c.RequestID.
func (e *Erasure) notified(ctx context.Context, c *DeletionCertificate) error {
	return e.svc.store.Read(ctx, func(tx Tx) error {
		ns, err := tx.ListNotices(ctx, NoticeFilter{RequestID: c.RequestID})
		if err != nil {
			return err
		}
		for _, n := range ns {
			if n.Event != NoticeDeletion {
				continue
			}
			rec, err := tx.GetRecipient(ctx, n.RecipientID)
			if err != nil {
				return err
			}
			c.RecipientsNotified = append(c.RecipientsNotified, NotifiedRecipient{RecipientID: rec.ID, Name: rec.Name, Kind: rec.Kind,
				NoticeID: n.ID, Fields: n.Fields, AcknowledgeBy: n.DueAt})
		}
		return nil
	})
}

// PendingSteps returns the recipient notices of the request not yet acknowledged.
func (e *Erasure) PendingSteps(ctx context.Context, requestID string) ([]FulfilmentStep, error) {
	if e.recipients == nil {
		return nil, nil
	}
	return e.recipients.PendingSteps(ctx, requestID)
}

// Certificate returns the signed certificate issued for request requestID, as
// JSON. Privacy officers, auditors and support staff may call it. ENOTFOUND if
// none was issued.
func (e *Erasure) Certificate(ctx context.Context, requestID string) (json.RawMessage, error) {
	if err := requireStaffRole(ctx, "read deletion certificates", RolePrivacyOfficer, RoleAuditor, RoleSupport); err != nil {
		return nil, err
	}
	var stored *StoredCertificate
	err := e.svc.store.Read(ctx, func(tx Tx) (err error) { stored, err = tx.CertificateByRequest(ctx, requestID); return err })
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ENOTFOUND, "no deletion certificate was issued for that request")
	} else if err != nil {
		return nil, err
	}
	return stored.Body, nil
}

// isoDuration formats d as an ISO 8601 duration such as "P7D" or "P1DT12H".
func isoDuration(d time.Duration) string {
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h, m, sec := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	out := "P"
	if days > 0 {
		out += fmt.Sprintf("%dD", days)
	}
	if h > 0 || m > 0 || sec > 0 {
		out += "T"
		if h > 0 {
			out += fmt.Sprintf("%dH", h)
		}
		if m > 0 {
			out += fmt.Sprintf("%dM", m)
		}
		if sec > 0 {
			out += fmt.Sprintf("%dS", sec)
		}
	}
	if out == "P" {
		out = "PT0S"
	}
	return out
}
