package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
)

// cronLogger sends robfig/cron's own messages to zerolog.
type cronLogger struct{ log zerolog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug().Fields(kv).Msg("cron: " + msg) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error().Err(err).Fields(kv).Msg("cron: " + msg)
}

// jobMetrics counts each job's runs and failures and keeps the time of its
// last success, labelled by job name (a fixed few).
type jobMetrics struct {
	runs, failures *prometheus.CounterVec
	lastSuccess    *prometheus.GaugeVec
}

func newJobMetrics(reg prometheus.Registerer) *jobMetrics {
	m := &jobMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktcn_job_runs_total",
			Help: "Runs of a periodic job, by job."}, []string{"job"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktcn_job_failures_total",
			Help: "Runs of a periodic job that failed, by job."}, []string{"job"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ktcn_job_last_success_timestamp_seconds",
			Help: "Unix time of a periodic job's last successful run (0: none since start), by job."}, []string{"job"}),
	}
	reg.MustRegister(m.runs, m.failures, m.lastSuccess)
	return m
}

// run runs one job, counting it; the series of every scheduled job exist
// from the start (zero), so an alert can tell "never ran" from "absent".
func (m *jobMetrics) run(name string, fn func() error) error {
	m.runs.WithLabelValues(name).Inc()
	if err := fn(); err != nil {
		m.failures.WithLabelValues(name).Inc()
		return err
	}
	m.lastSuccess.WithLabelValues(name).Set(float64(time.Now().Unix()))
	return nil
}

func (m *jobMetrics) declare(name string) {
	m.runs.WithLabelValues(name)
	m.failures.WithLabelValues(name)
	m.lastSuccess.WithLabelValues(name)
}

// job is one periodic job: its name (the metrics' label), its schedule,
// and its work, which logs its own success and returns its failure.
type job struct {
	name, spec string
	run        func(ctx context.Context) error
}

// jobs are the periodic jobs: value-log GC, rescoring, escalation of
// overdue inspections and outbox compaction; quota rollover joins them
// when it lands (webhook delivery runs on its own, woken by commits:
// feed.go).
func (a *app) jobs() []job {
	return []job{
		{"value_log_gc", "@every 10m", func(ctx context.Context) error {
			n, err := a.store.CollectGarbage(ctx)
			if err == nil {
				a.log.Debug().Int("rewritten", n).Msg("value log GC")
			}
			return err
		}},
		// Rescoring at 02:00 Vietnam time: decay every subject's counts to
		// now and refit the groups' priors, so scores age even without new
		// results.
		{"rescoring", "0 2 * * *", func(ctx context.Context) error {
			groups, err := a.svc.Rescore(ctx, access.SystemPrincipal())
			if err == nil {
				a.log.Info().Int("groups", groups).Msg("rescored")
			}
			return err
		}},
		// Escalation, every 5 minutes: each inspection past its deadline is
		// escalated once (the record says so; a run after a restart, or two
		// runs, escalate nothing twice).
		{"escalation", "@every 5m", func(ctx context.Context) error {
			n, err := a.svc.EscalateOverdue(ctx, access.SystemPrincipal())
			if err == nil && n > 0 {
				a.log.Info().Int("escalated", n).Msg("overdue inspections escalated")
			}
			return err
		}},
		// Outbox housekeeping, hourly: events older than the retention that
		// every enabled webhook has settled are removed; a pull behind them
		// gets 410 and resyncs.
		{"outbox_compaction", "@every 1h", func(ctx context.Context) error {
			n, err := a.feed.CompactOutbox(ctx)
			if err == nil {
				a.log.Debug().Int("removed", n).Msg("outbox compaction")
			}
			return err
		}},
	}
}

// startJobs schedules the periodic jobs (in Vietnam's time, so daily jobs
// run at local hours), counting their runs on reg, and returns a stop
// function that waits for running jobs.
func (a *app) startJobs(ctx context.Context, reg prometheus.Registerer) (stop func()) {
	cl := cronLogger{a.log}
	c := cron.New(cron.WithLocation(calendar.Vietnam()), cron.WithLogger(cl),
		cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl)))
	m := newJobMetrics(reg)
	for _, j := range a.jobs() {
		m.declare(j.name)
		_, err := c.AddFunc(j.spec, func() {
			if err := m.run(j.name, func() error { return j.run(ctx) }); err != nil {
				a.log.Error().Err(err).Str("job", j.name).Msg("job failed")
			}
		})
		if err != nil { // a constant spec: only a programming error gets here
			a.log.Error().Err(err).Str("job", j.name).Msg("schedule job")
		}
	}
	c.Start()
	return func() { <-c.Stop().Done() }
}
