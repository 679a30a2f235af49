package http

import (
	"net/http"

	"github.com/stewardhq/steward"
)

// registerWeChatRoutes registers sign-in with WeChat and binding a WeChat account
// to a signed-in subject. Registration with WeChat is POST /v1/register with
// wechat_code (auth.go).
func (s *Server) registerWeChatRoutes() {
	s.handlePublic("POST /v1/auth/wechat", s.handleSignInWeChat)
	s.handle("POST /v1/me/wechat", s.handleBindWeChat)
}

// WeChatCodeRequest carries a WeChat OAuth2 authorization code, obtained by the
// app from WeChat after the person authorized it.
type WeChatCodeRequest struct {
	Code string `json:"code"`
}

func (s *Server) handleSignInWeChat(w http.ResponseWriter, r *http.Request) {
	var in WeChatCodeRequest
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	out, err := s.svc.SignInWeChat(r.Context(), in.Code)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	setActor(w, steward.Actor{Kind: steward.ActorSubject, ID: out.SubjectID})
	s.writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleBindWeChat(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	var in WeChatCodeRequest
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	p, err := s.svc.BindWeChat(r.Context(), in.Code)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, p)
}
