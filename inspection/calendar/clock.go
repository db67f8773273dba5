// Package calendar owns time in ktcn: the injected clock every rule reads
// "now" from, Vietnam's zone (periods, windows and working days are all
// in it), and working time (working hours, weekends and public holidays)
// from which deadlines are computed. It knows nothing of modes or
// policies: inspection says which deadline a check has; this package says
// when it falls.
package calendar

import (
	"time"
	_ "time/tzdata" // periods and working days are in Vietnam's time even on a machine without zoneinfo

	"github.com/ktcn/ktcn/inspection/fault"
)

// Clock is the only source of "now" in ktcn; tests pass a fixed or
// stepping clock so time-based rules never sleep.
type Clock interface {
	Now() time.Time
}

// SystemClock reads the wall clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

func (f ClockFunc) Now() time.Time { return f() }

// VietnamZone is the name of the zone all periods, windows and working days
// are computed in.
const VietnamZone = "Asia/Ho_Chi_Minh"

// vietnam is loaded once: time.LoadLocation reads and parses zone data on
// every call, which showed up as a tenth of the decision path's CPU.
var vietnam = func() *time.Location {
	loc, err := time.LoadLocation(VietnamZone)
	if err != nil {
		// time/tzdata is embedded above, so this cannot fail at run time;
		// a fixed zone is the same offset (Vietnam has no DST).
		return time.FixedZone(VietnamZone, 7*3600)
	}
	return loc
}()

// Vietnam returns the Asia/Ho_Chi_Minh location from the embedded tzdata.
func Vietnam() *time.Location { return vietnam }

// ParseTime parses an RFC 3339 timestamp or a calendar date (taken as
// midnight in Vietnam) and names the field on error.
func ParseTime(field, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, Vietnam()); err == nil {
		return t, nil
	}
	return time.Time{}, fault.Of(fault.Invalid, field, "%q is not an RFC 3339 timestamp or a YYYY-MM-DD date", s)
}
