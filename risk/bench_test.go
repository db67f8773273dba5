package risk_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ktcn/ktcn/risk"
)

// BenchmarkScoreCounts is the rescoring path: stored counts decayed to now
// and scored (two Beta quantiles). Reported as subjects/s.
func BenchmarkScoreCounts(b *testing.B) {
	p := risk.DefaultParams()
	members := betaGroup(1, 1024, 30, 0.5, 9.5, p.HalfLife, 3)
	pr, err := risk.FitPrior("ch", members, now, p)
	if err != nil {
		b.Fatal(err)
	}
	at := now.Add(7 * day)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := risk.ScoreCounts(risk.Subject{Kind: risk.KindGoods, ID: "g"}, members[i%len(members)], pr, at, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "subjects/s")
}

// BenchmarkScoreHistory scores from raw history (with the evidence lots).
func BenchmarkScoreHistory(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("lots=%d", n), func(b *testing.B) {
			p := risk.DefaultParams()
			hist := randomHistory(3, n)
			pr := risk.Prior{Alpha: 0.5, Beta: 9.5}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := risk.ScoreHistory(risk.Subject{}, hist, pr, now, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "subjects/s")
		})
	}
}

// BenchmarkAdd is the incremental update when a result arrives.
func BenchmarkAdd(b *testing.B) {
	p := risk.DefaultParams()
	c, _ := risk.Accumulate(randomHistory(4, 50), now, p.HalfLife)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := risk.Observation{At: now.Add(time.Duration(i) * time.Second), Failed: i%17 == 0}
		var err error
		if c, err = c.Add(o, p.HalfLife); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFitPrior fits a chapter prior from its members' counts.
func BenchmarkFitPrior(b *testing.B) {
	p := risk.DefaultParams()
	members := betaGroup(2, 1000, 30, 0.5, 9.5, p.HalfLife, 3)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := risk.FitPrior("ch", members, now, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(members))/b.Elapsed().Seconds(), "members/s")
}
