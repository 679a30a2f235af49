package outbox

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

func TestWebhookSink(t *testing.T) {
	at := time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC)
	type seen struct {
		method, body, ctype, idem, sig string
	}
	cases := []struct {
		name     string
		status   int
		redirect bool
		wantCode string
		wantMsg  string
	}{
		{"200 is delivered", 200, false, "", ""},
		{"204 is delivered", 204, false, "", ""},
		{"500 is retried", 500, false, steward.EUNAVAILABLE, "the webhook receiver answered HTTP 500"},
		{"410 is retried", 410, false, steward.EUNAVAILABLE, "the webhook receiver answered HTTP 410"},
		{"a redirect is not followed", 0, true, steward.EUNAVAILABLE, "the webhook receiver answered HTTP 307"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []seen
			elsewhere := 0
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere++ }))
			defer other.Close()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got = append(got, seen{r.Method, string(b), r.Header.Get("Content-Type"), r.Header.Get("Idempotency-Key"), r.Header.Get("Steward-Signature")})
				if c.redirect {
					http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
					return
				}
				w.WriteHeader(c.status)
			}))
			defer srv.Close()
			sink := &WebhookSink{Now: func() time.Time { return at }, Sign: func(ctx context.Context, m Message, t time.Time) (map[string]string, error) {
				return map[string]string{"Steward-Signature": "t=" + t.Format("20060102T150405") + ",v1=" + m.ID}, nil
			}}
			err := sink.Deliver(context.Background(), Message{ID: "m1", Channel: "webhook", MessagePayload: steward.MessagePayload{
				To: srv.URL + "/hook", Body: `{"event":"deletion"}`, Headers: map[string]string{"Idempotency-Key": "n1", "Content-Type": "application/json"}}})
			if steward.ErrorCode(err) != c.wantCode || steward.ErrorMessage(err) != c.wantMsg && c.wantCode != "" {
				t.Fatalf("Deliver: %v, want code %q message %q", err, c.wantCode, c.wantMsg)
			}
			want := seen{"POST", `{"event":"deletion"}`, "application/json", "n1", "t=20261129T020000,v1=m1"}
			if len(got) != 1 || got[0] != want {
				t.Errorf("receiver saw %+v, want one %+v", got, want)
			}
			if elsewhere != 0 {
				t.Errorf("the redirect target got %d requests, want 0", elsewhere)
			}
		})
	}
}

func TestWebhookSinkTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	sink := &WebhookSink{Timeout: 50 * time.Millisecond}
	start := time.Now()
	err := sink.Deliver(context.Background(), Message{ID: "m1", MessagePayload: steward.MessagePayload{To: srv.URL, Body: "{}"}})
	if steward.ErrorCode(err) != steward.EUNAVAILABLE || steward.ErrorMessage(err) != "the webhook receiver could not be reached" {
		t.Fatalf("Deliver to a stalled receiver: %v, want EUNAVAILABLE", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Deliver took %s, want about the 50ms timeout", d)
	}
}

// TestWebhookSinkRefusedAddress sends to 0.0.0.0, which Linux connects to this
// host: the dial guard refuses it after resolution, before a byte is sent, as it
// refuses a host name resolving to 169.254.169.254 (the cloud metadata service).
func TestWebhookSinkRefusedAddress(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	sink := &WebhookSink{}
	err := sink.Deliver(context.Background(), Message{ID: "m1", MessagePayload: steward.MessagePayload{To: "http://0.0.0.0:" + port + "/hook", Body: "{}"}})
	if steward.ErrorCode(err) != steward.EFORBIDDEN || steward.ErrorMessage(err) != "the webhook receiver's address is refused: it is link-local or unspecified, such as 169.254.169.254" {
		t.Fatalf("Deliver to 0.0.0.0: %v, want EFORBIDDEN", err)
	}
	if hits != 0 {
		t.Errorf("the receiver got %d requests, want 0", hits)
	}
	// Loopback, where development receivers live, still works.
	if err := sink.Deliver(context.Background(), Message{ID: "m2", MessagePayload: steward.MessagePayload{To: srv.URL + "/hook", Body: "{}"}}); err != nil || hits != 1 {
		t.Fatalf("Deliver to %s: %v, %d requests; want delivered once", srv.URL, err, hits)
	}
}

func TestDialGuard(t *testing.T) {
	for address, refused := range map[string]bool{
		"169.254.169.254:80":          true,
		"[fe80::1]:443":               true,
		"[fe80::1%eth0]:443":          true,
		"[::ffff:169.254.169.254]:80": true,
		"0.0.0.0:443":                 true,
		"[::]:443":                    true,
		"hooks.acme.example:443":      true, // never reached: the dialer passes resolved addresses
		"127.0.0.1:8080":              false,
		"[::1]:8080":                  false,
		"10.1.2.3:443":                false,
		"192.168.0.10:443":            false,
		"203.0.113.7:443":             false,
	} {
		if err := dialGuard("tcp", address, nil); (err != nil) != refused {
			t.Errorf("dialGuard(%s) = %v, want refused %v", address, err, refused)
		}
	}
}
