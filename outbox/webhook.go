package outbox

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	"github.com/stewardhq/steward"
)

// WebhookSink delivers messages of channel "webhook": it POSTs the message body to
// the URL in To with the message's headers (Content-Type, Idempotency-Key) plus
// those Sign returns for this attempt (Steward-Signature), and counts any 2xx
// answer as delivered. Anything else, a timeout or a redirect (never followed: a
// signed notice goes only where it was addressed) fails the attempt, and the
// Worker retries it with backoff; the Idempotency-Key stays the same across
// attempts so the receiver can drop duplicates.
type WebhookSink struct {
	// Client sends the requests; default: a client with Timeout that follows no
	// redirects.
	Client *http.Client
	// Timeout bounds one attempt, connection to last byte; default 10 s.
	Timeout time.Duration
	// Now stamps each attempt's signature; default time.Now.
	Now func() time.Time
	// Sign returns headers to add for delivering m at t; nil adds none.
	Sign func(ctx context.Context, m Message, t time.Time) (map[string]string, error)
}

// maxWebhookResponse bounds how much of a receiver's answer is read (and dropped).
const maxWebhookResponse = 64 << 10

// Deliver POSTs m. Errors are EUNAVAILABLE with a message naming the HTTP status
// or the failure, never the URL or the body.
func (s *WebhookSink) Deliver(ctx context.Context, m Message) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.To, bytes.NewReader([]byte(m.Body)))
	if err != nil {
		return steward.WrapError(steward.EINVALID, "the webhook URL is not valid", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Steward-Webhook/1")
	for k, v := range m.Headers {
		req.Header.Set(k, v)
	}
	if s.Sign != nil {
		extra, err := s.Sign(ctx, m, now())
		if err != nil {
			return err
		}
		for k, v := range extra {
			req.Header.Set(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return steward.WrapError(steward.EUNAVAILABLE, "the webhook receiver could not be reached", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookResponse))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return steward.Errorf(steward.EUNAVAILABLE, "the webhook receiver answered HTTP %d", resp.StatusCode)
	}
	return nil
}
