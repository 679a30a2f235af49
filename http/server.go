// Package http serves Steward's JSON API under /v1, with its OpenAPI 3.1
// document, health, readiness and Prometheus metrics, and holds a Go client for it.
//
// Adapters move bytes and never decide: every handler decodes its input, calls one
// steward.Service method with the caller's actor in the context and writes the
// result or the error. Authorization, consent and purpose checks live in the root
// package.
package http

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stewardhq/steward"
)

// DefaultMaxBodyBytes is the largest request body accepted unless Options say
// otherwise: 8 MiB, room for a 5 MiB photo in base64 plus the rest of a registration.
const DefaultMaxBodyBytes = 8 << 20

// Options configure a Server. The zero value is usable.
type Options struct {
	// Logger receives one JSON line per request and the causes of internal errors.
	// Default: discard.
	Logger *slog.Logger
	// Ready reports whether the server can serve: it should ping the data store and
	// the key store. /readyz answers 503 when it returns an error. Default: ping the
	// service's data store.
	Ready func(ctx context.Context) error
	// Registry receives the HTTP metrics and is what /metrics serves. Default: a new
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
	// MaxBodyBytes limits request bodies; larger ones are ETOOLARGE (413).
	// Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// TrustProxy takes the client address from the last X-Forwarded-For entry (the
	// one the proxy in front appended) and accepts the proxy's X-Request-Id. Set it
	// only behind a proxy that sets these headers.
	TrustProxy bool
}

// Server serves the JSON API. Build it with NewServer; it is safe for concurrent use.
type Server struct {
	svc      *steward.Service
	log      *slog.Logger
	ready    func(ctx context.Context) error
	maxBody  int64
	proxy    bool
	mux      *http.ServeMux
	metrics  *metrics
	patterns []string // every pattern registered, for the OpenAPI coverage test
	decl     []byte   // the declaration in force, marshalled once

	// ---- feature state: one field per feature file that needs one ----
	recipients *RecipientFeatures      // recipients.go; nil until SetRecipientFeatures
	requests   *steward.RequestService // requests.go; nil until SetRequestService
	links      LinkOptions             // links.go; zero until SetLinkOptions
	// ---- end of feature state ----
}

// NewServer returns a Server for svc with its routes registered.
func NewServer(svc *steward.Service, opts Options) *Server {
	s := &Server{svc: svc, log: opts.Logger, ready: opts.Ready, maxBody: opts.MaxBodyBytes, proxy: opts.TrustProxy, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.ready == nil {
		s.ready = svc.Store().Ping
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	decl, err := json.Marshal(svc.Declaration())
	if err != nil {
		panic("http: marshal declaration: " + err.Error())
	}
	s.decl = decl
	s.metrics = newMetrics(opts.Registry, svc.Declaration().Version)
	s.routes()
	return s
}

// routes registers every route. Each feature keeps its routes in its own file, in a
// method registerXRoutes that calls s.handle, s.handlePublic or s.handleOps: ops.go
// (health, readiness, metrics, public documents), auth.go (sign-up, sign-in), me.go
// (the signed-in subject), subjects.go (client apps). To add a feature, add one
// line to the list below and document its paths in openapi.json.
func (s *Server) routes() {
	// ---- route groups: one line per feature ----
	s.registerOpsRoutes()
	s.registerAuthRoutes()
	s.registerMeRoutes()
	s.registerSubjectRoutes()
	s.registerRecipientRoutes()
	s.registerRequestRoutes()
	s.registerShieldRoutes() // contacts.go, links.go
	s.registerWeChatRoutes()
	// ---- end of route groups ----

	// Anything else is a JSON 404, never net/http's text page.
	s.mux.HandleFunc("/", s.handleNoRoute)
}

// Handler returns the server's http.Handler: security headers, request ids,
// metrics and the request log around the routes.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// handle registers an authenticated API route: the request must carry
// "Authorization: Bearer <token>" with a live session or API token, else 401
// EUNAUTHORIZED before h runs. h finds the actor with actor(r) and checks its kind
// with requireSubject, requireApp or requireStaff.
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		addr := s.clientAddress(r)
		token, ok := bearer(r)
		if !ok {
			s.Error(w, r, steward.Errorf(steward.EUNAUTHORIZED, "this route needs an Authorization: Bearer token"))
			return
		}
		a, err := s.svc.Authenticate(r.Context(), token)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		a.Address = addr
		setActor(w, a)
		h(w, r.WithContext(steward.WithActor(r.Context(), a)))
	})
}

// handlePublic registers an API route open to anonymous callers (sign-up and
// sign-in). Any Authorization header is ignored; the actor is anonymous but
// carries the client address for rate limits.
func (s *Server) handlePublic(pattern string, h http.HandlerFunc) {
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		a := steward.ActorFrom(r.Context())
		a.Address = s.clientAddress(r)
		h(w, r.WithContext(steward.WithActor(r.Context(), a)))
	})
}

// handleOps registers a route that needs no actor and does no authentication:
// health, readiness, metrics and public documents.
func (s *Server) handleOps(pattern string, h http.HandlerFunc) {
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(pattern, h)
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	t := strings.TrimSpace(h[7:])
	return t, t != ""
}

// actor returns the actor the request acts as (anonymous on public routes).
func actor(r *http.Request) steward.Actor { return steward.ActorFrom(r.Context()) }

// requireSubject returns the signed-in subject, or writes 401 (anonymous) or 403
// (an app or staff token) and returns false.
func (s *Server) requireSubject(w http.ResponseWriter, r *http.Request) (steward.Actor, bool) {
	return s.requireKind(w, r, steward.ActorSubject, "this route is for signed-in subjects; client app and staff tokens cannot use it")
}

// requireApp returns the client app calling, or writes 401 (anonymous) or 403
// (a subject or staff token) and returns false.
func (s *Server) requireApp(w http.ResponseWriter, r *http.Request) (steward.Actor, bool) {
	return s.requireKind(w, r, steward.ActorApp, "this route is for client apps with an app token")
}

// requireStaff returns the staff member calling if they hold one of roles (any
// staff member if roles is empty; admin holds every role), or writes 401
// (anonymous) or 403 and returns false.
func (s *Server) requireStaff(w http.ResponseWriter, r *http.Request, roles ...string) (steward.Actor, bool) {
	a, ok := s.requireKind(w, r, steward.ActorStaff, "this route is for staff tokens")
	if !ok || len(roles) == 0 {
		return a, ok
	}
	for _, role := range roles {
		if a.HasRole(role) {
			return a, true
		}
	}
	s.Error(w, r, steward.Errorf(steward.EFORBIDDEN, "this route needs one of the roles %s", strings.Join(roles, ", ")))
	return a, false
}

func (s *Server) requireKind(w http.ResponseWriter, r *http.Request, kind, forbidden string) (steward.Actor, bool) {
	a := actor(r)
	switch a.Kind {
	case kind:
		return a, true
	case steward.ActorAnon:
		s.Error(w, r, steward.Errorf(steward.EUNAUTHORIZED, "this route needs an Authorization: Bearer token"))
	default:
		s.Error(w, r, steward.Errorf(steward.EFORBIDDEN, "%s", forbidden))
	}
	return a, false
}

// clientAddress returns the keyed hash, in hex, of the client's IP address: the
// connection's peer, or with TrustProxy the last X-Forwarded-For entry. The raw
// address never leaves this function: rate limits and codes see only the hash.
func (s *Server) clientAddress(r *http.Request) string {
	var ip netip.Addr
	if s.proxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			ip, _ = netip.ParseAddr(strings.TrimSpace(last))
		}
	}
	if !ip.IsValid() {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		ip, _ = netip.ParseAddr(host)
	}
	if !ip.IsValid() {
		return ""
	}
	return hex.EncodeToString(s.svc.Keys().HashSecret("client", ip.Unmap().String()))
}

// Static header values, shared so that setting them allocates nothing.
var (
	hdrNoStore  = []string{"no-store"}
	hdrNosniff  = []string{"nosniff"}
	hdrCSP      = []string{"default-src 'none'; frame-ancestors 'none'"}
	hdrNoRef    = []string{"no-referrer"}
	hdrJSON     = []string{"application/json"}
	hdrPublic5m = []string{"public, max-age=300"}
)

// serve wraps every request: security headers, a request id, the request log
// line and the metrics.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w, status: http.StatusOK}
	rw.id = s.requestID(r)
	h := w.Header()
	h["Cache-Control"] = hdrNoStore
	h["X-Content-Type-Options"] = hdrNosniff
	h["Content-Security-Policy"] = hdrCSP
	h["Referrer-Policy"] = hdrNoRef
	h["X-Request-Id"] = []string{rw.id}
	s.metrics.inFlight.Inc()
	defer func() {
		s.metrics.inFlight.Dec()
		// Labels come from the route table, never from the raw path or an unknown
		// method, so a scanner cannot blow up the metrics' cardinality.
		method, route := r.Method, r.Pattern
		if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		if route == "" || route == "/" {
			method, route = knownMethod(method), "unmatched"
		}
		d := time.Since(start)
		s.metrics.observe(method, route, rw.status, d)
		level := slog.LevelInfo
		if rw.status >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(r.Context(), level, "request",
			slog.String("request_id", rw.id),
			slog.String("method", method),
			slog.String("route", route),
			slog.Int("status", rw.status),
			slog.Int64("bytes", rw.bytes),
			slog.Duration("duration", d),
			slog.String("actor_kind", rw.actorKind),
			slog.String("actor_id", rw.actorID))
	}()
	// The mux records the matched pattern in r.Pattern; pass r itself so the
	// deferred log and metrics see it.
	s.mux.ServeHTTP(rw, r)
}

// requestID returns the proxy's X-Request-Id when trusted and well formed, else a
// new random one.
func (s *Server) requestID(r *http.Request) string {
	if s.proxy {
		if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
			return id
		}
	}
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// responseWriter records what the request log and the metrics need.
type responseWriter struct {
	http.ResponseWriter
	status    int
	bytes     int64
	wrote     bool
	id        string
	actorKind string
	actorID   string
}

func (w *responseWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// setActor records the actor for the request log.
func setActor(w http.ResponseWriter, a steward.Actor) {
	if rw, ok := w.(*responseWriter); ok {
		rw.actorKind, rw.actorID = a.Kind, a.ID
	}
}

// requestID returns the id of the request w answers, for log lines.
func requestID(w http.ResponseWriter) string {
	if rw, ok := w.(*responseWriter); ok {
		return rw.id
	}
	return ""
}

// handleNoRoute answers requests no route matches: 405 EMETHOD with an Allow
// header when the path exists under other methods, 404 ENOTFOUND otherwise.
func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, p := s.mux.Handler(probe); p != "" && p != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.Error(w, r, steward.Errorf(steward.EMETHOD, "%s is not served at this path; it accepts %s", r.Method, strings.Join(allow, ", ")))
		return
	}
	s.Error(w, r, steward.Errorf(steward.ENOTFOUND, "no such route"))
}

// knownMethod returns m if it is a standard method, else "OTHER".
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
