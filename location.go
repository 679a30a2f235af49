package steward

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Location (policy §2.3, DESIGN.md P7) is optional: it is stored only with consent
// to a purpose of the location field, sealed and reduced to the declared precision,
// and deleted once older than the declared retention by RunRetention. No other
// operation needs it, so refusing it never blocks a basic function.

// SetLocation stores the signed-in subject's position, rounded to the location
// field's declared precision (about 1 km for two decimal places) and stamped with
// the time received. Errors: EUNAUTHORIZED for a caller who is not a subject;
// EFORBIDDEN when no purpose of the location field has its basis (consent to
// location_services, separate because location is sensitive: PIPL Art. 29);
// EINVALID for coordinates out of range.
func (s *Service) SetLocation(ctx context.Context, latitude, longitude float64) (*Location, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	f, ok := s.decl.Field(LocationField)
	if !ok || f.Kind != KindLocation {
		return nil, Errorf(EFORBIDDEN, "location is not collected: the declaration has no location field")
	}
	now := s.Now()
	raw, _ := json.Marshal(Location{Latitude: latitude, Longitude: longitude, At: now})
	value, err := NormalizeFieldValue(f, raw, s.decl.PhoneRegion, s.phone)
	if err != nil {
		return nil, err
	}
	var loc Location
	if err := json.Unmarshal(value, &loc); err != nil {
		return nil, err
	}
	key, err := s.keys.SubjectKey(ctx, id)
	if err != nil {
		return nil, err
	}
	sealed, err := key.Seal(f.Name, value)
	if err != nil {
		return nil, err
	}
	err = s.store.Write(ctx, func(tx Tx) error {
		purpose, err := s.fieldBasis(ctx, tx, id, f)
		if err != nil {
			return err
		}
		if err := tx.PutFields(ctx, []SealedField{{SubjectID: id, Field: f.Name, Value: sealed, UpdatedAt: now}}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditUpdate, id, purpose, []string{f.Name}, ""))
	})
	if err != nil {
		return nil, err
	}
	return &loc, nil
}

// fieldBasis returns the first purpose of field f whose legal basis holds for
// subject id, or EFORBIDDEN naming what is missing.
func (s *Service) fieldBasis(ctx context.Context, tx Tx, id string, f *Field) (string, error) {
	var first error
	for _, name := range f.Purposes {
		p, ok := s.decl.Purpose(name)
		if !ok {
			continue
		}
		st, err := tx.ConsentState(ctx, id, name)
		if err != nil && ErrorCode(err) != ENOTFOUND {
			return "", err
		}
		err = s.decl.BasisHolds(p, st)
		if err == nil {
			return name, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = Errorf(EFORBIDDEN, "field %s has no declared purpose", f.Name)
	}
	return "", first
}

// DeleteLocation deletes the signed-in subject's stored position, if any, and
// reports whether there was one. It needs no consent: deleting never does.
func (s *Service) DeleteLocation(ctx context.Context) (bool, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return false, err
	}
	var had bool
	err = s.store.Write(ctx, func(tx Tx) error {
		sealed, err := tx.GetFields(ctx, id, []string{LocationField})
		if err != nil || len(sealed) == 0 {
			return err
		}
		had = true
		if err := tx.DeleteFields(ctx, id, []string{LocationField}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditUpdate, id, "", []string{LocationField}, "deleted by the subject"))
	})
	return had, err
}

// AuditRetention is the audit action of a field deleted because its retention ran out.
const AuditRetention = "retention.expire"

// retentionBatch bounds how many subjects one retention transaction covers, so a
// long backlog does not hold the writer for long.
const retentionBatch = 500

// RetentionTx is the part of Tx that deletes data whose retention ran out. Each
// method deletes at most limit subjects' data older than before and returns, per
// subject, how many items it deleted; fewer than limit subjects means done.
type RetentionTx interface {
	// ExpireFields deletes sealed values of field last written before before.
	ExpireFields(ctx context.Context, field string, before time.Time, limit int) (map[string]int, error)
	// ExpireClicks deletes link clicks made before before.
	ExpireClicks(ctx context.Context, before time.Time, limit int) (map[string]int, error)
	// ExpireContactBooks deletes address books (hashes and summary) imported before before.
	ExpireContactBooks(ctx context.Context, before time.Time, limit int) (map[string]int, error)
	// ExpireCodes deletes up to limit one-time codes created before before and
	// returns how many it deleted; fewer than limit means done.
	ExpireCodes(ctx context.Context, before time.Time, limit int) (int, error)
}

// CodeRetention is how long a one-time code is kept after it was sent: its
// row holds the phone number's blind index, also for people who never
// registered, and a keyed hash of the address of the client that asked for it.
// The hourly send limits need an hour of codes; a day more leaves time to look
// into abuse of the code endpoint. Then RunRetention deletes it (policy §8, the
// shortest period necessary; PIPL Art. 19).
const CodeRetention = 25 * time.Hour

// RetentionResult is what one retention run did to one field.
type RetentionResult struct {
	Field    string    `json:"field"`
	Days     int       `json:"days"`
	Cutoff   time.Time `json:"cutoff"`   // data older than this was deleted
	Subjects int       `json:"subjects"` // subjects with data deleted
	Items    int       `json:"items"`    // values, clicks or hashes deleted
}

// RetentionReport is the outcome of RunRetention.
type RetentionReport struct {
	RanAt   time.Time         `json:"ran_at"`
	Fields  []RetentionResult `json:"fields"`
	Codes   int               `json:"codes"`             // one-time codes older than CodeRetention deleted
	Skipped []string          `json:"skipped,omitempty"` // derived fields with a duration rule Steward cannot expire
}

// RunRetention deletes every value of every field whose retention rule is a
// duration (RetainFor) once it is older than the declared number of days (policy
// §8: the shortest period necessary, then delete; P27): sealed fields by the time
// they were last written, link clicks by the time of the click, address books by
// the time of import. Each subject's deletion is audited (action retention.expire,
// the field, counts only). It is idempotent: run it daily (`steward retention run`).
// Callers: the system and staff with the admin role; EFORBIDDEN for others.
func (s *Service) RunRetention(ctx context.Context) (*RetentionReport, error) {
	a := ActorFrom(ctx)
	if a.Kind != ActorSystem && !a.HasRole(RoleAdmin) {
		return nil, Errorf(EFORBIDDEN, "only the system or an admin may run retention")
	}
	now := s.Now()
	rep := &RetentionReport{RanAt: now, Fields: []RetentionResult{}}
	for i := range s.decl.Fields {
		f := &s.decl.Fields[i]
		if f.Retention.Rule != RetainFor || f.Retention.Days <= 0 {
			continue
		}
		var expire func(tx Tx, before time.Time) (map[string]int, error)
		switch {
		case f.Kind != KindDerived:
			expire = func(tx Tx, before time.Time) (map[string]int, error) {
				return tx.ExpireFields(ctx, f.Name, before, retentionBatch)
			}
		case f.Name == LinkClicksField:
			expire = func(tx Tx, before time.Time) (map[string]int, error) {
				return tx.ExpireClicks(ctx, before, retentionBatch)
			}
		case f.Name == ContactsField:
			expire = func(tx Tx, before time.Time) (map[string]int, error) {
				return tx.ExpireContactBooks(ctx, before, retentionBatch)
			}
		default:
			rep.Skipped = append(rep.Skipped, f.Name)
			s.log.Warn("retention: derived field has a duration rule but no store to expire it from", "field", f.Name)
			continue
		}
		res := RetentionResult{Field: f.Name, Days: f.Retention.Days, Cutoff: now.Add(-time.Duration(f.Retention.Days) * 24 * time.Hour)}
		for {
			var done map[string]int
			err := s.store.Write(ctx, func(tx Tx) error {
				var err error
				if done, err = expire(tx, res.Cutoff); err != nil {
					return err
				}
				entries := make([]*AuditEntry, 0, len(done))
				for _, id := range sortedKeys(done) {
					entries = append(entries, s.audit(ctx, AuditRetention, id, "", []string{f.Name},
						fmt.Sprintf("rule=%s days=%d items=%d", RetainFor, f.Retention.Days, done[id])))
				}
				return tx.AppendAudit(ctx, entries...)
			})
			if err != nil {
				return nil, fmt.Errorf("steward: retention of %s: %w", f.Name, err)
			}
			res.Subjects += len(done)
			for _, n := range done {
				res.Items += n
			}
			if len(done) < retentionBatch {
				break
			}
		}
		rep.Fields = append(rep.Fields, res)
	}
	var err error
	if rep.Codes, err = s.expireCodes(ctx, now.Add(-CodeRetention)); err != nil {
		return nil, fmt.Errorf("steward: retention of one-time codes: %w", err)
	}
	return rep, nil
}

// expireCodes deletes the one-time codes sent before cutoff, in batches, each
// batch audited with its count, and returns how many it deleted.
func (s *Service) expireCodes(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		var n int
		err := s.store.Write(ctx, func(tx Tx) (err error) {
			if n, err = tx.ExpireCodes(ctx, cutoff, retentionBatch); err != nil || n == 0 {
				return err
			}
			return tx.AppendAudit(ctx, s.audit(ctx, AuditRetention, "", "", nil,
				fmt.Sprintf("one_time_codes=%d sent_before=%s", n, cutoff.UTC().Format(time.RFC3339))))
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < retentionBatch {
			return total, nil
		}
	}
}

// String summarizes the report in one line per field, for the CLI.
func (r *RetentionReport) String() string {
	var b strings.Builder
	for _, f := range r.Fields {
		fmt.Fprintf(&b, "%s: kept %d days; deleted %d items of %d subjects older than %s\n", f.Field, f.Days, f.Items, f.Subjects, f.Cutoff.Format(time.RFC3339))
	}
	for _, name := range r.Skipped {
		fmt.Fprintf(&b, "%s: skipped (derived field Steward cannot expire)\n", name)
	}
	fmt.Fprintf(&b, "one-time codes: kept %s; deleted %d\n", CodeRetention, r.Codes)
	return b.String()
}

func sortedKeys(m map[string]int) []string {
	// Sorted, so the audit trail is deterministic.
	return slices.Sorted(maps.Keys(m))
}
