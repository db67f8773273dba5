package risk

import (
	"math"
	"time"
)

// Subject kinds. Callers supply the IDs (for goods, manufacturers and
// heading × origin the hashed history keys of package inspection; for
// importers the tax code).
const (
	KindGoods         = "goods"
	KindHeadingOrigin = "heading_origin"
	KindManufacturer  = "manufacturer"
	KindImporter      = "importer"
)

// Subject is what a score is about.
type Subject struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

func (s Subject) String() string { return s.Kind + ":" + s.ID }

// Observation is one entry of a subject's compliance history: an
// inspection result (dated by inspection date) or an alert (dated by issue
// date).
type Observation struct {
	At time.Time
	// Failed marks a failing result. An alert is always a failure.
	Failed bool
	// Alert marks a warning from an authority or a failed other official
	// inspection: it counts as Params.AlertWeight failing lots.
	Alert bool
	// Weight multiplies the observation's weight; 0 means 1. It must be
	// finite and not negative.
	Weight float64
	// Ref identifies the lot or alert in evidence (an event ID).
	Ref string
}

func (o Observation) fails() bool { return o.Failed || o.Alert }

// multiplier is the observation's own weight, before decay and before the
// alert weight.
func (o Observation) multiplier() float64 {
	if o.Weight == 0 {
		return 1
	}
	return o.Weight
}

func (o Observation) validate(field string) error {
	switch {
	case o.At.IsZero():
		return invalid(field+".At", "is required")
	case !finite(o.Weight) || o.Weight < 0 || o.Weight > MaxWeight:
		return invalid(field+".Weight", "must be in [0, %g], got %v", MaxWeight, o.Weight)
	}
	return nil
}

// Counts are a subject's time-decayed evidence as of AsOf: every
// observation at time t contributes its weight times
// Decay(AsOf-t, HalfLife) = 0.5^((AsOf-t)/HalfLife). Because decay is
// multiplicative, counts as of a later time are these counts times one
// factor (DecayTo), and an observation can be added at any time (Add):
// a store keeps Counts and never replays history to rescore. The zero
// value is empty counts.
//
// Alerts are kept apart from failing results, so that the policy's
// AlertWeight applies at scoring time. SumSq and AlertSq are the sums of
// squared weights: with them the effective number of lots (Kish,
// (Σw)²/Σw²) is known, which the prior fit needs.
type Counts struct {
	Passes   float64 `json:"passes"`   // Σ decayed weights of passing results
	Failures float64 `json:"failures"` // Σ decayed weights of failing results
	Alerts   float64 `json:"alerts"`   // Σ decayed weights of alerts (before AlertWeight)
	SumSq    float64 `json:"sum_sq"`   // Σ squared decayed weights of results
	AlertSq  float64 `json:"alert_sq"` // Σ squared decayed weights of alerts

	N       int `json:"n"`        // results added
	NFailed int `json:"n_failed"` // of which failed
	NAlerts int `json:"n_alerts"` // alerts added

	// HalfLife the weights were computed with (zero while empty).
	HalfLife time.Duration `json:"half_life"`
	// AsOf is the time the weights refer to; LastAt the date of the latest
	// observation.
	AsOf   time.Time `json:"as_of"`
	LastAt time.Time `json:"last_at"`
}

// Decay is the weight of an observation of the given age:
// 0.5^(age/halfLife). An observation exactly one half-life old weighs
// exactly 0.5; a negative age weighs more than 1. halfLife must be positive.
func Decay(age, halfLife time.Duration) float64 {
	return math.Exp2(-float64(age) / float64(halfLife))
}

// Empty reports whether no observation was added.
func (c Counts) Empty() bool { return c.N == 0 && c.NAlerts == 0 }

// validate checks stored counts before any arithmetic on them.
func (c Counts) validate(field string) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"Passes", c.Passes}, {"Failures", c.Failures}, {"Alerts", c.Alerts}, {"SumSq", c.SumSq}, {"AlertSq", c.AlertSq}} {
		if !finite(f.v) || f.v < 0 || f.v > MaxWeight {
			return invalid(field+"."+f.name, "must be finite, in [0, %g], got %v", MaxWeight, f.v)
		}
	}
	switch {
	case c.N < 0:
		return invalid(field+".N", "must not be negative, got %d", c.N)
	case c.NFailed < 0 || c.NFailed > c.N:
		return invalid(field+".NFailed", "must be in [0, N=%d], got %d", c.N, c.NFailed)
	case c.NAlerts < 0:
		return invalid(field+".NAlerts", "must not be negative, got %d", c.NAlerts)
	case c.HalfLife < 0:
		return invalid(field+".HalfLife", "must not be negative, got %v", c.HalfLife)
	case !c.Empty() && (c.HalfLife == 0 || c.AsOf.IsZero()):
		return invalid(field, "non-empty counts need HalfLife and AsOf")
	}
	return nil
}

// compatible checks that c was accumulated with halfLife.
func (c Counts) compatible(field string, halfLife time.Duration) error {
	if !c.Empty() && c.HalfLife != halfLife {
		return invalid(field+".HalfLife", "counts were accumulated with half-life %v, not %v: replay the history", c.HalfLife, halfLife)
	}
	return nil
}

// DecayTo returns the counts as of t (not before AsOf): every weight times
// Decay(t-AsOf, HalfLife), every squared weight times its square. It is
// exact: decaying in steps equals decaying at once, and equals
// accumulating the same history as of t.
func (c Counts) DecayTo(t time.Time) (Counts, error) {
	if err := c.validate("Counts"); err != nil {
		return c, err
	}
	if t.IsZero() {
		return c, invalid("t", "is required")
	}
	if c.Empty() {
		c.AsOf = t
		return c, nil
	}
	if t.Before(c.AsOf) {
		return c, invalid("t", "%s is before the counts' AsOf %s: counts cannot be un-decayed",
			t.Format(time.RFC3339), c.AsOf.Format(time.RFC3339))
	}
	f := Decay(t.Sub(c.AsOf), c.HalfLife)
	c.Passes *= f
	c.Failures *= f
	c.Alerts *= f
	c.SumSq *= f * f
	c.AlertSq *= f * f
	c.AsOf = t
	return c, nil
}

// Add returns the counts with o added. An observation dated after AsOf
// first decays the counts to its date (AsOf moves forward); one dated
// before (a late result) enters with the weight of its age at AsOf. Either
// way the result equals Accumulate over the same history, in any order.
func (c Counts) Add(o Observation, halfLife time.Duration) (Counts, error) {
	if halfLife <= 0 {
		return c, invalid("halfLife", "must be positive, got %v", halfLife)
	}
	if err := c.validate("Counts"); err != nil {
		return c, err
	}
	if err := c.compatible("Counts", halfLife); err != nil {
		return c, err
	}
	if err := o.validate("Observation"); err != nil {
		return c, err
	}
	c.HalfLife = halfLife
	switch {
	case c.AsOf.IsZero():
		c.AsOf = o.At
	case o.At.After(c.AsOf):
		var err error
		if c, err = c.DecayTo(o.At); err != nil {
			return c, err
		}
	}
	w := o.multiplier() * Decay(c.AsOf.Sub(o.At), halfLife)
	c.add(o, w)
	if o.At.After(c.LastAt) {
		c.LastAt = o.At
	}
	if err := c.validate("Counts"); err != nil { // overflow past MaxWeight
		return c, err
	}
	return c, nil
}

func (c *Counts) add(o Observation, w float64) {
	switch {
	case o.Alert:
		c.Alerts += w
		c.AlertSq += w * w
		c.NAlerts++
	case o.Failed:
		c.Failures += w
		c.SumSq += w * w
		c.N++
		c.NFailed++
	default:
		c.Passes += w
		c.SumSq += w * w
		c.N++
	}
}

// Accumulate returns the counts of a history as of now, ignoring
// observations dated after now (as the mode rules do).
func Accumulate(history []Observation, now time.Time, halfLife time.Duration) (Counts, error) {
	if halfLife <= 0 {
		return Counts{}, invalid("halfLife", "must be positive, got %v", halfLife)
	}
	if now.IsZero() {
		return Counts{}, invalid("now", "is required")
	}
	c := Counts{HalfLife: halfLife, AsOf: now}
	for i, o := range history {
		if err := o.validate(""); err != nil {
			return Counts{}, indexed(err, "history", i)
		}
		if o.At.After(now) {
			continue
		}
		c.add(o, o.multiplier()*Decay(now.Sub(o.At), halfLife))
		if o.At.After(c.LastAt) {
			c.LastAt = o.At
		}
	}
	if err := c.validate("Counts"); err != nil {
		return Counts{}, err
	}
	return c, nil
}

// effective is the counts as the model sees them under the policy's alert
// weight: failure-equivalents, passes, their total and its sum of squares.
type effective struct{ fail, pass, n, sumSq float64 }

func (c Counts) effective(alertWeight float64) effective {
	f := c.Failures + alertWeight*c.Alerts
	return effective{fail: f, pass: c.Passes, n: f + c.Passes, sumSq: c.SumSq + alertWeight*alertWeight*c.AlertSq}
}

// lots is the effective number of lots (Kish): (Σw)²/Σw². One fresh lot
// is 1; so is one lot of any age. Zero when there is no evidence.
func (e effective) lots() float64 {
	switch {
	case e.n <= 0:
		return 0
	case e.sumSq <= 0: // squared weights underflowed: a vanishing remnant
		return 1
	}
	return math.Max(1, e.n*e.n/e.sumSq)
}

// Prior groups (Prior.Group): the wider group a subject's prior is fitted
// on. Importers are compared with all importers; goods, heading × origin
// and manufacturers with the goods of the same HS chapter (the first two
// digits of the code of the goods being scored).
const GroupImporters = "importers"

// PriorGroup is the group of a subject of the given kind scored for goods
// with HS code hsCode ("0402.10.00", "04021000"; only digits are read).
func PriorGroup(kind, hsCode string) string {
	if kind == KindImporter {
		return GroupImporters
	}
	var d []byte
	for i := 0; i < len(hsCode) && len(d) < 2; i++ {
		if c := hsCode[i]; c >= '0' && c <= '9' {
			d = append(d, c)
		}
	}
	if len(d) < 2 {
		return "hs_chapter:unknown"
	}
	return "hs_chapter:" + string(d)
}

// Reclassify moves one result already in the counts from passed to failed
// (failed true) or back, as a corrected result does: its decayed weight
// leaves one side for the other, and the counts of results are unchanged.
// o is the result as first observed (its date and weight).
func (c Counts) Reclassify(o Observation, failed bool, halfLife time.Duration) (Counts, error) {
	if err := c.validate("Counts"); err != nil {
		return c, err
	}
	if err := c.compatible("Counts", halfLife); err != nil {
		return c, err
	}
	if err := o.validate("Observation"); err != nil {
		return c, err
	}
	if o.Alert || o.Failed == failed || c.N == 0 {
		return c, nil
	}
	w := o.multiplier() * Decay(c.AsOf.Sub(o.At), halfLife)
	if failed {
		if c.NFailed >= c.N {
			return c, invalid("Counts", "no passing result to reclassify")
		}
		c.Passes, c.Failures, c.NFailed = math.Max(0, c.Passes-w), c.Failures+w, c.NFailed+1
	} else {
		if c.NFailed == 0 {
			return c, invalid("Counts", "no failing result to reclassify")
		}
		c.Failures, c.Passes, c.NFailed = math.Max(0, c.Failures-w), c.Passes+w, c.NFailed-1
	}
	return c, c.validate("Counts")
}
