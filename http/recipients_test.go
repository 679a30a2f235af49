package http

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/outbox"
	"github.com/stewardhq/steward/stewardtest"
)

// recipientAPI is an apiTest with the recipient features served.
type recipientAPI struct {
	*apiTest
	f       RecipientFeatures
	officer string // privacy officer's token
	support string // support staff's token
}

func newRecipientAPI(t *testing.T, engine string) *recipientAPI {
	t.Helper()
	a := &recipientAPI{apiTest: newAPITest(t, engine, Options{})}
	svc := a.Service
	a.f.Recipients = steward.NewRecipients(svc, steward.RecipientsConfig{})
	a.f.Holds = steward.NewHolds(svc)
	a.f.Erasure = steward.NewErasure(svc, steward.ErasureConfig{Signer: a.Keyring, Recipients: a.f.Recipients, Holds: a.f.Holds})
	a.server.SetRecipientFeatures(a.f)
	a.Outbox.Sinks["webhook"] = &outbox.WebhookSink{Now: a.Clock.Now, Sign: func(ctx context.Context, m outbox.Message, at time.Time) (map[string]string, error) {
		sig, err := a.f.Recipients.WebhookSignature(ctx, m.Headers[steward.IdempotencyKeyHeader], []byte(m.Body), at)
		return map[string]string{steward.SignatureHeader: sig}, err
	}}
	sys := steward.SystemContext(context.Background(), "test")
	var err error
	if _, a.officer, err = svc.CreateAPIToken(sys, steward.TokenStaff, "officer-1", []string{steward.RolePrivacyOfficer}, 0); err != nil {
		t.Fatal(err)
	}
	if _, a.support, err = svc.CreateAPIToken(sys, steward.TokenStaff, "support-1", []string{steward.RoleSupport}, 0); err != nil {
		t.Fatal(err)
	}
	return a
}

// do sends a JSON request with extra headers and decodes a 2xx answer into out.
func (a *recipientAPI) do(method, path, token string, in any, header map[string]string, out any) (*http.Response, []byte) {
	a.t.Helper()
	var body io.Reader
	if b, ok := in.([]byte); ok {
		body = bytes.NewReader(b)
	} else if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.srv.URL+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp, b
}

func (a *recipientAPI) want(what string, resp *http.Response, body []byte, status int) {
	a.t.Helper()
	if resp.StatusCode != status {
		a.t.Fatalf("%s: %d %s, want %d", what, resp.StatusCode, body, status)
	}
}

// TestRecipientRoutes runs the recipient, hold and certificate routes over the
// wire: a recipient registered by staff, a disclosure by an app, a hold, a
// deletion with its certificate, the signed webhook, its acknowledgement and the
// overdue list; every answer is checked against openapi.json.
func TestRecipientRoutes(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			a := newRecipientAPI(t, engine)
			var mu sync.Mutex
			var hooks []*http.Request
			var hookBodies []string
			receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				hooks, hookBodies = append(hooks, r), append(hookBodies, string(b))
				mu.Unlock()
			}))
			defer receiver.Close()
			reg := a.Register(t, phone, map[string]string{"nickname": `"` + nickname + `"`, "imei": `"` + imei + `"`})
			app := a.appToken("app")

			// Staff register a recipient; support staff may not.
			in := steward.RecipientInput{Name: "Acme Logistics", Kind: steward.RecipientPartner, WebhookURL: receiver.URL + "/steward",
				AgreementRef: "DPA-2026-017", Purposes: []string{"account"}, Fields: []string{"nickname", "phone"}}
			resp, body := a.do("POST", "/v1/recipients", a.support, in, nil, nil)
			wantErrorBody(t, "register as support", resp, body, 403, steward.EFORBIDDEN, "only staff with the role privacy_officer or admin may register recipients")
			resp, body = a.do("POST", "/v1/recipients", app, in, nil, nil)
			wantErrorBody(t, "register as an app", resp, body, 403, steward.EFORBIDDEN, "this route is for staff tokens")
			var rec steward.RegisteredRecipient
			resp, body = a.do("POST", "/v1/recipients", a.officer, in, nil, &rec)
			a.want("register", resp, body, 201)
			if !strings.HasPrefix(rec.SigningSecret, "whsec_") || rec.CreatedBy != "staff:officer-1" {
				t.Fatalf("registered %+v", rec)
			}
			// A bad webhook URL under the name now taken is 400, not 409.
			for url, msg := range map[string]string{
				"https://a.example:99999/x":  "webhook_url has an invalid port: it must be a number from 1 to 65535",
				"http://127.0.0.1evil.com/x": "webhook_url must use https (plain http is accepted only for localhost, 127.0.0.0/8 or [::1])",
				"https://169.254.169.254/x":  "webhook_url must not point at an unspecified or link-local address (0.0.0.0/8, ::, 169.254.0.0/16, fe80::/10)",
			} {
				bad := in
				bad.WebhookURL = url
				resp, body = a.do("POST", "/v1/recipients", a.officer, bad, nil, nil)
				wantErrorBody(t, "register "+url, resp, body, 400, steward.EINVALID, msg)
			}
			resp, body = a.do("POST", "/v1/recipients", a.officer, in, nil, nil)
			wantErrorBody(t, "register again", resp, body, 409, steward.ECONFLICT, `a recipient called "Acme Logistics" is registered already`)
			var list RecipientList
			resp, body = a.do("GET", "/v1/recipients", a.officer, nil, nil, &list)
			a.want("list", resp, body, 200)
			if len(list.Recipients) != 1 || list.Recipients[0].ID != rec.ID || strings.Contains(string(body), "whsec_") {
				t.Fatalf("list = %s", body)
			}

			// The app records a disclosure.
			var d steward.Disclosure
			resp, body = a.do("POST", "/v1/subjects/"+reg.SubjectID+"/disclosures", app,
				steward.DisclosureInput{RecipientID: rec.ID, Purpose: "account", Fields: []string{"phone", "nickname"}}, nil, &d)
			a.want("disclose", resp, body, 201)
			if strings.Join(d.Fields, ",") != "nickname,phone" || d.AppID != "app" {
				t.Fatalf("disclosure = %+v", d)
			}

			// A hold on the IMEI: reads for risk control are refused, held data readable.
			var hold steward.LegalHold
			resp, body = a.do("POST", "/v1/subjects/"+reg.SubjectID+"/holds", a.officer,
				map[string]any{"fields": []string{"imei"}, "case": "authority_decision", "reference": "(2026) Jing 0105 Min Chu 1234", "purpose": "legal_hold"}, nil, &hold)
			a.want("place hold", resp, body, 201)
			resp, body = a.do("GET", "/v1/subjects/"+reg.SubjectID+"/data?purpose=risk_control&fields=imei", a.appToken("risk-engine"), nil, nil, nil)
			wantErrorBody(t, "read held imei", resp, body, 403, steward.EFORBIDDEN,
				"field imei is under a legal hold (authority_decision): it is kept for storage only and read only for purpose legal_hold")
			var holds HoldList
			resp, body = a.do("GET", "/v1/subjects/"+reg.SubjectID+"/holds", a.officer, nil, nil, &holds)
			a.want("list holds", resp, body, 200)
			if len(holds.Holds) != 1 || holds.Holds[0].ID != hold.ID || holds.Holds[0].KeyID == "" {
				t.Fatalf("holds = %s", body)
			}

			// Deletion (fulfilled in process; the request routes are another feature's).
			erasedAt := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
			a.Clock.Set(erasedAt)
			r, _ := steward.NewRequest(steward.NewID(), reg.SubjectID, steward.RequestDeletion, steward.DeletionNoLongerUsed, erasedAt)
			r.Verify("otp", reg.SubjectID, erasedAt)
			if _, err := a.f.Erasure.Fulfil(steward.WithActor(context.Background(), steward.Actor{Kind: steward.ActorStaff, ID: "officer-1", Roles: []string{steward.RolePrivacyOfficer}}), r); err != nil {
				t.Fatal(err)
			}
			var key steward.PublicKeyInfo
			resp, body = a.do("GET", "/v1/certificates/public-key", "", nil, nil, &key)
			a.want("public key", resp, body, 200)
			if key.Algorithm != "Ed25519" || key.KeyID != a.Keyring.SigningKeyID() {
				t.Fatalf("public key = %s", body)
			}
			resp, body = a.do("GET", "/v1/certificates/"+r.ID, a.officer, nil, nil, nil)
			a.want("certificate", resp, body, 200)
			pub, _ := base64.StdEncoding.DecodeString(key.PublicKey)
			c, err := steward.VerifyCertificate(body, ed25519.PublicKey(pub))
			if err != nil {
				t.Fatalf("certificate served does not verify with the served key: %v", err)
			}
			if strings.Join(c.FieldsErased, ",") != "birthday,nickname,phone" || len(c.FieldsRetained) != 1 || c.FieldsRetained[0].Field != "imei" ||
				c.Backups.Statement != "No backup of the key store taken before 2026-11-30T08:00:00Z survives after 2026-12-07T08:00:00Z." {
				t.Errorf("certificate = %+v", c)
			}
			resp, body = a.do("GET", "/v1/certificates/"+steward.NewID(), a.officer, nil, nil, nil)
			wantErrorBody(t, "certificate of another request", resp, body, 404, steward.ENOTFOUND, "no deletion certificate was issued for that request")

			var held HeldData
			resp, body = a.do("GET", "/v1/subjects/"+reg.SubjectID+"/held-data?purpose=legal_hold", a.officer, nil, nil, &held)
			a.want("held data", resp, body, 200)
			if string(held.Fields["imei"]) != `"`+imei+`"` || len(held.Fields) != 1 {
				t.Fatalf("held data = %s", body)
			}

			// The recipient gets the signed webhook and acknowledges it.
			a.Clock.Advance(5 * time.Second)
			if n, err := a.Outbox.DeliverDue(context.Background()); err != nil || n != 1 {
				t.Fatalf("deliver: %d, %v", n, err)
			}
			mu.Lock()
			hook, hookBody := hooks[0], hookBodies[0]
			mu.Unlock()
			sig := hook.Header.Get("Steward-Signature")
			if want := steward.SignPayload(rec.SigningSecret, erasedAt.Add(5*time.Second), []byte(hookBody)); sig != want {
				t.Fatalf("webhook signature %q, want %q", sig, want)
			}
			noticeID := hook.Header.Get("Idempotency-Key")
			var wh steward.NoticeWebhook
			json.Unmarshal([]byte(hookBody), &wh)
			if wh.Event != "deletion" || wh.NoticeID != noticeID || wh.RequestID != r.ID || strings.Join(wh.Fields, ",") != "nickname,phone" {
				t.Fatalf("webhook body %s", hookBody)
			}
			var pending NoticeList
			a.Clock.Set(erasedAt.Add(8 * 24 * time.Hour))
			resp, body = a.do("GET", "/v1/recipients/notices?state=pending&overdue=true", a.officer, nil, nil, &pending)
			a.want("overdue notices", resp, body, 200)
			if len(pending.Notices) != 1 || pending.Notices[0].ID != noticeID || !pending.Notices[0].Overdue || pending.Notices[0].State != "pending" {
				t.Fatalf("overdue notices = %s", body)
			}
			resp, body = a.do("GET", "/v1/recipients/notices?overdue=maybe", a.officer, nil, nil, nil)
			wantErrorBody(t, "bad overdue", resp, body, 400, steward.EINVALID, "overdue must be true or false")

			ack := []byte(`{"notice_id":"` + noticeID + `","outcome":"done"}`)
			resp, body = a.do("POST", "/v1/recipients/notices/"+noticeID+"/ack", "", ack,
				map[string]string{"Steward-Signature": steward.SignPayload("whsec_not_the_secret", a.Clock.Now(), ack)}, nil)
			wantErrorBody(t, "ack with a wrong secret", resp, body, 401, steward.EUNAUTHORIZED, "the signature does not match the body under the recipient's signing secret")
			resp, body = a.do("POST", "/v1/recipients/notices/"+noticeID+"/ack", "", ack, nil, nil)
			wantErrorBody(t, "ack unsigned", resp, body, 401, steward.EUNAUTHORIZED, "the Steward-Signature header must be t=<unix seconds>,v1=<hex HMAC-SHA256>")
			var acked steward.RecipientNotice
			resp, body = a.do("POST", "/v1/recipients/notices/"+noticeID+"/ack", "", ack,
				map[string]string{"Steward-Signature": steward.SignPayload(rec.SigningSecret, a.Clock.Now(), ack)}, &acked)
			a.want("ack", resp, body, 200)
			if acked.State != "acknowledged" || acked.Overdue || !acked.AckedAt.Equal(erasedAt.Add(8*24*time.Hour)) {
				t.Fatalf("acknowledged = %s", body)
			}
			resp, body = a.do("GET", "/v1/recipients/notices?state=pending&overdue=true", a.officer, nil, nil, &pending)
			a.want("overdue after ack", resp, body, 200)
			if len(pending.Notices) != 0 {
				t.Fatalf("overdue after the acknowledgement = %s", body)
			}

			// The hold ends.
			var released steward.LegalHold
			resp, body = a.do("POST", "/v1/holds/"+hold.ID+"/release", a.officer, releaseRequest{Reason: "judgment final"}, nil, &released)
			a.want("release", resp, body, 200)
			resp, body = a.do("GET", "/v1/subjects/"+reg.SubjectID+"/held-data?purpose=legal_hold", a.officer, nil, nil, nil)
			wantErrorBody(t, "held data after release", resp, body, 404, steward.ENOTFOUND, "no active legal hold on the subject has purpose legal_hold")
		})
	}
}

func TestRecipientRoutesUnconfigured(t *testing.T) {
	a := newAPITest(t, "sqlite", Options{})
	resp, body := a.raw("GET", "/v1/certificates/public-key", "", "", nil)
	wantErrorBody(t, "public key without features", resp, body, 503, steward.EUNAVAILABLE, "recipients, legal holds and certificates are not configured on this server")
}
