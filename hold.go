package steward

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// HoldCase is the reason a legal hold keeps PI beyond its retention: one of the
// four cases of policy §8 ("Duration of stored information"; P27).
type HoldCase string

// Legal-hold cases, in the policy's order.
const (
	// HoldLaw: applicable laws, regulations, policies or other normative documents
	// require the data to be kept (policy §8 case 1).
	HoldLaw HoldCase = "law_or_regulation"
	// HoldAuthority: a decision of an administrative authority, a judgment or ruling
	// of a court, an arbitral award or another legal procedure requires it (policy
	// §8 case 2).
	HoldAuthority HoldCase = "authority_decision"
	// HoldCompliance: the controller has reason to believe it must keep the data to
	// comply with laws and regulations (policy §8 case 3).
	HoldCompliance HoldCase = "legal_compliance"
	// HoldAgreementOrSafety: keeping it is reasonable and necessary to perform the
	// service agreement or the policy, or to protect public interests or the safety,
	// property or other rights of users, staff, the controller or others (policy §8
	// case 4).
	HoldAgreementOrSafety HoldCase = "agreement_or_safety"
)

// HoldCases returns the four legal-hold cases in the policy's order.
func HoldCases() []HoldCase {
	return []HoldCase{HoldLaw, HoldAuthority, HoldCompliance, HoldAgreementOrSafety}
}

// Valid reports whether c is one of the four cases.
func (c HoldCase) Valid() bool { return slices.Contains(HoldCases(), c) }

// LegalHold keeps a subject's fields beyond erasure for one of the policy's four
// cases (P19, P27). When it is placed, the fields' current values are copied and
// sealed under a data key of the hold's own (KeyID, created for the key-store id
// HoldKeySubject(SubjectID, ID)), so destroying the subject's data key later, by
// cancellation or a deletion request, leaves the held copy readable, and nothing
// else. While the hold is active the fields are storage-only: no read or
// disclosure except for the hold's Purpose. Releasing the hold destroys its key,
// which erases the held copy everywhere, backups included. Reference names the
// law, decision or case (no PI). Until, if set, ends the hold.
type LegalHold struct {
	ID            string    `json:"id"`
	SubjectID     string    `json:"subject_id"`
	Fields        []string  `json:"fields"`
	Case          HoldCase  `json:"case"`
	Reference     string    `json:"reference"`
	Purpose       string    `json:"purpose"`
	Until         time.Time `json:"until,omitzero"`
	KeyID         string    `json:"key_id"`
	PlacedAt      time.Time `json:"placed_at"`
	PlacedBy      string    `json:"placed_by"`
	ReleasedAt    time.Time `json:"released_at,omitzero"`
	ReleasedBy    string    `json:"released_by,omitempty"`
	ReleaseReason string    `json:"release_reason,omitempty"`
}

// Active reports whether the hold is in force at now: not released and not past Until.
func (h *LegalHold) Active(now time.Time) bool {
	return h.ReleasedAt.IsZero() && (h.Until.IsZero() || now.Before(h.Until))
}

// HoldInput is what a privacy officer submits to place a hold.
type HoldInput struct {
	SubjectID string    `json:"subject_id"`
	Fields    []string  `json:"fields"`
	Case      HoldCase  `json:"case"`
	Reference string    `json:"reference"`
	Purpose   string    `json:"purpose"` // e.g. "legal_hold"
	Until     time.Time `json:"until,omitzero"`
}

// HoldKeySubject returns the key-store id of a hold's data key:
// subjectID + "#hold:" + holdID. It never collides with a subject id, which has no '#'.
func HoldKeySubject(subjectID, holdID string) string { return subjectID + "#hold:" + holdID }

// ReadGuard vetoes a read or disclosure of a subject's fields for a purpose,
// inside the read's transaction: nil, or an EFORBIDDEN error naming why.
type ReadGuard func(ctx context.Context, tx Tx, subjectID, purpose string, fields []string) error

// AddReadGuard registers g to check every purpose-bound read (ReadForPurpose) and
// disclosure.
func (s *Service) AddReadGuard(g ReadGuard) { s.readGuards = append(s.readGuards, g) }

// guardRead runs the read guards in tx.
func (s *Service) guardRead(ctx context.Context, tx Tx, subjectID, purpose string, fields []string) error {
	for _, g := range s.readGuards {
		if err := g(ctx, tx, subjectID, purpose, fields); err != nil {
			return err
		}
	}
	return nil
}

// Holds places and releases legal holds and reads held data (P19, P27).
type Holds struct{ svc *Service }

// NewHolds returns the legal-hold feature of svc and registers its read guard.
// Call it once per Service.
func NewHolds(svc *Service) *Holds {
	h := &Holds{svc: svc}
	svc.AddReadGuard(h.guard)
	return h
}

var purposeName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Place places a legal hold on a subject's fields and copies their current values
// under the hold's own data key (see LegalHold). Privacy officers (and admins) may
// call it. Errors: EINVALID for an unknown case, a missing reference, a purpose
// that is not a lower-case name, an Until not in the future, no fields, an
// undeclared or derived field, or a field with no value to keep; ENOTFOUND for an
// unknown subject; EGONE for a cancelled one.
func (h *Holds) Place(ctx context.Context, in HoldInput) (*LegalHold, error) {
	if err := requireStaffRole(ctx, "place legal holds", RolePrivacyOfficer); err != nil {
		return nil, err
	}
	s := h.svc
	now := s.Now()
	in.Reference = strings.TrimSpace(in.Reference)
	switch {
	case !in.Case.Valid():
		return nil, Errorf(EINVALID, "case must be one of law_or_regulation, authority_decision, legal_compliance, agreement_or_safety (policy §8)")
	case in.Reference == "" || utf8.RuneCountInString(in.Reference) > 200:
		return nil, Errorf(EINVALID, "reference is required (the law, decision or case number), at most 200 characters")
	case !purposeName.MatchString(in.Purpose):
		return nil, Errorf(EINVALID, "purpose must be a lower-case name such as legal_hold")
	case !in.Until.IsZero() && !in.Until.After(now):
		return nil, Errorf(EINVALID, "until must be in the future")
	case len(in.Fields) == 0:
		return nil, Errorf(EINVALID, "fields are required")
	}
	fields := sortedUnique(in.Fields)
	for _, f := range fields {
		d, ok := s.decl.Field(f)
		if !ok {
			return nil, Errorf(EINVALID, "field %q is not declared", f)
		}
		if d.Kind == KindDerived {
			return nil, Errorf(EINVALID, "field %s is derived data that Steward does not keep as a value; it cannot be held", f)
		}
	}
	var sealed []SealedField
	err := s.store.Read(ctx, func(tx Tx) error {
		subj, err := tx.GetSubject(ctx, in.SubjectID)
		if err != nil {
			return err
		}
		if subj.Status != SubjectActive {
			return Errorf(EGONE, "the subject's account was cancelled and its data erased; there is nothing left to hold")
		}
		sealed, err = tx.GetFields(ctx, in.SubjectID, fields)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(sealed) != len(fields) {
		for _, f := range fields {
			if !slices.ContainsFunc(sealed, func(sf SealedField) bool { return sf.Field == f }) {
				return nil, Errorf(EINVALID, "field %s has no value to hold", f)
			}
		}
	}
	values, err := s.openFields(ctx, in.SubjectID, sealed)
	if err != nil {
		return nil, err
	}
	hold := &LegalHold{ID: NewID(), SubjectID: in.SubjectID, Fields: fields, Case: in.Case, Reference: in.Reference, Purpose: in.Purpose,
		Until: in.Until.UTC().Truncate(time.Microsecond), PlacedAt: now, PlacedBy: ActorFrom(ctx).String()}
	keySubject := HoldKeySubject(in.SubjectID, hold.ID)
	if hold.KeyID, err = s.keys.CreateSubjectKey(ctx, keySubject); err != nil {
		return nil, err
	}
	destroyKey := func() {
		if _, derr := s.keys.DestroySubjectKey(context.WithoutCancel(ctx), keySubject); derr != nil {
			s.log.Error("destroy key of failed hold", "hold", hold.ID, "err", derr)
		}
	}
	key, err := s.keys.SubjectKey(ctx, keySubject)
	if err != nil {
		destroyKey()
		return nil, err
	}
	held := make([]SealedField, 0, len(fields))
	for _, f := range fields {
		ct, err := key.Seal(f, values[f])
		if err != nil {
			destroyKey()
			return nil, err
		}
		held = append(held, SealedField{SubjectID: in.SubjectID, Field: f, Value: ct, UpdatedAt: now})
	}
	err = s.store.Write(ctx, func(tx Tx) error {
		if err := tx.CreateHold(ctx, hold); err != nil {
			return err
		}
		if err := tx.PutHeldFields(ctx, hold.ID, held); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditHoldPlace, in.SubjectID, hold.Purpose, fields, "hold="+hold.ID+" case="+string(hold.Case)+" key="+hold.KeyID))
	})
	if err != nil {
		destroyKey()
		return nil, err
	}
	return hold, nil
}

// List returns every hold on subjectID, released ones included. Privacy officers
// and auditors may call it.
func (h *Holds) List(ctx context.Context, subjectID string) ([]LegalHold, error) {
	if err := requireStaffRole(ctx, "list legal holds", RolePrivacyOfficer, RoleAuditor); err != nil {
		return nil, err
	}
	var out []LegalHold
	err := h.svc.store.Read(ctx, func(tx Tx) (err error) { out, err = tx.SubjectHolds(ctx, subjectID); return err })
	if out == nil {
		out = []LegalHold{}
	}
	return out, err
}

// Release ends a hold: the held copy is deleted and the hold's data key
// destroyed, so the copy is unreadable in every copy of the stores too; the
// subject's live fields, if the account still exists, are untouched. Privacy
// officers may call it. Errors: EINVALID without a reason, ENOTFOUND for an
// unknown hold, ECONFLICT if it was released already.
func (h *Holds) Release(ctx context.Context, holdID, reason string) (*LegalHold, error) {
	if err := requireStaffRole(ctx, "release legal holds", RolePrivacyOfficer); err != nil {
		return nil, err
	}
	if strings.TrimSpace(reason) == "" {
		return nil, Errorf(EINVALID, "a reason is required to release a hold")
	}
	return h.release(ctx, holdID, reason)
}

func (h *Holds) release(ctx context.Context, holdID, reason string) (*LegalHold, error) {
	s := h.svc
	var hold *LegalHold
	err := s.store.Read(ctx, func(tx Tx) (err error) { hold, err = tx.GetHold(ctx, holdID); return err })
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ENOTFOUND, "no legal hold with that id")
	} else if err != nil {
		return nil, err
	}
	if !hold.ReleasedAt.IsZero() {
		return nil, Errorf(ECONFLICT, "legal hold %s was released already", holdID)
	}
	// The key goes first: destroying is repeatable, so if the transaction below
	// fails the hold is still unreleased and Release can simply be run again.
	if _, err := s.keys.DestroySubjectKey(ctx, HoldKeySubject(hold.SubjectID, hold.ID)); err != nil && ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	now, by := s.Now(), ActorFrom(ctx).String()
	err = s.store.Write(ctx, func(tx Tx) error {
		if err := tx.ReleaseHold(ctx, holdID, now, by, reason); err != nil {
			if ErrorCode(err) == ECONFLICT {
				return Errorf(ECONFLICT, "legal hold %s was released already", holdID)
			}
			return err
		}
		if err := tx.DeleteHeldFields(ctx, holdID); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditHoldRelease, hold.SubjectID, hold.Purpose, hold.Fields, "hold="+hold.ID+" key="+hold.KeyID))
	})
	if err != nil {
		return nil, err
	}
	hold.ReleasedAt, hold.ReleasedBy, hold.ReleaseReason = now, by, reason
	return hold, nil
}

// ReleaseExpired releases every hold whose Until has passed and returns how many.
// It is a job: the system or a privacy officer calls it.
func (h *Holds) ReleaseExpired(ctx context.Context) (int, error) {
	if err := requireStaffRole(ctx, "release expired legal holds", RolePrivacyOfficer); err != nil {
		return 0, err
	}
	var due []LegalHold
	if err := h.svc.store.Read(ctx, func(tx Tx) (err error) { due, err = tx.ExpiredHolds(ctx, h.svc.Now()); return err }); err != nil {
		return 0, err
	}
	n := 0
	for _, hold := range due {
		if _, err := h.release(ctx, hold.ID, "until reached"); err != nil && ErrorCode(err) != ECONFLICT {
			return n, err
		}
		n++
	}
	return n, nil
}

// ReadHeld returns the held copies of a subject's fields for purpose, which must
// be the purpose of the active holds keeping them (P27: held data is processed
// only for the hold's purpose). It works before and after the subject's erasure.
// fields selects some of the held fields; empty means all held for purpose.
// Privacy officers, and client apps declared for purpose, may call it; every read
// is audited. Errors: EFORBIDDEN for another caller or a field not held for
// purpose, ENOTFOUND when no active hold on the subject has purpose.
func (h *Holds) ReadHeld(ctx context.Context, subjectID, purpose string, fields []string) (FieldValues, error) {
	a := ActorFrom(ctx)
	if !(a.HasRole(RolePrivacyOfficer) || (a.Kind == ActorApp && h.svc.decl.AppMayUse(a.ID, purpose))) {
		return nil, Errorf(EFORBIDDEN, "only privacy officers and client apps declared for purpose %s read held data", purpose)
	}
	s := h.svc
	now := s.Now()
	type heldCopy struct {
		hold   LegalHold
		sealed []SealedField
	}
	var copies []heldCopy
	held := map[string]bool{}
	err := s.store.Read(ctx, func(tx Tx) error {
		holds, err := tx.SubjectHolds(ctx, subjectID)
		if err != nil {
			return err
		}
		for _, hd := range holds {
			if hd.Purpose != purpose || !hd.Active(now) {
				continue
			}
			sealed, err := tx.HeldFields(ctx, hd.ID)
			if err != nil {
				return err
			}
			copies = append(copies, heldCopy{hd, sealed})
			for _, f := range hd.Fields {
				held[f] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(copies) == 0 {
		return nil, Errorf(ENOTFOUND, "no active legal hold on the subject has purpose %s", purpose)
	}
	for _, f := range fields {
		if !held[f] {
			return nil, Errorf(EFORBIDDEN, "field %s is not held for purpose %s", f, purpose)
		}
	}
	out := FieldValues{}
	for _, c := range copies {
		key, err := s.keys.SubjectKey(ctx, HoldKeySubject(subjectID, c.hold.ID))
		if err != nil {
			return nil, err
		}
		for _, sf := range c.sealed {
			if len(fields) > 0 && !slices.Contains(fields, sf.Field) {
				continue
			}
			if _, dup := out[sf.Field]; dup {
				continue // the older hold's copy wins: it is the value first preserved
			}
			v, err := key.Open(sf.Field, sf.Value)
			if err != nil {
				return nil, err
			}
			out[sf.Field] = v
		}
	}
	if err := s.store.Write(ctx, func(tx Tx) error {
		return tx.AppendAudit(ctx, s.audit(ctx, AuditReadHeld, subjectID, purpose, out.Names(), ""))
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// guard refuses reads of held fields for any purpose but the hold's.
func (h *Holds) guard(ctx context.Context, tx Tx, subjectID, purpose string, fields []string) error {
	holds, err := tx.SubjectHolds(ctx, subjectID)
	if err != nil {
		return err
	}
	now := h.svc.Now()
	for _, hd := range holds {
		if !hd.Active(now) || hd.Purpose == purpose {
			continue
		}
		for _, f := range fields {
			if slices.Contains(hd.Fields, f) {
				return Errorf(EFORBIDDEN, "field %s is under a legal hold (%s): it is kept for storage only and read only for purpose %s", f, hd.Case, hd.Purpose)
			}
		}
	}
	return nil
}

// releaseExpiredOf releases the subject's holds whose Until has passed, so that an
// erasure does not leave their copies behind.
func (h *Holds) releaseExpiredOf(ctx context.Context, subjectID string) error {
	var holds []LegalHold
	if err := h.svc.store.Read(ctx, func(tx Tx) (err error) { holds, err = tx.SubjectHolds(ctx, subjectID); return err }); err != nil {
		return err
	}
	now := h.svc.Now()
	for _, hd := range holds {
		if hd.ReleasedAt.IsZero() && !hd.Active(now) {
			if _, err := h.release(ctx, hd.ID, "until reached"); err != nil && ErrorCode(err) != ECONFLICT {
				return err
			}
		}
	}
	return nil
}

// retained returns the unreleased holds on subjectID with the fields each keeps
// a copy of: whatever still exists is listed, so a certificate never calls a held
// copy erased.
func (h *Holds) retained(ctx context.Context, subjectID string) ([]RetainedField, error) {
	var out []RetainedField
	err := h.svc.store.Read(ctx, func(tx Tx) error {
		holds, err := tx.SubjectHolds(ctx, subjectID)
		if err != nil {
			return err
		}
		for _, hd := range holds {
			if !hd.ReleasedAt.IsZero() {
				continue
			}
			sealed, err := tx.HeldFields(ctx, hd.ID)
			if err != nil {
				return err
			}
			for _, sf := range sealed {
				out = append(out, RetainedField{Field: sf.Field, HoldID: hd.ID, Case: hd.Case, Reference: hd.Reference,
					Purpose: hd.Purpose, Until: hd.Until, KeyID: hd.KeyID})
			}
		}
		return nil
	})
	return out, err
}
