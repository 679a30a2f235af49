package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/stewardtest"
)

func errorCodes() []string { return steward.ErrorCodes }

func newEnv(t testing.TB, engine string) *stewardtest.Env {
	t.Helper()
	return stewardtest.New(t, engine, stewardtest.Options{})
}

// lockedBuffer collects log lines written by concurrent requests.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// apiTest is a real Service on a real store behind an httptest server, with
// clients whose every response is checked against the OpenAPI document.
type apiTest struct {
	*stewardtest.Env
	t      *testing.T
	server *Server
	srv    *httptest.Server
	logs   *lockedBuffer
	http   *http.Client
}

func newAPITest(t *testing.T, engine string, opts Options) *apiTest {
	t.Helper()
	env := newEnv(t, engine)
	a := &apiTest{Env: env, t: t, logs: &lockedBuffer{}}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.Ready == nil {
		opts.Ready = func(ctx context.Context) error {
			if err := env.Store.Ping(ctx); err != nil {
				return err
			}
			return env.KeyStore.Ping(ctx)
		}
	}
	a.server = NewServer(env.Service, opts)
	a.srv = httptest.NewServer(a.server.Handler())
	t.Cleanup(a.srv.Close)
	a.http = &http.Client{Transport: &validating{t: t, doc: openAPI(t), base: a.srv.Client().Transport}}
	return a
}

// client returns a Go client with token whose responses are validated.
func (a *apiTest) client(token string) *Client {
	return &Client{BaseURL: a.srv.URL, Token: token, HTTP: a.http}
}

// raw sends one request and returns the response with its body read.
func (a *apiTest) raw(method, path, token, contentType string, body io.Reader) (*http.Response, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp, b
}

// appToken creates a client-app token for app.
func (a *apiTest) appToken(app string) string {
	a.t.Helper()
	_, secret, err := a.Service.CreateAPIToken(steward.SystemContext(context.Background(), "test"), steward.TokenApp, app, nil, 0)
	if err != nil {
		a.t.Fatal(err)
	}
	return secret
}

// wantErr fails t unless err is a *steward.Error with code and message.
func wantErr(t *testing.T, what string, err error, code, message string) {
	t.Helper()
	var se *steward.Error
	if !errors.As(err, &se) {
		t.Fatalf("%s: err = %v, want %s %q", what, err, code, message)
	}
	if se.Code != code || se.Message != message {
		t.Fatalf("%s: err = %s %q, want %s %q", what, se.Code, se.Message, code, message)
	}
}

// wantErrorBody fails t unless resp is the JSON error with status, code and message.
func wantErrorBody(t *testing.T, what string, resp *http.Response, body []byte, status int, code, message string) {
	t.Helper()
	var got errorBody
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%s: body %q: %v", what, body, err)
	}
	want := errorBody{Error: errorDetail{Code: code, Message: message}}
	if resp.StatusCode != status || got != want {
		t.Fatalf("%s: %d %+v, want %d %+v", what, resp.StatusCode, got, status, want)
	}
}

func fieldStrings(v steward.FieldValues) map[string]string {
	out := map[string]string{}
	for k, raw := range v {
		out[k] = string(raw)
	}
	return out
}

const (
	phone    = "+86 138 0013 8000"
	e164     = "+8613800138000"
	imei     = "490154203237518"
	nickname = "张伟Test"
)

var t0 = time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC)

// TestSubjectFlow walks a subject from registration to cancellation over the wire
// and an app reading under a purpose, asserting the values a user would check.
func TestSubjectFlow(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			a := newAPITest(t, engine, Options{})
			ctx := context.Background()
			anon := a.client("")

			sent, err := anon.SendCode(ctx, phone, steward.CodeRegister)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&steward.CodeSent{Purpose: "register", ExpiresAt: t0.Add(5 * time.Minute), Channel: "sms"}, sent); diff != "" {
				t.Fatalf("code sent (-want +got):\n%s", diff)
			}
			_, err = anon.SendCode(ctx, phone, steward.CodeRegister)
			wantErr(t, "second code at once", err, steward.ETOOMANY, "a code was sent to this number moments ago; wait 60 seconds before asking again")

			reg, err := anon.Register(ctx, steward.Registration{Phone: phone, Code: a.LastCode(t, e164),
				Fields: steward.FieldValues{"nickname": json.RawMessage(`"` + nickname + `"`), "birthday": json.RawMessage(`"1990-05-17"`),
					"imei": json.RawMessage(`"` + imei + `"`)},
				Consents: stewardtest.DefaultConsents(a.Decl)})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(reg.Token, steward.SessionTokenPrefix) || reg.SubjectID == "" || !reg.ExpiresAt.Equal(t0.Add(30*24*time.Hour)) {
				t.Fatalf("registered = %+v", reg.SignedIn)
			}
			var granted []string
			for _, rc := range reg.Receipts {
				granted = append(granted, rc.Event.Action+" "+rc.Purpose.Name+" "+rc.SubjectID)
			}
			if diff := cmp.Diff([]string{"grant account " + reg.SubjectID, "grant risk_control " + reg.SubjectID}, granted); diff != "" {
				t.Fatalf("receipts (-want +got):\n%s", diff)
			}

			// The same number written another way is the same account.
			a.Clock.Advance(2 * time.Minute)
			if _, err := anon.SendCode(ctx, "0086-138-0013-8000", steward.CodeRegister); err != nil {
				t.Fatal(err)
			}
			_, err = anon.Register(ctx, steward.Registration{Phone: "0086-138-0013-8000", Code: a.LastCode(t, e164),
				Fields: steward.FieldValues{"birthday": json.RawMessage(`"1990-05-17"`)}, Consents: stewardtest.DefaultConsents(a.Decl)})
			wantErr(t, "second registration", err, steward.ECONFLICT, "an account with this phone number exists already; sign in instead")

			me := a.client(reg.Token)
			p, err := me.Me(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantFields := map[string]string{"phone": `"` + e164 + `"`, "nickname": `"` + nickname + `"`, "birthday": `"1990-05-17"`, "imei": `"` + imei + `"`}
			if diff := cmp.Diff(wantFields, fieldStrings(p.Fields)); diff != "" {
				t.Fatalf("profile fields (-want +got):\n%s", diff)
			}
			if p.Subject.ID != reg.SubjectID || p.Subject.Status != steward.SubjectActive || p.Subject.Region != "cn" || len(p.Consents) != 2 {
				t.Fatalf("profile = %+v", p)
			}
			p, err = me.UpdateMe(ctx, steward.FieldValues{"gender": json.RawMessage(`"female"`)})
			if err != nil {
				t.Fatal(err)
			}
			wantFields["gender"] = `"female"`
			if diff := cmp.Diff(wantFields, fieldStrings(p.Fields)); diff != "" {
				t.Fatalf("fields after update (-want +got):\n%s", diff)
			}
			_, err = me.UpdateMe(ctx, steward.FieldValues{"phone": json.RawMessage(`"+8613900139000"`)})
			wantErr(t, "change phone", err, steward.EINVALID, "field phone cannot be changed by an update; it identifies the account")

			// A client app reads under risk_control: only that purpose's fields.
			app := a.client(a.appToken("risk-engine"))
			got, err := app.ReadForPurpose(ctx, reg.SubjectID, "risk_control", nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{"phone": `"` + e164 + `"`, "imei": `"` + imei + `"`}, fieldStrings(got)); diff != "" {
				t.Fatalf("purpose read (-want +got):\n%s", diff)
			}
			got, err = app.ReadForPurpose(ctx, reg.SubjectID, "risk_control", []string{"imei"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{"imei": `"` + imei + `"`}, fieldStrings(got)); diff != "" {
				t.Fatalf("purpose read of imei (-want +got):\n%s", diff)
			}
			_, err = app.ReadForPurpose(ctx, reg.SubjectID, "risk_control", []string{"nickname"})
			wantErr(t, "field outside purpose", err, steward.EFORBIDDEN, "field nickname is not processed for purpose risk_control")
			_, err = app.ReadForPurpose(ctx, reg.SubjectID, "account", nil)
			wantErr(t, "undeclared app purpose", err, steward.EFORBIDDEN, "client app risk-engine is not declared for purpose account")
			_, err = app.ReadForPurpose(ctx, "0190f3a8-0000-7000-8000-000000000000", "risk_control", nil)
			if steward.ErrorCode(err) != steward.ENOTFOUND {
				t.Fatalf("unknown subject: %v, want ENOTFOUND", err)
			}
			if err := app.CheckConsent(ctx, reg.SubjectID, "risk_control"); err != nil {
				t.Fatalf("check consent: %v", err)
			}
			_, err = me.ReadForPurpose(ctx, reg.SubjectID, "risk_control", nil)
			wantErr(t, "subject token on app route", err, steward.EFORBIDDEN, "this route is for client apps with an app token")
			_, err = app.Me(ctx)
			wantErr(t, "app token on subject route", err, steward.EFORBIDDEN, "this route is for signed-in subjects; client app and staff tokens cannot use it")

			// Withdrawal: the app's next read is refused and names why.
			a.Clock.Advance(time.Minute)
			wd, err := me.WithdrawConsent(ctx, "risk_control")
			if err != nil {
				t.Fatal(err)
			}
			withdrawnAt := t0.Add(3 * time.Minute)
			if wd.Event.Action != steward.ConsentWithdraw || wd.Event.Purpose != "risk_control" || !wd.Event.At.Equal(withdrawnAt) || wd.Event.Method != steward.MethodSelfService {
				t.Fatalf("withdrawal event = %+v", wd.Event)
			}
			resp, body := a.raw("GET", "/v1/subjects/"+reg.SubjectID+"/data?purpose=risk_control", app.Token, "", nil)
			wantErrorBody(t, "read after withdrawal", resp, body, 403, steward.EFORBIDDEN, "purpose risk_control: the subject withdrew consent at 2026-11-29T02:03:00Z")
			if bytes.Contains(body, []byte(imei)) || bytes.Contains(body, []byte("13800138000")) {
				t.Fatalf("refusal leaks PI: %s", body)
			}
			err = app.CheckConsent(ctx, reg.SubjectID, "risk_control")
			wantErr(t, "check after withdrawal", err, steward.EFORBIDDEN, "purpose risk_control: the subject withdrew consent at 2026-11-29T02:03:00Z")
			_, err = me.WithdrawConsent(ctx, "risk_control")
			wantErr(t, "withdraw twice", err, steward.ECONFLICT, "consent for risk_control is not in force")

			cur, hist, err := me.Consents(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var states, events []string
			for _, s := range cur {
				states = append(states, fmt.Sprintf("%s granted=%v", s.Purpose, s.Granted))
			}
			for _, e := range hist {
				events = append(events, e.Action+" "+e.Purpose)
			}
			slices.Sort(states)
			if diff := cmp.Diff([]string{"account granted=true", "risk_control granted=false"}, states); diff != "" {
				t.Errorf("consents in force (-want +got):\n%s", diff)
			}
			if len(events) != 3 || events[2] != "withdraw risk_control" {
				t.Errorf("consent history = %v", events)
			}

			// Receipt download.
			resp, body = a.raw("GET", "/v1/me/consents/"+wd.ReceiptID+"/receipt", reg.Token, "", nil)
			if want := `attachment; filename="consent-receipt-` + wd.ReceiptID + `.json"`; resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != want {
				t.Fatalf("receipt download: %d %q, want %q", resp.StatusCode, resp.Header.Get("Content-Disposition"), want)
			}
			var rc steward.ConsentReceipt
			if err := json.Unmarshal(body, &rc); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(*wd, rc); diff != "" {
				t.Errorf("downloaded receipt (-withdrawal +download):\n%s", diff)
			}
			if rc2, err := me.ConsentReceipt(ctx, wd.ReceiptID); err != nil || rc2.ReceiptID != wd.ReceiptID {
				t.Errorf("client receipt: %v %v", rc2, err)
			}
			_, err = me.ConsentReceipt(ctx, "no-such-event")
			wantErr(t, "unknown receipt", err, steward.ENOTFOUND, "no consent event with that id")

			// Export download: the imei went with the withdrawal.
			resp, body = a.raw("GET", "/v1/me/export", reg.Token, "", nil)
			for h, want := range map[string]string{
				"Content-Disposition": `attachment; filename="steward-export-` + reg.SubjectID + `.json"`,
				"Content-Type":        "application/json",
				"Cache-Control":       "no-store",
			} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("export %s = %q, want %q", h, got, want)
				}
			}
			var x steward.Export
			if err := json.Unmarshal(body, &x); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range x.Fields {
				names = append(names, f.Name)
			}
			slices.Sort(names)
			if x.Schema != steward.ExportSchema || x.Subject.ID != reg.SubjectID || !slices.Equal(names, []string{"birthday", "gender", "nickname", "phone"}) {
				t.Fatalf("export: schema %s subject %s fields %v", x.Schema, x.Subject.ID, names)
			}
			if len(x.Consents.History) != 3 || len(x.AccessLog) == 0 {
				t.Fatalf("export: %d consent events, %d access log entries", len(x.Consents.History), len(x.AccessLog))
			}
			if x2, err := me.Export(ctx); err != nil || x2.Subject.ID != reg.SubjectID {
				t.Fatalf("client export: %v", err)
			}

			// Two more devices sign in.
			var devices []*Client
			for range 2 {
				a.Clock.Advance(2 * time.Minute)
				if _, err := anon.SendCode(ctx, phone, steward.CodeSignIn); err != nil {
					t.Fatal(err)
				}
				si, err := anon.SignIn(ctx, "138 0013 8000", a.LastCode(t, e164))
				if err != nil {
					t.Fatal(err)
				}
				if si.SubjectID != reg.SubjectID {
					t.Fatalf("signed in as %s, want %s", si.SubjectID, reg.SubjectID)
				}
				d := a.client(si.Token)
				if _, err := d.Me(ctx); err != nil {
					t.Fatal(err)
				}
				devices = append(devices, d)
			}
			_, err = anon.SignIn(ctx, phone, "000000")
			if steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Fatalf("sign in with a spent code: %v", err)
			}

			// Cancellation from one device ends every session.
			cs, err := devices[0].SendCancellationCode(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cs.Purpose != steward.CodeCancel || cs.Channel != "sms" {
				t.Fatalf("cancellation code = %+v", cs)
			}
			_, err = devices[0].CancelAccount(ctx, "999999")
			if steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Fatalf("cancel with a wrong code: %v", err)
			}
			dr, err := devices[0].CancelAccount(ctx, a.LastCode(t, e164))
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(dr.FieldsErased)
			want := &steward.DeletionReceipt{ReceiptID: dr.ReceiptID, SubjectID: reg.SubjectID, CancelledAt: a.Clock.Now(),
				FieldsErased: []string{"birthday", "gender", "nickname", "phone"}, KeyIDsDestroyed: dr.KeyIDsDestroyed,
				SessionsRevoked: 3, Stores: []string{"data store", "key store"}, Tombstone: "subject id, status, creation and cancellation times"}
			if diff := cmp.Diff(want, dr); diff != "" || len(dr.KeyIDsDestroyed) != 1 {
				t.Fatalf("deletion receipt (-want +got):\n%s", diff)
			}
			for i, c := range append(devices, me) {
				resp, body := a.raw("GET", "/v1/me", c.Token, "", nil)
				wantErrorBody(t, fmt.Sprintf("device %d after cancellation", i), resp, body, 401, steward.EUNAUTHORIZED, "the bearer token is not valid")
				if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="steward"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
			}
			_, err = app.ReadForPurpose(ctx, reg.SubjectID, "risk_control", nil)
			wantErr(t, "read after cancellation", err, steward.EGONE, "the subject's account was cancelled and its data erased")

			// The request log: one line per request, no PI, tokens or addresses.
			a.srv.Close()
			logs := a.logs.String()
			for _, secret := range []string{"13800138000", imei, nickname, reg.Token, app.Token, devices[0].Token, "127.0.0.1", "1990-05-17"} {
				if strings.Contains(logs, secret) {
					t.Errorf("the log holds %q", secret)
				}
			}
			var meLine map[string]any
			for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if m["msg"] == "request" && m["route"] == "/v1/me" && m["method"] == "PATCH" && meLine == nil {
					meLine = m
				}
			}
			delete(meLine, "time")
			delete(meLine, "duration")
			delete(meLine, "bytes")
			if meLine["request_id"] == "" {
				t.Errorf("no request id in %v", meLine)
			}
			delete(meLine, "request_id")
			wantLine := map[string]any{"level": "INFO", "msg": "request", "method": "PATCH", "route": "/v1/me", "status": float64(200),
				"actor_kind": "subject", "actor_id": reg.SubjectID}
			if diff := cmp.Diff(wantLine, meLine); diff != "" {
				t.Errorf("log line of PATCH /v1/me (-want +got):\n%s", diff)
			}
		})
	}
}
