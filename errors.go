package steward

import (
	"errors"
	"fmt"
)

// Error codes. The list is append-only: clients script against these strings.
// Each maps to exactly one HTTP status in the http package.
const (
	EINVALID      = "EINVALID"      // 400: the input is malformed or breaks a rule
	EUNAUTHORIZED = "EUNAUTHORIZED" // 401: no valid credentials
	EFORBIDDEN    = "EFORBIDDEN"    // 403: credentials valid, action not allowed (missing consent, role, purpose)
	ENOTFOUND     = "ENOTFOUND"     // 404: no such thing, or not visible to the caller
	ECONFLICT     = "ECONFLICT"     // 409: the thing exists already or its state forbids the change
	EGONE         = "EGONE"         // 410: the thing existed and was erased
	ETOOLARGE     = "ETOOLARGE"     // 413: the body or upload exceeds a declared limit
	EUNSUPPORTED  = "EUNSUPPORTED"  // 415: the media type is not accepted
	ETOOMANY      = "ETOOMANY"      // 429: a rate limit or attempt limit was reached
	EINTERNAL     = "EINTERNAL"     // 500: a fault on Steward's side; details are only in the log
	EUNAVAILABLE  = "EUNAVAILABLE"  // 503: a dependency (database, key store) does not answer
	EMETHOD       = "EMETHOD"       // 405: the path exists but does not take this method
)

// ErrorCodes lists every error code in the order they were added.
var ErrorCodes = []string{EINVALID, EUNAUTHORIZED, EFORBIDDEN, ENOTFOUND, ECONFLICT, EGONE, ETOOLARGE, EUNSUPPORTED, ETOOMANY, EINTERNAL, EUNAVAILABLE, EMETHOD}

// Error is the error every Steward operation returns for failures a caller can act on.
// Message is the only text shown to users and API clients and never holds personal
// information; Err carries the cause for the log.
type Error struct {
	Code    string
	Message string
	Err     error
}

// Error returns the code, the message and, if set, the cause.
func (e *Error) Error() string {
	switch {
	case e.Err != nil && e.Message != "":
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	case e.Err != nil:
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	default:
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a message formatted like fmt.Sprintf.
// The message must not contain personal information.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with code and message that keeps err as its cause.
func WrapError(code, message string, err error) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any
// other non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of the first *Error in err's chain, or
// a generic text for other errors, so internal details never reach a client.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "An internal error has occurred."
}
