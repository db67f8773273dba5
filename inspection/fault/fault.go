// Package fault is the one error type that crosses ktcn's package
// boundaries with meaning, and its codes. It owns the codes and their
// constructors; what each code becomes on the wire (an HTTP status, a
// problem type) is the api package's business, decided in one place there.
package fault

import (
	"errors"
	"fmt"
)

// Code classifies an Error. The api package maps each code to one HTTP
// status; nothing else in ktcn translates errors.
type Code string

const (
	Invalid     Code = "invalid"     // the input is malformed or breaks a rule
	NotFound    Code = "not_found"   // the thing asked for does not exist (or is not visible)
	Conflict    Code = "conflict"    // the input contradicts what is already stored
	Forbidden   Code = "forbidden"   // the principal may not do this
	Unavailable Code = "unavailable" // a dependency is down or shutting down; retry later
	Internal    Code = "internal"    // a bug or an unexpected storage failure
	Gone        Code = "gone"        // what was asked for existed but is no longer kept
	// Unauthenticated is a request without a usable credential (missing,
	// malformed, unknown, expired or revoked key): the api answers 401. It
	// differs from Forbidden, a known principal asking for something its
	// role does not allow.
	Unauthenticated Code = "unauthenticated"
)

// Error is the error with meaning. Field names the offending input in
// JSON-path form ("lines[2].hs_code") so a client can point at it.
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

// Of makes an Error of code c about field.
func Of(c Code, field, format string, args ...any) *Error {
	return &Error{Code: c, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned by stores for a missing key; use errors.Is.
var ErrNotFound = errors.New("not found")

// CodeOf returns the Code of err, NotFound for ErrNotFound, and Internal
// for anything unclassified.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, ErrNotFound) {
		return NotFound
	}
	return Internal
}
