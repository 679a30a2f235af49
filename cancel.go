package steward

import (
	"context"
	"encoding/json"
	"time"
)

// Eraser deletes a feature's data about a subject inside the erasure transaction
// (address-book hashes, link clicks…). It returns the names of what it erased.
type Eraser func(ctx context.Context, tx Tx, subjectID string) ([]string, error)

// AddEraser registers f to run on every erasure.
func (s *Service) AddEraser(f Eraser) { s.erasers = append(s.erasers, f) }

// DeletionReceipt proves an account was cancelled and its data erased (policy §6,
// PIPL Art. 47): the fields erased, the data keys destroyed (which makes every
// copy of the data store, backups included, unreadable for this subject), the
// sessions revoked and the stores covered. It holds no PI.
type DeletionReceipt struct {
	ReceiptID       string    `json:"receipt_id"`
	SubjectID       string    `json:"subject_id"`
	CancelledAt     time.Time `json:"cancelled_at"`
	FieldsErased    []string  `json:"fields_erased"`
	KeyIDsDestroyed []string  `json:"key_ids_destroyed"`
	SessionsRevoked int       `json:"sessions_revoked"`
	Stores          []string  `json:"stores"`
	Tombstone       string    `json:"tombstone"` // what remains: the subject id, status and times
	// KeyDestructionPending is true when the data was deleted but the key store
	// could not destroy the data key yet: the maintenance run will
	// (FinishErasures), and until then copies of the data store taken before
	// could still be read with the key store.
	KeyDestructionPending bool `json:"key_destruction_pending,omitempty"`
}

// SendCancellationCode sends a fresh one-time code to the signed-in subject's
// registered number to confirm cancellation (policy §6). ETOOMANY as for SendCode.
func (s *Service) SendCancellationCode(ctx context.Context) (*CodeSent, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	return s.sendSubjectCode(ctx, id, CodeCancel)
}

// sendSubjectCode sends a code for purpose to the subject's registered phone.
func (s *Service) sendSubjectCode(ctx context.Context, id, purpose string) (*CodeSent, error) {
	var sealed []SealedField
	if err := s.store.Read(ctx, func(tx Tx) (err error) { sealed, err = tx.GetFields(ctx, id, []string{"phone"}); return err }); err != nil {
		return nil, err
	}
	values, err := s.openFields(ctx, id, sealed)
	if err != nil {
		return nil, err
	}
	var e164 string
	if err := json.Unmarshal(values["phone"], &e164); err != nil || e164 == "" {
		return nil, Errorf(ECONFLICT, "the account has no phone number to send a code to")
	}
	return s.sendCode(ctx, purpose, s.keys.BlindIndex("phone", e164), id, e164)
}

// verifySubjectCode spends code, which must be the latest code for purpose sent to
// subject id. A code sent to anyone else never matches: EFORBIDDEN.
func (s *Service) verifySubjectCode(ctx context.Context, id, purpose, code string, then func(Tx) error) error {
	return s.verifyCode(ctx, code, "no confirmation code was sent for this account; ask for one first",
		func(tx Tx) (*OneTimeCode, error) { return tx.LatestSubjectCode(ctx, purpose, id) }, then)
}

// CancelAccount cancels the signed-in subject's account, confirmed by the code
// from SendCancellationCode (policy §6 account cancellation, P20; PIPL Art. 47).
// At once: every session is revoked; fields, blind indexes, codes and queued
// messages are deleted; the subject becomes a tombstone without PI; then the data
// key is destroyed, so copies of the store taken before (replicas, dumps, backups)
// cannot be read for this subject either. Consent events and audit entries, which
// hold no PI, stay as proof of lawful processing. Errors: EFORBIDDEN for a wrong
// or foreign code, ETOOMANY after too many wrong codes.
func (s *Service) CancelAccount(ctx context.Context, code string) (*DeletionReceipt, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.verifySubjectCode(ctx, id, CodeCancel, code, nil); err != nil {
		return nil, err
	}
	rc, err := s.Erase(ctx, id, "cancellation")
	if err != nil && rc != nil {
		// The account is cancelled and its data deleted; only the key is left,
		// for the maintenance run. The subject gets the receipt, which says so:
		// an error would invite a retry that can no longer succeed.
		rc.KeyDestructionPending = true
		return rc, nil
	}
	return rc, err
}

// Erase erases subject id: the core of cancellation and of fulfilled deletion
// requests. reason is recorded in the audit trail. The caller authorizes. When
// the data is deleted but the key store fails to destroy the data key, it
// returns the receipt and the error together (FinishErasures finishes it).
func (s *Service) Erase(ctx context.Context, id, reason string) (*DeletionReceipt, error) {
	now := s.Now()
	rc := &DeletionReceipt{ReceiptID: NewID(), SubjectID: id, CancelledAt: now, FieldsErased: []string{},
		Stores: []string{"data store", "key store"}, Tombstone: "subject id, status, creation and cancellation times"}
	// The phone's blind index also keys codes sent before the account existed.
	var phoneIndex []byte
	var phoneSealed []SealedField
	if err := s.store.Read(ctx, func(tx Tx) (err error) { phoneSealed, err = tx.GetFields(ctx, id, []string{"phone"}); return err }); err != nil {
		return nil, err
	}
	if v, err := s.openFields(ctx, id, phoneSealed); err == nil {
		var e164 string
		if json.Unmarshal(v["phone"], &e164) == nil && e164 != "" {
			phoneIndex = s.keys.BlindIndex("phone", e164)
		}
	}
	err := s.store.Write(ctx, func(tx Tx) error {
		sealed, err := tx.GetFields(ctx, id, nil)
		if err != nil {
			return err
		}
		for _, f := range sealed {
			rc.FieldsErased = append(rc.FieldsErased, f.Field)
		}
		if rc.SessionsRevoked, err = tx.RevokeSessions(ctx, id, now); err != nil {
			return err
		}
		if err := tx.DeleteAllFields(ctx, id); err != nil {
			return err
		}
		if err := tx.DeleteIndexes(ctx, id); err != nil {
			return err
		}
		if err := tx.DeleteCodes(ctx, id, phoneIndex); err != nil {
			return err
		}
		if err := tx.DeleteMessages(ctx, id); err != nil {
			return err
		}
		for _, f := range s.erasers {
			names, err := f(ctx, tx, id)
			if err != nil {
				return err
			}
			rc.FieldsErased = append(rc.FieldsErased, names...)
		}
		if err := tx.CancelSubject(ctx, id, now); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditCancel, id, "", rc.FieldsErased, "reason="+reason+" receipt="+rc.ReceiptID))
	})
	s.auth.clear() // the revoked sessions must fail at once, not in AuthCacheTTL
	if err != nil {
		return nil, err
	}
	// The data is gone and the sessions revoked: the key must go too, whatever
	// the caller does now (a client hanging up must not leave it behind). If it
	// cannot, the tombstone stays marked as not done and FinishErasures destroys
	// the key on a later maintenance run.
	keys, err := s.destroyTombstoneKey(context.WithoutCancel(ctx), id)
	if err != nil {
		s.log.Error("erasure: the subject's data was deleted but its data key was not destroyed yet; the maintenance run will retry", "subject", id, "err", err)
		return rc, err
	}
	rc.KeyIDsDestroyed = keys
	return rc, nil
}

// destroyTombstoneKey destroys the data key of the tombstone id and records it
// on the tombstone, returning the key ids destroyed (none when the key store
// holds no key for id). A failure to record is only logged: the key is gone,
// and the next FinishErasures finds it destroyed and records it.
func (s *Service) destroyTombstoneKey(ctx context.Context, id string) ([]string, error) {
	keys, err := s.keys.DestroySubjectKey(ctx, id)
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	if err := s.markKeyDestroyed(ctx, id); err != nil {
		s.log.Warn("erasure: the data key was destroyed but not recorded on the tombstone", "subject", id, "err", err)
	}
	return keys, nil
}

func (s *Service) markKeyDestroyed(ctx context.Context, id string) error {
	return s.store.Write(ctx, func(tx Tx) error { return tx.MarkKeyDestroyed(ctx, id, s.Now()) })
}

// FinishErasures destroys the data keys of tombstones whose erasure stopped
// after the data was deleted (the key store failed, or the process stopped,
// between the two), so that every erasure reaches copies of the data store too
// (P20; PIPL Art. 47). Destroying a key twice is harmless. It returns how many
// tombstones it finished, and stops at the first failure. The maintenance run
// calls it.
func (s *Service) FinishErasures(ctx context.Context) (int, error) {
	done := 0
	for {
		var ids []string
		if err := s.store.Read(ctx, func(tx Tx) (err error) { ids, err = tx.PendingKeyDestructions(ctx, 100); return err }); err != nil {
			return done, err
		}
		for _, id := range ids {
			// A read first: tombstones older than the mark (migration 0006) mostly
			// have their key destroyed already, and a destruction purges the key
			// store's log, which costs far more than a read.
			_, err := s.keys.SubjectKey(ctx, id)
			switch ErrorCode(err) {
			case "":
				if _, err := s.keys.DestroySubjectKey(ctx, id); err != nil && ErrorCode(err) != ENOTFOUND {
					return done, err
				}
			case EGONE, ENOTFOUND:
			default:
				return done, err
			}
			if err := s.markKeyDestroyed(ctx, id); err != nil {
				return done, err
			}
			done++
		}
		if len(ids) < 100 {
			return done, nil
		}
	}
}
