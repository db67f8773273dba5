package policy

import (
	"slices"
	"sort"
	"time"

	"github.com/ktcn/ktcn/inspection/fault"
)

// Check kinds an agency is assigned: a documents check (normal lots and
// random checks), or documents with sampling and lab tests (strict lots).
const (
	CheckDocuments            = "documents"
	CheckDocumentsAndSampling = "documents_and_sampling"
)

// CheckKinds are the check kinds, in a fixed order.
func CheckKinds() []string { return []string{CheckDocuments, CheckDocumentsAndSampling} }

// CapacityRules: how many inspections of each check kind an agency takes
// per working day. A lot goes to the first agency designated for it (the
// route's agency, then its alternates) with room on the working day it is
// decided; when none has room it goes to the preferred agency all the
// same, flagged over capacity. An agency or check kind not named here has
// no limit.
type CapacityRules struct {
	// PerDay is agency ID → check kind → inspections per working day.
	PerDay map[string]map[string]int `json:"per_day"`
}

// DailyCapacity is how many checks of a kind the agency takes per working
// day under p; limited is false when it has no limit (no capacity section,
// or none for this agency and check kind).
func (p *Policy) DailyCapacity(agency, check string) (n int, limited bool) {
	if p.Capacity == nil {
		return 0, false
	}
	n, limited = p.Capacity.PerDay[agency][check]
	return n, limited
}

// CapacityDay is the working day a lot decided at t counts toward,
// "YYYY-MM-DD" in Vietnam's time: the day of t if it is a working day in
// the policy's calendar, else the next working day.
func (p *Policy) CapacityDay(t time.Time) string {
	wc, ok := p.working()
	if !ok {
		return t.In(time.UTC).Format(time.DateOnly)
	}
	return wc.WorkingDate(t)
}

func (p *Policy) validateCapacity() error {
	c := p.Capacity
	if c == nil {
		return nil
	}
	if len(c.PerDay) == 0 {
		return fault.Of(fault.Invalid, "capacity.per_day", "must name at least one agency (leave the capacity section out for no limits)")
	}
	routed := p.RoutedAgencies()
	agencies := make([]string, 0, len(c.PerDay))
	for a := range c.PerDay {
		agencies = append(agencies, a)
	}
	sort.Strings(agencies)
	for _, a := range agencies {
		f := "capacity.per_day." + a
		if _, ok := slices.BinarySearch(routed, a); !ok {
			return fault.Of(fault.Invalid, f, "agency %q is designated by no route (routing[].agency or routing[].alternates)", a)
		}
		checks := c.PerDay[a]
		if len(checks) == 0 {
			return fault.Of(fault.Invalid, f, "must give a capacity for at least one check kind (%v)", CheckKinds())
		}
		kinds := make([]string, 0, len(checks))
		for k := range checks {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			fk := f + "." + k
			if !slices.Contains(CheckKinds(), k) {
				return fault.Of(fault.Invalid, fk, "unknown check kind %q (want one of %v)", k, CheckKinds())
			}
			if n := checks[k]; n < 1 {
				return fault.Of(fault.Invalid, fk, "must be at least 1 inspection per working day, got %d", n)
			}
		}
	}
	return nil
}
