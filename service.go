package steward

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// OTPPolicy sets one-time code rules (policy §6 identity checks; GB/T 35273-2020 §8.7).
type OTPPolicy struct {
	TTL              time.Duration // validity; default 5 minutes
	MaxAttempts      int           // wrong guesses before a code dies; default 5
	ResendInterval   time.Duration // minimum gap between codes to one number; default 60 s
	PerPhonePerHour  int           // codes to one number per hour; default 5
	PerClientPerHour int           // codes asked by one client address per hour; default 20
}

// Config wires a Service.
type Config struct {
	Declaration    *Declaration
	Store          Store
	Keys           Keys
	NormalizePhone func(raw, region string) (string, error) // E.164 normalizer (contacts.Normalize)
	// SMSCapable reports whether an E.164 number can receive SMS (contacts.CanReceiveSMS);
	// nil accepts every number.
	SMSCapable func(e164 string) bool
	Now        func() time.Time
	Logger     *slog.Logger
	OTP        OTPPolicy
	SessionTTL time.Duration // default 30 days
	// Notify wakes the outbox worker after a message is queued; may be nil.
	Notify func()
	// WeChat exchanges WeChat authorization codes (wechat.go); nil turns WeChat
	// sign-in off: its operations return EUNAVAILABLE.
	WeChat WeChatProvider
}

// Service carries out Steward's operations. Every method authorizes from the actor
// in ctx, writes its audit entries and outbox messages in the transaction of the
// change, and returns *Error values with stable codes.
type Service struct {
	decl         *Declaration
	store        Store
	keys         Keys
	phone        func(raw, region string) (string, error)
	smsCapable   func(e164 string) bool
	now          func() time.Time
	log          *slog.Logger
	otp          OTPPolicy
	ttl          time.Duration
	notify       func()
	hooks        []WithdrawHook
	extras       []ExportExtra
	listRequests RequestLister
	erasers      []Eraser
	readGuards   []ReadGuard  // hold.go
	updateHooks  []UpdateHook // recipient.go
	auth         authCache
	wechat       WeChatProvider // wechat.go; nil when WeChat sign-in is off
}

// WithdrawHook runs inside the transaction that records a withdrawal of purpose,
// so that data kept only for that purpose goes with it (e.g. address-book hashes).
type WithdrawHook func(ctx context.Context, tx Tx, subjectID, purpose string) error

// NewService returns a Service; it panics if a required dependency is missing.
func NewService(c Config) *Service {
	if c.Declaration == nil || c.Store == nil || c.Keys == nil || c.NormalizePhone == nil {
		panic("steward: NewService needs Declaration, Store, Keys and NormalizePhone")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OTP.TTL == 0 {
		c.OTP.TTL = 5 * time.Minute
	}
	if c.OTP.MaxAttempts == 0 {
		c.OTP.MaxAttempts = 5
	}
	if c.OTP.ResendInterval == 0 {
		c.OTP.ResendInterval = time.Minute
	}
	if c.OTP.PerPhonePerHour == 0 {
		c.OTP.PerPhonePerHour = 5
	}
	if c.OTP.PerClientPerHour == 0 {
		c.OTP.PerClientPerHour = 20
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = 30 * 24 * time.Hour
	}
	if c.Notify == nil {
		c.Notify = func() {}
	}
	if c.SMSCapable == nil {
		c.SMSCapable = func(string) bool { return true }
	}
	return &Service{decl: c.Declaration, store: c.Store, keys: c.Keys, phone: c.NormalizePhone, smsCapable: c.SMSCapable, now: c.Now,
		log: c.Logger, otp: c.OTP, ttl: c.SessionTTL, notify: c.Notify,
		wechat: c.WeChat, updateHooks: []UpdateHook{guardWeChatField}}
}

// OnWithdraw registers a hook run when consent for a purpose is withdrawn.
func (s *Service) OnWithdraw(h WithdrawHook) { s.hooks = append(s.hooks, h) }

// Declaration returns the declaration in force.
func (s *Service) Declaration() *Declaration { return s.decl }

// Store returns the store, for adapters that add their own operations.
func (s *Service) Store() Store { return s.store }

// Keys returns the keys, for adapters that add their own operations.
func (s *Service) Keys() Keys { return s.keys }

// Now returns the service clock's time in UTC, truncated to microseconds.
func (s *Service) Now() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// NewID returns a random, time-ordered, opaque id (UUID version 7, RFC 9562).
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	ms := uint64(time.Now().UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Token prefixes tell bearer token kinds apart without a lookup.
const (
	SessionTokenPrefix = "sts_"
	APITokenPrefix     = "stk_"
)

func newToken(prefix string) string {
	var b [32]byte
	rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func newCode() string {
	var b [8]byte
	rand.Read(b[:])
	return fmt.Sprintf("%06d", binary.BigEndian.Uint64(b[:])%1_000_000)
}

func (s *Service) audit(ctx context.Context, action, subjectID, purpose string, fields []string, detail string) *AuditEntry {
	e := NewAuditEntry(ActorFrom(ctx), action, subjectID, purpose, fields, detail)
	e.At = s.Now()
	return &e
}

// enqueue seals payload and queues it in tx.
func (s *Service) enqueue(ctx context.Context, tx Tx, channel, kind, subjectID string, p MessagePayload) error {
	m := &OutboxMessage{ID: NewID(), Channel: channel, Kind: kind, SubjectID: subjectID, CreatedAt: s.Now(), NextAttemptAt: s.Now()}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if m.Payload, err = s.keys.SealMessage(m.ID, body); err != nil {
		return err
	}
	return s.queue(ctx, tx, m)
}

// queue queues m in tx claimed for this process (Store.Instance), whose worker
// then delivers it without a write to claim it first.
func (s *Service) queue(ctx context.Context, tx Tx, m *OutboxMessage) error {
	m.ClaimFor(s.store.Instance())
	return tx.Enqueue(ctx, m)
}

// normalizePhone returns the E.164 form of raw in the declaration's region.
func (s *Service) normalizePhone(raw string) (string, error) {
	e164, err := s.phone(raw, s.decl.PhoneRegion)
	if err != nil {
		return "", Errorf(EINVALID, "phone is not a valid phone number")
	}
	return e164, nil
}

// mustSubject returns the signed-in subject's id, or EUNAUTHORIZED.
func mustSubject(ctx context.Context) (string, error) {
	a := ActorFrom(ctx)
	if a.Kind != ActorSubject {
		return "", Errorf(EUNAUTHORIZED, "sign in as the subject to do this")
	}
	return a.ID, nil
}
