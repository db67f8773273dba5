package risk_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ktcn/ktcn/risk"
)

// A fold scores its history at any time it holds for exactly as
// ScoreHistory does then (decisions score long histories from a kept
// fold, and must give the score the whole history gives), and
// ScoreHistory stays within rounding of every observation's weight
// summed at the scoring time.
func TestFoldScoresAsHistory(t *testing.T) {
	p := params(nil)
	prior := mustPrior(t, 1, 19)
	s := risk.Subject{Kind: risk.KindGoods, ID: "g"}
	for seed := range uint64(20) {
		hist := randomHistory(seed, 300)
		for i := range hist {
			hist[i].Ref = fmt.Sprintf("o%d", i)
		}
		// Some observations ahead of the fold's time, as goods histories have.
		hist = append(hist, risk.Observation{At: now.Add(36 * time.Hour), Ref: "ahead"},
			risk.Observation{At: now.Add(2 * time.Hour), Failed: true, Ref: "ahead2"})
		f, err := risk.FoldHistory(hist, now, p)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Next.Equal(now.Add(2 * time.Hour)) {
			t.Fatalf("seed %d: next %v", seed, f.Next)
		}
		for _, later := range []time.Duration{0, time.Second, time.Hour, 2*time.Hour - time.Nanosecond} {
			at := now.Add(later)
			got, err := f.Score(s, prior, at, p)
			if err != nil {
				t.Fatal(err)
			}
			want := score(t, hist, prior, p)
			if later != 0 {
				want, err = risk.ScoreHistory(s, hist, prior, at, p)
				if err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d at +%v: fold %+v, history %+v", seed, later, got, want)
			}
			// Every weight taken at the scoring time, one by one.
			c, err := risk.Accumulate(hist, at, p.HalfLife)
			if err != nil {
				t.Fatal(err)
			}
			sum, err := risk.ScoreCounts(s, c, prior, at, p)
			if err != nil {
				t.Fatal(err)
			}
			if !countsNear(got.Evidence.Counts, sum.Evidence.Counts, 1e-12) || !near(got.Mean, sum.Mean, 1e-12) ||
				!near(got.Pessimistic, sum.Pessimistic, 1e-12) || !near(got.Interval.Lo, sum.Interval.Lo, 1e-12) {
				t.Fatalf("seed %d at +%v: fold %+v, per-observation sum %+v", seed, later, got, sum)
			}
			lots := risk.InfluentialLots(hist, at, p)
			if len(lots) != len(got.Evidence.Lots) {
				t.Fatalf("seed %d: %d lots, want %d", seed, len(got.Evidence.Lots), len(lots))
			}
			for i, l := range lots {
				g := got.Evidence.Lots[i]
				if g.Ref != l.Ref || !near(g.Weight, l.Weight, 1e-12) {
					t.Fatalf("seed %d lot %d: %+v, want %+v", seed, i, g, l)
				}
			}
		}
		if f.Holds(now.Add(2*time.Hour)) || f.Holds(f.Counts.AsOf.Add(-time.Nanosecond)) {
			t.Fatalf("seed %d: fold holds past its span", seed)
		}
		if _, err := f.Score(s, prior, now.Add(3*time.Hour), p); err == nil {
			t.Fatalf("seed %d: scored past the next observation", seed)
		}
	}
	// Nothing up to now: empty counts at any time before the first.
	f, err := risk.FoldHistory([]risk.Observation{{At: now.Add(day)}}, now, p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Score(s, prior, now.Add(-day), p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := risk.ScoreCounts(s, risk.Counts{}, prior, now.Add(-day), p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Mean != want.Mean || !got.Evidence.Counts.Empty() || len(got.Evidence.Lots) != 0 {
		t.Fatalf("empty fold: %+v, want %+v", got, want)
	}
}
