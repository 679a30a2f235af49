package steward_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stewardhq/steward"
	stsql "github.com/stewardhq/steward/sql"
	"github.com/stewardhq/steward/stewardtest"
)

// shieldConsent is the separate consent contact shielding needs (contacts are sensitive).
var shieldConsent = steward.ConsentChoice{Purpose: steward.ContactShieldingPurpose, Separate: true}

// newShieldEnv returns an Env whose service has the shield hooks registered.
func newShieldEnv(t testing.TB, engine string) *stewardtest.Env {
	t.Helper()
	env := stewardtest.New(t, engine, stewardtest.Options{OTP: roomyOTP})
	env.Service.EnableShield()
	return env
}

// importNumbers imports numbers as subject id's address book.
func importNumbers(t testing.TB, env *stewardtest.Env, id string, numbers ...string) *steward.ContactImport {
	t.Helper()
	rep := steward.AddressBookReport{Format: "vcard", Cards: len(numbers), NumbersFound: len(numbers), Valid: len(numbers)}
	out, err := env.Service.ImportContacts(stewardtest.Subject(id), numbers, rep)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return out
}

// filter runs MatchFilter as the app for subject id.
func filter(t testing.TB, env *stewardtest.Env, id string, candidates ...string) []string {
	t.Helper()
	got, err := env.Service.MatchFilter(stewardtest.App("app"), id, candidates)
	if err != nil {
		t.Fatalf("match filter: %v", err)
	}
	return got
}

func matches(t testing.TB, env *stewardtest.Env, id string) []string {
	t.Helper()
	p, err := env.Service.Matches(stewardtest.Subject(id), "", steward.MaxMatchesLimit)
	if err != nil {
		t.Fatalf("matches: %v", err)
	}
	return p.Matches
}

func sorted(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }

func TestContactShieldingBothWays(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := newShieldEnv(t, engine)
			a := env.Register(t, "+8613800138000", nil).SubjectID
			b := env.Register(t, "+8613900139000", nil, shieldConsent).SubjectID
			c := env.Register(t, "+8619147005800", nil).SubjectID

			// Before any upload everyone may meet everyone.
			if got := filter(t, env, a, b, c); !cmp.Equal(got, []string{b, c}) {
				t.Fatalf("before upload, A's candidates = %v", got)
			}
			// B's book holds A's number (and a number nobody registered).
			imp := importNumbers(t, env, b, "+8613800138000", "+8613700137000", "+8613800138000")
			if imp.Stored != 2 {
				t.Errorf("stored = %d, want 2 distinct numbers", imp.Stored)
			}
			if got := filter(t, env, a, c, b); !cmp.Equal(got, []string{c}) {
				t.Errorf("A's candidates after B's upload = %v, want only C", got)
			}
			if got := filter(t, env, b, c, a); !cmp.Equal(got, []string{c}) {
				t.Errorf("B's candidates after B's upload = %v, want only C", got)
			}
			if got := matches(t, env, a); !cmp.Equal(got, []string{c}) {
				t.Errorf("A's suggestions = %v, want only C", got)
			}
			if got := matches(t, env, b); !cmp.Equal(got, []string{c}) {
				t.Errorf("B's suggestions = %v, want only C", got)
			}
			if got := matches(t, env, c); !cmp.Equal(got, sorted(a, b)) {
				t.Errorf("C's suggestions = %v, want A and B", got)
			}
			if sh, _ := env.Service.Shielded(context.Background(), a, b); !sh {
				t.Error("Shielded(A, B) = false")
			}

			// A new upload replaces the book: now C is shielded and A is not.
			imp = importNumbers(t, env, b, "+8619147005800")
			if imp.Stored != 1 {
				t.Errorf("stored after replace = %d, want 1", imp.Stored)
			}
			if got := filter(t, env, b, a, c); !cmp.Equal(got, []string{a}) {
				t.Errorf("B's candidates after the second upload = %v, want only A", got)
			}
			book, err := env.Service.MyContacts(stewardtest.Subject(b))
			if err != nil || book.Count != 1 || !book.ImportedAt.Equal(env.Clock.Now()) {
				t.Fatalf("summary = %+v, %v; want count 1 at %s", book, err, env.Clock.Now())
			}

			// Withdrawal deletes the hashes at once; everyone may meet again.
			if _, err := env.Service.WithdrawConsent(stewardtest.Subject(b), steward.ContactShieldingPurpose); err != nil {
				t.Fatal(err)
			}
			if got := filter(t, env, b, a, c); !cmp.Equal(got, []string{a, c}) {
				t.Errorf("B's candidates after withdrawal = %v, want A and C", got)
			}
			if _, err := env.Service.MyContacts(stewardtest.Subject(b)); steward.ErrorCode(err) != steward.ENOTFOUND {
				t.Errorf("summary after withdrawal: %v, want ENOTFOUND", err)
			}
			var hashes [][]byte
			env.Store.Read(context.Background(), func(tx steward.Tx) (err error) { hashes, err = tx.ContactHashes(context.Background(), b); return err })
			if len(hashes) != 0 {
				t.Errorf("%d hashes kept after withdrawal", len(hashes))
			}
			// Without consent nothing is read or stored.
			if _, err := env.Service.PrepareContactImport(stewardtest.Subject(b)); steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Errorf("prepare without consent: %v, want EFORBIDDEN", err)
			}
			_, err = env.Service.ImportContacts(stewardtest.Subject(b), []string{"+8613800138000"}, steward.AddressBookReport{})
			if steward.ErrorCode(err) != steward.EFORBIDDEN || !strings.Contains(steward.ErrorMessage(err), "contact_shielding") {
				t.Errorf("import without consent: %v, want EFORBIDDEN naming contact_shielding", err)
			}
			// The audit trail has counts, never numbers.
			x, _ := env.Service.ExportMe(stewardtest.Subject(b))
			var acts []string
			for _, e := range x.AccessLog {
				if strings.HasPrefix(e.Action, "contacts.") && e.Actor == "subject:"+b {
					acts = append(acts, e.Action)
				}
			}
			if want := []string{"contacts.import", "contacts.matches", "contacts.import", "contacts.delete"}; !cmp.Equal(acts, want) {
				t.Errorf("B's contacts audit = %v, want %v", acts, want)
			}
		})
	}
}

func TestPrepareContactImport(t *testing.T) {
	env := newShieldEnv(t, "sqlite")
	us := env.Register(t, "+1 201 555 0123", nil, shieldConsent).SubjectID
	plan, err := env.Service.PrepareContactImport(stewardtest.Subject(us))
	if err != nil {
		t.Fatal(err)
	}
	if plan.Phone != "+12015550123" || plan.MaxBytes != 5<<20 || plan.MaxNumbers != 20000 {
		t.Errorf("plan = %q %d %d", plan.Phone, plan.MaxBytes, plan.MaxNumbers)
	}
	if s := fmt.Sprint(plan) + fmt.Sprintf("%v %+v", *plan, *plan); strings.Contains(s, "2015550123") {
		t.Errorf("printing the plan shows the number: %s", s)
	}
	if _, err := env.Service.PrepareContactImport(stewardtest.App("app")); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Errorf("prepare as an app: %v, want EUNAUTHORIZED", err)
	}
}

func TestImportContactsRefusesBadInput(t *testing.T) {
	env := newShieldEnv(t, "sqlite")
	b := env.Register(t, "+8613900139000", nil, shieldConsent).SubjectID
	importNumbers(t, env, b, "+8613800138000")
	sub := stewardtest.Subject(b)
	tooMany := make([]string, steward.MaxAddressBookNumbers+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("+86138%08d", i)
	}
	for name, numbers := range map[string][]string{
		"not E.164":     {"+8613800138001", "13800138000"},
		"leading zero":  {"+0861380013800"},
		"letters":       {"+86138001380OO"},
		"too many":      tooMany,
		"too long":      {"+86138001380001234"},
		"empty element": {""},
	} {
		_, err := env.Service.ImportContacts(sub, numbers, steward.AddressBookReport{})
		if steward.ErrorCode(err) != steward.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
		if strings.Contains(steward.ErrorMessage(err), "138") {
			t.Errorf("%s: message %q echoes the input", name, steward.ErrorMessage(err))
		}
	}
	// Nothing was half-imported: the earlier book is intact.
	if book, err := env.Service.MyContacts(sub); err != nil || book.Count != 1 {
		t.Fatalf("book after refused imports = %+v, %v; want the earlier 1 number", book, err)
	}
	// An upload without a number never replaces the book: removing it is DELETE.
	const noContacts = "the upload holds no contacts; to remove your address book use DELETE /v1/me/contacts"
	const noValid = "the upload holds no valid phone numbers; to remove your address book use DELETE /v1/me/contacts"
	for _, c := range []struct {
		name   string
		report steward.AddressBookReport
		msg    string
	}{
		{"no cards", steward.AddressBookReport{Format: "vcard"}, noContacts},
		{"cards without numbers", steward.AddressBookReport{Format: "csv", Cards: 3}, noContacts},
		{"only invalid numbers", steward.AddressBookReport{Format: "vcard", Cards: 2, NumbersFound: 2, Invalid: 2}, noValid},
	} {
		_, err := env.Service.ImportContacts(sub, []string{}, c.report)
		if steward.ErrorCode(err) != steward.EINVALID || steward.ErrorMessage(err) != c.msg {
			t.Errorf("%s: %v, want EINVALID %q", c.name, err, c.msg)
		}
	}
	if book, err := env.Service.MyContacts(sub); err != nil || book.Count != 1 {
		t.Fatalf("book after empty uploads = %+v, %v; want the earlier 1 number", book, err)
	}
	if n, err := env.Service.DeleteMyContacts(sub); err != nil || n != 1 {
		t.Errorf("delete = %d, %v; want 1", n, err)
	}
}

func TestMatchFilterRules(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := newShieldEnv(t, engine)
			a := env.Register(t, "+8613800138000", nil).SubjectID
			b := env.Register(t, "+8613900139000", nil).SubjectID
			c := env.Register(t, "+8619147005800", nil).SubjectID
			gone := env.Register(t, "+8613700137000", nil).SubjectID
			sub := stewardtest.Subject(gone)
			env.Service.SendCancellationCode(sub)
			if _, err := env.Service.CancelAccount(sub, env.LastCode(t, "+8613700137000")); err != nil {
				t.Fatal(err)
			}
			// Order kept; duplicates, the subject itself, unknown and cancelled ids dropped.
			got := filter(t, env, a, c, "no-such-id", a, gone, b, c)
			if want := []string{c, b}; !cmp.Equal(got, want) {
				t.Errorf("filter = %v, want %v", got, want)
			}
			if got := filter(t, env, a); got == nil || len(got) != 0 {
				t.Errorf("no candidates = %#v, want an empty list", got)
			}
			for name, tc := range map[string]struct {
				ctx        context.Context
				id         string
				candidates []string
				code       string
			}{
				"app not declared":  {stewardtest.App("risk-engine"), a, []string{b}, steward.EFORBIDDEN},
				"subject token":     {stewardtest.Subject(a), a, []string{b}, steward.EFORBIDDEN},
				"unknown subject":   {stewardtest.App("app"), "no-such-id", []string{b}, steward.ENOTFOUND},
				"cancelled subject": {stewardtest.App("app"), gone, []string{b}, steward.EGONE},
				"too many":          {stewardtest.App("app"), a, make([]string, steward.MaxMatchCandidates+1), steward.EINVALID},
			} {
				if _, err := env.Service.MatchFilter(tc.ctx, tc.id, tc.candidates); steward.ErrorCode(err) != tc.code {
					t.Errorf("%s: %v, want %s", name, err, tc.code)
				}
			}
			// Paging through suggestions.
			p1, err := env.Service.Matches(stewardtest.Subject(a), "", 1)
			if err != nil || len(p1.Matches) != 1 || p1.Next != p1.Matches[0] {
				t.Fatalf("page 1 = %+v, %v", p1, err)
			}
			p2, _ := env.Service.Matches(stewardtest.Subject(a), p1.Next, 1)
			if got, want := append(p1.Matches, p2.Matches...), sorted(b, c); !cmp.Equal(got, want) {
				t.Errorf("two pages = %v, want %v", got, want)
			}
			if _, err := env.Service.Matches(stewardtest.Subject(a), "", 0); steward.ErrorCode(err) != steward.EINVALID {
				t.Errorf("limit 0: %v", err)
			}
		})
	}
}

func TestCancellationErasesAddressBook(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := newShieldEnv(t, engine)
			a := env.Register(t, "+8613800138000", nil).SubjectID
			b := env.Register(t, "+8613900139000", nil, shieldConsent).SubjectID
			importNumbers(t, env, b, "+8613800138000", "+8613700137000")

			x, err := env.Service.ExportMe(stewardtest.Subject(b))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(x.Extra["contacts"])
			var got map[string]any
			json.Unmarshal(raw, &got)
			if got["count"] != 2.0 || got["imported_at"] != env.Clock.Now().UTC().Format(time.RFC3339) || !strings.Contains(got["note"].(string), "keyed hashes") {
				t.Errorf("export contacts = %s", raw)
			}

			sub := stewardtest.Subject(b)
			env.Service.SendCancellationCode(sub)
			rc, err := env.Service.CancelAccount(sub, env.LastCode(t, "+8613900139000"))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(rc.FieldsErased, "contacts") {
				t.Errorf("fields erased = %v, want contacts among them", rc.FieldsErased)
			}
			var hashes [][]byte
			env.Store.Read(context.Background(), func(tx steward.Tx) (err error) { hashes, err = tx.ContactHashes(context.Background(), b); return err })
			if len(hashes) != 0 {
				t.Errorf("%d of B's hashes kept after cancellation", len(hashes))
			}
			if got := matches(t, env, a); len(got) != 0 {
				t.Errorf("A's suggestions after B's cancellation = %v, want none", got)
			}
		})
	}
}

// BenchmarkMatchFilter filters 1,000 candidates for a subject with a 5,000-number
// address book (policy §2.2 performance goal: under 5 ms in-process). 50 candidates
// are in the book and 50 hold the subject's number. The store is seeded directly:
// matching reads only the subjects, their phone indexes and the hashes.
func BenchmarkMatchFilter(b *testing.B) {
	for _, engine := range stewardtest.Engines(b) {
		b.Run(engine, func(b *testing.B) {
			env := newShieldEnv(b, engine)
			ctx := context.Background()
			self := env.Register(b, "+8613800138000", nil).SubjectID
			selfIndex := env.Keyring.BlindIndex("phone", "+8613800138000")
			now := env.Clock.Now()
			candidates := make([]string, 1000)
			var book [][]byte
			err := env.Store.Write(ctx, func(tx steward.Tx) error {
				for i := range candidates {
					id := steward.NewID()
					candidates[i] = id
					phone := env.Keyring.BlindIndex("phone", fmt.Sprintf("+86139%08d", i))
					if err := tx.CreateSubject(ctx, &steward.Subject{ID: id, Status: steward.SubjectActive, Region: "cn", KeyID: "k", CreatedAt: now}); err != nil {
						return err
					}
					if err := tx.PutIndex(ctx, "phone", phone, id); err != nil {
						return err
					}
					if i%20 == 0 {
						book = append(book, phone)
					}
					if i%20 == 1 {
						if err := tx.ReplaceContacts(ctx, &steward.ContactBook{SubjectID: id, Count: 1, ImportedAt: now}, [][]byte{selfIndex}); err != nil {
							return err
						}
					}
				}
				for i := len(book); i < 5000; i++ {
					book = append(book, env.Keyring.BlindIndex("phone", fmt.Sprintf("+86137%08d", i)))
				}
				return tx.ReplaceContacts(ctx, &steward.ContactBook{SubjectID: self, Count: len(book), ImportedAt: now}, book)
			})
			if err != nil {
				b.Fatal(err)
			}
			if engine == stsql.Postgres {
				// Production statistics come from autovacuum; a database filled a
				// moment ago has none, and the planner would guess 2 rows.
				db, err := sql.Open("pgx", env.DataDSN)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := db.Exec("ANALYZE"); err != nil {
					b.Fatal(err)
				}
				db.Close()
			}
			app := stewardtest.App("app")
			got, err := env.Service.MatchFilter(app, self, candidates)
			if err != nil || len(got) != 900 {
				b.Fatalf("allowed %d of 1000, %v; want 900", len(got), err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := env.Service.MatchFilter(app, self, candidates); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
