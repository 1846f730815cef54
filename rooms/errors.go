package rooms

import (
	"errors"
	"fmt"
)

// Code classifies a domain error. The hub maps each code to one HTTP status
// and one WebSocket error frame.
type Code string

// The error codes of SPEC §5.
const (
	CodeInvalid         Code = "invalid"
	CodeUnauthenticated Code = "unauthenticated"
	CodeForbidden       Code = "forbidden"
	CodeNotFound        Code = "not_found"
	CodeConflict        Code = "conflict"
	CodeRateLimited     Code = "rate_limited"
	CodeInternal        Code = "internal"
	// CodeUnavailable: the server cannot take the request now (shutting
	// down); try again, on another node if there is one.
	CodeUnavailable Code = "unavailable"
)

// Error is a domain error: a code, a message a clinician understands, and the
// field it concerns, if any.
type Error struct {
	Code    Code
	Message string
	Field   string
	// Current carries the section as it stands when a plan edit is refused
	// as stale, so the editor can merge without another round trip.
	Current *PlanSection
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Invalid reports bad input in one field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports that something does not exist or is not visible to the
// caller; the two are deliberately indistinguishable.
func NotFound(what string) *Error {
	return &Error{Code: CodeNotFound, Message: what + " not found"}
}

// Forbidden reports a refused action on something the caller can see.
func Forbidden(format string, args ...any) *Error {
	return &Error{Code: CodeForbidden, Message: fmt.Sprintf(format, args...)}
}

// Conflict reports a clash with the current state.
func Conflict(format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned by stores when a row does not exist.
var ErrNotFound = errors.New("not found")

// ErrDuplicate is returned by stores when a unique key is already taken.
var ErrDuplicate = errors.New("duplicate")

// ErrCommitUncertain wraps the failure of a commit whose outcome the store
// cannot know: the connection failed after COMMIT was sent, so the
// transaction may or may not have committed.
var ErrCommitUncertain = errors.New("the store could not tell whether the transaction committed")

// CodeOf returns the code of err: the code of a wrapped *Error, not_found for
// ErrNotFound, and internal for anything else.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	default:
		return CodeInternal
	}
}
