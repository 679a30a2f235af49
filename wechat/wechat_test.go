package wechat

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stewardhq/steward"
)

const (
	appID     = "wx1234567890abcdef"
	appSecret = "s3cr3t-0123456789abcdef0123456789"
	token     = "ACCESS_TOKEN_must_not_leak"
)

// fakeWeChat imitates api.weixin.qq.com's /sns/oauth2/access_token: codes it knows
// are spent once; the rest get WeChat's errcode JSON with HTTP 200, as WeChat does.
type fakeWeChat struct {
	mu    sync.Mutex
	codes map[string]string // code → JSON answer
	seen  []url.Values
}

func (f *fakeWeChat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	f.seen = append(f.seen, q)
	w.Header().Set("Content-Type", "text/plain") // WeChat's real media type
	switch {
	case r.Method != http.MethodGet || r.URL.Path != "/sns/oauth2/access_token":
		http.NotFound(w, r)
	case q.Get("appid") != appID || q.Get("secret") != appSecret:
		fmt.Fprint(w, `{"errcode":40125,"errmsg":"invalid appsecret, rid: 6650a1b2-1c2d3e4f"}`)
	case q.Get("grant_type") != "authorization_code":
		fmt.Fprint(w, `{"errcode":40002,"errmsg":"invalid grant_type"}`)
	case q.Get("code") == "used":
		fmt.Fprint(w, `{"errcode":40163,"errmsg":"code been used, rid: 6650a1b2-1c2d3e50"}`)
	case q.Get("code") == "busy":
		fmt.Fprint(w, `{"errcode":-1,"errmsg":"system error"}`)
	case q.Get("code") == "teapot":
		w.WriteHeader(http.StatusBadGateway)
	case q.Get("code") == "garbage":
		fmt.Fprint(w, `<html>`)
	case q.Get("code") == "noid":
		fmt.Fprint(w, `{"access_token":"`+token+`","expires_in":7200}`)
	default:
		answer, ok := f.codes[q.Get("code")]
		if !ok {
			fmt.Fprint(w, `{"errcode":40029,"errmsg":"invalid code, rid: 6650a1b2-1c2d3e51"}`)
			return
		}
		delete(f.codes, q.Get("code"))
		fmt.Fprint(w, answer)
	}
}

func TestProviderExchange(t *testing.T) {
	fw := &fakeWeChat{codes: map[string]string{
		"061aBc": `{"access_token":"` + token + `","expires_in":7200,"refresh_token":"REFRESH_must_not_leak","openid":"oWx_open_1","scope":"snsapi_login","unionid":"uWx_union_1"}`,
		"071dEf": `{"access_token":"` + token + `","expires_in":7200,"refresh_token":"REFRESH_must_not_leak","openid":"oWx_open_2","scope":"snsapi_userinfo"}`,
	}}
	srv := httptest.NewServer(fw)
	defer srv.Close()
	p := &Provider{AppID: appID, AppSecret: appSecret, BaseURL: srv.URL + "/", HTTP: srv.Client()}
	ctx := context.Background()

	tests := []struct {
		code     string
		want     steward.WeChatIdentity
		wantCode string
		wantErr  string // the cause, for the log
	}{
		{code: "061aBc", want: steward.WeChatIdentity{OpenID: "oWx_open_1", UnionID: "uWx_union_1"}},
		{code: "071dEf", want: steward.WeChatIdentity{OpenID: "oWx_open_2"}},
		{code: "061aBc", wantCode: steward.EUNAUTHORIZED, wantErr: "wechat: exchange code: errcode 40029"}, // spent above
		{code: "used", wantCode: steward.EUNAUTHORIZED, wantErr: "wechat: exchange code: errcode 40163"},
		{code: "busy", wantCode: steward.EUNAVAILABLE, wantErr: "wechat: exchange code: errcode -1"},
		{code: "teapot", wantCode: steward.EUNAVAILABLE, wantErr: "wechat: exchange code: status 502"},
		{code: "garbage", wantCode: steward.EUNAVAILABLE, wantErr: "wechat: exchange code: the answer is not JSON"},
		{code: "noid", wantCode: steward.EUNAVAILABLE, wantErr: "wechat: exchange code: the answer has no openid"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			got, err := p.Exchange(ctx, tt.code)
			if c := steward.ErrorCode(err); c != tt.wantCode {
				t.Fatalf("Exchange(%q) = %v, want code %q", tt.code, err, tt.wantCode)
			}
			if got != tt.want {
				t.Errorf("Exchange(%q) = %#v, want %#v", tt.code, got, tt.want)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Exchange(%q) error %q lacks %q", tt.code, err, tt.wantErr)
			}
			if err != nil {
				noSecrets(t, err.Error())
			}
		})
	}
	// The request WeChat documents: appid, secret, code, grant_type.
	want := url.Values{"appid": {appID}, "secret": {appSecret}, "code": {"061aBc"}, "grant_type": {"authorization_code"}}
	if got := fw.seen[0]; got.Encode() != want.Encode() {
		t.Errorf("query = %s, want %s", got.Encode(), want.Encode())
	}

	t.Run("wrong secret", func(t *testing.T) {
		bad := &Provider{AppID: appID, AppSecret: "wrong-secret-value", BaseURL: srv.URL, HTTP: srv.Client()}
		_, err := bad.Exchange(ctx, "071dEf")
		if steward.ErrorCode(err) != steward.EUNAVAILABLE || !strings.Contains(err.Error(), "errcode 40125") {
			t.Fatalf("err = %v, want EUNAVAILABLE with errcode 40125", err)
		}
		if strings.Contains(err.Error(), "wrong-secret-value") {
			t.Errorf("error %q holds the secret", err)
		}
	})
	t.Run("not configured", func(t *testing.T) {
		_, err := (&Provider{AppID: appID}).Exchange(ctx, "x")
		if steward.ErrorCode(err) != steward.EUNAVAILABLE || steward.ErrorMessage(err) != "WeChat sign-in is not configured" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("WeChat down", func(t *testing.T) {
		down := httptest.NewServer(http.NotFoundHandler())
		down.Close() // nothing listens any more
		_, err := (&Provider{AppID: appID, AppSecret: appSecret, BaseURL: down.URL}).Exchange(ctx, "061aBc")
		if steward.ErrorCode(err) != steward.EUNAVAILABLE || steward.ErrorMessage(err) != "WeChat does not answer; try again later" {
			t.Fatalf("err = %v", err)
		}
		// A transport error names the URL, which holds the secret and the code.
		noSecrets(t, err.Error())
		if strings.Contains(err.Error(), "061aBc") {
			t.Errorf("error %q holds the code", err)
		}
	})
	t.Run("printing hides the secret", func(t *testing.T) {
		var logs bytes.Buffer
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("provider", "p", *p, "pp", p)
		for _, s := range []string{fmt.Sprint(*p), fmt.Sprint(p), fmt.Sprintf("%v %+v", *p, p), logs.String()} {
			noSecrets(t, s)
			if !strings.Contains(s, appID) {
				t.Errorf("%q does not name the app", s)
			}
		}
	})
}

func noSecrets(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{appSecret, token, "REFRESH_must_not_leak"} {
		if strings.Contains(s, secret) {
			t.Errorf("%q holds a secret", s)
		}
	}
}

func TestFake(t *testing.T) {
	ctx := context.Background()
	var f Fake
	c1, c2 := f.Issue("oFake_1", "uFake_1"), f.Issue("oFake_2", "")
	if c1 == c2 || len(c1) != 32 {
		t.Fatalf("codes %q, %q: want two different 32-character codes", c1, c2)
	}
	got, err := f.Exchange(ctx, c2)
	if err != nil || got != (steward.WeChatIdentity{OpenID: "oFake_2"}) {
		t.Fatalf("Exchange = %#v, %v", got, err)
	}
	if _, err := f.Exchange(ctx, c2); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("second Exchange err = %v, want EUNAUTHORIZED", err)
	}
	if _, err := f.Exchange(ctx, "never-issued"); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Fatalf("unknown code err = %v, want EUNAUTHORIZED", err)
	}
	f.Err = steward.Errorf(steward.EUNAVAILABLE, "down")
	if _, err := f.Exchange(ctx, c1); steward.ErrorCode(err) != steward.EUNAVAILABLE {
		t.Fatalf("with Err set: %v", err)
	}
	f.Err = nil
	if got, err := f.Exchange(ctx, c1); err != nil || got != (steward.WeChatIdentity{OpenID: "oFake_1", UnionID: "uFake_1"}) {
		t.Fatalf("Exchange after outage = %#v, %v", got, err)
	}
}
