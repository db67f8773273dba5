package backtest_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
)

// variant derives a version from the default policy document, as policy
// staff would draft one.
func variant(t testing.TB, version string, edit func(doc map[string]any)) *policy.Policy {
	t.Helper()
	def, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := def.Document()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["version"] = version
	if edit != nil {
		edit(doc)
	}
	if raw, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	p, err := policy.ParsePolicy(raw)
	if err != nil {
		t.Fatalf("policy %s: %v", version, err)
	}
	return p
}

func section(doc map[string]any, name string) map[string]any { return doc[name].(map[string]any) }

// stricter asks for more passes, in a shorter window, to reach reduced,
// and more passes to leave strict; looser the reverse.
func stricter(doc map[string]any) {
	r := section(doc, "reduced")
	r["consecutive_passes"], r["window_months"] = 6, 6
	section(doc, "strict")["passes_to_normal"] = 5
}

func looser(doc map[string]any) {
	r := section(doc, "reduced")
	r["consecutive_passes"] = 1
	section(doc, "strict")["passes_to_normal"] = 1
}

type generated struct {
	gen    *fixtures.Generator
	active *policy.Policy
	secret []byte
}

func generate(t testing.TB, seed uint64, lots int) generated {
	return generateWith(t, seed, lots, 1, 0)
}

// generateWith is generate with the universe's goods fixed (0: from the
// volume).
func generateWith(t testing.TB, seed uint64, lots, years, goods int) generated {
	t.Helper()
	p := variant(t, "2026.1-default", nil)
	keys := fixtures.SeedSecret(seed)
	g, err := fixtures.New(fixtures.Config{Seed: seed, Lots: lots, Years: max(years, 1), Policy: p, Scale: 1, Goods: goods,
		NewSampler: func() fixtures.Sampler { return fixtures.QuotaSampler(p, keys) }})
	if err != nil {
		t.Fatal(err)
	}
	return generated{gen: g, active: p, secret: keys}
}

func run(t testing.TB, h generated, candidate *policy.Policy) *backtest.Report {
	t.Helper()
	rep, err := backtest.Run(context.Background(), backtest.Config{Active: h.active, Candidate: candidate,
		Keys: quota.MasterSecret(h.secret), MaxLag: fixtures.BacktestMaxLag}, h.gen.BacktestItems(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if x := rep.AgainstHistory; x.Mismatches != 0 || x.Compared != rep.Lots {
		t.Fatalf("active side against the generator's decisions: %d of %d compared lots differ (%d lots); first: %+v",
			x.Mismatches, x.Compared, rep.Lots, x.Examples)
	}
	if rep.LateEvents != 0 || rep.OutOfOrder != 0 {
		t.Fatalf("late events %d, lots out of order %d: the replay's trimming is not exact", rep.LateEvents, rep.OutOfOrder)
	}
	for _, f := range []backtest.Figures{rep.Active, rep.Candidate} {
		if f.CapExceeded != 0 {
			t.Fatalf("cap exceeded %d times", f.CapExceeded)
		}
	}
	return rep
}

func TestSamePolicyChangesNothing(t *testing.T) {
	h := generate(t, 11, 20_000)
	same := variant(t, "2026.2-same", nil)
	rep := run(t, h, same)
	if rep.Changed != 0 || len(rep.Changes) != 0 {
		t.Fatalf("candidate = active changed %d lots; first %+v", rep.Changed, rep.Changes)
	}
	a, c := rep.Active, rep.Candidate
	if !reflect.DeepEqual(a, c) {
		t.Fatalf("same policy, different figures:\nactive    %+v\ncandidate %+v", a, c)
	}
	for i := range 4 {
		for j := range 4 {
			if i != j && rep.Transitions[i][j] != 0 {
				t.Fatalf("transition %s→%s: %d lots", backtest.Modes[i], backtest.Modes[j], rep.Transitions[i][j])
			}
		}
	}
	if a.Unobserved != 0 || a.Missed != 0 {
		t.Fatalf("the active side inspects what history inspected: unobserved %d, missed %d", a.Unobserved, a.Missed)
	}
}

// figures are the report's numbers that a stricter version must raise
// (and a looser one lower), and those it must lower.
type figures struct {
	inspections, strictNormal, lab, caught, agencyPeak, agencyP95, agencyTotal float64
	reduced, missed, randomChecks                                              float64
}

func figuresOf(f backtest.Figures) figures {
	x := figures{
		inspections: float64(f.Inspections), strictNormal: float64(f.Modes[0] + f.Modes[1]), lab: float64(f.LabSamples),
		caught:  float64(f.Caught) + f.EstimatedFailures.Expected,
		reduced: float64(f.Modes[2]), missed: float64(f.Missed), randomChecks: float64(f.RandomChecks),
	}
	for _, a := range f.Agencies {
		x.agencyPeak += float64(a.Peak)
		x.agencyP95 += float64(a.P95)
		x.agencyTotal += float64(a.Total)
	}
	return x
}

func TestStricterAndLooserMoveEveryFigure(t *testing.T) {
	h := generate(t, 12, 30_000)
	for _, tc := range []struct {
		name    string
		edit    func(map[string]any)
		tighter bool
	}{
		{"stricter", stricter, true},
		{"looser", looser, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := run(t, h, variant(t, "2026.2-"+tc.name, tc.edit))
			a, c := figuresOf(rep.Active), figuresOf(rep.Candidate)
			t.Logf("%s: active %+v\n candidate %+v\n changed %d, baseline %.4f [%.4f, %.4f] of %d, estimated failures %.1f [%.1f, %.1f] of %d unobserved",
				tc.name, a, c, rep.Changed, rep.Baseline.Rate, rep.Baseline.Low, rep.Baseline.High, rep.Baseline.Of,
				rep.Candidate.EstimatedFailures.Expected, rep.Candidate.EstimatedFailures.Low, rep.Candidate.EstimatedFailures.High,
				rep.Candidate.Unobserved)
			up := []struct {
				name string
				a, c float64
			}{
				{"inspections", a.inspections, c.inspections}, {"strict and normal lots", a.strictNormal, c.strictNormal},
				{"laboratory samples", a.lab, c.lab}, {"violations caught (known and estimated)", a.caught, c.caught},
				{"agency peak days", a.agencyPeak, c.agencyPeak}, {"agency p95 days", a.agencyP95, c.agencyP95},
				{"agency inspections", a.agencyTotal, c.agencyTotal},
				// Fewer reduced lots leave the quota fewer lots to draw from.
				{"reduced lots", c.reduced, a.reduced}, {"violations missed", c.missed, a.missed},
				{"random checks", c.randomChecks, a.randomChecks},
			}
			for _, f := range up {
				lo, hi := f.a, f.c // a stricter candidate raises the figure
				if !tc.tighter {
					lo, hi = hi, lo
				}
				// Peaks and percentiles are counts of one day: they may tie.
				tie := f.name == "agency peak days" || f.name == "agency p95 days" || f.name == "random checks"
				if f.name == "violations missed" && tc.tighter {
					// A stricter version leaves fewer reduced lots, so the
					// quota's counters differ and a few of history's random
					// checks are not drawn again: the known misses it can
					// show are those, and they must stay few.
					if c.missed > 0.05*a.caught {
						t.Errorf("stricter missed %v of %v caught", c.missed, a.caught)
					}
					continue
				}
				if hi < lo || (hi == lo && !tie) {
					t.Errorf("%s: active %v, candidate %v: not in the %s direction", f.name, f.a, f.c, tc.name)
				}
			}
			if rep.Changed == 0 || int64(len(rep.Changes)) != min(rep.Changed, 100) {
				t.Errorf("changed %d lots, listed %d", rep.Changed, len(rep.Changes))
			}
		})
	}
}

// TestStretchReportsOnlyItsLots: history before From is replayed (so the
// active side still matches history lot by lot) but not reported, and the
// replay ends at To.
func TestStretchReportsOnlyItsLots(t *testing.T) {
	h := generate(t, 13, 12_000)
	from, to := h.gen.Start().AddDate(0, 6, 0), h.gen.Start().AddDate(0, 9, 0)
	rep, err := backtest.Run(context.Background(), backtest.Config{Active: h.active, Candidate: variant(t, "2026.2-looser", looser),
		Keys: quota.MasterSecret(h.secret), MaxLag: fixtures.BacktestMaxLag, From: from, To: to}, h.gen.BacktestItems(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lots == 0 || rep.WarmupLots == 0 || rep.From.Before(from) || !rep.To.Before(to) || rep.Lots+rep.WarmupLots >= 12_000 {
		t.Fatalf("stretch %s to %s: %d lots from %s to %s after %d warm-up lots", from, to, rep.Lots, rep.From, rep.To, rep.WarmupLots)
	}
	if x := rep.AgainstHistory; x.Compared != rep.Lots || x.Mismatches != 0 {
		t.Fatalf("after warm-up, %d of %d lots differ from history: %+v", x.Mismatches, x.Compared, x.Examples)
	}
	if rep.Active.Lots != rep.Lots || rep.Candidate.Lots != rep.Lots {
		t.Fatalf("sides count %d and %d lots of %d", rep.Active.Lots, rep.Candidate.Lots, rep.Lots)
	}
}
