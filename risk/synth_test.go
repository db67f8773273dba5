package risk_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/ktcn/ktcn/risk"
)

// mixture is a synthetic history whose true rates are not drawn from a
// Beta (so the scorer's model is not the generator's): each group
// (chapter) has goods of three classes with uniform rates around a group
// level, drifting on the logit scale by a monthly random walk, and a few
// goods switching class at a random time. Lots arrive as a Poisson
// process at a per-goods rate spread log-normally.
type mixture struct {
	Seed          uint64
	Groups        int
	GoodsPerGroup int
	Months        int
	Drift         float64 // s.d. of the monthly logit step
	Switch        float64 // share of goods switching class once
}

var epoch = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)

func (m mixture) end() time.Time { return epoch.AddDate(0, m.Months, 0) }

func logit(p float64) float64 { return math.Log(p / (1 - p)) }
func expit(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func (m mixture) cases() []risk.Case {
	rng := rand.New(rand.NewPCG(m.Seed, 0x6b74636e))
	classRate := func(g float64) float64 {
		switch u := rng.Float64(); {
		case u < 0.80:
			return g * (0.2 + 1.3*rng.Float64()) // compliant: around the group level
		case u < 0.95:
			return 0.05 + 0.10*rng.Float64() // mediocre
		default:
			return 0.20 + 0.25*rng.Float64() // bad
		}
	}
	month := 30 * 24 * time.Hour
	var out []risk.Case
	for g := range m.Groups {
		level := 0.005 + 0.025*rng.Float64()
		group := fmt.Sprintf("ch%02d", g)
		for i := range m.GoodsPerGroup {
			x := logit(classRate(level))
			switchAt := -1
			if rng.Float64() < m.Switch {
				switchAt = rng.IntN(m.Months)
			}
			perMonth := math.Exp(rng.NormFloat64()*1.0) * 0.8 // median 0.8 lots a month
			var hist []risk.Observation
			for mo := range m.Months {
				if mo == switchAt {
					x = logit(classRate(level))
				}
				p := expit(x)
				start := epoch.Add(time.Duration(mo) * month)
				// Poisson arrivals within the month
				for t := rng.ExpFloat64() / perMonth; t < 1; t += rng.ExpFloat64() / perMonth {
					hist = append(hist, risk.Observation{
						At:     start.Add(time.Duration(t * float64(month))),
						Failed: rng.Float64() < p,
						Ref:    fmt.Sprintf("%s-%d-%d", group, i, len(hist)),
					})
				}
				x += rng.NormFloat64() * m.Drift
			}
			out = append(out, risk.Case{
				Subject: risk.Subject{Kind: risk.KindGoods, ID: fmt.Sprintf("%s/%04d", group, i)},
				Group:   group,
				History: hist,
				Truth:   expit(x),
			})
		}
	}
	return out
}
