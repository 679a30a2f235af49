package steward

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// CodeSent describes a one-time code sent; the code itself only travels by SMS.
type CodeSent struct {
	Purpose   string    `json:"purpose"`
	ExpiresAt time.Time `json:"expires_at"`
	Channel   string    `json:"channel"`
}

func (s *Service) codeHash(purpose string, target []byte, subjectID, code string) []byte {
	return s.keys.HashSecret("otp", purpose+"\x00"+hex.EncodeToString(target)+"\x00"+subjectID+"\x00"+code)
}

// SendCode sends a one-time code for registration (CodeRegister) or sign-in
// (CodeSignIn) to phone by SMS through the outbox. It returns EINVALID for a number
// that is not valid or an unknown purpose, and ETOOMANY when the number or the
// client address has asked too often (OTPPolicy). Whether an account exists is not
// revealed: a code is sent either way and spending it tells.
func (s *Service) SendCode(ctx context.Context, phone, purpose string) (*CodeSent, error) {
	if purpose != CodeRegister && purpose != CodeSignIn {
		return nil, Errorf(EINVALID, "purpose must be %s or %s", CodeRegister, CodeSignIn)
	}
	e164, err := s.normalizePhone(phone)
	if err != nil {
		return nil, err
	}
	if !s.smsCapable(e164) {
		return nil, Errorf(EINVALID, "phone must be a mobile number that can receive SMS; fixed lines and service numbers cannot")
	}
	target := s.keys.BlindIndex("phone", e164)
	return s.sendCode(ctx, purpose, target, "", e164)
}

func (s *Service) sendCode(ctx context.Context, purpose string, target []byte, subjectID, e164 string) (*CodeSent, error) {
	now := s.Now()
	code := newCode()
	c := &OneTimeCode{ID: NewID(), Purpose: purpose, Target: target, SubjectID: subjectID, Client: ActorFrom(ctx).Address,
		CreatedAt: now, ExpiresAt: now.Add(s.otp.TTL)}
	c.CodeHash = s.codeHash(purpose, target, subjectID, code)
	err := s.store.Write(ctx, func(tx Tx) error {
		byTarget, byClient, latest, err := tx.CountCodes(ctx, now.Add(-time.Hour), target, c.Client, purpose)
		if err != nil {
			return err
		}
		if byTarget >= s.otp.PerPhonePerHour {
			return Errorf(ETOOMANY, "too many codes were sent to this number in the last hour; try again later")
		}
		// The address limit guards sign-up and sign-in from floods; a signed-in
		// subject's own codes (cancellation, request verification) are limited per
		// number only, so strangers behind the same carrier NAT cannot stop anyone
		// exercising their rights.
		if c.Client != "" && subjectID == "" && byClient >= s.otp.PerClientPerHour {
			return Errorf(ETOOMANY, "too many codes were asked from this address in the last hour; try again later")
		}
		if !latest.IsZero() && now.Sub(latest) < s.otp.ResendInterval {
			wait := s.otp.ResendInterval - now.Sub(latest)
			return Errorf(ETOOMANY, "a code was sent to this number moments ago; wait %d seconds before asking again", int(wait.Seconds()+0.999))
		}
		if err := tx.CreateCode(ctx, c); err != nil {
			return err
		}
		body := codeMessage(s.decl.Controller.Name, purpose, code, int(s.otp.TTL.Minutes()))
		if err := s.enqueue(ctx, tx, "sms", "otp", subjectID, MessagePayload{To: e164, Body: body}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditCodeSent, subjectID, "", nil, "purpose="+purpose))
	})
	if err != nil {
		return nil, err
	}
	s.notify()
	return &CodeSent{Purpose: purpose, ExpiresAt: c.ExpiresAt, Channel: "sms"}, nil
}

// codeMessage is the SMS text for a one-time code. It names what the code does,
// so that nobody can be talked into handing over a cancellation code as if it
// were a sign-in code.
func codeMessage(controller, purpose, code string, minutes int) string {
	what := map[string]string{
		CodeRegister: "registration",
		CodeSignIn:   "sign-in",
		CodeCancel:   "ACCOUNT CANCELLATION: entering this code cancels your account and erases your data;",
		CodeVerify:   "privacy request verification",
	}[purpose]
	return fmt.Sprintf("%s %s code is %s. It expires in %d minutes. Never share it; if you did not ask for it, ignore this message.", controller, what, code, minutes)
}

// spendCode checks code against c in tx: a wrong code uses an attempt (EFORBIDDEN,
// ETOOMANY once the attempts are spent); an expired or spent code is EFORBIDDEN.
// On success the code is consumed. The attempt count is written even on failure,
// so the caller must commit the transaction whatever spendCode returns.
func (s *Service) spendCode(ctx context.Context, tx Tx, c *OneTimeCode, code string) error {
	now := s.Now()
	if err := s.codeState(c, now); err != nil {
		return err
	}
	if !s.codeMatches(c, code) {
		c.Attempts++
		if err := tx.UpdateCode(ctx, c); err != nil {
			return err
		}
		if c.Attempts >= s.otp.MaxAttempts {
			return Errorf(ETOOMANY, "too many wrong codes; ask for a new one")
		}
		left := s.otp.MaxAttempts - c.Attempts
		if left == 1 {
			return Errorf(EFORBIDDEN, "the one-time code is not valid; 1 attempt left")
		}
		return Errorf(EFORBIDDEN, "the one-time code is not valid; %d attempts left", left)
	}
	c.ConsumedAt = now
	return tx.UpdateCode(ctx, c)
}

// codeState returns why c can no longer be spent at now, or nil.
func (s *Service) codeState(c *OneTimeCode, now time.Time) error {
	switch {
	case !c.ConsumedAt.IsZero():
		return Errorf(EFORBIDDEN, "the one-time code was used already; ask for a new one")
	case now.After(c.ExpiresAt):
		return Errorf(EFORBIDDEN, "the one-time code has expired; ask for a new one")
	case c.Attempts >= s.otp.MaxAttempts:
		return Errorf(ETOOMANY, "too many wrong codes; ask for a new one")
	}
	return nil
}

// codeMatches compares code with c's hash in constant time.
func (s *Service) codeMatches(c *OneTimeCode, code string) bool {
	want := s.codeHash(c.Purpose, c.Target, c.SubjectID, code)
	return subtle.ConstantTimeCompare(want, c.CodeHash) == 1
}

// codeFault tells, without writing, whether spending code on c would fail.
func (s *Service) codeFault(c *OneTimeCode, code string) error {
	if err := s.codeState(c, s.Now()); err != nil {
		return err
	}
	if !s.codeMatches(c, code) {
		return Errorf(EFORBIDDEN, "the one-time code is not valid")
	}
	return nil
}

// verifyPhoneCode spends code for purpose on the number whose blind index is
// target, in its own transaction so a wrong guess is counted whatever happens next.
func (s *Service) verifyPhoneCode(ctx context.Context, purpose string, target []byte, code string, then func(Tx) error) error {
	return s.verifyCode(ctx, code, "no one-time code was sent to this number; ask for one first",
		func(tx Tx) (*OneTimeCode, error) { return tx.LatestCode(ctx, purpose, target) }, then)
}

// verifyCode spends code against the code latest finds, in a transaction of its
// own that commits the attempt count whether or not the code matches. If the
// code matches and then is not nil, then runs in the same transaction, so what
// the code was for happens together with its spending or not at all: an error
// from then rolls back the spending too and is returned.
func (s *Service) verifyCode(ctx context.Context, code, none string, latest func(Tx) (*OneTimeCode, error), then func(Tx) error) error {
	var spendErr error
	err := s.store.Write(ctx, func(tx Tx) error {
		c, err := latest(tx)
		if ErrorCode(err) == ENOTFOUND {
			spendErr = Errorf(EFORBIDDEN, "%s", none)
			return nil
		} else if err != nil {
			return err
		}
		spendErr = s.spendCode(ctx, tx, c, code)
		if spendErr == nil && then != nil {
			return then(tx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return spendErr
}

// SignedIn is the result of a registration or sign-in.
type SignedIn struct {
	SubjectID string    `json:"subject_id"`
	Token     string    `json:"token"` // bearer token; shown once
	ExpiresAt time.Time `json:"expires_at"`
}

// SignIn exchanges a one-time code sent for CodeSignIn for a session token.
// EFORBIDDEN for a wrong code, ENOTFOUND when no account has this number.
func (s *Service) SignIn(ctx context.Context, phone, code string) (*SignedIn, error) {
	e164, err := s.normalizePhone(phone)
	if err != nil {
		return nil, err
	}
	target := s.keys.BlindIndex("phone", e164)
	// The code is spent in the transaction that creates the session: a client
	// that hangs up in between must not be left with a spent code and no session.
	var out *SignedIn
	err = s.verifyPhoneCode(ctx, CodeSignIn, target, code, func(tx Tx) error {
		id, err := tx.LookupIndex(ctx, "phone", target)
		if err != nil {
			return err
		}
		out, err = s.newSession(ctx, tx, id)
		if err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(WithActor(ctx, Actor{Kind: ActorSubject, ID: id}), AuditSignIn, id, "", nil, ""))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Service) newSession(ctx context.Context, tx Tx, subjectID string) (*SignedIn, error) {
	token := newToken(SessionTokenPrefix)
	now := s.Now()
	sess := &Session{ID: NewID(), TokenHash: s.keys.HashSecret("session", token), SubjectID: subjectID, CreatedAt: now, ExpiresAt: now.Add(s.ttl)}
	if err := tx.CreateSession(ctx, sess); err != nil {
		return nil, err
	}
	return &SignedIn{SubjectID: subjectID, Token: token, ExpiresAt: sess.ExpiresAt}, nil
}

// Authenticate resolves a bearer token to its actor. Subject sessions must be
// live and their subject active; API tokens must be live. Anything else is
// EUNAUTHORIZED, with the same message, so tokens cannot be probed.
func (s *Service) Authenticate(ctx context.Context, token string) (Actor, error) {
	unauth := Errorf(EUNAUTHORIZED, "the bearer token is not valid")
	now := s.Now()
	switch {
	case strings.HasPrefix(token, SessionTokenPrefix):
		hash := s.keys.HashSecret("session", token)
		a, gen, ok := s.auth.get(hash, now)
		if ok {
			return a, nil
		}
		var expires time.Time
		err := s.store.Read(ctx, func(tx Tx) error {
			sess, err := tx.SessionByHash(ctx, hash)
			if err != nil {
				return err
			}
			if !sess.RevokedAt.IsZero() || now.After(sess.ExpiresAt) {
				return unauth
			}
			subj, err := tx.GetSubject(ctx, sess.SubjectID)
			if err != nil {
				return err
			}
			if subj.Status != SubjectActive {
				return unauth
			}
			a = Actor{Kind: ActorSubject, ID: sess.SubjectID}
			expires = sess.ExpiresAt
			return nil
		})
		if err != nil {
			if c := ErrorCode(err); c == ENOTFOUND || c == EUNAUTHORIZED {
				return Actor{}, unauth
			}
			return Actor{}, err
		}
		s.auth.put(hash, a, cacheUntil(now, expires), gen)
		return a, nil
	case strings.HasPrefix(token, APITokenPrefix):
		hash := s.keys.HashSecret("api", token)
		cached, gen, ok := s.auth.get(hash, now)
		if ok {
			return cached, nil
		}
		var k *APIToken
		err := s.store.Read(ctx, func(tx Tx) (err error) {
			k, err = tx.APITokenByHash(ctx, hash)
			return err
		})
		if err != nil {
			if ErrorCode(err) == ENOTFOUND {
				return Actor{}, unauth
			}
			return Actor{}, err
		}
		if !k.RevokedAt.IsZero() || (!k.ExpiresAt.IsZero() && now.After(k.ExpiresAt)) {
			return Actor{}, unauth
		}
		a := Actor{Kind: ActorStaff, ID: k.Name, Roles: k.Roles}
		if k.Kind == TokenApp {
			a = Actor{Kind: ActorApp, ID: k.AppID}
		}
		s.auth.put(hash, a, cacheUntil(now, k.ExpiresAt), gen)
		return a, nil
	}
	return Actor{}, unauth
}

// CreateAPIToken creates a staff or client-app token and returns it with its
// secret, shown only this once. Only the system (the CLI) or an admin may call it.
// EINVALID for an undeclared app, an unknown role or a bad kind.
func (s *Service) CreateAPIToken(ctx context.Context, kind, name string, roles []string, ttl time.Duration) (*APIToken, string, error) {
	a := ActorFrom(ctx)
	if a.Kind != ActorSystem && !a.HasRole(RoleAdmin) {
		return nil, "", Errorf(EFORBIDDEN, "only an admin may create tokens")
	}
	k := &APIToken{ID: NewID(), Kind: kind, Name: name, CreatedAt: s.Now()}
	switch kind {
	case TokenApp:
		if _, ok := s.decl.ClientApp(name); !ok {
			return nil, "", Errorf(EINVALID, "client app %q is not declared", name)
		}
		k.AppID = name
	case TokenStaff:
		if name == "" {
			return nil, "", Errorf(EINVALID, "a staff token needs a name")
		}
		if len(roles) == 0 {
			return nil, "", Errorf(EINVALID, "a staff token needs at least one role")
		}
		for _, r := range roles {
			if r != RoleSupport && r != RolePrivacyOfficer && r != RoleAuditor && r != RoleAdmin {
				return nil, "", Errorf(EINVALID, "unknown role %q; roles are support, privacy_officer, auditor, admin", r)
			}
		}
		k.Roles = roles
	default:
		return nil, "", Errorf(EINVALID, "token kind must be %s or %s", TokenApp, TokenStaff)
	}
	if ttl > 0 {
		k.ExpiresAt = k.CreatedAt.Add(ttl)
	}
	secret := newToken(APITokenPrefix)
	k.TokenHash = s.keys.HashSecret("api", secret)
	err := s.store.Write(ctx, func(tx Tx) error {
		if err := tx.CreateAPIToken(ctx, k); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditTokenCreate, "", "", nil, "token="+k.ID+" kind="+kind+" name="+name))
	})
	if err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

// RevokeAPIToken revokes a token by id at once. System or admin only.
func (s *Service) RevokeAPIToken(ctx context.Context, id string) error {
	a := ActorFrom(ctx)
	if a.Kind != ActorSystem && !a.HasRole(RoleAdmin) {
		return Errorf(EFORBIDDEN, "only an admin may revoke tokens")
	}
	defer s.auth.clear()
	return s.store.Write(ctx, func(tx Tx) error {
		if err := tx.RevokeAPIToken(ctx, id, s.Now()); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditTokenRevoke, "", "", nil, "token="+id))
	})
}

// ListAPITokens lists tokens without their secrets. System or admin only.
func (s *Service) ListAPITokens(ctx context.Context) ([]APIToken, error) {
	a := ActorFrom(ctx)
	if a.Kind != ActorSystem && !a.HasRole(RoleAdmin) {
		return nil, Errorf(EFORBIDDEN, "only an admin may list tokens")
	}
	var out []APIToken
	err := s.store.Read(ctx, func(tx Tx) (err error) { out, err = tx.ListAPITokens(ctx); return err })
	return out, err
}
