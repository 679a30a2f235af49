package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/stewardhq/steward"
)

// decode reads the request body as one JSON value into v. The body is limited to
// the server's MaxBodyBytes (ETOOLARGE); a media type other than application/json
// is EUNSUPPORTED; malformed JSON, a value of the wrong type, an unknown field or
// trailing data is EINVALID. Messages name fields, never values.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return steward.Errorf(steward.EUNSUPPORTED, "the request body must be application/json")
		}
	}
	if r.ContentLength > s.maxBody {
		return steward.Errorf(steward.ETOOLARGE, "the request body exceeds %d bytes", s.maxBody)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, s.maxBody)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err, s.maxBody)
		}
		return steward.Errorf(steward.EINVALID, "the request body must hold exactly one JSON value")
	}
	return nil
}

func decodeError(err error, max int64) error {
	var (
		mbe *http.MaxBytesError
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return steward.Errorf(steward.ETOOLARGE, "the request body exceeds %d bytes", max)
	case errors.Is(err, io.EOF):
		return steward.Errorf(steward.EINVALID, "the request body is empty; it must be a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return steward.Errorf(steward.EINVALID, "the request body is not valid JSON: it ends too early")
	case errors.As(err, &syn):
		return steward.Errorf(steward.EINVALID, "the request body is not valid JSON (error at byte %d)", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return steward.Errorf(steward.EINVALID, "the request body must be a JSON %s", jsonKind(typ.Type.Kind().String()))
		}
		return steward.Errorf(steward.EINVALID, "%s must be a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return steward.Errorf(steward.EINVALID, "the request body has an unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return steward.WrapError(steward.EINVALID, "the request body is not valid JSON", err)
}

// jsonKind names a Go kind the way a JSON client would.
func jsonKind(k string) string {
	switch k {
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	case "string":
		return "string"
	}
	return "number"
}

// writeJSON writes v as the JSON response with status. Encoding straight into w
// avoids a copy; net/http sets Content-Length for bodies under its buffer size.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = hdrJSON
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		// The status is out already; all that is left is to log.
		s.log.Error("write response", "request_id", requestID(w), "err", err)
	}
}

// download writes v as an indented JSON attachment called filename (which must be
// a plain file name: letters, digits, '-', '_' and '.').
func (s *Server) download(w http.ResponseWriter, r *http.Request, filename string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		s.Error(w, r, fmt.Errorf("http: marshal download: %w", err))
		return
	}
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, safeFilename(filename)))
	h.Set("Content-Length", fmt.Sprint(len(b)+1))
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}

// safeFilename replaces anything but [A-Za-z0-9._-] with '_'.
func safeFilename(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, name)
}
