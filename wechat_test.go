package steward_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/contacts"
	"github.com/stewardhq/steward/stewardtest"
	"github.com/stewardhq/steward/wechat"
)

// The WeChat account ids of the tests; none may reach storage in plaintext.
const (
	weiOpenID   = "oWx_zhangwei_openid_0001"
	weiUnionID  = "uWx_zhangwei_unionid_0001"
	fangOpenID  = "oWx_lifang_openid_0002"
	wechatPhone = "+8613800138000"
)

// phoneCode sends a registration code to phone and returns it.
func phoneCode(t *testing.T, env *stewardtest.Env, phone string) string {
	t.Helper()
	env.Clock.Advance(time.Minute) // codes to one number are spaced
	if _, err := env.Service.SendCode(context.Background(), phone, steward.CodeRegister); err != nil {
		t.Fatal(err)
	}
	e164, err := contacts.Normalize(phone, env.Decl.PhoneRegion)
	if err != nil {
		t.Fatal(err)
	}
	return env.LastCode(t, e164)
}

// registration returns a valid registration of phone with code and wechatCode.
func registration(env *stewardtest.Env, phone, code, wechatCode string) steward.Registration {
	return steward.Registration{Phone: phone, Code: code, WeChatCode: wechatCode,
		Fields:   steward.FieldValues{"nickname": []byte(`"张伟Test"`), "birthday": []byte(`"1990-05-17"`)},
		Consents: stewardtest.DefaultConsents(env.Decl)}
}

// wantError fails t unless err has code and message.
func wantError(t *testing.T, what string, err error, code, message string) {
	t.Helper()
	if steward.ErrorCode(err) != code || steward.ErrorMessage(err) != message {
		t.Fatalf("%s: err = %v, want %s %q", what, err, code, message)
	}
}

func TestWeChatRegisterAndSignIn(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			fake := &wechat.Fake{}
			env := stewardtest.New(t, engine, stewardtest.Options{WeChat: fake})
			ctx := context.Background()

			// A client-supplied wechat_id is refused before anything is spent.
			code := phoneCode(t, env, wechatPhone)
			r := registration(env, wechatPhone, code, "")
			r.Fields["wechat_id"] = []byte(`"` + weiUnionID + `"`)
			_, err := env.Service.Register(ctx, r)
			wantError(t, "client wechat_id", err, steward.EINVALID, "wechat_id comes only from WeChat authorization")

			// Phone + WeChat code: bound to the UnionID. The phone code refused
			// above was not spent.
			reg, err := env.Service.Register(ctx, registration(env, wechatPhone, code, fake.Issue(weiOpenID, weiUnionID)))
			if err != nil {
				t.Fatalf("register: %v", err)
			}
			me, err := env.Service.Me(stewardtest.Subject(reg.SubjectID))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(me.Fields["wechat_id"]), `"`+weiUnionID+`"`; got != want {
				t.Errorf("wechat_id = %s, want %s", got, want)
			}
			if got, want := string(me.Fields["phone"]), `"`+wechatPhone+`"`; got != want {
				t.Errorf("phone = %s, want %s", got, want)
			}

			// A new WeChat code signs the same subject in.
			signedIn, err := env.Service.SignInWeChat(ctx, fake.Issue(weiOpenID, weiUnionID))
			if err != nil {
				t.Fatalf("sign in: %v", err)
			}
			if signedIn.SubjectID != reg.SubjectID {
				t.Errorf("signed in as %s, want %s", signedIn.SubjectID, reg.SubjectID)
			}
			if a, err := env.Service.Authenticate(ctx, signedIn.Token); err != nil || a.ID != reg.SubjectID {
				t.Errorf("Authenticate(new token) = %+v, %v", a, err)
			}
			if want := env.Clock.Now().UTC().Truncate(time.Microsecond).Add(30 * 24 * time.Hour); !signedIn.ExpiresAt.Equal(want) {
				t.Errorf("expires at %s, want %s", signedIn.ExpiresAt, want)
			}
			var signIns []string
			env.Store.Read(ctx, func(tx steward.Tx) error {
				entries, err := tx.AuditBySubject(ctx, reg.SubjectID)
				for _, e := range entries {
					if e.Action == steward.AuditSignIn {
						signIns = append(signIns, e.ActorKind+":"+e.ActorID+" "+e.Detail)
					}
				}
				return err
			})
			if want := []string{"subject:" + reg.SubjectID + " method=wechat"}; fmt.Sprint(signIns) != fmt.Sprint(want) {
				t.Errorf("sign-in audit = %q, want %q", signIns, want)
			}

			// A code is single-use.
			used := fake.Issue(weiOpenID, weiUnionID)
			if _, err := env.Service.SignInWeChat(ctx, used); err != nil {
				t.Fatal(err)
			}
			_, err = env.Service.SignInWeChat(ctx, used)
			wantError(t, "used code", err, steward.EUNAUTHORIZED,
				"the WeChat authorization code is not valid, has expired or was used already; authorize again in WeChat")

			// A WeChat account nobody bound.
			_, err = env.Service.SignInWeChat(ctx, fake.Issue(fangOpenID, ""))
			wantError(t, "unbound", err, steward.ENOTFOUND, "no account is bound to this WeChat account; register with your phone number")

			// A second account with the same WeChat account: refused, and its
			// phone code stays unspent, so it can register without WeChat.
			code2 := phoneCode(t, env, "+8613900139000")
			_, err = env.Service.Register(ctx, registration(env, "+8613900139000", code2, fake.Issue(weiOpenID, weiUnionID)))
			wantError(t, "second registration", err, steward.ECONFLICT, "this WeChat account is bound to an account already; sign in with WeChat instead")
			reg2, err := env.Service.Register(ctx, registration(env, "+8613900139000", code2, ""))
			if err != nil {
				t.Fatalf("register without WeChat after the conflict: %v", err)
			}
			_, err = env.Service.BindWeChat(stewardtest.Subject(reg2.SubjectID), fake.Issue(weiOpenID, weiUnionID))
			wantError(t, "second binding", err, steward.ECONFLICT, "this WeChat account is bound to another account already")

			// Neither id is in storage in plaintext (SQLite files, or pg_dump).
			data := storageBytes(t, env)
			for _, pi := range []string{weiOpenID, weiUnionID, fangOpenID} {
				if bytes.Contains(data, []byte(pi)) {
					t.Errorf("storage holds %q in plaintext", pi)
				}
			}
		})
	}
}

func TestWeChatBind(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			fake := &wechat.Fake{}
			env := stewardtest.New(t, engine, stewardtest.Options{WeChat: fake})
			ctx := context.Background()
			reg := env.Register(t, wechatPhone, nil)
			sub := stewardtest.Subject(reg.SubjectID)

			// Clients cannot write wechat_id, nor delete it behind the binding's back.
			for _, v := range []string{`"` + fangOpenID + `"`, `null`} {
				_, err := env.Service.UpdateMe(sub, steward.FieldValues{"wechat_id": json.RawMessage(v)})
				wantError(t, "UpdateMe wechat_id "+v, err, steward.EINVALID, "wechat_id comes only from WeChat authorization")
			}

			_, err := env.Service.BindWeChat(sub, "never-issued")
			wantError(t, "bad code", err, steward.EFORBIDDEN,
				"the WeChat authorization code is not valid, has expired or was used already; authorize again in WeChat")
			_, err = env.Service.BindWeChat(stewardtest.Ctx(steward.Actor{Kind: steward.ActorAnon}), fake.Issue(fangOpenID, ""))
			wantError(t, "anonymous", err, steward.EUNAUTHORIZED, "sign in as the subject to do this")

			// An app with OpenIDs only: stored as the OpenID.
			p, err := env.Service.BindWeChat(sub, fake.Issue(fangOpenID, ""))
			if err != nil {
				t.Fatalf("bind: %v", err)
			}
			if got, want := string(p.Fields["wechat_id"]), `"`+fangOpenID+`"`; got != want {
				t.Errorf("wechat_id = %s, want %s", got, want)
			}
			// Binding again is a no-op; once the app has a UnionID, the account is
			// still found by its OpenID.
			if _, err := env.Service.BindWeChat(sub, fake.Issue(fangOpenID, "uWx_lifang_union")); err != nil {
				t.Fatalf("bind again: %v", err)
			}
			si, err := env.Service.SignInWeChat(ctx, fake.Issue(fangOpenID, "uWx_lifang_union"))
			if err != nil || si.SubjectID != reg.SubjectID {
				t.Fatalf("sign in = %+v, %v; want subject %s", si, err, reg.SubjectID)
			}
			// Another WeChat account for the same subject is refused.
			_, err = env.Service.BindWeChat(sub, fake.Issue(weiOpenID, weiUnionID))
			wantError(t, "another WeChat", err, steward.ECONFLICT, "your account is bound to another WeChat account already")

			// Cancellation removes the binding with the other indexes.
			if _, err := env.Service.SendCancellationCode(sub); err != nil {
				t.Fatal(err)
			}
			if _, err := env.Service.CancelAccount(sub, env.LastCode(t, wechatPhone)); err != nil {
				t.Fatal(err)
			}
			_, err = env.Service.SignInWeChat(ctx, fake.Issue(fangOpenID, ""))
			wantError(t, "after cancellation", err, steward.ENOTFOUND, "no account is bound to this WeChat account; register with your phone number")
		})
	}
}

func TestWeChatUnavailable(t *testing.T) {
	ctx := context.Background()
	t.Run("not configured", func(t *testing.T) {
		env := stewardtest.New(t, "sqlite", stewardtest.Options{})
		_, err := env.Service.SignInWeChat(ctx, "061aBc")
		wantError(t, "sign in", err, steward.EUNAVAILABLE, "WeChat sign-in is not configured")
		code := phoneCode(t, env, wechatPhone)
		_, err = env.Service.Register(ctx, registration(env, wechatPhone, code, "061aBc"))
		wantError(t, "register", err, steward.EUNAVAILABLE, "WeChat sign-in is not configured")
		reg, err := env.Service.Register(ctx, registration(env, wechatPhone, code, ""))
		if err != nil {
			t.Fatalf("register without WeChat: %v", err)
		}
		_, err = env.Service.BindWeChat(stewardtest.Subject(reg.SubjectID), "061aBc")
		wantError(t, "bind", err, steward.EUNAVAILABLE, "WeChat sign-in is not configured")
	})
	t.Run("WeChat down", func(t *testing.T) {
		fake := &wechat.Fake{Err: steward.Errorf(steward.EUNAVAILABLE, "connection refused")}
		env := stewardtest.New(t, "sqlite", stewardtest.Options{WeChat: fake})
		code := phoneCode(t, env, wechatPhone)
		_, err := env.Service.Register(ctx, registration(env, wechatPhone, code, fake.Issue(weiOpenID, "")))
		wantError(t, "register", err, steward.EUNAVAILABLE, "WeChat does not answer; try again later")
		// The phone code survives WeChat's outage.
		fake.Err = nil
		if _, err := env.Service.Register(ctx, registration(env, wechatPhone, code, fake.Issue(weiOpenID, ""))); err != nil {
			t.Fatalf("register once WeChat is back: %v", err)
		}
		_, err = env.Service.SignInWeChat(ctx, "")
		wantError(t, "empty code", err, steward.EINVALID, "the WeChat authorization code is required")
	})
}

func TestWeChatIdentityHidesIDs(t *testing.T) {
	tests := []struct {
		id   steward.WeChatIdentity
		want string
	}{
		{steward.WeChatIdentity{OpenID: weiOpenID, UnionID: weiUnionID}, "WeChatIdentity{openid:redacted unionid:redacted}"},
		{steward.WeChatIdentity{OpenID: weiOpenID}, "WeChatIdentity{openid:redacted unionid:absent}"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			var logs bytes.Buffer
			slog.New(slog.NewJSONHandler(&logs, nil)).Info("exchange", "who", tt.id)
			for _, s := range []string{tt.id.String(), fmt.Sprint(tt.id), fmt.Sprintf("%v %+v %#v %s", tt.id, tt.id, tt.id, tt.id), logs.String()} {
				if bytes.Contains([]byte(s), []byte(weiOpenID)) || bytes.Contains([]byte(s), []byte(weiUnionID)) {
					t.Errorf("%q shows a WeChat id", s)
				}
			}
			if got := tt.id.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
