package backtest_test

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/store"
)

func generatedSource(ctx context.Context, active *policy.Policy, g backtest.Generated) (iter.Seq2[backtest.Item, error], quota.Keys, time.Duration, error) {
	keys := fixtures.SeedSecret(g.Seed)
	gen, err := fixtures.NewContext(ctx, fixtures.Config{Seed: g.Seed, Lots: g.Lots, Years: g.Years, Policy: active, Scale: 1,
		NewSampler: func() fixtures.Sampler { return fixtures.QuotaSampler(active, keys) }})
	if err != nil {
		return nil, nil, 0, err
	}
	return gen.BacktestItems(ctx), keys, fixtures.BacktestMaxLag, nil
}

// Acceptance 5 of issue #20, as far as jobs kept in memory go: progress
// never goes backwards, a report appears only when the job is done,
// cancelling stops the work, and only policy staff start one.
func TestJobs(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(store.Options{InMemory: true, Small: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := variant(t, "2026.1-default", nil)
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: calendar.SystemClock{}, QuotaKeys: fixtures.SeedSecret(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	jobs, err := backtest.NewJobs(ctx, backtest.JobsConfig{Service: svc, Store: db, Jobs: db, Keys: fixtures.SeedSecret(1), Generate: generatedSource})
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	author := access.Principal{Name: "author", Role: access.RolePolicyAuthor}
	if _, err := jobs.Start(ctx, access.Principal{Name: "c", Role: access.RoleCustoms}, p.Version, backtest.Request{}); err == nil {
		t.Fatal("customs started a backtest")
	}

	wait := func(id string) backtest.Job {
		t.Helper()
		last := int64(0)
		for deadline := time.Now().Add(30 * time.Second); ; {
			j, err := jobs.Get(ctx, author, id)
			if err != nil {
				t.Fatal(err)
			}
			if j.Progress.Lots < last {
				t.Fatalf("progress went back from %d to %d", last, j.Progress.Lots)
			}
			last = j.Progress.Lots
			if j.State != backtest.JobRunning {
				return j
			}
			if j.Report != nil || time.Now().After(deadline) {
				t.Fatalf("running job: %+v", j)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	j, err := jobs.Start(ctx, author, p.Version, backtest.Request{Generated: &backtest.Generated{Seed: 3, Lots: 20_000, Years: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if done := wait(j.ID); done.State != backtest.JobDone || done.Report == nil || done.Report.Lots != 20_000 ||
		done.Progress.Lots != 20_000 || done.Report.AgainstHistory.Mismatches != 0 {
		t.Fatalf("done: %+v", done)
	}

	j, err = jobs.Start(ctx, author, p.Version, backtest.Request{Generated: &backtest.Generated{Seed: 4, Lots: 1_000_000, Years: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		got, _ := jobs.Get(ctx, author, j.ID)
		if got.Progress.Lots > 0 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if _, err := jobs.Cancel(ctx, author, j.ID); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got := wait(j.ID); got.State != backtest.JobCancelled || got.Report != nil || got.Progress.Lots >= 1_000_000 {
		t.Fatalf("cancelled: %+v", got)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("cancel took %s", time.Since(start))
	}
	if _, _, err := jobs.Changes(ctx, author, j.ID, 0, 10); err == nil {
		t.Fatal("listed the changes of a cancelled job")
	}
}
