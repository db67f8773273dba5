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
	ActiveVersion    string `json:"active_version"`
	CandidateVersion string `json:"candidate_version"`
	// From and To are the first and last lot's decision times.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Lots int64     `json:"lots"`
	// WarmupLots were decided before Config.From: replayed, not reported.
	WarmupLots int64   `json:"warmup_lots"`
	Results    int64   `json:"results"`
	Alerts     int64   `json:"alerts"`
	Active     Figures `json:"active"`
	Candidate  Figures `json:"candidate"`
	// Transitions counts lots by active mode (row) and candidate mode
	// (column), in the order of Modes.
	Transitions [4][4]int64 `json:"transitions"`
	// Changed counts lots whose mode or inspection differs between the
	// sides; Changes are the first of them (Config.MaxChanges).
	Changed int64    `json:"changed"`
	Changes []Change `json:"changes"`
	// Baseline is the violation rate among reduced lots estimated from
	// history's random checks whose results are in, each weighed by its
	// draw's inclusion probability (the effectiveness ledger's Hájek
	// estimate and interval: docs/effectiveness.md): the only unbiased view
	// of lots nobody inspects, from which the unobserved outcomes are
	// estimated.
	Baseline Rate `json:"baseline"`
	// AgainstHistory compares the active side with the decisions history
	// recorded, lot by lot: any mismatch means the replay is not the
	// service's (or the history was decided under another version).
	AgainstHistory Exactness `json:"against_history"`
	// ResultsOfUnknownLots are results of lots decided before the stretch
	// replayed: used as evidence, not counted as caught or missed.
	ResultsOfUnknownLots int64 `json:"results_of_unknown_lots"`
	// LateEvents arrived dated earlier than Config.MaxLag allows: the
	// goods' later decisions may differ from the service's.
	LateEvents int64 `json:"late_events"`
	// OutOfOrder lots came dated before an earlier lot.
	OutOfOrder int64 `json:"out_of_order"`
}

// Figures are one side's totals.
type Figures struct {
	Lots int64 `json:"lots"`
	// Modes counts lots per mode, in the order of Modes.
	Modes        [4]int64 `json:"modes"`
	Inspections  int64    `json:"inspections"`
	RandomChecks int64    `json:"random_checks"`
	// LabSamples are strict lots: documents with sampling and a lab test.
	LabSamples int64 `json:"lab_samples"`
	// Caught and Missed are known failures (results in) of lots history
	// inspected that this side inspects, or does not; Passed the known
	// passes among lots it inspects. AwaitingResults are lots history and
	// this side inspect whose result had not arrived by the end.
	Caught          int64 `json:"caught"`
	Missed          int64 `json:"missed"`
	Passed          int64 `json:"passed"`
	AwaitingResults int64 `json:"awaiting_results"`
	// Unobserved lots this side inspects that history did not: their
	// outcome is unknown. EstimatedFailures estimates how many of them fail
	// from the random-check baseline: an estimate, never a count of passes.
	Unobserved        int64    `json:"unobserved"`
	EstimatedFailures Estimate `json:"estimated_failures"`
	// EvidenceNotOwn counts results this side's decisions read that come
	// from lots it would not have inspected (history's evidence; see
	// docs/backtest.md).
	EvidenceNotOwn int64         `json:"evidence_not_own"`
	Agencies       []AgencyLoad  `json:"agencies"`
	Quota          []quota.Usage `json:"quota"`
	// CapExceeded counts draws that left a scope above its cap: always 0.
	CapExceeded      int64            `json:"cap_exceeded"`
	Unpredictability Unpredictability `json:"unpredictability"`
}

// Estimate is a count estimated from a rate: its expected value and a 95%
// interval.
type Estimate struct {
	Expected float64 `json:"expected"`
	Low      float64 `json:"low"`
	High     float64 `json:"high"`
}

// Rate is Count of Of with its estimate and 95% interval.
type Rate struct {
	Of    int64   `json:"of"`
	Count int64   `json:"count"`
	Rate  float64 `json:"rate"`
	Low   float64 `json:"low"`
	High  float64 `json:"high"`
}

// AgencyLoad is an agency's inspections of one check kind per working day
// against its capacity.
type AgencyLoad struct {
	Agency  string  `json:"agency"`
	Check   string  `json:"check"`
	Total   int64   `json:"total"`
	Days    int     `json:"days"` // working days with lots decided (zero-load days count)
	Mean    float64 `json:"mean"`
	Peak    int64   `json:"peak"`
	PeakDay string  `json:"peak_day"`
	P95     int64   `json:"p95"`
	// Capacity per working day; 0 with Limited false: no limit.
	Capacity         int  `json:"capacity"`
	Limited          bool `json:"limited"`
	DaysOverCapacity int  `json:"days_over_capacity"`
}

// Unpredictability: how much an importer could learn from its own reduced
// lots. Each rate should be near OverallRate.
type Unpredictability struct {
	FirstLots    int64   `json:"first_lots"`
	FirstChecked int64   `json:"first_checked"` // an importer's first firstN reduced lots of a year
	AfterLots    int64   `json:"after_lots"`
	AfterChecked int64   `json:"after_checked"` // the firstN after each check
	FirstRate    float64 `json:"first_rate"`
	AfterRate    float64 `json:"after_rate"`
	OverallRate  float64 `json:"overall_rate"` // checks per reduced lot
}

// Change is a lot whose decision differs between the sides, and why.
type Change struct {
	DecisionID       string          `json:"decision_id"`
	DeclarationID    string          `json:"declaration_id"`
	LineNo           int             `json:"line_no"`
	At               time.Time       `json:"at"`
	GoodsKey         identity.Key    `json:"goods_key"`
	ImporterTaxCode  string          `json:"importer_tax_code"`
	ActiveMode       inspection.Mode `json:"active_mode"`
	CandidateMode    inspection.Mode `json:"candidate_mode"`
	ActiveInspect    bool            `json:"active_inspect"`
	CandidateInspect bool            `json:"candidate_inspect"`
	ActiveRule       string          `json:"active_rule"`
	CandidateRule    string          `json:"candidate_rule"`
	// Why is the candidate's reason; when both sides agree on the mode of a
	// reduced lot the difference is the quota's state, said so.
	Why string `json:"why"`
}

// Exactness compares the active side with recorded decisions.
type Exactness struct {
	Compared   int64 `json:"compared"`
	Mismatches int64 `json:"mismatches"`
	// First mismatches, for finding the cause.
	Examples []Mismatch `json:"examples"`
}

// Mismatch is a lot the active side decided differently from history.
type Mismatch struct {
	DecisionID      string          `json:"decision_id"`
	RecordedMode    inspection.Mode `json:"recorded_mode"`
	ReplayedMode    inspection.Mode `json:"replayed_mode"`
	RecordedInspect bool            `json:"recorded_inspect"`
	ReplayedInspect bool            `json:"replayed_inspect"`
	RecordedDraw    string          `json:"recorded_draw"`
	ReplayedDraw    string          `json:"replayed_draw"`
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
	rep.Baseline = Rate{Of: r.base.Results, Count: r.base.Fails, High: 1} // nothing known: anything is possible
	if v := r.base.ViolationRate(); v != nil {
		rep.Baseline.Rate, rep.Baseline.Low, rep.Baseline.High = v.Estimate, v.Low, v.High
	}
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

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
