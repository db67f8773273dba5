package backtest

import (
	"fmt"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
)

// side is one policy's replay: its quota counters, its load and its
// figures.
type side struct {
	pol     *policy.Policy
	sampler quota.Sampler
	book    *quota.MemBook
	fig     Figures
	// counting is false for the lots before the stretch reported: they
	// are decided (the quota's counters and the importers' traces move)
	// into warmup, which nobody reads.
	counting bool
	warmup   Figures
	// routes caches the agency of each (procedure, HS code).
	routes map[[2]string]string
	// load counts inspections per agency, check kind and working day.
	load map[loadKey]int64
	days map[string]bool // working days on which lots were decided
	// dayOf caches the working day of each civil date.
	dayOf map[civilDate]string
	// traces follow each importer through each period's reduced lots,
	// per period; only the newest two periods are kept (a lot decided a
	// little out of order at a year's turn still finds its trace), so
	// they do not grow with the years replayed.
	traces map[string]map[string]*trace
}

type loadKey struct{ agency, check, day string }

type civilDate struct {
	y int
	m time.Month
	d int
}

// trace is an importer's reduced lots in one period, as far as the
// unpredictability figures need them.
type trace struct {
	n     int32 // reduced lots so far
	since int32 // reduced lots since the last check, -1 before any
}

// firstN is how many lots the unpredictability figures look at: an
// importer's first lots of a year, and its lots after a check.
const firstN = 20

func newSide(p *policy.Policy, keys quota.Keys) *side {
	return &side{pol: p, sampler: quota.NewSampler(p.Reduced.Sampling, keys), book: quota.NewMemBook(),
		routes: map[[2]string]string{}, load: map[loadKey]int64{}, days: map[string]bool{}, dayOf: map[civilDate]string{},
		traces: map[string]map[string]*trace{}}
}

// outcome is what a side decided for a lot.
type outcome struct {
	mode             inspection.Mode
	inspect, sampled bool
	rule, reason     string
	draw             string
	// pi is the draw's inclusion probability of a reduced lot (zero for
	// other lots): the weight of its result in the random-check baseline.
	pi float64
}

// decide completes an evaluation as the service does (inspection.draft
// and lotRecords): strict and normal lots are inspected, a reduced lot is
// drawn under the quota when the policy samples, and an inspected lot is
// routed to its agency.
func (s *side) decide(l *Lot, ev inspection.Evaluation) (outcome, error) {
	o := outcome{mode: ev.Mode, rule: ev.Explanation.Rule, reason: ev.Explanation.Reason}
	f := &s.fig
	if !s.counting {
		f = &s.warmup
	}
	f.Lots++
	f.Modes[modeIndex(ev.Mode)]++
	day := ""
	if s.counting {
		day = s.workingDay(l.At)
		s.days[day] = true
	}
	switch ev.Mode {
	case inspection.ModeStrict, inspection.ModeNormal:
		o.inspect = true
	case inspection.ModeReduced:
		if !s.pol.Reduced.Sampling.Enabled {
			break
		}
		ql := quota.Lot{DeclarationID: l.DeclarationID, LineNo: l.LineNo, ImporterTaxCode: l.ImporterTaxCode,
			HSCode: identity.HSDigits(l.Goods.HSCode), GoodsKey: l.GoodsKey.String(), At: l.At, ComplianceLevel: l.ImporterLevel}
		rec, err := s.sampler.Draw(s.book, ql)
		if err != nil {
			return o, fmt.Errorf("backtest %s: random check of %s line %d: %w", s.pol.Version, l.DeclarationID, l.LineNo, err)
		}
		if rec.Selected*quota.CapDenominator > rec.Eligible*rec.CapBasisPoints {
			f.CapExceeded++ // never: the sampler enforces the cap at every step
		}
		o.inspect, o.sampled, o.draw, o.pi = rec.Chosen, rec.Chosen, rec.Draw, rec.InclusionProbability()
		if rec.Chosen {
			o.reason += "; selected for a random documents check"
			f.RandomChecks++
		} else {
			o.reason += "; not selected for a random check"
		}
		s.unpredictability(&f.Unpredictability, l.ImporterTaxCode, rec.Period, rec.Chosen)
	}
	if !o.inspect {
		return o, nil
	}
	f.Inspections++
	check := policy.CheckDocuments
	if ev.Mode == inspection.ModeStrict {
		check = policy.CheckDocumentsAndSampling
		f.LabSamples++
	}
	if s.counting {
		s.load[loadKey{s.route(l), check, day}]++
	}
	return o, nil
}

// route is the agency the policy designates for the lot (its first
// choice: alternates taken when an agency is full are not replayed).
func (s *side) route(l *Lot) string {
	k := [2]string{string(l.Procedure), l.Goods.HSCode}
	if a, ok := s.routes[k]; ok {
		return a
	}
	a := "unrouted"
	if listing, ok := s.pol.Lookup(l.Procedure, l.Goods.HSCode); ok {
		if ag, ok := s.pol.Route(listing, l.Goods.HSCode); ok {
			a = ag
		}
	}
	s.routes[k] = a
	return a
}

// workingDay is the working day a lot decided at t counts toward, under
// the side's calendar (policy.CapacityDay), computed once per date.
func (s *side) workingDay(t time.Time) string {
	y, m, d := t.In(calendar.Vietnam()).Date()
	k := civilDate{y, m, d}
	if day, ok := s.dayOf[k]; ok {
		return day
	}
	day := s.pol.CapacityDay(t)
	s.dayOf[k] = day
	return day
}

// unpredictability follows an importer's reduced lots in a period: the
// checks among its first firstN lots, and among the firstN after each
// check (the windows an importer could exploit if checks were regular).
func (s *side) unpredictability(u *Unpredictability, importer, period string, chosen bool) {
	per := s.traces[period]
	if per == nil {
		per = map[string]*trace{}
		s.traces[period] = per
		if len(s.traces) > 2 { // the oldest of three goes
			oldest := period
			for p := range s.traces {
				oldest = min(oldest, p)
			}
			delete(s.traces, oldest)
		}
	}
	tr := per[importer]
	if tr == nil {
		tr = &trace{since: -1}
		per[importer] = tr
	}
	if tr.n < firstN {
		u.FirstLots++
		if chosen {
			u.FirstChecked++
		}
	}
	if tr.since >= 0 && tr.since < firstN {
		u.AfterLots++
		if chosen {
			u.AfterChecked++
		}
	}
	tr.n++
	switch {
	case chosen:
		tr.since = 0
	case tr.since >= 0:
		tr.since++
	}
}

func modeIndex(m inspection.Mode) int {
	switch m {
	case inspection.ModeStrict:
		return 0
	case inspection.ModeNormal:
		return 1
	case inspection.ModeReduced:
		return 2
	}
	return 3
}

// Modes in the order Figures.Modes and the transition matrix use.
var Modes = [4]inspection.Mode{inspection.ModeStrict, inspection.ModeNormal, inspection.ModeReduced, inspection.ModeExempt}
