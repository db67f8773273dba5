package main

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/quota"
)

// cronLogger sends robfig/cron's own messages to zerolog.
type cronLogger struct{ log zerolog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug().Fields(kv).Msg("cron: " + msg) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error().Err(err).Fields(kv).Msg("cron: " + msg)
}

// jobFunc is one run of a job: a one-line summary of what it did, or why
// it failed.
type jobFunc func(ctx context.Context) (summary string, err error)

// job is a registered job and how its runs went.
type job struct {
	name, spec string
	stuckAfter time.Duration
	fn         jobFunc
	// running is the job's one slot: a run takes it with a compare and
	// swap, so two ticks, or a tick and a manual run, never run the job
	// twice at once; the loser is counted as skipped.
	running atomic.Bool

	mu sync.Mutex // guards st and since
	st api.JobStatus
	// since is the start of the run in progress (zero when none).
	since time.Time
}

// registry holds the periodic jobs. Every run, scheduled or by hand, goes
// through exec: it never overlaps another run of the same job, a panic
// becomes a recorded failure (the stack logged), and its outcome, time
// and duration are recorded for GET /v1/jobs and /readyz.
type registry struct {
	ctx  context.Context
	log  zerolog.Logger
	now  func() time.Time
	wg   sync.WaitGroup // runs in progress
	jobs map[string]*job
}

func newRegistry(ctx context.Context, log zerolog.Logger) *registry {
	return &registry{ctx: ctx, log: log, now: time.Now, jobs: map[string]*job{}}
}

// Add registers a job under name, run on the cron spec; a run longer than
// stuckAfter makes the service not ready. Register before Schedule.
func (r *registry) Add(name, spec string, stuckAfter time.Duration, fn jobFunc) {
	if _, dup := r.jobs[name]; dup {
		panic("jobs: " + name + " registered twice")
	}
	r.jobs[name] = &job{name: name, spec: spec, stuckAfter: stuckAfter, fn: fn,
		st: api.JobStatus{Name: name, Schedule: spec, StuckAfterMS: stuckAfter.Milliseconds()}}
}

// Schedule adds every job to c.
func (r *registry) Schedule(c *cron.Cron) error {
	for _, j := range r.jobs {
		if _, err := c.AddFunc(j.spec, func() { _ = r.Run(j.name) }); err != nil {
			return fmt.Errorf("schedule job %s (%q): %w", j.name, j.spec, err)
		}
	}
	return nil
}

// take claims the job's slot, or counts a skip.
func (r *registry) take(name string) (*job, error) {
	j, ok := r.jobs[name]
	if !ok {
		return nil, api.ErrJobUnknown
	}
	if !j.running.CompareAndSwap(false, true) {
		j.mu.Lock()
		j.st.Skipped++
		since := j.since
		j.mu.Unlock()
		r.log.Warn().Str("job", name).Time("running_since", since).Msg("job skipped: the previous run is still going")
		return nil, api.ErrJobBusy
	}
	r.wg.Add(1)
	return j, nil
}

// Run runs the job now and waits for it: the run's error, or ErrJobBusy
// when a run is already in progress (nothing runs then).
func (r *registry) Run(name string) error {
	j, err := r.take(name)
	if err != nil {
		return err
	}
	return r.exec(j)
}

// Start is Run in the background (POST /v1/jobs/{name}/run): it fails
// only when the job is unknown or busy.
func (r *registry) Start(name string) error {
	j, err := r.take(name)
	if err != nil {
		return err
	}
	go func() { _ = r.exec(j) }()
	return nil
}

// exec runs a job whose slot take claimed, and releases it.
func (r *registry) exec(j *job) (err error) {
	defer r.wg.Done()
	defer j.running.Store(false)
	start := r.now()
	j.mu.Lock()
	j.since = start
	j.st.LastStart = &start
	j.mu.Unlock()
	var summary string
	func() {
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("panic: %v", v)
				r.log.Error().Str("job", j.name).Str("stack", string(debug.Stack())).Msg("job panicked")
			}
		}()
		summary, err = j.fn(r.ctx)
	}()
	end := r.now()
	took := end.Sub(start)
	j.mu.Lock()
	j.since = time.Time{}
	j.st.Runs++
	j.st.LastTookMS = took.Milliseconds()
	j.st.LastSummary = summary
	if err != nil {
		j.st.Failures++
		j.st.LastFailure, j.st.LastError = &end, err.Error()
	} else {
		j.st.LastSuccess = &end
	}
	j.mu.Unlock()
	if err != nil {
		r.log.Error().Err(err).Str("job", j.name).Int64("took_ms", took.Milliseconds()).Msg("job failed")
		return err
	}
	r.log.Info().Str("job", j.name).Str("summary", summary).Int64("took_ms", took.Milliseconds()).Msg("job done")
	return nil
}

// List is every job's status, by name.
func (r *registry) List() []api.JobStatus {
	out := make([]api.JobStatus, 0, len(r.jobs))
	for _, j := range r.jobs {
		j.mu.Lock()
		st := j.st
		if !j.since.IsZero() {
			since := j.since
			st.Running, st.RunningSince = true, &since
		}
		j.mu.Unlock()
		out = append(out, st)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// Stuck names the jobs whose run in progress has lasted longer than their
// threshold; nil when none has.
func (r *registry) Stuck() error {
	now := r.now()
	var stuck []string
	for _, st := range r.List() {
		if st.Running && now.Sub(*st.RunningSince) > time.Duration(st.StuckAfterMS)*time.Millisecond {
			stuck = append(stuck, fmt.Sprintf("%s (running since %s)", st.Name, st.RunningSince.Format(time.RFC3339)))
		}
	}
	if len(stuck) > 0 {
		return errors.New("jobs stuck: " + strings.Join(stuck, ", "))
	}
	return nil
}

// Wait waits for the runs in progress.
func (r *registry) Wait() { r.wg.Wait() }

// newJobs registers ktcn's periodic jobs (in Vietnam's time, so daily
// jobs run at local hours). Webhook delivery runs on its own, woken by
// commits (feed.go).
func (a *app) newJobs(ctx context.Context) *registry {
	r := newRegistry(ctx, a.log)
	r.Add("value-log-gc", "@every 10m", 30*time.Minute, func(ctx context.Context) (string, error) {
		n, err := a.store.CollectGarbage(ctx)
		return fmt.Sprintf("%d value log files rewritten", n), err
	})
	// Rescoring at 02:00: decay every subject's counts to now and refit
	// the groups' priors, so scores age even without new results.
	r.Add("rescoring", "0 2 * * *", 2*time.Hour, func(ctx context.Context) (string, error) {
		groups, err := a.svc.Rescore(ctx, access.SystemPrincipal())
		return fmt.Sprintf("%d groups rescored", groups), err
	})
	// Escalation: each inspection past its deadline is escalated once
	// (the record says so; a run after a restart, or two runs, escalate
	// nothing twice).
	r.Add("escalation", "@every 5m", 30*time.Minute, func(ctx context.Context) (string, error) {
		n, err := a.svc.EscalateOverdue(ctx, access.SystemPrincipal())
		return fmt.Sprintf("%d overdue inspections escalated", n), err
	})
	// Quota rollover, just after midnight: see quotaRollover.
	r.Add("quota-rollover", "5 0 * * *", 30*time.Minute, func(ctx context.Context) (string, error) {
		return a.quotaRollover(ctx, time.Now())
	})
	// Outbox housekeeping: events older than the retention that every
	// enabled webhook has settled are removed; a pull behind them gets
	// 410 and resyncs.
	r.Add("outbox-compaction", "@every 1h", time.Hour, func(ctx context.Context) (string, error) {
		n, err := a.feed.CompactOutbox(ctx)
		return fmt.Sprintf("%d events removed", n), err
	})
	// A backup at 03:00 into the backup directory, which keeps the newest
	// KTCN_BACKUP_KEEP (backup.go).
	if a.backups != nil {
		r.Add("backup", "0 3 * * *", 2*time.Hour, func(ctx context.Context) (string, error) {
			info, err := a.backupNow(ctx)
			return fmt.Sprintf("%s, %d bytes, sha256 %.12s…", info.File, info.Size, info.SHA256), err
		})
	}
	return r
}

// quotaRollover turns the quota's year: it opens this year's period, so
// the year's key commitment is on record from its first day rather than
// from its first reduced lot, and reveals each closed period's key once the
// policy in force's reveal_after_days have passed. Without that setting a
// key waits for an auditor (`ktcn quota reveal`), and the job warns of
// closed periods still unrevealed.
func (a *app) quotaRollover(ctx context.Context, now time.Time) (string, error) {
	sys := access.SystemPrincipal()
	current := quota.PeriodOf(now)
	opened, err := a.svc.OpenQuotaPeriod(ctx, sys, current)
	if err != nil {
		return "", fmt.Errorf("open period %s: %w", current, err)
	}
	pol, err := a.svc.PolicyInForce(ctx)
	if err != nil {
		return "", err
	}
	periods, err := a.svc.QuotaPeriods(ctx, sys)
	if err != nil {
		return "", err
	}
	var revealed, waiting []string
	for _, p := range periods {
		end, err := quota.PeriodEnd(p.Period)
		if err != nil {
			return "", err
		}
		if p.RevealedKey != "" || now.Before(end) {
			continue
		}
		due, err := pol.Reduced.Sampling.RevealDue(p.Period, now)
		if err != nil {
			return "", err
		}
		if !due {
			waiting = append(waiting, p.Period)
			continue
		}
		if _, err := a.svc.RevealQuotaKey(ctx, sys, p.Period); err != nil {
			return "", fmt.Errorf("reveal period %s: %w", p.Period, err)
		}
		revealed = append(revealed, p.Period)
	}
	if len(waiting) > 0 {
		a.log.Warn().Strs("periods", waiting).Msg("closed quota periods with unrevealed keys: an auditor runs ktcn quota reveal --period P (or the policy sets reduced.sampling.reveal_after_days)")
	}
	state := "open"
	if opened {
		state = "opened"
	}
	return fmt.Sprintf("period %s %s; %d closed periods revealed %v, %d waiting %v", current, state, len(revealed), revealed, len(waiting), waiting), nil
}

// startJobs schedules the jobs on cron and returns a stop function that
// waits for running jobs (scheduled or started by hand).
func (a *app) startJobs(r *registry) (stop func(), err error) {
	cl := cronLogger{a.log}
	// The registry skips overlapping runs and recovers panics itself;
	// cron.Recover only guards the scheduling glue.
	c := cron.New(cron.WithLocation(calendar.Vietnam()), cron.WithLogger(cl), cron.WithChain(cron.Recover(cl)))
	if err := r.Schedule(c); err != nil {
		return nil, err
	}
	c.Start()
	return func() { <-c.Stop().Done(); r.Wait() }, nil
}

// outboxStuckAfter is how old the oldest event an enabled webhook has not
// settled may get before the service reports itself not ready: delivery
// retries for a day (the default schedule), so an hour behind means a
// receiver, or delivery itself, needs someone.
const outboxStuckAfter = time.Hour

// ready is /readyz's check: the store reads and writes (store.Ping), no
// job has run past its threshold, and no enabled webhook's delivery lags
// more than outboxStuckAfter. The error says which failed.
func (a *app) ready(jobs *registry) api.Readiness {
	return func(ctx context.Context) error {
		if err := a.store.Ping(ctx); err != nil {
			return err
		}
		if err := jobs.Stuck(); err != nil {
			return err
		}
		hooks, err := a.feed.Webhooks(ctx, access.SystemPrincipal())
		if err != nil {
			return fmt.Errorf("outbox: delivery status not readable: %w", err)
		}
		var stuck []string
		for _, w := range hooks {
			if w.Status == "enabled" && w.Delivery != nil && w.Delivery.LagEvents > 0 &&
				time.Duration(w.Delivery.LagSeconds*float64(time.Second)) > outboxStuckAfter {
				stuck = append(stuck, fmt.Sprintf("webhook %s %.0fs behind (%d events)", w.ID, w.Delivery.LagSeconds, w.Delivery.LagEvents))
			}
		}
		if len(stuck) > 0 {
			return errors.New("outbox stuck: " + strings.Join(stuck, ", "))
		}
		return nil
	}
}
