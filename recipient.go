package steward

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// RecipientKind is who a recipient is to the controller (policy §4; PIPL Art. 21,
// 22, 23): anyone PI is shared with, transferred to or disclosed to.
type RecipientKind string

// Recipient kinds.
const (
	// RecipientAffiliate is an affiliated company sharing necessary account
	// information (policy §4 "Sharing with affiliated companies").
	RecipientAffiliate RecipientKind = "affiliate"
	// RecipientPartner is an authorized partner providing part of a service under a
	// data protection agreement (policy §4 "Sharing with authorized partners").
	RecipientPartner RecipientKind = "partner"
	// RecipientProcessor is an entrusted processor acting on the controller's
	// instructions (PIPL Art. 21).
	RecipientProcessor RecipientKind = "processor"
	// RecipientAcquirer receives PI on a merger, acquisition or bankruptcy and is
	// bound by the policy (policy §4 "Transfer"; PIPL Art. 22).
	RecipientAcquirer RecipientKind = "acquirer"
	// RecipientRegulator is an authority PI is disclosed to under the law (policy §4
	// statutory sharing).
	RecipientRegulator RecipientKind = "regulator"
)

// RecipientKinds returns every recipient kind.
func RecipientKinds() []RecipientKind {
	return []RecipientKind{RecipientAffiliate, RecipientPartner, RecipientProcessor, RecipientAcquirer, RecipientRegulator}
}

// Valid reports whether k is one of the recipient kinds.
func (k RecipientKind) Valid() bool { return slices.Contains(RecipientKinds(), k) }

// Recipient is an entry of the recipient register (P10): who receives PI, under
// which agreement, for which purposes and which fields, and where Steward sends
// its notices. It holds no personal information. Secret is the webhook signing
// secret sealed under the outbox key; it is never shown after registration.
type Recipient struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	Kind         RecipientKind `json:"kind"`
	WebhookURL   string        `json:"webhook_url"`
	AgreementRef string        `json:"agreement_reference"`
	Purposes     []string      `json:"purposes"`
	Fields       []string      `json:"fields"`
	CreatedAt    time.Time     `json:"created_at"`
	CreatedBy    string        `json:"created_by"` // "kind:id" of the staff member or job
	Secret       []byte        `json:"-"`
}

// RecipientInput is what staff submit to register a recipient.
type RecipientInput struct {
	Name         string        `json:"name"`
	Kind         RecipientKind `json:"kind"`
	WebhookURL   string        `json:"webhook_url"`
	AgreementRef string        `json:"agreement_reference"`
	Purposes     []string      `json:"purposes"`
	Fields       []string      `json:"fields"`
}

// RegisteredRecipient is a new recipient with its signing secret, which is shown
// this once: Steward keeps it sealed and signs with it, but never returns it again.
type RegisteredRecipient struct {
	Recipient
	SigningSecret string `json:"signing_secret"`
}

// Disclosure records one event of a subject's PI leaving Steward to a recipient:
// which fields, for which purpose, by which client app, when (P10). It holds no
// values.
type Disclosure struct {
	ID          string    `json:"id"`
	SubjectID   string    `json:"subject_id"`
	RecipientID string    `json:"recipient_id"`
	Purpose     string    `json:"purpose"`
	Fields      []string  `json:"fields"`
	AppID       string    `json:"app_id"`
	At          time.Time `json:"at"`
}

// DisclosureInput is what a client app reports when it sends a subject's fields
// to a recipient.
type DisclosureInput struct {
	RecipientID string   `json:"recipient_id"`
	Purpose     string   `json:"purpose"`
	Fields      []string `json:"fields"`
}

// Notice events: why a recipient is told about a subject (P18, P19, P21).
const (
	NoticeCorrection = "correction" // the subject corrected fields the recipient received
	NoticeDeletion   = "deletion"   // the subject's PI was erased; delete your copy
	NoticeWithdrawal = "withdrawal" // consent for a purpose the PI was shared under was withdrawn
)

// Notice states.
const (
	NoticePending      = "pending"
	NoticeAcknowledged = "acknowledged"
)

// Acknowledgement outcomes a recipient reports.
const (
	AckDone    = "done"     // the recipient deleted, corrected or stopped using its copy
	AckNotHeld = "not_held" // the recipient no longer held the data
)

// RecipientNotice is one notice to a recipient that a subject's data was
// corrected, deleted or its consent withdrawn. It is delivered as a signed webhook
// through the outbox and stays pending until the recipient acknowledges it. When
// it was sent while a rights request was being fulfilled, RequestID names the
// request, which is not fulfilled before every notice is acknowledged. It holds no
// personal information.
type RecipientNotice struct {
	ID          string    `json:"id"`
	RecipientID string    `json:"recipient_id"`
	SubjectID   string    `json:"subject_id"`
	Event       string    `json:"event"`
	Purpose     string    `json:"purpose,omitempty"` // for withdrawals: the purpose withdrawn
	Fields      []string  `json:"fields"`
	RequestID   string    `json:"request_id,omitempty"`
	MessageID   string    `json:"message_id"` // the outbox message carrying the webhook
	CreatedAt   time.Time `json:"created_at"`
	DueAt       time.Time `json:"due_at"` // acknowledgement deadline
	AckedAt     time.Time `json:"acknowledged_at,omitzero"`
	AckOutcome  string    `json:"outcome,omitempty"`
	State       string    `json:"state"`   // NoticePending or NoticeAcknowledged; set when read
	Overdue     bool      `json:"overdue"` // pending past DueAt; set when read
}

// NoticeFilter selects notices. Zero fields select everything.
type NoticeFilter struct {
	State       string    // NoticePending or NoticeAcknowledged
	OverdueAt   time.Time // when set: only pending notices due before this instant
	RecipientID string
	RequestID   string
	SubjectID   string
}

// NoticeWebhook is the JSON body of a notice webhook (doc/recipients.md).
type NoticeWebhook struct {
	Event         string    `json:"event"`
	SubjectID     string    `json:"subject_id"`
	Fields        []string  `json:"fields"`
	NoticeID      string    `json:"notice_id"`
	RequestID     string    `json:"request_id,omitempty"`
	Purpose       string    `json:"purpose,omitempty"`
	OccurredAt    time.Time `json:"occurred_at"`
	AcknowledgeBy time.Time `json:"acknowledge_by"`
}

// NoticeAck is the JSON body a recipient posts to acknowledge a notice. NoticeID
// must repeat the notice's id, so that a signed acknowledgement of one notice
// cannot be replayed against another.
type NoticeAck struct {
	NoticeID string `json:"notice_id"`
	Outcome  string `json:"outcome"` // AckDone (default) or AckNotHeld
}

// StoredCertificate is a signed deletion certificate as the store keeps it, by
// request.
type StoredCertificate struct {
	ID        string
	RequestID string
	SubjectID string
	Body      []byte // the SignedCertificate JSON
	IssuedAt  time.Time
}

// RecipientTx is the part of a store transaction that keeps the recipient
// register, disclosures, recipient notices, legal holds with their held copies,
// and deletion certificates. None of it holds plaintext PI. Methods return
// ENOTFOUND for a missing row and ECONFLICT on a uniqueness violation.
type RecipientTx interface {
	// CreateRecipient stores r; ECONFLICT if a recipient has the same name.
	CreateRecipient(ctx context.Context, r *Recipient) error
	GetRecipient(ctx context.Context, id string) (*Recipient, error)
	// ListRecipients returns every recipient by name.
	ListRecipients(ctx context.Context) ([]Recipient, error)

	AddDisclosure(ctx context.Context, d *Disclosure) error
	// Disclosures returns the subject's disclosures, oldest first.
	Disclosures(ctx context.Context, subjectID string) ([]Disclosure, error)

	CreateNotice(ctx context.Context, n *RecipientNotice) error
	GetNotice(ctx context.Context, id string) (*RecipientNotice, error)
	// ListNotices returns the notices f selects, oldest first.
	ListNotices(ctx context.Context, f NoticeFilter) ([]RecipientNotice, error)
	// AckNotice records the acknowledgement of a pending notice; ECONFLICT if it
	// was acknowledged already.
	AckNotice(ctx context.Context, id string, at time.Time, outcome string) error

	CreateHold(ctx context.Context, h *LegalHold) error
	GetHold(ctx context.Context, id string) (*LegalHold, error)
	// SubjectHolds returns every hold on the subject, released ones included, oldest first.
	SubjectHolds(ctx context.Context, subjectID string) ([]LegalHold, error)
	// ExpiredHolds returns the unreleased holds whose Until is at or before now.
	ExpiredHolds(ctx context.Context, now time.Time) ([]LegalHold, error)
	// ReleaseHold marks an unreleased hold released; ECONFLICT if it was released already.
	ReleaseHold(ctx context.Context, id string, at time.Time, by, reason string) error
	// PutHeldFields stores copies of fields sealed under the hold's own key;
	// SealedField.SubjectID is the subject's id.
	PutHeldFields(ctx context.Context, holdID string, fields []SealedField) error
	HeldFields(ctx context.Context, holdID string) ([]SealedField, error)
	DeleteHeldFields(ctx context.Context, holdID string) error

	// PutCertificate stores a signed certificate; ECONFLICT if the request has one.
	PutCertificate(ctx context.Context, c *StoredCertificate) error
	CertificateByRequest(ctx context.Context, requestID string) (*StoredCertificate, error)
}

// Audit actions of recipients, disclosures, notices, holds and certificates.
const (
	AuditRecipientRegister = "recipient.register"
	AuditDisclose          = "subject.disclose"
	AuditDiscloseDenied    = "subject.disclose_denied"
	AuditNoticeSent        = "recipient.notice"
	AuditNoticeAck         = "recipient.notice_ack"
	AuditHoldPlace         = "hold.place"
	AuditHoldRelease       = "hold.release"
	AuditReadHeld          = "subject.read_held"
	AuditCertificate       = "certificate.issue"
)

// UpdateHook runs inside the transaction that changes a subject's fields
// (correction, P18), with the names of the fields set or deleted.
type UpdateHook func(ctx context.Context, tx Tx, subjectID string, fields []string) error

// OnUpdate registers h to run on every change of a subject's fields.
func (s *Service) OnUpdate(h UpdateHook) { s.updateHooks = append(s.updateHooks, h) }

// runUpdateHooks runs the update hooks in tx.
func (s *Service) runUpdateHooks(ctx context.Context, tx Tx, subjectID string, fields []string) error {
	for _, h := range s.updateHooks {
		if err := h(ctx, tx, subjectID, fields); err != nil {
			return err
		}
	}
	return nil
}

type requestIDKey struct{}

// WithRequestID returns a context carrying the id of the rights request being
// fulfilled, so that recipient notices the work causes become steps of that
// request.
func WithRequestID(ctx context.Context, requestID string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, requestID)
}

// RequestIDFrom returns the request id WithRequestID put in ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Webhook signing (doc/recipients.md): the header is
//
//	Steward-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
//
// with the secret's ASCII text as the HMAC key; acknowledgements are signed the same way.
const (
	SignatureHeader      = "Steward-Signature"
	IdempotencyKeyHeader = "Idempotency-Key"
	// SignatureTolerance is how far an acknowledgement's timestamp may be from
	// Steward's clock.
	SignatureTolerance = 5 * time.Minute
	secretPrefix       = "whsec_"
	webhookChannel     = "webhook"
)

// SignPayload returns the Steward-Signature header value for body signed with
// secret at t.
func SignPayload(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(payloadMAC(secret, ts, body))
}

func payloadMAC(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyPayload checks a Steward-Signature header over body with secret: the
// timestamp must be within tolerance of now and one v1 value must match. It
// returns EUNAUTHORIZED naming what is wrong.
func VerifyPayload(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return Errorf(EUNAUTHORIZED, "the %s header must be t=<unix seconds>,v1=<hex HMAC-SHA256>", SignatureHeader)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return Errorf(EUNAUTHORIZED, "the signature's timestamp is more than %s away from Steward's clock", tolerance)
	}
	want := payloadMAC(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return Errorf(EUNAUTHORIZED, "the signature does not match the body under the recipient's signing secret")
}

// RecipientsConfig configures Recipients.
type RecipientsConfig struct {
	// NoticeDeadline is how long a recipient has to acknowledge a notice; default 7 days.
	NoticeDeadline time.Duration
}

// Recipients keeps the recipient register and disclosures, and tells recipients
// when a subject corrects, deletes or withdraws consent (P10, P18, P19, P21).
type Recipients struct {
	svc       *Service
	deadline  time.Duration
	completer RequestCompleter
}

// NewRecipients returns the recipients feature of svc and registers its hooks:
// corrections (OnUpdate), withdrawals (OnWithdraw) and erasures (AddEraser) notify
// every recipient that received the subject's data. Call it once per Service.
func NewRecipients(svc *Service, c RecipientsConfig) *Recipients {
	if c.NoticeDeadline <= 0 {
		c.NoticeDeadline = 7 * 24 * time.Hour
	}
	r := &Recipients{svc: svc, deadline: c.NoticeDeadline}
	svc.OnUpdate(r.onUpdate)
	svc.OnWithdraw(r.onWithdraw)
	svc.AddEraser(r.onErase)
	return r
}

// SetCompleter sets the request life cycle that an acknowledgement completes (the
// request service); without one, acknowledgements complete nothing.
func (r *Recipients) SetCompleter(c RequestCompleter) { r.completer = c }

// NoticeDeadline returns how long recipients have to acknowledge a notice.
func (r *Recipients) NoticeDeadline() time.Duration { return r.deadline }

func requireStaffRole(ctx context.Context, what string, roles ...string) error {
	a := ActorFrom(ctx)
	if a.Kind == ActorSystem {
		return nil
	}
	for _, role := range roles {
		if a.HasRole(role) {
			return nil
		}
	}
	if a.Kind == ActorAnon {
		return Errorf(EUNAUTHORIZED, "sign in as staff to %s", what)
	}
	return Errorf(EFORBIDDEN, "only staff with the role %s may %s", strings.Join(roles, " or "), what)
}

// Register adds a recipient to the register and returns it with its webhook
// signing secret, shown this once (policy §4: recipients are bound by an
// agreement and receive only what a declared purpose needs). Admins and privacy
// officers may call it. Errors: EINVALID for a missing name, an unknown kind, a
// webhook URL checkWebhookURL refuses (not https, plain http but not to loopback,
// credentials, a fragment, an impossible port, a link-local address), a missing
// agreement reference (all kinds but regulator), an undeclared purpose or field,
// or a field none of the recipient's purposes covers; ECONFLICT for a name in use,
// checked only once everything else is valid.
func (r *Recipients) Register(ctx context.Context, in RecipientInput) (*RegisteredRecipient, error) {
	if err := requireStaffRole(ctx, "register recipients", RolePrivacyOfficer, RoleAdmin); err != nil {
		return nil, err
	}
	in.Name = strings.TrimSpace(in.Name)
	in.AgreementRef = strings.TrimSpace(in.AgreementRef)
	switch {
	case in.Name == "" || utf8.RuneCountInString(in.Name) > 200:
		return nil, Errorf(EINVALID, "name is required, at most 200 characters")
	case !in.Kind.Valid():
		return nil, Errorf(EINVALID, "kind must be one of affiliate, partner, processor, acquirer, regulator")
	case in.AgreementRef == "" && in.Kind != RecipientRegulator:
		return nil, Errorf(EINVALID, "agreement_reference is required: PI is shared only under a data protection agreement (policy §4)")
	case utf8.RuneCountInString(in.AgreementRef) > 200:
		return nil, Errorf(EINVALID, "agreement_reference must be at most 200 characters")
	case len(in.Purposes) == 0:
		return nil, Errorf(EINVALID, "purposes are required: a recipient receives PI only for declared purposes")
	case len(in.Fields) == 0:
		return nil, Errorf(EINVALID, "fields are required: a recipient receives only the fields named")
	}
	if err := checkWebhookURL(in.WebhookURL); err != nil {
		return nil, err
	}
	covered := map[string]bool{}
	for _, pn := range in.Purposes {
		p, ok := r.svc.decl.Purpose(pn)
		if !ok {
			return nil, Errorf(EINVALID, "purpose %q is not declared", pn)
		}
		for _, f := range p.Fields {
			covered[f] = true
		}
	}
	for _, f := range in.Fields {
		if _, ok := r.svc.decl.Field(f); !ok {
			return nil, Errorf(EINVALID, "field %q is not declared", f)
		}
		if !covered[f] {
			return nil, Errorf(EINVALID, "field %s is not processed for any of the purposes %s", f, strings.Join(in.Purposes, ", "))
		}
	}
	var raw [32]byte
	rand.Read(raw[:])
	secret := secretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	rec := &Recipient{ID: NewID(), Name: in.Name, Kind: in.Kind, WebhookURL: in.WebhookURL, AgreementRef: in.AgreementRef,
		Purposes: sortedUnique(in.Purposes), Fields: sortedUnique(in.Fields), CreatedAt: r.svc.Now(), CreatedBy: ActorFrom(ctx).String()}
	var err error
	if rec.Secret, err = r.svc.keys.SealMessage(secretLabel(rec.ID), []byte(secret)); err != nil {
		return nil, err
	}
	err = r.svc.store.Write(ctx, func(tx Tx) error {
		if err := tx.CreateRecipient(ctx, rec); err != nil {
			if ErrorCode(err) == ECONFLICT {
				return Errorf(ECONFLICT, "a recipient called %q is registered already", rec.Name)
			}
			return err
		}
		return tx.AppendAudit(ctx, r.svc.audit(ctx, AuditRecipientRegister, "", strings.Join(rec.Purposes, ","), rec.Fields,
			"recipient="+rec.ID+" kind="+string(rec.Kind)))
	})
	if err != nil {
		return nil, err
	}
	return &RegisteredRecipient{Recipient: *rec, SigningSecret: secret}, nil
}

func secretLabel(recipientID string) string { return "recipient-secret:" + recipientID }

// checkWebhookURL accepts an absolute https URL, and plain http only when the host
// is exactly localhost or an IP literal in 127.0.0.0/8 or ::1 (a development
// receiver): notices must not cross a network in clear text. It refuses
// credentials (notices are signed with the recipient's secret instead), fragments,
// ports outside 1–65535, IPv6 zones and IP literals RefusedWebhookAddr names.
// Host names are not resolved here (they may resolve differently later); the
// outbox webhook sink checks every address it dials.
func checkWebhookURL(raw string) error {
	const shape = "webhook_url must be an absolute https URL such as https://hooks.example.com/steward"
	if len(raw) > 2000 {
		return Errorf(EINVALID, "webhook_url must be at most 2000 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return Errorf(EINVALID, shape)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return Errorf(EINVALID, errWebhookScheme)
	}
	if u.User != nil {
		return Errorf(EINVALID, "webhook_url must not hold credentials (user:password@): notices are signed with the recipient's secret")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return Errorf(EINVALID, "webhook_url must not have a fragment (#…)")
	}
	if port := u.Port(); strings.HasSuffix(u.Host, ":") || port != "" && !validPort(port) {
		return Errorf(EINVALID, "webhook_url has an invalid port: it must be a number from 1 to 65535")
	}
	host := u.Hostname()
	addr, err := netip.ParseAddr(host)
	isIP := err == nil
	if isIP {
		if addr.Zone() != "" {
			return Errorf(EINVALID, "webhook_url must not name an IPv6 zone (%%…)")
		}
		if RefusedWebhookAddr(addr) {
			return Errorf(EINVALID, "webhook_url must not point at an unspecified or link-local address (0.0.0.0/8, ::, 169.254.0.0/16, fe80::/10)")
		}
	}
	if u.Scheme == "http" && host != "localhost" && !(isIP && addr.Unmap().IsLoopback()) {
		return Errorf(EINVALID, errWebhookScheme)
	}
	return nil
}

const errWebhookScheme = "webhook_url must use https (plain http is accepted only for localhost, 127.0.0.0/8 or [::1])"

// validPort reports whether p, the digits url.Parse accepted as a port, is 1 to 65535.
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// RefusedWebhookAddr reports whether Steward never sends a webhook to addr: an
// unspecified or "this network" address (0.0.0.0/8, ::) or a link-local one
// (169.254.0.0/16, where cloud platforms serve instance metadata and credentials;
// fe80::/10), IPv4-mapped forms included. Without it, registering a recipient would
// let staff point the outbox worker at the metadata service (server-side request
// forgery). Private ranges (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7)
// and loopback stay allowed: a processor may run on the controller's internal
// network. Register checks IP literals with it; the outbox webhook sink checks
// every address it dials, so a host name that resolves to such an address is
// refused as well.
func RefusedWebhookAddr(addr netip.Addr) bool {
	addr = addr.Unmap()
	if addr.Is4() && addr.As4()[0] == 0 {
		return true
	}
	return !addr.IsValid() || addr.IsUnspecified() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast()
}

func sortedUnique(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// List returns every registered recipient, by name. Admins, privacy officers and
// auditors may call it.
func (r *Recipients) List(ctx context.Context) ([]Recipient, error) {
	if err := requireStaffRole(ctx, "list recipients", RolePrivacyOfficer, RoleAuditor, RoleAdmin); err != nil {
		return nil, err
	}
	var out []Recipient
	err := r.svc.store.Read(ctx, func(tx Tx) (err error) { out, err = tx.ListRecipients(ctx); return err })
	if out == nil {
		out = []Recipient{}
	}
	return out, err
}

// Disclose records that the calling client app sent fields of subjectID to a
// recipient for a purpose (P10; PIPL Art. 23). It is allowed only while the
// purpose's legal basis holds for the subject, the app is declared for the purpose,
// the fields belong to the purpose, the recipient is registered for the purpose
// and the fields, and no field is under a legal hold for another purpose. Every
// disclosure and every refusal for the subject's basis or a hold is audited.
// Errors: EFORBIDDEN (not a client app, app or recipient not declared, basis
// missing, field held), EINVALID (undeclared purpose, no fields, a field outside
// the purpose), ENOTFOUND (unknown subject or recipient), EGONE (cancelled subject).
func (r *Recipients) Disclose(ctx context.Context, subjectID string, in DisclosureInput) (*Disclosure, error) {
	a := ActorFrom(ctx)
	if a.Kind != ActorApp {
		return nil, Errorf(EFORBIDDEN, "only client apps record disclosures")
	}
	p, ok := r.svc.decl.Purpose(in.Purpose)
	if !ok {
		return nil, Errorf(EINVALID, "purpose %q is not declared", in.Purpose)
	}
	if !r.svc.decl.AppMayUse(a.ID, in.Purpose) {
		return nil, Errorf(EFORBIDDEN, "client app %s is not declared for purpose %s", a.ID, in.Purpose)
	}
	if len(in.Fields) == 0 {
		return nil, Errorf(EINVALID, "fields are required")
	}
	fields := sortedUnique(in.Fields)
	for _, f := range fields {
		if !slices.Contains(p.Fields, f) {
			return nil, Errorf(EINVALID, "field %s is not processed for purpose %s", f, in.Purpose)
		}
	}
	d := &Disclosure{ID: NewID(), SubjectID: subjectID, RecipientID: in.RecipientID, Purpose: p.Name, Fields: fields, AppID: a.ID, At: r.svc.Now()}
	var denied error
	err := r.svc.store.Write(ctx, func(tx Tx) error {
		denied = nil
		rec, err := tx.GetRecipient(ctx, in.RecipientID)
		if ErrorCode(err) == ENOTFOUND {
			return Errorf(ENOTFOUND, "no recipient with that id")
		} else if err != nil {
			return err
		}
		if !slices.Contains(rec.Purposes, p.Name) {
			return Errorf(EFORBIDDEN, "recipient %s is not registered for purpose %s", rec.ID, p.Name)
		}
		for _, f := range fields {
			if !slices.Contains(rec.Fields, f) {
				return Errorf(EFORBIDDEN, "recipient %s is not registered to receive field %s", rec.ID, f)
			}
		}
		subj, err := tx.GetSubject(ctx, subjectID)
		if err != nil {
			return err
		}
		if subj.Status != SubjectActive {
			return Errorf(EGONE, "the subject's account was cancelled and its data erased")
		}
		st, err := tx.ConsentState(ctx, subjectID, p.Name)
		if err != nil && ErrorCode(err) != ENOTFOUND {
			return err
		}
		if denied = r.svc.decl.BasisHolds(p, st); denied == nil {
			denied = r.svc.guardRead(ctx, tx, subjectID, p.Name, fields)
		}
		if denied != nil {
			return tx.AppendAudit(ctx, r.svc.audit(ctx, AuditDiscloseDenied, subjectID, p.Name, fields, "recipient="+rec.ID+" "+ErrorMessage(denied)))
		}
		if err := tx.AddDisclosure(ctx, d); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.svc.audit(ctx, AuditDisclose, subjectID, p.Name, fields, "recipient="+rec.ID+" disclosure="+d.ID))
	})
	if err != nil {
		return nil, err
	}
	if denied != nil {
		return nil, denied
	}
	return d, nil
}

// Notices returns the notices f selects, each with its state and whether it is
// overdue by the service clock. Admins, privacy officers and auditors may call it.
func (r *Recipients) Notices(ctx context.Context, f NoticeFilter) ([]RecipientNotice, error) {
	if err := requireStaffRole(ctx, "list recipient notices", RolePrivacyOfficer, RoleAuditor, RoleAdmin); err != nil {
		return nil, err
	}
	switch f.State {
	case "", NoticePending, NoticeAcknowledged:
	default:
		return nil, Errorf(EINVALID, "state must be pending or acknowledged")
	}
	var out []RecipientNotice
	if err := r.svc.store.Read(ctx, func(tx Tx) (err error) { out, err = tx.ListNotices(ctx, f); return err }); err != nil {
		return nil, err
	}
	now := r.svc.Now()
	for i := range out {
		out[i].setState(now)
	}
	if out == nil {
		out = []RecipientNotice{}
	}
	return out, nil
}

func (n *RecipientNotice) setState(now time.Time) {
	n.State, n.Overdue = NoticePending, false
	if !n.AckedAt.IsZero() {
		n.State = NoticeAcknowledged
		return
	}
	n.Overdue = now.After(n.DueAt)
}

// Acknowledge records a recipient's acknowledgement of a notice. body is the raw
// request body, a NoticeAck, and signature the Steward-Signature header over it,
// made with the recipient's signing secret; this signature is the only
// authentication. A repeated acknowledgement returns the notice unchanged. Once
// acknowledged, the notice's rights request, if any, is completed when no other
// step is pending (RequestCompleter.CompleteIfDone). Errors: ENOTFOUND for an
// unknown notice, EUNAUTHORIZED for a missing, stale or wrong signature, EINVALID
// for a body that is not a NoticeAck for this notice.
func (r *Recipients) Acknowledge(ctx context.Context, noticeID string, body []byte, signature string) (*RecipientNotice, error) {
	var n *RecipientNotice
	var rec *Recipient
	if err := r.svc.store.Read(ctx, func(tx Tx) (err error) {
		if n, err = tx.GetNotice(ctx, noticeID); err != nil {
			return err
		}
		rec, err = tx.GetRecipient(ctx, n.RecipientID)
		return err
	}); ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ENOTFOUND, "no notice with that id")
	} else if err != nil {
		return nil, err
	}
	secret, err := r.svc.keys.OpenMessage(secretLabel(rec.ID), rec.Secret)
	if err != nil {
		return nil, err
	}
	if err := VerifyPayload(string(secret), signature, body, r.svc.Now(), SignatureTolerance); err != nil {
		return nil, err
	}
	var ack NoticeAck
	if err := json.Unmarshal(body, &ack); err != nil {
		return nil, Errorf(EINVALID, "the body must be JSON: {\"notice_id\": \"…\", \"outcome\": \"done\" | \"not_held\"}")
	}
	if ack.NoticeID != noticeID {
		return nil, Errorf(EINVALID, "notice_id in the body must be the id of the notice acknowledged")
	}
	if ack.Outcome == "" {
		ack.Outcome = AckDone
	}
	if ack.Outcome != AckDone && ack.Outcome != AckNotHeld {
		return nil, Errorf(EINVALID, "outcome must be done or not_held")
	}
	rctx := WithActor(ctx, Actor{Kind: ActorSystem, ID: "recipient:" + rec.ID})
	now := r.svc.Now()
	if n.AckedAt.IsZero() {
		err = r.svc.store.Write(ctx, func(tx Tx) error {
			if err := tx.AckNotice(ctx, noticeID, now, ack.Outcome); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, r.svc.audit(rctx, AuditNoticeAck, n.SubjectID, n.Purpose, n.Fields,
				"recipient="+rec.ID+" notice="+n.ID+" event="+n.Event+" outcome="+ack.Outcome+requestDetail(n.RequestID)))
		})
		if err != nil && ErrorCode(err) != ECONFLICT {
			return nil, err
		}
		if err == nil {
			n.AckedAt, n.AckOutcome = now, ack.Outcome
		}
	}
	if n.RequestID != "" && r.completer != nil {
		if _, err := r.completer.CompleteIfDone(rctx, n.RequestID); err != nil && ErrorCode(err) != ECONFLICT {
			// The acknowledgement is recorded; completing the request is retried by
			// the next acknowledgement or by staff, so the recipient is not told to retry.
			r.svc.log.Error("complete request after acknowledgement", "request", n.RequestID, "notice", n.ID, "err", err)
		}
	}
	if n.AckedAt.IsZero() {
		// A concurrent acknowledgement won; read what it stored.
		if err := r.svc.store.Read(ctx, func(tx Tx) (err error) { n, err = tx.GetNotice(ctx, noticeID); return err }); err != nil {
			return nil, err
		}
	}
	n.setState(now)
	return n, nil
}

func requestDetail(id string) string {
	if id == "" {
		return ""
	}
	return " request=" + id
}

// WebhookSignature returns the Steward-Signature header value for delivering the
// body of notice noticeID at t, signed with its recipient's secret. The outbox's
// webhook sink calls it on every attempt, so each attempt carries a fresh
// timestamp while the body and the Idempotency-Key stay the same.
func (r *Recipients) WebhookSignature(ctx context.Context, noticeID string, body []byte, t time.Time) (string, error) {
	var rec *Recipient
	err := r.svc.store.Read(ctx, func(tx Tx) error {
		n, err := tx.GetNotice(ctx, noticeID)
		if err != nil {
			return err
		}
		rec, err = tx.GetRecipient(ctx, n.RecipientID)
		return err
	})
	if err != nil {
		return "", err
	}
	secret, err := r.svc.keys.OpenMessage(secretLabel(rec.ID), rec.Secret)
	if err != nil {
		return "", err
	}
	defer clear(secret)
	return SignPayload(string(secret), t, body), nil
}

// PendingSteps returns the notices sent while fulfilling request requestID that
// are not yet acknowledged, as fulfilment steps of kind "recipient_notice".
func (r *Recipients) PendingSteps(ctx context.Context, requestID string) ([]FulfilmentStep, error) {
	var ns []RecipientNotice
	if err := r.svc.store.Read(ctx, func(tx Tx) (err error) {
		ns, err = tx.ListNotices(ctx, NoticeFilter{RequestID: requestID, State: NoticePending})
		return err
	}); err != nil {
		return nil, err
	}
	var out []FulfilmentStep
	for _, n := range ns {
		out = append(out, FulfilmentStep{ID: n.ID, RequestID: requestID, Kind: "recipient_notice", Target: n.RecipientID, State: StepPending, DueAt: n.DueAt})
	}
	return out, nil
}

// WithNotices wraps f so that the recipient notices its work causes (a
// correction, a withdrawal) become steps of the request: f runs with the request
// id in its context, and pending notices are added to f's pending steps.
func (r *Recipients) WithNotices(f Fulfiller) Fulfiller { return noticeFulfiller{f: f, r: r} }

type noticeFulfiller struct {
	f Fulfiller
	r *Recipients
}

func (n noticeFulfiller) Fulfil(ctx context.Context, req *Request) (json.RawMessage, error) {
	return n.f.Fulfil(WithRequestID(ctx, req.ID), req)
}

func (n noticeFulfiller) PendingSteps(ctx context.Context, requestID string) ([]FulfilmentStep, error) {
	steps, err := n.f.PendingSteps(ctx, requestID)
	if err != nil {
		return nil, err
	}
	more, err := n.r.PendingSteps(ctx, requestID)
	return append(steps, more...), err
}

// onUpdate tells every recipient that received a corrected field (P18).
func (r *Recipients) onUpdate(ctx context.Context, tx Tx, subjectID string, fields []string) error {
	ds, err := tx.Disclosures(ctx, subjectID)
	if err != nil {
		return err
	}
	return r.notifyEach(ctx, tx, subjectID, NoticeCorrection, "", ds, func(d Disclosure) []string {
		var out []string
		for _, f := range d.Fields {
			if slices.Contains(fields, f) {
				out = append(out, f)
			}
		}
		return out
	})
}

// onWithdraw tells every recipient that received data under the withdrawn purpose
// (P21: processing for the purpose stops, recipients' included).
func (r *Recipients) onWithdraw(ctx context.Context, tx Tx, subjectID, purpose string) error {
	ds, err := tx.Disclosures(ctx, subjectID)
	if err != nil {
		return err
	}
	return r.notifyEach(ctx, tx, subjectID, NoticeWithdrawal, purpose, ds, func(d Disclosure) []string {
		if d.Purpose != purpose {
			return nil
		}
		return d.Fields
	})
}

// onErase tells every recipient that received any of the subject's data to
// delete it (policy §6 deletion, P19). It runs inside the erasure transaction,
// after queued messages are deleted, so its notices are kept. It erases nothing
// itself: disclosure records hold no PI and stay as proof of lawful sharing.
func (r *Recipients) onErase(ctx context.Context, tx Tx, subjectID string) ([]string, error) {
	ds, err := tx.Disclosures(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	return nil, r.notifyEach(ctx, tx, subjectID, NoticeDeletion, "", ds, func(d Disclosure) []string { return d.Fields })
}

// notifyEach sends one notice per recipient, naming the union of the fields pick
// returns for that recipient's disclosures; recipients with no field get none.
func (r *Recipients) notifyEach(ctx context.Context, tx Tx, subjectID, event, purpose string, ds []Disclosure, pick func(Disclosure) []string) error {
	byRecipient := map[string][]string{}
	var order []string
	for _, d := range ds {
		fs := pick(d)
		if len(fs) == 0 {
			continue
		}
		if _, ok := byRecipient[d.RecipientID]; !ok {
			order = append(order, d.RecipientID)
		}
		byRecipient[d.RecipientID] = append(byRecipient[d.RecipientID], fs...)
	}
	slices.Sort(order)
	for _, id := range order {
		rec, err := tx.GetRecipient(ctx, id)
		if err != nil {
			return err
		}
		if err := r.notify(ctx, tx, rec, subjectID, event, purpose, sortedUnique(byRecipient[id])); err != nil {
			return err
		}
	}
	if len(order) > 0 {
		r.svc.notify()
	}
	return nil
}

// notify records a notice and queues its webhook in tx. The outbox message has no
// subject id: its body holds ids and field names only, so an erasure, which
// deletes the subject's queued messages, leaves earlier notices to be delivered.
func (r *Recipients) notify(ctx context.Context, tx Tx, rec *Recipient, subjectID, event, purpose string, fields []string) error {
	now := r.svc.Now()
	n := &RecipientNotice{ID: NewID(), RecipientID: rec.ID, SubjectID: subjectID, Event: event, Purpose: purpose, Fields: fields,
		RequestID: RequestIDFrom(ctx), CreatedAt: now, DueAt: now.Add(r.deadline)}
	body, err := json.Marshal(NoticeWebhook{Event: event, SubjectID: subjectID, Fields: fields, NoticeID: n.ID, RequestID: n.RequestID,
		Purpose: purpose, OccurredAt: now, AcknowledgeBy: n.DueAt})
	if err != nil {
		return err
	}
	m := &OutboxMessage{ID: NewID(), Channel: webhookChannel, Kind: "recipient_notice", CreatedAt: now, NextAttemptAt: now}
	payload, err := json.Marshal(MessagePayload{To: rec.WebhookURL, Body: string(body),
		Headers: map[string]string{IdempotencyKeyHeader: n.ID, "Content-Type": "application/json"}})
	if err != nil {
		return err
	}
	if m.Payload, err = r.svc.keys.SealMessage(m.ID, payload); err != nil {
		return err
	}
	n.MessageID = m.ID
	if err := r.svc.queue(ctx, tx, m); err != nil {
		return err
	}
	if err := tx.CreateNotice(ctx, n); err != nil {
		return err
	}
	return tx.AppendAudit(ctx, r.svc.audit(ctx, AuditNoticeSent, subjectID, purpose, fields,
		"recipient="+rec.ID+" notice="+n.ID+" event="+event+requestDetail(n.RequestID)))
}

// String describes the recipient by id, kind and name (a company's name, not PI).
func (rec *Recipient) String() string { return "recipient " + rec.ID + " (" + string(rec.Kind) + ")" }
