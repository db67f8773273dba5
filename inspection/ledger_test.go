package inspection_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/store"
)

// ledgerRun is a generated history replayed through a real service on
// badger (in memory), with the generator's truth about its reduced lots.
type ledgerRun struct {
	db    *store.DB
	svc   *inspection.Service
	pol   *policy.Policy
	clock *fixtures.SteppingClock
	// truth is the mean of the truth's violation rate over the history's
	// reduced lots; reduced how many there were.
	truth   float64
	reduced int
	stats   fixtures.ReplayStats
	// decisions are the IDs of every lot decided, for a recount.
	decisions []string
}

// replayForLedger generates seed's history of lots over a year and
// replays it through the service (committing each change directly, or
// through group commit as in production), the service's own quota drawing the
// random checks (the generator's sampler draws the same: same rules,
// same keys), and reads the truth of every reduced lot as it is decided.
func replayForLedger(t *testing.T, seed uint64, lots int, scope quota.ScopeKind, direct bool) ledgerRun {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(store.Options{InMemory: true, Small: true, DirectCommit: direct})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p := mustPolicy(t)
	p.Reduced.Sampling.Scope = scope
	keys := fixtures.SeedSecret(seed)
	clock := fixtures.NewSteppingClock(time.Time{})
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: clock, QuotaKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	g, err := fixtures.New(fixtures.Config{Seed: seed, Lots: lots, Years: 1, Policy: p,
		End:        time.Date(2026, 7, 1, 0, 0, 0, 0, calendar.Vietnam()),
		Importers:  realisticImporters(lots),
		NewSampler: func() fixtures.Sampler { return fixtures.QuotaSampler(p, keys) }})
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(g.Start())
	if _, err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fixtures.LoadUniverse(ctx, svc, g.Universe()); err != nil {
		t.Fatal(err)
	}
	rp := fixtures.NewReplayer(svc, clock)
	run := ledgerRun{db: db, svc: svc, pol: p, clock: clock}
	for rec, err := range g.Records() {
		if err != nil {
			t.Fatal(err)
		}
		if err := rp.Apply(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if d := rec.Decision; d != nil {
			run.decisions = append(run.decisions, d.DecisionID)
		}
		if d := rec.Decision; d != nil && d.Mode == inspection.ModeReduced {
			run.truth += g.Truth().Rate(d.Goods, d.Importer, rec.At)
			run.reduced++
		}
	}
	run.stats = rp.Stats()
	if run.stats.ModeMismatches != 0 || run.stats.SkippedResults != 0 {
		t.Fatalf("seed %d: the service decided otherwise than the generator: %s", seed, run.stats)
	}
	if run.reduced > 0 {
		run.truth /= float64(run.reduced)
	}
	return run
}

// TestLedgerEstimateCoversTheTruth is issue 20's acceptance 4: on 20
// seeds of generated history, the ledger's 95% interval for the violation
// rate among reduced lots contains the generator's true rate (the mean of
// its per-lot violation probability over the reduced lots) for at least
// 18. Under the race detector the store is about ten times slower, so it
// replays the first 2 seeds (about 20 s alone) and asks for both; the 20 run
// without it (about 40 s). Chapter × year scopes: more of a year's
// reduced lots are drawable than under heading scopes, so the truth the
// interval is held to (every reduced lot's) needs less extrapolation
// (docs/effectiveness.md); the replay commits directly, not through group
// commit, which a serial replay only waits on.
func TestLedgerEstimateCoversTheTruth(t *testing.T) {
	t.Parallel()
	seeds, need, lots := 20, 18, 3000
	if raceDetector {
		seeds, need = 2, 2 // the first two of the 20, as they are without it
	}
	if testing.Short() {
		seeds, need = 3, 2
	}
	covered := 0
	var width, checks, estimates, truths float64
	start := time.Now()
	for seed := 1; seed <= seeds; seed++ {
		run := replayForLedger(t, uint64(seed), lots, quota.ScopeChapterYear, true)
		e, err := run.svc.Effectiveness(context.Background(), as("auditor:ana"), run.pol.Version)
		if err != nil {
			t.Fatal(err)
		}
		r := e.Totals.ReducedViolationRate
		if r == nil {
			t.Fatalf("seed %d: no estimate from %d random checks of %d reduced lots", seed, e.Totals.RandomChecks, e.Totals.Reduced)
		}
		if e.Totals.Reduced != int64(run.reduced) {
			t.Errorf("seed %d: ledger counts %d reduced lots, the history has %d", seed, e.Totals.Reduced, run.reduced)
		}
		in := r.Low <= run.truth && run.truth <= r.High
		if in {
			covered++
		}
		width += r.High - r.Low
		estimates += r.Estimate
		truths += run.truth
		checks += float64(e.Totals.RandomResults)
		t.Logf("seed %2d: %d reduced lots, %d drawable, %d checked at random, %d results, %d failed: estimate %.4f [%.4f, %.4f] (n* %.0f), truth %.4f, covered %v",
			seed, e.Totals.Reduced, e.Totals.Drawable, e.Totals.RandomChecks, e.Totals.RandomResults, e.Totals.RandomFailures,
			r.Estimate, r.Low, r.High, r.EffectiveN, run.truth, in)
	}
	n := float64(seeds)
	t.Logf("%d of %d seeds covered; mean interval width %.4f over %.0f random-check results a seed; mean estimate %.4f, mean truth %.4f; %s",
		covered, seeds, width/n, checks/n, estimates/n, truths/n, time.Since(start).Round(time.Second))
	if covered < need {
		t.Errorf("the 95%% interval covered the truth for %d of %d seeds, want at least %d", covered, seeds, need)
	}
}

// TestLedgerEqualsARecountAfterAReplay: the tallies kept in each
// transaction (under group commit, where many changes share one badger
// transaction and read each other's tallies) equal a from-scratch recount over the stored decisions,
// overrides' assignments and results (the ledger never scans; this test
// does, to check it).
func TestLedgerEqualsARecountAfterAReplay(t *testing.T) {
	t.Parallel()
	// Seed 7's 800 lots end with normal and strict inspections open and a
	// random check whose result is not in: every override path has a lot.
	run := replayForLedger(t, 7, 800, quota.ScopeChapterYear, false)
	ctx := context.Background()
	overrideSome(t, run)
	want := map[string]*inspection.LedgerTally{}
	var got []inspection.LedgerTally
	err := run.db.View(ctx, func(tx inspection.ReadTx) error {
		var err error
		if got, err = tx.LedgerTallies(run.pol.Version); err != nil {
			return err
		}
		for _, id := range run.decisions {
			d, err := tx.Decision(id)
			if err != nil {
				return err
			}
			// The lot's assignment, the decision's or an override's.
			var a *inspection.Assignment
			x, err := tx.Assignment(identity.AssignmentID(d.DeclarationID, d.LineNo))
			switch {
			case err == nil:
				a = &x
			case !errors.Is(err, fault.ErrNotFound):
				return err
			}
			tally(want, d, a)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d tallies, the recount has %d", len(got), len(want))
	}
	for _, g := range got {
		w := want[g.Rule]
		if w == nil {
			t.Errorf("tally of rule %q, which the recount never saw", g.Rule)
			continue
		}
		if !sameTally(g, *w) {
			t.Errorf("rule %q: ledger %+v, recount %+v", g.Rule, g, *w)
		}
	}
	if run.stats.Results == 0 {
		t.Error("no results replayed")
	}
}

// overrideSome has customs cancel open inspections of normal lots (and
// order one again), release a strict lot under four eyes, and swap a
// random check like for like, an agency failing the lot the swap checked,
// so the recount meets every override path.
func overrideSome(t *testing.T, run ledgerRun) {
	t.Helper()
	ctx := context.Background()
	customs, sys := as("customs:nguyen.van.a"), access.SystemPrincipal()
	var (
		open    []string                // normal lots, inspection open
		strict  []string                // strict lots, inspection open
		chosen  = map[string][]string{} // reduced lots the draw chose, no result, by scope
		skipped = map[string][]string{} // reduced lots it did not choose, by scope
	)
	err := run.db.View(ctx, func(tx inspection.ReadTx) error {
		for _, id := range run.decisions {
			d, err := tx.Decision(id)
			if err != nil {
				return err
			}
			var a inspection.Assignment
			if d.AssignmentID != "" {
				if a, err = tx.Assignment(d.AssignmentID); err != nil {
					return err
				}
			}
			switch q := d.Quota; {
			case d.Mode == inspection.ModeNormal && a.Status == inspection.AssignmentOpen:
				open = append(open, id)
			case d.Mode == inspection.ModeStrict && a.Status == inspection.AssignmentOpen:
				strict = append(strict, id)
			case q != nil && q.Chosen && a.Result == nil:
				chosen[q.Period+"/"+q.Scope] = append(chosen[q.Period+"/"+q.Scope], id)
			case q != nil && !q.Chosen:
				skipped[q.Period+"/"+q.Scope] = append(skipped[q.Period+"/"+q.Scope], id)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) < 2 || len(strict) == 0 {
		t.Fatalf("nothing to override: %d open normal lots, %d open strict lots", len(open), len(strict))
	}
	no, yes := false, true
	for _, id := range open {
		if _, err := run.svc.Override(ctx, customs, id, inspection.OverrideInput{ReasonCode: "duplicate_declaration", ReasonText: "declared twice", Inspect: &no}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run.svc.Override(ctx, customs, open[0], inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "tip-off", Inspect: &yes}); err != nil {
		t.Fatal(err)
	}
	out, err := run.svc.Override(ctx, customs, strict[0], inspection.OverrideInput{ReasonCode: "agency_request", ReasonText: "lab closed", Inspect: &no})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.svc.ConfirmOverride(ctx, as("customs:tran.thi.b"), out.Decision.Overrides[len(out.Decision.Overrides)-1].ID); err != nil {
		t.Fatal(err)
	}
	swaps := 0
	for scope, ids := range chosen {
		if swaps == 3 || len(skipped[scope]) == 0 {
			continue
		}
		other := skipped[scope][0]
		out, err := run.svc.Override(ctx, customs, ids[0], inspection.OverrideInput{ReasonCode: "operational_swap", ReasonText: "lot unreachable", SwapWith: other})
		if err != nil {
			t.Fatal(err)
		}
		checked := out.Swapped.Current.AssignmentID
		if _, err := run.svc.RecordResult(ctx, sys, checked, inspection.ResultInput{Outcome: "fail", InspectedAt: run.clock.Now().Format(time.RFC3339),
			Findings: []inspection.Finding{{Code: "LABEL", Text: "mislabelled"}}}); err != nil {
			t.Fatal(err)
		}
		swaps++
	}
	if swaps == 0 {
		t.Fatal("no random check to swap")
	}
}

// tally recounts one decision and its assignment as the ledger defines
// its counts (docs/effectiveness.md).
func tally(by map[string]*inspection.LedgerTally, d inspection.Decision, a *inspection.Assignment) {
	t := by[d.Explanation.Rule]
	if t == nil {
		t = &inspection.LedgerTally{Version: d.PolicyVersion, Rule: d.Explanation.Rule}
		by[d.Explanation.Rule] = t
	}
	t.Decided++
	if a != nil && a.Status != inspection.AssignmentCancelled {
		t.Inspected++
	}
	if d.Mode == inspection.ModeReduced {
		t.Reduced++
	}
	if q := d.Quota; q != nil {
		before := q.Selected
		if q.Chosen {
			before--
		}
		p := 0.0
		if before+1 <= q.Allowance {
			p = q.Probability
		}
		if p > 0 {
			t.Drawable++
		}
		if q.Chosen {
			t.Chosen++
		}
		if q.Chosen && a != nil && a.OverrideID == "" && a.Result != nil {
			y := 0.0
			if a.Result.Outcome == inspection.OutcomeFail {
				y = 1
				t.Random.Fails++
			}
			t.Random.Results++
			t.Random.W += 1 / p
			t.Random.WY += y / p
			t.Random.V += (1 - p) / (p * p)
			t.Random.VY += y * (1 - p) / (p * p)
		}
	}
	if a != nil && a.Result != nil {
		t.Results++
		if a.Result.Outcome == inspection.OutcomeFail {
			t.Fails++
		}
	}
}

func sameTally(a, b inspection.LedgerTally) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(y)) }
	ar, br := a.Random, b.Random
	a.Random, b.Random = inspection.RandomTally{}, inspection.RandomTally{}
	return a == b && ar.Results == br.Results && ar.Fails == br.Fails &&
		near(ar.W, br.W) && near(ar.WY, br.WY) && near(ar.V, br.V) && near(ar.VY, br.VY)
}

// TestLedgerFollowsResultsCorrectionsAndOverrides: a result counts once,
// a correction moves the lot between pass and fail (the old outcome out,
// the new one in), an override that cancels an inspection takes it off
// the count and one that orders it puts it back; the ledger is read by
// policy staff, customs and auditors only, and an unknown version is not
// found, naming the field.
func TestLedgerFollowsResultsCorrectionsAndOverrides(t *testing.T) {
	r := newWriteRig(t)
	ctx := context.Background()
	sys, nsw, customs, agency := access.SystemPrincipal(), as("nsw"), as("customs:nguyen.van.a"), as("agency:moit-firi")
	if _, err := r.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.LoadReference(ctx, sys, reference.Data{Agencies: []reference.Agency{{ID: "moit-firi", Name: "FIRI", Ministry: "MOIT"}}}); err != nil {
		t.Fatal(err)
	}
	decide := func(id, product string) inspection.Decision {
		t.Helper()
		res, err := r.svc.Decide(ctx, nsw, declaration.Input{DeclarationID: id, ImporterTaxCode: "0101234567",
			Lines: []declaration.LineInput{normalLine(1, product)}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Decisions[0]
	}
	a, b := decide("LED-1", "Sữa A"), decide("LED-2", "Sữa B")
	version := a.PolicyVersion
	type counts struct{ decided, inspected, results, fails, pending int64 }
	check := func(step string, want counts) {
		t.Helper()
		e, err := r.svc.Effectiveness(ctx, as("policy-author:lan"), version)
		if err != nil {
			t.Fatal(err)
		}
		x := e.Totals
		if got := (counts{x.Decided, x.Inspected, x.ResultsIn, x.Failures, x.Pending}); got != want {
			t.Errorf("%s: %+v, want %+v", step, got, want)
		}
		if x.Explanation == "" || len(e.Rules) == 0 {
			t.Errorf("%s: no explanation or no rule rows: %+v", step, e)
		}
	}
	check("decided", counts{2, 2, 0, 0, 2})
	now := r.clock.Now().Format(time.RFC3339)
	if _, err := r.svc.RecordResult(ctx, agency, a.AssignmentID, inspection.ResultInput{Outcome: "pass", InspectedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.RecordResult(ctx, agency, a.AssignmentID, inspection.ResultInput{Outcome: "pass", InspectedAt: now}); err != nil {
		t.Fatal(err) // the same result again: counted once
	}
	check("a pass", counts{2, 2, 1, 0, 1})
	correct := func(outcome string) {
		t.Helper()
		in := inspection.CorrectionInput{Outcome: outcome, Reason: "lab report misread to " + outcome}
		if outcome == "fail" {
			in.Findings = []inspection.Finding{{Code: "MICRO", Text: "above limit"}}
		}
		if _, _, err := r.svc.CorrectResult(ctx, agency, a.AssignmentID, in); err != nil {
			t.Fatal(err)
		}
	}
	correct("fail")
	check("corrected to a fail", counts{2, 2, 1, 1, 1})
	correct("pass")
	check("corrected back to a pass", counts{2, 2, 1, 0, 1})

	no, yes := false, true
	if _, err := r.svc.Override(ctx, customs, b.ID, inspection.OverrideInput{ReasonCode: "duplicate_declaration", ReasonText: "declared twice", Inspect: &no}); err != nil {
		t.Fatal(err)
	}
	check("an inspection cancelled", counts{2, 1, 1, 0, 0})
	if _, err := r.svc.Override(ctx, customs, b.ID, inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "tip-off", Inspect: &yes}); err != nil {
		t.Fatal(err)
	}
	check("ordered again", counts{2, 2, 1, 0, 1})

	for _, p := range []string{"customs:x", "policy-approver:y", "auditor:z"} {
		if _, err := r.svc.Effectiveness(ctx, as(p), version); err != nil {
			t.Errorf("%s reads the ledger: %v", p, err)
		}
	}
	for _, p := range []string{"nsw", "agency:moit-firi"} {
		if _, err := r.svc.Effectiveness(ctx, as(p), version); fault.CodeOf(err) != fault.Forbidden {
			t.Errorf("%s reads the ledger: %v, want forbidden", p, err)
		}
	}
	_, err := r.svc.Effectiveness(ctx, as("auditor:z"), "no-such-version")
	var fe *fault.Error
	if fault.CodeOf(err) != fault.NotFound || !errors.As(err, &fe) || fe.Field != "version" {
		t.Errorf("an unknown version: %v, want not found naming the field version", err)
	}
}
