package backtest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/policy"
)

// TestHistoryStaysBounded is why a backtest's memory is flat in the lots
// it replays (issue #20, acceptance 3): what it keeps of a goods' history
// is bounded by the policies and the goods' importers, however many
// results the goods has had. Two hundred thousand results of one goods,
// eight hours apart with one in twenty failing, each reaching ktcn up to the
// replay's maximum lag later, under the default policy and a stricter
// one: the kept history never exceeds the policies' need (the last
// failure, the strict passes after it, the passes the reduced rule reads,
// each importer's quality-exemption runs) plus the results not yet
// settled, with the trimming slack on top. Without trimming it would hold
// them all.
func TestHistoryStaysBounded(t *testing.T) {
	def, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	strict := *def
	strict.Version = "stricter"
	strict.Strict.PassesToNormal, strict.Reduced.ConsecutivePasses = 5, 6
	pols := []*policy.Policy{def, &strict}
	const (
		results   = 200_000
		importers = 4
		every     = int64(8 * time.Hour) // 200,000 results span 182 years
		day       = int64(24 * time.Hour)
		maxLag    = 30 * day
	)
	for _, quality := range []bool{false, true} {
		t.Run(fmt.Sprintf("quality=%t", quality), func(t *testing.T) {
			// The need: the last failure, the most strict passes and
			// reduced passes any policy reads, and per importer the
			// quality exemption's runs (at this failure rate a failure
			// ends every run long before its term does: two runs each at
			// most).
			need := 1 + 5 + 6
			if quality {
				need += importers * 2 * def.QualityExemption.ConsecutivePasses
			}
			unsettled := int(maxLag/every) + 1
			bound := inspection.TrimAgainAt(need + unsettled)
			rng := rand.New(rand.NewPCG(20, 3))
			var h history
			start := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
			most := 0
			for i := range results {
				at := start + int64(i)*every
				e := event{at: at, id: fmt.Sprintf("r%07d", i), who: fmt.Sprintf("im%d", rng.IntN(importers)), kind: evPass, own: true}
				if rng.IntN(20) == 0 {
					e.kind = evFail
				}
				recorded := at + rng.Int64N(maxLag)
				if h.add(e) {
					t.Fatalf("result %d landed among settled events", i)
				}
				h.maybeTrim(pols, recorded-maxLag, quality)
				most = max(most, len(h.events))
			}
			if most > bound {
				t.Fatalf("kept up to %d events of %d results, bound %d", most, results, bound)
			}
			t.Logf("kept at most %d events of %d results (bound %d)", most, results, bound)
		})
	}
}
