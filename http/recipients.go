package http

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// RecipientFeatures are what the recipient routes serve: the recipient register
// with its notices (P10, P18, P19, P21), legal holds (P27) and deletion
// certificates (P19). Give them to a Server with SetRecipientFeatures.
type RecipientFeatures struct {
	Recipients *steward.Recipients
	Holds      *steward.Holds
	Erasure    *steward.Erasure
}

// SetRecipientFeatures makes s serve f. Until it is called the recipient, hold
// and certificate routes answer 503 EUNAVAILABLE. Call it before serving.
func (s *Server) SetRecipientFeatures(f RecipientFeatures) { s.recipients = &f }

func (s *Server) registerRecipientRoutes() {
	s.handle("POST /v1/recipients", s.handleRegisterRecipient)
	s.handle("GET /v1/recipients", s.handleListRecipients)
	s.handle("GET /v1/recipients/notices", s.handleListNotices)
	s.handlePublic("POST /v1/recipients/notices/{notice_id}/ack", s.handleAckNotice)
	s.handle("POST /v1/subjects/{id}/disclosures", s.handleDisclose)
	s.handle("POST /v1/subjects/{id}/holds", s.handlePlaceHold)
	s.handle("GET /v1/subjects/{id}/holds", s.handleListHolds)
	s.handle("GET /v1/subjects/{id}/held-data", s.handleReadHeld)
	s.handle("POST /v1/holds/{hold_id}/release", s.handleReleaseHold)
	s.handleOps("GET /v1/certificates/public-key", s.handleCertificateKey)
	s.handle("GET /v1/certificates/{request_id}", s.handleCertificate)
}

// features returns the recipient features, or writes 503 and returns nil.
func (s *Server) features(w http.ResponseWriter, r *http.Request) *RecipientFeatures {
	if s.recipients == nil {
		s.Error(w, r, steward.Errorf(steward.EUNAVAILABLE, "recipients, legal holds and certificates are not configured on this server"))
		return nil
	}
	return s.recipients
}

// RecipientList is the answer of GET /v1/recipients.
type RecipientList struct {
	Recipients []steward.Recipient `json:"recipients"`
}

// NoticeList is the answer of GET /v1/recipients/notices.
type NoticeList struct {
	Notices []steward.RecipientNotice `json:"notices"`
}

// HoldList is the answer of GET /v1/subjects/{id}/holds.
type HoldList struct {
	Holds []steward.LegalHold `json:"holds"`
}

// HeldData is a subject's held fields read for a hold's purpose.
type HeldData struct {
	SubjectID string              `json:"subject_id"`
	Purpose   string              `json:"purpose"`
	Fields    steward.FieldValues `json:"fields"`
}

// holdRequest is the body of POST /v1/subjects/{id}/holds.
type holdRequest struct {
	Fields    []string         `json:"fields"`
	Case      steward.HoldCase `json:"case"`
	Reference string           `json:"reference"`
	Purpose   string           `json:"purpose"`
	Until     time.Time        `json:"until,omitzero"`
}

// releaseRequest is the body of POST /v1/holds/{hold_id}/release.
type releaseRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) handleRegisterRecipient(w http.ResponseWriter, r *http.Request) {
	f := s.features(w, r)
	if f == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	var in steward.RecipientInput
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	rec, err := f.Recipients.Register(r.Context(), in)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, rec)
}

func (s *Server) handleListRecipients(w http.ResponseWriter, r *http.Request) {
	f := s.features(w, r)
	if f == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	list, err := f.Recipients.List(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, RecipientList{Recipients: list})
}

// handleListNotices serves GET /v1/recipients/notices?state=pending&overdue=true
// &recipient_id=…&request_id=…&subject_id=….
func (s *Server) handleListNotices(w http.ResponseWriter, r *http.Request) {
	f := s.features(w, r)
	if f == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	q := r.URL.Query()
	filter := steward.NoticeFilter{State: q.Get("state"), RecipientID: q.Get("recipient_id"), RequestID: q.Get("request_id"), SubjectID: q.Get("subject_id")}
	switch q.Get("overdue") {
	case "", "false":
	case "true":
		filter.OverdueAt = s.svc.Now()
	default:
		s.Error(w, r, steward.Errorf(steward.EINVALID, "overdue must be true or false"))
		return
	}
	ns, err := f.Recipients.Notices(r.Context(), filter)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, NoticeList{Notices: ns})
}

// maxAckBytes bounds an acknowledgement body: a notice id and an outcome.
const maxAckBytes = 4 << 10

// handleAckNotice serves a recipient's acknowledgement. It has no bearer token:
// the Steward-Signature header over the exact body is the authentication, so the
// body is read raw and handed over unparsed.
func (s *Server) handleAckNotice(w http.ResponseWriter, r *http.Request) {
	f := s.features(w, r)
	if f == nil {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			s.Error(w, r, steward.Errorf(steward.EUNSUPPORTED, "the request body must be application/json"))
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAckBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		s.Error(w, r, steward.Errorf(steward.ETOOLARGE, "the request body exceeds %d bytes", maxAckBytes))
		return
	} else if err != nil {
		s.Error(w, r, steward.WrapError(steward.EINVALID, "the request body could not be read", err))
		return
	}
	n, err := f.Recipients.Acknowledge(r.Context(), r.PathValue("notice_id"), body, r.Header.Get(steward.SignatureHeader))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, n)
}

func (s *Server) handleDisclose(w http.ResponseWriter, r *http.Request) {
	f := s.features(w, r)
	if f == nil {
		return
	}
	if _, ok := s.requireApp(w, r); !ok {
		return
	}
	var in steward.DisclosureInput
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	d, err := f.Recipients.Disclose(r.Context(), r.PathValue("id"), in)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, d)
}

func (s *Server) handlePlaceHold(w http.ResponseWriter, r *http.Request) {
	f := s.features(w, r)
	if f == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	var in holdRequest
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	h, err := f.Holds.Place(r.Context(), steward.HoldInput{SubjectID: r.PathValue("id"), Fields: in.Fields, Case: in.Case,
		Reference: in.Reference, Purpose: in.Purpose, Until: in.Until})
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, h)
}

func (s *Server) handleListHolds(w http.ResponseWriter, r *http.Request) {
	f := s.features(w, r)
	if f == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	hs, err := f.Holds.List(r.Context(), r.PathValue("id"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, HoldList{Holds: hs})
}

// handleReadHeld serves GET /v1/subjects/{id}/held-data?purpose=P&fields=a,b to
// privacy officers and client apps declared for P.
func (s *Server) handleReadHeld(w http.ResponseWriter, r *http.Request) {
	f := s.features(w, r)
	if f == nil {
		return
	}
	q := r.URL.Query()
	purpose := q.Get("purpose")
	if purpose == "" {
		s.Error(w, r, steward.Errorf(steward.EINVALID, "the purpose query parameter is required: held data is read only for its hold's purpose"))
		return
	}
	var fields []string
	if v := q.Get("fields"); v != "" {
		fields = strings.Split(v, ",")
	}
	id := r.PathValue("id")
	values, err := f.Holds.ReadHeld(r.Context(), id, purpose, fields)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, HeldData{SubjectID: id, Purpose: purpose, Fields: values})
}

func (s *Server) handleReleaseHold(w http.ResponseWriter, r *http.Request) {
	f := s.features(w, r)
	if f == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	var in releaseRequest
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	h, err := f.Holds.Release(r.Context(), r.PathValue("hold_id"), in.Reason)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, h)
}

func (s *Server) handleCertificateKey(w http.ResponseWriter, r *http.Request) {
	f := s.features(w, r)
	if f == nil {
		return
	}
	s.writeJSON(w, http.StatusOK, f.Erasure.PublicKey())
}

// handleCertificate serves the signed certificate of a fulfilled deletion or
// cancellation request, byte for byte as issued.
func (s *Server) handleCertificate(w http.ResponseWriter, r *http.Request) {
	f := s.features(w, r)
	if f == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	body, err := f.Erasure.Certificate(r.Context(), r.PathValue("request_id"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	w.Header()["Content-Type"] = hdrJSON
	w.WriteHeader(http.StatusOK)
	w.Write(append(body, '\n'))
}
