package steward_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/outbox"
	"github.com/stewardhq/steward/stewardtest"
)

// features wires recipients, holds and erasure onto a test environment the way
// cmd/steward does, with a webhook sink on the outbox.
type features struct {
	env        *stewardtest.Env
	recipients *steward.Recipients
	holds      *steward.Holds
	erasure    *steward.Erasure
	completer  *fakeCompleter
}

func newFeatures(t *testing.T, env *stewardtest.Env) *features {
	t.Helper()
	f := &features{env: env}
	f.recipients = steward.NewRecipients(env.Service, steward.RecipientsConfig{})
	f.holds = steward.NewHolds(env.Service)
	f.erasure = steward.NewErasure(env.Service, steward.ErasureConfig{Signer: env.Keyring, Recipients: f.recipients, Holds: f.holds})
	f.completer = &fakeCompleter{steps: f.erasure, fulfilled: map[string]bool{}}
	f.recipients.SetCompleter(f.completer)
	env.Outbox.Sinks["webhook"] = &outbox.WebhookSink{Now: env.Clock.Now, Sign: func(ctx context.Context, m outbox.Message, at time.Time) (map[string]string, error) {
		sig, err := f.recipients.WebhookSignature(ctx, m.Headers[steward.IdempotencyKeyHeader], []byte(m.Body), at)
		return map[string]string{steward.SignatureHeader: sig}, err
	}}
	return f
}

// fakeCompleter follows the RequestCompleter contract: a request is fulfilled
// once its fulfiller reports no pending step.
type fakeCompleter struct {
	steps     steward.Fulfiller
	mu        sync.Mutex
	calls     int
	fulfilled map[string]bool
}

func (c *fakeCompleter) CompleteIfDone(ctx context.Context, id string) (*steward.Request, error) {
	pending, err := c.steps.PendingSteps(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if len(pending) == 0 {
		c.fulfilled[id] = true
	}
	return &steward.Request{ID: id}, nil
}

func staff(roles ...string) context.Context {
	return stewardtest.Ctx(steward.Actor{Kind: steward.ActorStaff, ID: "officer-1", Roles: roles})
}

// receiver is a recipient's webhook endpoint.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	status []int // answers, in order; 200 once exhausted
}

type received struct {
	body, signature, idempotencyKey string
}

func newReceiver(t *testing.T, status ...int) *receiver {
	rv := &receiver{status: status}
	rv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rv.mu.Lock()
		rv.got = append(rv.got, received{string(b), r.Header.Get("Steward-Signature"), r.Header.Get("Idempotency-Key")})
		code := 200
		if len(rv.status) > 0 {
			code, rv.status = rv.status[0], rv.status[1:]
		}
		rv.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(rv.srv.Close)
	return rv
}

func (rv *receiver) received() []received {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]received(nil), rv.got...)
}

// verifySignature checks a Steward-Signature header the way doc/recipients.md
// tells a recipient to, without Steward's code: split t and v1, HMAC-SHA256 the
// secret over t + "." + body, compare in constant time. It returns t.
func verifySignature(t *testing.T, secret, header, body string) int64 {
	t.Helper()
	var ts, v1 string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		}
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + body))
	got, _ := hex.DecodeString(v1)
	if !hmac.Equal(got, m.Sum(nil)) {
		t.Fatalf("signature %q does not verify with the secret", header)
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ack acknowledges notice id as the recipient holding secret would.
func (f *features) ack(t *testing.T, secret, id string) (*steward.RecipientNotice, error) {
	t.Helper()
	body := []byte(`{"notice_id":"` + id + `","outcome":"done"}`)
	return f.recipients.Acknowledge(context.Background(), id, body, steward.SignPayload(secret, f.env.Clock.Now(), body))
}

func deletionRequest(t *testing.T, env *stewardtest.Env, subjectID string) *steward.Request {
	t.Helper()
	now := env.Clock.Now()
	r, err := steward.NewRequest(steward.NewID(), subjectID, steward.RequestDeletion, steward.DeletionNoLongerUsed, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify("otp", subjectID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Transition(steward.RequestInProgress, "started", now); err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *features) partner(t *testing.T, name, url string, purposes, fields []string) *steward.RegisteredRecipient {
	t.Helper()
	rec, err := f.recipients.Register(staff(steward.RolePrivacyOfficer), steward.RecipientInput{Name: name, Kind: steward.RecipientPartner,
		WebhookURL: url, AgreementRef: "DPA-2026-017", Purposes: purposes, Fields: fields})
	if err != nil {
		t.Fatalf("register recipient: %v", err)
	}
	return rec
}

func TestRegisterRecipient(t *testing.T) {
	env := stewardtest.New(t, "sqlite", stewardtest.Options{})
	f := newFeatures(t, env)
	ok := steward.RecipientInput{Name: "Acme Logistics", Kind: steward.RecipientPartner, WebhookURL: "https://hooks.acme.example/steward",
		AgreementRef: "DPA-2026-017", Purposes: []string{"account"}, Fields: []string{"nickname", "phone"}}
	cases := []struct {
		name   string
		ctx    context.Context
		edit   func(*steward.RecipientInput)
		code   string
		errMsg string
	}{
		{"support may not", staff(steward.RoleSupport), nil, steward.EFORBIDDEN, "only staff with the role privacy_officer or admin may register recipients"},
		{"subject may not", stewardtest.Subject("s1"), nil, steward.EFORBIDDEN, "only staff with the role privacy_officer or admin may register recipients"},
		{"unknown kind", staff(steward.RoleAdmin), func(in *steward.RecipientInput) { in.Kind = "friend" }, steward.EINVALID,
			"kind must be one of affiliate, partner, processor, acquirer, regulator"},
		{"no agreement", staff(steward.RoleAdmin), func(in *steward.RecipientInput) { in.AgreementRef = " " }, steward.EINVALID,
			"agreement_reference is required: PI is shared only under a data protection agreement (policy §4)"},
		{"plain http to the internet", staff(steward.RoleAdmin), func(in *steward.RecipientInput) { in.WebhookURL = "http://hooks.acme.example/" }, steward.EINVALID,
			"webhook_url must use https (plain http is accepted only for localhost, 127.0.0.0/8 or [::1])"},
		{"undeclared purpose", staff(steward.RoleAdmin), func(in *steward.RecipientInput) { in.Purposes = []string{"resale"} }, steward.EINVALID,
			`purpose "resale" is not declared`},
		{"field outside the purposes", staff(steward.RoleAdmin), func(in *steward.RecipientInput) { in.Fields = []string{"imei"} }, steward.EINVALID,
			"field imei is not processed for any of the purposes account"},
		{"privacy officer may", staff(steward.RolePrivacyOfficer), nil, "", ""},
		{"same name twice", staff(steward.RoleAdmin), nil, steward.ECONFLICT, `a recipient called "Acme Logistics" is registered already`},
	}
	for _, c := range cases {
		in := ok
		if c.edit != nil {
			c.edit(&in)
		}
		got, err := f.recipients.Register(c.ctx, in)
		if steward.ErrorCode(err) != c.code || steward.ErrorMessage(err) != c.errMsg && c.code != "" {
			t.Errorf("%s: %v, want %s %q", c.name, err, c.code, c.errMsg)
		}
		if c.code == "" && (!strings.HasPrefix(got.SigningSecret, "whsec_") || len(got.SigningSecret) != 49) {
			t.Errorf("%s: secret %q, want whsec_ and 43 base64url characters", c.name, got.SigningSecret)
		}
	}
	list, err := f.recipients.List(staff(steward.RoleAuditor))
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v, %v", list, err)
	}
	if got := list[0]; got.Name != "Acme Logistics" || got.CreatedBy != "staff:officer-1" || strings.Join(got.Fields, ",") != "nickname,phone" {
		t.Errorf("listed %+v", got)
	}
	// The secret is stored sealed, never in clear; the listing never shows it.
	b, _ := json.Marshal(list)
	if strings.Contains(string(b), "whsec_") || strings.Contains(string(b), "secret") {
		t.Errorf("listing shows the secret: %s", b)
	}
	if data := storageBytes(t, env); strings.Contains(string(data), "whsec_") {
		t.Error("storage holds the signing secret in clear")
	}
}

// TestWebhookURLRules registers recipients with webhook URLs the QA tester tried:
// plain http only to exactly localhost or a loopback IP literal, never to a host
// that merely starts like one; no impossible port, credentials or fragment; no
// link-local or unspecified literal (cloud metadata, SSRF from the outbox worker);
// private ranges allowed. A bad URL is EINVALID even when the name is taken.
func TestWebhookURLRules(t *testing.T) {
	env := stewardtest.New(t, "sqlite", stewardtest.Options{})
	f := newFeatures(t, env)
	const (
		scheme   = "webhook_url must use https (plain http is accepted only for localhost, 127.0.0.0/8 or [::1])"
		port     = "webhook_url has an invalid port: it must be a number from 1 to 65535"
		creds    = "webhook_url must not hold credentials (user:password@): notices are signed with the recipient's secret"
		fragment = "webhook_url must not have a fragment (#…)"
		refused  = "webhook_url must not point at an unspecified or link-local address (0.0.0.0/8, ::, 169.254.0.0/16, fe80::/10)"
		shape    = "webhook_url must be an absolute https URL such as https://hooks.example.com/steward"
	)
	cases := []struct {
		url, errMsg string // errMsg "" means accepted
	}{
		{"http://127.0.0.1evil.com/x", scheme},
		{"http://127.0.0.1.evil.com/x", scheme},
		{"http://127.0.0.1.nip.io/x", scheme},
		{"http://localhost.evil.com/x", scheme},
		{"http://localhost./x", scheme},
		{"http://[::1]evil.com/x", shape},
		{"http://10.0.0.5/x", scheme},
		{"ftp://hooks.acme.example/x", scheme},
		{"https://a.example:99999/x", port},
		{"https://a.example:0/x", port},
		{"https://a.example:/x", port},
		{"https://user:pw@hooks.acme.example/x", creds},
		{"https://user@hooks.acme.example/x", creds},
		{"https://hooks.acme.example/x#frag", fragment},
		{"https://hooks.acme.example/x#", fragment},
		{"https://169.254.169.254/latest/meta-data/", refused},
		{"http://169.254.169.254/latest/meta-data/", refused},
		{"https://[fe80::1]/x", refused},
		{"https://[fe80::1%25eth0]/x", "webhook_url must not name an IPv6 zone (%…)"},
		{"https://0.0.0.0/x", refused},
		{"http://0.0.0.0:8080/x", refused},
		{"https://[::]/x", refused},
		{"https://[::ffff:169.254.169.254]/x", refused},
		{"hooks.acme.example/x", shape},
		{"https:///x", shape},
		{"", shape},
		{"https://hooks.acme.example/x?tenant=7", ""},
		{"https://hooks.acme.example:8443/x", ""},
		{"https://10.1.2.3/x", ""},
		{"https://192.168.1.20:8443/x", ""},
		{"https://[fd00::5]/x", ""},
		{"http://localhost:8080/x", ""},
		{"http://127.0.0.1:8080/x", ""},
		{"http://127.9.8.7/x", ""},
		{"http://[::1]:8080/x", ""},
	}
	for i, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			in := steward.RecipientInput{Name: "Partner " + strconv.Itoa(i), Kind: steward.RecipientPartner, WebhookURL: c.url,
				AgreementRef: "DPA-2026-017", Purposes: []string{"account"}, Fields: []string{"nickname"}}
			got, err := f.recipients.Register(staff(steward.RoleAdmin), in)
			if c.errMsg == "" {
				if err != nil || got.WebhookURL != c.url {
					t.Fatalf("Register: %v, want %s accepted", err, c.url)
				}
				return
			}
			if steward.ErrorCode(err) != steward.EINVALID || steward.ErrorMessage(err) != c.errMsg {
				t.Fatalf("Register: %v, want EINVALID %q", err, c.errMsg)
			}
			// The URL is judged before the name: a taken name does not turn it into 409.
			in.Name = "Partner 0"
			if _, err := f.recipients.Register(staff(steward.RoleAdmin), in); steward.ErrorCode(err) != steward.EINVALID || steward.ErrorMessage(err) != c.errMsg {
				t.Fatalf("Register under a taken name: %v, want EINVALID %q", err, c.errMsg)
			}
		})
	}
}

func TestRefusedWebhookAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"169.254.169.254":        true,
		"169.254.0.1":            true,
		"fe80::1":                true,
		"febf::1":                true,
		"::ffff:169.254.169.254": true,
		"0.0.0.0":                true,
		"0.1.2.3":                true,
		"::":                     true,
		"ff02::1":                true,
		"224.0.0.1":              true,
		"127.0.0.1":              false,
		"::1":                    false,
		"10.0.0.1":               false,
		"172.16.5.4":             false,
		"192.168.1.1":            false,
		"fd00::1":                false,
		"203.0.113.7":            false,
		"2001:db8::1":            false,
		"169.255.0.1":            false,
		"fec0::1":                false,
	} {
		if got := steward.RefusedWebhookAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("RefusedWebhookAddr(%s) = %v, want %v", addr, got, want)
		}
	}
	if !steward.RefusedWebhookAddr(netip.Addr{}) {
		t.Error("RefusedWebhookAddr(zero Addr) = false, want true")
	}
}

func TestDisclosureRules(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			f := newFeatures(t, env)
			reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`}, steward.ConsentChoice{Purpose: "marketing", Separate: true})
			rec := f.partner(t, "Acme Logistics", "https://hooks.acme.example/", []string{"account", "marketing"}, []string{"nickname", "phone"})
			other := f.partner(t, "Beta Ads", "https://hooks.beta.example/", []string{"marketing"}, []string{"phone"})
			app := stewardtest.App("app")
			cases := []struct {
				name   string
				ctx    context.Context
				in     steward.DisclosureInput
				code   string
				errMsg string
			}{
				{"a subject cannot record one", stewardtest.Subject(reg.SubjectID), steward.DisclosureInput{rec.ID, "account", []string{"nickname"}}, steward.EFORBIDDEN, "only client apps record disclosures"},
				{"app not declared for the purpose", stewardtest.App("risk-engine"), steward.DisclosureInput{rec.ID, "account", []string{"nickname"}}, steward.EFORBIDDEN, "client app risk-engine is not declared for purpose account"},
				{"field outside the purpose", app, steward.DisclosureInput{rec.ID, "marketing", []string{"nickname"}}, steward.EINVALID, "field nickname is not processed for purpose marketing"},
				{"recipient not registered for the purpose", app, steward.DisclosureInput{other.ID, "account", []string{"phone"}}, steward.EFORBIDDEN, "recipient " + other.ID + " is not registered for purpose account"},
				{"recipient not registered for the field", app, steward.DisclosureInput{rec.ID, "account", []string{"birthday"}}, steward.EFORBIDDEN, "recipient " + rec.ID + " is not registered to receive field birthday"},
				{"unknown recipient", app, steward.DisclosureInput{"nobody", "account", []string{"nickname"}}, steward.ENOTFOUND, "no recipient with that id"},
				{"allowed", app, steward.DisclosureInput{rec.ID, "account", []string{"phone", "nickname"}}, "", ""},
				{"allowed for marketing", app, steward.DisclosureInput{other.ID, "marketing", []string{"phone"}}, "", ""},
			}
			for _, c := range cases {
				d, err := f.recipients.Disclose(c.ctx, reg.SubjectID, c.in)
				if steward.ErrorCode(err) != c.code || steward.ErrorMessage(err) != c.errMsg && c.code != "" {
					t.Errorf("%s: %v, want %s %q", c.name, err, c.code, c.errMsg)
				}
				if c.code == "" && (d.AppID != "app" || d.SubjectID != reg.SubjectID || !d.At.Equal(env.Clock.Now().UTC())) {
					t.Errorf("%s: disclosure %+v", c.name, d)
				}
			}
			// Without the basis, no disclosure: withdraw marketing, then try again.
			if _, err := env.Service.WithdrawConsent(stewardtest.Subject(reg.SubjectID), "marketing"); err != nil {
				t.Fatal(err)
			}
			_, err := f.recipients.Disclose(app, reg.SubjectID, steward.DisclosureInput{other.ID, "marketing", []string{"phone"}})
			if steward.ErrorCode(err) != steward.EFORBIDDEN || !strings.HasPrefix(steward.ErrorMessage(err), "purpose marketing: the subject withdrew consent at ") {
				t.Fatalf("disclose after withdrawal: %v", err)
			}
			x, _ := env.Service.ExportMe(stewardtest.Subject(reg.SubjectID))
			var log []string
			for _, e := range x.AccessLog {
				if e.Actor == "app:app" {
					log = append(log, e.Action+"/"+e.Purpose+"/"+strings.Join(e.Fields, "+"))
				}
			}
			want := []string{"subject.disclose/account/nickname+phone", "subject.disclose/marketing/phone", "subject.disclose_denied/marketing/phone"}
			if diff := cmp.Diff(want, log); diff != "" {
				t.Errorf("access log of the app (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeletionNoticeAcknowledged follows one deletion from the request to its
// completion: the recipient gets a signed webhook, verifies it with its secret
// and acknowledges; the request completes only after that.
func TestDeletionNoticeAcknowledged(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			f := newFeatures(t, env)
			rv := newReceiver(t)
			reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`})
			rec := f.partner(t, "Acme Logistics", rv.srv.URL+"/steward", []string{"account"}, []string{"nickname", "phone"})
			app := stewardtest.App("app")
			for _, fs := range [][]string{{"nickname"}, {"phone"}} {
				if _, err := f.recipients.Disclose(app, reg.SubjectID, steward.DisclosureInput{rec.ID, "account", fs}); err != nil {
					t.Fatal(err)
				}
			}
			erasedAt := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
			env.Clock.Set(erasedAt)
			r := deletionRequest(t, env, reg.SubjectID)
			if _, err := f.erasure.Fulfil(staff(steward.RolePrivacyOfficer), r); err != nil {
				t.Fatal(err)
			}
			steps, _ := f.erasure.PendingSteps(context.Background(), r.ID)
			if len(steps) != 1 || steps[0].Kind != "recipient_notice" || steps[0].Target != rec.ID || steps[0].State != steward.StepPending ||
				!steps[0].DueAt.Equal(erasedAt.Add(7*24*time.Hour)) {
				t.Fatalf("pending steps after fulfilment = %+v", steps)
			}
			env.Clock.Advance(10 * time.Second)
			if n, err := env.Outbox.DeliverDue(context.Background()); err != nil || n != 1 {
				t.Fatalf("deliver: %d, %v", n, err)
			}
			got := rv.received()
			if len(got) != 1 {
				t.Fatalf("receiver got %d webhooks, want 1", len(got))
			}
			if ts := verifySignature(t, rec.SigningSecret, got[0].signature, got[0].body); ts != erasedAt.Add(10*time.Second).Unix() {
				t.Errorf("signature timestamp %d, want the delivery time %d", ts, erasedAt.Add(10*time.Second).Unix())
			}
			want := `{"event":"deletion","subject_id":"` + reg.SubjectID + `","fields":["nickname","phone"],"notice_id":"` + steps[0].ID +
				`","request_id":"` + r.ID + `","occurred_at":"2026-11-30T08:00:00Z","acknowledge_by":"2026-12-07T08:00:00Z"}`
			if got[0].body != want {
				t.Errorf("webhook body\n got %s\nwant %s", got[0].body, want)
			}
			if got[0].idempotencyKey != steps[0].ID {
				t.Errorf("Idempotency-Key %q, want the notice id %q", got[0].idempotencyKey, steps[0].ID)
			}
			if f.completer.fulfilled[r.ID] {
				t.Fatal("request fulfilled before the recipient acknowledged")
			}
			// A wrong secret, a stale timestamp and a body for another notice are refused.
			body := []byte(`{"notice_id":"` + steps[0].ID + `","outcome":"done"}`)
			for _, c := range []struct {
				name, sig string
				body      []byte
				code, msg string
			}{
				{"wrong secret", steward.SignPayload("whsec_wrong", env.Clock.Now(), body), body, steward.EUNAUTHORIZED,
					"the signature does not match the body under the recipient's signing secret"},
				{"stale", steward.SignPayload(rec.SigningSecret, env.Clock.Now().Add(-6*time.Minute), body), body, steward.EUNAUTHORIZED,
					"the signature's timestamp is more than 5m0s away from Steward's clock"},
				{"no header", "", body, steward.EUNAUTHORIZED, "the Steward-Signature header must be t=<unix seconds>,v1=<hex HMAC-SHA256>"},
				{"another notice's body", steward.SignPayload(rec.SigningSecret, env.Clock.Now(), []byte(`{"notice_id":"other"}`)), []byte(`{"notice_id":"other"}`),
					steward.EINVALID, "notice_id in the body must be the id of the notice acknowledged"},
			} {
				_, err := f.recipients.Acknowledge(context.Background(), steps[0].ID, c.body, c.sig)
				if steward.ErrorCode(err) != c.code || steward.ErrorMessage(err) != c.msg {
					t.Errorf("%s: %v, want %s %q", c.name, err, c.code, c.msg)
				}
			}
			if f.completer.calls != 0 || f.completer.fulfilled[r.ID] {
				t.Fatal("a refused acknowledgement completed the request")
			}
			env.Clock.Advance(time.Hour)
			n, err := f.ack(t, rec.SigningSecret, steps[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if n.State != steward.NoticeAcknowledged || !n.AckedAt.Equal(erasedAt.Add(time.Hour+10*time.Second)) || n.AckOutcome != "done" {
				t.Errorf("acknowledged notice = %+v", n)
			}
			if !f.completer.fulfilled[r.ID] {
				t.Fatal("request not fulfilled after the only notice was acknowledged")
			}
			// Acknowledging again changes nothing.
			env.Clock.Advance(time.Hour)
			again, err := f.ack(t, rec.SigningSecret, steps[0].ID)
			if err != nil || !again.AckedAt.Equal(n.AckedAt) {
				t.Fatalf("second acknowledgement: %+v, %v", again, err)
			}
			if steps, _ := f.erasure.PendingSteps(context.Background(), r.ID); len(steps) != 0 {
				t.Errorf("pending steps after the acknowledgement = %+v", steps)
			}
		})
	}
}

func TestWebhookRetriedWithSameIdempotencyKey(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			f := newFeatures(t, env)
			rv := newReceiver(t, 500)
			reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`})
			rec := f.partner(t, "Acme Logistics", rv.srv.URL, []string{"account"}, []string{"nickname"})
			if _, err := f.recipients.Disclose(stewardtest.App("app"), reg.SubjectID, steward.DisclosureInput{rec.ID, "account", []string{"nickname"}}); err != nil {
				t.Fatal(err)
			}
			// A correction of the disclosed field tells the recipient (P18).
			if _, err := env.Service.UpdateMe(stewardtest.Subject(reg.SubjectID), steward.FieldValues{"nickname": []byte(`"张伟New"`)}); err != nil {
				t.Fatal(err)
			}
			if n, err := env.Outbox.DeliverDue(context.Background()); err != nil || n != 0 {
				t.Fatalf("first attempt: %d delivered, %v; want 0 (HTTP 500)", n, err)
			}
			// Not due again before the backoff (30 s after the first failure).
			env.Clock.Advance(29 * time.Second)
			if n, _ := env.Outbox.DeliverDue(context.Background()); n != 0 || len(rv.received()) != 1 {
				t.Fatalf("retried %d times before the backoff ran out", len(rv.received())-1)
			}
			env.Clock.Advance(time.Second)
			if n, err := env.Outbox.DeliverDue(context.Background()); err != nil || n != 1 {
				t.Fatalf("second attempt: %d delivered, %v", n, err)
			}
			got := rv.received()
			if len(got) != 2 {
				t.Fatalf("receiver got %d requests, want 2", len(got))
			}
			if got[0].idempotencyKey == "" || got[0].idempotencyKey != got[1].idempotencyKey || got[0].body != got[1].body {
				t.Errorf("the retry differs: %+v vs %+v", got[0], got[1])
			}
			t0 := verifySignature(t, rec.SigningSecret, got[0].signature, got[0].body)
			t1 := verifySignature(t, rec.SigningSecret, got[1].signature, got[1].body)
			if t1-t0 != 30 {
				t.Errorf("retry signed %d s after the first attempt, want 30 (each attempt signs afresh)", t1-t0)
			}
			var body steward.NoticeWebhook
			json.Unmarshal([]byte(got[0].body), &body)
			if body.Event != "correction" || strings.Join(body.Fields, ",") != "nickname" || body.NoticeID != got[0].idempotencyKey || body.RequestID != "" {
				t.Errorf("correction webhook = %+v", body)
			}
		})
	}
}

func TestWithdrawalNotifiesRecipientsOfThatPurpose(t *testing.T) {
	env := stewardtest.New(t, "sqlite", stewardtest.Options{})
	f := newFeatures(t, env)
	rv := newReceiver(t)
	reg := env.Register(t, "+8613800138000", nil, steward.ConsentChoice{Purpose: "marketing", Separate: true})
	ads := f.partner(t, "Beta Ads", rv.srv.URL+"/ads", []string{"marketing"}, []string{"phone"})
	acme := f.partner(t, "Acme Logistics", rv.srv.URL+"/acme", []string{"account"}, []string{"phone"})
	app := stewardtest.App("app")
	f.recipients.Disclose(app, reg.SubjectID, steward.DisclosureInput{ads.ID, "marketing", []string{"phone"}})
	f.recipients.Disclose(app, reg.SubjectID, steward.DisclosureInput{acme.ID, "account", []string{"phone"}})
	env.Clock.Advance(time.Minute)
	if _, err := env.Service.WithdrawConsent(stewardtest.Subject(reg.SubjectID), "marketing"); err != nil {
		t.Fatal(err)
	}
	ns, err := f.recipients.Notices(staff(steward.RoleAuditor), steward.NoticeFilter{SubjectID: reg.SubjectID})
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || ns[0].RecipientID != ads.ID || ns[0].Event != "withdrawal" || ns[0].Purpose != "marketing" || strings.Join(ns[0].Fields, ",") != "phone" {
		t.Fatalf("notices after withdrawal = %+v; want one withdrawal notice to Beta Ads only", ns)
	}
}

func TestUnacknowledgedNoticeIsOverdue(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			f := newFeatures(t, env)
			rv := newReceiver(t)
			reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`})
			rec := f.partner(t, "Acme Logistics", rv.srv.URL, []string{"account"}, []string{"nickname"})
			f.recipients.Disclose(stewardtest.App("app"), reg.SubjectID, steward.DisclosureInput{rec.ID, "account", []string{"nickname"}})
			sent := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
			env.Clock.Set(sent)
			r := deletionRequest(t, env, reg.SubjectID)
			if _, err := f.erasure.Fulfil(staff(steward.RolePrivacyOfficer), r); err != nil {
				t.Fatal(err)
			}
			env.Outbox.DeliverDue(context.Background())
			overdue := steward.NoticeFilter{State: steward.NoticePending, OverdueAt: time.Time{}}
			list := func() []string {
				overdue.OverdueAt = env.Clock.Now()
				ns, err := f.recipients.Notices(staff(steward.RolePrivacyOfficer), overdue)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, n := range ns {
					out = append(out, n.Event+" "+n.State+" overdue="+strconv.FormatBool(n.Overdue)+" due="+n.DueAt.Format(time.RFC3339))
				}
				return out
			}
			env.Clock.Set(sent.Add(7 * 24 * time.Hour)) // the deadline itself: not yet overdue
			if got := list(); len(got) != 0 {
				t.Fatalf("overdue at the deadline = %v, want none", got)
			}
			env.Clock.Set(sent.Add(7*24*time.Hour + time.Microsecond))
			if diff := cmp.Diff([]string{"deletion pending overdue=true due=2026-12-08T04:00:00Z"}, list()); diff != "" {
				t.Fatalf("overdue notices (-want +got):\n%s", diff)
			}
			if f.completer.fulfilled[r.ID] {
				t.Fatal("request fulfilled with a notice overdue")
			}
			// Acknowledged late, it leaves the overdue list and completes the request.
			ns, _ := f.recipients.Notices(staff(steward.RolePrivacyOfficer), steward.NoticeFilter{RequestID: r.ID})
			if _, err := f.ack(t, rec.SigningSecret, ns[0].ID); err != nil {
				t.Fatal(err)
			}
			if got := list(); len(got) != 0 || !f.completer.fulfilled[r.ID] {
				t.Fatalf("after the late acknowledgement: overdue %v, fulfilled %v", got, f.completer.fulfilled[r.ID])
			}
		})
	}
}

// TestRequestLifecycleWaitsForAcknowledgement runs deletion and withdrawal
// requests through the request service: each stays in progress while a recipient
// notice is pending and is fulfilled by the recipient's acknowledgement.
func TestRequestLifecycleWaitsForAcknowledgement(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			f := newFeatures(t, env)
			rs, err := steward.NewRequestService(env.Service)
			if err != nil {
				t.Fatal(err)
			}
			rs.SetFulfiller(steward.RequestDeletion, f.erasure)
			rs.SetFulfiller(steward.RequestCancellation, f.erasure)
			rs.SetFulfiller(steward.RequestWithdrawal, f.recipients.WithNotices(rs.DefaultFulfiller(steward.RequestWithdrawal)))
			f.recipients.SetCompleter(rs)
			rv := newReceiver(t)
			reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`}, steward.ConsentChoice{Purpose: "marketing", Separate: true})
			rec := f.partner(t, "Beta Ads", rv.srv.URL, []string{"account", "marketing"}, []string{"nickname", "phone"})
			app := stewardtest.App("app")
			f.recipients.Disclose(app, reg.SubjectID, steward.DisclosureInput{rec.ID, "marketing", []string{"phone"}})
			f.recipients.Disclose(app, reg.SubjectID, steward.DisclosureInput{rec.ID, "account", []string{"nickname"}})
			admin, po := staff(steward.RoleAdmin), staff(steward.RolePrivacyOfficer)
			check := &steward.IdentityCheck{Method: "in_person_id_document"}

			ackAll := func(requestID string) {
				t.Helper()
				env.Outbox.DeliverDue(context.Background())
				ns, err := f.recipients.Notices(po, steward.NoticeFilter{RequestID: requestID, State: steward.NoticePending})
				if err != nil || len(ns) != 1 {
					t.Fatalf("pending notices of %s: %v, %v; want 1", requestID, ns, err)
				}
				env.Clock.Advance(time.Minute)
				if _, err := f.ack(t, rec.SigningSecret, ns[0].ID); err != nil {
					t.Fatal(err)
				}
			}
			state := func(id string) steward.RequestState {
				t.Helper()
				v, err := rs.Get(po, id)
				if err != nil {
					t.Fatal(err)
				}
				return v.State
			}

			// Withdrawal: carried out at once, but waits for the recipient that got
			// data for marketing.
			w, err := rs.FileOnBehalf(admin, steward.StaffRequestInput{RequestInput: steward.RequestInput{Type: steward.RequestWithdrawal, Purpose: "marketing"},
				SubjectID: reg.SubjectID, IdentityCheck: check})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rs.Fulfil(po, w.ID, steward.FulfilInput{}); err != nil {
				t.Fatal(err)
			}
			if got := state(w.ID); got != steward.RequestInProgress {
				t.Fatalf("withdrawal with a notice pending is %s, want in_progress", got)
			}
			ackAll(w.ID)
			if got := state(w.ID); got != steward.RequestFulfilled {
				t.Fatalf("withdrawal after the acknowledgement is %s, want fulfilled", got)
			}

			// Deletion: staff fulfil; the certificate is the result; the request waits.
			d, err := rs.FileOnBehalf(admin, steward.StaffRequestInput{RequestInput: steward.RequestInput{Type: steward.RequestDeletion, DeletionGround: steward.DeletionNoConsent},
				SubjectID: reg.SubjectID, IdentityCheck: check})
			if err != nil {
				t.Fatal(err)
			}
			v, err := rs.Fulfil(po, d.ID, steward.FulfilInput{})
			if err != nil {
				t.Fatal(err)
			}
			if v.State != steward.RequestInProgress {
				t.Fatalf("deletion with a notice pending is %s, want in_progress", v.State)
			}
			c, err := steward.VerifyCertificate(v.Result, env.Keyring.PublicKey())
			if err != nil {
				t.Fatalf("the request's result is not a valid certificate: %v", err)
			}
			if c.RequestID != d.ID || c.DeletionGround != "no_consent" || len(c.RecipientsNotified) != 1 || strings.Join(c.RecipientsNotified[0].Fields, ",") != "nickname,phone" {
				t.Errorf("certificate = %+v", c)
			}
			ackAll(d.ID)
			if got := state(d.ID); got != steward.RequestFulfilled {
				t.Fatalf("deletion after the acknowledgement is %s, want fulfilled", got)
			}
		})
	}
}
