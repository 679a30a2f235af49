package http

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/stewardtest"
)

// browser returns a client that checks responses against the OpenAPI document
// and does not follow redirects, as a test of a redirect must see it.
func (a *apiTest) browser() *http.Client {
	return &http.Client{Transport: a.http.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// visit sends method to path (a full URL or a path on the server) and returns the
// response and body.
func (a *apiTest) visit(method, url, contentType, body string) (*http.Response, string) {
	a.t.Helper()
	if strings.HasPrefix(url, "/") {
		url = a.srv.URL + url
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := a.browser().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// clicks returns the click times of the subject's links, from its export.
func clicks(t *testing.T, me *Client) []time.Time {
	t.Helper()
	x, err := me.Export(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(x.Extra["links"])
	var links []steward.ExportedLink
	json.Unmarshal(raw, &links)
	var out []time.Time
	for _, l := range links {
		out = append(out, l.Clicks...)
	}
	return out
}

func TestLinksOverTheWire(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			a := newShieldAPITest(t, engine)
			ctx := context.Background()
			reg := a.Register(t, "+8613800138000", nil, steward.ConsentChoice{Purpose: "marketing", Separate: true})
			me := a.client(reg.Token)
			app := a.client(a.appToken("app"))

			// Unregistered hosts and //host tricks are refused.
			for dest, msg := range map[string]string{
				"https://evil.com/":               "destination host is not one of the declaration's links.allowed_hosts",
				"//evil.com":                      "destination must be an absolute https:// URL",
				"https:/\\evil.com":               "destination must be printable ASCII without spaces or backslashes; percent-encode anything else",
				"https://commaker.com@evil.com/":  "destination host must be a plain host name: no user name, port, percent-encoding or IP literal",
				"https://commaker.com.evil.com/x": "destination host is not one of the declaration's links.allowed_hosts",
				"http://commaker.com/":            "destination must be an absolute https:// URL",
			} {
				_, err := app.CreateLink(ctx, steward.LinkRequest{SubjectID: reg.SubjectID, Destination: dest})
				wantErr(t, "link to "+dest, err, steward.EINVALID, msg)
			}
			_, err := a.client(a.appToken("risk-engine")).CreateLink(ctx, steward.LinkRequest{SubjectID: reg.SubjectID, Destination: "https://commaker.com/"})
			wantErr(t, "link by risk-engine", err, steward.EFORBIDDEN, "only client apps declared for analytics or marketing may create tracked links")

			l, err := app.CreateLink(ctx, steward.LinkRequest{SubjectID: reg.SubjectID, Destination: "https://www.commaker.com/offers?id=7", Campaign: "nov-2026"})
			if err != nil {
				t.Fatal(err)
			}
			token := strings.TrimPrefix(l.UnsubscribeURL, a.srv.URL+"/u/")
			want := &CreatedLink{ID: l.ID, SubjectID: reg.SubjectID, Campaign: "nov-2026", CreatedAt: a.Clock.Now(),
				ShortURL: a.srv.URL + "/l/" + l.ID, UnsubscribeURL: a.srv.URL + "/u/" + token,
				ListUnsubscribe: "<" + a.srv.URL + "/u/" + token + ">", ListUnsubscribePost: "List-Unsubscribe=One-Click"}
			if diff := cmp.Diff(want, l); diff != "" || !strings.HasPrefix(token, "stu_") || len(token) != 47 {
				t.Fatalf("created link (-want +got):\n%s", diff)
			}

			// Without consent to analytics: redirected, no click.
			resp, body := a.visit("GET", l.ShortURL, "", "")
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://www.commaker.com/offers?id=7" || body != "" {
				t.Fatalf("follow: %d %q %q", resp.StatusCode, resp.Header.Get("Location"), body)
			}
			if resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("redirect headers: %v", resp.Header)
			}
			if got := clicks(t, me); len(got) != 0 {
				t.Fatalf("clicks without consent = %v", got)
			}
			// With consent: a GET is a click, a HEAD (a link previewer) is not.
			if _, err := me.GrantConsent(ctx, steward.ConsentChoice{Purpose: "analytics"}); err != nil {
				t.Fatal(err)
			}
			a.Clock.Advance(time.Minute)
			a.visit("GET", l.ShortURL, "", "")
			// Not through the validating client: HEAD is served by the GET route, undocumented.
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			head, err := noFollow.Head(l.ShortURL)
			if err == nil {
				head.Body.Close()
			}
			if err != nil || head.StatusCode != http.StatusFound {
				t.Fatalf("HEAD: %v %v", head, err)
			}
			if got := clicks(t, me); !cmp.Equal(got, []time.Time{a.Clock.Now()}) {
				t.Fatalf("clicks with consent = %v, want one at %s", got, a.Clock.Now())
			}
			resp, body = a.visit("GET", "/l/nope", "", "")
			if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no such link") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("unknown link: %d %s", resp.StatusCode, body)
			}

			// Unsubscribe: GET shows a page and changes nothing.
			marketing := func() bool {
				cur, _, err := me.Consents(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range cur {
					if c.Purpose == "marketing" {
						return c.Granted
					}
				}
				return false
			}
			for range 3 {
				resp, body = a.visit("GET", l.UnsubscribeURL, "", "")
				if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<form method="post">`) || !strings.Contains(body, "ComMarker") {
					t.Fatalf("unsubscribe page: %d %s", resp.StatusCode, body)
				}
			}
			if !marketing() {
				t.Fatal("GET of the unsubscribe page withdrew consent")
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self'") || !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("page CSP = %q", csp)
			}
			// RFC 8058 one-click POST withdraws marketing, by the unsubscribe method.
			a.Clock.Advance(time.Minute)
			resp, body = a.visit("POST", l.UnsubscribeURL, "application/x-www-form-urlencoded", OneClick)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, "You are unsubscribed") {
				t.Fatalf("one-click: %d %s", resp.StatusCode, body)
			}
			if marketing() {
				t.Fatal("marketing still granted after the one-click POST")
			}
			_, hist, _ := me.Consents(ctx)
			last := hist[len(hist)-1]
			if last.Purpose != "marketing" || last.Action != steward.ConsentWithdraw || last.Method != steward.MethodUnsubscribe || !last.At.Equal(a.Clock.Now()) {
				t.Errorf("last consent event = %+v", last)
			}
			resp, body = a.visit("POST", l.UnsubscribeURL, "", "")
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, "already unsubscribed") {
				t.Fatalf("second POST: %d %s", resp.StatusCode, body)
			}
			resp, body = a.visit("POST", "/u/stu_"+strings.Repeat("x", 43), "", "")
			if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not valid") {
				t.Fatalf("unknown token: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// TestLinkBase checks short links use the configured public URL.
func TestLinkBase(t *testing.T) {
	a := newShieldAPITest(t, "sqlite")
	a.server.SetLinkOptions(LinkOptions{PublicURL: "https://s.commaker.com/"})
	reg := a.Register(t, "+8613800138000", nil)
	l, err := a.client(a.appToken("app")).CreateLink(context.Background(), steward.LinkRequest{SubjectID: reg.SubjectID, Destination: "https://commaker.com/"})
	if err != nil {
		t.Fatal(err)
	}
	if l.ShortURL != "https://s.commaker.com/l/"+l.ID || !strings.HasPrefix(l.UnsubscribeURL, "https://s.commaker.com/u/stu_") {
		t.Fatalf("link = %+v", l)
	}
}
