package steward

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Audit actions. An action names what happened, never the values involved.
const (
	AuditRegister        = "subject.register"
	AuditSignIn          = "subject.sign_in"
	AuditRead            = "subject.read" // a client app read fields under a purpose
	AuditReadSelf        = "subject.read_self"
	AuditUpdate          = "subject.update" // fields changed
	AuditExport          = "subject.export"
	AuditCancel          = "subject.cancel"
	AuditConsentGrant    = "consent.grant"
	AuditConsentWithdraw = "consent.withdraw"
	AuditCodeSent        = "otp.send"
	AuditTokenCreate     = "token.create"
	AuditTokenRevoke     = "token.revoke"
	AuditReadDenied      = "subject.read_denied" // a read refused for a missing basis
)

// AuditEntry is one link of the hash-chained audit trail. It is written in the
// same transaction as the change it records (for reads, before the data leaves
// Steward). It names the actor, the action, the subject, the purpose and the field
// names, never values. Hash = SHA-256 over PrevHash and the entry's canonical
// encoding, so altering, removing or reordering any entry breaks every later link.
type AuditEntry struct {
	Seq       int64     `json:"seq"` // 1, 2, 3… in chain order; assigned by the store
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	ActorKind string    `json:"actor_kind"`
	ActorID   string    `json:"actor_id"`
	Action    string    `json:"action"`
	SubjectID string    `json:"subject_id,omitempty"`
	Purpose   string    `json:"purpose,omitempty"`
	Fields    []string  `json:"fields,omitempty"`
	Detail    string    `json:"detail,omitempty"` // ids, counts, codes; never PI
	PrevHash  []byte    `json:"-"`
	Hash      []byte    `json:"-"`
}

// NewAuditEntry returns an entry for action by the actor in ctx-derived a.
func NewAuditEntry(a Actor, action, subjectID, purpose string, fields []string, detail string) AuditEntry {
	return AuditEntry{ActorKind: a.Kind, ActorID: a.ID, Action: action, SubjectID: subjectID, Purpose: purpose, Fields: fields, Detail: detail}
}

// ComputeHash returns SHA-256(prev || canonical(e)). The canonical encoding is
// length-prefixed, so no choice of field contents can collide with another.
func (e *AuditEntry) ComputeHash(prev []byte) []byte {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var seq, at [8]byte // their own buffers: put reuses n for the length
	binary.BigEndian.PutUint64(seq[:], uint64(e.Seq))
	binary.BigEndian.PutUint64(at[:], uint64(e.At.UnixMicro()))
	put([]byte("steward.audit/v1"))
	put(prev)
	put(seq[:])
	put([]byte(e.ID))
	put(at[:])
	put([]byte(e.ActorKind))
	put([]byte(e.ActorID))
	put([]byte(e.Action))
	put([]byte(e.SubjectID))
	put([]byte(e.Purpose))
	put([]byte(strings.Join(e.Fields, ",")))
	put([]byte(e.Detail))
	return h.Sum(nil)
}

// AuditVerifier checks a chain entry by entry, in Seq order.
type AuditVerifier struct {
	prev  []byte
	next  int64
	Count int64 // entries verified
}

// Check verifies e follows the entries already checked. It returns an error naming
// e's sequence number when the chain is broken there.
func (v *AuditVerifier) Check(e AuditEntry) error {
	if v.next == 0 {
		v.next = 1
	}
	if e.Seq != v.next {
		return fmt.Errorf("entry %d: expected sequence %d (an entry is missing or out of order)", e.Seq, v.next)
	}
	if !bytes.Equal(e.PrevHash, v.prev) {
		return fmt.Errorf("entry %d: previous hash does not match entry %d", e.Seq, e.Seq-1)
	}
	if want := e.ComputeHash(v.prev); !bytes.Equal(want, e.Hash) {
		return fmt.Errorf("entry %d: hash mismatch (stored %s, computed %s): the entry was altered", e.Seq, short(e.Hash), short(want))
	}
	v.prev = e.Hash
	v.next++
	v.Count++
	return nil
}

// CheckHead verifies that the entries checked end where the chain's head says:
// entries removed from the end, or a chain emptied, leave the head pointing past
// them.
func (v *AuditVerifier) CheckHead(seq int64, hash []byte) error {
	last := v.next - 1
	if v.next == 0 {
		last = 0
	}
	if seq != last {
		return fmt.Errorf("the head names entry %d but the chain ends at entry %d: entries were removed from the end", seq, last)
	}
	if !bytes.Equal(hash, v.prev) {
		return fmt.Errorf("the head's hash %s does not match entry %d's %s", short(hash), last, short(v.prev))
	}
	return nil
}

func short(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 16 {
		s = s[:16]
	}
	return s
}

// VerifyAudit walks both hash chains, the audit trail of changes and the access
// log of reads, and checks every link (see VerifyChains). Staff with the auditor
// role, admins and the system may call it.
func (s *Service) VerifyAudit(ctx context.Context) (int64, error) {
	a := ActorFrom(ctx)
	if a.Kind != ActorSystem && !a.HasRole(RoleAuditor) {
		return 0, Errorf(EFORBIDDEN, "only auditors may verify the audit trail")
	}
	return VerifyChains(ctx, s.store)
}

// VerifyChains checks every link of the audit trail and of the access log in st,
// and that each chain ends at its recorded head. It needs no keys. It returns the
// number of entries verified, or an error naming the chain ("audit trail" or
// "access log") and the first bad entry's sequence number.
func VerifyChains(ctx context.Context, st Store) (int64, error) {
	var changes, reads AuditVerifier
	verify := func(tx Tx, v *AuditVerifier) error {
		// The head is read first: entries appended during the scan come after it.
		seq, hash, err := tx.AuditHead(ctx)
		if err != nil {
			return fmt.Errorf("head: %w", err)
		}
		if err := tx.ScanAudit(ctx, 0, func(e AuditEntry) error {
			if e.Seq > seq {
				return nil
			}
			return v.Check(e)
		}); err != nil {
			return err
		}
		return v.CheckHead(seq, hash)
	}
	if err := st.Read(ctx, func(tx Tx) error { return verify(tx, &changes) }); err != nil {
		return changes.Count, fmt.Errorf("audit trail: %w", err)
	}
	if err := st.ReadAccess(ctx, func(tx Tx) error { return verify(tx, &reads) }); err != nil {
		return changes.Count + reads.Count, fmt.Errorf("access log: %w", err)
	}
	return changes.Count + reads.Count, nil
}

// AuditHeads returns the sequence number and hash of the last entry of the audit
// trail and of the access log. Recording them outside Steward (a ticket, a signed
// mail, a transparency log) anchors the chains: a later rewrite of the whole
// database no longer matches them. Auditors, admins and the system may call it.
func (s *Service) AuditHeads(ctx context.Context) (trail, access AuditHead, err error) {
	a := ActorFrom(ctx)
	if a.Kind != ActorSystem && !a.HasRole(RoleAuditor) {
		return trail, access, Errorf(EFORBIDDEN, "only auditors may read the audit heads")
	}
	return ChainHeads(ctx, s.store)
}

// ChainHeads returns the heads of the audit trail and the access log in st.
func ChainHeads(ctx context.Context, st Store) (trail, access AuditHead, err error) {
	if err = st.Read(ctx, func(tx Tx) (err error) { trail.Seq, trail.Hash, err = tx.AuditHead(ctx); return err }); err != nil {
		return
	}
	err = st.ReadAccess(ctx, func(tx Tx) (err error) { access.Seq, access.Hash, err = tx.AuditHead(ctx); return err })
	return
}

// AuditHead is the last link of a hash chain.
type AuditHead struct {
	Seq  int64  `json:"seq"`
	Hash []byte `json:"hash"`
}

// String returns "seq:hex-hash".
func (h AuditHead) String() string { return fmt.Sprintf("%d:%x", h.Seq, h.Hash) }
