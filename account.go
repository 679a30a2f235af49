package steward

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
)

// Registration is what a person submits to open an account (policy §2.1, P1).
type Registration struct {
	Phone    string          `json:"phone"`
	Code     string          `json:"code"`     // one-time code sent for CodeRegister
	Fields   FieldValues     `json:"fields"`   // nickname, birthday, gender, photo, device ids…
	Consents []ConsentChoice `json:"consents"` // every required purpose, plus optional ones chosen
	// WeChatCode, optional, is a WeChat OAuth2 authorization code: the account is
	// bound to that WeChat account (wechat_id) and can sign in with WeChat. The
	// phone number and its code are required all the same: the real-name rules
	// need the number (policy §2.1).
	WeChatCode string `json:"wechat_code,omitempty"`
}

// Registered is the result of a registration.
type Registered struct {
	SignedIn
	Receipts []ConsentReceipt `json:"consent_receipts"`
}

// Register opens an account. It checks, before anything is stored: the phone
// number (EINVALID), the consents (every required purpose, separate consent for
// sensitive PI: EINVALID), the fields (declared, covered by a consented purpose,
// valid for their kind: EINVALID, ETOOLARGE, EUNSUPPORTED), the minimum age in the
// legal time zone (EFORBIDDEN, policy §7); then it spends the one-time code
// (EFORBIDDEN, ETOOMANY) and creates the subject: ECONFLICT if the number is
// registered already, in whatever format it was written.
//
// wechat_id is never taken from Fields (EINVALID): it comes only from WeChatCode,
// exchanged after every check above and before the phone code is spent, so a
// failure on either side costs the person as little as possible: EUNAVAILABLE when
// WeChat sign-in is not configured or WeChat does not answer, EUNAUTHORIZED for a
// WeChat code that is not valid, has expired or was used, ECONFLICT when that
// WeChat account is bound to an account already (the phone code stays unspent).
func (s *Service) Register(ctx context.Context, r Registration) (*Registered, error) {
	e164, err := s.normalizePhone(r.Phone)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(r.Code) == "" {
		return nil, Errorf(EINVALID, "code is required")
	}
	granted := map[string]ConsentChoice{}
	for _, c := range r.Consents {
		if _, err := s.decl.CheckConsentChoice(c); err != nil {
			return nil, err
		}
		granted[c.Purpose] = c
	}
	var missing []string
	for _, p := range s.decl.RequiredPurposes() {
		if _, ok := granted[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, Errorf(EINVALID, "registration needs consent for the required purposes: %s", strings.Join(missing, ", "))
	}
	if _, ok := r.Fields[WeChatField]; ok {
		return nil, Errorf(EINVALID, "%s comes only from WeChat authorization", WeChatField)
	}
	if r.WeChatCode != "" {
		if err := s.checkWeChatCode(r.WeChatCode); err != nil {
			return nil, err
		}
		if err := s.checkWeChatDeclared(func(p string) bool { _, ok := granted[p]; return ok }); err != nil {
			return nil, err
		}
	}
	// A copy: the caller's map is the caller's (it may register from several goroutines).
	fields := maps.Clone(r.Fields)
	if fields == nil {
		fields = FieldValues{}
	}
	phoneJSON, _ := json.Marshal(e164)
	fields["phone"] = phoneJSON
	values, err := s.checkFields(fields, func(p string) bool { _, ok := granted[p]; return ok }, "phone")
	if err != nil {
		return nil, err
	}
	if s.decl.MinimumAge > 0 {
		raw, ok := values["birthday"]
		if !ok {
			return nil, Errorf(EINVALID, "birthday is required: registration is open from age %d", s.decl.MinimumAge)
		}
		var b string
		json.Unmarshal(raw, &b)
		bd, err := ParseBirthday(b)
		if err != nil {
			return nil, err
		}
		if err := CheckAge(bd, s.now(), s.decl.Location(), s.decl.MinimumAge); err != nil {
			return nil, err
		}
	}
	target := s.keys.BlindIndex("phone", e164)
	// One read answers both questions before anything is written: is the number
	// taken, and does the code match? Only a matching code for a free number goes
	// on to create the subject, whose transaction spends the code.
	var code *OneTimeCode
	if err := s.store.Read(ctx, func(tx Tx) error {
		if _, err := tx.LookupIndex(ctx, "phone", target); err == nil {
			return Errorf(ECONFLICT, "an account with this phone number exists already; sign in instead")
		} else if ErrorCode(err) != ENOTFOUND {
			return err
		}
		c, err := tx.LatestCode(ctx, CodeRegister, target)
		if err != nil && ErrorCode(err) != ENOTFOUND {
			return err
		}
		code = c
		return nil
	}); err != nil {
		// Spend an attempt first, so the conflict is only told to whoever holds the code.
		if verr := s.verifyPhoneCode(ctx, CodeRegister, target, r.Code, nil); verr != nil {
			return nil, verr
		}
		return nil, err
	}
	if code == nil || s.codeFault(code, r.Code) != nil {
		// The write path counts the wrong attempt and gives the precise error.
		if err := s.verifyPhoneCode(ctx, CodeRegister, target, r.Code, nil); err != nil {
			return nil, err
		}
		return nil, Errorf(ECONFLICT, "the one-time code changed while it was checked; try again")
	}
	var wechat []byte
	if r.WeChatCode != "" {
		w, err := s.exchangeWeChat(ctx, r.WeChatCode)
		if err != nil {
			return nil, err
		}
		if values[WeChatField], err = s.wechatValue(w, func(p string) bool { _, ok := granted[p]; return ok }); err != nil {
			return nil, err
		}
		if err := s.store.Read(ctx, func(tx Tx) error {
			_, err := s.lookupWeChat(ctx, tx, w)
			if err == nil {
				return Errorf(ECONFLICT, "this WeChat account is bound to an account already; sign in with WeChat instead")
			} else if ErrorCode(err) != ENOTFOUND {
				return err
			}
			return nil
		}); err != nil {
			return nil, err
		}
		wechat = s.keys.BlindIndex(wechatIndexKind, w.ID())
	}
	spend := func(tx Tx) error {
		// The code read above, unchanged and still the latest: one statement.
		if ok, err := tx.ConsumeCode(ctx, code, s.Now()); err != nil || ok {
			return err
		}
		c, err := tx.LatestCode(ctx, CodeRegister, target)
		if err != nil || c.ID != code.ID {
			return Errorf(ECONFLICT, "a newer one-time code was sent meanwhile; use the latest code")
		}
		return s.spendCode(ctx, tx, c, r.Code)
	}
	return s.createSubject(ctx, target, wechat, values, r.Consents, MethodRegistration, spend)
}

// checkFields validates values against the declaration: each field declared,
// writable, covered by at least one purpose for which consented reports a basis,
// and valid for its kind. It returns the canonical values. The values of the
// fields named in canonical are canonical already (the caller normalized them)
// and are only checked for declaration and purpose.
func (s *Service) checkFields(in FieldValues, consented func(purpose string) bool, canonical ...string) (FieldValues, error) {
	out := FieldValues{}
	for _, name := range in.Names() {
		f, ok := s.decl.Field(name)
		if !ok {
			return nil, Errorf(EINVALID, "field %s is not declared; Steward collects only declared fields", name)
		}
		covered := false
		for _, p := range f.Purposes {
			pp, _ := s.decl.Purpose(p)
			covered = covered || pp.LegalBasis != BasisConsent || consented(p)
		}
		if !covered {
			return nil, Errorf(EINVALID, "field %s is collected only for %s; consent for it was not given", name, strings.Join(f.Purposes, ", "))
		}
		if slices.Contains(canonical, name) {
			out[name] = in[name]
			continue
		}
		v, err := NormalizeFieldValue(f, in[name], s.decl.PhoneRegion, s.phone)
		if err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

// createSubject creates the subject with its key, sealed fields, consents and
// first session. spend, if not nil, runs first in the creating transaction (it
// spends the registration code), so the code and the account go together.
func (s *Service) createSubject(ctx context.Context, phoneIndex, wechatIndex []byte, values FieldValues, consents []ConsentChoice, method string, spend func(Tx) error) (*Registered, error) {
	id, key, err := s.keys.NewSubjectKey(ctx)
	if err != nil {
		return nil, err
	}
	keyID := key.KeyID()

	now := s.Now()
	sealed := make([]SealedField, 0, len(values))
	for _, name := range values.Names() {
		ct, err := key.Seal(name, values[name])
		if err != nil {
			return nil, err
		}
		sealed = append(sealed, SealedField{SubjectID: id, Field: name, Value: ct, UpdatedAt: now})
	}
	sctx := WithActor(ctx, Actor{Kind: ActorSubject, ID: id, Address: ActorFrom(ctx).Address})
	out := &Registered{}
	err = s.store.Write(ctx, func(tx Tx) error {
		if spend != nil {
			if err := spend(tx); err != nil {
				return err
			}
		}
		if err := tx.CreateSubject(ctx, &Subject{ID: id, Status: SubjectActive, Region: s.decl.DefaultRegion(), KeyID: keyID, CreatedAt: now}); err != nil {
			return err
		}
		if err := tx.PutIndex(ctx, "phone", phoneIndex, id); err != nil {
			return Errorf(ECONFLICT, "an account with this phone number exists already; sign in instead")
		}
		if wechatIndex != nil {
			if err := tx.PutIndex(ctx, "wechat", wechatIndex, id); err != nil {
				return Errorf(ECONFLICT, "an account with this WeChat id exists already; sign in instead")
			}
		}
		if err := tx.PutFields(ctx, sealed); err != nil {
			return err
		}
		entries := []*AuditEntry{s.audit(sctx, AuditRegister, id, "", values.Names(), "region="+s.decl.DefaultRegion())}
		out.Receipts = out.Receipts[:0]
		events := make([]*ConsentEvent, 0, len(consents))
		for _, c := range consents {
			ev, rc, e, err := s.consentEvent(sctx, id, c, ConsentGrant, method)
			if err != nil {
				return err
			}
			events = append(events, ev)
			out.Receipts = append(out.Receipts, *rc)
			entries = append(entries, e)
		}
		if err := tx.AddConsentEvents(ctx, events); err != nil {
			return err
		}
		si, err := s.newSession(ctx, tx, id)
		if err != nil {
			return err
		}
		out.SignedIn = *si
		return tx.AppendAudit(ctx, entries...)
	})
	if err != nil {
		// The subject was never stored: its key protects nothing, destroy it.
		if _, derr := s.keys.DestroySubjectKey(context.WithoutCancel(ctx), id); derr != nil {
			s.log.Error("destroy key of failed registration", "subject", id, "err", derr)
		}
		return nil, err
	}
	return out, nil
}

// recordConsent writes a consent event for subjectID and returns its receipt and audit entry.
func (s *Service) recordConsent(ctx context.Context, tx Tx, subjectID string, c ConsentChoice, action, method string) (*ConsentReceipt, *AuditEntry, error) {
	e, rc, ae, err := s.consentEvent(ctx, subjectID, c, action, method)
	if err != nil {
		return nil, nil, err
	}
	if err := tx.AddConsentEvent(ctx, e); err != nil {
		return nil, nil, err
	}
	return rc, ae, nil
}

// consentEvent returns a consent event for subjectID, its receipt and its audit
// entry, for the caller to write; EINVALID for an undeclared purpose.
func (s *Service) consentEvent(ctx context.Context, subjectID string, c ConsentChoice, action, method string) (*ConsentEvent, *ConsentReceipt, *AuditEntry, error) {
	p, ok := s.decl.Purpose(c.Purpose)
	if !ok {
		return nil, nil, nil, Errorf(EINVALID, "purpose %q is not declared", c.Purpose)
	}
	now := s.Now()
	e := &ConsentEvent{ID: NewID(), SubjectID: subjectID, Purpose: p.Name, Action: action, Separate: action == ConsentGrant && c.Separate,
		NoticeVersion: s.decl.Version, Method: method, Actor: ActorFrom(ctx).String(), At: now}
	auditAction := AuditConsentGrant
	if action == ConsentWithdraw {
		auditAction = AuditConsentWithdraw
	}
	rc := &ConsentReceipt{ReceiptID: e.ID, Version: "steward.consent-receipt/v1", Controller: s.decl.Controller, SubjectID: subjectID,
		NoticeVersion: s.decl.Version, Event: *e, Purpose: *p, SensitiveFields: s.decl.SensitiveFields(p), IssuedAt: now}
	if rc.SensitiveFields == nil {
		rc.SensitiveFields = []string{}
	}
	return e, rc, s.audit(ctx, auditAction, subjectID, p.Name, p.Fields, "event="+e.ID+" method="+method), nil
}

// Profile is what a signed-in subject sees of their account.
type Profile struct {
	Subject  Subject        `json:"subject"`
	Fields   FieldValues    `json:"fields"`
	Consents []ConsentState `json:"consents"`
}

// openFields decrypts sealed fields with the subject's key.
func (s *Service) openFields(ctx context.Context, subjectID string, sealed []SealedField) (FieldValues, error) {
	out := FieldValues{}
	if len(sealed) == 0 {
		return out, nil
	}
	key, err := s.keys.SubjectKey(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	for _, f := range sealed {
		v, err := key.Open(f.Field, f.Value)
		if err != nil {
			return nil, err
		}
		out[f.Field] = v
	}
	return out, nil
}

// Me returns the signed-in subject's account, every field and the consents in force
// (policy §6 access, P17). The read is audited.
func (s *Service) Me(ctx context.Context) (*Profile, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	p := &Profile{}
	var sealed []SealedField
	err = s.store.Read(ctx, func(tx Tx) error {
		subj, err := tx.GetSubject(ctx, id)
		if err != nil {
			return err
		}
		p.Subject = *subj
		if sealed, err = tx.GetFields(ctx, id, nil); err != nil {
			return err
		}
		p.Consents, err = tx.ConsentStates(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if p.Fields, err = s.openFields(ctx, id, sealed); err != nil {
		return nil, err
	}
	if p.Consents == nil {
		p.Consents = []ConsentState{}
	}
	names := p.Fields.Names()
	if err := s.store.Audit(ctx, s.audit(ctx, AuditReadSelf, id, "", names, "")); err != nil {
		return nil, err
	}
	return p, nil
}

// UpdateMe corrects the signed-in subject's fields (policy §6 correction, P18).
// A field set to JSON null is deleted. The phone number cannot be changed here.
// Errors as for Register.
func (s *Service) UpdateMe(ctx context.Context, in FieldValues) (*Profile, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	if len(in) == 0 {
		return nil, Errorf(EINVALID, "no fields to change")
	}
	if _, ok := in["phone"]; ok {
		return nil, Errorf(EINVALID, "field phone cannot be changed by an update; it identifies the account")
	}
	var states []ConsentState
	if err := s.store.Read(ctx, func(tx Tx) (err error) { states, err = tx.ConsentStates(ctx, id); return err }); err != nil {
		return nil, err
	}
	consented := func(p string) bool {
		for _, st := range states {
			if st.Purpose == p && st.Granted {
				return true
			}
		}
		return false
	}
	set, del := FieldValues{}, []string{}
	for name, v := range in {
		if string(v) == "null" {
			if _, ok := s.decl.Field(name); !ok {
				return nil, Errorf(EINVALID, "field %s is not declared", name)
			}
			del = append(del, name)
			continue
		}
		set[name] = v
	}
	values, err := s.checkFields(set, consented)
	if err != nil {
		return nil, err
	}
	if raw, ok := values["birthday"]; ok && s.decl.MinimumAge > 0 {
		var b string
		json.Unmarshal(raw, &b)
		bd, _ := ParseBirthday(b)
		if err := CheckAge(bd, s.now(), s.decl.Location(), s.decl.MinimumAge); err != nil {
			return nil, err
		}
	}
	key, err := s.keys.SubjectKey(ctx, id)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	var sealed []SealedField
	for _, name := range values.Names() {
		ct, err := key.Seal(name, values[name])
		if err != nil {
			return nil, err
		}
		sealed = append(sealed, SealedField{SubjectID: id, Field: name, Value: ct, UpdatedAt: now})
	}
	changed := append(values.Names(), del...)
	slices.Sort(changed)
	err = s.store.Write(ctx, func(tx Tx) error {
		if err := requireActive(ctx, tx, id); err != nil {
			return err
		}
		if err := tx.PutFields(ctx, sealed); err != nil {
			return err
		}
		if err := tx.DeleteFields(ctx, id, del); err != nil {
			return err
		}
		if err := s.runUpdateHooks(ctx, tx, id, changed); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditUpdate, id, "", changed, ""))
	})
	if err != nil {
		return nil, err
	}
	return s.Me(ctx)
}

// GrantConsent records the signed-in subject's consent for a purpose and returns
// the receipt (policy §6, PIPL Art. 14). EINVALID for an undeclared or
// non-consent purpose, or sensitive PI without separate consent.
func (s *Service) GrantConsent(ctx context.Context, c ConsentChoice) (*ConsentReceipt, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.decl.CheckConsentChoice(c); err != nil {
		return nil, err
	}
	var rc *ConsentReceipt
	err = s.store.Write(ctx, func(tx Tx) error {
		if err := requireActive(ctx, tx, id); err != nil {
			return err
		}
		r, e, err := s.recordConsent(ctx, tx, id, c, ConsentGrant, MethodSelfService)
		if err != nil {
			return err
		}
		rc = r
		return tx.AppendAudit(ctx, e)
	})
	return rc, err
}

// WithdrawConsent records the withdrawal of the signed-in subject's consent for
// purpose (policy §6, PIPL Art. 15). It is prospective: processing before it stays
// lawful; from now on the purpose's basis fails. Fields that no purpose with a
// basis still covers are deleted in the same transaction (PIPL Art. 47(1)(3)), and
// the receipt's event lists them in the audit trail. EINVALID for an undeclared
// or non-consent purpose; ECONFLICT if consent is not in force.
func (s *Service) WithdrawConsent(ctx context.Context, purpose string) (*ConsentReceipt, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	return s.withdraw(ctx, id, purpose, MethodSelfService)
}

func (s *Service) withdraw(ctx context.Context, id, purpose, method string) (*ConsentReceipt, error) {
	p, ok := s.decl.Purpose(purpose)
	if !ok {
		return nil, Errorf(EINVALID, "purpose %q is not declared", purpose)
	}
	if p.LegalBasis != BasisConsent {
		return nil, Errorf(EINVALID, "purpose %s is processed under legal basis %s, not consent", p.Name, p.LegalBasis)
	}
	var rc *ConsentReceipt
	err := s.store.Write(ctx, func(tx Tx) error {
		if err := requireActive(ctx, tx, id); err != nil {
			return err
		}
		st, err := tx.ConsentState(ctx, id, purpose)
		if ErrorCode(err) == ENOTFOUND || (err == nil && !st.Granted) {
			return Errorf(ECONFLICT, "consent for %s is not in force", purpose)
		} else if err != nil {
			return err
		}
		r, e, err := s.recordConsent(ctx, tx, id, ConsentChoice{Purpose: purpose}, ConsentWithdraw, method)
		if err != nil {
			return err
		}
		rc = r
		states, err := tx.ConsentStates(ctx, id)
		if err != nil {
			return err
		}
		held, err := tx.GetFields(ctx, id, s.orphanFields(states))
		if err != nil {
			return err
		}
		orphans := make([]string, 0, len(held))
		for _, f := range held {
			if f.Field == "phone" {
				// The phone number identifies the account and receives its codes;
				// a withdrawal that leaves no basis for it ends the account.
				return Errorf(ECONFLICT, "withdrawing consent for %s would leave no basis to keep the phone number that identifies the account; to end all processing, cancel the account (POST /v1/me/cancellation/code, then POST /v1/me/cancellation)", purpose)
			}
			orphans = append(orphans, f.Field)
		}
		if err := tx.DeleteFields(ctx, id, orphans); err != nil {
			return err
		}
		r.FieldsDeleted = orphans
		entries := []*AuditEntry{e}
		if len(orphans) > 0 {
			entries = append(entries, s.audit(ctx, AuditUpdate, id, purpose, orphans, withdrawalDetail+r.Event.ID))
		}
		for _, h := range s.hooks {
			if err := h(ctx, tx, id, purpose); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, entries...)
	})
	return rc, err
}

// declaredOnly returns the names that are declared fields, "?" for the others.
func declaredOnly(d *Declaration, names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if _, ok := d.Field(n); ok {
			out = append(out, n)
		} else {
			out = append(out, "?")
		}
	}
	return out
}

// withdrawalDetail starts the detail of the audit entry listing the fields a
// withdrawal erased; the consent event id follows.
const withdrawalDetail = "deleted on withdrawal event="

// orphanFields returns the fields none of whose purposes has a basis any more.
func (s *Service) orphanFields(states []ConsentState) []string {
	var out []string
	for _, f := range s.decl.Fields {
		keep := false
		for _, pn := range f.Purposes {
			p, _ := s.decl.Purpose(pn)
			var st *ConsentState
			for i := range states {
				if states[i].Purpose == pn {
					st = &states[i]
				}
			}
			keep = keep || s.decl.BasisHolds(p, st) == nil
		}
		if !keep {
			out = append(out, f.Name)
		}
	}
	return out
}

// Consents returns the signed-in subject's consents in force and their history.
func (s *Service) Consents(ctx context.Context) ([]ConsentState, []ConsentEvent, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, nil, err
	}
	var states []ConsentState
	var events []ConsentEvent
	err = s.store.Read(ctx, func(tx Tx) (err error) {
		if states, err = tx.ConsentStates(ctx, id); err != nil {
			return err
		}
		events, err = tx.ConsentEvents(ctx, id)
		return err
	})
	if states == nil {
		states = []ConsentState{}
	}
	if events == nil {
		events = []ConsentEvent{}
	}
	return states, events, err
}

// ConsentReceipt returns the receipt of one of the signed-in subject's consent
// events, as it was issued: a withdrawal's receipt lists the fields it erased.
func (s *Service) ConsentReceipt(ctx context.Context, eventID string) (*ConsentReceipt, error) {
	_, events, err := s.Consents(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		if e.ID != eventID {
			continue
		}
		p, _ := s.decl.Purpose(e.Purpose)
		rc := &ConsentReceipt{ReceiptID: e.ID, Version: "steward.consent-receipt/v1", Controller: s.decl.Controller, SubjectID: e.SubjectID,
			NoticeVersion: e.NoticeVersion, Event: e, IssuedAt: e.At, SensitiveFields: []string{}}
		if p != nil {
			rc.Purpose = *p
			if sf := s.decl.SensitiveFields(p); sf != nil {
				rc.SensitiveFields = sf
			}
		}
		if e.Action == ConsentWithdraw {
			var trail []AuditEntry
			if err := s.store.Read(ctx, func(tx Tx) (err error) { trail, err = tx.AuditBySubject(ctx, e.SubjectID); return err }); err != nil {
				return nil, err
			}
			for _, a := range trail {
				if a.Action == AuditUpdate && a.Detail == withdrawalDetail+e.ID {
					rc.FieldsDeleted = a.Fields
				}
			}
		}
		return rc, nil
	}
	return nil, Errorf(ENOTFOUND, "no consent event with that id")
}

// ReadForPurpose returns a subject's fields for a client app that names purpose
// (P2, P15; PIPL Art. 6 purpose limitation): only the purpose's fields (or the
// subset named in fields), and only while its legal basis holds. Every read and
// every refusal is audited before the answer leaves. Errors: EFORBIDDEN when the
// caller is not a client app declared for purpose, when a field outside the
// purpose is asked for, or when the basis does not hold (the message names what is
// missing); EINVALID for an undeclared purpose; ENOTFOUND for an unknown subject;
// EGONE for a cancelled one.
func (s *Service) ReadForPurpose(ctx context.Context, subjectID, purpose string, fields []string) (FieldValues, error) {
	a := ActorFrom(ctx)
	if a.Kind != ActorApp {
		return nil, Errorf(EFORBIDDEN, "only client apps read subjects' data under a purpose")
	}
	// refuse records a refused read in the access log, then answers err. Only
	// declared names reach the log: callers' strings are not trusted to hold no PI.
	refuse := func(names []string, err error) (FieldValues, error) {
		logged, loggedPurpose, detail := declaredOnly(s.decl, names), purpose, ErrorMessage(err)
		if _, ok := s.decl.Purpose(purpose); !ok {
			loggedPurpose, detail = "", "undeclared purpose"
		}
		if aerr := s.store.Audit(ctx, s.audit(ctx, AuditReadDenied, subjectID, loggedPurpose, logged, detail)); aerr != nil {
			return nil, aerr
		}
		return nil, err
	}
	p, ok := s.decl.Purpose(purpose)
	if !ok {
		return refuse(fields, Errorf(EINVALID, "purpose %q is not declared", purpose))
	}
	if !s.decl.AppMayUse(a.ID, purpose) {
		return refuse(fields, Errorf(EFORBIDDEN, "client app %s is not declared for purpose %s", a.ID, purpose))
	}
	names := p.Fields
	if len(fields) > 0 {
		for _, f := range fields {
			if _, declared := s.decl.Field(f); !declared {
				return refuse(fields, Errorf(EINVALID, "fields names a field that is not declared"))
			}
			if !slices.Contains(p.Fields, f) {
				return refuse(fields, Errorf(EFORBIDDEN, "field %s is not processed for purpose %s", f, purpose))
			}
		}
		names = fields
	}
	var sealed []SealedField
	var denied error
	// check decides on a snapshot; with legal holds on the subject the read guards
	// decide too, inside the transaction (tx nil: none was opened).
	check := func(tx Tx, snap *PurposeSnapshot) error {
		if snap.Status != SubjectActive {
			return Errorf(EGONE, "the subject's account was cancelled and its data erased")
		}
		if denied = s.decl.BasisHolds(p, snap.Consent); denied != nil {
			return nil
		}
		if snap.Holds > 0 {
			if tx == nil {
				return errNeedsTx
			}
			if denied = s.guardRead(ctx, tx, subjectID, purpose, names); denied != nil {
				return nil
			}
		}
		sealed = snap.Fields
		return nil
	}
	snap, err := s.store.PurposeSnapshot(ctx, subjectID, purpose, names)
	if err == nil {
		err = check(nil, snap)
	}
	if err == errNeedsTx {
		err = s.store.Read(ctx, func(tx Tx) error {
			snap, err := tx.PurposeSnapshot(ctx, subjectID, purpose, names)
			if err != nil {
				return err
			}
			return check(tx, snap)
		})
	}
	if err != nil {
		return nil, err
	}
	if denied != nil {
		return refuse(names, denied)
	}
	values, err := s.openFields(ctx, subjectID, sealed)
	if err != nil {
		return nil, err
	}
	read := values.Names()
	if err := s.store.Audit(ctx, s.audit(ctx, AuditRead, subjectID, purpose, read, "")); err != nil {
		return nil, err
	}
	return values, nil
}

// requireActive returns EGONE inside a write transaction when the subject's
// account was cancelled or erased: a session or key still cached for up to 5 s
// after an erasure made by another process (doc/operations.md) must not write
// data or consents for the subject again.
func requireActive(ctx context.Context, tx Tx, subjectID string) error {
	subj, err := tx.GetSubject(ctx, subjectID)
	if err != nil {
		return err
	}
	if subj.Status != SubjectActive {
		return Errorf(EGONE, "the subject's account was cancelled and its data erased")
	}
	return nil
}

// errNeedsTx says a purpose-bound read must be decided inside a transaction.
var errNeedsTx = errors.New("steward: the read needs a transaction")

// CheckConsent reports whether purpose's legal basis holds for subjectID, for
// client apps declared for it: nil or EFORBIDDEN naming what is missing.
func (s *Service) CheckConsent(ctx context.Context, subjectID, purpose string) error {
	a := ActorFrom(ctx)
	if a.Kind != ActorApp || !s.decl.AppMayUse(a.ID, purpose) {
		return Errorf(EFORBIDDEN, "client app %s is not declared for purpose %s", a.ID, purpose)
	}
	p, _ := s.decl.Purpose(purpose)
	return s.store.Read(ctx, func(tx Tx) error {
		subj, err := tx.GetSubject(ctx, subjectID)
		if err != nil {
			return err
		}
		if subj.Status != SubjectActive {
			return Errorf(EGONE, "the subject's account was cancelled")
		}
		st, err := tx.ConsentState(ctx, subjectID, purpose)
		if err != nil && ErrorCode(err) != ENOTFOUND {
			return err
		}
		return s.decl.BasisHolds(p, st)
	})
}
