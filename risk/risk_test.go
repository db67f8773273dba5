package risk_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/risk"
)

const day = 24 * time.Hour

var now = time.Date(2024, 6, 30, 12, 0, 0, 0, time.UTC)

func params(mut func(*risk.Params)) risk.Params {
	p := risk.DefaultParams()
	if mut != nil {
		mut(&p)
	}
	return p
}

func mustPrior(t testing.TB, alpha, beta float64) risk.Prior {
	t.Helper()
	return risk.Prior{Alpha: alpha, Beta: beta, Group: "test", Method: "given"}
}

// lots returns n results at the given age, the first f of them failures.
func lots(n, f int, age time.Duration) []risk.Observation {
	out := make([]risk.Observation, n)
	for i := range out {
		out[i] = risk.Observation{At: now.Add(-age), Failed: i < f}
	}
	return out
}

func score(t testing.TB, hist []risk.Observation, prior risk.Prior, p risk.Params) risk.Score {
	t.Helper()
	s, err := risk.ScoreHistory(risk.Subject{Kind: risk.KindGoods, ID: "g"}, hist, prior, now, p)
	if err != nil {
		t.Fatalf("ScoreHistory: %v", err)
	}
	return s
}

func near(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func fieldOf(err error) string {
	var re *risk.Error
	if errors.As(err, &re) {
		return re.Field
	}
	return ""
}

func TestParamsValidate(t *testing.T) {
	if err := risk.DefaultParams().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		field string
		mut   func(*risk.Params)
	}{
		{"HalfLife", func(p *risk.Params) { p.HalfLife = 0 }},
		{"HalfLife", func(p *risk.Params) { p.HalfLife = -day }},
		{"Level", func(p *risk.Params) { p.Level = 0 }},
		{"Level", func(p *risk.Params) { p.Level = 1 }},
		{"Level", func(p *risk.Params) { p.Level = math.NaN() }},
		{"AlertWeight", func(p *risk.Params) { p.AlertWeight = -1 }},
		{"AlertWeight", func(p *risk.Params) { p.AlertWeight = math.Inf(1) }},
		{"PriorMinStrength", func(p *risk.Params) { p.PriorMinStrength = 0 }},
		{"PriorMaxStrength", func(p *risk.Params) { p.PriorMaxStrength = 1 }}, // below min 2
		{"PriorMaxStrength", func(p *risk.Params) { p.PriorMaxStrength = math.NaN() }},
		{"PriorMinSubjects", func(p *risk.Params) { p.PriorMinSubjects = 1 }},
		{"FallbackMean", func(p *risk.Params) { p.FallbackMean = 0 }},
		{"FallbackMean", func(p *risk.Params) { p.FallbackMean = 1 }},
		{"FallbackStrength", func(p *risk.Params) { p.FallbackStrength = 0 }},
		{"EvidenceLots", func(p *risk.Params) { p.EvidenceLots = -1 }},
	}
	for _, tt := range tests {
		err := params(tt.mut).Validate()
		if fieldOf(err) != tt.field || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("want an error naming %s, got %v", tt.field, err)
		}
	}
}

// The half-life behaves as documented: an observation k half-lives old
// weighs 0.5^k, exactly at whole half-lives.
func TestDecayHalfLife(t *testing.T) {
	for _, hl := range []time.Duration{time.Hour, 17 * time.Minute, 30 * day, 365 * day, 3 * 365 * day} {
		tests := []struct {
			age  time.Duration
			want float64
		}{
			{0, 1},
			{hl, 0.5},
			{2 * hl, 0.25},
			{10 * hl, 1.0 / 1024},
			{hl / 2, math.Sqrt(0.5)},
		}
		for _, tt := range tests {
			if got := risk.Decay(tt.age, hl); !near(got, tt.want, 1e-15) {
				t.Errorf("Decay(%v, %v) = %v, want %v", tt.age, hl, got, tt.want)
			}
			c, err := risk.Accumulate([]risk.Observation{{At: now.Add(-tt.age)}}, now, hl)
			if err != nil {
				t.Fatal(err)
			}
			if !near(c.Passes, tt.want, 1e-15) || !near(c.SumSq, tt.want*tt.want, 1e-15) {
				t.Errorf("half-life %v age %v: Passes %v SumSq %v, want %v", hl, tt.age, c.Passes, c.SumSq, tt.want)
			}
		}
		// exactly 0.5, not approximately
		if got := risk.Decay(hl, hl); got != 0.5 {
			t.Errorf("Decay(hl, hl) = %v, want exactly 0.5", got)
		}
	}
}

func TestNoHistoryGivesPrior(t *testing.T) {
	for _, pr := range []risk.Prior{mustPrior(t, 1, 1), mustPrior(t, 0.5, 9.5), mustPrior(t, 2, 198), mustPrior(t, 0.05, 20)} {
		for _, level := range []float64{0.5, 0.9, 0.99} {
			p := params(func(p *risk.Params) { p.Level = level })
			want, err := risk.BetaInterval(pr.Alpha, pr.Beta, level)
			if err != nil {
				t.Fatal(err)
			}
			for name, hist := range map[string][]risk.Observation{"nil": nil, "only future": lots(3, 1, -day)} {
				s := score(t, hist, pr, p)
				if s.Mean != pr.PriorMean() || s.Interval != want || s.Pessimistic != want.Hi {
					t.Errorf("%s, prior %v/%v level %v: got mean %v %+v, want %v %+v", name, pr.Alpha, pr.Beta, level, s.Mean, s.Interval, pr.PriorMean(), want)
				}
				if s.Evidence.EffectiveLots != 0 || len(s.Evidence.Lots) != 0 {
					t.Errorf("%s: evidence %+v", name, s.Evidence)
				}
			}
			// the zero Counts too
			s, err := risk.ScoreCounts(risk.Subject{}, risk.Counts{}, pr, now, p)
			if err != nil || s.Mean != pr.PriorMean() || s.Interval != want {
				t.Errorf("zero counts: %+v %v", s, err)
			}
		}
	}
}

// Many passes long ago decay toward the prior: the older they are, the
// closer the score is to the prior and the wider its interval.
func TestOldPassesDecayTowardPrior(t *testing.T) {
	hl := 180 * day
	p := params(func(p *risk.Params) { p.HalfLife = hl })
	pr := mustPrior(t, 0.6, 9.4) // mean 6%
	priorIV, _ := risk.BetaInterval(pr.Alpha, pr.Beta, p.Level)
	prevDist, prevWidth := math.Inf(1), 0.0
	for _, halfLives := range []float64{0, 1, 2, 4, 8, 16, 32, 64} {
		s := score(t, lots(200, 0, time.Duration(halfLives*float64(hl))), pr, p)
		dist := math.Abs(s.Mean - pr.PriorMean())
		if !(dist < prevDist) || !(s.Interval.Width() > prevWidth) {
			t.Errorf("%v half-lives: distance to prior %v (before %v), width %v (before %v)", halfLives, dist, prevDist, s.Interval.Width(), prevWidth)
		}
		if want := 200 * math.Exp2(-halfLives); !near(s.Evidence.Passes, want, 1e-12) {
			t.Errorf("%v half-lives: passes weigh %v, want %v", halfLives, s.Evidence.Passes, want)
		}
		prevDist, prevWidth = dist, s.Interval.Width()
	}
	if prevDist > 1e-6 || math.Abs(prevWidth-priorIV.Width()) > 1e-6 {
		t.Errorf("after 64 half-lives: distance %v, width %v vs prior %v", prevDist, prevWidth, priorIV.Width())
	}
	// fresh, the same passes make the subject look clean
	if s := score(t, lots(200, 0, 0), pr, p); s.Pessimistic > 0.02 {
		t.Errorf("200 fresh passes: pessimistic %v", s.Pessimistic)
	}
}

// One failure among two lots is not "50% risk": the mean is pulled toward
// the prior and the interval is wide, whatever the prior.
func TestThinHistoryIsNotCertain(t *testing.T) {
	fallback, err := risk.FallbackPrior("none", risk.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name               string
		prior              risk.Prior
		minWidth, minPessi float64
	}{
		{"fallback", fallback, 0.5, 0.6},
		{"uniform", mustPrior(t, 1, 1), 0.5, 0.8},
		{"typical group 5%", mustPrior(t, 0.5, 9.5), 0.25, 0.3},
		{"strong group 2%", mustPrior(t, 0.4, 19.6), 0.1, 0.15},
	}
	for _, tt := range tests {
		s := score(t, lots(2, 1, 0), tt.prior, risk.DefaultParams())
		pm := tt.prior.PriorMean()
		if s.Mean > 0.5 || s.Mean < math.Min(pm, 0.5) {
			t.Errorf("%s: mean %v not between prior mean %v and the naive 0.5", tt.name, s.Mean, pm)
		}
		if s.Interval.Width() < tt.minWidth {
			t.Errorf("%s: interval %+v narrower than %v", tt.name, s.Interval, tt.minWidth)
		}
		if s.Pessimistic < tt.minPessi || s.Pessimistic < 3*s.Mean/2 {
			t.Errorf("%s: pessimistic %v (mean %v): a failure in two lots must stay cautious", tt.name, s.Pessimistic, s.Mean)
		}
		// and two passes are not "100% compliant"
		s2 := score(t, lots(2, 0, 0), tt.prior, risk.DefaultParams())
		if s2.Mean <= 0 || s2.Pessimistic < 0.05 {
			t.Errorf("%s: two passes give mean %v pessimistic %v", tt.name, s2.Mean, s2.Pessimistic)
		}
	}
}

// At a fixed observed rate (5%), more lots give a narrower interval, from
// no lots at all to a million. (Evidence that contradicts a confident
// prior can widen it first; that is honest, and not what this pins.)
func TestIntervalsShrinkAsEvidenceGrows(t *testing.T) {
	for _, pr := range []risk.Prior{mustPrior(t, 1, 1), mustPrior(t, 0.5, 9.5), mustPrior(t, 0.25, 4.75)} {
		prev := math.Inf(1)
		for _, n := range []float64{0, 20, 40, 100, 200, 1000, 1e4, 1e6} {
			// n lots as two weighted observations: 5% failing, 95% passing
			var hist []risk.Observation
			if n > 0 {
				hist = []risk.Observation{{At: now, Failed: true, Weight: n / 20}, {At: now, Weight: n - n/20}}
			}
			s := score(t, hist, pr, risk.DefaultParams())
			if w := s.Interval.Width(); !(w < prev) {
				t.Errorf("prior %v/%v, %v lots: width %v not below %v", pr.Alpha, pr.Beta, n, w, prev)
			} else {
				prev = w
			}
			if n >= 1000 && math.Abs(s.Mean-0.05) > 0.005 {
				t.Errorf("%v lots at 5%%: mean %v", n, s.Mean)
			}
		}
		if prev > 0.001 {
			t.Errorf("a million lots: width %v", prev)
		}
	}
}

// randomHistory is a seeded mix of passes, failures, alerts and weights
// over three years before now.
func randomHistory(seed uint64, n int) []risk.Observation {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]risk.Observation, n)
	for i := range out {
		o := risk.Observation{At: now.Add(-time.Duration(rng.Int64N(int64(3 * 365 * day))))}
		switch u := rng.Float64(); {
		case u < 0.1:
			o.Failed = true
		case u < 0.15:
			o.Alert = true
		}
		if rng.Float64() < 0.2 {
			o.Weight = 0.25 + rng.Float64()
		}
		out[i] = o
	}
	return out
}

func countsNear(a, b risk.Counts, tol float64) bool {
	return near(a.Passes, b.Passes, tol) && near(a.Failures, b.Failures, tol) && near(a.Alerts, b.Alerts, tol) &&
		near(a.SumSq, b.SumSq, tol) && near(a.AlertSq, b.AlertSq, tol) &&
		a.N == b.N && a.NFailed == b.NFailed && a.NAlerts == b.NAlerts && a.HalfLife == b.HalfLife &&
		a.AsOf.Equal(b.AsOf) && a.LastAt.Equal(b.LastAt)
}

// Counts kept incrementally (results arriving late and out of order,
// decayed in steps) equal counts accumulated in one batch.
func TestIncrementalEqualsBatch(t *testing.T) {
	hl := 90 * day
	for seed := range uint64(20) {
		hist := randomHistory(seed, 1+int(seed)*37)
		batch, err := risk.Accumulate(hist, now, hl)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, 2))
		var inc risk.Counts
		for _, i := range rng.Perm(len(hist)) {
			if inc, err = inc.Add(hist[i], hl); err != nil {
				t.Fatal(err)
			}
			if rng.Float64() < 0.1 && inc.AsOf.Before(now) { // a rescoring run in between
				step := inc.AsOf.Add(time.Duration(rng.Int64N(int64(now.Sub(inc.AsOf)) + 1)))
				if inc, err = inc.DecayTo(step); err != nil {
					t.Fatal(err)
				}
			}
		}
		if inc, err = inc.DecayTo(now); err != nil {
			t.Fatal(err)
		}
		if !countsNear(inc, batch, 1e-12) {
			t.Errorf("seed %d: incremental %+v\nbatch %+v", seed, inc, batch)
		}
	}
	// decaying in steps equals decaying at once
	c, _ := risk.Accumulate(randomHistory(99, 500), now, hl)
	once, _ := c.DecayTo(now.Add(400 * day))
	steps := c
	for range 40 {
		steps, _ = steps.DecayTo(steps.AsOf.Add(10 * day))
	}
	if !countsNear(once, steps, 1e-12) {
		t.Errorf("steps %+v\nonce %+v", steps, once)
	}
}

func TestCountsRejectMisuse(t *testing.T) {
	hl := 30 * day
	c, err := risk.Accumulate(lots(3, 1, day), now, hl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DecayTo(now.Add(-time.Second)); fieldOf(err) != "t" {
		t.Errorf("un-decay: %v", err)
	}
	if _, err := c.Add(risk.Observation{At: now}, 2*hl); fieldOf(err) != "Counts.HalfLife" {
		t.Errorf("half-life mismatch on Add: %v", err)
	}
	if _, err := risk.ScoreCounts(risk.Subject{}, c, mustPrior(t, 1, 1), now, params(func(p *risk.Params) { p.HalfLife = 2 * hl })); fieldOf(err) != "Counts.HalfLife" {
		t.Errorf("half-life mismatch on score: %v", err)
	}
	if _, err := risk.ScoreCounts(risk.Subject{}, c, mustPrior(t, 1, 1), now.Add(-day), params(func(p *risk.Params) { p.HalfLife = hl })); fieldOf(err) != "Counts.AsOf" {
		t.Errorf("counts after now: %v", err)
	}
	for _, o := range []risk.Observation{{}, {At: now, Weight: -1}, {At: now, Weight: math.NaN()}, {At: now, Weight: math.Inf(1)}} {
		if _, err := c.Add(o, hl); err == nil {
			t.Errorf("Add(%+v) accepted", o)
		}
		if _, err := risk.Accumulate([]risk.Observation{o}, now, hl); err == nil {
			t.Errorf("Accumulate(%+v) accepted", o)
		}
	}
}

// Edge inputs give an error or a sane score, never a panic.
func TestEdgeInputsNeverPanic(t *testing.T) {
	p := risk.DefaultParams()
	valid := func(c risk.Counts) risk.Counts { c.HalfLife, c.AsOf = p.HalfLife, now; return c }
	tests := []struct {
		name    string
		counts  risk.Counts
		prior   risk.Prior
		wantErr string // field, or "" for a valid score
	}{
		{"zero", risk.Counts{}, mustPrior(t, 1, 1), ""},
		{"huge passes", valid(risk.Counts{Passes: 1e11, SumSq: 1e11, N: 1 << 40}), mustPrior(t, 1, 1), ""},
		{"huge both", valid(risk.Counts{Passes: 1e12, Failures: 1e12, SumSq: 1e12, N: 2}), mustPrior(t, 1, 1), ""},
		{"beyond MaxWeight", valid(risk.Counts{Passes: 1e13, N: 1}), mustPrior(t, 1, 1), "Counts.Passes"},
		{"NaN failures", valid(risk.Counts{Failures: math.NaN(), N: 1}), mustPrior(t, 1, 1), "Counts.Failures"},
		{"Inf passes", valid(risk.Counts{Passes: math.Inf(1), N: 1}), mustPrior(t, 1, 1), "Counts.Passes"},
		{"negative failures", valid(risk.Counts{Failures: -1, N: 1}), mustPrior(t, 1, 1), "Counts.Failures"},
		{"negative N", valid(risk.Counts{N: -1}), mustPrior(t, 1, 1), "Counts.N"},
		{"NFailed > N", valid(risk.Counts{N: 1, NFailed: 2}), mustPrior(t, 1, 1), "Counts.NFailed"},
		{"no AsOf", risk.Counts{Passes: 1, N: 1, HalfLife: p.HalfLife}, mustPrior(t, 1, 1), "Counts"},
		{"zero alpha", risk.Counts{}, mustPrior(t, 0, 1), "Prior.Alpha"},
		{"negative beta", risk.Counts{}, mustPrior(t, 1, -1), "Prior.Beta"},
		{"tiny alpha", risk.Counts{}, mustPrior(t, 1e-9, 1), "Prior.Alpha"},
		{"NaN beta", risk.Counts{}, mustPrior(t, 1, math.NaN()), "Prior.Beta"},
		{"1e300 prior", risk.Counts{}, mustPrior(t, 1e300, 1e300), "Prior.Alpha"},
		{"max prior", risk.Counts{}, mustPrior(t, risk.MaxWeight, risk.MaxWeight), ""},
		{"min prior", risk.Counts{}, mustPrior(t, risk.MinShape, risk.MinShape), ""},
		{"alerts beyond posterior range", valid(risk.Counts{Alerts: 1e12, AlertSq: 1, NAlerts: 1}), mustPrior(t, 1, 1), ""},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic %v", tt.name, r)
				}
			}()
			s, err := risk.ScoreCounts(risk.Subject{}, tt.counts, tt.prior, now, p)
			if tt.wantErr != "" {
				if fieldOf(err) != tt.wantErr {
					t.Errorf("%s: want an error on %s, got %v", tt.name, tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
				return
			}
			if !(0 <= s.Interval.Lo && s.Interval.Lo <= s.Interval.Hi && s.Interval.Hi <= 1 && s.Mean >= 0 && s.Mean <= 1) {
				t.Errorf("%s: score %+v", tt.name, s)
			}
		}()
	}
	// alerts weighted past the posterior's range are an error, not a panic
	c := valid(risk.Counts{Alerts: 1e12, AlertSq: 1, NAlerts: 1})
	if _, err := risk.ScoreCounts(risk.Subject{}, c, mustPrior(t, 1, 1), now, params(func(p *risk.Params) { p.AlertWeight = 1000 })); fieldOf(err) != "posterior.alpha" {
		t.Errorf("alerts × 1000: %v", err)
	}
	for _, level := range []float64{math.NaN(), 0, 1, -0.1, 2} {
		if _, err := risk.BetaInterval(1, 1, level); fieldOf(err) != "Level" {
			t.Errorf("level %v: %v", level, err)
		}
	}
}

func TestEvidence(t *testing.T) {
	hl := 100 * day
	p := params(func(p *risk.Params) { p.HalfLife, p.AlertWeight, p.EvidenceLots = hl, 2, 4 })
	hist := []risk.Observation{
		{At: now.Add(-10 * day), Ref: "pass-new"},
		{At: now.Add(-300 * day), Failed: true, Ref: "fail-old"},
		{At: now.Add(-hl), Alert: true, Ref: "alert"},
		{At: now.Add(-5 * day), Ref: "pass-newest"},
		{At: now.Add(-400 * day), Ref: "pass-old"},
		{At: now.Add(day), Failed: true, Ref: "future"},
		{At: now.Add(-50 * day), Failed: true, Ref: "fail-new"},
	}
	s := score(t, hist, mustPrior(t, 0.5, 9.5), p)
	var refs []string
	for _, l := range s.Evidence.Lots {
		refs = append(refs, l.Ref)
	}
	if got, want := strings.Join(refs, ","), "alert,fail-new,fail-old,pass-newest"; got != want {
		t.Errorf("lots %s, want %s", got, want)
	}
	if w := s.Evidence.Lots[0].Weight; w != 1 { // 2 × 0.5
		t.Errorf("alert weight %v, want exactly 1", w)
	}
	c := s.Evidence.Counts
	if c.N != 5 || c.NFailed != 2 || c.NAlerts != 1 || !c.LastAt.Equal(now.Add(-5*day)) {
		t.Errorf("counts %+v", c)
	}
	if wantF := risk.Decay(50*day, hl) + risk.Decay(300*day, hl) + 2*0.5; !near(s.Evidence.Failures, wantF, 1e-12) {
		t.Errorf("failure-equivalents %v, want %v", s.Evidence.Failures, wantF)
	}
	if s.Evidence.PosteriorAlpha != 0.5+s.Evidence.Failures || s.Evidence.PosteriorBeta != 9.5+s.Evidence.Passes {
		t.Errorf("posterior %v/%v", s.Evidence.PosteriorAlpha, s.Evidence.PosteriorBeta)
	}
	if s.Evidence.HalfLifeDays != 100 || s.Evidence.Prior.Group != "test" {
		t.Errorf("evidence %+v", s.Evidence)
	}
	// the stored-counts path gives the same numbers (without the lot list)
	sc, err := risk.ScoreCounts(s.Subject, c, s.Evidence.Prior, now, p)
	if err != nil || sc.Mean != s.Mean || sc.Interval != s.Interval || sc.Evidence.Lots != nil {
		t.Errorf("ScoreCounts %+v %v", sc, err)
	}
}

func TestRank(t *testing.T) {
	mk := func(id string, pess, mean float64) risk.Score {
		return risk.Score{Subject: risk.Subject{Kind: risk.KindImporter, ID: id}, Pessimistic: pess, Mean: mean}
	}
	in := []risk.Score{mk("a", 0.1, 0.05), mk("b", 0.3, 0.01), mk("c", 0.1, 0.07), mk("d", 0.1, 0.05), mk("e", 0.02, 0.01)}
	var got []string
	for _, s := range risk.Rank(in) {
		got = append(got, s.Subject.ID)
	}
	if strings.Join(got, "") != "bcade" {
		t.Errorf("rank %v", got)
	}
	if in[0].Subject.ID != "a" {
		t.Error("Rank modified its input")
	}
}

func TestAUC(t *testing.T) {
	tests := []struct {
		name  string
		score []float64
		pos   []bool
		want  float64
	}{
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, []bool{false, false, true, true}, 1},
		{"reversed", []float64{0.9, 0.8, 0.2, 0.1}, []bool{false, false, true, true}, 0},
		{"all tied", []float64{0.5, 0.5, 0.5}, []bool{true, false, false}, 0.5},
		// pairs (pos, neg): (0.4>0.1) (0.4<0.5) (0.4 = 0.4 ½) (0.9 beats all 3) → 4.5/6
		{"ties count half", []float64{0.4, 0.9, 0.1, 0.5, 0.4}, []bool{true, true, false, false, false}, 4.5 / 6},
	}
	for _, tt := range tests {
		got, err := risk.AUC(tt.score, tt.pos)
		if err != nil || !near(got, tt.want, 1e-15) {
			t.Errorf("%s: %v %v, want %v", tt.name, got, err, tt.want)
		}
	}
	for _, bad := range []struct {
		s []float64
		p []bool
	}{{[]float64{1, 2}, []bool{true}}, {[]float64{1, 2}, []bool{true, true}}, {[]float64{math.NaN(), 1}, []bool{true, false}}, {nil, nil}} {
		if _, err := risk.AUC(bad.s, bad.p); err == nil {
			t.Errorf("AUC(%v, %v) accepted", bad.s, bad.p)
		}
	}
	// against brute force over all pairs
	rng := rand.New(rand.NewPCG(7, 7))
	s, p := make([]float64, 300), make([]bool, 300)
	for i := range s {
		s[i], p[i] = float64(rng.IntN(20)), rng.Float64() < 0.3
	}
	var wins, pairs float64
	for i := range s {
		for j := range s {
			if p[i] && !p[j] {
				pairs++
				switch {
				case s[i] > s[j]:
					wins++
				case s[i] == s[j]:
					wins += 0.5
				}
			}
		}
	}
	if got, _ := risk.AUC(s, p); !near(got, wins/pairs, 1e-12) {
		t.Errorf("AUC %v, brute force %v", got, wins/pairs)
	}
}

func TestCoverage(t *testing.T) {
	iv := []risk.Interval{{0, 0.1}, {0.2, 0.3}, {0.5, 0.5}, {0, 1}}
	got, err := risk.Coverage(iv, []float64{0.1, 0.1, 0.5, 0.7})
	if err != nil || got != 0.75 {
		t.Errorf("coverage %v %v", got, err)
	}
	if _, err := risk.Coverage(iv, []float64{1}); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, err := risk.Coverage(nil, nil); err == nil {
		t.Error("empty accepted")
	}
}

// InfluentialLots keeps the same top k a full sort would.
func TestInfluentialLotsMatchesSort(t *testing.T) {
	for seed := range uint64(10) {
		hist := randomHistory(seed, 200)
		for i := range hist {
			hist[i].Ref = string(rune('a' + i%26))
			if i%7 == 0 { // ties on time and weight
				hist[i].At, hist[i].Weight = now.Add(-day), 0
			}
		}
		for _, k := range []int{0, 1, 5, 50, 500} {
			p := params(func(p *risk.Params) { p.EvidenceLots = k })
			all := risk.InfluentialLots(hist, now, params(func(p *risk.Params) { p.EvidenceLots = 1 << 20 }))
			sort.SliceStable(all, func(i, j int) bool {
				x, y := all[i], all[j]
				switch {
				case x.Failed != y.Failed:
					return x.Failed
				case x.Weight != y.Weight:
					return x.Weight > y.Weight
				case !x.At.Equal(y.At):
					return x.At.After(y.At)
				}
				return x.Ref < y.Ref
			})
			want := all[:min(k, len(all))]
			got := risk.InfluentialLots(hist, now, p)
			if len(got) != len(want) {
				t.Fatalf("seed %d k %d: %d lots, want %d", seed, k, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("seed %d k %d lot %d: %+v, want %+v", seed, k, i, got[i], want[i])
				}
			}
		}
	}
}

func TestPriorGroup(t *testing.T) {
	tests := []struct{ kind, hs, want string }{
		{risk.KindGoods, "0402.10.00", "hs_chapter:04"},
		{risk.KindHeadingOrigin, "2106", "hs_chapter:21"},
		{risk.KindManufacturer, " 9", "hs_chapter:unknown"},
		{risk.KindImporter, "0402", risk.GroupImporters},
	}
	for _, tt := range tests {
		if got := risk.PriorGroup(tt.kind, tt.hs); got != tt.want {
			t.Errorf("PriorGroup(%q, %q) = %q, want %q", tt.kind, tt.hs, got, tt.want)
		}
	}
}
