package calendar

import (
	"fmt"
	"regexp"
	"time"

	"github.com/ktcn/ktcn/inspection/fault"
)

// Calendar of working time in Vietnam, as a policy document states it.
//
// A day is a working day when it is a make-up day, or else when it is
// neither a weekend day nor a holiday. Every working day has the same
// working intervals; time outside them (before opening, the lunch break
// between two intervals, after closing) and every non-working day do not
// count towards a deadline. Dates are calendar dates in Vietnam's time.
//
// Holidays are listed as the dates they are actually taken in each year,
// not as rules: Tết Nguyên Đán is its run of consecutive dates (e.g.
// 2026-02-16 … 2026-02-20), a holiday falling on a weekend is listed on
// the weekday it is moved to, and a working day the government bridges
// into a holiday is listed as a holiday too. A year whose dates are not
// listed simply has no holidays; the calendar computes no lunar dates.
//
// MakeUpDays (ngày làm bù) are weekend days the government declares
// working days, usually to make up for a bridged holiday: each is worked
// with the normal working hours. A date cannot be both a holiday and a
// make-up day, and a make-up day must fall on a weekend day (on any other
// day it would change nothing, so it is taken for a typo). The field is
// optional and omitted from the document when empty, so documents written
// before it existed keep their bytes and their digests.
type Calendar struct {
	// WorkingHours are the day's working intervals, "HH:MM-HH:MM",
	// increasing and not overlapping; a gap between two is a break.
	WorkingHours []string `json:"working_hours"`
	// Weekend days off, by English name.
	Weekend []string `json:"weekend"`
	// Holidays are the days off of public holidays, "YYYY-MM-DD",
	// including Tết and moved or bridged days.
	Holidays []string `json:"holidays"`
	// MakeUpDays are weekend days worked, "YYYY-MM-DD".
	MakeUpDays []string `json:"make_up_days,omitempty"`
}

// Working is a Calendar compiled: working intervals as offsets from
// midnight, weekend days and holidays, all in Vietnam's time.
type Working struct {
	intervals [][2]time.Duration
	weekend   map[time.Weekday]bool
	holidays  map[string]bool // "YYYY-MM-DD"
	makeUp    map[string]bool // "YYYY-MM-DD", weekend days worked
	loc       *time.Location
}

var weekdays = map[string]time.Weekday{
	"Sunday": time.Sunday, "Monday": time.Monday, "Tuesday": time.Tuesday, "Wednesday": time.Wednesday,
	"Thursday": time.Thursday, "Friday": time.Friday, "Saturday": time.Saturday,
}

// hhmmRange is one working interval, "HH:MM-HH:MM".
var hhmmRange = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$`)

// Compile checks c and makes it usable; an error names the field under
// "calendar." that is wrong.
func (c Calendar) Compile() (*Working, error) {
	wc := &Working{weekend: map[time.Weekday]bool{}, holidays: map[string]bool{}, makeUp: map[string]bool{}, loc: Vietnam()}
	if len(c.WorkingHours) == 0 {
		return nil, fault.Of(fault.Invalid, "calendar.working_hours", "must list at least one interval")
	}
	var last time.Duration
	for i, s := range c.WorkingHours {
		f := fmt.Sprintf("calendar.working_hours[%d]", i)
		if !hhmmRange.MatchString(s) {
			return nil, fault.Of(fault.Invalid, f, "must be HH:MM-HH:MM, got %q", s)
		}
		from, to := clockOffset(s[:5]), clockOffset(s[6:])
		if to <= from || from < last {
			return nil, fault.Of(fault.Invalid, f, "intervals must be increasing and not overlap, got %q", s)
		}
		wc.intervals = append(wc.intervals, [2]time.Duration{from, to})
		last = to
	}
	for i, d := range c.Weekend {
		wd, ok := weekdays[d]
		if !ok {
			return nil, fault.Of(fault.Invalid, fmt.Sprintf("calendar.weekend[%d]", i), "unknown weekday %q", d)
		}
		wc.weekend[wd] = true
	}
	if len(wc.weekend) == 7 {
		return nil, fault.Of(fault.Invalid, "calendar.weekend", "cannot cover every day")
	}
	for i, h := range c.Holidays {
		if _, err := time.Parse("2006-01-02", h); err != nil {
			return nil, fault.Of(fault.Invalid, fmt.Sprintf("calendar.holidays[%d]", i), "must be YYYY-MM-DD, got %q", h)
		}
		wc.holidays[h] = true
	}
	for i, m := range c.MakeUpDays {
		f := fmt.Sprintf("calendar.make_up_days[%d]", i)
		day, err := time.Parse("2006-01-02", m)
		if err != nil {
			return nil, fault.Of(fault.Invalid, f, "must be YYYY-MM-DD, got %q", m)
		}
		if wc.holidays[m] {
			return nil, fault.Of(fault.Invalid, f, "%s is also listed in calendar.holidays; a day cannot be both worked and off", m)
		}
		if !wc.weekend[day.Weekday()] {
			return nil, fault.Of(fault.Invalid, f, "%s is a %s, not a weekend day; only a weekend day can be made up", m, day.Weekday())
		}
		wc.makeUp[m] = true
	}
	return wc, nil
}

func clockOffset(hhmm string) time.Duration {
	t, _ := time.Parse("15:04", hhmm)
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
}

// WorkingDay reports whether the Vietnam date of day is a working day: a
// make-up day, or neither a weekend day nor a holiday.
func (wc *Working) WorkingDay(day time.Time) bool {
	day = day.In(wc.loc)
	date := day.Format("2006-01-02")
	if wc.makeUp[date] {
		return true
	}
	return !wc.weekend[day.Weekday()] && !wc.holidays[date]
}

// DayLength is the working time in one working day.
func (wc *Working) DayLength() time.Duration {
	var d time.Duration
	for _, iv := range wc.intervals {
		d += iv[1] - iv[0]
	}
	return d
}

// Add returns the instant when d of working time has elapsed after t.
// Time outside working intervals does not count. A deadline that uses up
// an interval exactly falls at its end (closing, or the start of the
// lunch break), not at the next opening; d = 0 from outside working time
// is the next opening.
func (wc *Working) Add(t time.Time, d time.Duration) time.Time {
	t = t.In(wc.loc)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, wc.loc)
	// Bounded: a calendar always has a working day within a week unless
	// holidays fill years; stop after ten years rather than loop forever.
	for guard := 0; guard < 3660; guard++ {
		if wc.WorkingDay(day) {
			for _, iv := range wc.intervals {
				start, end := day.Add(iv[0]), day.Add(iv[1])
				if !end.After(t) {
					continue
				}
				if start.Before(t) {
					start = t
				}
				if avail := end.Sub(start); d <= avail {
					return start.Add(d)
				} else {
					d -= avail
				}
			}
		}
		day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, wc.loc)
	}
	return t.Add(d)
}

// AddWorkingDays returns the instant when n working days of working time
// (n × DayLength) have elapsed after t: from a working instant, the same
// clock time n working days later; from outside working time, counted
// from the next opening, so from before opening it is closing on the n-th
// working day.
func (wc *Working) AddWorkingDays(t time.Time, n int) time.Time {
	return wc.Add(t, time.Duration(n)*wc.DayLength())
}

// Between is the working time from a to b (zero when b is not after a):
// the time within working intervals of working days, so a turnaround
// reads in working hours. Bounded like Add.
func (wc *Working) Between(a, b time.Time) time.Duration {
	if !b.After(a) {
		return 0
	}
	a, b = a.In(wc.loc), b.In(wc.loc)
	var total time.Duration
	day := time.Date(a.Year(), a.Month(), a.Day(), 0, 0, 0, 0, wc.loc)
	for guard := 0; guard < 3660 && day.Before(b); guard++ {
		if wc.WorkingDay(day) {
			for _, iv := range wc.intervals {
				start, end := day.Add(iv[0]), day.Add(iv[1])
				if start.Before(a) {
					start = a
				}
				if end.After(b) {
					end = b
				}
				if end.After(start) {
					total += end.Sub(start)
				}
			}
		}
		day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, wc.loc)
	}
	return total
}

// WorkingDate is the working day t counts toward, "YYYY-MM-DD" in
// Vietnam's time: t's own date when that is a working day, else the next
// working day (a lot decided on a Sunday counts toward Monday).
func (wc *Working) WorkingDate(t time.Time) string {
	t = t.In(wc.loc)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, wc.loc)
	for guard := 0; guard < 3660 && !wc.WorkingDay(day); guard++ {
		day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, wc.loc)
	}
	return day.Format(time.DateOnly)
}
