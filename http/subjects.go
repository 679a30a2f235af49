package http

import (
	"net/http"
	"strings"

	"github.com/stewardhq/steward"
)

func (s *Server) registerSubjectRoutes() {
	s.handle("GET /v1/subjects/{id}/data", s.handleReadForPurpose)
	s.handle("GET /v1/subjects/{id}/consents/{purpose}", s.handleCheckConsent)
}

// PurposeData is a subject's fields read by a client app under one purpose.
type PurposeData struct {
	SubjectID string              `json:"subject_id"`
	Purpose   string              `json:"purpose"`
	Fields    steward.FieldValues `json:"fields"`
}

// BasisHolds answers a consent check whose legal basis holds; when it does not,
// the answer is the 403 error naming what is missing.
type BasisHolds struct {
	SubjectID  string `json:"subject_id"`
	Purpose    string `json:"purpose"`
	BasisHolds bool   `json:"basis_holds"`
}

// handleReadForPurpose serves GET /v1/subjects/{id}/data?purpose=P&fields=a,b.
func (s *Server) handleReadForPurpose(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireApp(w, r); !ok {
		return
	}
	q := r.URL.Query()
	purpose := q.Get("purpose")
	if purpose == "" {
		s.Error(w, r, steward.Errorf(steward.EINVALID, "the purpose query parameter is required: every read names its purpose"))
		return
	}
	if len(q["purpose"]) > 1 || len(q["fields"]) > 1 {
		s.Error(w, r, steward.Errorf(steward.EINVALID, "name one purpose per read (and give fields once): a read is bound to a single purpose"))
		return
	}
	var fields []string
	if f := q.Get("fields"); f != "" {
		fields = strings.Split(f, ",")
	}
	id := r.PathValue("id")
	values, err := s.svc.ReadForPurpose(r.Context(), id, purpose, fields)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, PurposeData{SubjectID: id, Purpose: purpose, Fields: values})
}

func (s *Server) handleCheckConsent(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireApp(w, r); !ok {
		return
	}
	id, purpose := r.PathValue("id"), r.PathValue("purpose")
	if err := s.svc.CheckConsent(r.Context(), id, purpose); err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, BasisHolds{SubjectID: id, Purpose: purpose, BasisHolds: true})
}
