package steward_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/keyring"
	stsql "github.com/stewardhq/steward/sql"
	"github.com/stewardhq/steward/stewardtest"
)

const courtRef = "(2026) Jing 0105 Min Chu 1234"

func TestPlaceHoldValidation(t *testing.T) {
	env := stewardtest.New(t, "sqlite", stewardtest.Options{})
	f := newFeatures(t, env)
	reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`})
	ok := steward.HoldInput{SubjectID: reg.SubjectID, Fields: []string{"nickname"}, Case: steward.HoldAuthority, Reference: courtRef, Purpose: "legal_hold"}
	po := staff(steward.RolePrivacyOfficer)
	cases := []struct {
		name string
		ctx  context.Context
		edit func(*steward.HoldInput)
		code string
		msg  string
	}{
		{"support may not", staff(steward.RoleSupport), nil, steward.EFORBIDDEN, "only staff with the role privacy_officer may place legal holds"},
		{"unknown case", po, func(in *steward.HoldInput) { in.Case = "because" }, steward.EINVALID,
			"case must be one of law_or_regulation, authority_decision, legal_compliance, agreement_or_safety (policy §8)"},
		{"no reference", po, func(in *steward.HoldInput) { in.Reference = "" }, steward.EINVALID,
			"reference is required (the law, decision or case number), at most 200 characters"},
		{"bad purpose", po, func(in *steward.HoldInput) { in.Purpose = "Legal Hold" }, steward.EINVALID, "purpose must be a lower-case name such as legal_hold"},
		{"until in the past", po, func(in *steward.HoldInput) { in.Until = env.Clock.Now().Add(-time.Hour) }, steward.EINVALID, "until must be in the future"},
		{"derived field", po, func(in *steward.HoldInput) { in.Fields = []string{"contacts"} }, steward.EINVALID,
			"field contacts is derived data that Steward does not keep as a value; it cannot be held"},
		{"undeclared field", po, func(in *steward.HoldInput) { in.Fields = []string{"shoe_size"} }, steward.EINVALID, `field "shoe_size" is not declared`},
		{"field without a value", po, func(in *steward.HoldInput) { in.Fields = []string{"nickname", "gender"} }, steward.EINVALID, "field gender has no value to hold"},
		{"unknown subject", po, func(in *steward.HoldInput) { in.SubjectID = "nobody" }, steward.ENOTFOUND, "subject not found"},
		{"placed", po, nil, "", ""},
	}
	for _, c := range cases {
		in := ok
		if c.edit != nil {
			c.edit(&in)
		}
		_, err := f.holds.Place(c.ctx, in)
		if steward.ErrorCode(err) != c.code || steward.ErrorMessage(err) != c.msg && c.code != "" {
			t.Errorf("%s: %v, want %s %q", c.name, err, c.code, c.msg)
		}
	}
}

// TestHoldSurvivesDeletion: a field under a legal hold is storage-only while held,
// stays readable after deletion only for the hold's purpose, and everything else
// is unreadable from a copy of the data store taken before the deletion. When the
// hold ends the held copy goes the same way.
func TestHoldSurvivesDeletion(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			f := newFeatures(t, env)
			ctx := context.Background()
			po := staff(steward.RolePrivacyOfficer)
			app := stewardtest.App("app")
			reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`, "imei": `"490154203237518"`})
			hold, err := f.holds.Place(po, steward.HoldInput{SubjectID: reg.SubjectID, Fields: []string{"nickname"}, Case: steward.HoldAuthority,
				Reference: courtRef, Purpose: "legal_hold"})
			if err != nil {
				t.Fatal(err)
			}
			// While held the field is storage-only; other fields are read as usual.
			const heldMsg = "field nickname is under a legal hold (authority_decision): it is kept for storage only and read only for purpose legal_hold"
			if _, err := env.Service.ReadForPurpose(app, reg.SubjectID, "account", []string{"nickname"}); steward.ErrorCode(err) != steward.EFORBIDDEN || steward.ErrorMessage(err) != heldMsg {
				t.Fatalf("read a held field for account: %v", err)
			}
			if _, err := env.Service.ReadForPurpose(app, reg.SubjectID, "account", nil); steward.ErrorMessage(err) != heldMsg {
				t.Fatalf("read every account field, one held: %v", err)
			}
			if v, err := env.Service.ReadForPurpose(app, reg.SubjectID, "account", []string{"birthday"}); err != nil || string(v["birthday"]) != `"1990-05-17"` {
				t.Fatalf("read an unheld field: %v %v", v, err)
			}
			rec := f.partner(t, "Acme Logistics", "https://hooks.acme.example/", []string{"account"}, []string{"nickname"})
			if _, err := f.recipients.Disclose(app, reg.SubjectID, steward.DisclosureInput{rec.ID, "account", []string{"nickname"}}); steward.ErrorMessage(err) != heldMsg {
				t.Fatalf("disclose a held field: %v", err)
			}
			// The hold keeps the value it had when placed: a later correction changes
			// the live field only.
			if _, err := env.Service.UpdateMe(stewardtest.Subject(reg.SubjectID), steward.FieldValues{"nickname": []byte(`"张伟New"`)}); err != nil {
				t.Fatal(err)
			}
			before := copyStore(t, env)
			erasedAt := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
			env.Clock.Set(erasedAt)
			body, err := f.erasure.Fulfil(po, deletionRequest(t, env, reg.SubjectID))
			if err != nil {
				t.Fatal(err)
			}
			c, err := steward.VerifyCertificate(body, env.Keyring.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"birthday", "imei", "phone"}, c.FieldsErased); diff != "" {
				t.Errorf("fields erased (-want +got):\n%s", diff)
			}
			wantRetained := []steward.RetainedField{{Field: "nickname", HoldID: hold.ID, Case: "authority_decision", Reference: courtRef, Purpose: "legal_hold", KeyID: hold.KeyID}}
			if diff := cmp.Diff(wantRetained, c.FieldsRetained); diff != "" {
				t.Errorf("fields retained (-want +got):\n%s", diff)
			}
			if len(c.Stores) != 5 || c.Stores[4].Store != "legal holds" {
				t.Errorf("stores = %+v, want the legal holds named last", c.Stores)
			}
			// After deletion: the held field only, only for the hold's purpose.
			v, err := f.holds.ReadHeld(po, reg.SubjectID, "legal_hold", nil)
			if err != nil || len(v) != 1 || string(v["nickname"]) != `"张伟Test"` {
				t.Fatalf("read held for legal_hold: %v, %v", v, err)
			}
			if _, err := f.holds.ReadHeld(po, reg.SubjectID, "account", nil); steward.ErrorCode(err) != steward.ENOTFOUND ||
				steward.ErrorMessage(err) != "no active legal hold on the subject has purpose account" {
				t.Errorf("read held for account: %v", err)
			}
			if _, err := f.holds.ReadHeld(po, reg.SubjectID, "legal_hold", []string{"imei"}); steward.ErrorCode(err) != steward.EFORBIDDEN ||
				steward.ErrorMessage(err) != "field imei is not held for purpose legal_hold" {
				t.Errorf("read held imei: %v", err)
			}
			if _, err := f.holds.ReadHeld(app, reg.SubjectID, "legal_hold", nil); steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Errorf("app not declared for legal_hold reads held data: %v", err)
			}
			if _, err := env.Service.ReadForPurpose(app, reg.SubjectID, "account", []string{"nickname"}); steward.ErrorCode(err) != steward.EGONE {
				t.Errorf("ReadForPurpose after deletion: %v, want EGONE", err)
			}
			// The copy taken before: every live field sealed under the destroyed key is
			// unreadable; the held copy opens under the hold's key, and only it.
			if n, opened := openCopy(t, env, before, reg.SubjectID); n != 4 || len(opened) != 0 {
				t.Fatalf("copy before deletion: %d sealed fields, %d opened; want 4 and 0", n, len(opened))
			}
			if got := openHeldCopy(t, env, before, hold); len(got) != 1 || string(got["nickname"]) != `"张伟Test"` {
				t.Fatalf("held copy in the backup opens to %v", got)
			}
			// The hold ends: its key is destroyed, so the held copy goes everywhere.
			released, err := f.holds.Release(po, hold.ID, "judgment final; preservation order lifted")
			if err != nil || released.ReleasedBy != "staff:officer-1" || !released.ReleasedAt.Equal(erasedAt) {
				t.Fatalf("release: %+v, %v", released, err)
			}
			if _, err := f.holds.ReadHeld(po, reg.SubjectID, "legal_hold", nil); steward.ErrorCode(err) != steward.ENOTFOUND {
				t.Errorf("read held after release: %v, want ENOTFOUND", err)
			}
			if got := openHeldCopy(t, env, before, hold); len(got) != 0 {
				t.Errorf("held copy in the backup still opens after release: %v", got)
			}
			var live []steward.SealedField
			env.Store.Read(ctx, func(tx steward.Tx) (err error) { live, err = tx.HeldFields(ctx, hold.ID); return err })
			if len(live) != 0 {
				t.Errorf("live store keeps %d held values after release", len(live))
			}
			if _, err := f.holds.Release(po, hold.ID, "again"); steward.ErrorCode(err) != steward.ECONFLICT {
				t.Errorf("second release: %v, want ECONFLICT", err)
			}
		})
	}
}

// openHeldCopy opens the held copy of hold from the data store at dsn with the key
// store as it is now; it returns what opens.
func openHeldCopy(t *testing.T, env *stewardtest.Env, dsn string, hold *steward.LegalHold) steward.FieldValues {
	t.Helper()
	ctx := context.Background()
	st, err := stsql.OpenStore(ctx, dsn, stsql.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var sealed []steward.SealedField
	if err := st.Read(ctx, func(tx steward.Tx) (err error) { sealed, err = tx.HeldFields(ctx, hold.ID); return err }); err != nil {
		t.Fatal(err)
	}
	if len(sealed) != 1 {
		t.Fatalf("the copy holds %d held values, want 1", len(sealed))
	}
	out := steward.FieldValues{}
	key, err := keyring.New(env.KeyFile, env.KeyStore).SubjectKey(ctx, steward.HoldKeySubject(hold.SubjectID, hold.ID))
	if steward.ErrorCode(err) == steward.EGONE {
		return out
	} else if err != nil {
		t.Fatal(err)
	}
	for _, f := range sealed {
		if v, err := key.Open(f.Field, f.Value); err == nil {
			out[f.Field] = v
		}
	}
	return out
}

func TestHoldUntilAndReleaseExpired(t *testing.T) {
	env := stewardtest.New(t, "sqlite", stewardtest.Options{})
	f := newFeatures(t, env)
	po := staff(steward.RolePrivacyOfficer)
	app := stewardtest.App("risk-engine")
	reg := env.Register(t, "+8613800138000", map[string]string{"imei": `"490154203237518"`})
	until := env.Clock.Now().Add(30 * 24 * time.Hour)
	hold, err := f.holds.Place(po, steward.HoldInput{SubjectID: reg.SubjectID, Fields: []string{"imei"}, Case: steward.HoldLaw,
		Reference: "Anti-Telecom Fraud Law Art. 21", Purpose: "fraud_investigation", Until: until})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.ReadForPurpose(app, reg.SubjectID, "risk_control", []string{"imei"}); steward.ErrorCode(err) != steward.EFORBIDDEN {
		t.Fatalf("read held imei: %v", err)
	}
	env.Clock.Set(until.Add(-time.Second))
	if n, err := f.holds.ReleaseExpired(steward.SystemContext(context.Background(), "holds")); err != nil || n != 0 {
		t.Fatalf("release expired a second early: %d, %v", n, err)
	}
	env.Clock.Set(until)
	// At Until the hold no longer binds reads, even before the job runs.
	if v, err := env.Service.ReadForPurpose(app, reg.SubjectID, "risk_control", []string{"imei"}); err != nil || string(v["imei"]) != `"490154203237518"` {
		t.Fatalf("read at until: %v, %v", v, err)
	}
	if n, err := f.holds.ReleaseExpired(steward.SystemContext(context.Background(), "holds")); err != nil || n != 1 {
		t.Fatalf("release expired: %d, %v", n, err)
	}
	holds, _ := f.holds.List(staff(steward.RoleAuditor), reg.SubjectID)
	if len(holds) != 1 || holds[0].ReleaseReason != "until reached" || holds[0].ReleasedBy != "system:holds" || !holds[0].ReleasedAt.Equal(until) {
		t.Errorf("holds = %+v", holds)
	}
	if _, err := env.Keyring.SubjectKey(context.Background(), steward.HoldKeySubject(reg.SubjectID, hold.ID)); steward.ErrorCode(err) != steward.EGONE {
		t.Errorf("hold key after release: %v, want EGONE", err)
	}
}

// A hold whose Until passed before the erasure is released by it: the certificate
// calls the field erased only because the held copy's key is gone too.
func TestErasureReleasesExpiredHolds(t *testing.T) {
	env := stewardtest.New(t, "sqlite", stewardtest.Options{})
	f := newFeatures(t, env)
	po := staff(steward.RolePrivacyOfficer)
	reg := env.Register(t, "+8613800138000", map[string]string{"imei": `"490154203237518"`, "nickname": `"张伟Test"`})
	expired, err := f.holds.Place(po, steward.HoldInput{SubjectID: reg.SubjectID, Fields: []string{"imei"}, Case: steward.HoldLaw,
		Reference: "Anti-Telecom Fraud Law Art. 21", Purpose: "fraud_investigation", Until: env.Clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := f.holds.Place(po, steward.HoldInput{SubjectID: reg.SubjectID, Fields: []string{"nickname"}, Case: steward.HoldAgreementOrSafety,
		Reference: "ticket 4411", Purpose: "legal_hold"})
	if err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(2 * time.Hour)
	body, err := f.erasure.Fulfil(po, deletionRequest(t, env, reg.SubjectID))
	if err != nil {
		t.Fatal(err)
	}
	c, err := steward.VerifyCertificate(body, env.Keyring.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"birthday", "imei", "phone"}, c.FieldsErased); diff != "" {
		t.Errorf("fields erased (-want +got):\n%s", diff)
	}
	if len(c.FieldsRetained) != 1 || c.FieldsRetained[0].HoldID != kept.ID {
		t.Errorf("fields retained = %+v, want nickname under %s only", c.FieldsRetained, kept.ID)
	}
	if _, err := env.Keyring.SubjectKey(context.Background(), steward.HoldKeySubject(reg.SubjectID, expired.ID)); steward.ErrorCode(err) != steward.EGONE {
		t.Errorf("expired hold's key after erasure: %v, want EGONE", err)
	}
}
