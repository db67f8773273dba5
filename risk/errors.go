package risk

import "fmt"

// Error is invalid input to a risk function: the field at fault and why.
// Callers use errors.As to tell it from other failures.
type Error struct {
	Field  string // e.g. "HalfLife", "Counts.Passes", "members[3].Failures"
	Reason string
}

func (e *Error) Error() string { return "risk: " + e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// indexed puts an element's name ("members[3]") in front of the field of
// err, an *Error from a check run with an empty prefix; built only on the
// error path, so checking costs no allocation.
func indexed(err error, name string, i int) error {
	if e, ok := err.(*Error); ok {
		e.Field = fmt.Sprintf("%s[%d]%s", name, i, e.Field)
	}
	return err
}
