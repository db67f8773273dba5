package risk_test

import (
	"fmt"
	"time"

	"github.com/ktcn/ktcn/risk"
)

// A store keeps each subject's Counts, adds results as they arrive, and
// scores against its group's prior at decision time.
func Example() {
	p := risk.DefaultParams() // half-life 365 days, 90% intervals
	t0 := time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC)

	// The chapter's other goods, as the store keeps them.
	var chapter []risk.Counts
	for i := range 40 {
		var c risk.Counts
		for j := range 12 {
			o := risk.Observation{At: t0.AddDate(0, -j, 0), Failed: (i*12+j)%25 == 0}
			c, _ = c.Add(o, p.HalfLife)
		}
		chapter = append(chapter, c)
	}
	now := t0.AddDate(0, 1, 0)
	prior, _ := risk.FitPrior(risk.PriorGroup(risk.KindGoods, "0402.10.00"), chapter, now, p)

	// One goods: a failure and a pass, both recent.
	var c risk.Counts
	c, _ = c.Add(risk.Observation{At: t0, Failed: true, Ref: "lot-1"}, p.HalfLife)
	c, _ = c.Add(risk.Observation{At: t0.AddDate(0, 0, 7), Ref: "lot-2"}, p.HalfLife)
	s, _ := risk.ScoreCounts(risk.Subject{Kind: risk.KindGoods, ID: "goods-key"}, c, prior, now, p)

	fmt.Printf("prior %s: %s, mean %.3f, strength %.1f\n", prior.Group, prior.Method, prior.PriorMean(), prior.Strength())
	fmt.Printf("score: mean %.3f, 90%% interval [%.3f, %.3f], pessimistic %.3f\n", s.Mean, s.Interval.Lo, s.Interval.Hi, s.Pessimistic)
	fmt.Printf("evidence: %d results, %.2f failure-equivalents, %.2f passes\n", s.Evidence.Counts.N, s.Evidence.Failures, s.Evidence.Passes)
	// Output:
	// prior hs_chapter:04: moments_capped, mean 0.044, strength 20.0
	// score: mean 0.083, 90% interval [0.014, 0.195], pessimistic 0.195
	// evidence: 2 results, 0.94 failure-equivalents, 0.96 passes
}
