package risk

import (
	"math"
	"time"
)

// How a prior was fitted (Prior.Method).
const (
	// PriorMoments: the group's spread was estimated and the strength is
	// within bounds.
	PriorMoments = "moments"
	// PriorCapped: the group is more alike than PriorMaxStrength allows to
	// matter (including no measurable spread beyond chance): the strength
	// is PriorMaxStrength.
	PriorCapped = "moments_capped"
	// PriorFloored: the group is so spread that the strength fell below
	// PriorMinStrength: the strength is PriorMinStrength.
	PriorFloored = "moments_floored"
	// PriorFallback: too few members with evidence to estimate a spread
	// (fewer than PriorMinSubjects, or none with more than one effective
	// lot): the strength is FallbackStrength.
	PriorFallback = "fallback"
)

// Prior is the Beta(Alpha, Beta) prior of a subject's violation rate,
// with how it was obtained. Alpha is in pseudo-failures, Beta in
// pseudo-passes.
type Prior struct {
	Alpha float64 `json:"alpha"`
	Beta  float64 `json:"beta"`
	// Group is the wider group the prior comes from, e.g. "hs_chapter:04"
	// or "importers".
	Group  string `json:"group"`
	Method string `json:"method"`
	// Members is how many group members had evidence; Lots their total
	// decayed weight; Mean the group's smoothed mean violation rate (m~ in
	// FitPrior), which the prior is centred on.
	Members int     `json:"members"`
	Lots    float64 `json:"lots"`
	Mean    float64 `json:"mean"`
	// Rho is the estimated intra-group correlation 1/(alpha+beta+1) before
	// bounds (0 when not estimated; <= 0 means no spread beyond chance).
	Rho       float64 `json:"rho"`
	Estimated bool    `json:"estimated"`
}

// Strength is Alpha+Beta, the prior's weight in pseudo-lots.
func (p Prior) Strength() float64 { return p.Alpha + p.Beta }

// PriorMean is Alpha/(Alpha+Beta).
func (p Prior) PriorMean() float64 { return p.Alpha / (p.Alpha + p.Beta) }

func (p Prior) validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"Prior.Alpha", p.Alpha}, {"Prior.Beta", p.Beta}} {
		if !finite(f.v) || f.v < MinShape || f.v > MaxWeight {
			return invalid(f.name, "must be in [%g, %g], got %v", MinShape, MaxWeight, f.v)
		}
	}
	return nil
}

// FallbackPrior is the prior where no group is known: mean FallbackMean,
// strength FallbackStrength within [PriorMinStrength, PriorMaxStrength].
func FallbackPrior(group string, p Params) (Prior, error) {
	if err := p.Validate(); err != nil {
		return Prior{}, err
	}
	return newPrior(group, PriorFallback, p.FallbackMean, p.FallbackStrength, p), nil
}

func newPrior(group, method string, mean, strength float64, p Params) Prior {
	s := math.Min(math.Max(strength, p.PriorMinStrength), p.PriorMaxStrength)
	return Prior{
		Alpha:  math.Max(mean*s, MinShape),
		Beta:   math.Max((1-mean)*s, MinShape),
		Group:  group,
		Method: method,
		Mean:   mean,
	}
}

// FitPrior fits the Beta prior of a group (HS chapter, all importers) from
// its members' counts as of now, by empirical Bayes with the method of
// moments. Members must use p.HalfLife and have AsOf no later than now;
// empty members are ignored. A subject's own counts may be among the
// members: its pull on its own prior is bounded by PriorMaxStrength.
//
// Each member i's counts are decayed to now, giving failure-equivalents
// f_i = Failures + AlertWeight·Alerts, total weight n_i = f_i + Passes,
// weighted rate r_i = f_i/n_i and effective lots e_i = n_i²/Σw² (Kish).
// If the members' true rates are Beta(α, β) with ρ = 1/(α+β+1), r_i has
// mean μ and variance μ(1−μ)[ρ + (1−ρ)/e_i]. For member weights v_i,
// V = Σv_i:
//
//	mean      m  = Σv_i r_i / V
//	smoothed  m~ = (Σv_i r_i + FallbackMean·FallbackStrength) / (V + FallbackStrength)
//	spread    S  = Σv_i (r_i − m)²,  with
//	E[S] = μ(1−μ) [ρ·Σc_i(1 − 1/e_i) + Σc_i/e_i],  c_i = v_i(1 − v_i/V)
//
// (with v_i = e_i = lots this is the classic ANOVA estimator of the
// intra-class correlation). Solving with m~ for μ:
//
//	ρ^ = (S/(m~(1−m~)) − Σc_i/e_i) / Σc_i(1 − 1/e_i),  strength s = 1/ρ^ − 1.
//
// The weights are iterated (Kleinman): round 1 uses v_i = n_i, rounds 2
// and 3 the inverse variances v_i = e_i/(1 + (e_i − 1)ρ^) with the previous
// round's ρ^ held to the strength bounds, so that a heavily inspected
// member (often a bad one, inspected on every lot under strict) does not
// dominate the group's mean once the spread shows that members differ.
//
// s is bounded to [PriorMinStrength, PriorMaxStrength] (ρ^ <= 0, no spread
// beyond chance, gives the cap), and alpha = m~·s, beta = (1 − m~)·s, each
// at least MinShape (which can lift the strength by at most MinShape).
// With fewer than PriorMinSubjects members, or when no member has more
// than one effective lot (spread and chance cannot be told apart), the
// prior is FallbackStrength (bounded likewise) around the lot-weighted m~.
func FitPrior(group string, members []Counts, now time.Time, p Params) (Prior, error) {
	if err := p.Validate(); err != nil {
		return Prior{}, err
	}
	if now.IsZero() {
		return Prior{}, invalid("now", "is required")
	}
	type member struct{ f, v, e, w float64 }
	ms := make([]member, 0, len(members))
	var F, V float64
	for i, c := range members {
		if err := c.validate(""); err != nil {
			return Prior{}, indexed(err, "members", i)
		}
		if c.Empty() {
			continue
		}
		if err := c.compatible("", p.HalfLife); err != nil {
			return Prior{}, indexed(err, "members", i)
		}
		if c.AsOf.After(now) {
			return Prior{}, indexed(invalid(".AsOf", "%s is after now %s", c.AsOf.Format(time.RFC3339), now.Format(time.RFC3339)), "members", i)
		}
		c, err := c.DecayTo(now)
		if err != nil {
			return Prior{}, err
		}
		e := c.effective(p.AlertWeight)
		if e.n <= 0 {
			continue
		}
		ms = append(ms, member{f: e.fail, v: e.n, e: e.lots()})
		F += e.fail
		V += e.n
	}
	pooled := (F + p.FallbackMean*p.FallbackStrength) / (V + p.FallbackStrength)
	fallback := func() Prior {
		pr := newPrior(group, PriorFallback, pooled, p.FallbackStrength, p)
		pr.Members, pr.Lots = len(ms), V
		return pr
	}
	if len(ms) < p.PriorMinSubjects {
		return fallback(), nil
	}
	// Round 1 weighs members by their lots (v_i = n_i); rounds 2 and 3 by
	// the inverse of their rates' variance under the previous round's
	// spread, v_i = e_i/(1 + (e_i − 1)ρ), ρ held within the strength bounds
	// (Kleinman's iterated moments): a heavily inspected member then stops
	// dominating the group's mean once the spread shows members differ.
	rhoLo, rhoHi := 1/(p.PriorMaxStrength+1), 1/(p.PriorMinStrength+1)
	var mean, rho float64
	var identifiable bool
	for round := range 3 {
		var W, Wf float64
		for i := range ms {
			x := &ms[i]
			if round == 0 {
				x.w = x.v
			} else {
				x.w = x.e / (1 + (x.e-1)*min(max(rho, rhoLo), rhoHi))
			}
			W += x.w
			Wf += x.w * x.f / x.v
		}
		m := Wf / W
		mean = (Wf + p.FallbackMean*p.FallbackStrength) / (W + p.FallbackStrength)
		var S, A, B float64
		for _, x := range ms {
			d := x.f/x.v - m
			S += x.w * d * d
			c := x.w * (1 - x.w/W)
			A += c / x.e
			B += c * (1 - 1/x.e)
		}
		// B vanishes when every member has one effective lot: spread and
		// chance then coincide.
		if identifiable = B > 1e-9*W; !identifiable {
			break
		}
		if rho = (S/(mean*(1-mean)) - A) / B; !finite(rho) {
			identifiable = false
			break
		}
	}
	if !identifiable {
		return fallback(), nil
	}
	method, strength := PriorMoments, 0.0
	switch {
	case rho <= 0:
		method, strength = PriorCapped, p.PriorMaxStrength
	default:
		strength = 1/rho - 1
		switch {
		case strength > p.PriorMaxStrength:
			method, strength = PriorCapped, p.PriorMaxStrength
		case strength < p.PriorMinStrength:
			method, strength = PriorFloored, p.PriorMinStrength
		}
	}
	pr := newPrior(group, method, mean, strength, p)
	pr.Members, pr.Lots, pr.Rho, pr.Estimated = len(ms), V, rho, true
	return pr, nil
}
