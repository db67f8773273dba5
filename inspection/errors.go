package inspection

import "github.com/ktcn/ktcn/inspection/fault"

// Short constructors of the domain's errors (fault.Error, one type and one
// set of codes shared by the sub-packages).

// Invalid reports bad input in a named field.
func Invalid(field, format string, args ...any) *fault.Error {
	return fault.Of(fault.Invalid, field, format, args...)
}

// NotFound reports a missing thing.
func NotFound(format string, args ...any) *fault.Error {
	return fault.Of(fault.NotFound, "", format, args...)
}

// Conflict reports input that contradicts stored state.
func Conflict(field, format string, args ...any) *fault.Error {
	return fault.Of(fault.Conflict, field, format, args...)
}

// Forbidden reports a principal acting beyond its role.
func Forbidden(format string, args ...any) *fault.Error {
	return fault.Of(fault.Forbidden, "", format, args...)
}

// Unauthenticated reports a missing or unusable credential.
func Unauthenticated(format string, args ...any) *fault.Error {
	return fault.Of(fault.Unauthenticated, "", format, args...)
}

// Gone reports something no longer kept (a feed cursor behind retention).
func Gone(field, format string, args ...any) *fault.Error {
	return fault.Of(fault.Gone, field, format, args...)
}
