package policy

import (
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
)

// WorkflowRules: how long an agency may correct its own result, and what
// happens to an inspection past its deadline. An optional section: a
// document without it takes the defaults (and keeps its digest).
type WorkflowRules struct {
	// CorrectionWorkingDays is how many working days after a result was
	// recorded its agency may still correct it.
	CorrectionWorkingDays int `json:"correction_working_days"`
	// Escalation is what an overdue inspection gets: "reassign" (to another
	// designated agency with room, else customs is told) or "customs" (customs
	// is told; the agency keeps it).
	Escalation string `json:"escalation"`
}

// Workflow defaults. The law gives no window for correcting a result; the
// conservative reading is a short one, so a result that decided modes is
// not rewritten long after: five working days.
const (
	DefaultCorrectionWorkingDays = 5
	EscalateReassign             = "reassign"
	EscalateCustoms              = "customs"
)

// Workflow returns the rules in force, defaults filled.
func (p *Policy) Workflow() WorkflowRules {
	if r := p.WorkflowRules; r != nil {
		return *r
	}
	return WorkflowRules{CorrectionWorkingDays: DefaultCorrectionWorkingDays, Escalation: EscalateReassign}
}

func (r *WorkflowRules) validate() error {
	if r == nil {
		return nil
	}
	if r.CorrectionWorkingDays < 0 || r.CorrectionWorkingDays > 60 {
		return fault.Of(fault.Invalid, "workflow.correction_working_days", "must be 0 to 60, got %d", r.CorrectionWorkingDays)
	}
	if r.Escalation != EscalateReassign && r.Escalation != EscalateCustoms {
		return fault.Of(fault.Invalid, "workflow.escalation", "must be %q or %q, got %q", EscalateReassign, EscalateCustoms, r.Escalation)
	}
	return nil
}

// AddWorkingDays is t moved on by days of working time in the policy's
// calendar.
func (p *Policy) AddWorkingDays(t time.Time, days int) time.Time {
	wc, ok := p.working()
	if !ok {
		return t
	}
	return wc.AddWorkingDays(t, days)
}

// WorkingBetween is the working time from a to b in the policy's calendar.
func (p *Policy) WorkingBetween(a, b time.Time) time.Duration {
	wc, ok := p.working()
	if !ok {
		return b.Sub(a)
	}
	return wc.Between(a, b)
}

// working is the compiled calendar: kept from parsing, or compiled now for
// a policy built in code; false when it does not compile (the callers fall
// back on calendar time).
func (p *Policy) working() (*calendar.Working, bool) {
	if p.cal != nil {
		return p.cal, true
	}
	wc, err := p.Calendar.Compile()
	return wc, err == nil
}
