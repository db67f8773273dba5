package inspection

import (
	"errors"
	"fmt"
)

// Code classifies an Error. The api package maps each code to one HTTP
// status; nothing else in ktcn translates errors.
type Code string

const (
	CodeInvalid     Code = "invalid"     // the input is malformed or breaks a rule
	CodeNotFound    Code = "not_found"   // the thing asked for does not exist (or is not visible)
	CodeConflict    Code = "conflict"    // the input contradicts what is already stored
	CodeForbidden   Code = "forbidden"   // the principal may not do this
	CodeUnavailable Code = "unavailable" // a dependency is down or shutting down; retry later
	CodeInternal    Code = "internal"    // a bug or an unexpected storage failure
)

// Error is the one error type that crosses package boundaries with meaning.
// Field names the offending input in JSON-path form ("lines[2].hs_code")
// so a client can point at it.
type Error struct {
	Code    Code
	Field   string
	Message string
	Err     error
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Field != "" {
		s += " " + e.Field
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Invalid reports bad input in a named field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports a missing thing.
func NotFound(format string, args ...any) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// Conflict reports input that contradicts stored state.
func Conflict(field, format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned by stores for a missing key; use errors.Is.
var ErrNotFound = errors.New("not found")

// ErrorCode returns the Code of err, CodeNotFound for ErrNotFound, and
// CodeInternal for anything unclassified.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, ErrNotFound) {
		return CodeNotFound
	}
	return CodeInternal
}
