package inspection

import (
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
)

// ParseTime parses an RFC 3339 timestamp or a calendar date (taken as
// midnight in Vietnam) and names the field on error.
func ParseTime(field, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, calendar.Vietnam()); err == nil {
		return t, nil
	}
	return time.Time{}, Invalid(field, "%q is not an RFC 3339 timestamp or a YYYY-MM-DD date", s)
}
