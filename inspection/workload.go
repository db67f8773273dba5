package inspection

import (
	"context"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
)

// The agencies' workload, for customs (every agency) and an agency (its
// own): what is still to do, what falls due on a day, what is overdue,
// what was accepted but not sampled, and how long results took.

// WorkloadReader reads an agency's assignments from the queue and result
// indexes.
type WorkloadReader interface {
	EachActive(agency string, fn func(Assignment) error) error
	EachResult(agency string, from, to time.Time) func(fn func(Assignment) error) error
}

// AgencyWorkload is one agency's work on a day.
type AgencyWorkload struct {
	Agency string `json:"agency"`
	// Backlog is every inspection still to do; DueToday those due on the
	// day; Overdue those past their deadline now; AcceptedNotSampled the
	// strict checks accepted and not yet sampled.
	Backlog            int `json:"backlog"`
	DueToday           int `json:"due_today"`
	Overdue            int `json:"overdue"`
	AcceptedNotSampled int `json:"accepted_not_sampled"`
	// Results recorded on the day, and their average turnaround (decision
	// to result) in working hours.
	Results               int     `json:"results"`
	AvgTurnaroundWorkingH float64 `json:"avg_turnaround_working_hours"`
}

// Workload reports each agency's work on date (a Vietnam day).
func (s *Service) Workload(ctx context.Context, by access.Principal, date time.Time) ([]AgencyWorkload, error) {
	if err := by.Require(access.ActReadAssignments); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	d := date.In(calendar.Vietnam())
	dayStart := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, calendar.Vietnam())
	dayEnd := dayStart.AddDate(0, 0, 1)
	var out []AgencyWorkload
	err := s.reads.View(ctx, func(tx ReadTx) error {
		pol, err := s.policyIn(tx, now)
		if err != nil {
			return err
		}
		agencies, err := tx.Agencies()
		if err != nil {
			return err
		}
		for _, ag := range agencies {
			if !by.MaySee(ag.ID) {
				continue
			}
			w := AgencyWorkload{Agency: ag.ID}
			err := tx.EachActive(ag.ID, func(a Assignment) error {
				w.Backlog++
				if !a.DueAt.Before(dayStart) && a.DueAt.Before(dayEnd) {
					w.DueToday++
				}
				if a.DueAt.Before(now) {
					w.Overdue++
				}
				if a.Status == AssignmentAccepted && a.Check == "documents_and_sampling" {
					w.AcceptedNotSampled++
				}
				return nil
			})
			if err != nil {
				return err
			}
			var total time.Duration
			err = tx.EachResult(ag.ID, dayStart, dayEnd)(func(a Assignment) error {
				w.Results++
				total += pol.WorkingBetween(a.CreatedAt, a.Result.RecordedAt)
				return nil
			})
			if err != nil {
				return err
			}
			if w.Results > 0 {
				w.AvgTurnaroundWorkingH = total.Hours() / float64(w.Results)
			}
			out = append(out, w)
		}
		return nil
	})
	return out, err
}
