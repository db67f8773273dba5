package quota

import (
	"fmt"
	"sort"
)

// Simulator replays reduced-mode lots through the real draw and
// selection rule in memory, to measure a sampling policy on history before
// it is adopted: the share of the allowance it uses per scope size, and how
// much an importer could learn from its own lots. Lots must come in the
// order they would be decided.
type Simulator struct {
	rules   Rules
	sampler Sampler
	book    *MemBook
	traces  map[string]*importerTrace
	volume  map[string]int64 // importer → lots, to find dominant importers
	report  SimReport
}

// importerTrace follows one importer through one period.
type importerTrace struct {
	importer   string
	selections []bool // in decision order
	// uncheckable counts the importer's first simFirstN lots that met a
	// scope with no allowance at all (allowance 0: the scope's first lots
	// of the period), which no rule under the cap could have checked.
	uncheckable int64
}

// SimReport is what a simulation measured. Rates are shares of lots.
type SimReport struct {
	Scope          ScopeKind
	Selection      Selection
	Cap            float64
	Lots, Selected int64
	Rate           float64
	ShareOfCap     float64 // Rate / Cap
	Bands          []Band
	// Unpredictability, pooled over importers: the check rate of each
	// importer's first FirstN lots of the year, and of its next FirstN
	// lots after it was checked.
	FirstN                   int
	FirstLots, FirstSelected int64
	FirstRate                float64
	// FirstUncheckable of the FirstLots met a scope with no allowance yet
	// (its first lots of the period, floor(cap × eligible) = 0): the part
	// of the start-of-year leak that no rule under the cap can close.
	FirstUncheckable             int64
	AfterLots, AfterSelected     int64
	AfterRate                    float64
	DominantFirstRate            float64 // the same two rates for the five largest importers
	DominantAfterRate            float64
	ScopesBelowMinimum           int   // scopes too small to allow any check
	LotsInScopesBelowMinimum     int64 // their lots, checked at 0%
	CapExceeded                  int   // instants selected > floor(cap × eligible): must be 0
	ScopesAtAllowanceAtPeriodEnd int
}

// Band is the achieved rate for scopes of one size band (lots per
// period).
type Band struct {
	Band           string
	Scopes         int
	Lots, Selected int64
	Rate           float64
	ShareOfCap     float64
}

const simFirstN = 20

// NewSimulator starts a simulation of the rules under the keys.
func NewSimulator(r Rules, keys Keys) *Simulator {
	return &Simulator{rules: r, sampler: NewSampler(r, CacheKeys(keys)), book: NewMemBook(),
		traces: map[string]*importerTrace{}, volume: map[string]int64{}}
}

// Decide draws one lot and reports whether it is checked.
func (s *Simulator) Decide(l Lot) (bool, error) {
	rec, err := s.sampler.Draw(s.book, l)
	if err != nil {
		return false, fmt.Errorf("simulate quota: %w", err)
	}
	if rec.Selected*CapDenominator > rec.Eligible*rec.CapBasisPoints {
		s.report.CapExceeded++
	}
	tk := rec.Period + "|" + l.ImporterTaxCode
	tr := s.traces[tk]
	if tr == nil {
		tr = &importerTrace{importer: l.ImporterTaxCode}
		s.traces[tk] = tr
	}
	if len(tr.selections) < simFirstN && rec.Allowance == 0 {
		tr.uncheckable++
	}
	tr.selections = append(tr.selections, rec.Chosen)
	s.volume[l.ImporterTaxCode]++
	return rec.Chosen, nil
}

// Report sums the simulation up.
func (s *Simulator) Report() SimReport {
	r := s.report
	r.Scope, r.Selection, r.Cap, r.FirstN = s.rules.Scope, s.rules.Selection, float64(s.rules.CapBasisPoints())/CapDenominator, simFirstN
	bands := []struct {
		name     string
		min, max int64
	}{{"<20", 0, 19}, {"20-99", 20, 99}, {"100-999", 100, 999}, {"1000-9999", 1000, 9999}, {">=10000", 10000, 1 << 62}}
	out := make([]Band, len(bands))
	for i, b := range bands {
		out[i].Band = b.name
	}
	minLots := int64(CapDenominator+s.rules.CapBasisPoints()-1) / max(s.rules.CapBasisPoints(), 1)
	for _, c := range s.book.Counters() {
		r.Lots += c.Eligible
		r.Selected += c.Selected
		for i, b := range bands {
			if c.Eligible >= b.min && c.Eligible <= b.max {
				out[i].Scopes++
				out[i].Lots += c.Eligible
				out[i].Selected += c.Selected
			}
		}
		if c.Eligible < minLots {
			r.ScopesBelowMinimum++
			r.LotsInScopesBelowMinimum += c.Eligible
		}
		if c.Selected == AllowanceOf(c.Eligible, s.rules.CapBasisPoints()) {
			r.ScopesAtAllowanceAtPeriodEnd++
		}
	}
	for i := range out {
		if out[i].Lots > 0 {
			out[i].Rate = float64(out[i].Selected) / float64(out[i].Lots)
			out[i].ShareOfCap = out[i].Rate / r.Cap
		}
	}
	r.Bands = out
	if r.Lots > 0 {
		r.Rate = float64(r.Selected) / float64(r.Lots)
		r.ShareOfCap = r.Rate / r.Cap
	}
	// Dominant importers: the five with the most lots.
	type iv struct {
		id string
		n  int64
	}
	var vols []iv
	for id, n := range s.volume {
		vols = append(vols, iv{id, n})
	}
	sort.Slice(vols, func(i, j int) bool {
		return vols[i].n > vols[j].n || (vols[i].n == vols[j].n && vols[i].id < vols[j].id)
	})
	dominant := map[string]bool{}
	for i := 0; i < len(vols) && i < 5; i++ {
		dominant[vols[i].id] = true
	}
	var dFirst, dFirstSel, dAfter, dAfterSel int64
	for _, tr := range s.traces {
		f, fs, a, as := tr.windows()
		r.FirstLots, r.FirstSelected, r.AfterLots, r.AfterSelected = r.FirstLots+f, r.FirstSelected+fs, r.AfterLots+a, r.AfterSelected+as
		r.FirstUncheckable += tr.uncheckable
		if dominant[tr.importer] {
			dFirst, dFirstSel, dAfter, dAfterSel = dFirst+f, dFirstSel+fs, dAfter+a, dAfterSel+as
		}
	}
	r.FirstRate, r.AfterRate = ratio(r.FirstSelected, r.FirstLots), ratio(r.AfterSelected, r.AfterLots)
	r.DominantFirstRate, r.DominantAfterRate = ratio(dFirstSel, dFirst), ratio(dAfterSel, dAfter)
	return r
}

// windows counts an importer's first simFirstN lots of the period, and the
// simFirstN lots after each check (windows may overlap a later check,
// which restarts the count).
func (tr *importerTrace) windows() (first, firstSel, after, afterSel int64) {
	since := int64(-1) // lots since the last check, -1 before any
	for i, chosen := range tr.selections {
		if i < simFirstN {
			first++
			if chosen {
				firstSel++
			}
		}
		if since >= 0 && since < simFirstN {
			after++
			if chosen {
				afterSel++
			}
		}
		if chosen {
			since = 0
		} else if since >= 0 {
			since++
		}
	}
	return
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
