package http

import (
	"net/http"

	"github.com/stewardhq/steward"
)

func (s *Server) registerAuthRoutes() {
	s.handlePublic("POST /v1/auth/codes", s.handleSendCode)
	s.handlePublic("POST /v1/register", s.handleRegister)
	s.handlePublic("POST /v1/auth/sign-in", s.handleSignIn)
}

// SendCodeRequest asks for a one-time code by SMS.
type SendCodeRequest struct {
	Phone   string `json:"phone"`
	Purpose string `json:"purpose"` // steward.CodeRegister or steward.CodeSignIn
}

// SignInRequest exchanges a one-time code for a session token.
type SignInRequest struct {
	Phone string `json:"phone"`
	Code  string `json:"code"`
}

func (s *Server) handleSendCode(w http.ResponseWriter, r *http.Request) {
	var in SendCodeRequest
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	out, err := s.svc.SendCode(r.Context(), in.Phone, in.Purpose)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusAccepted, out)
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var in steward.Registration
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	out, err := s.svc.Register(r.Context(), in)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	setActor(w, steward.Actor{Kind: steward.ActorSubject, ID: out.SubjectID})
	s.writeJSON(w, http.StatusCreated, out)
}

func (s *Server) handleSignIn(w http.ResponseWriter, r *http.Request) {
	var in SignInRequest
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	out, err := s.svc.SignIn(r.Context(), in.Phone, in.Code)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	setActor(w, steward.Actor{Kind: steward.ActorSubject, ID: out.SubjectID})
	s.writeJSON(w, http.StatusOK, out)
}
