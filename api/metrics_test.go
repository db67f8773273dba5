package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/declaration"
)

// scrape gets /metrics over real HTTP from the loopback, without a key,
// and parses the text format.
func (e *env) scrape() map[string]*dto.MetricFamily {
	e.t.Helper()
	resp, err := e.srv.Client().Get(e.srv.URL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return fams
}

// series are a family's metrics with the given labels (a subset match).
func series(fams map[string]*dto.MetricFamily, name string, labels map[string]string) []*dto.Metric {
	var out []*dto.Metric
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range labels {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

// sum adds the values of a family's metrics with the given labels.
func sum(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	total := 0.0
	for _, m := range series(fams, name, labels) {
		total += value(m)
	}
	return total
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestMetricsAfterARun: a scripted run (declarations in two modes, a
// replay, a result, a webhook) and then one scrape, whose series carry
// the run's counts.
func TestMetricsAfterARun(t *testing.T) {
	e := newEnv(t, start)
	certified := milk("Metrics Certified Dairy")
	certified.Certificates = []declaration.CertificateInput{{Kind: "HACCP", Number: "MX-1", ValidUntil: "2028-12-31"}}
	e.register(certified.Manufacturer, "NZ", certified.Certificates[0])
	var hook inspection.NewWebhook
	if status, _ := e.as("admin").do("POST", "/v1/webhooks", map[string]any{"url": "http://127.0.0.1:9/nsw"}, &hook); status != http.StatusCreated {
		t.Fatalf("create webhook: status %d", status)
	}

	const n = 8 // declarations of one line each: half reduced, half normal
	modes := map[string]int{}
	open := map[string]int{} // agency → inspections still to do
	var toResult api.LineDecision
	for i := range n {
		l := milk("Metrics Plain Dairy")
		if i%2 == 0 {
			l = certified
		}
		ld := e.decide("METRICS-"+string(rune('A'+i)), importerA, l)
		modes[string(ld.Mode)+"/"+map[bool]string{true: "true", false: "false"}[ld.Inspect]]++
		if ld.Inspect {
			open[ld.Agency]++
			toResult = ld
		}
	}
	if modes["reduced/true"]+modes["reduced/false"] == 0 || modes["normal/true"] == 0 {
		t.Fatalf("setup: modes %v", modes)
	}
	// A replay answers 200 and decides nothing again.
	replay := certified
	replay.LineNo = 1
	if status, _ := e.do("POST", "/v1/declarations", declarationBody{"METRICS-A", importerA, []line{replay}}, nil); status != http.StatusOK {
		t.Fatalf("replay: status %d", status)
	}
	e.clock.Advance(day)
	e.result(toResult.AssignmentID, inspection.OutcomePass)
	open[toResult.Agency]--

	// A path no route serves: its URL must not become a label either.
	if status, _ := e.as("customs").do("GET", "/v1/nowhere/METRICS-A", nil, nil); status != http.StatusNotFound {
		t.Fatalf("unknown path: status %d", status)
	}

	fams := e.scrape()
	decl := map[string]string{"route": "/v1/declarations", "method": "POST"}
	if got := sum(fams, "ktcn_http_requests_total", map[string]string{"route": "/v1/declarations", "method": "POST", "status": "201"}); got != n {
		t.Errorf("POST /v1/declarations 201: %v, want %d", got, n)
	}
	if got := sum(fams, "ktcn_http_requests_total", decl); got != n+1 {
		t.Errorf("POST /v1/declarations, every status: %v, want %d (the replay too)", got, n+1)
	}
	if got := sum(fams, "ktcn_http_request_duration_seconds", decl); got != n+1 {
		t.Errorf("latency histogram of POST /v1/declarations counts %v, want %d", got, n+1)
	}
	if got := sum(fams, "ktcn_http_requests_total", map[string]string{"route": "/v1/assignments/:id/result", "status": "201"}); got != 1 {
		t.Errorf("results posted: %v, want 1 (by route template)", got)
	}
	if got := sum(fams, "ktcn_http_requests_total", map[string]string{"route": "unmatched", "status": "404"}); got != 1 {
		t.Errorf("requests no route serves: %v, want 1 under route=\"unmatched\"", got)
	}
	for _, m := range series(fams, "ktcn_http_requests_total", nil) {
		if strings.Contains(label(m, "route"), "METRICS") || strings.Contains(label(m, "route"), toResult.AssignmentID) {
			t.Errorf("a raw URL became a label: %v", m.GetLabel())
		}
	}
	if got := sum(fams, "ktcn_decisions_total", nil); got != n {
		t.Errorf("decisions: %v, want %d lines", got, n)
	}
	for k, want := range modes {
		mode, insp, _ := strings.Cut(k, "/")
		if got := sum(fams, "ktcn_decisions_total", map[string]string{"mode": mode, "inspect": insp}); got != float64(want) {
			t.Errorf("decisions %s inspect=%s: %v, want %d", mode, insp, got, want)
		}
	}
	reduced := float64(modes["reduced/true"] + modes["reduced/false"])
	if got := sum(fams, "ktcn_quota_eligible_lots", map[string]string{"period": "2026", "scope": "heading:0402"}); got != reduced {
		t.Errorf("quota eligible 2026 heading:0402: %v, want %v", got, reduced)
	}
	if len(series(fams, "ktcn_quota_share_of_cap", map[string]string{"period": "2026", "scope": "heading:0402"})) != 1 ||
		len(series(fams, "ktcn_quota_selected_lots", nil)) == 0 || len(series(fams, "ktcn_quota_allowance_lots", nil)) == 0 ||
		len(series(fams, "ktcn_quota_cap_ratio", map[string]string{"period": "2026"})) != 1 {
		t.Error("quota gauges missing")
	}
	for _, a := range fixtures.Agencies() {
		got := series(fams, "ktcn_assignments_backlog", map[string]string{"agency": a.ID})
		if len(got) != 1 || value(got[0]) != float64(open[a.ID]) {
			t.Errorf("backlog of %s: %v, want %d", a.ID, got, open[a.ID])
		}
		if len(series(fams, "ktcn_assignments_overdue", map[string]string{"agency": a.ID})) != 1 {
			t.Errorf("no overdue series for %s", a.ID)
		}
	}
	sub := map[string]string{"subscription": hook.ID}
	if got := series(fams, "ktcn_webhook_lag_events", sub); len(got) != 1 || value(got[0]) == 0 {
		t.Errorf("webhook lag: %v, want events waiting (nothing delivers in this test)", got)
	}
	for _, name := range []string{"ktcn_webhook_lag_seconds", "ktcn_webhook_failures_total", "ktcn_webhook_delivered_total", "ktcn_webhook_dead_letters", "ktcn_webhook_enabled"} {
		if len(series(fams, name, sub)) != 1 {
			t.Errorf("%s missing for the subscription", name)
		}
	}
	if got := sum(fams, "ktcn_store_commit_batches_total", nil); got <= 0 {
		t.Errorf("committer batches: %v", got)
	}
	if got := sum(fams, "ktcn_store_commit_updates_total", nil); got < n {
		t.Errorf("committer updates: %v, want at least %d", got, n)
	}
	for _, name := range []string{"ktcn_store_commit_batch_size", "ktcn_store_commit_sync_seconds"} {
		if got := sum(fams, name, nil); got != sum(fams, "ktcn_store_commit_batches_total", nil) {
			t.Errorf("%s counts %v batches, the counter %v", name, got, sum(fams, "ktcn_store_commit_batches_total", nil))
		}
	}
	// badger measures its files at open and then every minute: this
	// store opened empty, so the gauges are there and still 0 (they are
	// over 0 after a reopen: store's TestSizes).
	for _, name := range []string{"ktcn_badger_lsm_size_bytes", "ktcn_badger_vlog_size_bytes"} {
		if got := series(fams, name, nil); len(got) != 1 || value(got[0]) < 0 {
			t.Errorf("%s: %v", name, got)
		}
	}
	// The jobs' series come from Config.Jobs (here one idle job).
	for _, name := range []string{"ktcn_job_runs_total", "ktcn_job_failures_total", "ktcn_job_skips_total",
		"ktcn_job_last_success_timestamp_seconds", "ktcn_job_last_duration_seconds", "ktcn_job_running"} {
		if got := series(fams, name, map[string]string{"job": "noop"}); len(got) != 1 || value(got[0]) != 0 {
			t.Errorf("%s{job=\"noop\"}: %v, want one series at 0", name, got)
		}
	}
	// Nothing is labelled by importer, goods or declaration.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route", "method", "status", "mode", "inspect", "period", "scope", "agency", "subscription", "job", "le":
				default:
					t.Errorf("%s has label %s", name, l.GetName())
				}
				if strings.Contains(l.GetValue(), importerA) {
					t.Errorf("%s names the importer", name)
				}
			}
		}
	}
}

// TestMetricsAccess: from another machine /metrics takes a key of role
// metrics, admin or auditor; from the loopback no key.
func TestMetricsAccess(t *testing.T) {
	e := newEnv(t, start)
	get := func(remote, who string) int {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.RemoteAddr = remote
		if who != anonymous {
			req.Header.Set("Authorization", "Bearer "+e.tokens[who])
		}
		rec := httptest.NewRecorder()
		e.echo.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, tc := range []struct {
		remote, who string
		status      int
	}{
		{"203.0.113.7:4242", anonymous, http.StatusUnauthorized},
		{"[2001:db8::7]:4242", anonymous, http.StatusUnauthorized},
		{"203.0.113.7:4242", "nsw", http.StatusForbidden},
		{"203.0.113.7:4242", "customs", http.StatusForbidden},
		{"203.0.113.7:4242", "admin", http.StatusOK},
		{"203.0.113.7:4242", "auditor", http.StatusOK},
		{"203.0.113.7:4242", "metrics", http.StatusOK},
		{"203.0.113.7:4242", "agency:moit-firi", http.StatusForbidden},
		{"203.0.113.7:4242", "policy-approver", http.StatusForbidden},
		{"127.0.0.1:4242", anonymous, http.StatusOK},
		{"127.0.0.2:4242", anonymous, http.StatusOK},
		{"[::1]:4242", anonymous, http.StatusOK},
	} {
		if got := get(tc.remote, tc.who); got != tc.status {
			t.Errorf("from %s as %s: status %d, want %d", tc.remote, tc.who, got, tc.status)
		}
	}
	// Over real HTTP from another loopback address too.
	if status, _ := e.from("127.0.0.3").as(anonymous).do("GET", "/metrics", nil, nil); status != http.StatusOK {
		t.Errorf("from 127.0.0.3: status %d", status)
	}
}
