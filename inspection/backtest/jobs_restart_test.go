package backtest_test

import (
	"context"
	"errors"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/store"
)

var author = access.Principal{Name: "author", Role: access.RolePolicyAuthor}

// jobWorld is a badger store on disk with a service over it: what a
// restart closes and opens again.
type jobWorld struct {
	db  *store.DB
	svc *inspection.Service
}

func openJobWorld(t *testing.T, dir string) jobWorld {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: variant(t, "2026.1-default", nil), Clock: calendar.SystemClock{},
		QuotaKeys: fixtures.SeedSecret(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return jobWorld{db: db, svc: svc}
}

func (w jobWorld) jobs(t *testing.T, cfg backtest.JobsConfig) *backtest.Jobs {
	t.Helper()
	cfg.Service, cfg.Store, cfg.Jobs, cfg.Keys, cfg.Generate = w.svc, w.db, w.db, fixtures.SeedSecret(1), stallingSource
	j, err := backtest.NewJobs(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// stallSeed names a generated history that, once replayed, stalls until
// its job is stopped: a job caught mid-run whatever the machine's speed.
const stallSeed = 404

func stallingSource(ctx context.Context, active *policy.Policy, g backtest.Generated) (iter.Seq2[backtest.Item, error], quota.Keys, time.Duration, error) {
	src, keys, lag, err := generatedSource(ctx, active, g)
	if err != nil || g.Seed != stallSeed {
		return src, keys, lag, err
	}
	return func(yield func(backtest.Item, error) bool) {
		for it, err := range src {
			if !yield(it, err) {
				return
			}
		}
		<-ctx.Done()
		yield(backtest.Item{}, ctx.Err())
	}, keys, lag, nil
}

// stricterVersion stores the stricter variant as a draft to backtest.
func stricterVersion(t *testing.T, svc *inspection.Service) string {
	t.Helper()
	doc, err := variant(t, "2026.2-stricter", stricter).Document()
	if err != nil {
		t.Fatal(err)
	}
	v, err := svc.CreatePolicy(context.Background(), author, inspection.PolicyDraftInput{Version: "2026.2-stricter", Document: doc})
	if err != nil {
		t.Fatal(err)
	}
	return v.Version
}

func waitJob(t *testing.T, jobs *backtest.Jobs, id string, until func(backtest.Job) bool) backtest.Job {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; {
		j, err := jobs.Get(context.Background(), author, id)
		if err != nil {
			t.Fatal(err)
		}
		if until(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited too long: %+v", j)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func allChanges(t *testing.T, jobs *backtest.Jobs, id string) []backtest.Change {
	t.Helper()
	var out []backtest.Change
	for after := 0; ; {
		page, next, err := jobs.Changes(context.Background(), author, id, after, 333)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if next == 0 {
			return out
		}
		after = next
	}
}

// Acceptance 5 of issue #20 across a restart: a job running when its
// process stops reads afterwards as failed, interrupted by the restart,
// with the progress it had saved and no report, and its changed lots are
// not listed (a partial list is never shown as complete); a done job, its
// report and every changed lot survive the restart as they were.
func TestJobsAcrossARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := openJobWorld(t, dir)
	version := stricterVersion(t, w.svc)
	jobs := w.jobs(t, backtest.JobsConfig{ProgressEvery: time.Millisecond})

	j, err := jobs.Start(ctx, author, version, backtest.Request{Generated: &backtest.Generated{Seed: 3, Lots: 20_000, Years: 1}})
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, jobs, j.ID, func(j backtest.Job) bool { return j.State != backtest.JobRunning })
	if done.State != backtest.JobDone || done.Report == nil || done.Changes == 0 || int64(done.Changes) != min(done.Report.Changed, backtest.MaxChangesPerJob) {
		t.Fatalf("done: %+v", done)
	}
	before := allChanges(t, jobs, j.ID)
	if len(before) != done.Changes {
		t.Fatalf("paged %d changed lots of %d", len(before), done.Changes)
	}

	t.Logf("done: %d lots, %d changed", done.Report.Lots, done.Changes)
	long, err := jobs.Start(ctx, author, version, backtest.Request{Generated: &backtest.Generated{Seed: stallSeed, Lots: 20_000, Years: 1}})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the store holds some progress and some changed lots of
	// the run, so the restart has a partial job to deal with.
	var saved backtest.Job
	for deadline := time.Now().Add(60 * time.Second); ; {
		if saved, err = w.db.BacktestJob(ctx, long.ID); err != nil {
			t.Fatal(err)
		}
		partial, err := w.db.BacktestChanges(ctx, long.ID, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		// Changed lots are written a thousand at a time.
		if saved.Progress.Lots > 0 && (len(partial) > 0 || done.Changes < 2000) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress saved: %+v", saved)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if saved.State != backtest.JobRunning || saved.Report != nil {
		t.Fatalf("saved while running: %+v", saved)
	}

	// The restart: the jobs stop, the store closes and opens again.
	reached, err := jobs.Get(ctx, author, long.ID)
	if err != nil {
		t.Fatal(err)
	}
	jobs.Close()
	last, err := w.db.BacktestJob(ctx, long.ID)
	if err != nil {
		t.Fatal(err)
	}
	// A graceful stop saves the progress reached: it does not go back.
	if last.State != backtest.JobRunning || last.Progress.Lots < reached.Progress.Lots || last.Progress.Lots < saved.Progress.Lots {
		t.Fatalf("after close: %+v (saved before %+v)", last, saved.Progress)
	}
	if err := w.db.Close(); err != nil {
		t.Fatal(err)
	}
	w = openJobWorld(t, dir)
	defer w.db.Close()
	at := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	jobs = w.jobs(t, backtest.JobsConfig{Clock: calendar.ClockFunc(func() time.Time { return at })})
	defer jobs.Close()

	got, err := jobs.Get(ctx, author, long.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != backtest.JobFailed || got.Error != backtest.Interrupted(at) || got.Report != nil ||
		got.Progress.Lots != last.Progress.Lots || got.FinishedAt == nil || !got.FinishedAt.Equal(at) {
		t.Fatalf("interrupted job after the restart: %+v", got)
	}
	if got.Error != "interrupted by a restart at 2026-12-05T06:00:00Z; start it again" {
		t.Fatalf("error: %q", got.Error)
	}
	if _, _, err := jobs.Changes(ctx, author, long.ID, 0, 10); fault.CodeOf(err) != fault.Conflict {
		t.Fatalf("changes of the interrupted job: %v, want a conflict", err)
	}
	if partial, err := w.db.BacktestChanges(ctx, long.ID, 0, 1); err != nil || len(partial) != 0 {
		t.Fatalf("the interrupted job's partial changes are still stored: %v, %v", partial, err)
	}
	if c, err := jobs.Cancel(ctx, author, long.ID); err != nil || c.State != backtest.JobFailed {
		t.Fatalf("cancelling the interrupted job: %+v, %v", c, err)
	}

	again, err := jobs.Get(ctx, author, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.State != backtest.JobDone || again.Report == nil || again.Report.Changed != done.Report.Changed ||
		again.Changes != done.Changes || again.Progress.Lots != done.Progress.Lots || again.By != "author" {
		t.Fatalf("done job after the restart: %+v", again)
	}
	after := allChanges(t, jobs, j.ID)
	if len(after) != len(before) {
		t.Fatalf("%d changed lots after the restart, %d before", len(after), len(before))
	}
	for i := range after {
		if after[i].DecisionID != before[i].DecisionID || after[i].CandidateMode != before[i].CandidateMode || !after[i].At.Equal(before[i].At) {
			t.Fatalf("changed lot %d: %+v after the restart, %+v before", i, after[i], before[i])
		}
	}
	if _, err := jobs.Get(ctx, author, "bt_0000"); fault.CodeOf(err) != fault.NotFound {
		t.Fatalf("unknown job: %v", err)
	}
}

// Progress never goes backwards, read by several readers at once while
// it is saved every millisecond, through the end of the run (when the job
// moves from memory to the store); the store's copy never goes back
// either.
func TestJobProgressIsMonotoneUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	w := openJobWorld(t, t.TempDir())
	defer w.db.Close()
	jobs := w.jobs(t, backtest.JobsConfig{ProgressEvery: time.Millisecond})
	defer jobs.Close()
	j, err := jobs.Start(ctx, author, "2026.1-default", backtest.Request{Generated: &backtest.Generated{Seed: 5, Lots: 20_000, Years: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := int64(0)
			for {
				var got backtest.Job
				var err error
				if r == 0 {
					got, err = w.db.BacktestJob(ctx, j.ID)
				} else {
					got, err = jobs.Get(ctx, author, j.ID)
				}
				if err != nil {
					errs <- err
					return
				}
				if got.Progress.Lots < last {
					errs <- errors.New("progress went backwards")
					return
				}
				last = got.Progress.Lots
				time.Sleep(100 * time.Microsecond) // leave the run its core
				if got.State == backtest.JobRunning && got.Report != nil {
					errs <- errors.New("a running job shows a report")
					return
				}
				if got.State != backtest.JobRunning {
					if got.State != backtest.JobDone || got.Progress.Lots < 20_000 {
						errs <- errors.New("ended other than done with every lot: " + string(got.State))
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Only the newest Keep finished jobs are kept; an older one is deleted
// with its changed lots.
func TestJobsKeepTheNewest(t *testing.T) {
	ctx := context.Background()
	w := openJobWorld(t, t.TempDir())
	defer w.db.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := calendar.ClockFunc(func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	})
	jobs := w.jobs(t, backtest.JobsConfig{Keep: 2, Clock: clock})
	defer jobs.Close()
	var ids []string
	for range 3 {
		// The store's own history, empty here: done at once.
		j, err := jobs.Start(ctx, author, "2026.1-default", backtest.Request{})
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, jobs, j.ID, func(j backtest.Job) bool { return j.State == backtest.JobDone })
		if len(ids) == 0 {
			if err := w.db.AppendBacktestChanges(ctx, j.ID, 0, []backtest.Change{{DecisionID: "dec_1"}}); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, j.ID)
	}
	if _, err := jobs.Get(ctx, author, ids[0]); fault.CodeOf(err) != fault.NotFound {
		t.Fatalf("the oldest of 3 jobs, keeping 2: %v", err)
	}
	if left, err := w.db.BacktestChanges(ctx, ids[0], 0, 10); err != nil || len(left) != 0 {
		t.Fatalf("the deleted job's changes: %v, %v", left, err)
	}
	for _, id := range ids[1:] {
		if _, err := jobs.Get(ctx, author, id); err != nil {
			t.Fatalf("job %s: %v", id, err)
		}
	}
}
