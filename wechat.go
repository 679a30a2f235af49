package steward

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
)

// WeChatField is the declared field that holds a subject's WeChat account id. Its
// value comes only from WeChat authorization (policy §2.1), never from a client.
const WeChatField = "wechat_id"

// wechatIndexKind is the blind index kind of WeChat account ids.
const wechatIndexKind = "wechat"

// WeChatIdentity is the WeChat account an authorization code was issued for: the
// OpenID (unique per app) and, when the app belongs to a WeChat Open Platform
// account, the UnionID (unique across the controller's apps). Both are personal
// information, so a WeChatIdentity never prints or logs them.
type WeChatIdentity struct {
	OpenID  string
	UnionID string
}

// ID returns the id Steward stores for the account: the UnionID when WeChat gave
// one, else the OpenID.
func (w WeChatIdentity) ID() string {
	if w.UnionID != "" {
		return w.UnionID
	}
	return w.OpenID
}

// String says which ids are present, never their values.
func (w WeChatIdentity) String() string {
	return "WeChatIdentity{openid:" + present(w.OpenID) + " unionid:" + present(w.UnionID) + "}"
}

// GoString is String, so that %#v hides the ids too.
func (w WeChatIdentity) GoString() string { return w.String() }

// LogValue logs which ids are present, never their values.
func (w WeChatIdentity) LogValue() slog.Value {
	return slog.GroupValue(slog.String("openid", present(w.OpenID)), slog.String("unionid", present(w.UnionID)))
}

func present(s string) string {
	if s == "" {
		return "absent"
	}
	return "redacted"
}

// WeChatProvider exchanges a WeChat OAuth2 authorization code for the WeChat
// account it was issued for. The wechat package holds the real one (the WeChat
// open API) and a test double. Exchange is called by the Service only; a code is
// single-use. It returns EUNAUTHORIZED for a code that is not valid, has expired or
// was used, and EUNAVAILABLE when WeChat does not answer or refuses the app's
// credentials.
type WeChatProvider interface {
	Exchange(ctx context.Context, code string) (WeChatIdentity, error)
}

// maxWeChatCode bounds an authorization code before it is sent anywhere; WeChat's
// are 32 characters.
const maxWeChatCode = 256

// checkWeChatCode is the check made before a code is spent: a provider is
// configured and the code is plausible.
func (s *Service) checkWeChatCode(code string) error {
	if s.wechat == nil {
		return Errorf(EUNAVAILABLE, "WeChat sign-in is not configured")
	}
	if strings.TrimSpace(code) == "" {
		return Errorf(EINVALID, "the WeChat authorization code is required")
	}
	if len(code) > maxWeChatCode {
		return Errorf(EINVALID, "the WeChat authorization code is longer than %d characters", maxWeChatCode)
	}
	return nil
}

// exchangeWeChat spends code with the provider. Anything but EUNAUTHORIZED from
// the provider becomes EUNAVAILABLE with a fixed message and the cause kept for
// the log, so a provider's text never reaches a user.
func (s *Service) exchangeWeChat(ctx context.Context, code string) (WeChatIdentity, error) {
	if err := s.checkWeChatCode(code); err != nil {
		return WeChatIdentity{}, err
	}
	id, err := s.wechat.Exchange(ctx, code)
	switch ErrorCode(err) {
	case "":
	case EUNAUTHORIZED:
		return WeChatIdentity{}, WrapError(EUNAUTHORIZED, "the WeChat authorization code is not valid, has expired or was used already; authorize again in WeChat", err)
	default:
		return WeChatIdentity{}, WrapError(EUNAVAILABLE, "WeChat does not answer; try again later", err)
	}
	if id.OpenID == "" {
		return WeChatIdentity{}, Errorf(EUNAVAILABLE, "WeChat answered without an account id; try again later")
	}
	return id, nil
}

// wechatIndexes returns the blind indexes to look w up by: the UnionID's first,
// then the OpenID's, so that an account registered before the app joined an Open
// Platform account (OpenID stored) is still found once WeChat sends a UnionID.
func (s *Service) wechatIndexes(w WeChatIdentity) [][]byte {
	var out [][]byte
	if w.UnionID != "" {
		out = append(out, s.keys.BlindIndex(wechatIndexKind, w.UnionID))
	}
	return append(out, s.keys.BlindIndex(wechatIndexKind, w.OpenID))
}

// lookupWeChat returns the subject bound to w, or ENOTFOUND.
func (s *Service) lookupWeChat(ctx context.Context, tx Tx, w WeChatIdentity) (string, error) {
	for _, ix := range s.wechatIndexes(w) {
		id, err := tx.LookupIndex(ctx, wechatIndexKind, ix)
		if ErrorCode(err) == ENOTFOUND {
			continue
		}
		return id, err
	}
	return "", Errorf(ENOTFOUND, "no account is bound to this WeChat account; register with your phone number")
}

// wechatValue returns the field value stored for w, checked against the
// declaration like any other field value.
func (s *Service) wechatValue(w WeChatIdentity, consented func(purpose string) bool) (json.RawMessage, error) {
	raw, _ := json.Marshal(w.ID())
	v, err := s.checkFields(FieldValues{WeChatField: raw}, consented)
	if err != nil {
		return nil, err
	}
	return v[WeChatField], nil
}

// checkWeChatDeclared reports, before a code is spent, whether the declaration
// collects wechat_id under a purpose the subject consented to (EINVALID if not).
func (s *Service) checkWeChatDeclared(consented func(purpose string) bool) error {
	if _, ok := s.decl.Field(WeChatField); !ok {
		return Errorf(EINVALID, "the declaration does not collect %s, so WeChat sign-in is not offered", WeChatField)
	}
	_, err := s.checkFields(FieldValues{WeChatField: json.RawMessage(`"placeholder"`)}, consented)
	return err
}

// SignInWeChat exchanges a WeChat authorization code for a session token of the
// subject bound to that WeChat account (policy §2.1). Anyone may call it. It
// returns EINVALID for an empty code, EUNAUTHORIZED for a code that is not valid,
// has expired or was used, ENOTFOUND when no account is bound to the WeChat
// account, and EUNAVAILABLE when WeChat sign-in is not configured or WeChat does
// not answer. The sign-in is audited as subject.sign_in with detail method=wechat.
func (s *Service) SignInWeChat(ctx context.Context, code string) (*SignedIn, error) {
	w, err := s.exchangeWeChat(ctx, code)
	if err != nil {
		return nil, err
	}
	var out *SignedIn
	err = s.store.Write(ctx, func(tx Tx) error {
		id, err := s.lookupWeChat(ctx, tx, w)
		if err != nil {
			return err
		}
		if out, err = s.newSession(ctx, tx, id); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(WithActor(ctx, Actor{Kind: ActorSubject, ID: id}), AuditSignIn, id, "", nil, "method=wechat"))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

type wechatBindKey struct{}

// BindWeChat binds the WeChat account a code was issued for to the signed-in
// subject, so that it can sign in with WeChat from then on; it stores wechat_id
// and returns the profile. Binding the WeChat account already bound to this
// subject changes nothing. It returns EUNAUTHORIZED when not signed in as a
// subject, EINVALID for an empty code or when wechat_id is not collected under a
// purpose consented to, EFORBIDDEN for a code that is not valid, has expired or was
// used (not EUNAUTHORIZED: the session is fine), ECONFLICT when the WeChat account
// is bound to another subject or this subject has another WeChat account bound,
// and EUNAVAILABLE when WeChat sign-in is not configured or WeChat does not answer.
func (s *Service) BindWeChat(ctx context.Context, code string) (*Profile, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkWeChatCode(code); err != nil {
		return nil, err
	}
	var states []ConsentState
	if err := s.store.Read(ctx, func(tx Tx) (err error) { states, err = tx.ConsentStates(ctx, id); return err }); err != nil {
		return nil, err
	}
	consented := func(p string) bool {
		return slices.ContainsFunc(states, func(st ConsentState) bool { return st.Purpose == p && st.Granted })
	}
	if err := s.checkWeChatDeclared(consented); err != nil {
		return nil, err
	}
	w, err := s.exchangeWeChat(ctx, code)
	if ErrorCode(err) == EUNAUTHORIZED {
		return nil, &Error{Code: EFORBIDDEN, Message: ErrorMessage(err), Err: err}
	} else if err != nil {
		return nil, err
	}
	value, err := s.wechatValue(w, consented)
	if err != nil {
		return nil, err
	}
	key, err := s.keys.SubjectKey(ctx, id)
	if err != nil {
		return nil, err
	}
	ct, err := key.Seal(WeChatField, value)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	err = s.store.Write(ctx, func(tx Tx) error {
		owner, err := s.lookupWeChat(ctx, tx, w)
		switch {
		case err == nil && owner == id:
			return nil
		case err == nil:
			return Errorf(ECONFLICT, "this WeChat account is bound to another account already")
		case ErrorCode(err) != ENOTFOUND:
			return err
		}
		if have, err := tx.GetFields(ctx, id, []string{WeChatField}); err != nil {
			return err
		} else if len(have) > 0 {
			return Errorf(ECONFLICT, "your account is bound to another WeChat account already")
		}
		if err := tx.PutIndex(ctx, wechatIndexKind, s.keys.BlindIndex(wechatIndexKind, w.ID()), id); err != nil {
			if ErrorCode(err) == ECONFLICT {
				return Errorf(ECONFLICT, "this WeChat account is bound to another account already")
			}
			return err
		}
		if err := tx.PutFields(ctx, []SealedField{{SubjectID: id, Field: WeChatField, Value: ct, UpdatedAt: now}}); err != nil {
			return err
		}
		if err := s.runUpdateHooks(context.WithValue(ctx, wechatBindKey{}, true), tx, id, []string{WeChatField}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditUpdate, id, "", []string{WeChatField}, "method=wechat"))
	})
	if err != nil {
		return nil, err
	}
	return s.Me(ctx)
}

// guardWeChatField is an UpdateHook refusing any change of wechat_id but a
// binding: a value a client typed would let anyone claim someone else's WeChat
// account, and deleting it would leave the binding in force unseen.
func guardWeChatField(ctx context.Context, _ Tx, _ string, fields []string) error {
	if slices.Contains(fields, WeChatField) && ctx.Value(wechatBindKey{}) == nil {
		return Errorf(EINVALID, "%s comes only from WeChat authorization", WeChatField)
	}
	return nil
}
