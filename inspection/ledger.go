package inspection

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
)

// The effectiveness ledger: per policy version and rule, how many lots
// were decided, inspected and found failing, and what the random checks
// of reduced lots say about the violation rate among the reduced lots
// nobody inspected (docs/effectiveness.md describes the method).
//
// The counters are derived data, a fold of the audited decisions,
// overrides and results, kept in the transaction of each of them: a use
// case adds its deltas to the Change and the write path folds them into
// the stored tallies once per transaction (one read and one write per
// version and rule touched, however many lots the change decided). So
// reading the ledger never scans history, and a tally is exactly as
// current as the records it counts.
//
// The tallies are hot keys like the quota counters: under group commit
// every write runs in one goroutine, and with direct commits a conflict
// retries the transaction, so no increment is lost.

// LedgerTally is the ledger's counts for lots decided under one policy
// version's rule.
type LedgerTally struct {
	Version string `json:"version"`
	Rule    string `json:"rule"`
	// Decided counts lots decided; Inspected those with an inspection in
	// force (the decision's, or an override's: an override that cancels
	// one takes it off, one that orders one adds it).
	Decided   int64 `json:"decided"`
	Inspected int64 `json:"inspected"`
	// Results and Fails are the results in for those lots, the latest
	// of each (a correction moves a lot between pass and fail).
	Results int64 `json:"results"`
	Fails   int64 `json:"fails"`
	// Reduced counts lots decided reduced; Drawable those of them the
	// quota's draw could choose (inclusion probability above zero: the
	// policy samples and the scope had allowance and credit left), Chosen
	// those it chose.
	Reduced  int64 `json:"reduced"`
	Drawable int64 `json:"drawable"`
	Chosen   int64 `json:"chosen"`
	// Random are the results of the draw's own checks.
	Random RandomTally `json:"random"`
}

// RandomTally holds the weighted sums the estimate of the violation rate
// among reduced lots is made from, over the results of lots the draw
// chose (never a lot a swap or another override ordered checked: an
// officer chose those). Each result weighs 1/π, π the lot's inclusion
// probability when it was drawn; sums, so a correction subtracts exactly
// what it added.
type RandomTally struct {
	Results int64 `json:"results"`
	Fails   int64 `json:"fails"`
	// W = Σ 1/π and WY = Σ y/π (y = 1 for a fail): the Hájek estimate is
	// WY/W. V = Σ (1−π)/π² and VY = Σ y(1−π)/π²: its variance.
	W  float64 `json:"w"`
	WY float64 `json:"wy"`
	V  float64 `json:"v"`
	VY float64 `json:"vy"`
}

// LedgerReader reads the ledger's tallies.
type LedgerReader interface {
	LedgerTally(version, rule string) (LedgerTally, error)
	// LedgerEmpty reports whether no tally is kept yet, and EachDecision
	// scans every stored decision, without its explanation's events: the
	// one-time recount of a store whose decisions predate the ledger
	// (recountLedger).
	LedgerEmpty() (bool, error)
	EachDecision(fn func(Decision) error) error
	// LedgerTallies lists a version's tallies by rule.
	LedgerTallies(version string) ([]LedgerTally, error)
}

// LedgerWriter writes them (only the write path does: applyLedger).
type LedgerWriter interface {
	PutLedgerTally(LedgerTally) error
}

type ledgerKey struct{ version, rule string }

// ledgerDeltas are a change's increments to the tallies, in the order
// first touched (so writes are deterministic).
type ledgerDeltas struct {
	order []ledgerKey
	by    map[ledgerKey]*LedgerTally
}

// tally is the delta of the tally d's lot counts toward.
func (c *Change) tally(d Decision) *LedgerTally {
	l := &c.ledger
	k := ledgerKey{d.PolicyVersion, d.Explanation.Rule}
	if t, ok := l.by[k]; ok {
		return t
	}
	if l.by == nil {
		l.by = map[ledgerKey]*LedgerTally{}
	}
	t := &LedgerTally{Version: k.version, Rule: k.rule}
	l.by[k], l.order = t, append(l.order, k)
	return t
}

// ledgerDecided counts a lot just decided.
func (c *Change) ledgerDecided(d Decision) {
	t := c.tally(d)
	t.Decided++
	if d.Inspect {
		t.Inspected++
	}
	if d.Mode == ModeReduced {
		t.Reduced++
	}
	if d.Quota != nil {
		if d.Quota.InclusionProbability() > 0 {
			t.Drawable++
		}
		if d.Quota.Chosen {
			t.Chosen++
		}
	}
}

// ledgerInspection counts an override's order (+1) or cancellation (−1)
// of d's inspection.
func (c *Change) ledgerInspection(d Decision, delta int64) { c.tally(d).Inspected += delta }

// ledgerResult counts (sign +1) or uncounts (−1) an outcome of a's
// inspection of d's lot. A result of the draw's own check (the decision's
// assignment, chosen by the draw, no override since) also counts toward
// the estimate, weighted by the draw's inclusion probability.
func (c *Change) ledgerResult(d Decision, a Assignment, o Outcome, sign int64) {
	t := c.tally(d)
	fail := int64(0)
	if o == OutcomeFail {
		fail = 1
	}
	t.Results += sign
	t.Fails += sign * fail
	if !drawnCheck(d, a) {
		return
	}
	t.Random.Add(d.Quota.InclusionProbability(), fail == 1, sign)
}

// Add counts (sign +1) or uncounts (−1) the result of a lot the draw
// chose with inclusion probability pi (> 0): the ledger per result, and a
// backtest over history's random checks, so both estimate alike.
func (r *RandomTally) Add(pi float64, fail bool, sign int64) {
	w, v := 1/pi, (1-pi)/(pi*pi)
	s, y := float64(sign), 0.0
	r.Results += sign
	if fail {
		y = 1
		r.Fails += sign
	}
	r.W += s * w
	r.WY += s * y * w
	r.V += s * v
	r.VY += s * y * v
}

// drawnCheck reports whether a is the check the draw chose for d's lot:
// chosen, and no override has opened or cancelled it since.
func drawnCheck(d Decision, a Assignment) bool {
	return d.Quota != nil && d.Quota.Chosen && a.OverrideID == "" && d.Quota.InclusionProbability() > 0
}

// applyLedger folds a change's deltas into the stored tallies, in the
// change's transaction.
func applyLedger(tx Tx, l ledgerDeltas) error {
	for _, k := range l.order {
		d := l.by[k]
		t, err := tx.LedgerTally(k.version, k.rule)
		switch {
		case errors.Is(err, fault.ErrNotFound):
			t = LedgerTally{Version: k.version, Rule: k.rule}
		case err != nil:
			return fmt.Errorf("ledger tally %s %s: %w", k.version, k.rule, err)
		}
		t.add(*d)
		if err := tx.PutLedgerTally(t); err != nil {
			return err
		}
	}
	return nil
}

// add adds d's counts to t.
func (t *LedgerTally) add(d LedgerTally) {
	t.Decided += d.Decided
	t.Inspected += d.Inspected
	t.Results += d.Results
	t.Fails += d.Fails
	t.Reduced += d.Reduced
	t.Drawable += d.Drawable
	t.Chosen += d.Chosen
	r := &t.Random
	r.Results += d.Random.Results
	r.Fails += d.Random.Fails
	r.W += d.Random.W
	r.WY += d.Random.WY
	r.V += d.Random.V
	r.VY += d.Random.VY
}

// Effectiveness is a policy version's ledger, shaped for a page: the
// version's totals and a row per rule that decided lots under it.
type Effectiveness struct {
	Version string             `json:"version"`
	Totals  EffectivenessRow   `json:"totals"`
	Rules   []EffectivenessRow `json:"rules"`
	// Method says how the rates and intervals are computed.
	Method string `json:"method"`
}

// EffectivenessRow is the ledger of one rule (or of the version, Rule
// empty).
type EffectivenessRow struct {
	Rule      string `json:"rule,omitempty"`
	Decided   int64  `json:"decided"`
	Inspected int64  `json:"inspected"`
	// ResultsIn of the inspections; Pending are inspections in force
	// whose result is not in yet.
	ResultsIn int64 `json:"results_in"`
	Pending   int64 `json:"pending"`
	Failures  int64 `json:"failures"`
	// HitRate is Failures / ResultsIn with its 95% interval; absent
	// before the first result.
	HitRate *Rate `json:"hit_rate,omitempty"`
	// Reduced lots decided, Drawable of them the draw could choose,
	// RandomChecks it chose, and the results and failures of those checks.
	Reduced        int64 `json:"reduced"`
	Drawable       int64 `json:"drawable"`
	RandomChecks   int64 `json:"random_checks"`
	RandomResults  int64 `json:"random_results"`
	RandomFailures int64 `json:"random_failures"`
	// ReducedViolationRate estimates the share of reduced lots that
	// violate, the ones nobody inspected included, from the random checks'
	// results weighted by their inclusion probabilities; absent before the
	// first such result.
	ReducedViolationRate *Rate `json:"reduced_violation_rate,omitempty"`
	// Explanation says the row in a sentence or two.
	Explanation string `json:"explanation"`
}

// Rate is an estimated proportion with its 95% interval.
type Rate struct {
	Estimate float64 `json:"estimate"`
	Low      float64 `json:"low"`
	High     float64 `json:"high"`
	// EffectiveN is the sample size the interval is computed for (the
	// results in, or fewer when unequal weights make the estimate less
	// precise than a simple sample of them would be).
	EffectiveN float64 `json:"effective_n"`
}

// effectivenessMethod is Effectiveness.Method.
const effectivenessMethod = "hit rate: failures / results in, 95% Clopper–Pearson interval; " +
	"violation rate among reduced lots: Hájek estimate over the random checks' results, each weighted by 1/π " +
	"(π the draw's inclusion probability when the lot was drawn), 95% Clopper–Pearson interval at the " +
	"Korn–Graubard effective sample size (docs/effectiveness.md)"

// Effectiveness reads version's ledger. An unknown version is not found
// (field "version").
func (s *Service) Effectiveness(ctx context.Context, by access.Principal, version string) (Effectiveness, error) {
	return read(ctx, s.reads, by, access.ActReadPolicy, func(tx ReadTx) (Effectiveness, error) {
		if _, err := tx.PolicyVersion(version); errors.Is(err, fault.ErrNotFound) {
			return Effectiveness{}, fault.Of(fault.NotFound, "version", "no policy version %q", version)
		} else if err != nil {
			return Effectiveness{}, err
		}
		ts, err := tx.LedgerTallies(version)
		if err != nil {
			return Effectiveness{}, err
		}
		return effectivenessOf(version, ts), nil
	})
}

// effectivenessOf shapes a version's tallies: rules by how many lots they
// decided, then by name.
func effectivenessOf(version string, ts []LedgerTally) Effectiveness {
	total := LedgerTally{Version: version}
	for _, t := range ts {
		total.add(t)
	}
	slices.SortFunc(ts, func(a, b LedgerTally) int {
		if a.Decided != b.Decided {
			if a.Decided > b.Decided {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	e := Effectiveness{Version: version, Totals: rowOf(total, "all rules of "+version), Rules: make([]EffectivenessRow, 0, len(ts)), Method: effectivenessMethod}
	for _, t := range ts {
		r := rowOf(t, "rule "+t.Rule)
		r.Rule = t.Rule
		e.Rules = append(e.Rules, r)
	}
	return e
}

// rowOf computes a row's rates and says it.
func rowOf(t LedgerTally, what string) EffectivenessRow {
	r := EffectivenessRow{Decided: t.Decided, Inspected: t.Inspected, ResultsIn: t.Results, Pending: max(0, t.Inspected-t.Results),
		Failures: t.Fails, Reduced: t.Reduced, Drawable: t.Drawable, RandomChecks: t.Chosen,
		RandomResults: t.Random.Results, RandomFailures: t.Random.Fails}
	var b strings.Builder
	fmt.Fprintf(&b, "%d lots decided under %s; %d inspected, %d results in (%d pending), %d failed", t.Decided, what, t.Inspected, t.Results, r.Pending, t.Fails)
	if t.Results > 0 {
		r.HitRate = proportion(float64(t.Fails), float64(t.Results))
		fmt.Fprintf(&b, ": hit rate %s", r.HitRate)
	}
	b.WriteString(".")
	if t.Reduced > 0 {
		// The drawable share says how far the estimate reaches: lots the
		// draw could not choose are covered only by assumption.
		fmt.Fprintf(&b, " %d reduced lots, %d of them drawable and %d checked at random; %d results in, %d failed",
			t.Reduced, t.Drawable, t.Chosen, t.Random.Results, t.Random.Fails)
		r.ReducedViolationRate = t.Random.ViolationRate()
		if r.ReducedViolationRate != nil {
			fmt.Fprintf(&b, ": violation rate among reduced lots, the uninspected included, estimated %s", r.ReducedViolationRate)
		} else {
			b.WriteString(": no estimate of the violation rate among reduced lots yet")
		}
		b.WriteString(".")
	}
	r.Explanation = b.String()
	return r
}

// String is the rate as a page shows it: "4.1% (95% interval 2.0%–7.3%)".
func (r *Rate) String() string {
	return fmt.Sprintf("%.1f%% (95%% interval %.1f%%–%.1f%%)", 100*r.Estimate, 100*r.Low, 100*r.High)
}

// proportion is x of n with its Clopper–Pearson interval: exact
// (conservative) coverage at the small counts a new version or a rarely
// firing rule has, where a normal interval would reach below zero.
func proportion(x, n float64) *Rate {
	lo, hi := clopperPearson(x, n)
	return &Rate{Estimate: x / n, Low: lo, High: hi, EffectiveN: n}
}

// ViolationRate is the Hájek estimate of the violation rate among reduced
// lots from the random checks' weighted sums, nil without a result.
// Exported so other reports (a backtest's counterfactual outcomes) take
// their random-check baseline from the same arithmetic.
//
// Estimator: R = Σ y/π / Σ 1/π over the draw's results. Each reduced lot
// the draw could choose is chosen with probability π given the scope's
// past, independently of its compliance (the draw is a keyed hash), so
// the weighted sums are unbiased for the population's (a martingale
// argument: E[1{chosen}/π | past] = 1), and R, their ratio, is the usual
// design-consistent estimate of the share that violate. Where π is the
// same for every lot R is simply fails / results.
//
// Interval: the linearised variance of R, Σ (1−π)/π² (y−R)² / (Σ 1/π)²
// (the unbiased variance of a sequential Poisson design's sums applied to
// the residuals), turned into an effective sample size n* = R(1−R)/var,
// at most the results in, and a Clopper–Pearson interval for R·n* of n*
// (Korn and Graubard 1998). Clopper–Pearson rather than Wald because
// violations are rare: a few failures among a hundred checks, where a
// normal interval undercovers and crosses zero; capped at the results in
// so unequal weights can only widen it.
func (r RandomTally) ViolationRate() *Rate {
	if r.Results <= 0 || !(r.W > 0) {
		return nil
	}
	est := math.Min(1, math.Max(0, r.WY/r.W))
	n := float64(r.Results)
	neff := n
	variance := (r.VY*(1-2*est) + est*est*r.V) / (r.W * r.W)
	if variance > 0 && est > 0 && est < 1 {
		neff = math.Min(n, est*(1-est)/variance)
	}
	lo, hi := clopperPearson(est*neff, neff)
	return &Rate{Estimate: est, Low: lo, High: hi, EffectiveN: neff}
}

// clopperPearson is the 95% exact binomial interval for x successes in n
// trials, real-valued as the effective sample size makes them: the 2.5%
// quantile of Beta(x, n−x+1) and the 97.5% one of Beta(x+1, n−x). gonum's
// Beta panics on a shape ≤ 0, so the ends at x = 0 and x = n are 0 and 1.
func clopperPearson(x, n float64) (lo, hi float64) {
	if !(n > 0) {
		return 0, 1
	}
	x = math.Min(n, math.Max(0, x))
	lo, hi = 0, 1
	if x > 0 {
		lo = distuv.Beta{Alpha: x, Beta: n - x + 1}.Quantile(0.025)
	}
	if x < n {
		hi = distuv.Beta{Alpha: x + 1, Beta: n - x}.Quantile(0.975)
	}
	return lo, hi
}

// recountLedger builds the ledger from the stored decisions and their
// assignments when the store holds decisions but no tally: a store whose
// decisions predate the ledger. Without it such a store's ledger would
// count from the upgrade on, and a result for an older lot would count a
// failure of a lot never decided. Each lot counts as the write path would
// have counted it: decided under its version and rule, inspected if its
// assignment (the decision's, or an override's) stands, and its latest
// result. The tallies are few (one per version and rule), so they are
// summed in memory and written in one transaction: a crash before it
// leaves the ledger empty and the next start recounts again; after it
// the ledger is not empty and is never recounted.
func (s *Service) recountLedger(ctx context.Context) (lots int, err error) {
	var c Change
	err = s.reads.View(ctx, func(tx ReadTx) error {
		if empty, err := tx.LedgerEmpty(); err != nil || !empty {
			return err
		}
		return tx.EachDecision(func(d Decision) error {
			lots++
			c.ledgerDecided(d)
			a, err := tx.Assignment(identity.AssignmentID(d.DeclarationID, d.LineNo))
			switch {
			case errors.Is(err, fault.ErrNotFound):
				if d.Inspect {
					c.ledgerInspection(d, -1)
				}
				return nil
			case err != nil:
				return err
			}
			switch stands := a.Status != AssignmentCancelled; {
			case stands && !d.Inspect:
				c.ledgerInspection(d, 1) // an override ordered it
			case !stands && d.Inspect:
				c.ledgerInspection(d, -1) // an override cancelled it
			}
			if a.Result != nil {
				c.ledgerResult(d, a, a.Result.Outcome, 1)
			}
			return nil
		})
	})
	if err != nil || lots == 0 {
		return 0, err
	}
	err = s.w.store.Update(ctx, func(tx Tx) error {
		if empty, err := tx.LedgerEmpty(); err != nil || !empty {
			return err // another start recounted first
		}
		return applyLedger(tx, c.ledger)
	})
	if err != nil {
		return 0, fmt.Errorf("recount the ledger: %w", err)
	}
	s.log.Info().Int("lots", lots).Msg("effectiveness ledger recounted from the stored decisions (they predate it)")
	return lots, nil
}
