// Package outbox delivers queued messages (SMS, e-mail, push, webhooks) with
// retries and exponential backoff. Messages are written to the outbox table in the
// transaction of the change that causes them; a Worker opens each sealed payload,
// hands it to the sink for its channel and wipes the payload once delivered.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/stewardhq/steward"
)

// Message is a message ready for a sink: the payload opened.
type Message struct {
	ID        string
	Channel   string
	Kind      string
	SubjectID string
	steward.MessagePayload
}

// Sink delivers messages of one channel. Deliver returns an error to have the
// message retried later.
type Sink interface {
	Deliver(ctx context.Context, m Message) error
}

// Worker delivers due messages from the store. Several processes, each with its
// own Worker, may share one database: a worker delivers only the messages its
// process holds a live claim on (steward.OutboxMessage), so each goes out once.
type Worker struct {
	Store  steward.Store
	Keys   steward.Keys
	Sinks  map[string]Sink // by channel
	Now    func() time.Time
	Logger *slog.Logger
	// MaxAttempts before a message is given up on; default 12 (about 17 hours of backoff).
	MaxAttempts int
	// Poll is how often due messages are looked for without a Notify; default 1 s.
	Poll time.Duration

	wake     chan struct{}
	once     sync.Once
	instance string // Store.Instance(), or an id of the worker's own for a store without one
}

// batchSize is how many due messages DeliverDue reads, claims and marks at once.
const batchSize = 256

// A worker delivers a message its process claimed already without claiming it
// again while the claim holds for at least renewBelow more: the messages its own
// process queued (claimed until due plus steward.OutboxLease) and retries after
// its own failed attempts (the same) cost no write before delivery. A shorter
// claim is renewed with the others of its batch.
const renewBelow = steward.OutboxLease / 2

// deliveryMargin is how long a claim must still hold when a delivery starts: more
// than one attempt takes (the webhook sink gives up after 10 s), so that the claim
// cannot run out, and another process start the same message, while it is sent. A
// message whose claim holds less waits for the next batch, which claims it anew.
const deliveryMargin = steward.OutboxLease / 4

func (w *Worker) init() {
	w.once.Do(func() {
		w.wake = make(chan struct{}, 1)
		if w.Now == nil {
			w.Now = time.Now
		}
		if w.Logger == nil {
			w.Logger = slog.New(slog.DiscardHandler)
		}
		if w.MaxAttempts == 0 {
			w.MaxAttempts = 12
		}
		if w.Poll == 0 {
			w.Poll = time.Second
		}
		// A store without an instance (a command-line tool's) queues messages
		// unclaimed; a worker on it still needs an owner's name to claim them.
		if w.instance = w.Store.Instance(); w.instance == "" {
			w.instance = steward.NewID()
		}
	})
}

// Notify wakes the worker: a message was queued.
func (w *Worker) Notify() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers messages until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	w.init()
	t := time.NewTicker(w.Poll)
	defer t.Stop()
	for {
		if _, err := w.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			w.Logger.Error("outbox: deliver", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-t.C:
		}
	}
}

// Backoff returns the wait after the given number of failed attempts: 30 s
// doubling, capped at 6 hours.
func Backoff(attempts int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < attempts && d < 6*time.Hour; i++ {
		d *= 2
	}
	return min(d, 6*time.Hour)
}

// DeliverDue delivers every message due now that this process holds or can
// claim, in batches, and returns how many were delivered. Messages under another
// process's live claim are that process's to deliver.
func (w *Worker) DeliverDue(ctx context.Context) (int, error) {
	w.init()
	delivered := 0
	for {
		now := w.Now().UTC()
		var due []steward.OutboxMessage
		if err := w.Store.Read(ctx, func(tx steward.Tx) (err error) {
			due, err = tx.DueMessages(ctx, w.instance, now, batchSize)
			return err
		}); err != nil {
			return delivered, err
		}
		if len(due) == 0 {
			return delivered, nil
		}
		mine, err := w.claim(ctx, due, now)
		if err != nil {
			return delivered, err
		}
		// Deliver the whole batch, then record the outcomes in one transaction:
		// a write per message would make the outbox the store's busiest writer.
		outcomes := make([]outcome, 0, len(mine))
		deferred := 0
		for _, m := range mine {
			if w.Now().Add(deliveryMargin).After(m.ClaimedUntil) {
				deferred++ // the claim could run out while it is sent: claimed anew next batch
				continue
			}
			err := w.deliver(ctx, m)
			if err != nil {
				w.Logger.Warn("outbox: delivery failed", "message", m.ID, "channel", m.Channel, "attempt", m.Attempts+1, "err", err)
			}
			outcomes = append(outcomes, outcome{m, err})
		}
		if err := w.record(ctx, outcomes); err != nil {
			return delivered, err
		}
		for _, o := range outcomes {
			if o.err == nil {
				delivered++
			}
		}
		if len(due) < batchSize && deferred == 0 {
			return delivered, nil
		}
	}
}

// outcome is the result of one delivery attempt.
type outcome struct {
	m   steward.OutboxMessage
	err error
}

// record marks the messages of outcomes delivered or failed, in one write.
func (w *Worker) record(ctx context.Context, outcomes []outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	at := w.Now().UTC()
	return w.Store.Write(ctx, func(tx steward.Tx) error {
		for _, o := range outcomes {
			if o.err == nil {
				if err := tx.MarkDelivered(ctx, o.m.ID, at); err != nil {
					return err
				}
				continue
			}
			attempts := o.m.Attempts + 1
			next := at.Add(Backoff(attempts))
			if attempts >= w.MaxAttempts {
				next = at.Add(100 * 365 * 24 * time.Hour) // given up: kept for inspection
			}
			// The claim stays with this process until the retry is due, plus the
			// lease: it retries the message, unless it is gone by then.
			if err := tx.MarkFailed(ctx, w.instance, o.m.ID, attempts, next, next.Add(steward.OutboxLease), steward.ErrorMessage(o.err)); err != nil {
				return err
			}
		}
		return nil
	})
}

// claim returns the messages of due this process may deliver: those it holds a
// claim on for renewBelow more already, as read, and those it claims now in one
// write, each claimed until now plus steward.OutboxLease. The rest were taken by
// another process since they were read.
func (w *Worker) claim(ctx context.Context, due []steward.OutboxMessage, now time.Time) ([]steward.OutboxMessage, error) {
	var ids []string
	for _, m := range due {
		if !w.holds(m, now) {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return due, nil // the usual case: this process queued them
	}
	until := now.Add(steward.OutboxLease)
	var won []string
	if err := w.Store.Write(ctx, func(tx steward.Tx) (err error) {
		won, err = tx.ClaimMessages(ctx, w.instance, ids, now, until)
		return err
	}); err != nil {
		return nil, err
	}
	claimed := make(map[string]bool, len(won))
	for _, id := range won {
		claimed[id] = true
	}
	mine := make([]steward.OutboxMessage, 0, len(due))
	for _, m := range due {
		if claimed[m.ID] {
			m.ClaimedBy, m.ClaimedUntil = w.instance, until
			mine = append(mine, m)
		} else if w.holds(m, now) {
			mine = append(mine, m)
		}
	}
	return mine, nil
}

// holds reports whether m, as read, is claimed by this process for at least
// renewBelow after now.
func (w *Worker) holds(m steward.OutboxMessage, now time.Time) bool {
	return m.ClaimedBy == w.instance && !m.ClaimedUntil.Before(now.Add(renewBelow))
}

func (w *Worker) deliver(ctx context.Context, m steward.OutboxMessage) error {
	sink, ok := w.Sinks[m.Channel]
	if !ok {
		return steward.Errorf(steward.EUNAVAILABLE, "no sink for channel %s", m.Channel)
	}
	plain, err := w.Keys.OpenMessage(m.ID, m.Payload)
	if err != nil {
		return err
	}
	var p steward.MessagePayload
	if err := json.Unmarshal(plain, &p); err != nil {
		return fmt.Errorf("outbox: decode payload of %s: %w", m.ID, err)
	}
	return sink.Deliver(ctx, Message{ID: m.ID, Channel: m.Channel, Kind: m.Kind, SubjectID: m.SubjectID, MessagePayload: p})
}

// FileSink is the development sink: it appends each message as one JSON object
// per line to a file (doc/operations.md documents the format):
//
//	{"id":"…","channel":"sms","kind":"otp","to":"+8613800138000","body":"…","subject_id":"","at":"2026-11-29T08:00:00Z"}
//
// The file holds what an SMS gateway would send, PI included, so it is created
// with mode 0600 and must never be used in production.
type FileSink struct {
	Path string
	Now  func() time.Time
	mu   sync.Mutex
}

// Deliver appends m to the file.
func (f *FileSink) Deliver(ctx context.Context, m Message) error {
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	line, err := json.Marshal(struct {
		ID        string            `json:"id"`
		Channel   string            `json:"channel"`
		Kind      string            `json:"kind"`
		To        string            `json:"to"`
		Subject   string            `json:"subject,omitempty"`
		Body      string            `json:"body"`
		Headers   map[string]string `json:"headers,omitempty"`
		SubjectID string            `json:"subject_id"`
		At        time.Time         `json:"at"`
	}{m.ID, m.Channel, m.Kind, m.To, m.Subject, m.Body, m.Headers, m.SubjectID, now().UTC()})
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return err
	}
	file, err := os.OpenFile(f.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("outbox: open sink: %w", err)
	}
	if _, err := file.Write(append(line, '\n')); err != nil {
		file.Close()
		return fmt.Errorf("outbox: write sink: %w", err)
	}
	return file.Close()
}

// MemorySink keeps delivered messages in memory, for tests.
type MemorySink struct {
	mu       sync.Mutex
	messages []Message
}

// Deliver records m.
func (s *MemorySink) Deliver(ctx context.Context, m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, m)
	return nil
}

// Messages returns a copy of the messages delivered so far.
func (s *MemorySink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Last returns the last message sent to address to, if any.
func (s *MemorySink) Last(to string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.messages) - 1; i >= 0; i-- {
		if s.messages[i].To == to {
			return s.messages[i], true
		}
	}
	return Message{}, false
}
