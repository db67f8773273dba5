package risk_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/ktcn/ktcn/risk"
)

// betaGroup draws members' rates from Beta(a, b) and gives each member
// lots results spread over spanHalfLives half-lives before now.
func betaGroup(seed uint64, members, lots int, a, b float64, hl time.Duration, spanHalfLives float64) []risk.Counts {
	rng := rand.New(rand.NewPCG(seed, 3))
	dist := distuv.Beta{Alpha: a, Beta: b, Src: rng}
	out := make([]risk.Counts, members)
	for i := range out {
		rate := dist.Rand()
		hist := make([]risk.Observation, lots)
		for j := range hist {
			age := time.Duration(rng.Float64() * spanHalfLives * float64(hl))
			hist[j] = risk.Observation{At: now.Add(-age), Failed: rng.Float64() < rate}
		}
		c, err := risk.Accumulate(hist, now, hl)
		if err != nil {
			panic(err)
		}
		out[i] = c
	}
	return out
}

// The moment estimator recovers a Beta group's mean and strength, with
// fresh lots and with lots decayed over several half-lives (the Kish
// correction), and bounds it by the policy's cap and floor.
func TestFitPriorRecoversBeta(t *testing.T) {
	hl := 180 * day
	wide := params(func(p *risk.Params) { p.HalfLife, p.PriorMaxStrength, p.PriorMinStrength = hl, 1e6, 0.1 })
	tests := []struct {
		name          string
		a, b          float64
		lots          int
		span          float64
		p             risk.Params
		method        string
		wantStrength  float64
		strengthTol   float64 // relative
		wantMean, tol float64
	}{
		{"spread, fresh", 0.5, 9.5, 20, 0, wide, risk.PriorMoments, 10, 0.15, 0.05, 0.005},
		{"spread, decayed over 4 half-lives", 0.5, 9.5, 20, 4, wide, risk.PriorMoments, 10, 0.2, 0.05, 0.006},
		{"tight, fresh", 4, 76, 30, 0, wide, risk.PriorMoments, 80, 0.3, 0.05, 0.004},
		{"tight, decayed", 4, 76, 30, 3, wide, risk.PriorMoments, 80, 0.35, 0.05, 0.004},
		{"tight, capped by policy", 4, 76, 30, 1, params(func(p *risk.Params) { p.HalfLife = hl }), risk.PriorCapped, 20, 0, 0.05, 0.004},
		{"very spread, floored", 0.05, 0.05, 10, 0, params(func(p *risk.Params) { p.HalfLife = hl; p.PriorMinStrength = 2 }), risk.PriorFloored, 2, 0, 0.5, 0.05},
	}
	for _, tt := range tests {
		members := betaGroup(42, 2000, tt.lots, tt.a, tt.b, hl, tt.span)
		pr, err := risk.FitPrior("ch", members, now, tt.p)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if pr.Method != tt.method || !pr.Estimated || pr.Members != 2000 || pr.Group != "ch" {
			t.Errorf("%s: %+v", tt.name, pr)
		}
		if s := pr.Strength(); math.Abs(s-tt.wantStrength) > tt.strengthTol*tt.wantStrength+1e-9 {
			t.Errorf("%s: strength %v, want %v ± %v%%", tt.name, s, tt.wantStrength, 100*tt.strengthTol)
		}
		if m := pr.PriorMean(); math.Abs(m-tt.wantMean) > tt.tol {
			t.Errorf("%s: mean %v, want %v", tt.name, m, tt.wantMean)
		}
	}
}

func TestFitPriorFallbacksAndBounds(t *testing.T) {
	p := risk.DefaultParams()
	hl := p.HalfLife
	homogeneous := func(rate float64, members, lots int) []risk.Counts {
		rng := rand.New(rand.NewPCG(5, 5))
		out := make([]risk.Counts, members)
		for i := range out {
			hist := make([]risk.Observation, lots)
			for j := range hist {
				hist[j] = risk.Observation{At: now.Add(-time.Duration(j) * day), Failed: rng.Float64() < rate}
			}
			out[i], _ = risk.Accumulate(hist, now, hl)
		}
		return out
	}
	one := func(failed bool) risk.Counts {
		c, _ := risk.Accumulate([]risk.Observation{{At: now, Failed: failed}}, now, hl)
		return c
	}
	tests := []struct {
		name     string
		members  []risk.Counts
		method   string
		strength float64
		mean     float64 // 0: not checked
	}{
		{"no members", nil, risk.PriorFallback, p.FallbackStrength, p.FallbackMean},
		{"only empty members", []risk.Counts{{}, {}, {}, {}, {}, {}}, risk.PriorFallback, p.FallbackStrength, p.FallbackMean},
		{"too few members", homogeneous(0.1, 4, 50), risk.PriorFallback, p.FallbackStrength, 0},
		{"one lot each", []risk.Counts{one(true), one(false), one(false), one(false), one(false), one(false)}, risk.PriorFallback, p.FallbackStrength, (1 + 0.1) / (6 + 2)},
		{"homogeneous: capped", homogeneous(0.05, 300, 40), risk.PriorCapped, p.PriorMaxStrength, 0},
		{"no failures at all", homogeneous(0, 300, 40), risk.PriorCapped, p.PriorMaxStrength, 0},
		{"all failures", homogeneous(1, 300, 40), risk.PriorCapped, 0, 0},
	}
	for _, tt := range tests {
		pr, err := risk.FitPrior("g", tt.members, now, p)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if pr.Method != tt.method {
			t.Errorf("%s: method %s, want %s (%+v)", tt.name, pr.Method, tt.method, pr)
		}
		// the shapes' floor MinShape may lift the strength by up to MinShape
		if tt.strength != 0 && (pr.Strength() < tt.strength-1e-9 || pr.Strength() > tt.strength+risk.MinShape) {
			t.Errorf("%s: strength %v, want %v", tt.name, pr.Strength(), tt.strength)
		}
		if tt.mean != 0 && math.Abs(pr.Mean-tt.mean) > 1e-12 {
			t.Errorf("%s: mean %v, want %v", tt.name, pr.Mean, tt.mean)
		}
		switch tt.name { // the fallback's pseudo-lots keep the mean off 0 and 1
		case "no failures at all":
			if !(pr.Mean > 0 && pr.Mean < 1e-4 && pr.Alpha == risk.MinShape) {
				t.Errorf("%s: %+v", tt.name, pr)
			}
		case "all failures":
			if !(pr.Mean < 1 && pr.Mean > 0.999) {
				t.Errorf("%s: %+v", tt.name, pr)
			}
		}
		if pr.Alpha < risk.MinShape || pr.Beta < risk.MinShape {
			t.Errorf("%s: shapes %v, %v below MinShape", tt.name, pr.Alpha, pr.Beta)
		}
		// every fitted prior scores without error
		if _, err := risk.ScoreCounts(risk.Subject{}, risk.Counts{}, pr, now, p); err != nil {
			t.Errorf("%s: scoring with the prior: %v", tt.name, err)
		}
	}
}

func TestFitPriorRejects(t *testing.T) {
	p := risk.DefaultParams()
	late, _ := risk.Accumulate(lots(3, 0, 0), now.Add(day), p.HalfLife)
	other, _ := risk.Accumulate(lots(3, 0, 0), now, p.HalfLife/2)
	bad := late
	bad.Passes = math.NaN()
	tests := []struct {
		name    string
		members []risk.Counts
		field   string
	}{
		{"after now", []risk.Counts{{}, late}, "members[1].AsOf"},
		{"other half-life", []risk.Counts{other}, "members[0].HalfLife"},
		{"NaN", []risk.Counts{bad}, "members[0].Passes"},
	}
	for _, tt := range tests {
		if _, err := risk.FitPrior("g", tt.members, now, p); fieldOf(err) != tt.field {
			t.Errorf("%s: want an error on %s, got %v", tt.name, tt.field, err)
		}
	}
	if _, err := risk.FitPrior("g", nil, now, params(func(p *risk.Params) { p.Level = 2 })); fieldOf(err) != "Level" {
		t.Errorf("bad params: %v", err)
	}
}
