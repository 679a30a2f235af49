package http

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// LinkOptions configure the short links and unsubscribe links the server hands out.
type LinkOptions struct {
	// PublicURL is the scheme and host links are built on, such as
	// "https://s.commaker.com", without a trailing slash. Empty: the scheme and Host
	// of each link-creating request (X-Forwarded-Proto counts with TrustProxy),
	// which suits development only: SMS and e-mail need the public address.
	PublicURL string
}

// SetLinkOptions sets how link URLs are built. Call it before serving.
func (s *Server) SetLinkOptions(o LinkOptions) { s.links = o }

func (s *Server) registerLinkRoutes() {
	s.handle("POST /v1/links", s.handleCreateLink)
	s.handlePublic("GET /l/{id}", s.handleFollowLink)
	s.handlePublic("GET /u/{token}", s.handleUnsubscribePage)
	s.handlePublic("POST /u/{token}", s.handleUnsubscribe)
}

// OneClick is the List-Unsubscribe-Post header value of RFC 8058 and the form
// body a mail client posts.
const OneClick = "List-Unsubscribe=One-Click"

// CreatedLink answers POST /v1/links: the short link to send and the unsubscribe
// link, with the e-mail headers that carry it (RFC 2369, RFC 8058). The
// unsubscribe token inside the URLs is shown only here.
type CreatedLink struct {
	ID                  string    `json:"id"`
	SubjectID           string    `json:"subject_id"`
	Campaign            string    `json:"campaign,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	ShortURL            string    `json:"short_url"`
	UnsubscribeURL      string    `json:"unsubscribe_url"`
	ListUnsubscribe     string    `json:"list_unsubscribe"`      // value of the List-Unsubscribe header
	ListUnsubscribePost string    `json:"list_unsubscribe_post"` // value of the List-Unsubscribe-Post header
}

// linkBase returns the scheme and host of link URLs.
func (s *Server) linkBase(r *http.Request) string {
	if s.links.PublicURL != "" {
		return strings.TrimSuffix(s.links.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil || (s.proxy && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) handleCreateLink(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireApp(w, r); !ok {
		return
	}
	var in steward.LinkRequest
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	l, err := s.svc.CreateLink(r.Context(), in)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	base := s.linkBase(r)
	unsub := base + "/u/" + l.UnsubscribeToken
	s.writeJSON(w, http.StatusCreated, CreatedLink{ID: l.ID, SubjectID: l.SubjectID, Campaign: l.Campaign, CreatedAt: l.CreatedAt,
		ShortURL: base + "/l/" + l.ID, UnsubscribeURL: unsub, ListUnsubscribe: "<" + unsub + ">", ListUnsubscribePost: OneClick})
}

// handleFollowLink redirects to a link's destination. Only a GET may record a
// click (and only with consent); a HEAD, as link previewers send, never does.
func (s *Server) handleFollowLink(w http.ResponseWriter, r *http.Request) {
	dest, err := s.svc.FollowLink(r.Context(), r.PathValue("id"), r.Method == http.MethodGet)
	if err != nil {
		s.htmlError(w, r, err)
		return
	}
	// No body: the Location is all a client needs, and Referrer-Policy no-referrer
	// (set for every response) keeps the short link from the destination's logs.
	w.Header().Set("Location", dest)
	w.WriteHeader(http.StatusFound)
}

// handleUnsubscribePage shows what the unsubscribe link does and a button that
// does it. It changes nothing: mail scanners fetch links.
func (s *Server) handleUnsubscribePage(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.CheckUnsubscribe(r.Context(), r.PathValue("token")); err != nil {
		s.htmlError(w, r, err)
		return
	}
	s.htmlPage(w, http.StatusOK, page{Title: "Unsubscribe", Controller: s.svc.Declaration().Controller.Name,
		Text: "Stop receiving news and offers from " + s.svc.Declaration().Controller.Name + "? " +
			"Messages about your account and its security still reach you.",
		Form: true})
}

// handleUnsubscribe withdraws the marketing purpose: from the page's button or an
// RFC 8058 one-click POST (body List-Unsubscribe=One-Click). The token in the
// path is the credential; the body is not needed and not read.
func (s *Server) handleUnsubscribe(w http.ResponseWriter, r *http.Request) {
	out, err := s.svc.Unsubscribe(r.Context(), r.PathValue("token"))
	if err != nil {
		s.htmlError(w, r, err)
		return
	}
	text := "You are unsubscribed: you will receive no more news or offers from " + s.svc.Declaration().Controller.Name + "."
	if out.Already {
		text = "You were already unsubscribed: you receive no news or offers from " + s.svc.Declaration().Controller.Name + "."
	}
	s.htmlPage(w, http.StatusOK, page{Title: "Unsubscribed", Controller: s.svc.Declaration().Controller.Name, Text: text})
}

// page is what the small HTML pages of links and unsubscribe show.
type page struct {
	Title, Controller, Text string
	Form                    bool
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{.Title}} · {{.Controller}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}button{font:inherit;padding:.5rem 1rem}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Text}}</p>
{{if .Form}}<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>{{end}}
</body></html>
`))

// hdrPageCSP lets the pages use their inline style and post their form to themselves.
var hdrPageCSP = []string{"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"}

func (s *Server) htmlPage(w http.ResponseWriter, status int, p page) {
	h := w.Header()
	h["Content-Type"] = []string{"text/html; charset=utf-8"}
	h["Content-Security-Policy"] = hdrPageCSP
	w.WriteHeader(status)
	if err := pageTemplate.Execute(w, p); err != nil {
		s.log.Error("write page", "request_id", requestID(w), "err", err)
	}
}

// htmlError answers a browser route's error with a page: the error's user-facing
// message and its status; internal causes are logged, never shown.
func (s *Server) htmlError(w http.ResponseWriter, r *http.Request, err error) {
	code := steward.ErrorCode(err)
	msg := steward.ErrorMessage(err)
	if code == steward.EINTERNAL || code == steward.EUNAVAILABLE {
		msg = "Something went wrong on our side. Please try again later."
		s.log.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("request_id", requestID(w)), slog.String("route", r.Pattern), slog.String("err", err.Error()))
	}
	s.htmlPage(w, StatusOf(code), page{Title: http.StatusText(StatusOf(code)), Controller: s.svc.Declaration().Controller.Name, Text: msg})
}

// CreateLink registers a tracked link for a subject (POST /v1/links). Client app
// tokens only; EINVALID for a destination off the declaration's allowed hosts.
func (c *Client) CreateLink(ctx context.Context, in steward.LinkRequest) (*CreatedLink, error) {
	var out CreatedLink
	if _, err := c.do(ctx, http.MethodPost, "/v1/links", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
