package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/contacts"
)

// registerShieldRoutes registers the routes of contact shielding (P6), location
// (P7) and tracked links (P9, in links.go).
func (s *Server) registerShieldRoutes() {
	s.handle("POST /v1/me/contacts", s.handleImportContacts)
	s.handle("GET /v1/me/contacts", s.handleMyContacts)
	s.handle("DELETE /v1/me/contacts", s.handleDeleteContacts)
	s.handle("GET /v1/me/matches", s.handleMatches)
	s.handle("POST /v1/subjects/{id}/match-filter", s.handleMatchFilter)
	s.handle("POST /v1/me/location", s.handleSetLocation)
	s.handle("DELETE /v1/me/location", s.handleDeleteLocation)
	s.registerLinkRoutes()
}

// addressBookTypes are the media types an address-book upload may carry.
var addressBookTypes = []string{"text/vcard", "text/x-vcard", "text/directory", "text/csv", "application/octet-stream"}

// DeletedContacts answers DELETE /v1/me/contacts.
type DeletedContacts struct {
	Deleted int `json:"deleted"` // hashes deleted
}

// MatchFilterRequest is the body of POST /v1/subjects/{id}/match-filter.
type MatchFilterRequest struct {
	Candidates []string `json:"candidates"`
}

// MatchFilterResult answers it: the candidates allowed, in the order sent.
type MatchFilterResult struct {
	Allowed []string `json:"allowed"`
}

// LocationRequest is the body of POST /v1/me/location.
type LocationRequest struct {
	Latitude  *float64 `json:"latitude"`
	Longitude *float64 `json:"longitude"`
}

// DeletedLocation answers DELETE /v1/me/location.
type DeletedLocation struct {
	Deleted bool `json:"deleted"`
}

// handleImportContacts reads an uploaded address book and replaces the subject's
// stored hashes. Consent is checked before a byte of the upload is read; the upload
// is parsed in memory and neither stored nor logged; only the report and the count
// go back.
func (s *Server) handleImportContacts(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(addressBookTypes, mt) {
		s.Error(w, r, steward.Errorf(steward.EUNSUPPORTED, "an address book must be sent as %s", strings.Join(addressBookTypes, ", ")))
		return
	}
	plan, err := s.svc.PrepareContactImport(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	tooLarge := steward.Errorf(steward.EINVALID, "address book is larger than %d bytes", plan.MaxBytes)
	if r.ContentLength > plan.MaxBytes {
		s.Error(w, r, tooLarge)
		return
	}
	// The subject writes their contacts' numbers as dialled from their own country.
	region := contacts.RegionOf(plan.Phone)
	if region == "" {
		region = s.svc.Declaration().PhoneRegion
	}
	rep, err := contacts.Parse(http.MaxBytesReader(w, r.Body, plan.MaxBytes+1),
		contacts.Options{Region: region, MaxBytes: plan.MaxBytes, MaxNumbers: plan.MaxNumbers})
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			err = tooLarge
		case steward.ErrorCode(err) == steward.EINTERNAL:
			err = steward.WrapError(steward.EINVALID, "the upload could not be read to its end", err)
		}
		s.Error(w, r, err)
		return
	}
	out, err := s.svc.ImportContacts(r.Context(), rep.Numbers, steward.AddressBookReport{Format: rep.Format, Cards: rep.Cards,
		NumbersFound: rep.NumbersFound, Valid: rep.Valid, Invalid: rep.Invalid, Incomplete: rep.Incomplete, Warnings: rep.Warnings})
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleMyContacts(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	book, err := s.svc.MyContacts(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, book)
}

func (s *Server) handleDeleteContacts(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	n, err := s.svc.DeleteMyContacts(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, DeletedContacts{Deleted: n})
}

// handleMatches serves GET /v1/me/matches?limit=N&after=ID.
func (s *Server) handleMatches(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	q := r.URL.Query()
	limit := steward.DefaultMatchesLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.Error(w, r, steward.Errorf(steward.EINVALID, "limit must be a whole number from 1 to %d", steward.MaxMatchesLimit))
			return
		}
		limit = n
	}
	page, err := s.svc.Matches(r.Context(), q.Get("after"), limit)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, page)
}

func (s *Server) handleMatchFilter(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireApp(w, r); !ok {
		return
	}
	var in MatchFilterRequest
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	if in.Candidates == nil {
		s.Error(w, r, steward.Errorf(steward.EINVALID, "candidates is required: an array of subject ids"))
		return
	}
	allowed, err := s.svc.MatchFilter(r.Context(), r.PathValue("id"), in.Candidates)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, MatchFilterResult{Allowed: allowed})
}

func (s *Server) handleSetLocation(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	var in LocationRequest
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	if in.Latitude == nil || in.Longitude == nil {
		s.Error(w, r, steward.Errorf(steward.EINVALID, "latitude and longitude are required"))
		return
	}
	loc, err := s.svc.SetLocation(r.Context(), *in.Latitude, *in.Longitude)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, loc)
}

func (s *Server) handleDeleteLocation(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	had, err := s.svc.DeleteLocation(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, DeletedLocation{Deleted: had})
}

// ImportContacts uploads an address book (vCard or CSV) as the signed-in subject's
// and returns the report (POST /v1/me/contacts). contentType is one of text/vcard,
// text/x-vcard, text/directory, text/csv or application/octet-stream. EFORBIDDEN
// without consent for contact_shielding; EINVALID for a file too large, with too
// many numbers, not an address book, or holding no valid number (the stored book
// is then kept: DeleteMyContacts removes it).
func (c *Client) ImportContacts(ctx context.Context, contentType string, book io.Reader) (*steward.ContactImport, error) {
	var out steward.ContactImport
	if _, err := c.send(ctx, http.MethodPost, strings.TrimSuffix(c.BaseURL, "/")+"/v1/me/contacts", contentType, book, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// MyContacts returns the signed-in subject's address-book summary (GET /v1/me/contacts).
func (c *Client) MyContacts(ctx context.Context) (*steward.ContactBook, error) {
	var out steward.ContactBook
	if _, err := c.do(ctx, http.MethodGet, "/v1/me/contacts", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteMyContacts deletes the signed-in subject's address-book hashes and returns
// how many there were (DELETE /v1/me/contacts).
func (c *Client) DeleteMyContacts(ctx context.Context) (int, error) {
	var out DeletedContacts
	if _, err := c.do(ctx, http.MethodDelete, "/v1/me/contacts", nil, nil, &out); err != nil {
		return 0, err
	}
	return out.Deleted, nil
}

// MatchFilter returns the candidates subject id may be matched with, in the order
// given (POST /v1/subjects/{id}/match-filter). Client app tokens only.
func (c *Client) MatchFilter(ctx context.Context, id string, candidates []string) ([]string, error) {
	var out MatchFilterResult
	if candidates == nil {
		candidates = []string{}
	}
	if _, err := c.do(ctx, http.MethodPost, "/v1/subjects/"+url.PathEscape(id)+"/match-filter", nil, MatchFilterRequest{Candidates: candidates}, &out); err != nil {
		return nil, err
	}
	return out.Allowed, nil
}

// Matches returns one page of match suggestions for the signed-in subject
// (GET /v1/me/matches); limit 0 means the server's default.
func (c *Client) Matches(ctx context.Context, after string, limit int) (*steward.MatchPage, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit != 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var out steward.MatchPage
	if _, err := c.do(ctx, http.MethodGet, "/v1/me/matches", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetLocation stores the signed-in subject's position (POST /v1/me/location) and
// returns it as stored, rounded to the declared precision. EFORBIDDEN without
// consent for location_services.
func (c *Client) SetLocation(ctx context.Context, latitude, longitude float64) (*steward.Location, error) {
	var out steward.Location
	if _, err := c.do(ctx, http.MethodPost, "/v1/me/location", nil, LocationRequest{Latitude: &latitude, Longitude: &longitude}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
