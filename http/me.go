package http

import (
	"net/http"

	"github.com/stewardhq/steward"
)

func (s *Server) registerMeRoutes() {
	s.handle("GET /v1/me", s.handleMe)
	s.handle("PATCH /v1/me", s.handleUpdateMe)
	s.handle("GET /v1/me/consents", s.handleConsents)
	s.handle("POST /v1/me/consents", s.handleGrantConsent)
	s.handle("DELETE /v1/me/consents/{purpose}", s.handleWithdrawConsent)
	s.handle("GET /v1/me/consents/{event_id}/receipt", s.handleConsentReceipt)
	s.handle("GET /v1/me/export", s.handleExport)
	s.handle("POST /v1/me/cancellation/code", s.handleSendCancellationCode)
	s.handle("POST /v1/me/cancellation", s.handleCancel)
}

// UpdateMeRequest changes profile fields; a field set to null is deleted.
type UpdateMeRequest struct {
	Fields steward.FieldValues `json:"fields"`
}

// Consents is the answer of GET /v1/me/consents: the consents in force and every
// consent event, oldest first.
type Consents struct {
	Current []steward.ConsentState `json:"current"`
	History []steward.ConsentEvent `json:"history"`
}

// CancelRequest confirms an account cancellation with the code sent by SMS.
type CancelRequest struct {
	Code string `json:"code"`
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	p, err := s.svc.Me(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleUpdateMe(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	var in UpdateMeRequest
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	p, err := s.svc.UpdateMe(r.Context(), in.Fields)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleConsents(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	cur, hist, err := s.svc.Consents(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, Consents{Current: cur, History: hist})
}

func (s *Server) handleGrantConsent(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	var in steward.ConsentChoice
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	rc, err := s.svc.GrantConsent(r.Context(), in)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, rc)
}

func (s *Server) handleWithdrawConsent(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	rc, err := s.svc.WithdrawConsent(r.Context(), r.PathValue("purpose"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, rc)
}

func (s *Server) handleConsentReceipt(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	rc, err := s.svc.ConsentReceipt(r.Context(), r.PathValue("event_id"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.download(w, r, "consent-receipt-"+rc.ReceiptID+".json", rc)
}

func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	a, ok := s.requireSubject(w, r)
	if !ok {
		return
	}
	x, err := s.svc.ExportMe(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.download(w, r, "steward-export-"+a.ID+".json", x)
}

func (s *Server) handleSendCancellationCode(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	out, err := s.svc.SendCancellationCode(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusAccepted, out)
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	var in CancelRequest
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	rc, err := s.svc.CancelAccount(r.Context(), in.Code)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, rc)
}
