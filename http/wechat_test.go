package http

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/stewardtest"
	"github.com/stewardhq/steward/wechat"
)

// newWeChatAPITest is newAPITest on an env whose WeChat provider is fake (nil:
// WeChat sign-in off).
func newWeChatAPITest(t *testing.T, engine string, fake *wechat.Fake) *apiTest {
	t.Helper()
	o := stewardtest.Options{}
	if fake != nil {
		o.WeChat = fake
	}
	env := stewardtest.New(t, engine, o)
	a := &apiTest{Env: env, t: t, logs: &lockedBuffer{}}
	a.server = NewServer(env.Service, Options{Logger: slog.New(slog.NewJSONHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	a.srv = httptest.NewServer(a.server.Handler())
	t.Cleanup(a.srv.Close)
	a.http = &http.Client{Transport: &validating{t: t, doc: openAPI(t), base: a.srv.Client().Transport}}
	return a
}

// registerOverWire registers phoneNumber (E.164) with an optional WeChat code.
func (a *apiTest) registerOverWire(t *testing.T, phoneNumber, wechatCode string, fields steward.FieldValues) (*steward.Registered, error) {
	t.Helper()
	ctx := context.Background()
	a.Clock.Advance(time.Minute)
	if _, err := a.client("").SendCode(ctx, phoneNumber, steward.CodeRegister); err != nil {
		t.Fatal(err)
	}
	if fields == nil {
		fields = steward.FieldValues{}
	}
	fields["birthday"] = json.RawMessage(`"1990-05-17"`)
	return a.client("").Register(ctx, steward.Registration{Phone: phoneNumber, Code: a.LastCode(t, phoneNumber), WeChatCode: wechatCode,
		Fields: fields, Consents: stewardtest.DefaultConsents(a.Decl)})
}

func TestWeChatOverHTTP(t *testing.T) {
	const (
		openID  = "oWx_http_openid_0001"
		unionID = "uWx_http_unionid_0001"
		badCode = "the WeChat authorization code is not valid, has expired or was used already; authorize again in WeChat"
	)
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			fake := &wechat.Fake{}
			a := newWeChatAPITest(t, engine, fake)
			ctx := context.Background()
			anon := a.client("")

			_, err := a.registerOverWire(t, e164, "", steward.FieldValues{"wechat_id": json.RawMessage(`"` + unionID + `"`)})
			wantErr(t, "client wechat_id", err, steward.EINVALID, "wechat_id comes only from WeChat authorization")

			reg, err := a.registerOverWire(t, e164, fake.Issue(openID, unionID), nil)
			if err != nil {
				t.Fatalf("register with WeChat: %v", err)
			}
			me, err := a.client(reg.Token).Me(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(me.Fields["wechat_id"]); got != `"`+unionID+`"` {
				t.Errorf("wechat_id = %s, want %q", got, unionID)
			}

			si, err := anon.SignInWeChat(ctx, fake.Issue(openID, unionID))
			if err != nil {
				t.Fatalf("sign in with WeChat: %v", err)
			}
			if si.SubjectID != reg.SubjectID || !strings.HasPrefix(si.Token, steward.SessionTokenPrefix) || si.Token == reg.Token {
				t.Fatalf("signed in = %+v, want subject %s with a new token", si, reg.SubjectID)
			}
			if _, err := a.client(si.Token).Me(ctx); err != nil {
				t.Fatalf("GET /v1/me with the WeChat session: %v", err)
			}

			used := fake.Issue(openID, unionID)
			if _, err := anon.SignInWeChat(ctx, used); err != nil {
				t.Fatal(err)
			}
			resp, body := a.raw("POST", "/v1/auth/wechat", "", "application/json", strings.NewReader(`{"code":"`+used+`"}`))
			wantErrorBody(t, "used code", resp, body, 401, steward.EUNAUTHORIZED, badCode)

			_, err = anon.SignInWeChat(ctx, fake.Issue("oWx_nobody", ""))
			wantErr(t, "unbound", err, steward.ENOTFOUND, "no account is bound to this WeChat account; register with your phone number")

			resp, body = a.raw("POST", "/v1/auth/wechat", "", "application/json", strings.NewReader(`{"code":"x","openid":"`+openID+`"}`))
			if resp.StatusCode != 400 || strings.Contains(string(body), openID) {
				t.Fatalf("unknown field: %d %s", resp.StatusCode, body)
			}

			// A second account: cannot take the bound WeChat account, can bind its own.
			other := "+8613900139000"
			_, err = a.registerOverWire(t, other, fake.Issue(openID, unionID), nil)
			wantErr(t, "second registration", err, steward.ECONFLICT, "this WeChat account is bound to an account already; sign in with WeChat instead")
			reg2, err := a.registerOverWire(t, other, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			c2 := a.client(reg2.Token)
			_, err = c2.BindWeChat(ctx, fake.Issue(openID, unionID))
			wantErr(t, "bind a bound WeChat", err, steward.ECONFLICT, "this WeChat account is bound to another account already")
			_, err = c2.BindWeChat(ctx, "never-issued")
			wantErr(t, "bind with a bad code", err, steward.EFORBIDDEN, badCode)
			p, err := c2.BindWeChat(ctx, fake.Issue("oWx_http_openid_0002", ""))
			if err != nil {
				t.Fatalf("bind: %v", err)
			}
			if got := string(p.Fields["wechat_id"]); got != `"oWx_http_openid_0002"` || p.Subject.ID != reg2.SubjectID {
				t.Errorf("after binding: subject %s wechat_id %s", p.Subject.ID, got)
			}
			_, err = anon.BindWeChat(ctx, fake.Issue("oWx_http_openid_0003", ""))
			wantErr(t, "bind anonymously", err, steward.EUNAUTHORIZED, "this route needs an Authorization: Bearer token")
			_, err = c2.UpdateMe(ctx, steward.FieldValues{"wechat_id": json.RawMessage(`null`)})
			wantErr(t, "delete wechat_id", err, steward.EINVALID, "wechat_id comes only from WeChat authorization")

			if logs := a.logs.String(); strings.Contains(logs, openID) || strings.Contains(logs, unionID) {
				t.Errorf("the request log holds a WeChat id")
			}
		})
	}
}

func TestWeChatOffOverHTTP(t *testing.T) {
	a := newWeChatAPITest(t, "sqlite", nil)
	ctx := context.Background()
	_, err := a.client("").SignInWeChat(ctx, "061aBc")
	wantErr(t, "sign in", err, steward.EUNAVAILABLE, "WeChat sign-in is not configured")
	reg, err := a.registerOverWire(t, e164, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.client(reg.Token).BindWeChat(ctx, "061aBc")
	wantErr(t, "bind", err, steward.EUNAVAILABLE, "WeChat sign-in is not configured")
	a.Clock.Advance(time.Minute)
	_, err = a.registerOverWire(t, "+8613900139000", "061aBc", nil)
	wantErr(t, "register", err, steward.EUNAVAILABLE, "WeChat sign-in is not configured")
}
