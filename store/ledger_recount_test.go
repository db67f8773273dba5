package store_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/store"
)

// A store whose decisions predate the effectiveness ledger gets it
// recounted at start, to what the write path would have kept (the sums
// of the estimate to rounding: they are added in another order); a start
// on a store that has a ledger changes nothing, so nothing counts twice.
func TestLedgerRecountedForAStoreThatPredatesIt(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(store.Options{InMemory: true, Small: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	keys := fixtures.SeedSecret(3)
	newService := func(c calendar.Clock) (*inspection.Service, error) {
		return inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: c, QuotaKeys: keys})
	}
	end := time.Date(2026, 6, 15, 10, 30, 0, 0, calendar.Vietnam())
	rep, err := fixtures.LoadHistory(ctx, db, newService, fixtures.Config{Seed: 3, Lots: 600, Years: 1, End: end, Policy: p,
		NewSampler: func() fixtures.Sampler { return fixtures.QuotaSampler(p, keys) }})
	if err != nil {
		t.Fatal(err)
	}
	tallies := func() []inspection.LedgerTally {
		var ts []inspection.LedgerTally
		if err := db.View(ctx, func(tx inspection.ReadTx) (err error) { ts, err = tx.LedgerTallies(p.Version); return err }); err != nil {
			t.Fatal(err)
		}
		return ts
	}
	start := func() {
		svc, err := newService(fixtures.NewSteppingClock(end))
		if err == nil {
			_, err = svc.Start(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	kept := tallies()
	var decided, results int64
	for _, k := range kept {
		decided, results = decided+k.Decided, results+k.Results
	}
	if decided != int64(rep.Replay.Decisions) || results == 0 {
		t.Fatalf("the write path kept %d lots and %d results, the replay decided %d", decided, results, rep.Replay.Decisions)
	}
	start() // a store with a ledger: nothing recounted
	assertSameTallies(t, tallies(), kept, 0)

	if err := store.DropLedger(db); err != nil {
		t.Fatal(err)
	}
	if got := tallies(); len(got) != 0 {
		t.Fatalf("%d tallies after the drop", len(got))
	}
	start()
	assertSameTallies(t, tallies(), kept, 1e-9)
	t.Logf("%d lots and %d results in %d tallies, recounted", decided, results, len(kept))
}

func assertSameTallies(t *testing.T, got, want []inspection.LedgerTally, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d tallies, want %d", len(got), len(want))
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }
	for i, g := range got {
		w := want[i]
		gr, wr := g.Random, w.Random
		if g.Version != w.Version || g.Rule != w.Rule || g.Decided != w.Decided || g.Inspected != w.Inspected ||
			g.Results != w.Results || g.Fails != w.Fails || g.Reduced != w.Reduced || g.Drawable != w.Drawable ||
			g.Chosen != w.Chosen || gr.Results != wr.Results || gr.Fails != wr.Fails ||
			!near(gr.W, wr.W) || !near(gr.WY, wr.WY) || !near(gr.V, wr.V) || !near(gr.VY, wr.VY) {
			t.Errorf("rule %q: recounted %+v, kept %+v", w.Rule, g, w)
		}
	}
}
