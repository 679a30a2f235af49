package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/stewardtest"
)

func TestStatusTable(t *testing.T) {
	want := map[string]int{"EINVALID": 400, "EUNAUTHORIZED": 401, "EFORBIDDEN": 403, "ENOTFOUND": 404, "ECONFLICT": 409, "EGONE": 410,
		"ETOOLARGE": 413, "EUNSUPPORTED": 415, "ETOOMANY": 429, "EINTERNAL": 500, "EUNAVAILABLE": 503, "EMETHOD": 405}
	got := map[string]int{}
	for _, c := range steward.ErrorCodes {
		got[c] = StatusOf(c)
		if back := CodeOf(StatusOf(c)); back != c {
			t.Errorf("CodeOf(StatusOf(%s)) = %s", c, back)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status table (-want +got):\n%s", diff)
	}
	for status, code := range map[int]string{502: "EUNAVAILABLE", 504: "EUNAVAILABLE", 501: "EINTERNAL", 405: "EMETHOD", 418: "EINVALID", 200: ""} {
		if got := CodeOf(status); got != code {
			t.Errorf("CodeOf(%d) = %q, want %q", status, got, code)
		}
	}
	if got := StatusOf("ENOSUCHCODE"); got != 500 {
		t.Errorf("StatusOf(unknown) = %d", got)
	}
}

// TestRequestErrors checks how malformed, oversized, unauthenticated and unrouted
// requests are answered; every answer is also checked against the OpenAPI document.
func TestRequestErrors(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			a := newAPITest(t, engine, Options{MaxBodyBytes: 1024})
			reg := a.Register(t, phone, nil)
			app := a.appToken("risk-engine")
			big := `{"phone":"` + strings.Repeat("1", 2000) + `","purpose":"register"}`
			for _, tc := range []struct {
				name, method, path, token, ctype string
				body                             io.Reader
				status                           int
				code, message                    string
			}{
				{"truncated JSON", "POST", "/v1/auth/codes", "", "application/json", strings.NewReader(`{"phone":`),
					400, "EINVALID", "the request body is not valid JSON: it ends too early"},
				{"bad JSON", "POST", "/v1/auth/codes", "", "application/json", strings.NewReader(`{"phone" "x"}`),
					400, "EINVALID", "the request body is not valid JSON (error at byte 10)"},
				{"unknown field", "POST", "/v1/auth/codes", "", "application/json", strings.NewReader(`{"phone":"+8613800138000","purpose":"register","pin":"1"}`),
					400, "EINVALID", `the request body has an unknown field "pin"`},
				{"wrong type", "POST", "/v1/auth/codes", "", "application/json", strings.NewReader(`{"phone":8613800138000,"purpose":"register"}`),
					400, "EINVALID", "phone must be a JSON string"},
				{"not an object", "POST", "/v1/auth/codes", "", "application/json", strings.NewReader(`[]`),
					400, "EINVALID", "the request body must be a JSON object"},
				{"two values", "POST", "/v1/auth/codes", "", "application/json", strings.NewReader(`{} {}`),
					400, "EINVALID", "the request body must hold exactly one JSON value"},
				{"empty body", "POST", "/v1/auth/codes", "", "application/json", strings.NewReader(``),
					400, "EINVALID", "the request body is empty; it must be a JSON object"},
				{"bad purpose", "POST", "/v1/auth/codes", "", "application/json", strings.NewReader(`{"phone":"+8613800138000","purpose":"cancel"}`),
					400, "EINVALID", "purpose must be register or sign_in"},
				{"form body", "POST", "/v1/auth/codes", "", "application/x-www-form-urlencoded", strings.NewReader(`phone=1`),
					415, "EUNSUPPORTED", "the request body must be application/json"},
				{"oversize body", "POST", "/v1/auth/codes", "", "application/json", strings.NewReader(big),
					413, "ETOOLARGE", "the request body exceeds 1024 bytes"},
				{"oversize chunked body", "POST", "/v1/register", "", "application/json", io.MultiReader(strings.NewReader(big)),
					413, "ETOOLARGE", "the request body exceeds 1024 bytes"},
				{"no token", "GET", "/v1/me", "", "", nil,
					401, "EUNAUTHORIZED", "this route needs an Authorization: Bearer token"},
				{"unknown token", "GET", "/v1/me", "sts_AAAA", "", nil,
					401, "EUNAUTHORIZED", "the bearer token is not valid"},
				{"no token on app route", "GET", "/v1/subjects/" + reg.SubjectID + "/data?purpose=risk_control", "", "", nil,
					401, "EUNAUTHORIZED", "this route needs an Authorization: Bearer token"},
				{"subject on app route", "GET", "/v1/subjects/" + reg.SubjectID + "/consents/risk_control", reg.Token, "", nil,
					403, "EFORBIDDEN", "this route is for client apps with an app token"},
				{"read without purpose", "GET", "/v1/subjects/" + reg.SubjectID + "/data", app, "", nil,
					400, "EINVALID", "the purpose query parameter is required: every read names its purpose"},
				{"undeclared purpose", "GET", "/v1/subjects/" + reg.SubjectID + "/data?purpose=telepathy", app, "", nil,
					400, "EINVALID", `purpose "telepathy" is not declared`},
				{"unknown route", "GET", "/v1/nothing", "", "", nil,
					404, "ENOTFOUND", "no such route"},
				{"wrong method", "PUT", "/v1/me", reg.Token, "application/json", strings.NewReader(`{}`),
					405, "EMETHOD", "PUT is not served at this path; it accepts GET, PATCH"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					resp, body := a.raw(tc.method, tc.path, tc.token, tc.ctype, tc.body)
					wantErrorBody(t, tc.name, resp, body, tc.status, tc.code, tc.message)
					if tc.status == 401 && resp.Header.Get("WWW-Authenticate") != `Bearer realm="steward"` {
						t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
					}
					if got := resp.Header.Get("Content-Type"); got != "application/json" {
						t.Errorf("Content-Type = %q", got)
					}
				})
			}
			resp, _ := a.raw("PUT", "/v1/me", reg.Token, "application/json", strings.NewReader(`{}`))
			if got := resp.Header.Get("Allow"); got != "GET, PATCH" {
				t.Errorf("Allow = %q", got)
			}
		})
	}
}

// TestInternalError checks that an internal error shows the client only the generic
// message and logs the cause with the request id.
func TestInternalError(t *testing.T) {
	var logs lockedBuffer
	s := NewServer(newEnv(t, "sqlite").Service, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	s.handleOps("GET /test/internal", func(w http.ResponseWriter, r *http.Request) {
		s.Error(w, r, fmt.Errorf("sql: insert consent 42: %w", errors.New("disk I/O error")))
	})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/test/internal", nil))
	if rec.Code != 500 || rec.Body.String() != `{"error":{"code":"EINTERNAL","message":"An internal error has occurred."}}`+"\n" {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	id := rec.Header().Get("X-Request-Id")
	var line map[string]any
	json.Unmarshal([]byte(strings.Split(logs.String(), "\n")[0]), &line)
	if line["msg"] != "internal error" || line["err"] != "sql: insert consent 42: disk I/O error" || line["request_id"] != id || id == "" {
		t.Fatalf("log line %v, request id %q", line, id)
	}
}

// TestAbandonedRequest: a request whose client hung up is not logged as an
// internal error.
func TestAbandonedRequest(t *testing.T) {
	var logs lockedBuffer
	s := NewServer(newEnv(t, "sqlite").Service, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	s.handleOps("GET /test/abandoned", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		s.Error(w, r, fmt.Errorf("sql: read subject: %w", r.Context().Err()))
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/test/abandoned", nil).WithContext(ctx))
	if rec.Code != StatusClientClosedRequest {
		t.Errorf("status %d, want %d", rec.Code, StatusClientClosedRequest)
	}
	if strings.Contains(logs.String(), "internal error") || !strings.Contains(logs.String(), "request abandoned by the client") {
		t.Errorf("logs: %s", logs.String())
	}
	// Another error of a request whose client is gone (database/sql's commit
	// after its rollback on cancellation) is the client's too.
	s.handleOps("GET /test/abandoned-commit", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		s.Error(w, r, errors.New("sql: commit read: sql: transaction has already been committed or rolled back"))
	})
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/test/abandoned-commit", nil).WithContext(ctx))
	if rec.Code != StatusClientClosedRequest || strings.Contains(logs.String(), "internal error") {
		t.Errorf("an abandoned request's commit error: status %d, logs %s", rec.Code, logs.String())
	}
	// The same error while the client still waits is an internal error.
	s.handleOps("GET /test/cancelled-inside", func(w http.ResponseWriter, r *http.Request) {
		s.Error(w, r, fmt.Errorf("sql: read subject: %w", context.Canceled))
	})
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/test/cancelled-inside", nil))
	if rec.Code != 500 {
		t.Errorf("a cancellation not the client's: status %d, want 500", rec.Code)
	}
}

func TestOps(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			a := newAPITest(t, engine, Options{})
			ctx := context.Background()
			resp, body := a.raw("GET", "/healthz", "", "", nil)
			if resp.StatusCode != 200 || string(body) != `{"status":"ok"}`+"\n" {
				t.Errorf("healthz: %d %s", resp.StatusCode, body)
			}
			if err := a.client("").Ready(ctx); err != nil {
				t.Errorf("ready: %v", err)
			}
			resp, body = a.raw("GET", "/v1/openapi.json", "", "", nil)
			if resp.StatusCode != 200 || string(body) != string(OpenAPI) {
				t.Errorf("openapi.json: %d, %d bytes, want the embedded %d", resp.StatusCode, len(body), len(OpenAPI))
			}
			d, err := a.client("").Declaration(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d.Version != a.Decl.Version || len(d.Purposes) != len(a.Decl.Purposes) || d.Location().String() != "Asia/Shanghai" {
				t.Errorf("declaration %s with %d purposes in %s", d.Version, len(d.Purposes), d.Location())
			}

			// Metrics count requests by route pattern, not by path.
			reg := a.Register(t, phone, nil)
			me := a.client(reg.Token)
			for range 3 {
				if _, err := me.Me(ctx); err != nil {
					t.Fatal(err)
				}
			}
			a.raw("GET", "/v1/me/consents/"+steward.NewID()+"/receipt", reg.Token, "", nil)
			a.raw("GET", "/no/such/path", "", "", nil)
			_, body = a.raw("GET", "/metrics", "", "", nil)
			for _, want := range []string{
				`steward_http_requests_total{code="200",method="GET",route="/v1/me"} 3`,
				`steward_http_requests_total{code="404",method="GET",route="/v1/me/consents/{event_id}/receipt"} 1`,
				`steward_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
				`steward_http_request_duration_seconds_count{method="GET",route="/v1/me"} 3`,
				`steward_declaration_info{version="2026-11-01"} 1`,
				`steward_http_requests_in_flight 1`,
				`go_goroutines `,
			} {
				if !strings.Contains(string(body), want) {
					t.Errorf("metrics lack %q", want)
				}
			}
			if strings.Contains(string(body), reg.SubjectID) {
				t.Error("metrics hold a subject id")
			}
		})
	}
}

func TestNotReady(t *testing.T) {
	a := newAPITest(t, "sqlite", Options{Ready: func(context.Context) error { return errors.New("sql: ping: connection refused") }})
	err := a.client("").Ready(context.Background())
	wantErr(t, "ready", err, steward.EUNAVAILABLE, "a dependency of Steward does not answer")
	if !strings.Contains(a.logs.String(), "connection refused") {
		t.Errorf("cause not logged: %s", a.logs.String())
	}
}

// TestClientErrors checks that the client maps answers that are not Steward's
// (a proxy's 502, a dead server) to codes too.
func TestClientErrors(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer proxy.Close()
	_, err := (&Client{BaseURL: proxy.URL}).Me(context.Background())
	wantErr(t, "proxy", err, steward.EUNAVAILABLE, "Steward answered 502 Bad Gateway")

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	_, err = (&Client{BaseURL: dead.URL}).Me(context.Background())
	if steward.ErrorCode(err) != steward.EUNAVAILABLE {
		t.Errorf("dead server: %v", err)
	}
}

func TestClientAddress(t *testing.T) {
	env := newEnv(t, "sqlite")
	hash := func(ip string) string {
		return fmt.Sprintf("%x", env.Service.Keys().HashSecret("client", ip))
	}
	for _, tc := range []struct {
		name, remote, xff string
		proxy             bool
		want              string
	}{
		{"peer", "192.0.2.7:5555", "", false, hash("192.0.2.7")},
		{"forwarded header ignored without TrustProxy", "192.0.2.7:5555", "198.51.100.1", false, hash("192.0.2.7")},
		{"last forwarded entry behind a proxy", "10.0.0.1:5555", "203.0.113.9, 198.51.100.1", true, hash("198.51.100.1")},
		{"IPv6 peer", "[2001:db8::1]:443", "", false, hash("2001:db8::1")},
		{"mapped IPv4", "[::ffff:192.0.2.7]:443", "", false, hash("192.0.2.7")},
		{"bad forwarded entry falls back", "192.0.2.7:5555", "unknown", true, hash("192.0.2.7")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewServer(env.Service, Options{TrustProxy: tc.proxy, Registry: nil})
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := s.clientAddress(r); got != tc.want {
				t.Errorf("address = %s, want %s", got, tc.want)
			}
		})
	}
}
