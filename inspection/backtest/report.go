package backtest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/quota"
)

// Report is what a backtest found.
type Report struct {
	ActiveVersion, CandidateVersion string
	// From and To are the first and last lot's decision times.
	From, To time.Time
	Lots     int64
	// WarmupLots were decided before Config.From: replayed, not reported.
	WarmupLots        int64
	Results, Alerts   int64
	Active, Candidate Figures
	// Transitions counts lots by active mode (row) and candidate mode
	// (column), in the order of Modes.
	Transitions [4][4]int64
	// Changed counts lots whose mode or inspection differs between the
	// sides; Changes are the first of them (Config.MaxChanges).
	Changed int64
	Changes []Change
	// Baseline is the failure rate among history's random checks of
	// reduced lots whose results are in: the only unbiased view of lots
	// nobody inspects, from which the unobserved outcomes are estimated.
	Baseline Rate
	// AgainstHistory compares the active side with the decisions history
	// recorded, lot by lot: any mismatch means the replay is not the
	// service's (or the history was decided under another version).
	AgainstHistory Exactness
	// ResultsOfUnknownLots are results of lots decided before the stretch
	// replayed: used as evidence, not counted as caught or missed.
	ResultsOfUnknownLots int64
	// LateEvents arrived dated earlier than Config.MaxLag allows: the
	// goods' later decisions may differ from the service's.
	LateEvents int64
	// OutOfOrder lots came dated before an earlier lot.
	OutOfOrder int64
}

// Figures are one side's totals.
type Figures struct {
	Lots int64
	// Modes counts lots per mode, in the order of Modes.
	Modes        [4]int64
	Inspections  int64
	RandomChecks int64
	// LabSamples are strict lots: documents with sampling and a lab test.
	LabSamples int64
	// Caught and Missed are known failures (results in) of lots history
	// inspected that this side inspects, or does not; Passed the known
	// passes among lots it inspects. AwaitingResults are lots history and
	// this side inspect whose result had not arrived by the end.
	Caught, Missed, Passed, AwaitingResults int64
	// Unobserved lots this side inspects that history did not: their
	// outcome is unknown. EstimatedFailures estimates how many of them fail
	// from the random-check baseline: an estimate, never a count of passes.
	Unobserved        int64
	EstimatedFailures Estimate
	// EvidenceNotOwn counts results this side's decisions read that come
	// from lots it would not have inspected (history's evidence; see
	// docs/backtest.md).
	EvidenceNotOwn int64
	Agencies       []AgencyLoad
	Quota          []quota.Usage
	// CapExceeded counts draws that left a scope above its cap: always 0.
	CapExceeded      int64
	Unpredictability Unpredictability
}

// Estimate is a count estimated from a rate: its expected value and a 95%
// interval.
type Estimate struct {
	Expected, Low, High float64
}

// Rate is a share of n with its 95% Wilson interval.
type Rate struct {
	Of, Count int64
	Rate      float64
	Low, High float64
}

// AgencyLoad is an agency's inspections of one check kind per working day
// against its capacity.
type AgencyLoad struct {
	Agency, Check string
	Total         int64
	Days          int // working days with lots decided (zero-load days count)
	Mean          float64
	Peak          int64
	PeakDay       string
	P95           int64
	// Capacity per working day; 0 with Limited false: no limit.
	Capacity         int
	Limited          bool
	DaysOverCapacity int
}

// Unpredictability: how much an importer could learn from its own reduced
// lots. Each rate should be near OverallRate.
type Unpredictability struct {
	FirstLots, FirstChecked int64 // an importer's first firstN reduced lots of a year
	AfterLots, AfterChecked int64 // the firstN after each check
	FirstRate, AfterRate    float64
	OverallRate             float64 // checks per reduced lot
}

// Change is a lot whose decision differs between the sides, and why.
type Change struct {
	DecisionID                      string
	DeclarationID                   string
	LineNo                          int
	At                              time.Time
	GoodsKey                        identity.Key
	ImporterTaxCode                 string
	ActiveMode, CandidateMode       inspection.Mode
	ActiveInspect, CandidateInspect bool
	ActiveRule, CandidateRule       string
	// Why is the candidate's reason; when both sides agree on the mode of a
	// reduced lot the difference is the quota's state, said so.
	Why string
}

// Exactness compares the active side with recorded decisions.
type Exactness struct {
	Compared, Mismatches int64
	// First mismatches, for finding the cause.
	Examples []Mismatch
}

// Mismatch is a lot the active side decided differently from history.
type Mismatch struct {
	DecisionID                       string
	RecordedMode, ReplayedMode       inspection.Mode
	RecordedInspect, ReplayedInspect bool
	RecordedDraw, ReplayedDraw       string
}

const maxMismatchExamples = 10

func (r *replay) compare(l *Lot, out [2]outcome) error {
	rep := r.rep
	a, c := out[0], out[1]
	rep.Transitions[modeIndex(a.mode)][modeIndex(c.mode)]++
	if rec := l.Recorded; rec != nil {
		x := &rep.AgainstHistory
		x.Compared++
		if rec.Mode != a.mode || rec.Inspect != a.inspect || rec.Sampled != a.sampled || (rec.Draw != "" && rec.Draw != a.draw) {
			x.Mismatches++
			if len(x.Examples) < maxMismatchExamples {
				x.Examples = append(x.Examples, Mismatch{DecisionID: identity.DecisionID(l.DeclarationID, l.LineNo),
					RecordedMode: rec.Mode, ReplayedMode: a.mode, RecordedInspect: rec.Inspect, ReplayedInspect: a.inspect,
					RecordedDraw: rec.Draw, ReplayedDraw: a.draw})
			}
		}
	}
	if a.mode == c.mode && a.inspect == c.inspect {
		return nil
	}
	rep.Changed++
	if len(rep.Changes) >= r.cfg.MaxChanges && r.cfg.OnChange == nil {
		return nil
	}
	ch := Change{DecisionID: identity.DecisionID(l.DeclarationID, l.LineNo), DeclarationID: l.DeclarationID, LineNo: l.LineNo,
		At: l.At, GoodsKey: l.GoodsKey, ImporterTaxCode: l.ImporterTaxCode, ActiveMode: a.mode, CandidateMode: c.mode,
		ActiveInspect: a.inspect, CandidateInspect: c.inspect, ActiveRule: a.rule, CandidateRule: c.rule, Why: c.reason}
	if a.mode == c.mode {
		ch.Why = "same mode; the random check's quota state differs between the versions: " + c.reason
	}
	if len(rep.Changes) < r.cfg.MaxChanges {
		rep.Changes = append(rep.Changes, ch)
	}
	if r.cfg.OnChange != nil {
		if err := r.cfg.OnChange(ch); err != nil {
			return fmt.Errorf("backtest: changed lot %s: %w", ch.DecisionID, err)
		}
	}
	return nil
}

// finish sums up what only the end can tell: results not in yet, the
// estimates, the agencies' days and the quota's scopes.
func (r *replay) finish() {
	rep := r.rep
	for _, pl := range r.pending {
		for i, s := range r.sides {
			if pl.inspect[i] {
				s.fig.AwaitingResults++
			}
		}
	}
	rep.Baseline = wilson(r.base.failures, r.base.results)
	for _, s := range r.sides {
		f := &s.fig
		f.EstimatedFailures = Estimate{Expected: float64(f.Unobserved) * rep.Baseline.Rate,
			Low: float64(f.Unobserved) * rep.Baseline.Low, High: float64(f.Unobserved) * rep.Baseline.High}
		f.Agencies = s.agencyLoads()
		f.Quota = s.quotaUsage()
		u := &f.Unpredictability
		u.FirstRate, u.AfterRate = ratio(u.FirstChecked, u.FirstLots), ratio(u.AfterChecked, u.AfterLots)
		u.OverallRate = ratio(f.RandomChecks, f.Modes[2])
	}
	rep.Active, rep.Candidate = r.sides[0].fig, r.sides[1].fig
}

func (s *side) agencyLoads() []AgencyLoad {
	type ac struct{ agency, check string }
	per := map[ac][]int64{}
	for k, n := range s.load {
		per[ac{k.agency, k.check}] = append(per[ac{k.agency, k.check}], n)
	}
	days := len(s.days)
	out := make([]AgencyLoad, 0, len(per))
	for k, counts := range per {
		al := AgencyLoad{Agency: k.agency, Check: k.check, Days: days}
		al.Capacity, al.Limited = s.pol.DailyCapacity(k.agency, k.check)
		for _, n := range counts {
			al.Total += n
			if al.Limited && n > int64(al.Capacity) {
				al.DaysOverCapacity++
			}
		}
		// Days without an inspection count as zero load.
		all := make([]int64, days-len(counts), days)
		all = append(all, counts...)
		slices.Sort(all)
		al.Peak = all[len(all)-1]
		al.P95 = all[int(math.Ceil(0.95*float64(len(all))))-1]
		if days > 0 {
			al.Mean = float64(al.Total) / float64(days)
		}
		for day := range s.days {
			if n := s.load[loadKey{k.agency, k.check, day}]; n == al.Peak && (al.PeakDay == "" || day < al.PeakDay) {
				al.PeakDay = day
			}
		}
		out = append(out, al)
	}
	slices.SortFunc(out, func(a, b AgencyLoad) int {
		return cmp.Or(cmp.Compare(a.Agency, b.Agency), cmp.Compare(a.Check, b.Check))
	})
	return out
}

// quotaUsage is each period's use of the cap, scope by scope, most lots
// first (quota.UsageOf, as customs see a live period).
func (s *side) quotaUsage() []quota.Usage {
	by := map[string][]quota.Counter{}
	for _, c := range s.book.Counters() {
		by[c.Period] = append(by[c.Period], c)
	}
	periods := make([]string, 0, len(by))
	for p := range by {
		periods = append(periods, p)
	}
	sort.Strings(periods)
	out := make([]quota.Usage, 0, len(periods))
	for _, p := range periods {
		// Counters come in map order: by scope first, so ties of size list
		// the same way every run.
		slices.SortFunc(by[p], func(a, b quota.Counter) int { return cmp.Compare(a.Scope, b.Scope) })
		out = append(out, quota.UsageOf(p, true, s.pol.Reduced.Sampling.CapBasisPoints(), by[p]))
	}
	return out
}

// wilson is k of n with its 95% Wilson score interval (sound at small n
// and at rates near 0, where the normal interval is not).
func wilson(k, n int64) Rate {
	r := Rate{Of: n, Count: k}
	if n == 0 {
		r.High = 1 // nothing known: anything is possible
		return r
	}
	const z = 1.959963984540054
	p, nf := float64(k)/float64(n), float64(n)
	d := 1 + z*z/nf
	centre := (p + z*z/(2*nf)) / d
	half := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / d
	r.Rate, r.Low, r.High = p, math.Max(0, centre-half), math.Min(1, centre+half)
	return r
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
