package calendar_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/policy"
)

// testCalendar is the table's own calendar, written out here so the
// expected deadlines below can be checked by hand without the default
// policy. Working day: 07:30-11:30 and 13:00-16:30 (7h30 of work, lunch
// 11:30-13:00). 2026 weekdays, for checking by hand:
//
//	Thu 01-01 holiday, Fri 01-02 holiday (bridged), Sat 01-10 make-up
//	Mon 02-16 … Fri 02-20 Tết, Mon 02-23 first day back
//	Sat 04-25 make-up, Mon 04-27 holiday (Hùng Kings, moved), Thu 04-30 and Fri 05-01 holidays
//	Tue 09-01 and Wed 09-02 holidays
func testCalendar() calendar.Calendar {
	return calendar.Calendar{
		WorkingHours: []string{"07:30-11:30", "13:00-16:30"},
		Weekend:      []string{"Saturday", "Sunday"},
		Holidays: []string{
			"2026-01-01", "2026-01-02",
			"2026-02-16", "2026-02-17", "2026-02-18", "2026-02-19", "2026-02-20",
			"2026-04-27", "2026-04-30", "2026-05-01",
			"2026-09-01", "2026-09-02",
		},
		MakeUpDays: []string{"2026-01-10", "2026-04-25"},
	}
}

func compile(t *testing.T, c calendar.Calendar) *calendar.Working {
	t.Helper()
	wc, err := c.Compile()
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return wc
}

// vn is a wall-clock instant in Vietnam.
func vn(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, calendar.Vietnam())
}

func TestDeadlineTable(t *testing.T) {
	wc := compile(t, testCalendar())
	if got, want := wc.DayLength(), 7*time.Hour+30*time.Minute; got != want {
		t.Fatalf("DayLength = %v, want %v", got, want)
	}
	const h = time.Hour
	cases := []struct {
		name  string
		start time.Time
		hours time.Duration // working time asked, when days == 0
		days  int           // working days asked (AddWorkingDays), when > 0
		want  time.Time
	}{
		// Working hours, one ordinary week (Mon 2026-03-02 … Fri 03-06).
		{"weekday within hours", vn(2026, 3, 3, 8, 0), 2 * h, 0, vn(2026, 3, 3, 10, 0)},
		{"before opening", vn(2026, 3, 3, 6, 0), 1 * h, 0, vn(2026, 3, 3, 8, 30)},
		{"during the lunch break", vn(2026, 3, 3, 12, 0), 1 * h, 0, vn(2026, 3, 3, 14, 0)},
		{"across the lunch break", vn(2026, 3, 3, 10, 30), 2 * h, 0, vn(2026, 3, 3, 14, 0)},
		{"after closing", vn(2026, 3, 3, 17, 0), 1 * h, 0, vn(2026, 3, 4, 8, 30)},
		{"lands exactly at closing", vn(2026, 3, 3, 13, 0), 3*h + 30*time.Minute, 0, vn(2026, 3, 3, 16, 30)},
		{"starts exactly at closing", vn(2026, 3, 3, 16, 30), 30 * time.Minute, 0, vn(2026, 3, 4, 8, 0)},
		{"lands exactly at the lunch boundary", vn(2026, 3, 3, 9, 30), 2 * h, 0, vn(2026, 3, 3, 11, 30)},
		{"Friday afternoon across the weekend", vn(2026, 3, 6, 15, 30), 2 * h, 0, vn(2026, 3, 9, 8, 30)},
		{"Saturday start", vn(2026, 3, 7, 9, 0), 1 * h, 0, vn(2026, 3, 9, 8, 30)},
		{"Sunday start, lands at the lunch boundary", vn(2026, 3, 8, 14, 0), 4 * h, 0, vn(2026, 3, 9, 11, 30)},
		{"zero from the weekend is Monday's opening", vn(2026, 3, 7, 10, 0), 0, 0, vn(2026, 3, 9, 7, 30)},
		{"multi-day: 16 working hours", vn(2026, 3, 2, 7, 30), 16 * h, 0, vn(2026, 3, 4, 8, 30)},
		{"multi-day: 24 working hours from the afternoon", vn(2026, 3, 2, 14, 0), 24 * h, 0, vn(2026, 3, 5, 15, 30)},
		{"instant given in UTC is read in Vietnam", time.Date(2026, 3, 3, 1, 0, 0, 0, time.UTC), 2 * h, 0, vn(2026, 3, 3, 10, 0)},

		// Public holidays.
		{"1-2 September", vn(2026, 8, 31, 16, 0), 1 * h, 0, vn(2026, 9, 3, 8, 0)},
		{"UTC evening that is 1 September in Vietnam", time.Date(2026, 8, 31, 20, 0, 0, 0, time.UTC), 1 * h, 0, vn(2026, 9, 3, 8, 30)},
		{"30 April-1 May and the weekend", vn(2026, 4, 29, 16, 0), 1 * h, 0, vn(2026, 5, 4, 8, 0)},
		{"New Year and its bridged Friday", vn(2025, 12, 31, 16, 0), 1 * h, 0, vn(2026, 1, 5, 8, 0)},
		{"Tết: Friday before, back on Monday after", vn(2026, 2, 13, 14, 0), 7*h + 30*time.Minute, 0, vn(2026, 2, 23, 14, 0)},
		{"Tết: started during Tết", vn(2026, 2, 18, 10, 0), 1 * h, 0, vn(2026, 2, 23, 8, 30)},

		// Make-up days.
		{"make-up Saturday is worked", vn(2026, 1, 9, 16, 0), 1 * h, 0, vn(2026, 1, 10, 8, 0)},
		{"started on the make-up Saturday", vn(2026, 1, 10, 13, 0), 2 * h, 0, vn(2026, 1, 10, 15, 0)},
		{"make-up Saturday then Sunday and a holiday", vn(2026, 4, 24, 16, 0), 9 * h, 0, vn(2026, 4, 28, 8, 30)},
		{"an ordinary Saturday stays off", vn(2026, 1, 16, 16, 0), 1 * h, 0, vn(2026, 1, 19, 8, 0)},

		// Working days (n × 7h30 of working time).
		{"1 working day: same clock time next day", vn(2026, 3, 2, 9, 0), 0, 1, vn(2026, 3, 3, 9, 0)},
		{"1 working day from the lunch break", vn(2026, 3, 3, 12, 0), 0, 1, vn(2026, 3, 4, 11, 30)},
		{"2 working days from Saturday: closing on Tuesday", vn(2026, 3, 7, 7, 0), 0, 2, vn(2026, 3, 10, 16, 30)},
		{"5 working days across Tết", vn(2026, 2, 12, 8, 0), 0, 5, vn(2026, 2, 26, 8, 0)},
		{"3 working days over a make-up day and a holiday", vn(2026, 4, 23, 10, 0), 0, 3, vn(2026, 4, 28, 10, 0)},
		{"7 working days over 30 April-1 May", vn(2026, 4, 28, 15, 0), 0, 7, vn(2026, 5, 11, 15, 0)},
	}
	if len(cases) < 18 {
		t.Fatalf("table has %d cases, the issue asks for at least 18", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got time.Time
			if tc.days > 0 {
				got = wc.AddWorkingDays(tc.start, tc.days)
			} else {
				got = wc.Add(tc.start, tc.hours)
			}
			if !got.Equal(tc.want) {
				t.Errorf("from %s (%s), %v / %d days: got %s (%s), want %s (%s)",
					tc.start.In(calendar.Vietnam()).Format(time.RFC3339), tc.start.In(calendar.Vietnam()).Weekday(), tc.hours, tc.days,
					got.In(calendar.Vietnam()).Format(time.RFC3339), got.In(calendar.Vietnam()).Weekday(),
					tc.want.Format(time.RFC3339), tc.want.Weekday())
			}
		})
	}
}

func TestWorkingDay(t *testing.T) {
	wc := compile(t, testCalendar())
	cases := []struct {
		name string
		day  time.Time
		want bool
	}{
		{"Tuesday", vn(2026, 3, 3, 0, 0), true},
		{"Saturday", vn(2026, 3, 7, 10, 0), false},
		{"Sunday", vn(2026, 3, 8, 10, 0), false},
		{"holiday on a weekday", vn(2026, 9, 2, 10, 0), false},
		{"Tết", vn(2026, 2, 17, 10, 0), false},
		{"bridged Friday", vn(2026, 1, 2, 10, 0), false},
		{"make-up Saturday", vn(2026, 1, 10, 10, 0), true},
		{"make-up Saturday at midnight", vn(2026, 4, 25, 0, 0), true},
		{"Sunday after a make-up Saturday", vn(2026, 4, 26, 10, 0), false},
		{"UTC Friday evening is Saturday in Vietnam", time.Date(2026, 3, 6, 18, 0, 0, 0, time.UTC), false},
		{"UTC Friday evening is a make-up Saturday in Vietnam", time.Date(2026, 1, 9, 18, 0, 0, 0, time.UTC), true},
	}
	for _, tc := range cases {
		if got := wc.WorkingDay(tc.day); got != tc.want {
			t.Errorf("%s: WorkingDay(%s) = %v, want %v", tc.name, tc.day.Format(time.RFC3339), got, tc.want)
		}
	}
}

func TestCompileRefuses(t *testing.T) {
	with := func(edit func(*calendar.Calendar)) calendar.Calendar {
		c := testCalendar()
		edit(&c)
		return c
	}
	cases := []struct {
		name  string
		cal   calendar.Calendar
		field string
	}{
		{"make-up day also a holiday", with(func(c *calendar.Calendar) {
			c.MakeUpDays = []string{"2026-01-10", "2026-02-16"}
		}), "calendar.make_up_days[1]"},
		{"make-up day on a weekday", with(func(c *calendar.Calendar) { c.MakeUpDays = []string{"2026-01-09"} }), "calendar.make_up_days[0]"},
		{"make-up day not a date", with(func(c *calendar.Calendar) { c.MakeUpDays = []string{"2026-02-30"} }), "calendar.make_up_days[0]"},
		{"make-up day in the wrong format", with(func(c *calendar.Calendar) { c.MakeUpDays = []string{"2026-01-10", "10/01/2026"} }), "calendar.make_up_days[1]"},
		{"holiday not a date", with(func(c *calendar.Calendar) { c.Holidays = append(c.Holidays, "2026-13-01") }), "calendar.holidays[12]"},
		{"working hours overlap", with(func(c *calendar.Calendar) { c.WorkingHours = []string{"07:30-11:30", "11:00-16:30"} }), "calendar.working_hours[1]"},
		{"no working hours", with(func(c *calendar.Calendar) { c.WorkingHours = nil }), "calendar.working_hours"},
		{"unknown weekend day", with(func(c *calendar.Calendar) { c.Weekend = []string{"Saturday", "Sun"} }), "calendar.weekend[1]"},
	}
	for _, tc := range cases {
		_, err := tc.cal.Compile()
		var fe *fault.Error
		if !errors.As(err, &fe) {
			t.Errorf("%s: got %v, want a fault naming %s", tc.name, err, tc.field)
			continue
		}
		if fe.Code != fault.Invalid || fe.Field != tc.field {
			t.Errorf("%s: got %s %q (%v), want invalid %q", tc.name, fe.Code, fe.Field, err, tc.field)
		}
	}
}

// TestDefaultPolicyCalendar runs one deadline over the default policy's
// own calendar (08:00-12:00, 13:00-17:00; Tết 2026 is 16-20 February).
func TestDefaultPolicyCalendar(t *testing.T) {
	p, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	wc := compile(t, p.Calendar)
	start := vn(2026, 2, 13, 16, 0) // Friday before Tết
	if got, want := wc.Add(start, 2*time.Hour), vn(2026, 2, 23, 9, 0); !got.Equal(want) {
		t.Errorf("2 working hours: got %s, want %s", got, want)
	}
	// documents_working_hours 24: 1h Friday, 8h Mon 23, 8h Tue 24, 7h Wed 25.
	if got, want := p.Deadline(false, start), vn(2026, 2, 25, 16, 0); !got.Equal(want) {
		t.Errorf("documents deadline: got %s, want %s", got, want)
	}
	// strict_working_days 7: Feb 23, 24, 25, 26, 27, Mar 2, Mar 3.
	if got, want := p.Deadline(true, start), vn(2026, 3, 3, 16, 0); !got.Equal(want) {
		t.Errorf("strict deadline: got %s, want %s", got, want)
	}
}
