package risk_test

import (
	"math"
	"testing"
	"time"

	"github.com/ktcn/ktcn/risk"
)

// FuzzScoreCounts: any numbers in, an error or a sane score out, never a
// panic. (risk parses nothing; this guards the numeric edges gonum panics
// or returns NaN on.)
func FuzzScoreCounts(f *testing.F) {
	f.Add(0.0, 0.0, 0.0, 1.0, 1.0, 0.9, int64(0), 1.0)
	f.Add(1e12, 1e12, 0.0, 1e12, 1e12, 0.999, int64(1), 1000.0)
	f.Add(0.5, 1.5, 3.0, 0.01, 0.01, 0.5, int64(-5), 0.0)
	f.Add(math.NaN(), math.Inf(1), -1.0, 0.0, -1.0, math.NaN(), int64(math.MaxInt64), math.Inf(-1))
	f.Add(5e-324, 1e-300, 1e300, 1e-3, 2.0, 1e-9, int64(1e18), 1e-300)
	f.Fuzz(func(t *testing.T, passes, failures, alerts, alpha, beta, level float64, ageNanos int64, alertWeight float64) {
		p := risk.DefaultParams()
		p.Level, p.AlertWeight = level, alertWeight
		c := risk.Counts{Passes: passes, Failures: failures, Alerts: alerts, SumSq: passes * passes, AlertSq: alerts * alerts,
			N: 1, NAlerts: 1, HalfLife: p.HalfLife, AsOf: now.Add(-time.Duration(ageNanos))}
		s, err := risk.ScoreCounts(risk.Subject{}, c, risk.Prior{Alpha: alpha, Beta: beta}, now, p)
		if err != nil {
			return
		}
		iv := s.Interval
		if !(0 <= iv.Lo && iv.Lo <= iv.Hi && iv.Hi <= 1 && s.Mean >= 0 && s.Mean <= 1 && s.Pessimistic == iv.Hi) {
			t.Fatalf("score %+v from %+v", s, c)
		}
		if _, err := c.Add(risk.Observation{At: now, Failed: true, Weight: alerts}, p.HalfLife); err == nil && math.IsNaN(alerts) {
			t.Fatal("NaN weight accepted")
		}
	})
}
