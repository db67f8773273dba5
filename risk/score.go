package risk

import (
	"sort"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// Interval is a credible interval of the violation rate.
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// Width is Hi-Lo.
func (iv Interval) Width() float64 { return iv.Hi - iv.Lo }

// Contains reports whether Lo <= x <= Hi.
func (iv Interval) Contains(x float64) bool { return iv.Lo <= x && x <= iv.Hi }

// Score is a subject's estimated probability of violation at a time: the
// posterior Beta(Prior.Alpha + failures, Prior.Beta + passes) of its rate,
// from its decayed counts.
type Score struct {
	Subject Subject   `json:"subject"`
	At      time.Time `json:"at"`
	// Mean is the posterior mean (alpha+f)/(alpha+beta+f+p).
	Mean float64 `json:"mean"`
	// Interval is the equal-tailed credible interval at Level: the
	// (1-Level)/2 and (1+Level)/2 posterior quantiles.
	Interval Interval `json:"interval"`
	Level    float64  `json:"level"`
	// Pessimistic is the bound rules use: Interval.Hi. A thin history has
	// a wide interval and so a cautious (high) bound. (For a very skewed
	// posterior, a shape near MinShape and a low Level, an equal-tailed
	// interval can exclude the mean; at Level 0.9 with both shapes >= 0.02 it
	// cannot.)
	Pessimistic float64  `json:"pessimistic"`
	Evidence    Evidence `json:"evidence"`
}

// Evidence is what a score was computed from, enough to recompute it.
type Evidence struct {
	// Counts are the subject's counts as of the score's time.
	Counts Counts `json:"counts"`
	// Failures (failing results plus AlertWeight × alerts) and Passes are
	// the weighted evidence the posterior adds to the prior;
	// EffectiveLots is its Kish size (Σw)²/Σw².
	Failures      float64 `json:"failures"`
	Passes        float64 `json:"passes"`
	EffectiveLots float64 `json:"effective_lots"`
	HalfLifeDays  float64 `json:"half_life_days"`
	AlertWeight   float64 `json:"alert_weight"`
	Prior         Prior   `json:"prior"`
	// PosteriorAlpha and PosteriorBeta are the posterior's shapes.
	PosteriorAlpha float64 `json:"posterior_alpha"`
	PosteriorBeta  float64 `json:"posterior_beta"`
	// Lots are the most influential observations (ScoreHistory only):
	// failures first, then by weight.
	Lots []Lot `json:"lots,omitempty"`
}

// Lot is one observation as evidence, with the weight it carries in the
// score (decay × its own weight × AlertWeight for an alert).
type Lot struct {
	Ref    string    `json:"ref"`
	At     time.Time `json:"at"`
	Failed bool      `json:"failed"`
	Alert  bool      `json:"alert,omitempty"`
	Weight float64   `json:"weight"`
}

// ScoreCounts scores a subject from its stored counts (accumulated with
// p.HalfLife, AsOf no later than now) and its prior, as of now.
func ScoreCounts(s Subject, c Counts, prior Prior, now time.Time, p Params) (Score, error) {
	if err := p.Validate(); err != nil {
		return Score{}, err
	}
	if err := prior.validate(); err != nil {
		return Score{}, err
	}
	if err := c.validate("Counts"); err != nil {
		return Score{}, err
	}
	if err := c.compatible("Counts", p.HalfLife); err != nil {
		return Score{}, err
	}
	if now.IsZero() {
		return Score{}, invalid("now", "is required")
	}
	if c.AsOf.After(now) {
		return Score{}, invalid("Counts.AsOf", "%s is after now %s", c.AsOf.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	c, err := c.DecayTo(now)
	if err != nil {
		return Score{}, err
	}
	e := c.effective(p.AlertWeight)
	a, b := prior.Alpha+e.fail, prior.Beta+e.pass
	iv, err := credible(a, b, p.Level)
	if err != nil {
		return Score{}, err
	}
	sc := Score{Subject: s, Interval: iv, Level: p.Level,
		Evidence: Evidence{Counts: c, AlertWeight: p.AlertWeight, Prior: prior}}
	sc.Restore()
	sc.At, sc.Evidence.HalfLifeDays = now, p.HalfLife.Hours()/24
	return sc, nil
}

// Restore fills in what a score derives from its subject, interval, level
// and evidence counts, alert weight and prior, by ScoreCounts' own
// arithmetic: its time (the counts' AsOf), mean, pessimistic bound, and
// the evidence's weighted failures and passes, effective lots, half-life
// in days (from non-empty counts) and posterior shapes. The interval is
// kept, not recomputed: its quantiles are the costly part.
func (sc *Score) Restore() {
	ev := &sc.Evidence
	e := ev.Counts.effective(ev.AlertWeight)
	a, b := ev.Prior.Alpha+e.fail, ev.Prior.Beta+e.pass
	sc.At, sc.Mean, sc.Pessimistic = ev.Counts.AsOf, a/(a+b), sc.Interval.Hi
	ev.Failures, ev.Passes, ev.EffectiveLots = e.fail, e.pass, e.lots()
	ev.PosteriorAlpha, ev.PosteriorBeta = a, b
	if ev.Counts.HalfLife != 0 {
		// Counts remember their half-life but while empty (then the
		// compact form keeps HalfLifeDays itself).
		ev.HalfLifeDays = ev.Counts.HalfLife.Hours() / 24
	}
}

// Compact is sc without what Restore derives (those fields zero), and
// whether Restore gives sc back exactly, to the last bit: a store can then
// keep only the rest. It is false, and sc comes back whole, for a score
// Restore would not give back (one not made by ScoreCounts' arithmetic).
// Evidence lots are kept as they are. Empty counts carry no half-life, so
// a compact score of them keeps HalfLifeDays.
func (sc Score) Compact() (Score, bool) {
	ev := sc.Evidence
	c := Score{Subject: sc.Subject, Interval: sc.Interval, Level: sc.Level,
		Evidence: Evidence{Counts: ev.Counts, AlertWeight: ev.AlertWeight, Prior: ev.Prior, Lots: ev.Lots}}
	if ev.Counts.HalfLife == 0 {
		c.Evidence.HalfLifeDays = ev.HalfLifeDays
	}
	// Everything but what Restore sets is sc's own (lots by the same
	// slice), so those fields are all there is to compare; times with ==,
	// which also holds the zone a JSON form writes.
	r := c
	r.Restore()
	got, want := r.Evidence, sc.Evidence
	if r.At != sc.At || r.Mean != sc.Mean || r.Pessimistic != sc.Pessimistic ||
		got.Failures != want.Failures || got.Passes != want.Passes || got.EffectiveLots != want.EffectiveLots ||
		got.HalfLifeDays != want.HalfLifeDays || got.PosteriorAlpha != want.PosteriorAlpha || got.PosteriorBeta != want.PosteriorBeta {
		return sc, false
	}
	return c, true
}

// ScoreHistory scores a subject from its history (observations dated
// after now are ignored) and lists the most influential lots. It scores
// through the history's fold as of now (FoldHistory): the counts as of
// the latest observation, decayed to now. That equals accumulating every
// observation's weight at now up to rounding in the last bits (the sum
// is taken at another time and scaled once), and lets a caller that keeps
// the fold score the same history at a later time to the same last bit.
func ScoreHistory(s Subject, history []Observation, prior Prior, now time.Time, p Params) (Score, error) {
	f, err := FoldHistory(history, now, p)
	if err != nil {
		return Score{}, err
	}
	return f.Score(s, prior, now, p)
}

// InfluentialLots returns up to p.EvidenceLots observations of a history
// as of now, most influential first: failures (results and alerts) before
// passes, then by weight, then the newest, then by Ref. Observations dated
// after now, invalid ones and those of zero weight are left out.
func InfluentialLots(history []Observation, now time.Time, p Params) []Lot {
	top, _ := influentialLots(history, now, p)
	return top
}

// influentialLots is InfluentialLots with the lots' observations' own
// weights (Observation.multiplier), for a Fold to weigh them again.
func influentialLots(history []Observation, now time.Time, p Params) ([]Lot, []float64) {
	if p.EvidenceLots <= 0 || p.HalfLife <= 0 {
		return nil, nil
	}
	// Keep the best k in order by insertion: O(len(history)·k), no sort.
	k := p.EvidenceLots
	top := make([]Lot, 0, min(k, len(history)))
	mult := make([]float64, 0, cap(top))
	for _, o := range history {
		if o.validate("") != nil || o.At.After(now) {
			continue
		}
		w := o.multiplier() * Decay(now.Sub(o.At), p.HalfLife)
		if o.Alert {
			w *= p.AlertWeight
		}
		if !(w > 0) {
			continue
		}
		l := Lot{Ref: o.Ref, At: o.At, Failed: o.fails(), Alert: o.Alert, Weight: w}
		if len(top) == k && !moreInfluential(l, top[k-1]) {
			continue
		}
		if len(top) < k {
			top, mult = append(top, l), append(mult, o.multiplier())
		} else {
			top[k-1], mult[k-1] = l, o.multiplier()
		}
		for i := len(top) - 1; i > 0 && moreInfluential(top[i], top[i-1]); i-- {
			top[i], top[i-1] = top[i-1], top[i]
			mult[i], mult[i-1] = mult[i-1], mult[i]
		}
	}
	return top, mult
}

// moreInfluential orders evidence lots: failures first, then by weight,
// then the newest, then by Ref.
func moreInfluential(x, y Lot) bool {
	switch {
	case x.Failed != y.Failed:
		return x.Failed
	case x.Weight != y.Weight:
		return x.Weight > y.Weight
	case !x.At.Equal(y.At):
		return x.At.After(y.At)
	}
	return x.Ref < y.Ref
}

// credible is the equal-tailed interval of Beta(a, b) at level. It checks
// everything gonum would panic on or answer NaN for.
func credible(a, b, level float64) (Interval, error) {
	switch {
	case !finite(a) || a < MinShape || a > 2*MaxWeight:
		return Interval{}, invalid("posterior.alpha", "must be in [%g, %g], got %v", MinShape, 2*MaxWeight, a)
	case !finite(b) || b < MinShape || b > 2*MaxWeight:
		return Interval{}, invalid("posterior.beta", "must be in [%g, %g], got %v", MinShape, 2*MaxWeight, b)
	case !(level > 0 && level < 1):
		return Interval{}, invalid("Level", "must be in (0, 1), got %v", level)
	}
	d := distuv.Beta{Alpha: a, Beta: b}
	tail := (1 - level) / 2
	iv := Interval{Lo: d.Quantile(tail), Hi: d.Quantile(1 - tail)}
	if !(iv.Lo >= 0 && iv.Lo <= iv.Hi && iv.Hi <= 1) { // also catches NaN
		return Interval{}, invalid("posterior", "Beta(%v, %v) quantiles at %v are not an interval in [0, 1]: [%v, %v]", a, b, level, iv.Lo, iv.Hi)
	}
	return iv, nil
}

// BetaInterval is the equal-tailed credible interval of Beta(alpha, beta)
// at level, for callers holding shapes (e.g. a stored posterior).
func BetaInterval(alpha, beta, level float64) (Interval, error) { return credible(alpha, beta, level) }

// Rank returns the scores riskiest first: by pessimistic bound, then mean,
// then subject. The input is not modified.
func Rank(scores []Score) []Score {
	out := make([]Score, len(scores))
	copy(out, scores)
	sort.SliceStable(out, func(i, j int) bool {
		x, y := out[i], out[j]
		switch {
		case x.Pessimistic != y.Pessimistic:
			return x.Pessimistic > y.Pessimistic
		case x.Mean != y.Mean:
			return x.Mean > y.Mean
		case x.Subject.Kind != y.Subject.Kind:
			return x.Subject.Kind < y.Subject.Kind
		}
		return x.Subject.ID < y.Subject.ID
	})
	return out
}
