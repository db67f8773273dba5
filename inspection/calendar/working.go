package calendar

import (
	"fmt"
	"regexp"
	"time"

	"github.com/ktcn/ktcn/inspection/fault"
)

// Calendar of working time in Vietnam.
type Calendar struct {
	// WorkingHours are the day's working intervals, "HH:MM-HH:MM".
	WorkingHours []string `json:"working_hours"`
	// Weekend days off, by English name.
	Weekend []string `json:"weekend"`
	// Holidays are public holidays, "YYYY-MM-DD".
	Holidays []string `json:"holidays"`
}

// Working is a Calendar compiled: working intervals as offsets from
// midnight, weekend days and holidays, all in Vietnam's time.
type Working struct {
	intervals [][2]time.Duration
	weekend   map[time.Weekday]bool
	holidays  map[string]bool // "YYYY-MM-DD"
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
	wc := &Working{weekend: map[time.Weekday]bool{}, holidays: map[string]bool{}, loc: Vietnam()}
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
	return wc, nil
}

func clockOffset(hhmm string) time.Duration {
	t, _ := time.Parse("15:04", hhmm)
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
}

// WorkingDay reports whether day is neither a weekend day nor a holiday.
func (wc *Working) WorkingDay(day time.Time) bool {
	return !wc.weekend[day.Weekday()] && !wc.holidays[day.Format("2006-01-02")]
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
// Time outside working intervals does not count.
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
