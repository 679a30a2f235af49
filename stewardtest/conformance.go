package stewardtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/keyring"
)

// RunStoreConformance runs the contract every steward.Store and keyring.KeyStore
// must honour, one subtest per part of it, each on a fresh pair returned by open
// (which closes them when its t ends). It calls the Tx methods directly, not
// through the Service, and checks exact values: the rows read back, their order,
// timestamps in UTC to the microsecond, and the error codes (ENOTFOUND,
// ECONFLICT, EGONE) the interfaces promise.
func RunStoreConformance(t *testing.T, open func(t *testing.T) (steward.Store, keyring.KeyStore)) {
	tests := []struct {
		name string
		run  func(t *testing.T, s steward.Store, ks keyring.KeyStore)
	}{
		{"Ping", confPing},
		{"Subjects", confSubjects},
		{"Indexes", confIndexes},
		{"Fields", confFields},
		{"PurposeSnapshot", confPurposeSnapshot},
		{"Consents", confConsents},
		{"Codes", confCodes},
		{"Sessions", confSessions},
		{"APITokens", confAPITokens},
		{"AuditTrail", confAuditTrail},
		{"AccessLog", confAccessLog},
		{"Outbox", confOutbox},
		{"OutboxClaims", confOutboxClaims},
		{"OutboxClaimsConcurrent", confOutboxClaimsConcurrent},
		{"WriteRollsBack", confWriteRollsBack},
		{"WriteConcurrent", confWriteConcurrent},
		{"WriteCancelled", confWriteCancelled},
		{"Read", confReadSees},
		{"KeyStore", confKeyStore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ks := open(t)
			tt.run(t, s, ks)
		})
	}
}

// confAt returns the suite's reference time plus d: a UTC instant with
// microseconds, the precision every store keeps.
func confAt(d time.Duration) time.Time {
	return time.Date(2026, 11, 29, 2, 0, 0, 123456000, time.UTC).Add(d)
}

// confOpts compare values read back exactly: times must be the same instant and
// in UTC (a store returning local times fails), nil and empty slices are equal.
var confOpts = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) && a.Location() == b.Location() }),
	cmpopts.EquateEmpty(),
}

func confDiff(t *testing.T, what string, want, got any, opts ...cmp.Option) {
	t.Helper()
	if diff := cmp.Diff(want, got, append(cmp.Options{confOpts}, opts...)...); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

func confCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := steward.ErrorCode(err); got != code {
		t.Errorf("%s: error code %q (%v), want %q", what, got, err, code)
	}
}

func confWrite(t *testing.T, s steward.Store, fn func(tx steward.Tx) error) {
	t.Helper()
	if err := s.Write(context.Background(), fn); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func confRead(t *testing.T, s steward.Store, fn func(tx steward.Tx) error) {
	t.Helper()
	if err := s.Read(context.Background(), fn); err != nil {
		t.Fatalf("read: %v", err)
	}
}

func confSubject(id string) *steward.Subject {
	return &steward.Subject{ID: id, Status: steward.SubjectActive, Region: "CN-SH", KeyID: "dek-" + id, CreatedAt: confAt(0)}
}

// confSubjectsExist creates active subjects with ids.
func confSubjectsExist(t *testing.T, s steward.Store, ids ...string) {
	t.Helper()
	confWrite(t, s, func(tx steward.Tx) error {
		for _, id := range ids {
			if err := tx.CreateSubject(context.Background(), confSubject(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

func confPing(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func confSubjects(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	// Created in another zone with microseconds: read back in UTC.
	want := &steward.Subject{ID: "s1", Status: steward.SubjectActive, Region: "CN-SH", KeyID: "dek-1",
		CreatedAt: confAt(0).In(time.FixedZone("CST", 8*3600))}
	confWrite(t, s, func(tx steward.Tx) error { return tx.CreateSubject(ctx, want) })
	want.CreatedAt = want.CreatedAt.UTC()

	confRead(t, s, func(tx steward.Tx) error {
		got, err := tx.GetSubject(ctx, "s1")
		if err != nil {
			t.Fatalf("GetSubject: %v", err)
		}
		confDiff(t, "GetSubject", want, got)
		_, err = tx.GetSubject(ctx, "nobody")
		confCode(t, "GetSubject(unknown)", err, steward.ENOTFOUND)
		return nil
	})

	err := s.Write(ctx, func(tx steward.Tx) error { return tx.CreateSubject(ctx, confSubject("s1")) })
	confCode(t, "CreateSubject(same id)", err, steward.ECONFLICT)

	confWrite(t, s, func(tx steward.Tx) error { return tx.CancelSubject(ctx, "s1", confAt(time.Hour)) })
	confRead(t, s, func(tx steward.Tx) error {
		got, err := tx.GetSubject(ctx, "s1")
		if err != nil {
			t.Fatalf("GetSubject after cancel: %v", err)
		}
		confDiff(t, "GetSubject after cancel", &steward.Subject{ID: "s1", Status: steward.SubjectCancelled, Region: "CN-SH",
			KeyID: "", CreatedAt: confAt(0), CancelledAt: confAt(time.Hour)}, got)
		return nil
	})

	err = s.Write(ctx, func(tx steward.Tx) error { return tx.CancelSubject(ctx, "s1", confAt(2*time.Hour)) })
	confCode(t, "CancelSubject twice", err, steward.ENOTFOUND)
	err = s.Write(ctx, func(tx steward.Tx) error { return tx.CancelSubject(ctx, "nobody", confAt(time.Hour)) })
	confCode(t, "CancelSubject(unknown)", err, steward.ENOTFOUND)
	confRead(t, s, func(tx steward.Tx) error {
		got, err := tx.GetSubject(ctx, "s1")
		if err != nil {
			t.Fatalf("GetSubject: %v", err)
		}
		if !got.CancelledAt.Equal(confAt(time.Hour)) {
			t.Errorf("a second CancelSubject moved CancelledAt to %v, want %v", got.CancelledAt, confAt(time.Hour))
		}
		return nil
	})

	// Tombstones wait for their key's destruction, oldest cancellation first.
	confSubjectsExist(t, s, "s2", "s3", "s4")
	confWrite(t, s, func(tx steward.Tx) error {
		if err := tx.CancelSubject(ctx, "s3", confAt(30*time.Minute)); err != nil {
			return err
		}
		return tx.CancelSubject(ctx, "s2", confAt(3*time.Hour))
	})
	pending := func(limit int, want ...string) {
		t.Helper()
		confRead(t, s, func(tx steward.Tx) error {
			got, err := tx.PendingKeyDestructions(ctx, limit)
			if err != nil {
				t.Fatalf("PendingKeyDestructions: %v", err)
			}
			confDiff(t, "PendingKeyDestructions", want, got)
			return nil
		})
	}
	pending(10, "s3", "s1", "s2")
	pending(2, "s3", "s1")
	confWrite(t, s, func(tx steward.Tx) error { return tx.MarkKeyDestroyed(ctx, "s1", confAt(4*time.Hour)) })
	confWrite(t, s, func(tx steward.Tx) error { return tx.MarkKeyDestroyed(ctx, "s1", confAt(5*time.Hour)) }) // again: harmless
	pending(10, "s3", "s2")
	err = s.Write(ctx, func(tx steward.Tx) error { return tx.MarkKeyDestroyed(ctx, "s4", confAt(time.Hour)) })
	confCode(t, "MarkKeyDestroyed(active subject)", err, steward.ENOTFOUND)
	err = s.Write(ctx, func(tx steward.Tx) error { return tx.MarkKeyDestroyed(ctx, "nobody", confAt(time.Hour)) })
	confCode(t, "MarkKeyDestroyed(unknown)", err, steward.ENOTFOUND)
	confWrite(t, s, func(tx steward.Tx) error {
		if err := tx.MarkKeyDestroyed(ctx, "s2", confAt(4*time.Hour)); err != nil {
			return err
		}
		return tx.MarkKeyDestroyed(ctx, "s3", confAt(4*time.Hour))
	})
	pending(10)
}

func confIndexes(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	confSubjectsExist(t, s, "s1", "s2")
	phone := []byte{0x01, 0x02, 0x03, 0x00, 0xff} // blind indexes are bytes, zeros included
	confWrite(t, s, func(tx steward.Tx) error { return tx.PutIndex(ctx, "phone", phone, "s1") })

	err := s.Write(ctx, func(tx steward.Tx) error { return tx.PutIndex(ctx, "phone", phone, "s2") })
	confCode(t, "PutIndex(same kind and value, other subject)", err, steward.ECONFLICT)
	err = s.Write(ctx, func(tx steward.Tx) error { return tx.PutIndex(ctx, "phone", phone, "s1") })
	confCode(t, "PutIndex(same kind and value, same subject)", err, steward.ECONFLICT)
	confWrite(t, s, func(tx steward.Tx) error { return tx.PutIndex(ctx, "wechat", phone, "s2") })

	lookup := func(tx steward.Tx, kind string, value []byte, want, code string) {
		t.Helper()
		got, err := tx.LookupIndex(ctx, kind, value)
		confCode(t, fmt.Sprintf("LookupIndex(%s, %x)", kind, value), err, code)
		if got != want {
			t.Errorf("LookupIndex(%s, %x) = %q, want %q", kind, value, got, want)
		}
	}
	confRead(t, s, func(tx steward.Tx) error {
		lookup(tx, "phone", phone, "s1", "")
		lookup(tx, "wechat", phone, "s2", "")
		lookup(tx, "phone", phone[:4], "", steward.ENOTFOUND) // a prefix is another value
		lookup(tx, "email", phone, "", steward.ENOTFOUND)
		return nil
	})

	confWrite(t, s, func(tx steward.Tx) error { return tx.DeleteIndexes(ctx, "s1") })
	confRead(t, s, func(tx steward.Tx) error {
		lookup(tx, "phone", phone, "", steward.ENOTFOUND)
		lookup(tx, "wechat", phone, "s2", "")
		return nil
	})
	// The value is free again once its subject's indexes are gone.
	confWrite(t, s, func(tx steward.Tx) error { return tx.PutIndex(ctx, "phone", phone, "s2") })
	confRead(t, s, func(tx steward.Tx) error { lookup(tx, "phone", phone, "s2", ""); return nil })
}

func confFields(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	confSubjectsExist(t, s, "s1", "s2")
	cst := time.FixedZone("CST", 8*3600)
	put := []steward.SealedField{
		{SubjectID: "s1", Field: "name", Value: []byte("sealed-name-1"), UpdatedAt: confAt(0).In(cst)},
		{SubjectID: "s1", Field: "birthday", Value: []byte{0x00, 0x01, 0xfe}, UpdatedAt: confAt(time.Microsecond)},
		{SubjectID: "s1", Field: "city", Value: []byte("sealed-city"), UpdatedAt: confAt(2 * time.Microsecond)},
		{SubjectID: "s2", Field: "name", Value: []byte("sealed-name-2"), UpdatedAt: confAt(0)},
	}
	confWrite(t, s, func(tx steward.Tx) error { return tx.PutFields(ctx, put) })

	byField := cmpopts.SortSlices(func(a, b steward.SealedField) bool { return a.Field < b.Field })
	get := func(what, subjectID string, names []string, want []steward.SealedField) {
		t.Helper()
		confRead(t, s, func(tx steward.Tx) error {
			got, err := tx.GetFields(ctx, subjectID, names)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			confDiff(t, what, want, got, byField)
			return nil
		})
	}
	name1 := steward.SealedField{SubjectID: "s1", Field: "name", Value: []byte("sealed-name-1"), UpdatedAt: confAt(0)}
	birthday1, city1, name2 := put[1], put[2], put[3]
	get("GetFields(s1, all)", "s1", nil, []steward.SealedField{name1, birthday1, city1})
	get("GetFields(s2, all)", "s2", nil, []steward.SealedField{name2})
	get("GetFields(s1, name city unknown)", "s1", []string{"name", "city", "unknown"}, []steward.SealedField{name1, city1})
	get("GetFields(s1, empty list)", "s1", []string{}, nil)
	get("GetFields(unknown subject)", "nobody", nil, nil)

	// Upsert: a second PutFields of a field replaces its value and time; a field
	// given twice in one call takes the last value.
	name1b := steward.SealedField{SubjectID: "s1", Field: "name", Value: []byte("sealed-name-1b"), UpdatedAt: confAt(time.Hour)}
	name1x := steward.SealedField{SubjectID: "s1", Field: "name", Value: []byte("sealed-name-1x"), UpdatedAt: confAt(time.Minute)}
	confWrite(t, s, func(tx steward.Tx) error { return tx.PutFields(ctx, []steward.SealedField{name1x, name1b}) })
	get("GetFields(s1, name) after upsert", "s1", []string{"name"}, []steward.SealedField{name1b})

	// More fields than one statement holds.
	var many []steward.SealedField
	for i := range 40 {
		many = append(many, steward.SealedField{SubjectID: "s2", Field: fmt.Sprintf("f%02d", i), Value: []byte{byte(i)}, UpdatedAt: confAt(0)})
	}
	confWrite(t, s, func(tx steward.Tx) error { return tx.PutFields(ctx, many) })
	get("GetFields(s2, 40 fields)", "s2", []string{"f00", "f17", "f39"}, []steward.SealedField{many[0], many[17], many[39]})
	confWrite(t, s, func(tx steward.Tx) error {
		names := make([]string, len(many))
		for i, f := range many {
			names[i] = f.Field
		}
		return tx.DeleteFields(ctx, "s2", names)
	})

	// An empty or nil list deletes nothing: it never means "all".
	confWrite(t, s, func(tx steward.Tx) error {
		if err := tx.DeleteFields(ctx, "s1", []string{}); err != nil {
			return err
		}
		return tx.DeleteFields(ctx, "s1", nil)
	})
	get("GetFields(s1) after DeleteFields(empty)", "s1", nil, []steward.SealedField{name1b, birthday1, city1})

	confWrite(t, s, func(tx steward.Tx) error { return tx.DeleteFields(ctx, "s1", []string{"birthday", "unknown"}) })
	get("GetFields(s1) after DeleteFields(birthday)", "s1", nil, []steward.SealedField{name1b, city1})
	get("GetFields(s2) after DeleteFields(s1)", "s2", nil, []steward.SealedField{name2})

	confWrite(t, s, func(tx steward.Tx) error { return tx.DeleteAllFields(ctx, "s1") })
	get("GetFields(s1) after DeleteAllFields", "s1", nil, nil)
	get("GetFields(s2) after DeleteAllFields(s1)", "s2", nil, []steward.SealedField{name2})
}

func confPurposeSnapshot(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	confSubjectsExist(t, s, "s1", "s2")
	fields := []steward.SealedField{
		{SubjectID: "s1", Field: "name", Value: []byte("sealed-name"), UpdatedAt: confAt(0)},
		{SubjectID: "s1", Field: "birthday", Value: []byte("sealed-birthday"), UpdatedAt: confAt(time.Second)},
		{SubjectID: "s1", Field: "phone", Value: []byte("sealed-phone"), UpdatedAt: confAt(2 * time.Second)},
		{SubjectID: "s2", Field: "name", Value: []byte("sealed-other"), UpdatedAt: confAt(0)},
	}
	grant := &steward.ConsentEvent{ID: "ev-1", SubjectID: "s1", Purpose: "health", Action: steward.ConsentGrant, Separate: true,
		NoticeVersion: "2026-11", Method: "app", Actor: "subject:s1", At: confAt(time.Minute)}
	confWrite(t, s, func(tx steward.Tx) error {
		if err := tx.PutFields(ctx, fields); err != nil {
			return err
		}
		return tx.AddConsentEvent(ctx, grant)
	})

	byField := cmpopts.SortSlices(func(a, b steward.SealedField) bool { return a.Field < b.Field })
	snap := func(what, subjectID, purpose string, names []string, want *steward.PurposeSnapshot) {
		t.Helper()
		confRead(t, s, func(tx steward.Tx) error {
			got, err := tx.PurposeSnapshot(ctx, subjectID, purpose, names)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			confDiff(t, what, want, got, byField)
			return nil
		})
		// The store's own PurposeSnapshot, twice: it may answer from memory, but
		// only what a transaction would read now.
		for _, round := range []string{"first", "again"} {
			got, err := s.PurposeSnapshot(ctx, subjectID, purpose, names)
			if err != nil {
				t.Fatalf("Store.%s, %s: %v", what, round, err)
			}
			confDiff(t, "Store."+what+", "+round, want, got, byField)
		}
	}
	snap("PurposeSnapshot(no consent)", "s1", "marketing", []string{"name"},
		&steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: nil, Fields: fields[:1]})
	snap("PurposeSnapshot(granted)", "s1", "health", []string{"name", "birthday", "unknown"},
		&steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: &steward.ConsentState{Purpose: "health", Granted: true,
			Separate: true, NoticeVersion: "2026-11", EventID: "ev-1", At: confAt(time.Minute)}, Fields: fields[:2]})
	snap("PurposeSnapshot(no fields named)", "s1", "health", nil,
		&steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: &steward.ConsentState{Purpose: "health", Granted: true,
			Separate: true, NoticeVersion: "2026-11", EventID: "ev-1", At: confAt(time.Minute)}})
	snap("PurposeSnapshot(no fields stored)", "s2", "health", []string{"birthday"},
		&steward.PurposeSnapshot{Status: steward.SubjectActive})

	confRead(t, s, func(tx steward.Tx) error {
		_, err := tx.PurposeSnapshot(ctx, "nobody", "health", []string{"name"})
		confCode(t, "PurposeSnapshot(unknown subject)", err, steward.ENOTFOUND)
		return nil
	})

	// Withdrawal, legal holds (released ones do not count) and cancellation.
	withdraw := &steward.ConsentEvent{ID: "ev-2", SubjectID: "s1", Purpose: "health", Action: steward.ConsentWithdraw,
		NoticeVersion: "2026-11", Method: "app", Actor: "subject:s1", At: confAt(2 * time.Minute)}
	hold := func(id string) *steward.LegalHold {
		return &steward.LegalHold{ID: id, SubjectID: "s1", Fields: []string{"name"}, Case: steward.HoldLaw, Reference: "ref-" + id,
			Purpose: "accounting", KeyID: "dek-" + id, PlacedAt: confAt(time.Hour), PlacedBy: "staff:alice"}
	}
	confWrite(t, s, func(tx steward.Tx) error {
		for _, err := range []error{
			tx.AddConsentEvent(ctx, withdraw),
			tx.CreateHold(ctx, hold("h1")),
			tx.CreateHold(ctx, hold("h2")),
			tx.CreateHold(ctx, hold("h3")),
			tx.ReleaseHold(ctx, "h2", confAt(2*time.Hour), "staff:alice", "case closed"),
			tx.CancelSubject(ctx, "s1", confAt(3*time.Hour)),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	snap("PurposeSnapshot(withdrawn, held, cancelled)", "s1", "health", []string{"phone"},
		&steward.PurposeSnapshot{Status: steward.SubjectCancelled, Holds: 2, Consent: &steward.ConsentState{Purpose: "health",
			Granted: false, Separate: false, NoticeVersion: "2026-11", EventID: "ev-2", At: confAt(2 * time.Minute)}, Fields: fields[2:3]})
}

func confConsents(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	confSubjectsExist(t, s, "s1", "s2")
	// Ids out of time order, so that an order by id shows.
	ev := func(id, subject, purpose, action string, separate bool, at time.Duration) steward.ConsentEvent {
		return steward.ConsentEvent{ID: id, SubjectID: subject, Purpose: purpose, Action: action, Separate: separate,
			NoticeVersion: "v" + id, Method: "app", Actor: "subject:" + subject, At: confAt(at)}
	}
	events := []steward.ConsentEvent{
		ev("ev-c", "s1", "service", steward.ConsentGrant, false, 0),
		ev("ev-a", "s1", "marketing", steward.ConsentGrant, true, time.Minute),
		ev("ev-b", "s1", "marketing", steward.ConsentWithdraw, false, 2*time.Minute),
		ev("ev-0", "s2", "marketing", steward.ConsentGrant, false, 3*time.Minute),
	}
	// Several events in one call, two of them for one purpose (its last one
	// sets the state), then one alone.
	confWrite(t, s, func(tx steward.Tx) error {
		return tx.AddConsentEvents(ctx, []*steward.ConsentEvent{&events[0], &events[1], &events[2]})
	})
	confWrite(t, s, func(tx steward.Tx) error { return tx.AddConsentEvent(ctx, &events[3]) })
	confRead(t, s, func(tx steward.Tx) error {
		got, err := tx.ConsentState(ctx, "s1", "marketing")
		if err != nil {
			t.Fatalf("ConsentState(marketing): %v", err)
		}
		confDiff(t, "ConsentState(s1, marketing)", &steward.ConsentState{Purpose: "marketing", Granted: false, Separate: false,
			NoticeVersion: "vev-b", EventID: "ev-b", At: confAt(2 * time.Minute)}, got)
		got, err = tx.ConsentState(ctx, "s1", "service")
		if err != nil {
			t.Fatalf("ConsentState(service): %v", err)
		}
		service := steward.ConsentState{Purpose: "service", Granted: true, NoticeVersion: "vev-c", EventID: "ev-c", At: confAt(0)}
		confDiff(t, "ConsentState(s1, service)", &service, got)
		_, err = tx.ConsentState(ctx, "s1", "research")
		confCode(t, "ConsentState(no event)", err, steward.ENOTFOUND)

		states, err := tx.ConsentStates(ctx, "s1")
		if err != nil {
			t.Fatalf("ConsentStates: %v", err)
		}
		confDiff(t, "ConsentStates(s1), by purpose", []steward.ConsentState{events[2].Apply(), service}, states)
		states, err = tx.ConsentStates(ctx, "nobody")
		if err != nil || len(states) != 0 {
			t.Errorf("ConsentStates(unknown) = %v, %v; want none, nil", states, err)
		}

		got2, err := tx.ConsentEvents(ctx, "s1")
		if err != nil {
			t.Fatalf("ConsentEvents: %v", err)
		}
		confDiff(t, "ConsentEvents(s1), in time order", events[:3], got2)
		return nil
	})
}

func confCodes(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	confSubjectsExist(t, s, "s1")
	targetA, targetB, targetC := []byte("target-a"), []byte("target-b"), []byte("target-c")
	code := func(id, purpose string, target []byte, subject, client string, at time.Duration) *steward.OneTimeCode {
		return &steward.OneTimeCode{ID: id, Purpose: purpose, Target: target, SubjectID: subject, CodeHash: []byte("hash-" + id),
			Client: client, CreatedAt: confAt(at), ExpiresAt: confAt(at + 10*time.Minute)}
	}
	c1 := code("code-1", steward.CodeRegister, targetA, "", "client-1", 0)
	c2 := code("code-2", steward.CodeRegister, targetA, "", "client-1", time.Minute)
	c3 := code("code-3", steward.CodeSignIn, targetA, "", "client-2", 2*time.Minute)
	c4 := code("code-4", steward.CodeCancel, targetB, "s1", "client-1", 3*time.Minute)
	c5 := code("code-5", steward.CodeCancel, targetB, "s1", "client-2", 4*time.Minute)
	c6 := code("code-6", steward.CodeRegister, targetC, "", "client-3", 5*time.Minute)
	confWrite(t, s, func(tx steward.Tx) error {
		for _, c := range []*steward.OneTimeCode{c1, c2, c3, c4, c5, c6} {
			if err := tx.CreateCode(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})

	latest := func(tx steward.Tx, purpose string, target []byte, want *steward.OneTimeCode, code string) {
		t.Helper()
		got, err := tx.LatestCode(ctx, purpose, target)
		confCode(t, fmt.Sprintf("LatestCode(%s, %s)", purpose, target), err, code)
		if err == nil {
			confDiff(t, fmt.Sprintf("LatestCode(%s, %s)", purpose, target), want, got)
		}
	}
	count := func(tx steward.Tx, since time.Time, target []byte, client string, wantTarget, wantClient int) {
		t.Helper()
		byTarget, byClient, latest, err := tx.CountCodes(ctx, since, target, client, steward.CodeRegister)
		var wantLatest time.Time
		if c, err := tx.LatestCode(ctx, steward.CodeRegister, target); err == nil {
			wantLatest = c.CreatedAt
		}
		if err != nil || byTarget != wantTarget || byClient != wantClient || !latest.Equal(wantLatest) {
			t.Errorf("CountCodes(%v, %s, %s, register) = %d, %d, %v, %v; want %d, %d, %v, nil", since, target, client, byTarget, byClient, latest, err, wantTarget, wantClient, wantLatest)
		}
	}
	confRead(t, s, func(tx steward.Tx) error {
		latest(tx, steward.CodeRegister, targetA, c2, "")
		latest(tx, steward.CodeSignIn, targetA, c3, "")
		latest(tx, steward.CodeRegister, []byte("target-z"), nil, steward.ENOTFOUND)
		got, err := tx.LatestSubjectCode(ctx, steward.CodeCancel, "s1")
		if err != nil {
			t.Fatalf("LatestSubjectCode: %v", err)
		}
		confDiff(t, "LatestSubjectCode(cancel, s1)", c5, got)
		_, err = tx.LatestSubjectCode(ctx, steward.CodeVerify, "s1")
		confCode(t, "LatestSubjectCode(verify, s1)", err, steward.ENOTFOUND)

		count(tx, confAt(0), targetA, "client-2", 3, 2)               // c1 c2 c3; c3 c5
		count(tx, confAt(30*time.Second), targetA, "client-1", 2, 2)  // c2 c3; c2 c4
		count(tx, confAt(150*time.Second), targetA, "client-2", 0, 1) // none; c5
		count(tx, confAt(time.Hour), targetA, "client-1", 0, 0)       // none; none
		count(tx, confAt(-time.Hour), []byte("target-z"), "nobody", 0, 0)
		count(tx, confAt(0), targetA, "", 3, 0) // no client: no count by client
		return nil
	})

	// ConsumeCode spends a code only as read and only while it is the latest.
	consume := func(what string, c *steward.OneTimeCode, at time.Time, want bool) {
		t.Helper()
		var got bool
		confWrite(t, s, func(tx steward.Tx) (err error) { got, err = tx.ConsumeCode(ctx, c, at); return err })
		if got != want {
			t.Errorf("ConsumeCode(%s) = %v, want %v", what, got, want)
		}
	}
	consume("code-1, a newer code was sent since", c1, confAt(time.Minute), false)
	consume("code-3, expired", c3, confAt(time.Hour), false)
	stale := *c3
	stale.Attempts = 1
	consume("code-3, attempts changed since read", &stale, confAt(3*time.Minute), false)
	consume("code-3", c3, confAt(3*time.Minute), true)
	if !c3.ConsumedAt.Equal(confAt(3 * time.Minute)) {
		t.Errorf("ConsumeCode left ConsumedAt %v in the code", c3.ConsumedAt)
	}
	again := *c3
	again.ConsumedAt = time.Time{}
	consume("code-3 again", &again, confAt(4*time.Minute), false)
	confRead(t, s, func(tx steward.Tx) error { latest(tx, steward.CodeSignIn, targetA, c3, ""); return nil })

	// UpdateCode records attempts and consumption, and nothing else.
	upd := *c2
	upd.Attempts, upd.ConsumedAt = 2, confAt(6*time.Minute)
	confWrite(t, s, func(tx steward.Tx) error { return tx.UpdateCode(ctx, &upd) })
	confRead(t, s, func(tx steward.Tx) error { latest(tx, steward.CodeRegister, targetA, &upd, ""); return nil })

	// DeleteCodes removes the subject's codes and the target's, and no others.
	confWrite(t, s, func(tx steward.Tx) error { return tx.DeleteCodes(ctx, "s1", targetA) })
	confRead(t, s, func(tx steward.Tx) error {
		latest(tx, steward.CodeRegister, targetA, nil, steward.ENOTFOUND)
		latest(tx, steward.CodeSignIn, targetA, nil, steward.ENOTFOUND)
		_, err := tx.LatestSubjectCode(ctx, steward.CodeCancel, "s1")
		confCode(t, "LatestSubjectCode after DeleteCodes", err, steward.ENOTFOUND)
		latest(tx, steward.CodeRegister, targetC, c6, "")
		count(tx, confAt(-time.Hour), targetA, "client-3", 0, 1)
		return nil
	})

	// ExpireCodes deletes codes sent before the cutoff, at most limit at a time.
	c7 := code("code-7", steward.CodeRegister, targetA, "", "client-3", 6*time.Minute)
	c8 := code("code-8", steward.CodeSignIn, targetB, "", "client-3", 7*time.Minute)
	confWrite(t, s, func(tx steward.Tx) error {
		if err := tx.CreateCode(ctx, c7); err != nil {
			return err
		}
		return tx.CreateCode(ctx, c8)
	})
	expire := func(before time.Duration, limit, want int) {
		t.Helper()
		var got int
		confWrite(t, s, func(tx steward.Tx) (err error) { got, err = tx.ExpireCodes(ctx, confAt(before), limit); return err })
		if got != want {
			t.Errorf("ExpireCodes(before %v, limit %d) = %d, want %d", before, limit, got, want)
		}
	}
	expire(5*time.Minute, 10, 0) // c6 was sent at 5 min: not before
	expire(7*time.Minute, 1, 1)  // c6 or c7
	expire(7*time.Minute, 10, 1) // the other
	expire(7*time.Minute, 10, 0) // c8 was sent at 7 min
	confRead(t, s, func(tx steward.Tx) error {
		latest(tx, steward.CodeRegister, targetC, nil, steward.ENOTFOUND)
		latest(tx, steward.CodeRegister, targetA, nil, steward.ENOTFOUND)
		latest(tx, steward.CodeSignIn, targetB, c8, "")
		return nil
	})
}

func confSessions(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	confSubjectsExist(t, s, "s1", "s2")
	session := func(id, subject string, revoked time.Time) *steward.Session {
		return &steward.Session{ID: id, TokenHash: []byte("hash-" + id), SubjectID: subject, CreatedAt: confAt(0),
			ExpiresAt: confAt(30 * 24 * time.Hour), RevokedAt: revoked}
	}
	a, b, old, other := session("a", "s1", time.Time{}), session("b", "s1", time.Time{}), session("old", "s1", confAt(time.Minute)), session("other", "s2", time.Time{})
	confWrite(t, s, func(tx steward.Tx) error {
		for _, x := range []*steward.Session{a, b, old, other} {
			if err := tx.CreateSession(ctx, x); err != nil {
				return err
			}
		}
		return nil
	})
	err := s.Write(ctx, func(tx steward.Tx) error { return tx.CreateSession(ctx, session("a", "s2", time.Time{})) })
	confCode(t, "CreateSession(same token hash)", err, steward.ECONFLICT)

	byHash := func(x *steward.Session) {
		t.Helper()
		confRead(t, s, func(tx steward.Tx) error {
			got, err := tx.SessionByHash(ctx, x.TokenHash)
			if err != nil {
				t.Fatalf("SessionByHash(%s): %v", x.ID, err)
			}
			confDiff(t, "SessionByHash("+x.ID+")", x, got)
			return nil
		})
	}
	byHash(a)
	byHash(old)
	confRead(t, s, func(tx steward.Tx) error {
		_, err := tx.SessionByHash(ctx, []byte("hash-nope"))
		confCode(t, "SessionByHash(unknown)", err, steward.ENOTFOUND)
		return nil
	})

	revoke := func(at time.Time, want int) {
		t.Helper()
		var n int
		confWrite(t, s, func(tx steward.Tx) (err error) { n, err = tx.RevokeSessions(ctx, "s1", at); return err })
		if n != want {
			t.Errorf("RevokeSessions(s1, %v) = %d, want %d", at, n, want)
		}
	}
	revoke(confAt(time.Hour), 2) // a and b; old was revoked already
	revoke(confAt(2*time.Hour), 0)
	a.RevokedAt, b.RevokedAt = confAt(time.Hour), confAt(time.Hour)
	byHash(a)
	byHash(b)
	byHash(old)   // keeps its own revocation time
	byHash(other) // another subject's session is untouched
}

func confAPITokens(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	// Ids out of time order, so that an order by id shows.
	alice := &steward.APIToken{ID: "tok-b", TokenHash: []byte("hash-alice"), Kind: steward.TokenStaff, Name: "alice",
		Roles: []string{"admin", "auditor"}, CreatedAt: confAt(0), ExpiresAt: confAt(90 * 24 * time.Hour)}
	shop := &steward.APIToken{ID: "tok-a", TokenHash: []byte("hash-shop"), Kind: steward.TokenApp, Name: "shop", AppID: "shop",
		CreatedAt: confAt(time.Minute)}
	bob := &steward.APIToken{ID: "tok-0", TokenHash: []byte("hash-bob"), Kind: steward.TokenStaff, Name: "bob",
		Roles: []string{"support"}, CreatedAt: confAt(2 * time.Minute)}
	for _, k := range []*steward.APIToken{alice, shop, bob} {
		confWrite(t, s, func(tx steward.Tx) error { return tx.CreateAPIToken(ctx, k) })
	}
	err := s.Write(ctx, func(tx steward.Tx) error {
		return tx.CreateAPIToken(ctx, &steward.APIToken{ID: "tok-x", TokenHash: alice.TokenHash, Kind: steward.TokenStaff, Name: "x", CreatedAt: confAt(0)})
	})
	confCode(t, "CreateAPIToken(same hash)", err, steward.ECONFLICT)

	check := func(what string) {
		t.Helper()
		confRead(t, s, func(tx steward.Tx) error {
			got, err := tx.APITokenByHash(ctx, alice.TokenHash)
			if err != nil {
				t.Fatalf("APITokenByHash: %v", err)
			}
			confDiff(t, what+": APITokenByHash(alice)", alice, got)
			_, err = tx.APITokenByHash(ctx, []byte("hash-nope"))
			confCode(t, "APITokenByHash(unknown)", err, steward.ENOTFOUND)
			list, err := tx.ListAPITokens(ctx)
			if err != nil {
				t.Fatalf("ListAPITokens: %v", err)
			}
			confDiff(t, what+": ListAPITokens, oldest first", []steward.APIToken{*alice, *shop, *bob}, list)
			return nil
		})
	}
	check("created")

	confWrite(t, s, func(tx steward.Tx) error { return tx.RevokeAPIToken(ctx, alice.ID, confAt(time.Hour)) })
	alice.RevokedAt = confAt(time.Hour)
	check("revoked")
	err = s.Write(ctx, func(tx steward.Tx) error { return tx.RevokeAPIToken(ctx, alice.ID, confAt(2*time.Hour)) })
	confCode(t, "RevokeAPIToken twice", err, steward.ENOTFOUND)
	err = s.Write(ctx, func(tx steward.Tx) error { return tx.RevokeAPIToken(ctx, "tok-nope", confAt(2*time.Hour)) })
	confCode(t, "RevokeAPIToken(unknown)", err, steward.ENOTFOUND)
	check("revoked twice")
}

// confEntry returns an audit entry at confAt(at) in a zone other than UTC and
// with nanoseconds: the store keeps it in UTC to the microsecond.
func confEntry(id, action, subject string, fields []string, at time.Duration) *steward.AuditEntry {
	return &steward.AuditEntry{ID: id, At: confAt(at).Add(789 * time.Nanosecond).In(time.FixedZone("CST", 8*3600)),
		ActorKind: steward.ActorSystem, ActorID: "conformance", Action: action, SubjectID: subject, Purpose: "service",
		Fields: fields, Detail: "detail-" + id}
}

// confChain reads a whole chain through ScanAudit, checks it with an
// AuditVerifier against AuditHead, and returns it.
func confChain(t *testing.T, tx steward.Tx) []steward.AuditEntry {
	t.Helper()
	ctx := context.Background()
	seq, hash, err := tx.AuditHead(ctx)
	if err != nil {
		t.Fatalf("AuditHead: %v", err)
	}
	var out []steward.AuditEntry
	var v steward.AuditVerifier
	if err := tx.ScanAudit(ctx, 0, func(e steward.AuditEntry) error {
		out = append(out, e)
		return v.Check(e)
	}); err != nil {
		t.Fatalf("ScanAudit/verify: %v", err)
	}
	if err := v.CheckHead(seq, hash); err != nil {
		t.Errorf("verify head: %v", err)
	}
	return out
}

// confWantChain checks entries form a chain: Seq 1..n, each PrevHash the previous
// Hash, each Hash ComputeHash(PrevHash), At in UTC to the microsecond.
func confWantChain(t *testing.T, what string, entries []*steward.AuditEntry) {
	t.Helper()
	var prev []byte
	for i, e := range entries {
		if e.Seq != int64(i+1) {
			t.Errorf("%s: entry %d has Seq %d", what, i+1, e.Seq)
		}
		if !bytes.Equal(e.PrevHash, prev) {
			t.Errorf("%s: entry %d: PrevHash %x, want %x", what, i+1, e.PrevHash, prev)
		}
		if want := e.ComputeHash(e.PrevHash); len(e.Hash) != 32 || !bytes.Equal(e.Hash, want) {
			t.Errorf("%s: entry %d: Hash %x, want ComputeHash %x", what, i+1, e.Hash, want)
		}
		if e.At.Location() != time.UTC || e.At.Nanosecond()%1000 != 0 {
			t.Errorf("%s: entry %d: At %v is not UTC to the microsecond", what, i+1, e.At)
		}
		prev = e.Hash
	}
}

func confAuditTrail(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	confRead(t, s, func(tx steward.Tx) error {
		seq, hash, err := tx.AuditHead(ctx)
		if err != nil || seq != 0 || len(hash) != 0 {
			t.Errorf("AuditHead of an empty chain = %d, %x, %v; want 0, empty, nil", seq, hash, err)
		}
		return nil
	})
	e1 := confEntry("a-1", steward.AuditRegister, "s1", []string{"name", "birthday"}, 0)
	e2 := confEntry("a-2", steward.AuditTokenCreate, "", nil, time.Second)
	e3 := confEntry("", steward.AuditUpdate, "s1", []string{"name"}, 2*time.Second) // the store assigns an id
	e4 := confEntry("a-4", steward.AuditCancel, "s2", nil, 3*time.Second)
	confWrite(t, s, func(tx steward.Tx) error { return tx.AppendAudit(ctx, e1, e2) })
	confWrite(t, s, func(tx steward.Tx) error {
		if err := tx.AppendAudit(ctx); err != nil { // nothing to append
			return err
		}
		if err := tx.AppendAudit(ctx, e3); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, e4)
	})
	all := []*steward.AuditEntry{e1, e2, e3, e4}
	confWantChain(t, "AppendAudit", all)
	if e3.ID == "" {
		t.Errorf("AppendAudit left an empty ID")
	}
	if !e1.At.Equal(confAt(0)) {
		t.Errorf("AppendAudit: At = %v, want %v (truncated to the microsecond)", e1.At, confAt(0))
	}
	want := make([]steward.AuditEntry, len(all))
	for i, e := range all {
		want[i] = *e
	}

	confRead(t, s, func(tx steward.Tx) error {
		seq, hash, err := tx.AuditHead(ctx)
		if err != nil || seq != 4 || !bytes.Equal(hash, e4.Hash) {
			t.Errorf("AuditHead = %d, %x, %v; want 4, %x, nil", seq, hash, err, e4.Hash)
		}
		confDiff(t, "ScanAudit(0), verified", want, confChain(t, tx))

		var after []steward.AuditEntry
		if err := tx.ScanAudit(ctx, 2, func(e steward.AuditEntry) error { after = append(after, e); return nil }); err != nil {
			t.Fatalf("ScanAudit(2): %v", err)
		}
		confDiff(t, "ScanAudit(2)", want[2:], after)
		after = nil
		if err := tx.ScanAudit(ctx, 4, func(e steward.AuditEntry) error { after = append(after, e); return nil }); err != nil || len(after) != 0 {
			t.Errorf("ScanAudit(4) = %v, %v; want none", after, err)
		}

		got, err := tx.AuditBySubject(ctx, "s1")
		if err != nil {
			t.Fatalf("AuditBySubject: %v", err)
		}
		confDiff(t, "AuditBySubject(s1)", []steward.AuditEntry{want[0], want[2]}, got)
		got, err = tx.AuditBySubject(ctx, "nobody")
		if err != nil || len(got) != 0 {
			t.Errorf("AuditBySubject(unknown) = %v, %v; want none", got, err)
		}
		return nil
	})
	// The data chain is not the access log.
	if err := s.ReadAccess(ctx, func(tx steward.Tx) error {
		if got := confChain(t, tx); len(got) != 0 {
			t.Errorf("access log holds %d entries after AppendAudit, want 0", len(got))
		}
		return nil
	}); err != nil {
		t.Fatalf("ReadAccess: %v", err)
	}

	// More entries in one call than one statement holds: the chain goes on.
	bulk := make([]*steward.AuditEntry, 40)
	for i := range bulk {
		bulk[i] = confEntry(fmt.Sprintf("b-%02d", i), steward.AuditUpdate, "s3", []string{"name"}, time.Duration(4+i)*time.Second)
	}
	confWrite(t, s, func(tx steward.Tx) error { return tx.AppendAudit(ctx, bulk...) })
	all = append(all, bulk...)
	confWantChain(t, "AppendAudit(40 entries)", all)
	want = want[:0]
	for _, e := range all {
		want = append(want, *e)
	}
	confRead(t, s, func(tx steward.Tx) error {
		confDiff(t, "ScanAudit(0) after 40 more, verified", want, confChain(t, tx))
		return nil
	})
}

// unchained compares audit entries without the fields the chain assigns.
var unchained = cmpopts.IgnoreFields(steward.AuditEntry{}, "Seq", "PrevHash", "Hash")

func confAccessLog(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	d1 := confEntry("d-1", steward.AuditRegister, "s1", nil, 0)
	d2 := confEntry("d-2", steward.AuditUpdate, "s1", []string{"name"}, time.Second)
	confWrite(t, s, func(tx steward.Tx) error { return tx.AppendAudit(ctx, d1, d2) })

	r1 := confEntry("r-1", steward.AuditRead, "s1", []string{"name"}, time.Minute)
	r2 := confEntry("", steward.AuditReadSelf, "s2", []string{"name", "phone"}, 2*time.Minute)
	r3 := confEntry("r-3", steward.AuditExport, "s1", nil, 3*time.Minute)
	if err := s.Audit(ctx, r1, r2); err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if err := s.Audit(ctx, r3); err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if r2.ID == "" {
		t.Errorf("Audit left an empty ID")
	}

	// Concurrent appends share commits and still form one chain.
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Audit(ctx, confEntry(fmt.Sprintf("c-%02d", i), steward.AuditRead, fmt.Sprintf("c%02d", i), []string{"name"}, time.Hour))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Audit %d: %v", i, err)
		}
	}

	if err := s.ReadAccess(ctx, func(tx steward.Tx) error {
		chain := confChain(t, tx)
		if len(chain) != 3+n {
			t.Fatalf("access log holds %d entries, want %d", len(chain), 3+n)
		}
		// A chain of its own, from Seq 1, in the order of the calls. The chain
		// fields are assigned when entries join it, which may be after Audit
		// returns; confChain verified them.
		var want []steward.AuditEntry
		for _, r := range []*steward.AuditEntry{r1, r2, r3} {
			w := *r
			w.At = w.At.UTC().Truncate(time.Microsecond) // kept to the microsecond, in UTC
			want = append(want, w)
		}
		confDiff(t, "access log, first entries", want, chain[:3], unchained)
		for i, e := range chain {
			if e.Seq != int64(i+1) {
				t.Errorf("access log entry %d has Seq %d", i+1, e.Seq)
			}
		}
		seen := map[string]bool{}
		for _, e := range chain[3:] {
			seen[e.ID] = true
		}
		for i := range n {
			if id := fmt.Sprintf("c-%02d", i); !seen[id] {
				t.Errorf("access log lacks concurrent entry %s", id)
			}
		}
		got, err := tx.AuditBySubject(ctx, "s1")
		if err != nil {
			t.Fatalf("AuditBySubject: %v", err)
		}
		confDiff(t, "access log AuditBySubject(s1)", []steward.AuditEntry{chain[0], chain[2]}, got)
		return nil
	}); err != nil {
		t.Fatalf("ReadAccess: %v", err)
	}
	// The data chain is untouched by Audit.
	confRead(t, s, func(tx steward.Tx) error {
		confDiff(t, "audit trail after Audit", []steward.AuditEntry{*d1, *d2}, confChain(t, tx))
		return nil
	})
}

func confOutbox(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	// Ids out of due order, so that an order by id shows.
	msg := func(id, subject string, next time.Duration) *steward.OutboxMessage {
		return &steward.OutboxMessage{ID: id, Channel: "sms", SubjectID: subject, Kind: "otp", Payload: []byte("sealed-" + id),
			CreatedAt: confAt(0), NextAttemptAt: confAt(next)}
	}
	m1, m2, m3 := msg("m-3", "s1", 0), msg("m-1", "s1", 2*time.Minute), msg("m-2", "s1", time.Minute)
	later, other := msg("m-0", "s1", 10*time.Minute), msg("m-9", "s2", 3*time.Minute)
	confWrite(t, s, func(tx steward.Tx) error {
		for _, m := range []*steward.OutboxMessage{m1, m2, m3, later, other} {
			if err := tx.Enqueue(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	// Unclaimed messages are due for any instance.
	due := confDue(t, s, "node-a")
	due("DueMessages(+5m)", confAt(5*time.Minute), 10, m1, m3, m2, other)
	due("DueMessages(+5m, limit 2)", confAt(5*time.Minute), 2, m1, m3)
	due("DueMessages(+1m), boundary included", confAt(time.Minute), 10, m1, m3)
	due("DueMessages(-1µs)", confAt(-time.Microsecond), 10)

	// A failed attempt is recorded by the claim's holder, and the claim extended.
	confClaim(t, s, "node-a", []string{m1.ID}, confAt(5*time.Minute), confAt(6*time.Minute), m1.ID)
	confWrite(t, s, func(tx steward.Tx) error {
		return tx.MarkFailed(ctx, "node-a", m1.ID, 1, confAt(20*time.Minute), confAt(21*time.Minute), "sink timeout")
	})
	m1.Attempts, m1.NextAttemptAt, m1.LastError = 1, confAt(20*time.Minute), "sink timeout"
	m1.ClaimedBy, m1.ClaimedUntil = "node-a", confAt(21*time.Minute)
	due("DueMessages(+5m) after MarkFailed", confAt(5*time.Minute), 10, m3, m2, other)
	due("DueMessages(+30m) after MarkFailed", confAt(30*time.Minute), 10, m3, m2, other, later, m1)
	// Another instance sees it only once the extended claim has run out.
	confDue(t, s, "node-b")("DueMessages(node-b, +20m30s) after MarkFailed by node-a", confAt(20*time.Minute+30*time.Second), 10, m3, m2, other, later)
	confDue(t, s, "node-b")("DueMessages(node-b, +21m) after MarkFailed by node-a", confAt(21*time.Minute), 10, m3, m2, other, later, m1)
	// A process that does not hold the claim records nothing.
	confWrite(t, s, func(tx steward.Tx) error {
		return tx.MarkFailed(ctx, "node-b", m1.ID, 7, confAt(time.Hour), confAt(2*time.Hour), "not the holder")
	})
	due("DueMessages(+30m) after MarkFailed by another instance", confAt(30*time.Minute), 10, m3, m2, other, later, m1)

	confWrite(t, s, func(tx steward.Tx) error { return tx.MarkDelivered(ctx, m3.ID, confAt(6*time.Minute)) })
	due("DueMessages(+30m) after MarkDelivered", confAt(30*time.Minute), 10, m2, other, later, m1)
	due("DueMessages(+1y) after MarkDelivered", confAt(365*24*time.Hour), 10, m2, other, later, m1)

	confWrite(t, s, func(tx steward.Tx) error { return tx.DeleteMessages(ctx, "s1") })
	due("DueMessages after DeleteMessages(s1)", confAt(365*24*time.Hour), 10, other)

	// Enqueue assigns an id when there is none.
	m := msg("", "s3", 0)
	confWrite(t, s, func(tx steward.Tx) error { return tx.Enqueue(ctx, m) })
	if m.ID == "" {
		t.Fatalf("Enqueue left an empty ID")
	}
	due("DueMessages after Enqueue without id", confAt(0), 10, m)
}

// confDue returns a check that DueMessages for instance at now returns want, exactly.
func confDue(t *testing.T, s steward.Store, instance string) func(what string, now time.Time, limit int, want ...*steward.OutboxMessage) {
	return func(what string, now time.Time, limit int, want ...*steward.OutboxMessage) {
		t.Helper()
		confRead(t, s, func(tx steward.Tx) error {
			got, err := tx.DueMessages(context.Background(), instance, now, limit)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			w := make([]steward.OutboxMessage, len(want))
			for i, m := range want {
				w[i] = *m
			}
			confDiff(t, what, w, got)
			return nil
		})
	}
}

// confClaim checks that ClaimMessages for instance wins exactly want.
func confClaim(t *testing.T, s steward.Store, instance string, ids []string, now, until time.Time, want ...string) {
	t.Helper()
	var won []string
	confWrite(t, s, func(tx steward.Tx) (err error) {
		won, err = tx.ClaimMessages(context.Background(), instance, ids, now, until)
		return err
	})
	confDiff(t, fmt.Sprintf("ClaimMessages(%s, %v) at %s", instance, ids, now.Format(time.RFC3339Nano)), want, won)
}

// confOutboxClaims: a message queued claimed by one process is due for it alone
// while the claim lives; after it runs out exactly one other process takes it
// over; unclaimed messages go to whoever claims them first; delivered messages
// are no one's.
func confOutboxClaims(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	lease := steward.OutboxLease
	a := &steward.OutboxMessage{ID: "m-a", Channel: "sms", SubjectID: "s1", Kind: "otp", Payload: []byte("sealed-a"), CreatedAt: confAt(0), NextAttemptAt: confAt(0)}
	a.ClaimFor("node-a")
	u := &steward.OutboxMessage{ID: "m-u", Channel: "webhook", Kind: "recipient_notice", Payload: []byte("sealed-u"), CreatedAt: confAt(0), NextAttemptAt: confAt(0)}
	u.ClaimFor("") // queued by a command-line tool
	if a.ClaimedBy != "node-a" || !a.ClaimedUntil.Equal(confAt(lease)) || u.ClaimedBy != "" || !u.ClaimedUntil.IsZero() {
		t.Fatalf("ClaimFor: %q until %v and %q until %v; want node-a until %v, and no claim", a.ClaimedBy, a.ClaimedUntil, u.ClaimedBy, u.ClaimedUntil, confAt(lease))
	}
	confWrite(t, s, func(tx steward.Tx) error {
		for _, m := range []*steward.OutboxMessage{a, u} {
			if err := tx.Enqueue(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	dueA, dueB, dueC := confDue(t, s, "node-a"), confDue(t, s, "node-b"), confDue(t, s, "node-c")
	dueA("DueMessages(node-a): its own claim and the unclaimed one", confAt(0), 10, a, u)
	dueB("DueMessages(node-b) while node-a's claim lives", confAt(lease-time.Microsecond), 10, u)
	confClaim(t, s, "node-b", []string{a.ID}, confAt(lease-time.Microsecond), confAt(2*lease))

	// The unclaimed message goes to the first claimer, and to no one else.
	confClaim(t, s, "node-b", []string{a.ID, u.ID}, confAt(time.Second), confAt(time.Second+lease), u.ID)
	u.ClaimedBy, u.ClaimedUntil = "node-b", confAt(time.Second+lease)
	confClaim(t, s, "node-a", []string{u.ID}, confAt(2*time.Second), confAt(2*time.Second+lease))
	dueA("DueMessages(node-a) after node-b claimed the unclaimed one", confAt(2*time.Second), 10, a)
	dueB("DueMessages(node-b) after its claim", confAt(2*time.Second), 10, u)

	// node-a stops: once its claim has run out (claimed until <= now), node-b and
	// node-c both see the message, and exactly one of them gets it.
	dueC("DueMessages(node-c) when node-a's claim runs out", confAt(lease), 10, a)
	confClaim(t, s, "node-b", []string{a.ID}, confAt(lease), confAt(2*lease), a.ID)
	confClaim(t, s, "node-c", []string{a.ID}, confAt(lease), confAt(2*lease))
	confClaim(t, s, "node-a", []string{a.ID}, confAt(lease), confAt(2*lease)) // back too late: it is node-b's now
	a.ClaimedBy, a.ClaimedUntil = "node-b", confAt(2*lease)
	dueA("DueMessages(node-a) after node-b took its message over", confAt(lease), 10)
	dueB("DueMessages(node-b) after it took node-a's message over", confAt(lease), 10, a, u)
	confWrite(t, s, func(tx steward.Tx) error {
		return tx.MarkFailed(ctx, "node-a", a.ID, 1, confAt(lease+time.Minute), confAt(lease+time.Minute+lease), "late")
	})
	dueB("DueMessages(node-b) after a MarkFailed by node-a, which lost the claim", confAt(lease), 10, a, u)

	// The holder renews its own claim, live or run out.
	confClaim(t, s, "node-b", []string{a.ID, u.ID}, confAt(lease+time.Second), confAt(3*lease), a.ID, u.ID)
	a.ClaimedUntil, u.ClaimedUntil = confAt(3*lease), confAt(3*lease)
	dueB("DueMessages(node-b) after renewing", confAt(lease+time.Second), 10, a, u)

	// A delivered message is claimed by no one, even after its claim ran out.
	confWrite(t, s, func(tx steward.Tx) error { return tx.MarkDelivered(ctx, u.ID, confAt(lease+2*time.Second)) })
	confClaim(t, s, "node-c", []string{u.ID}, confAt(10*lease), confAt(11*lease))
	confClaim(t, s, "node-b", []string{u.ID}, confAt(lease+3*time.Second), confAt(4*lease))
	dueC("DueMessages(node-c) after delivery", confAt(10*lease), 10, a)

	err := s.Write(ctx, func(tx steward.Tx) error {
		_, err := tx.ClaimMessages(ctx, "", []string{a.ID}, confAt(10*lease), confAt(11*lease))
		return err
	})
	confCode(t, "ClaimMessages with no instance", err, steward.EINVALID)
}

// confOutboxClaimsConcurrent: eight claimers take the same 64 unclaimed
// messages at once, each in its own order; every message is won by exactly one.
func confOutboxClaimsConcurrent(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	const messages, claimers = 64, 8
	ids := make([]string, messages)
	confWrite(t, s, func(tx steward.Tx) error {
		for i := range ids {
			ids[i] = fmt.Sprintf("m-%02d", i)
			if err := tx.Enqueue(ctx, &steward.OutboxMessage{ID: ids[i], Channel: "sms", Kind: "otp", Payload: []byte("p"), CreatedAt: confAt(0), NextAttemptAt: confAt(0)}); err != nil {
				return err
			}
		}
		return nil
	})
	var wg sync.WaitGroup
	start := make(chan struct{})
	won := make([][]string, claimers)
	errs := make([]error, claimers)
	for c := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := append(append([]string(nil), ids[c*messages/claimers:]...), ids[:c*messages/claimers]...)
			<-start
			errs[c] = s.Write(ctx, func(tx steward.Tx) (err error) {
				won[c], err = tx.ClaimMessages(ctx, fmt.Sprintf("node-%d", c), mine, confAt(time.Second), confAt(time.Second+steward.OutboxLease))
				return err
			})
		}()
	}
	close(start)
	wg.Wait()
	owner := map[string]string{}
	for c := range claimers {
		if errs[c] != nil {
			t.Fatalf("claimer %d: %v", c, errs[c])
		}
		for _, id := range won[c] {
			if prev, ok := owner[id]; ok {
				t.Errorf("%s won by node-%d and %s", id, c, prev)
			}
			owner[id] = fmt.Sprintf("node-%d", c)
		}
	}
	if len(owner) != messages {
		t.Errorf("%d of %d messages claimed", len(owner), messages)
	}
	// The store agrees: each message is due for its owner alone.
	for c := range claimers {
		instance := fmt.Sprintf("node-%d", c)
		confRead(t, s, func(tx steward.Tx) error {
			due, err := tx.DueMessages(ctx, instance, confAt(2*time.Second), messages)
			if err != nil {
				t.Fatalf("DueMessages(%s): %v", instance, err)
			}
			for _, m := range due {
				if owner[m.ID] != instance || m.ClaimedBy != instance {
					t.Errorf("DueMessages(%s) returned %s, claimed by %q, won by %s", instance, m.ID, m.ClaimedBy, owner[m.ID])
				}
			}
			if len(due) != len(won[c]) {
				t.Errorf("DueMessages(%s) = %d messages, it won %d", instance, len(due), len(won[c]))
			}
			return nil
		})
	}
}

// errConfFail is what a failing Write fn returns in the atomicity tests.
var errConfFail = steward.Errorf(steward.EINVALID, "the conformance suite fails this write")

func confWriteRollsBack(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	calls := 0
	err := s.Write(ctx, func(tx steward.Tx) error {
		calls++
		for _, err := range []error{
			tx.CreateSubject(ctx, confSubject("s1")),
			tx.PutIndex(ctx, "phone", []byte("phone-1"), "s1"),
			tx.PutFields(ctx, []steward.SealedField{{SubjectID: "s1", Field: "name", Value: []byte("v"), UpdatedAt: confAt(0)}}),
			tx.AddConsentEvent(ctx, &steward.ConsentEvent{ID: "ev-1", SubjectID: "s1", Purpose: "service", Action: steward.ConsentGrant, At: confAt(0)}),
			tx.AppendAudit(ctx, confEntry("a-1", steward.AuditRegister, "s1", nil, 0)),
			tx.Enqueue(ctx, &steward.OutboxMessage{ID: "m-1", Channel: "sms", SubjectID: "s1", Kind: "otp", Payload: []byte("p"), NextAttemptAt: confAt(0)}),
		} {
			if err != nil {
				return fmt.Errorf("write before failing: %w", err) // fn runs on the store's goroutine: no t.Fatal
			}
		}
		return errConfFail
	})
	if err != errConfFail {
		t.Errorf("Write = %v, want the fn's own error %v", err, errConfFail)
	}
	if calls != 1 {
		t.Errorf("fn ran %d times for an error the store does not retry, want 1", calls)
	}
	confRead(t, s, func(tx steward.Tx) error {
		_, err := tx.GetSubject(ctx, "s1")
		confCode(t, "GetSubject after failed write", err, steward.ENOTFOUND)
		_, err = tx.LookupIndex(ctx, "phone", []byte("phone-1"))
		confCode(t, "LookupIndex after failed write", err, steward.ENOTFOUND)
		_, err = tx.ConsentState(ctx, "s1", "service")
		confCode(t, "ConsentState after failed write", err, steward.ENOTFOUND)
		if f, err := tx.GetFields(ctx, "s1", nil); err != nil || len(f) != 0 {
			t.Errorf("GetFields after failed write = %v, %v; want none", f, err)
		}
		if seq, _, err := tx.AuditHead(ctx); err != nil || seq != 0 {
			t.Errorf("AuditHead after failed write = %d, %v; want 0", seq, err)
		}
		if m, err := tx.DueMessages(ctx, "node-a", confAt(time.Hour), 10); err != nil || len(m) != 0 {
			t.Errorf("DueMessages after failed write = %v, %v; want none", m, err)
		}
		return nil
	})
	// The store is usable afterwards, and the same ids are free.
	confSubjectsExist(t, s, "s1")
	confWrite(t, s, func(tx steward.Tx) error { return tx.PutIndex(ctx, "phone", []byte("phone-1"), "s1") })
}

// confWriteConcurrent runs 16 Writes at once while a 17th holds a writer, so
// that they queue and share commits. A quarter fail by returning an error after
// writing, a quarter by a uniqueness violation in the database (which aborts the
// transaction on PostgreSQL unless a savepoint isolates it): exactly the others
// must be visible, audit entries included, and the audit chain must verify.
func confWriteConcurrent(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	confSubjectsExist(t, s, "taken")
	confWrite(t, s, func(tx steward.Tx) error { return tx.PutIndex(ctx, "phone", []byte("taken"), "taken") })

	const n = 16
	gate, entered := make(chan struct{}), make(chan struct{})
	var once sync.Once
	held := make(chan error, 1)
	go func() {
		held <- s.Write(ctx, func(tx steward.Tx) error {
			once.Do(func() { close(entered) })
			<-gate
			return nil
		})
	}()
	<-entered

	var wg, ready sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("w%02d", i)
			ready.Done()
			errs[i] = s.Write(ctx, func(tx steward.Tx) error {
				if err := tx.CreateSubject(ctx, confSubject(id)); err != nil {
					return err
				}
				if err := tx.PutFields(ctx, []steward.SealedField{{SubjectID: id, Field: "name", Value: []byte(id), UpdatedAt: confAt(0)}}); err != nil {
					return err
				}
				if err := tx.AppendAudit(ctx, confEntry("audit-"+id, steward.AuditRegister, id, nil, 0)); err != nil {
					return err
				}
				switch i % 4 {
				case 1:
					return errConfFail
				case 3:
					return tx.PutIndex(ctx, "phone", []byte("taken"), id)
				}
				return tx.PutIndex(ctx, "phone", []byte(id), id)
			})
		}()
	}
	ready.Wait()
	close(gate)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatalf("holding write: %v", err)
	}

	var ok []string
	for i, err := range errs {
		want := ""
		switch i % 4 {
		case 1:
			want = steward.EINVALID
		case 3:
			want = steward.ECONFLICT
		default:
			ok = append(ok, fmt.Sprintf("w%02d", i))
		}
		confCode(t, fmt.Sprintf("Write %d", i), err, want)
	}
	confRead(t, s, func(tx steward.Tx) error {
		for i := range n {
			id := fmt.Sprintf("w%02d", i)
			_, err := tx.GetSubject(ctx, id)
			fields, ferr := tx.GetFields(ctx, id, nil)
			if ferr != nil {
				t.Fatalf("GetFields(%s): %v", id, ferr)
			}
			got, lerr := tx.LookupIndex(ctx, "phone", []byte(id))
			if i%4 == 0 || i%4 == 2 {
				confCode(t, "GetSubject("+id+") of a successful write", err, "")
				if len(fields) != 1 || got != id || lerr != nil {
					t.Errorf("successful write %s: %d fields, index %q (%v); want 1 field and its index", id, len(fields), got, lerr)
				}
			} else {
				confCode(t, "GetSubject("+id+") of a failed write", err, steward.ENOTFOUND)
				if len(fields) != 0 || lerr == nil {
					t.Errorf("failed write %s left %d fields, index %q", id, len(fields), got)
				}
			}
		}
		if got, err := tx.LookupIndex(ctx, "phone", []byte("taken")); err != nil || got != "taken" {
			t.Errorf("LookupIndex(taken) = %q, %v; want taken", got, err)
		}
		chain := confChain(t, tx)
		var subjects []string
		for _, e := range chain {
			subjects = append(subjects, e.SubjectID)
		}
		confDiff(t, "audit entries of the successful writes", ok, subjects, cmpopts.SortSlices(func(a, b string) bool { return a < b }))
		return nil
	})
}

// confWriteCancelled checks a Write whose context is cancelled before it commits
// reports the cancellation and leaves nothing.
func confWriteCancelled(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Write(ctx, func(tx steward.Tx) error { return tx.CreateSubject(ctx, confSubject("s1")) })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Write with a cancelled context = %v, want context.Canceled", err)
	}
	confRead(t, s, func(tx steward.Tx) error {
		_, err := tx.GetSubject(context.Background(), "s1")
		confCode(t, "GetSubject after a cancelled Write", err, steward.ENOTFOUND)
		return nil
	})
}

func confReadSees(t *testing.T, s steward.Store, _ keyring.KeyStore) {
	ctx := context.Background()
	// A committed write is visible to the next Read at once.
	for i := range 5 {
		id := fmt.Sprintf("r%d", i)
		confSubjectsExist(t, s, id)
		confRead(t, s, func(tx steward.Tx) error {
			got, err := tx.GetSubject(ctx, id)
			if err != nil {
				t.Fatalf("GetSubject(%s) right after its Write: %v", id, err)
			}
			confDiff(t, "GetSubject after Write", confSubject(id), got)
			return nil
		})
	}
	// Read is read-only: a write in it fails and leaves nothing.
	err := s.Read(ctx, func(tx steward.Tx) error { return tx.CreateSubject(ctx, confSubject("ro")) })
	if err == nil {
		t.Errorf("CreateSubject in Read succeeded, want an error")
	}
	confRead(t, s, func(tx steward.Tx) error {
		_, err := tx.GetSubject(ctx, "ro")
		confCode(t, "GetSubject of a subject created in Read", err, steward.ENOTFOUND)
		return nil
	})
	// fn's error comes back as is.
	if err := s.Read(ctx, func(tx steward.Tx) error { return errConfFail }); err != errConfFail {
		t.Errorf("Read = %v, want the fn's own error", err)
	}
}

func confKeyStore(t *testing.T, _ steward.Store, ks keyring.KeyStore) {
	ctx := context.Background()
	w1 := keyring.WrappedKey{SubjectID: "s1", KeyID: "dek-1", KEKID: "kek-1", Wrapped: []byte{0x00, 0x01, 0x02, 0xff}, CreatedAt: confAt(0)}
	w2 := keyring.WrappedKey{SubjectID: "s2", KeyID: "dek-2", KEKID: "kek-1", Wrapped: []byte("wrapped-2"), CreatedAt: confAt(time.Minute)}
	for _, w := range []keyring.WrappedKey{w1, w2} {
		if err := ks.PutKey(ctx, w); err != nil {
			t.Fatalf("PutKey(%s): %v", w.SubjectID, err)
		}
	}
	get := func(subject string, want keyring.WrappedKey, code string) {
		t.Helper()
		got, err := ks.GetKey(ctx, subject)
		confCode(t, "GetKey("+subject+")", err, code)
		confDiff(t, "GetKey("+subject+")", want, got)
	}
	get("s1", w1, "")
	confCode(t, "PutKey(s1) again", ks.PutKey(ctx, keyring.WrappedKey{SubjectID: "s1", KeyID: "dek-1b", KEKID: "kek-1",
		Wrapped: []byte("other"), CreatedAt: confAt(time.Hour)}), steward.ECONFLICT)
	get("s1", w1, "")

	for range 2 { // a second DestroyKey returns the same ids
		ids, err := ks.DestroyKey(ctx, "s1")
		if err != nil {
			t.Fatalf("DestroyKey(s1): %v", err)
		}
		confDiff(t, "DestroyKey(s1)", []string{"dek-1"}, ids)
		get("s1", keyring.WrappedKey{}, steward.EGONE)
	}
	// A shredded subject is never given a fresh key.
	confCode(t, "PutKey(s1) after DestroyKey", ks.PutKey(ctx, keyring.WrappedKey{SubjectID: "s1", KeyID: "dek-1c", KEKID: "kek-1",
		Wrapped: []byte("fresh"), CreatedAt: confAt(2 * time.Hour)}), steward.ECONFLICT)
	get("s1", keyring.WrappedKey{}, steward.EGONE)
	get("s2", w2, "")

	get("nobody", keyring.WrappedKey{}, steward.ENOTFOUND)
	_, err := ks.DestroyKey(ctx, "nobody")
	confCode(t, "DestroyKey(unknown)", err, steward.ENOTFOUND)
}
