package main

import (
	"context"

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

// startJobs schedules the periodic jobs (in Vietnam's time, so daily jobs
// run at local hours) and returns a stop function that waits for running
// jobs. Today: value-log GC, rescoring, escalation of overdue inspections
// and outbox compaction; quota rollover joins them when it lands (webhook delivery
// runs on its own, woken by commits: feed.go).
func (a *app) startJobs(ctx context.Context) (stop func()) {
	cl := cronLogger{a.log}
	c := cron.New(cron.WithLocation(calendar.Vietnam()), cron.WithLogger(cl),
		cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl)))
	_, err := c.AddFunc("@every 10m", func() {
		n, err := a.store.CollectGarbage(ctx)
		if err != nil {
			a.log.Error().Err(err).Msg("value log GC")
			return
		}
		a.log.Debug().Int("rewritten", n).Msg("value log GC")
	})
	if err != nil { // a constant spec: only a programming error gets here
		a.log.Error().Err(err).Msg("schedule value log GC")
	}
	// Rescoring at 02:00 Vietnam time: decay every subject's counts to now
	// and refit the groups' priors, so scores age even without new results.
	_, err = c.AddFunc("0 2 * * *", func() {
		groups, err := a.svc.Rescore(ctx, access.SystemPrincipal())
		if err != nil {
			a.log.Error().Err(err).Msg("rescoring")
			return
		}
		a.log.Info().Int("groups", groups).Msg("rescored")
	})
	if err != nil {
		a.log.Error().Err(err).Msg("schedule rescoring")
	}
	// Escalation, every 5 minutes: each inspection past its deadline is
	// escalated once (the record says so; a run after a restart, or two
	// runs, escalate nothing twice).
	_, err = c.AddFunc("@every 5m", func() {
		n, err := a.svc.EscalateOverdue(ctx, access.SystemPrincipal())
		if err != nil {
			a.log.Error().Err(err).Msg("escalation")
			return
		}
		if n > 0 {
			a.log.Info().Int("escalated", n).Msg("overdue inspections escalated")
		}
	})
	if err != nil {
		a.log.Error().Err(err).Msg("schedule escalation")
	}
	// Outbox housekeeping, hourly: events older than the retention that
	// every enabled webhook has settled are removed; a pull behind them
	// gets 410 and resyncs.
	_, err = c.AddFunc("@every 1h", func() {
		n, err := a.feed.CompactOutbox(ctx)
		if err != nil {
			a.log.Error().Err(err).Msg("outbox compaction")
			return
		}
		a.log.Debug().Int("removed", n).Msg("outbox compaction")
	})
	if err != nil {
		a.log.Error().Err(err).Msg("schedule outbox compaction")
	}
	c.Start()
	return func() { <-c.Stop().Done() }
}
