package inspection

import (
	"time"

	"github.com/ktcn/ktcn/inspection/policy"
)

// Deadline returns when an assignment of the given mode created at t is due
// under p: strict lots are sampled and lab-tested (working days), others
// get a documents check (working hours).
func Deadline(p *policy.Policy, mode Mode, t time.Time) time.Time {
	return p.Deadline(mode == ModeStrict, t)
}
