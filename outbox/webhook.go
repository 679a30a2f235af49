package outbox

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
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
//
// The default client refuses to connect to an address steward.RefusedWebhookAddr
// names (link-local such as the 169.254.169.254 metadata service, unspecified),
// checked on the address being dialled after name resolution: Register refuses
// such IP literals, and this catches a host name that resolves to one. Behind an
// HTTP proxy (HTTPS_PROXY) the check applies to the proxy's address; the proxy
// must then enforce its own egress rules.
type WebhookSink struct {
	// Client sends the requests; default: a client with Timeout that follows no
	// redirects and dials through dialGuard. A Client set here must do its own
	// address checks.
	Client *http.Client
	// Timeout bounds one attempt, connection to last byte; default 10 s.
	Timeout time.Duration
	// Now stamps each attempt's signature; default time.Now.
	Now func() time.Time
	// Sign returns headers to add for delivering m at t; nil adds none.
	Sign func(ctx context.Context, m Message, t time.Time) (map[string]string, error)

	once   sync.Once
	client *http.Client // the default client, built once so connections are reused
}

// errRefusedAddr is what dialGuard returns for a refused address.
var errRefusedAddr = errors.New("outbox: refused webhook address")

// dialGuard is the net.Dialer Control function of the default client: it refuses
// a connection to an address steward.RefusedWebhookAddr names. It sees the
// resolved IP address and port ("169.254.169.254:80"), so it holds for host names
// and literals alike, and runs before any packet is sent.
func dialGuard(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return errRefusedAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || steward.RefusedWebhookAddr(addr) {
		return errRefusedAddr
	}
	return nil
}

// defaultClient returns the client Deliver uses when Client is nil.
func (s *WebhookSink) defaultClient(timeout time.Duration) *http.Client {
	s.once.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: dialGuard}).DialContext
		s.client = &http.Client{Transport: tr, Timeout: timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	})
	return s.client
}

// maxWebhookResponse bounds how much of a receiver's answer is read (and dropped).
const maxWebhookResponse = 64 << 10

// Deliver POSTs m. Errors are EUNAVAILABLE with a message naming the HTTP status
// or the failure, or EFORBIDDEN when the receiver's address is refused (the Worker
// retries both: a name may resolve elsewhere later), never naming the URL or the
// body.
func (s *WebhookSink) Deliver(ctx context.Context, m Message) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	client := s.Client
	if client == nil {
		client = s.defaultClient(timeout)
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
	if errors.Is(err, errRefusedAddr) {
		return steward.WrapError(steward.EFORBIDDEN, "the webhook receiver's address is refused: it is link-local or unspecified, such as 169.254.169.254", err)
	}
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
