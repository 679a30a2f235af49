package steward_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/declaration"
	"github.com/stewardhq/steward/stewardtest"
)

func TestCheckLinkDestination(t *testing.T) {
	d := declaration.Default() // allowed_hosts: commaker.com, www.commaker.com
	ok := map[string]string{
		"https://commaker.com":                        "https://commaker.com",
		"https://commaker.com/":                       "https://commaker.com/",
		"https://www.commaker.com/offers?id=7#top":    "https://www.commaker.com/offers?id=7#top",
		"HTTPS://CoMMaker.COM/Path":                   "https://commaker.com/Path",
		"https://commaker.com?x=https://evil.com":     "https://commaker.com?x=https://evil.com",
		"https://commaker.com#@evil.com":              "https://commaker.com#@evil.com",
		"https://commaker.com//evil.com":              "https://commaker.com//evil.com",
		"https://commaker.com/%E4%BC%98%E6%83%A0?a=b": "https://commaker.com/%E4%BC%98%E6%83%A0?a=b",
	}
	for in, want := range ok {
		got, err := d.CheckLinkDestination(in)
		if err != nil || got != want {
			t.Errorf("CheckLinkDestination(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                                      "destination is required",
		"//evil.com":                            "destination must be an absolute https:// URL",
		"//commaker.com/x":                      "destination must be an absolute https:// URL",
		"/relative":                             "destination must be an absolute https:// URL",
		"http://commaker.com/":                  "destination must be an absolute https:// URL",
		"javascript:alert(1)":                   "destination must be an absolute https:// URL",
		"https:commaker.com":                    "destination must be an absolute https:// URL",
		"https:/commaker.com":                   "destination must be an absolute https:// URL",
		"https:///evil.com":                     "destination has no host",
		"https://evil.com/":                     "destination host is not one of the declaration's links.allowed_hosts",
		"https://commaker.com.evil.com/":        "destination host is not one of the declaration's links.allowed_hosts",
		"https://evilcommaker.com/":             "destination host is not one of the declaration's links.allowed_hosts",
		"https://shop.commaker.com/":            "destination host is not one of the declaration's links.allowed_hosts",
		"https://commaker.com./":                "destination host is not one of the declaration's links.allowed_hosts",
		"https://xn--cmmaker-0ig.com/":          "destination host is not one of the declaration's links.allowed_hosts",
		"https://commaker.com@evil.com/":        "destination host must be a plain host name: no user name, port, percent-encoding or IP literal",
		"https://user:pw@commaker.com/":         "destination host must be a plain host name: no user name, port, percent-encoding or IP literal",
		"https://commaker.com:8443/":            "destination host must be a plain host name: no user name, port, percent-encoding or IP literal",
		"https://commaker%2Ecom/":               "destination host must be a plain host name: no user name, port, percent-encoding or IP literal",
		"https://[::1]/":                        "destination host must be a plain host name: no user name, port, percent-encoding or IP literal",
		"https://commaker.com\\@evil.com/":      "destination must be printable ASCII without spaces or backslashes; percent-encode anything else",
		"https://evil.com\\.commaker.com/":      "destination must be printable ASCII without spaces or backslashes; percent-encode anything else",
		"https:\\\\evil.com":                    "destination must be printable ASCII without spaces or backslashes; percent-encode anything else",
		"https://c\u043emmaker.com/":            "destination must be printable ASCII without spaces or backslashes; percent-encode anything else", // Cyrillic о
		"https://commaker.com/\u202e":           "destination must be printable ASCII without spaces or backslashes; percent-encode anything else",
		" https://commaker.com/":                "destination must be printable ASCII without spaces or backslashes; percent-encode anything else",
		"https://commaker.com/\r\nSet-Cookie:x": "destination must be printable ASCII without spaces or backslashes; percent-encode anything else",
		"https://commaker.com/" + strings.Repeat("a", steward.MaxLinkDestination): "destination is longer than 2048 bytes",
	}
	for in, want := range bad {
		got, err := d.CheckLinkDestination(in)
		if steward.ErrorCode(err) != steward.EINVALID || steward.ErrorMessage(err) != want {
			t.Errorf("CheckLinkDestination(%q) = %q, %v; want EINVALID %q", in, got, err, want)
		}
	}
}

// exportedLinks returns the links part of the subject's export.
func exportedLinks(t *testing.T, env *stewardtest.Env, id string) []steward.ExportedLink {
	t.Helper()
	x, err := env.Service.ExportMe(stewardtest.Subject(id))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(x.Extra["links"])
	var out []steward.ExportedLink
	json.Unmarshal(raw, &out)
	return out
}

func TestLinkClicksOnlyWithConsent(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := newShieldEnv(t, engine)
			id := env.Register(t, "+8613800138000", nil).SubjectID
			app := stewardtest.App("app")
			l, err := env.Service.CreateLink(app, steward.LinkRequest{SubjectID: id, Destination: "https://commaker.com/offers?id=7", Campaign: "nov-2026"})
			if err != nil {
				t.Fatal(err)
			}
			if len(l.ID) != 16 || !strings.HasPrefix(l.UnsubscribeToken, "stu_") || len(l.UnsubscribeToken) != 47 {
				t.Errorf("link id %q, token length %d", l.ID, len(l.UnsubscribeToken))
			}
			anon := context.Background()
			follow := func(record bool) {
				t.Helper()
				dest, err := env.Service.FollowLink(anon, l.ID, record)
				if err != nil || dest != "https://commaker.com/offers?id=7" {
					t.Fatalf("follow = %q, %v", dest, err)
				}
			}
			// No consent to analytics: redirected, nothing recorded.
			follow(true)
			created := env.Clock.Now()
			want := []steward.ExportedLink{{ID: l.ID, Campaign: "nov-2026", Destination: "https://commaker.com/offers?id=7", CreatedAt: created, Clicks: []time.Time{}}}
			if diff := cmp.Diff(want, exportedLinks(t, env, id)); diff != "" {
				t.Fatalf("links without consent (-want +got):\n%s", diff)
			}
			// With consent: a GET records, a HEAD does not.
			if _, err := env.Service.GrantConsent(stewardtest.Subject(id), steward.ConsentChoice{Purpose: "analytics"}); err != nil {
				t.Fatal(err)
			}
			env.Clock.Advance(time.Minute)
			follow(true)
			follow(false)
			want[0].Clicks = []time.Time{env.Clock.Now()}
			if diff := cmp.Diff(want, exportedLinks(t, env, id)); diff != "" {
				t.Fatalf("links with consent (-want +got):\n%s", diff)
			}
			// Withdrawal deletes the clicks and stops recording.
			if _, err := env.Service.WithdrawConsent(stewardtest.Subject(id), "analytics"); err != nil {
				t.Fatal(err)
			}
			follow(true)
			want[0].Clicks = []time.Time{}
			if diff := cmp.Diff(want, exportedLinks(t, env, id)); diff != "" {
				t.Fatalf("links after withdrawal (-want +got):\n%s", diff)
			}
			var actions []string
			x, _ := env.Service.ExportMe(stewardtest.Subject(id))
			for _, e := range x.AccessLog {
				if strings.HasPrefix(e.Action, "link.") {
					actions = append(actions, e.Action+"/"+e.Purpose)
				}
			}
			if diff := cmp.Diff([]string{"link.create/", "link.click/analytics", "link.clicks_delete/analytics"}, actions); diff != "" {
				t.Errorf("link audit (-want +got):\n%s", diff)
			}
			if _, err := env.Service.FollowLink(anon, "nope", true); steward.ErrorCode(err) != steward.ENOTFOUND {
				t.Errorf("unknown link: %v", err)
			}
		})
	}
}

func TestCreateLinkRules(t *testing.T) {
	env := newShieldEnv(t, "sqlite")
	id := env.Register(t, "+8613800138000", nil).SubjectID
	for name, tc := range map[string]struct {
		ctx  context.Context
		in   steward.LinkRequest
		code string
	}{
		"risk engine":       {stewardtest.App("risk-engine"), steward.LinkRequest{SubjectID: id, Destination: "https://commaker.com/"}, steward.EFORBIDDEN},
		"subject":           {stewardtest.Subject(id), steward.LinkRequest{SubjectID: id, Destination: "https://commaker.com/"}, steward.EFORBIDDEN},
		"unknown app":       {stewardtest.App("nobody"), steward.LinkRequest{SubjectID: id, Destination: "https://commaker.com/"}, steward.EFORBIDDEN},
		"evil host":         {stewardtest.App("app"), steward.LinkRequest{SubjectID: id, Destination: "https://evil.com/"}, steward.EINVALID},
		"campaign text":     {stewardtest.App("app"), steward.LinkRequest{SubjectID: id, Destination: "https://commaker.com/", Campaign: "for 张伟"}, steward.EINVALID},
		"no subject":        {stewardtest.App("app"), steward.LinkRequest{Destination: "https://commaker.com/"}, steward.EINVALID},
		"unknown subject":   {stewardtest.App("app"), steward.LinkRequest{SubjectID: "no-such-id", Destination: "https://commaker.com/"}, steward.ENOTFOUND},
		"protocol-relative": {stewardtest.App("app"), steward.LinkRequest{SubjectID: id, Destination: "//evil.com"}, steward.EINVALID},
	} {
		if _, err := env.Service.CreateLink(tc.ctx, tc.in); steward.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
}

func TestUnsubscribe(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := newShieldEnv(t, engine)
			id := env.Register(t, "+8613800138000", nil, steward.ConsentChoice{Purpose: "marketing", Separate: true}).SubjectID
			l, err := env.Service.CreateLink(stewardtest.App("app"), steward.LinkRequest{SubjectID: id, Destination: "https://commaker.com/"})
			if err != nil {
				t.Fatal(err)
			}
			marketing := func() steward.ConsentState {
				t.Helper()
				states, _, err := env.Service.Consents(stewardtest.Subject(id))
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range states {
					if s.Purpose == "marketing" {
						return s
					}
				}
				t.Fatal("no marketing consent state")
				return steward.ConsentState{}
			}
			anon := context.Background()
			// Looking at the page changes nothing.
			if err := env.Service.CheckUnsubscribe(anon, l.UnsubscribeToken); err != nil {
				t.Fatal(err)
			}
			if st := marketing(); !st.Granted {
				t.Fatal("checking the token withdrew consent")
			}
			env.Clock.Advance(time.Minute)
			out, err := env.Service.Unsubscribe(anon, l.UnsubscribeToken)
			if err != nil {
				t.Fatal(err)
			}
			if out.Purpose != "marketing" || out.Already || out.Receipt == nil || out.Receipt.Event.Method != steward.MethodUnsubscribe ||
				out.Receipt.Event.Actor != "subject:"+id || !out.Receipt.Event.At.Equal(env.Clock.Now()) {
				t.Fatalf("unsubscribe = %+v", out)
			}
			if st := marketing(); st.Granted || st.EventID != out.Receipt.Event.ID {
				t.Fatalf("marketing after unsubscribe = %+v", st)
			}
			// Again: nothing to withdraw, still a success.
			again, err := env.Service.Unsubscribe(anon, l.UnsubscribeToken)
			if err != nil || !again.Already || again.Receipt != nil {
				t.Fatalf("second unsubscribe = %+v, %v", again, err)
			}
			// The phone number stays: the account still needs it.
			p, _ := env.Service.Me(stewardtest.Subject(id))
			if string(p.Fields["phone"]) != `"+8613800138000"` {
				t.Errorf("phone after unsubscribe = %s", p.Fields["phone"])
			}
			for _, tok := range []string{"", "stu_", "stu_" + strings.Repeat("A", 43), l.ID, strings.TrimPrefix(l.UnsubscribeToken, "stu_")} {
				if err := env.Service.CheckUnsubscribe(anon, tok); steward.ErrorCode(err) != steward.ENOTFOUND {
					t.Errorf("check %q: %v, want ENOTFOUND", tok, err)
				}
				if _, err := env.Service.Unsubscribe(anon, tok); steward.ErrorCode(err) != steward.ENOTFOUND {
					t.Errorf("unsubscribe %q: %v, want ENOTFOUND", tok, err)
				}
			}
			// Cancellation erases links: the token and the short link die with the account.
			sub := stewardtest.Subject(id)
			env.Service.SendCancellationCode(sub)
			if _, err := env.Service.CancelAccount(sub, env.LastCode(t, "+8613800138000")); err != nil {
				t.Fatal(err)
			}
			if err := env.Service.CheckUnsubscribe(anon, l.UnsubscribeToken); steward.ErrorCode(err) != steward.ENOTFOUND {
				t.Errorf("token after cancellation: %v", err)
			}
			if _, err := env.Service.FollowLink(anon, l.ID, true); steward.ErrorCode(err) != steward.ENOTFOUND {
				t.Errorf("link after cancellation: %v", err)
			}
		})
	}
}
