package inspection

import "github.com/ktcn/ktcn/inspection/fault"

// The domain's errors are fault's (one type, one set of codes, shared by
// the sub-packages); these names keep the use cases and their callers
// short.

type (
	Code  = fault.Code
	Error = fault.Error
)

const (
	CodeInvalid         = fault.Invalid
	CodeNotFound        = fault.NotFound
	CodeConflict        = fault.Conflict
	CodeForbidden       = fault.Forbidden
	CodeUnavailable     = fault.Unavailable
	CodeInternal        = fault.Internal
	CodeUnauthenticated = fault.Unauthenticated
)

// ErrNotFound is returned by stores for a missing key; use errors.Is.
var ErrNotFound = fault.ErrNotFound

// ErrorCode returns the Code of err (fault.CodeOf).
func ErrorCode(err error) Code { return fault.CodeOf(err) }

// Invalid reports bad input in a named field.
func Invalid(field, format string, args ...any) *Error {
	return fault.Of(fault.Invalid, field, format, args...)
}

// NotFound reports a missing thing.
func NotFound(format string, args ...any) *Error {
	return fault.Of(fault.NotFound, "", format, args...)
}

// Conflict reports input that contradicts stored state.
func Conflict(field, format string, args ...any) *Error {
	return fault.Of(fault.Conflict, field, format, args...)
}

// Forbidden reports a principal acting beyond its role.
func Forbidden(format string, args ...any) *Error {
	return fault.Of(fault.Forbidden, "", format, args...)
}

// Unauthenticated reports a missing or unusable credential.
func Unauthenticated(format string, args ...any) *Error {
	return fault.Of(fault.Unauthenticated, "", format, args...)
}
