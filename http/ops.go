package http

import (
	"context"
	_ "embed"
	"net/http"
	"time"

	"github.com/stewardhq/steward"
)

// OpenAPI is the OpenAPI 3.1 document of the API, served as is at /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// readyTimeout bounds a readiness check, so that a hung database shows as not ready.
const readyTimeout = 2 * time.Second

func (s *Server) registerOpsRoutes() {
	s.handleOps("GET /healthz", s.handleHealth)
	s.handleOps("GET /readyz", s.handleReady)
	s.handleOps("GET /metrics", s.metrics.handler.ServeHTTP)
	s.handleOps("GET /v1/openapi.json", s.handleOpenAPI)
	s.handleOps("GET /v1/declaration", s.handleDeclaration)
}

var (
	healthBody = []byte(`{"status":"ok"}` + "\n")
	readyBody  = []byte(`{"status":"ready"}` + "\n")
)

// handleHealth reports that the process serves requests. It does no I/O.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header()["Content-Type"] = hdrJSON
	w.Write(healthBody)
}

// handleReady reports whether the data store and the key store answer.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		s.Error(w, r, steward.WrapError(steward.EUNAVAILABLE, "a dependency of Steward does not answer", err))
		return
	}
	w.Header()["Content-Type"] = hdrJSON
	w.Write(readyBody)
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrPublic5m
	w.Write(OpenAPI)
}

// handleDeclaration serves the declaration in force: the machine-readable policy
// every notice is rendered from. It is public, like the notice.
func (s *Server) handleDeclaration(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrPublic5m
	w.Write(s.decl)
}
