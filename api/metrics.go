package api

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
)

// Metrics: GET /metrics serves Prometheus' text format from the registry
// the wiring passes in (Config.Registry; never the global default one).
//
// Two kinds of series. Counted as the API answers: requests by route
// template, method and status, with latency histograms, and decisions by
// mode and inspection. Computed at scrape time, through the domain's read
// use cases as the system principal (this package never reads the store):
// quota use per period and scope, each agency's backlog, and each webhook
// subscription's lag and failures, and the periodic jobs' runs from the
// status the job registry keeps (Config.Jobs: the list GET /v1/jobs
// serves, so the two cannot disagree). The store reports its own
// (committer, badger sizes: store/metrics.go).
//
// Labels are bounded: a route template (never the URL), a method, a
// status, a mode, an agency, a quota period and scope, a subscription ID,
// a job name. Nothing is labelled by importer, goods or declaration.

// scrapeTimeout bounds the reads one scrape makes.
const scrapeTimeout = 10 * time.Second

type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	handler   http.Handler
}

// newMetrics registers the API's series and the domain's scrape-time
// collectors on reg.
func newMetrics(reg *prometheus.Registry, svc *inspection.Service, fd *inspection.Feed, jobs Jobs, clock calendar.Clock, log zerolog.Logger) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktcn_http_requests_total",
			Help: "HTTP requests answered, by route template, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ktcn_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route template, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktcn_decisions_total",
			Help: "Lines decided (a replayed declaration is not counted again), by mode and whether the lot is inspected.",
		}, []string{"mode", "inspect"}),
	}
	// Every mode × inspection series exists from the start at 0, so a
	// rate() or an alert on one finds it before its first lot (Prometheus
	// cannot tell a missing series from a silent one).
	for _, mode := range []inspection.Mode{inspection.ModeStrict, inspection.ModeNormal, inspection.ModeReduced, inspection.ModeExempt} {
		for _, inspect := range []bool{true, false} {
			m.decisions.WithLabelValues(string(mode), strconv.FormatBool(inspect))
		}
	}
	reg.MustRegister(m.requests, m.latency, m.decisions,
		&domainCollector{svc: svc, feed: fd, clock: clock, log: log})
	if jobs != nil {
		reg.MustRegister(jobsCollector{jobs})
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A failed read costs its own series, not the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      promLogger{log},
	})
	return m
}

type promLogger struct{ log zerolog.Logger }

func (l promLogger) Println(v ...any) { l.log.Error().Msgf("metrics: %v", v) }

// instrument counts every request, refusals included. It counts as the
// status line is written (Response.Before), before the client can read
// the answer, so a client that reads an answer and then scrapes finds its
// request counted; the latency is the time to that status line. An answer
// that writes nothing is counted when the handler returns.
func (m *metrics) instrument(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		counted := false
		count := func() {
			if counted {
				return
			}
			counted = true
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			labels := []string{route, methodLabel(c.Request().Method), strconv.Itoa(c.Response().Status)}
			m.requests.WithLabelValues(labels...).Inc()
			m.latency.WithLabelValues(labels...).Observe(time.Since(start).Seconds())
		}
		c.Response().Before(count)
		if err := next(c); err != nil {
			c.Error(err)
		}
		count()
		return nil
	}
}

// methodLabel keeps a client's invented methods out of the label values.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "OTHER"
}

// decided counts a declaration's lines as answered.
func (m *metrics) decided(res inspection.DecideResult) {
	if res.Replayed {
		return
	}
	for _, d := range res.Decisions {
		m.decisions.WithLabelValues(string(d.Mode), strconv.FormatBool(d.Inspect)).Inc()
	}
}

func (m *metrics) serve(c echo.Context) error {
	m.handler.ServeHTTP(c.Response(), c.Request())
	return nil
}

// fromLoopback reports whether the request's peer (the connection, never
// a forwarding header: IPExtractor is direct) is on this machine.
func fromLoopback(c echo.Context) bool {
	ip := net.ParseIP(c.RealIP())
	return ip != nil && ip.IsLoopback()
}

var (
	quotaLabels     = []string{"period", "scope"}
	descQuotaShare  = prometheus.NewDesc("ktcn_quota_share_of_cap", "A scope's inspected share of its eligible reduced-mode lots over the cap (1 is the whole allowance), by period and scope.", quotaLabels, nil)
	descQuotaElig   = prometheus.NewDesc("ktcn_quota_eligible_lots", "Reduced-mode lots eligible for sampling, by period and scope.", quotaLabels, nil)
	descQuotaSel    = prometheus.NewDesc("ktcn_quota_selected_lots", "Reduced-mode lots selected for inspection, by period and scope.", quotaLabels, nil)
	descQuotaAllow  = prometheus.NewDesc("ktcn_quota_allowance_lots", "Checks the cap allows, by period and scope.", quotaLabels, nil)
	descQuotaCap    = prometheus.NewDesc("ktcn_quota_cap_ratio", "The sampling cap of the policy in force, as a ratio, by period.", []string{"period"}, nil)
	descBacklog     = prometheus.NewDesc("ktcn_assignments_backlog", "Inspections still to do, by agency.", []string{"agency"}, nil)
	descOverdue     = prometheus.NewDesc("ktcn_assignments_overdue", "Inspections past their deadline, by agency.", []string{"agency"}, nil)
	descDueToday    = prometheus.NewDesc("ktcn_assignments_due_today", "Inspections due today (Vietnam), by agency.", []string{"agency"}, nil)
	descHookLag     = prometheus.NewDesc("ktcn_webhook_lag_events", "Outbox events a subscription wants and has not settled, by subscription.", []string{"subscription"}, nil)
	descHookLagSec  = prometheus.NewDesc("ktcn_webhook_lag_seconds", "Age of the oldest event a subscription has not settled, by subscription.", []string{"subscription"}, nil)
	descHookFails   = prometheus.NewDesc("ktcn_webhook_failures_total", "Failed delivery attempts, by subscription.", []string{"subscription"}, nil)
	descHookDeliv   = prometheus.NewDesc("ktcn_webhook_delivered_total", "Events delivered, by subscription.", []string{"subscription"}, nil)
	descHookDead    = prometheus.NewDesc("ktcn_webhook_dead_letters", "Events given up on, by subscription.", []string{"subscription"}, nil)
	descHookEnabled = prometheus.NewDesc("ktcn_webhook_enabled", "1 while a subscription is enabled, 0 once disabled.", []string{"subscription"}, nil)
)

// domainCollector reads the domain at scrape time as the system principal.
type domainCollector struct {
	svc   *inspection.Service
	feed  *inspection.Feed
	clock calendar.Clock
	log   zerolog.Logger
}

func (d *domainCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{descQuotaShare, descQuotaElig, descQuotaSel, descQuotaAllow, descQuotaCap,
		descBacklog, descOverdue, descDueToday, descHookLag, descHookLagSec, descHookFails, descHookDeliv, descHookDead, descHookEnabled} {
		ch <- desc
	}
}

func (d *domainCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	sys := access.SystemPrincipal()
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}

	// Quota use of every period that has drawn (one a year).
	if periods, err := d.svc.QuotaPeriods(ctx, sys); err != nil {
		ch <- prometheus.NewInvalidMetric(descQuotaShare, err)
	} else {
		for _, p := range periods {
			u, err := d.svc.QuotaUsage(ctx, sys, p.Period)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(descQuotaShare, err)
				continue
			}
			gauge(descQuotaCap, u.Cap, u.Period)
			for _, s := range u.Scopes {
				gauge(descQuotaShare, s.ShareOfCap, u.Period, s.Scope)
				gauge(descQuotaElig, float64(s.Eligible), u.Period, s.Scope)
				gauge(descQuotaSel, float64(s.Selected), u.Period, s.Scope)
				gauge(descQuotaAllow, float64(s.Allowance), u.Period, s.Scope)
			}
		}
	}

	if work, err := d.svc.Workload(ctx, sys, d.clock.Now()); err != nil {
		ch <- prometheus.NewInvalidMetric(descBacklog, err)
	} else {
		for _, w := range work {
			gauge(descBacklog, float64(w.Backlog), w.Agency)
			gauge(descOverdue, float64(w.Overdue), w.Agency)
			gauge(descDueToday, float64(w.DueToday), w.Agency)
		}
	}

	if hooks, err := d.feed.Webhooks(ctx, sys); err != nil {
		ch <- prometheus.NewInvalidMetric(descHookLag, err)
	} else {
		for _, h := range hooks {
			enabled := 0.0
			if h.Status == "enabled" {
				enabled = 1
			}
			gauge(descHookEnabled, enabled, h.ID)
			if st := h.Delivery; st != nil {
				gauge(descHookLag, float64(st.LagEvents), h.ID)
				gauge(descHookLagSec, st.LagSeconds, h.ID)
				counter(descHookFails, float64(st.Failures), h.ID)
				counter(descHookDeliv, float64(st.Delivered), h.ID)
				gauge(descHookDead, float64(st.DeadLetters), h.ID)
			}
		}
	}
}

var (
	jobLabels       = []string{"job"}
	descJobRuns     = prometheus.NewDesc("ktcn_job_runs_total", "Finished runs of a periodic job, scheduled or by hand, by job.", jobLabels, nil)
	descJobFailures = prometheus.NewDesc("ktcn_job_failures_total", "Runs of a periodic job that failed (a panic included), by job.", jobLabels, nil)
	descJobSkips    = prometheus.NewDesc("ktcn_job_skips_total", "Ticks or manual runs of a job skipped because a run was in progress, by job.", jobLabels, nil)
	descJobSuccess  = prometheus.NewDesc("ktcn_job_last_success_timestamp_seconds", "Unix time a job's last successful run ended (0: none since start), by job.", jobLabels, nil)
	descJobTook     = prometheus.NewDesc("ktcn_job_last_duration_seconds", "How long a job's last finished run took, by job.", jobLabels, nil)
	descJobRunning  = prometheus.NewDesc("ktcn_job_running", "1 while a run of the job is in progress, by job.", jobLabels, nil)
)

// jobsCollector reports the periodic jobs from the status their registry
// keeps, read at each scrape: the registry counts every run, whoever
// started it, so nothing here wraps a job. Every registered job has its
// series from the start (zero), so an alert can tell "never ran" from
// "absent".
type jobsCollector struct{ jobs Jobs }

func (jobsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJobRuns, descJobFailures, descJobSkips, descJobSuccess, descJobTook, descJobRunning} {
		ch <- d
	}
}

func (c jobsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.jobs.List() {
		counter := func(d *prometheus.Desc, v int64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), st.Name)
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, st.Name)
		}
		counter(descJobRuns, st.Runs)
		counter(descJobFailures, st.Failures)
		counter(descJobSkips, st.Skipped)
		success := 0.0
		if st.LastSuccess != nil {
			success = float64(st.LastSuccess.UnixNano()) / 1e9
		}
		gauge(descJobSuccess, success)
		gauge(descJobTook, float64(st.LastTookMS)/1000)
		running := 0.0
		if st.Running {
			running = 1
		}
		gauge(descJobRunning, running)
	}
}
