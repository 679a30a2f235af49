package http

import (
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/stewardtest"
)

// requestAPI is a recipientAPI that also serves the rights requests, with deletion
// fulfilled by the erasure feature (certificate, recipient notices) as in serve.
type requestAPI struct {
	*recipientAPI
	rs      *steward.RequestService
	auditor string // auditor's token
}

func newRequestAPI(t *testing.T, engine string) *requestAPI {
	t.Helper()
	a := &requestAPI{recipientAPI: newRecipientAPI(t, engine)}
	rs, err := steward.NewRequestService(a.Service)
	if err != nil {
		t.Fatal(err)
	}
	rs.SetFulfiller(steward.RequestDeletion, a.f.Erasure)
	rs.SetFulfiller(steward.RequestCancellation, a.f.Erasure)
	a.f.Recipients.SetCompleter(rs)
	a.server.SetRequestService(rs)
	a.rs = rs
	if _, a.auditor, err = a.Service.CreateAPIToken(steward.SystemContext(context.Background(), "test"), steward.TokenStaff, "auditor-1", []string{steward.RoleAuditor}, 0); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestFileOnBehalfNamesTheSubject files for an unknown and an erased subject:
// the answer names the subject, not its data key, whatever the input.
func TestFileOnBehalfNamesTheSubject(t *testing.T) {
	a := newRequestAPI(t, "sqlite")
	reg := a.Register(t, e164, nil)
	sub := stewardtest.Subject(reg.SubjectID)
	if _, err := a.Service.SendCancellationCode(sub); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Service.CancelAccount(sub, a.LastCode(t, e164)); err != nil {
		t.Fatal(err)
	}
	const (
		notFound = "subject not found"
		erased   = "the subject's account was cancelled and its data erased"
	)
	cases := []struct {
		name, subjectID string
		in              steward.RequestInput
		check           *steward.IdentityCheck
		status          int
		code, msg       string
	}{
		{"unknown", "01a226a5-0000-7000-8000-000000000000", steward.RequestInput{Type: steward.RequestAccess}, nil, 404, steward.ENOTFOUND, notFound},
		{"unknown, bad input", "no-such-subject", steward.RequestInput{Type: "bogus"}, nil, 404, steward.ENOTFOUND, notFound},
		{"unknown, bad identity check", "no-such-subject", steward.RequestInput{Type: steward.RequestAccess}, &steward.IdentityCheck{Method: "otp"}, 404, steward.ENOTFOUND, notFound},
		{"erased", reg.SubjectID, steward.RequestInput{Type: steward.RequestAccess}, nil, 410, steward.EGONE, erased},
		{"erased, deletion", reg.SubjectID, steward.RequestInput{Type: steward.RequestDeletion, DeletionGround: steward.DeletionNoLongerUsed, Details: "again"}, nil, 410, steward.EGONE, erased},
		{"erased, bad input", reg.SubjectID, steward.RequestInput{Type: steward.RequestCorrection}, nil, 410, steward.EGONE, erased},
	}
	for _, c := range cases {
		resp, body := a.do("POST", "/v1/requests", a.officer, steward.StaffRequestInput{SubjectID: c.subjectID, RequestInput: c.in, IdentityCheck: c.check}, nil, nil)
		wantErrorBody(t, c.name, resp, body, c.status, c.code, c.msg)
	}
}

// code asks for a verification code for request id and returns it.
func (a *requestAPI) code(token, id string) string {
	a.t.Helper()
	a.Clock.Advance(2 * time.Minute) // codes to one number are a minute apart
	var sent steward.CodeSent
	resp, body := a.do("POST", "/v1/me/requests/"+id+"/verification-code", token, nil, nil, &sent)
	a.want("verification code", resp, body, 200)
	return a.LastCode(a.t, e164)
}

// TestRequestLifecycleOverTheWire is the end-to-end run of issue 3: a subject files
// a deletion; staff refuse it on a ground; the subject sees the ground and where to
// complain; a second deletion (with a duplicate filed five minutes later) is
// verified through the duplicate and fulfilled once: the subject is erased, the
// recipient gets a signed webhook and acknowledges it, and only then is the request
// fulfilled; its certificate verifies.
func TestRequestLifecycleOverTheWire(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			a := newRequestAPI(t, engine)
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
			reg := a.Register(t, phone, map[string]string{"nickname": `"` + nickname + `"`})
			sub := reg.Token
			app := a.appToken("app")
			var rec steward.RegisteredRecipient
			resp, body := a.do("POST", "/v1/recipients", a.officer, steward.RecipientInput{Name: "Acme Logistics", Kind: steward.RecipientPartner,
				WebhookURL: receiver.URL + "/steward", AgreementRef: "DPA-2026-017", Purposes: []string{"account"}, Fields: []string{"nickname", "phone"}}, nil, &rec)
			a.want("register recipient", resp, body, 201)
			resp, body = a.do("POST", "/v1/subjects/"+reg.SubjectID+"/disclosures", app,
				steward.DisclosureInput{RecipientID: rec.ID, Purpose: "account", Fields: []string{"nickname", "phone"}}, nil, nil)
			a.want("disclose", resp, body, 201)

			// 1. The subject files a deletion; the due date is fixed at receipt.
			var first steward.RequestView
			resp, body = a.do("POST", "/v1/me/requests", sub, steward.RequestInput{Type: steward.RequestDeletion,
				DeletionGround: steward.DeletionBreachOfAgreement, Details: "Delete everything, " + nickname}, nil, &first)
			a.want("file deletion", resp, body, 201)
			if first.State != steward.RequestReceived || first.DueOn.String() != "2026-12-14" || first.Details != "Delete everything, "+nickname {
				t.Fatalf("filed = %s", body)
			}

			// 2. Staff refuse it: never without an enumerated ground; not as support.
			resp, body = a.do("POST", "/v1/requests/"+first.ID+"/refuse", a.officer, RefuseRequestBody{Explanation: "No."}, nil, nil)
			wantErrorBody(t, "refuse without ground", resp, body, 400, steward.EINVALID, "A refusal must name one of the refusal grounds.")
			resp, body = a.do("POST", "/v1/requests/"+first.ID+"/refuse", a.officer, RefuseRequestBody{Ground: "we_dont_want_to", Explanation: "No."}, nil, nil)
			wantErrorBody(t, "refuse on unknown ground", resp, body, 400, steward.EINVALID, `"we_dont_want_to" is not a refusal ground of this deployment.`)
			const why = "The agreement you name is still being performed; deleting now would end the service you paid for."
			resp, body = a.do("POST", "/v1/requests/"+first.ID+"/refuse", a.support, RefuseRequestBody{Ground: steward.RefusalHighlyImpractical, Explanation: why}, nil, nil)
			wantErrorBody(t, "refuse as support", resp, body, 403, steward.EFORBIDDEN, "requests.refuse needs one of the roles privacy_officer, admin")
			var refused steward.RequestView
			resp, body = a.do("POST", "/v1/requests/"+first.ID+"/refuse", a.officer, RefuseRequestBody{Ground: steward.RefusalHighlyImpractical, Explanation: why}, nil, &refused)
			a.want("refuse", resp, body, 200)

			// 3. The subject sees the ground, the explanation and where to complain.
			var mine steward.RequestView
			resp, body = a.do("GET", "/v1/me/requests/"+first.ID, sub, nil, nil, &mine)
			a.want("subject reads refusal", resp, body, 200)
			want := steward.Refusal{Ground: steward.RefusalHighlyImpractical, GroundTitle: "Highly impractical", GroundSource: "policy §6 (responding to requests)",
				Explanation: why, ComplaintChannel: a.Decl.Controller.ComplaintChannel}
			if mine.State != steward.RequestRefused || mine.Refusal == nil || *mine.Refusal != want || mine.RefusalGroundTitle != "Highly impractical" {
				t.Fatalf("subject sees %s", body)
			}
			if last := mine.Events[len(mine.Events)-1]; last.To != steward.RequestRefused || last.Reason != "highly_impractical" {
				t.Fatalf("last event %+v", last)
			}
			// An auditor sees the ground, not the words.
			var audited steward.RequestView
			resp, body = a.do("GET", "/v1/requests/"+first.ID, a.auditor, nil, nil, &audited)
			a.want("auditor reads", resp, body, 200)
			wantAudited := want
			wantAudited.Explanation = ""
			if audited.Details != "" || *audited.Refusal != wantAudited || !audited.DetailsRedacted || strings.Contains(string(body), nickname) ||
				!strings.Contains(string(body), `"ground":"highly_impractical","ground_title":"Highly impractical","ground_source":"policy §6 (responding to requests)"`) {
				t.Fatalf("auditor sees %s", body)
			}

			// 4. A second deletion, and a duplicate five minutes later.
			a.Clock.Advance(time.Hour)
			var second, dup steward.RequestView
			resp, body = a.do("POST", "/v1/me/requests", sub, steward.RequestInput{Type: steward.RequestDeletion, DeletionGround: steward.DeletionNoLongerUsed}, nil, &second)
			a.want("file second deletion", resp, body, 201)
			a.Clock.Advance(5 * time.Minute)
			resp, body = a.do("POST", "/v1/me/requests", sub, steward.RequestInput{Type: steward.RequestDeletion, DeletionGround: steward.DeletionNoConsent}, nil, &dup)
			a.want("file duplicate", resp, body, 201)
			if dup.State != steward.RequestMerged || dup.PrimaryID != second.ID || dup.DueOn != second.DueOn {
				t.Fatalf("duplicate = %s", body)
			}
			resp, body = a.do("POST", "/v1/requests/"+second.ID+"/fulfil", a.officer, nil, nil, nil)
			wantErrorBody(t, "fulfil unverified", resp, body, 409, steward.ECONFLICT, "Request "+second.ID+" cannot be fulfilled before the subject's identity is verified.")

			// 5. Verifying the duplicate verifies the request that will be fulfilled.
			code := a.code(sub, dup.ID)
			resp, body = a.do("POST", "/v1/me/requests/"+dup.ID+"/verify", sub, VerifyRequestBody{Code: code}, nil, nil)
			a.want("verify duplicate", resp, body, 200)
			var q steward.RequestQueue
			resp, body = a.do("GET", "/v1/requests?type=deletion", a.support, nil, nil, &q)
			a.want("queue", resp, body, 200)
			if len(q.Requests) != 1 || q.Requests[0].ID != second.ID || q.Requests[0].State != steward.RequestIdentityVerified ||
				q.Counts != (steward.RequestCounts{Open: 1}) || q.Requests[0].Details != "" {
				t.Fatalf("queue = %s", body)
			}
			resp, body = a.do("GET", "/v1/requests?overdue=soon", a.support, nil, nil, nil)
			wantErrorBody(t, "bad overdue", resp, body, 400, steward.EINVALID, "overdue must be true or false")

			// 6. Fulfilment erases and waits for the recipient.
			resp, body = a.do("POST", "/v1/requests/"+second.ID+"/fulfil", a.support, nil, nil, nil)
			wantErrorBody(t, "fulfil as support", resp, body, 403, steward.EFORBIDDEN, "requests.fulfil needs one of the roles privacy_officer, admin")
			var got steward.RequestView
			// A backup of the data store taken before the erasure…
			before := a.CopyDataStore(t)
			if n, opened := a.OpenCopy(t, before, reg.SubjectID); n == 0 || len(opened) != n {
				t.Fatalf("before erasure the copy opens %d of %d fields", len(opened), n)
			}
			resp, body = a.do("POST", "/v1/requests/"+second.ID+"/fulfil", a.officer, nil, nil, &got)
			a.want("fulfil", resp, body, 200)
			// …holds the subject's sealed fields still, and none of them opens.
			if n, opened := a.OpenCopy(t, before, reg.SubjectID); n == 0 || len(opened) != 0 {
				t.Fatalf("after erasure the copy taken before holds %d fields and opens %d; want some and 0", n, len(opened))
			}
			if got.State != steward.RequestInProgress || got.Fulfilment != "waiting_for_steps" || len(got.PendingSteps) != 1 ||
				got.PendingSteps[0].Kind != "recipient_notice" || got.PendingSteps[0].Target != rec.ID {
				t.Fatalf("after fulfil = %s", body)
			}
			var cert struct{ Payload steward.DeletionCertificate }
			if err := json.Unmarshal(got.Result, &cert); err != nil || cert.Payload.RequestID != second.ID || cert.Payload.SubjectID != reg.SubjectID {
				t.Fatalf("result = %s (%v)", got.Result, err)
			}
			resp, body = a.do("POST", "/v1/requests/"+second.ID+"/fulfil", a.officer, nil, nil, nil)
			wantErrorBody(t, "fulfil twice", resp, body, 409, steward.ECONFLICT, "Request "+second.ID+" was carried out already; it completes when its pending steps are done.")
			if n := countAudit(t, a.apiTest, reg.SubjectID, steward.AuditCancel); n != 1 {
				t.Fatalf("%d erasures, want 1", n)
			}

			// 7. The recipient gets the signed webhook and acknowledges; the request completes.
			a.Clock.Advance(5 * time.Second)
			if n, err := a.Outbox.DeliverDue(context.Background()); err != nil || n != 1 {
				t.Fatalf("deliver: %d, %v", n, err)
			}
			mu.Lock()
			hook, hookBody := hooks[0], hookBodies[0]
			mu.Unlock()
			if sig := hook.Header.Get("Steward-Signature"); sig != steward.SignPayload(rec.SigningSecret, a.Clock.Now(), []byte(hookBody)) {
				t.Fatalf("webhook signature %q", sig)
			}
			noticeID := hook.Header.Get("Idempotency-Key")
			ack := []byte(`{"notice_id":"` + noticeID + `","outcome":"done"}`)
			resp, body = a.do("POST", "/v1/recipients/notices/"+noticeID+"/ack", "", ack,
				map[string]string{"Steward-Signature": steward.SignPayload(rec.SigningSecret, a.Clock.Now(), ack)}, nil)
			a.want("ack", resp, body, 200)
			got = steward.RequestView{}
			resp, body = a.do("GET", "/v1/requests/"+second.ID, a.officer, nil, nil, &got)
			a.want("read fulfilled", resp, body, 200)
			last := got.Events[len(got.Events)-1]
			if got.State != steward.RequestFulfilled || last.Reason != "fulfilled: every step done" || last.Actor != "system:recipient:"+rec.ID || len(got.PendingSteps) != 0 {
				t.Fatalf("after ack = %s", body)
			}

			// 8. The certificate the request returned verifies with the published key.
			var key steward.PublicKeyInfo
			resp, body = a.do("GET", "/v1/certificates/public-key", "", nil, nil, &key)
			a.want("public key", resp, body, 200)
			resp, body = a.do("GET", "/v1/certificates/"+second.ID, a.officer, nil, nil, nil)
			a.want("certificate", resp, body, 200)
			pub, _ := base64.StdEncoding.DecodeString(key.PublicKey)
			if c, err := steward.VerifyCertificate(body, ed25519.PublicKey(pub)); err != nil || c.RequestID != second.ID {
				t.Fatalf("certificate: %v", err)
			}
			if _, err := steward.VerifyCertificate(got.Result, ed25519.PublicKey(pub)); err != nil {
				t.Fatalf("the request's result does not verify: %v", err)
			}
			// The subject's session died with the account.
			resp, body = a.do("GET", "/v1/me/requests", sub, nil, nil, nil)
			a.want("list after erasure", resp, body, 401)
		})
	}
}

func countAudit(t *testing.T, a *apiTest, subjectID, action string) int {
	t.Helper()
	ctx := context.Background()
	var all []steward.AuditEntry
	if err := a.Store.Read(ctx, func(tx steward.Tx) (err error) { all, err = tx.AuditBySubject(ctx, subjectID); return err }); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range all {
		if e.Action == action {
			n++
		}
	}
	return n
}

// TestDecisionRoutes: an app records a decision, the subject sees and refuses
// solely automated decisions, an explanation request answers at verification, and
// an appeal is reviewed by a person.
func TestDecisionRoutes(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			a := newRequestAPI(t, engine)
			reg := a.Register(t, phone, map[string]string{"imei": `"` + imei + `"`})
			sub := reg.Token
			engineApp := a.appToken("risk-engine")
			in := steward.DecisionInput{System: "risk_scoring", Outcome: "sign-in blocked", Inputs: []string{"imei"}}
			var dec steward.Decision
			resp, body := a.do("POST", "/v1/subjects/"+reg.SubjectID+"/decisions", engineApp, in, nil, &dec)
			a.want("record", resp, body, 201)
			if strings.Contains(string(body), "sign-in blocked") || dec.System != "risk_scoring" || !dec.SolelyAutomated {
				t.Fatalf("recorded = %s", body)
			}
			resp, body = a.do("POST", "/v1/subjects/"+reg.SubjectID+"/decisions", sub, in, nil, nil)
			wantErrorBody(t, "record as subject", resp, body, 403, steward.EFORBIDDEN, "this route is for client apps with an app token")

			var mine steward.MyDecisionsList
			resp, body = a.do("GET", "/v1/me/decisions", sub, nil, nil, &mine)
			a.want("my decisions", resp, body, 200)
			if len(mine.Decisions) != 1 || mine.Decisions[0].Outcome != "sign-in blocked" || mine.Decisions[0].InputCategories[0] != "device" {
				t.Fatalf("my decisions = %s", body)
			}

			var ex steward.RequestView
			resp, body = a.do("POST", "/v1/me/requests", sub, steward.RequestInput{Type: steward.RequestDecisionExplanation, DecisionID: dec.ID}, nil, &ex)
			a.want("file explanation", resp, body, 201)
			resp, body = a.do("POST", "/v1/me/requests/"+ex.ID+"/verify", sub, VerifyRequestBody{Code: a.code(sub, ex.ID)}, nil, &ex)
			a.want("verify explanation", resp, body, 200)
			if ex.State != steward.RequestFulfilled || !strings.Contains(string(ex.Answer), "sign-in blocked") || !strings.Contains(string(ex.Answer), "logic_summary") {
				t.Fatalf("explanation = %s", body)
			}

			var ap steward.RequestView
			resp, body = a.do("POST", "/v1/me/requests", sub, steward.RequestInput{Type: steward.RequestAppeal, DecisionID: dec.ID, Details: "It was my phone."}, nil, &ap)
			a.want("file appeal", resp, body, 201)
			resp, body = a.do("POST", "/v1/requests/"+ap.ID+"/verify", a.support, steward.IdentityCheck{Method: "video_call", Reference: "call 42"}, nil, &ap)
			a.want("verify on behalf", resp, body, 200)
			if ap.VerificationMethod != "video_call" || ap.VerifiedBy != "staff:support-1" || ap.VerificationReference != "call 42" {
				t.Fatalf("verified on behalf = %s", body)
			}
			resp, body = a.do("POST", "/v1/requests/"+ap.ID+"/assign", a.support, AssignRequestBody{}, nil, &ap)
			a.want("assign", resp, body, 200)
			if ap.AssignedTo != "support-1" {
				t.Fatalf("assigned = %s", body)
			}
			resp, body = a.do("POST", "/v1/requests/"+ap.ID+"/fulfil", a.officer, steward.FulfilInput{Outcome: "overturned", Reply: "The device is yours."}, nil, &ap)
			a.want("review", resp, body, 200)
			if ap.State != steward.RequestFulfilled || !strings.Contains(string(ap.Result), `"review_outcome":"overturned"`) {
				t.Fatalf("reviewed = %s", body)
			}

			var o steward.DecisionOptOut
			resp, body = a.do("POST", "/v1/me/decisions/opt-out", sub, OptOutBody{System: "risk_scoring"}, nil, &o)
			a.want("opt out", resp, body, 200)
			resp, body = a.do("POST", "/v1/subjects/"+reg.SubjectID+"/decisions", engineApp, in, nil, nil)
			wantErrorBody(t, "record after opt-out", resp, body, 403, steward.EFORBIDDEN, "the subject refused decisions made solely by automated means by risk_scoring; a person must decide")

			var grounds RefusalGroundList
			resp, body = a.do("GET", "/v1/refusal-grounds", sub, nil, nil, &grounds)
			a.want("grounds", resp, body, 200)
			if len(grounds.Grounds) != 10 || grounds.Grounds[0].Code != steward.RefusalNationalSecurity {
				t.Fatalf("grounds = %s", body)
			}
		})
	}
}

// /metrics counts open, due-soon and overdue requests when RequestMetrics is
// registered.
func TestRequestMetrics(t *testing.T) {
	env := newEnv(t, "sqlite")
	rs, err := steward.NewRequestService(env.Service)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(RequestMetrics(rs))
	s := NewServer(env.Service, Options{Registry: reg})
	s.SetRequestService(rs)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	r := env.Register(t, phone, nil)
	v, err := rs.File(stewardtest.Subject(r.SubjectID), steward.RequestInput{Type: steward.RequestAccess})
	if err != nil {
		t.Fatal(err)
	}
	env.Clock.Set(v.DueAt.Add(time.Second))
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{"steward_requests_open 1", "steward_requests_due_soon 0", "steward_requests_overdue 1"} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func TestRequestRoutesUnconfigured(t *testing.T) {
	a := newAPITest(t, "sqlite", Options{})
	reg := a.Register(t, phone, nil)
	resp, body := a.raw("GET", "/v1/me/requests", reg.Token, "", nil)
	wantErrorBody(t, "requests without the service", resp, body, 503, steward.EUNAVAILABLE, "rights requests are not configured on this server")
}
