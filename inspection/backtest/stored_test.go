package backtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/store"
)

// TestActiveAgainstItselfReproducesTheStore is acceptance 1 of issue #20:
// a history decided by the real service (badger, the service's own quota)
// and read back from the store in commit order is replayed by the active
// version exactly: every decision's mode, inspection, random check and
// draw.
func TestActiveAgainstItselfReproducesTheStore(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(store.Options{InMemory: true, Small: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := variant(t, "2026.1-default", nil)
	secret := fixtures.SeedSecret(7)
	newService := func(c calendar.Clock) (*inspection.Service, error) {
		return inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: c, QuotaKeys: secret})
	}
	end := time.Date(2026, 12, 20, 0, 0, 0, 0, calendar.Vietnam())
	loaded, err := fixtures.LoadHistory(ctx, db, newService, fixtures.Config{Seed: 7, Lots: 3000, Years: 1, End: end, Policy: p,
		Scale: 1, NewSampler: func() fixtures.Sampler { return fixtures.QuotaSampler(p, secret) }})
	if err != nil {
		t.Fatal(err)
	}
	if r := loaded.Replay; r.ModeMismatches != 0 {
		t.Fatalf("the service decided %d lots unlike the generator", r.ModeMismatches)
	}

	rep, err := backtest.Run(ctx, backtest.Config{Active: p, Candidate: p, Keys: quota.MasterSecret(secret)}, backtest.Stored(ctx, db))
	if err != nil {
		t.Fatal(err)
	}
	x := rep.AgainstHistory
	t.Logf("%d lots, %d results, %d alerts read back; %d compared, %d mismatches; %d random checks",
		rep.Lots, rep.Results, rep.Alerts, x.Compared, x.Mismatches, rep.Active.RandomChecks)
	if rep.Lots != int64(loaded.Summary.Lots) || rep.Results != int64(loaded.Summary.Results) || rep.Alerts != int64(loaded.Summary.Alerts) {
		t.Fatalf("read back %d lots, %d results, %d alerts of %d, %d, %d", rep.Lots, rep.Results, rep.Alerts,
			loaded.Summary.Lots, loaded.Summary.Results, loaded.Summary.Alerts)
	}
	if x.Compared != rep.Lots || x.Mismatches != 0 {
		t.Fatalf("%d of %d stored decisions not reproduced; first: %+v", x.Mismatches, x.Compared, x.Examples)
	}
	if rep.Active.RandomChecks == 0 || rep.Changed != 0 || rep.LateEvents != 0 {
		t.Fatalf("random checks %d, changed %d, late events %d", rep.Active.RandomChecks, rep.Changed, rep.LateEvents)
	}
}
