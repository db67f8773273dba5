package main

import (
	"errors"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestJobMetrics: each run counts, a failure counts as one, and only a
// success sets the time of the last success.
func TestJobMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newJobMetrics(reg)
	m.declare("escalation")
	if n, _ := testutil.GatherAndCount(reg, "ktcn_job_runs_total", "ktcn_job_failures_total", "ktcn_job_last_success_timestamp_seconds"); n != 3 {
		t.Fatalf("a declared job has %d series, want 3 (zero before its first run)", n)
	}
	_ = m.run("escalation", func() error { return nil })
	if err := m.run("escalation", func() error { return errors.New("boom") }); err == nil {
		t.Fatal("the job's error was lost")
	}
	if got := testutil.ToFloat64(m.runs.WithLabelValues("escalation")); got != 2 {
		t.Errorf("runs %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.failures.WithLabelValues("escalation")); got != 1 {
		t.Errorf("failures %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.lastSuccess.WithLabelValues("escalation")); got <= 0 {
		t.Errorf("last success %v, want a time", got)
	}
}

// scrapeMetrics gets /metrics from the loopback without a key and parses it.
func scrapeMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// checkServedMetrics: the real wiring's registry holds the store's and the
// jobs' series beside the API's, on a reopened data dir (badger measured
// its files at open).
func checkServedMetrics(t *testing.T, base string, a *app) {
	t.Helper()
	fams := scrapeMetrics(t, base)
	for _, name := range []string{"ktcn_badger_lsm_size_bytes", "ktcn_badger_vlog_size_bytes", "ktcn_store_commit_batches_total"} {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Fatalf("%s missing", name)
		}
		m := f.GetMetric()[0]
		if v := m.GetGauge().GetValue() + m.GetCounter().GetValue(); v <= 0 {
			t.Errorf("%s: %v, want > 0", name, v)
		}
	}
	for _, j := range a.jobs() {
		for _, name := range []string{"ktcn_job_runs_total", "ktcn_job_failures_total", "ktcn_job_last_success_timestamp_seconds"} {
			found := false
			for _, m := range fams[name].GetMetric() {
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == "job" && l.GetValue() == j.name
				}
			}
			if !found {
				t.Errorf("%s has no series for job %s", name, j.name)
			}
		}
	}
	for _, name := range []string{"ktcn_http_requests_total", "ktcn_assignments_backlog"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
}
