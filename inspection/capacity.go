package inspection

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/policy"
)

// Capacity-aware routing. Under a policy with a capacity section
// (policy.CapacityRules) an inspected lot goes to the first agency
// designated for it, preferred first and then the route's alternates, that
// has room for its check kind on the working day it is decided; if none
// has, the preferred agency takes it, flagged over capacity. The agency's
// counter for that day and check kind counts it.
//
// The counters are hot keys, like the quota counters, and kept the same
// way: read and written inside the decision's write transaction, which the
// store runs serially (one group committer) or, with direct commits,
// retries on a conflict; so each count is exact and no two lots take the
// last place of a day. A lot whose routing reads them is therefore never
// drafted ahead of the transaction (encodeDraft, lotRecords).
//
// Counters are records, audited like the quota counters rather than
// derived: routing reads them as a decision input, so a counter changed
// beside the log would send lots elsewhere with no trace. They are also a
// fold of the assignments (every assignment with a CapacityDay counts once
// toward its agency, day and check), which an audit can recount.
//
// A counter counts lots routed, not lots open: an override that cancels
// an assignment frees no place (the agency may have begun the check), and
// reopening it counts no second time. Without a capacity section nothing
// is counted and every lot goes to its route's agency, as before.

// CapacityCounter is how many lots were routed to an agency for a check
// kind on a working day ("YYYY-MM-DD"), Over of them beyond its capacity.
type CapacityCounter struct {
	Agency string `json:"agency"`
	Day    string `json:"day"`
	Check  string `json:"check"`
	Routed int64  `json:"routed"`
	Over   int64  `json:"over,omitempty"`
}

// ID is the counter's record ID: agency/day/check.
func (c CapacityCounter) ID() string { return CapacityCounterID(c.Agency, c.Day, c.Check) }

// CapacityCounterID is the record ID of a capacity counter.
func CapacityCounterID(agency, day, check string) string { return agency + "/" + day + "/" + check }

// ParseCapacityCounterID splits a counter's record ID; the day and check
// kind hold no slash, the agency may.
func ParseCapacityCounterID(id string) (agency, day, check string, ok bool) {
	i := strings.LastIndexByte(id, '/')
	if i < 0 {
		return "", "", "", false
	}
	rest, check := id[:i], id[i+1:]
	j := strings.LastIndexByte(rest, '/')
	if j < 0 {
		return "", "", "", false
	}
	agency, day = rest[:j], rest[j+1:]
	return agency, day, check, agency != "" && day != "" && check != ""
}

// CapacityReader reads capacity counters.
type CapacityReader interface {
	CapacityCounter(agency, day, check string) (CapacityCounter, error)
	// CapacityCounters lists a working day's counters by agency and check.
	CapacityCounters(day string) ([]CapacityCounter, error)
}

// CapacityWriter writes them.
type CapacityWriter interface {
	PutCapacityCounter(CapacityCounter) error
}

// routesByCapacity reports whether routing under pol reads capacity
// counters, so a lot inspected under it must be routed in its write
// transaction.
func routesByCapacity(pol *policy.Policy) bool { return pol.Capacity != nil }

// routeByCapacity gives a's lot to the first designated agency with room
// on the working day of now, or to the preferred one over capacity, and
// counts it. a was routed to the preferred agency (assign); dec, when not
// nil, is its decision, whose agency follows.
func routeByCapacity(tx Tx, pol *policy.Policy, a *Assignment, dec *Decision, now time.Time) error {
	listing, ok := pol.Lookup(a.Procedure, a.Goods.HSCode)
	if !ok {
		return fmt.Errorf("route %s %s by capacity: not listed", a.Procedure, a.Goods.HSCode)
	}
	designated, ok := pol.Designated(listing, a.Goods.HSCode)
	if !ok {
		return fmt.Errorf("no route for %s %s: %w", a.Procedure, a.Goods.HSCode, errors.New("policy routing incomplete"))
	}
	day := pol.CapacityDay(now)
	var (
		chosen    CapacityCounter
		found     bool
		preferred CapacityCounter
	)
	for i, agency := range designated {
		c, err := tx.CapacityCounter(agency, day, a.Check)
		switch {
		case errors.Is(err, fault.ErrNotFound):
			c = CapacityCounter{Agency: agency, Day: day, Check: a.Check}
		case err != nil:
			return err
		}
		if i == 0 {
			preferred = c
		}
		if n, limited := pol.DailyCapacity(agency, a.Check); !limited || c.Routed < int64(n) {
			chosen, found = c, true
			break
		}
	}
	note := ""
	if !found {
		chosen = preferred
		chosen.Over++
		a.OverCapacity = true
		note = fmt.Sprintf("; every designated agency (%s) is at capacity for %s on %s: %s takes it over capacity",
			strings.Join(designated, ", "), a.Check, day, chosen.Agency)
	} else if chosen.Agency != designated[0] {
		a.PreferredAgency = designated[0]
		note = fmt.Sprintf("; %s is at capacity for %s on %s: routed to %s, designated after it", designated[0], a.Check, day, chosen.Agency)
	}
	chosen.Routed++
	if err := tx.PutCapacityCounter(chosen); err != nil {
		return err
	}
	a.Agency, a.CapacityDay = chosen.Agency, day
	if dec != nil {
		dec.Agency = chosen.Agency
		dec.Reason += note
	}
	return nil
}
