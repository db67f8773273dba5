package inspection

import (
	"math"
	"testing"
)

// TestHajekInterval pins the estimator's arithmetic: with one inclusion
// probability for every lot it is the plain share of failures with its
// exact Clopper–Pearson interval; unequal weights move the estimate
// toward the rarely drawn lots and can only widen the interval; no
// failure gives the exact upper bound 1 − 0.025^(1/n).
func TestHajekInterval(t *testing.T) {
	add := func(r *RandomTally, p float64, fail bool) {
		y := 0.0
		if fail {
			y = 1
			r.Fails++
		}
		r.Results++
		r.W += 1 / p
		r.WY += y / p
		r.V += (1 - p) / (p * p)
		r.VY += y * (1 - p) / (p * p)
	}
	var equal RandomTally
	for i := range 100 {
		add(&equal, 0.05, i < 4)
	}
	got := equal.ViolationRate()
	lo, hi := clopperPearson(4, 100)
	if math.Abs(got.Estimate-0.04) > 1e-12 || got.EffectiveN != 100 || math.Abs(got.Low-lo) > 1e-9 || math.Abs(got.High-hi) > 1e-9 {
		t.Errorf("equal weights: %+v, want 0.04 [%v, %v] at n 100", got, lo, hi)
	}
	if !(lo > 0.01 && lo < 0.012 && hi > 0.098 && hi < 0.1) { // R: binom.test(4, 100)$conf.int = 0.0110, 0.0993
		t.Errorf("Clopper–Pearson 4 of 100: [%v, %v], want [0.0110, 0.0993]", lo, hi)
	}
	// Failures among lots drawn at a tenth of the others' probability
	// stand for ten times as many lots.
	var unequal RandomTally
	for i := range 100 {
		p := 0.05
		if i < 10 {
			p = 0.005
		}
		add(&unequal, p, i < 2)
	}
	u := unequal.ViolationRate()
	want := (2 / 0.005) / (10/0.005 + 90/0.05)
	if math.Abs(u.Estimate-want) > 1e-12 || !(u.EffectiveN < 100) || !(u.High-u.Low > hi-lo) {
		t.Errorf("unequal weights: %+v, want estimate %v with a wider interval than %v", u, want, hi-lo)
	}
	var none RandomTally
	for range 60 {
		add(&none, 0.05, false)
	}
	z := none.ViolationRate()
	if z.Estimate != 0 || z.Low != 0 || math.Abs(z.High-(1-math.Pow(0.025, 1.0/60))) > 1e-9 {
		t.Errorf("no failure in 60: %+v", z)
	}
	if (RandomTally{}).ViolationRate() != nil {
		t.Error("an estimate without a result")
	}
}
