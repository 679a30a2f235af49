package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/stewardtest"
)

// newShieldAPITest is newAPITest with the contact-shielding, location and link
// hooks registered, as the steward command wires them.
func newShieldAPITest(t *testing.T, engine string) *apiTest {
	t.Helper()
	a := newAPITest(t, engine, Options{})
	a.Service.EnableShield()
	return a
}

var shieldConsent = steward.ConsentChoice{Purpose: steward.ContactShieldingPurpose, Separate: true}

// vcard returns an address book with one card per TEL value.
func vcard(tels ...string) string {
	var b strings.Builder
	for i, tel := range tels {
		b.WriteString("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Contact " + string(rune('A'+i)) + "\r\nTEL;TYPE=CELL:" + tel + "\r\nEND:VCARD\r\n")
	}
	return b.String()
}

// TestContactShieldingOverTheWire is the end-to-end test of policy §2.2 (P6): B
// uploads an address book holding A's number in national format; neither is
// offered to the other, in either direction, by the filter or the suggestions;
// B withdraws contact_shielding and they can be matched again.
func TestContactShieldingOverTheWire(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			a := newShieldAPITest(t, engine)
			ctx := context.Background()
			regA := a.Register(t, "+8613800138000", nil)
			regB := a.Register(t, "+8613900139000", nil, shieldConsent)
			regC := a.Register(t, "+8619147005800", nil)
			A, B, C := regA.SubjectID, regB.SubjectID, regC.SubjectID
			app := a.client(a.appToken("app"))
			meA, meB := a.client(regA.Token), a.client(regB.Token)

			imp, err := meB.ImportContacts(ctx, "text/vcard; charset=utf-8", strings.NewReader(vcard("138 0013 8000")))
			if err != nil {
				t.Fatal(err)
			}
			want := &steward.ContactImport{AddressBookReport: steward.AddressBookReport{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1, Warnings: []string{}},
				Stored: 1, ImportedAt: a.Clock.Now()}
			if diff := cmp.Diff(want, imp); diff != "" {
				t.Fatalf("import (-want +got):\n%s", diff)
			}
			book, err := meB.MyContacts(ctx)
			if err != nil || book.Count != 1 || !book.ImportedAt.Equal(a.Clock.Now()) {
				t.Fatalf("summary = %+v, %v", book, err)
			}

			check := func(when string, wantAB, wantBA []string, wantMatchesA, wantMatchesB []string) {
				t.Helper()
				if got, err := app.MatchFilter(ctx, A, []string{B, C}); err != nil || !cmp.Equal(got, wantAB) {
					t.Errorf("%s: filter for A = %v, %v; want %v", when, got, err, wantAB)
				}
				if got, err := app.MatchFilter(ctx, B, []string{C, A}); err != nil || !cmp.Equal(got, wantBA) {
					t.Errorf("%s: filter for B = %v, %v; want %v", when, got, err, wantBA)
				}
				if p, err := meA.Matches(ctx, "", 0); err != nil || !cmp.Equal(p.Matches, wantMatchesA) {
					t.Errorf("%s: matches for A = %+v, %v; want %v", when, p, err, wantMatchesA)
				}
				if p, err := meB.Matches(ctx, "", 0); err != nil || !cmp.Equal(p.Matches, wantMatchesB) {
					t.Errorf("%s: matches for B = %+v, %v; want %v", when, p, err, wantMatchesB)
				}
			}
			sortedIDs := func(ids ...string) []string { slices.Sort(ids); return ids }
			check("after B's upload", []string{C}, []string{C}, []string{C}, []string{C})

			if _, err := meB.WithdrawConsent(ctx, steward.ContactShieldingPurpose); err != nil {
				t.Fatal(err)
			}
			check("after B's withdrawal", []string{B, C}, []string{C, A}, sortedIDs(B, C), sortedIDs(A, C))
			_, err = meB.MyContacts(ctx)
			wantErr(t, "summary after withdrawal", err, steward.ENOTFOUND, "no address book is stored")
			// Uploading again needs consent again.
			_, err = meB.ImportContacts(ctx, "text/vcard", strings.NewReader(vcard("138 0013 8000")))
			wantErr(t, "upload after withdrawal", err, steward.EFORBIDDEN, "purpose contact_shielding: the subject withdrew consent at "+a.Clock.Now().Format(time.RFC3339))
		})
	}
}

// TestImportUsesTheSubjectsRegion checks the default region comes from the
// subject's own number: for a US subject "0086 …" is not a number (dropped, never
// hashed) while "011 86 …" is +8613800138000; for a CN subject "0086-138-0013-8000"
// and "191 4700 5800" are +8613800138000 and +8619147005800.
func TestImportUsesTheSubjectsRegion(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			a := newShieldAPITest(t, engine)
			ctx := context.Background()
			x := a.Register(t, "+8613800138000", nil).SubjectID
			z := a.Register(t, "+8619147005800", nil).SubjectID
			us := a.Register(t, "+1 201 555 0123", nil, shieldConsent)
			cn := a.Register(t, "+8613700137000", nil, shieldConsent)
			app := a.client(a.appToken("app"))

			imp, err := a.client(us.Token).ImportContacts(ctx, "text/x-vcard", strings.NewReader(vcard("0086 138 0013 8000", "011 86 138 0013 8000")))
			if err != nil {
				t.Fatal(err)
			}
			if imp.Cards != 2 || imp.NumbersFound != 2 || imp.Valid != 1 || imp.Invalid != 1 || imp.Stored != 1 ||
				!cmp.Equal(imp.Warnings, []string{"card 1: TEL value is not a valid phone number"}) {
				t.Fatalf("US import = %+v", imp)
			}
			if got := storedHashes(t, a, us.SubjectID); !cmp.Equal(got, [][]byte{a.Keyring.BlindIndex("phone", "+8613800138000")}) {
				t.Errorf("US subject's hashes are not exactly hash(+8613800138000): %d stored", len(got))
			}
			if got, err := app.MatchFilter(ctx, us.SubjectID, []string{x, z}); err != nil || !cmp.Equal(got, []string{z}) {
				t.Errorf("US subject's candidates = %v, %v; want only the +8619147005800 subject", got, err)
			}
			if got, err := app.MatchFilter(ctx, x, []string{us.SubjectID}); err != nil || len(got) != 0 {
				t.Errorf("+8613800138000 subject's candidates = %v, %v; want none", got, err)
			}

			imp, err = a.client(cn.Token).ImportContacts(ctx, "text/vcard", strings.NewReader(vcard("0086-138-0013-8000", "191 4700 5800")))
			if err != nil || imp.Valid != 2 || imp.Invalid != 0 || imp.Stored != 2 {
				t.Fatalf("CN import = %+v, %v", imp, err)
			}
			want := [][]byte{a.Keyring.BlindIndex("phone", "+8613800138000"), a.Keyring.BlindIndex("phone", "+8619147005800")}
			if got := storedHashes(t, a, cn.SubjectID); !sameSet(got, want) {
				t.Errorf("CN subject's hashes are not exactly those of +8613800138000 and +8619147005800")
			}
			if got, err := app.MatchFilter(ctx, cn.SubjectID, []string{x, z, us.SubjectID}); err != nil || !cmp.Equal(got, []string{us.SubjectID}) {
				t.Errorf("CN subject's candidates = %v, %v; want only the US subject", got, err)
			}
		})
	}
}

func storedHashes(t *testing.T, a *apiTest, id string) [][]byte {
	t.Helper()
	var out [][]byte
	if err := a.Store.Read(context.Background(), func(tx steward.Tx) (err error) { out, err = tx.ContactHashes(context.Background(), id); return err }); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSet(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y []byte) bool { return bytes.Equal(x, y) }) {
			return false
		}
	}
	return true
}

func TestContactRouteErrors(t *testing.T) {
	a := newShieldAPITest(t, "sqlite")
	ctx := context.Background()
	with := a.Register(t, "+8613900139000", nil, shieldConsent)
	without := a.Register(t, "+8613800138000", nil)
	book := vcard("138 0013 8000")

	resp, body := a.raw("POST", "/v1/me/contacts", without.Token, "text/vcard", strings.NewReader(book))
	wantErrorBody(t, "upload without consent", resp, body, 403, steward.EFORBIDDEN, "purpose contact_shielding: the subject has not given consent")
	resp, body = a.raw("POST", "/v1/me/contacts", with.Token, "application/json", strings.NewReader(book))
	wantErrorBody(t, "upload as JSON", resp, body, 415, steward.EUNSUPPORTED, "an address book must be sent as text/vcard, text/x-vcard, text/directory, text/csv, application/octet-stream")
	resp, body = a.raw("POST", "/v1/me/contacts", with.Token, "", strings.NewReader(book))
	wantErrorBody(t, "upload without type", resp, body, 415, steward.EUNSUPPORTED, "an address book must be sent as text/vcard, text/x-vcard, text/directory, text/csv, application/octet-stream")
	resp, body = a.raw("POST", "/v1/me/contacts", with.Token, "application/octet-stream", bytes.NewReader([]byte{0x89, 'P', 'N', 'G', 0, 0, 0, 0}))
	wantErrorBody(t, "upload of binary", resp, body, 400, steward.EINVALID, "not a vCard or CSV address book")
	big := strings.Repeat(vcard("138 0013 8000"), steward.MaxAddressBookBytes/len(book)+1)
	resp, body = a.raw("POST", "/v1/me/contacts", with.Token, "text/vcard", strings.NewReader(big))
	wantErrorBody(t, "upload over 5 MiB", resp, body, 400, steward.EINVALID, "address book is larger than 5242880 bytes")
	// Streamed without a length, the limit still holds.
	resp, body = a.raw("POST", "/v1/me/contacts", with.Token, "text/vcard", struct{ *strings.Reader }{strings.NewReader(big)})
	wantErrorBody(t, "streamed upload over 5 MiB", resp, body, 400, steward.EINVALID, "address book is larger than 5242880 bytes")
	many := vcard(slices.Repeat([]string{"138 0013 8000"}, steward.MaxAddressBookNumbers+1)...)
	resp, body = a.raw("POST", "/v1/me/contacts", with.Token, "text/vcard", strings.NewReader(many))
	wantErrorBody(t, "upload of 20 001 numbers", resp, body, 400, steward.EINVALID, "address book has more than 20000 phone numbers")
	// None of those left a book behind.
	resp, body = a.raw("GET", "/v1/me/contacts", with.Token, "", nil)
	wantErrorBody(t, "summary", resp, body, 404, steward.ENOTFOUND, "no address book is stored")

	app := a.appToken("app")
	resp, body = a.raw("POST", "/v1/me/contacts", app, "text/vcard", strings.NewReader(book))
	wantErrorBody(t, "upload with an app token", resp, body, 403, steward.EFORBIDDEN, "this route is for signed-in subjects; client app and staff tokens cannot use it")
	resp, body = a.raw("POST", "/v1/subjects/"+with.SubjectID+"/match-filter", with.Token, "application/json", strings.NewReader(`{"candidates":[]}`))
	wantErrorBody(t, "filter with a subject token", resp, body, 403, steward.EFORBIDDEN, "this route is for client apps with an app token")
	resp, body = a.raw("POST", "/v1/subjects/"+with.SubjectID+"/match-filter", a.appToken("risk-engine"), "application/json", strings.NewReader(`{"candidates":[]}`))
	wantErrorBody(t, "filter by an app not declared", resp, body, 403, steward.EFORBIDDEN, "only client apps declared for contact_shielding may filter match candidates")
	resp, body = a.raw("POST", "/v1/subjects/"+with.SubjectID+"/match-filter", app, "application/json", strings.NewReader(`{}`))
	wantErrorBody(t, "filter without candidates", resp, body, 400, steward.EINVALID, "candidates is required: an array of subject ids")
	resp, body = a.raw("POST", "/v1/subjects/no-such-id/match-filter", app, "application/json", strings.NewReader(`{"candidates":[]}`))
	wantErrorBody(t, "filter for an unknown subject", resp, body, 404, steward.ENOTFOUND, "subject not found")
	resp, body = a.raw("GET", "/v1/me/matches?limit=x", with.Token, "", nil)
	wantErrorBody(t, "matches limit x", resp, body, 400, steward.EINVALID, "limit must be a whole number from 1 to 100")
	resp, body = a.raw("GET", "/v1/me/matches?limit=101", with.Token, "", nil)
	wantErrorBody(t, "matches limit 101", resp, body, 400, steward.EINVALID, "limit must be between 1 and 100")

	// The answer never echoes a number, and the request log holds none.
	imp, err := a.client(with.Token).ImportContacts(ctx, "text/csv", strings.NewReader("Name,Mobile Phone\nZhang,138 0013 8000\nLi,95508\n"))
	if err != nil || imp.Format != "csv" || imp.Valid != 1 || imp.Invalid != 1 {
		t.Fatalf("CSV import = %+v, %v", imp, err)
	}
	raw, _ := json.Marshal(imp)
	for _, s := range []string{string(raw), a.logs.String()} {
		if strings.Contains(s, "13800138000") || strings.Contains(s, "138 0013") || strings.Contains(s, "95508") || strings.Contains(s, "Zhang") {
			t.Errorf("a number or name leaked: %.300s", s)
		}
	}
	n, err := a.client(with.Token).DeleteMyContacts(ctx)
	if err != nil || n != 1 {
		t.Fatalf("delete = %d, %v", n, err)
	}
}

// TestEmptyUploadKeepsTheBook uploads an 11-number book, then files that hold no
// number: each is 400 and the 11 numbers stay; DELETE is how a book is removed.
func TestEmptyUploadKeepsTheBook(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			a := newShieldAPITest(t, engine)
			sub := a.Register(t, "+8613900139000", nil, shieldConsent)
			var tels []string
			for i := range 11 {
				tels = append(tels, fmt.Sprintf("138 0013 80%02d", i))
			}
			var imp steward.ContactImport
			resp, body := a.raw("POST", "/v1/me/contacts", sub.Token, "text/vcard", strings.NewReader(vcard(tels...)))
			if err := json.Unmarshal(body, &imp); err != nil || resp.StatusCode != 200 || imp.Stored != 11 {
				t.Fatalf("upload 11: %s", body)
			}
			const noContacts = "the upload holds no contacts; to remove your address book use DELETE /v1/me/contacts"
			const noValid = "the upload holds no valid phone numbers; to remove your address book use DELETE /v1/me/contacts"
			for _, c := range []struct{ name, ctype, body, msg string }{
				{"empty body", "text/vcard", "", noContacts},
				{"byte order mark only", "text/vcard", "\uFEFF", noContacts},
				{"white space only", "text/csv", " \r\n\r\n", noContacts},
				{"CSV header only", "text/csv", "Name,Mobile Phone\n", noContacts},
				{"a card without TEL", "text/vcard", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Zhang\r\nEND:VCARD\r\n", noContacts},
				{"only invalid numbers", "text/vcard", vcard("95508", "12"), noValid},
			} {
				resp, body := a.raw("POST", "/v1/me/contacts", sub.Token, c.ctype, strings.NewReader(c.body))
				wantErrorBody(t, c.name, resp, body, 400, steward.EINVALID, c.msg)
			}
			var book steward.ContactBook
			resp, body = a.raw("GET", "/v1/me/contacts", sub.Token, "", nil)
			if err := json.Unmarshal(body, &book); err != nil || resp.StatusCode != 200 || book.Count != 11 || len(storedHashes(t, a, sub.SubjectID)) != 11 {
				t.Fatalf("after empty uploads: %s, %d hashes; want the 11 numbers kept", body, len(storedHashes(t, a, sub.SubjectID)))
			}
		})
	}
}

func TestLocationOverTheWire(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			a := newShieldAPITest(t, engine)
			ctx := context.Background()
			reg := a.Register(t, "+8613800138000", nil)
			me := a.client(reg.Token)
			_, err := me.SetLocation(ctx, 31.230416, 121.473701)
			wantErr(t, "location without consent", err, steward.EFORBIDDEN, "purpose location_services: the subject has not given consent")
			if _, err := me.GrantConsent(ctx, steward.ConsentChoice{Purpose: "location_services", Separate: true}); err != nil {
				t.Fatal(err)
			}
			loc, err := me.SetLocation(ctx, 31.230416, 121.473701)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&steward.Location{Latitude: 31.23, Longitude: 121.47, At: a.Clock.Now()}, loc); diff != "" {
				t.Fatalf("location (-want +got):\n%s", diff)
			}
			resp, body := a.raw("POST", "/v1/me/location", reg.Token, "application/json", strings.NewReader(`{"latitude":31.2}`))
			wantErrorBody(t, "no longitude", resp, body, 400, steward.EINVALID, "latitude and longitude are required")
			resp, body = a.raw("DELETE", "/v1/me/location", reg.Token, "", nil)
			if resp.StatusCode != http.StatusOK || string(body) != `{"deleted":true}`+"\n" {
				t.Fatalf("delete location: %d %s", resp.StatusCode, body)
			}
			if p, _ := me.Me(ctx); p.Fields["location"] != nil {
				t.Error("location kept after delete")
			}
		})
	}
}
