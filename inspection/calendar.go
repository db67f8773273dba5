package inspection

import (
	"time"
)

// Deadline returns when an assignment of the given mode created at t is due:
// documents checks in working hours, sampling and lab tests in working days.
func (p *Policy) Deadline(mode Mode, t time.Time) time.Time {
	wc := p.cal
	if wc == nil { // a policy built in code rather than parsed
		var err error
		if wc, err = p.Calendar.Compile(); err != nil {
			return t
		}
	}
	if mode == ModeStrict {
		return wc.Add(t, time.Duration(p.Deadlines.StrictWorkingDays)*wc.DayLength())
	}
	return wc.Add(t, time.Duration(p.Deadlines.DocumentsWorkingHours)*time.Hour)
}
