package http

import (
	"log/slog"
	"net/http"

	"github.com/stewardhq/steward"
)

// statuses maps every error code to its one HTTP status. It is the only place the
// mapping lives: Error writes from it and the Go client reads it back with CodeOf.
var statuses = map[string]int{
	steward.EINVALID:      http.StatusBadRequest,
	steward.EUNAUTHORIZED: http.StatusUnauthorized,
	steward.EFORBIDDEN:    http.StatusForbidden,
	steward.ENOTFOUND:     http.StatusNotFound,
	steward.ECONFLICT:     http.StatusConflict,
	steward.EGONE:         http.StatusGone,
	steward.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	steward.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	steward.ETOOMANY:      http.StatusTooManyRequests,
	steward.EINTERNAL:     http.StatusInternalServerError,
	steward.EUNAVAILABLE:  http.StatusServiceUnavailable,
	steward.EMETHOD:       http.StatusMethodNotAllowed,
}

// StatusOf returns the HTTP status for an error code: 400 for EINVALID, 401 for
// EUNAUTHORIZED, … 503 for EUNAVAILABLE; 500 for a code it does not know.
func StatusOf(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// CodeOf returns the error code for an HTTP status, the inverse of StatusOf. For a
// status no code maps to (one from a proxy, say) it returns the nearest code:
// EUNAVAILABLE for 502 and 504, EINTERNAL for other 5xx and EINVALID for other 4xx.
// It returns "" for statuses below 400.
func CodeOf(status int) string {
	for code, s := range statuses {
		if s == status {
			return code
		}
	}
	switch {
	case status == http.StatusBadGateway || status == http.StatusGatewayTimeout:
		return steward.EUNAVAILABLE
	case status >= 500:
		return steward.EINTERNAL
	case status >= 400:
		return steward.EINVALID
	}
	return ""
}

// StatusClientClosedRequest is the status logged for a request its client
// abandoned (nginx's 499).
const StatusClientClosedRequest = 499

// errorBody is the JSON every error response carries.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error writes err as the JSON error response {"error":{"code","message"}} with the
// status of its code. It is the one function that writes errors. Only the
// user-facing message of a *steward.Error is sent; for EINTERNAL and EUNAVAILABLE
// the cause is logged with the request id and the client sees a generic message.
// EUNAUTHORIZED adds the WWW-Authenticate challenge of RFC 6750. An error of a
// request whose client hung up (its context ended) is not a server error, even
// when the cancellation surfaced as another error (database/sql rolls a read
// back on cancellation, and its commit then fails): it is logged at info with
// the error, and answered with status 499, the convention for "client closed
// request", which nobody reads but the access log and the metrics count as the
// client's.
func (s *Server) Error(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request abandoned by the client",
			slog.String("request_id", requestID(w)), slog.String("route", r.Pattern), slog.String("err", err.Error()))
		w.WriteHeader(StatusClientClosedRequest)
		return
	}
	code := steward.ErrorCode(err)
	msg := steward.ErrorMessage(err)
	switch code {
	case steward.EINTERNAL:
		msg = "An internal error has occurred."
		s.log.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("request_id", requestID(w)), slog.String("route", r.Pattern), slog.String("err", err.Error()))
	case steward.EUNAVAILABLE:
		s.log.LogAttrs(r.Context(), slog.LevelError, "dependency unavailable",
			slog.String("request_id", requestID(w)), slog.String("route", r.Pattern), slog.String("err", err.Error()))
	case steward.EUNAUTHORIZED:
		w.Header()["Www-Authenticate"] = bearerChallenge
	}
	s.writeJSON(w, StatusOf(code), errorBody{Error: errorDetail{Code: code, Message: msg}})
}

var bearerChallenge = []string{`Bearer realm="steward"`}
