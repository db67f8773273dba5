package main

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/quota"
)

// scrapeMetrics gets /metrics with the token (none when empty: from the
// loopback no key is needed) and parses it.
func scrapeMetrics(t *testing.T, base, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// labelsOf is a metric's labels as a map.
func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// metricValue is a counter's or gauge's value, or a histogram's count.
func metricValue(m *dto.Metric) float64 {
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

// byLabels is a family's values keyed by the given labels' values, joined
// with "|"; series that differ only in other labels are summed.
func byLabels(fams map[string]*dto.MetricFamily, name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range fams[name].GetMetric() {
		ls := labelsOf(m)
		var key []string
		for _, l := range labels {
			key = append(key, ls[l])
		}
		out[strings.Join(key, "|")] += metricValue(m)
	}
	return out
}

// TestMetricsAfterAScriptedRun is issue #19's acceptance 3 over the real
// wiring (serve on a new data dir, real badger, the real job registry):
// declarations whose modes the answers tell, results, a certificate that
// puts a lot in reduced mode, a webhook whose receiver fails, jobs run by
// hand, and then one scrape from the loopback without a key. Every series
// the issue asks for is there with the run's counts: requests by route
// template, method and status (the whole family equals the requests this
// test made), decisions by mode and inspection, quota use, each agency's
// backlog, the webhook's lag and failures, the committer, badger, and the
// jobs' runs; and no series is labelled by importer, goods or declaration.
func TestMetricsAfterAScriptedRun(t *testing.T) {
	began := time.Now()
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn",
		// Reference data without the year of history, so every lot in the
		// store is this run's; one attempt per event, then an hour's wait.
		"KTCN_FIXTURES": "reference", "KTCN_WEBHOOK_RETRIES": "0s,1h"}
	var attempts atomic.Int64
	nsw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attempts.Add(1)
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer nsw.Close()
	base, _ := serveInProcess(t, env)
	creds := readDevCredentials(t, filepath.Join(dir, devCredentialsFile))
	call := caller(t, base, creds)

	// requests counts what this test asked, by route template, method and
	// status: the expected ktcn_http_requests_total.
	requests := map[string]float64{}
	do := func(who, method, route, path string, body, out any) int {
		t.Helper()
		status := call(who, method, path, body, out)
		requests[route+"|"+method+"|"+strconv.Itoa(status)]++
		return status
	}

	var hook struct {
		ID string `json:"id"`
	}
	if status := do("admin", "POST", "/v1/webhooks", "/v1/webhooks", map[string]any{"url": nsw.URL + "/nsw"}, &hook); status != http.StatusCreated {
		t.Fatalf("create webhook: %d", status)
	}
	// A certificate an agency checked: the certified dairy's lots go to
	// reduced mode, so quota is drawn.
	validUntil := time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
	cert := map[string]string{"kind": "HACCP", "number": "MX-1", "valid_until": validUntil, "manufacturer": "Metrics Certified Dairy", "origin": "NZ"}
	certPath := "/v1/manufacturers/" + identity.ManufacturerKey(cert["manufacturer"], "NZ").String() + "/certificates"
	if status := do("agency:moit-firi", "POST", "/v1/manufacturers/:key/certificates", certPath, cert, nil); status != http.StatusCreated {
		t.Fatalf("register certificate: %d", status)
	}

	type lineIn = map[string]any
	milk := func(maker string, certified bool) lineIn {
		l := lineIn{"line_no": 1, "hs_code": "0402.21.20", "product_name": "Sữa bột nguyên kem", "manufacturer": maker, "origin": "NZ",
			"procedure": "food_safety", "quantity": 1200, "unit": "kg"}
		if certified {
			l["certificates"] = []map[string]string{{"kind": "HACCP", "number": "MX-1", "valid_until": validUntil}}
		}
		return l
	}
	biscuits := lineIn{"line_no": 1, "hs_code": "1905.31.10", "product_name": "Bánh quy bơ", "manufacturer": "Metrics Biscuits",
		"origin": "DK", "procedure": "food_safety", "quantity": 5, "unit": "kg"}
	kettle := lineIn{"line_no": 1, "hs_code": "8516.71.00", "product_name": "Ấm đun nước điện 1.7L", "manufacturer": "Metrics Kettles",
		"origin": "CN", "procedure": "quality", "quantity": 500, "unit": "pcs"}

	const n = 9
	decisions := map[string]float64{} // mode|inspect → lines, from the answers; every pair present from the start
	for _, mode := range []string{"strict", "normal", "reduced", "exempt"} {
		decisions[mode+"|true"], decisions[mode+"|false"] = 0, 0
	}
	open := map[string]float64{} // agency → inspections still to do
	var reduced float64
	var toResult []api.LineDecision
	var bodies []map[string]any
	for i := range n {
		var l lineIn
		switch i % 3 {
		case 0:
			l = milk("Metrics Certified Dairy", true)
		case 1:
			l = biscuits
		default:
			l = kettle
		}
		body := map[string]any{"declaration_id": fmt.Sprintf("METRICS-%02d", i), "importer_tax_code": "0101234567", "lines": []lineIn{l}}
		bodies = append(bodies, body)
		var out api.DeclarationResponse
		if status := do("nsw", "POST", "/v1/declarations", "/v1/declarations", body, &out); status != http.StatusCreated || len(out.Lines) != 1 {
			t.Fatalf("declare %d: %d %+v", i, status, out)
		}
		d := out.Lines[0]
		decisions[string(d.Mode)+"|"+strconv.FormatBool(d.Inspect)]++
		if d.Mode == inspection.ModeReduced {
			reduced++
		}
		if d.Inspect {
			open[d.Agency]++
			toResult = append(toResult, d)
		}
	}
	if reduced == 0 || len(toResult) < 2 || len(decisions) < 2 {
		t.Fatalf("the run needs reduced lots, inspections and two kinds of decision: %v", decisions)
	}
	// A replay answers 200 and decides nothing again.
	if status := do("nsw", "POST", "/v1/declarations", "/v1/declarations", bodies[1], nil); status != http.StatusOK {
		t.Fatalf("replay: %d", status)
	}
	// Results for two inspections.
	for _, d := range toResult[:2] {
		in := map[string]any{"outcome": inspection.OutcomePass, "inspected_at": time.Now().Format(time.RFC3339Nano)}
		if status := do("agency:"+d.Agency, "POST", "/v1/assignments/:id/result", "/v1/assignments/"+d.AssignmentID+"/result", in, nil); status != http.StatusCreated {
			t.Fatalf("result %s: %d", d.AssignmentID, status)
		}
		open[d.Agency]--
	}
	// Another agency's assignment is 404, by route template.
	last := toResult[len(toResult)-1]
	other := fixtures.Agencies()[0].ID
	if other == last.Agency {
		other = fixtures.Agencies()[1].ID
	}
	if status := do("agency:"+other, "GET", "/v1/assignments/:id", "/v1/assignments/"+last.AssignmentID, nil, nil); status != http.StatusNotFound {
		t.Fatalf("another agency's assignment: %d, want 404", status)
	}
	// A refusal is a request too.
	if status := do("customs", "GET", "/v1/jobs", "/v1/jobs", nil, nil); status != http.StatusForbidden {
		t.Fatalf("customs lists jobs: %d, want 403", status)
	}

	// Jobs run by hand: escalation twice, quota rollover once, each waited
	// for through GET /v1/jobs.
	runs := map[string]float64{"escalation": 2, "quota-rollover": 1}
	var jobs api.JobList
	for _, name := range []string{"escalation", "escalation", "quota-rollover"} {
		before := map[string]int64{}
		do("auditor", "GET", "/v1/jobs", "/v1/jobs", nil, &jobs)
		for _, j := range jobs.Jobs {
			before[j.Name] = j.Runs
		}
		if status := do("admin", "POST", "/v1/jobs/:name/run", "/v1/jobs/"+name+"/run", nil, nil); status != http.StatusAccepted {
			t.Fatalf("run %s: %d", name, status)
		}
		for deadline := time.Now().Add(10 * time.Second); ; {
			do("auditor", "GET", "/v1/jobs", "/v1/jobs", nil, &jobs)
			if st := jobStatus(jobs, name); st.Runs > before[name] && !st.Running {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never finished: %+v", name, jobStatus(jobs, name))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The webhook's first attempts have failed (the next are an hour
	// away): wait until the delivery state records every attempt the
	// receiver got, and stays so for a few reads (a declaration's first
	// attempt may still be on its way).
	var wh inspection.Webhook
	for deadline, stable := time.Now().Add(10*time.Second), 0; stable < 5; {
		do("admin", "GET", "/v1/webhooks/:id", "/v1/webhooks/"+hook.ID, nil, &wh)
		if wh.Delivery != nil && wh.Delivery.Failures > 0 && wh.Delivery.Failures == attempts.Load() {
			stable++
		} else {
			stable = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery never settled: %+v, %d attempts", wh.Delivery, attempts.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var work api.WorkloadResponse
	do("auditor", "GET", "/v1/workload", "/v1/workload", nil, &work)
	period := quota.PeriodOf(time.Now())

	want := maps.Clone(requests) // every request before the scrape
	fams := scrapeMetrics(t, base, "")
	// The state the scrape read, read again after it: nothing moved.
	do("auditor", "GET", "/v1/jobs", "/v1/jobs", nil, &jobs)
	var whAfter inspection.Webhook
	do("admin", "GET", "/v1/webhooks/:id", "/v1/webhooks/"+hook.ID, nil, &whAfter)

	// Requests: the family is exactly what this test asked before the
	// scrape, and every latency histogram counts as many.
	got := byLabels(fams, "ktcn_http_requests_total", "route", "method", "status")
	assertSameCounts(t, "ktcn_http_requests_total{route,method,status}", got, want)
	if h := byLabels(fams, "ktcn_http_request_duration_seconds", "route", "method", "status"); !sameCounts(h, got) {
		t.Errorf("latency histograms count %v, the counters %v", h, got)
	}
	if fams["ktcn_http_request_duration_seconds"].GetType() != dto.MetricType_HISTOGRAM {
		t.Error("ktcn_http_request_duration_seconds is not a histogram")
	}

	assertSameCounts(t, "ktcn_decisions_total{mode,inspect}", byLabels(fams, "ktcn_decisions_total", "mode", "inspect"), decisions)

	// Quota: every reduced lot of the run is eligible in this year's
	// period, in one of its scopes, and each scope has a share of its cap.
	if got := byLabels(fams, "ktcn_quota_eligible_lots", "period")[period]; got != reduced {
		t.Errorf("quota eligible lots in %s: %v, want %v (the reduced lots)", period, got, reduced)
	}
	shares := byLabels(fams, "ktcn_quota_share_of_cap", "period", "scope")
	if len(shares) == 0 || len(shares) != len(byLabels(fams, "ktcn_quota_eligible_lots", "period", "scope")) {
		t.Errorf("quota share of cap per scope: %v", shares)
	}
	for k, v := range shares {
		if !strings.HasPrefix(k, period+"|") || v < 0 {
			t.Errorf("quota share of cap %s: %v", k, v)
		}
	}

	// Workload: each agency's backlog is the run's inspections less its
	// results, as GET /v1/workload says too; nothing is overdue yet.
	backlog := byLabels(fams, "ktcn_assignments_backlog", "agency")
	overdue := byLabels(fams, "ktcn_assignments_overdue", "agency")
	for _, a := range fixtures.Agencies() {
		if b, ok := backlog[a.ID]; !ok || b != open[a.ID] {
			t.Errorf("backlog of %s: %v (present %v), want %v", a.ID, b, ok, open[a.ID])
		}
		if o, ok := overdue[a.ID]; !ok || o != 0 {
			t.Errorf("overdue of %s: %v (present %v), want 0", a.ID, o, ok)
		}
	}
	for _, w := range work.Agencies {
		if backlog[w.Agency] != float64(w.Backlog) {
			t.Errorf("backlog of %s: metrics %v, GET /v1/workload %d", w.Agency, backlog[w.Agency], w.Backlog)
		}
	}

	// The webhook: its lag and failures as its delivery state has them,
	// the failures every attempt the receiver answered 500.
	sub := hook.ID
	if wh.Delivery.Failures != whAfter.Delivery.Failures || wh.Delivery.LagEvents != whAfter.Delivery.LagEvents {
		t.Fatalf("delivery moved while scraping: %+v then %+v", wh.Delivery, whAfter.Delivery)
	}
	if got := byLabels(fams, "ktcn_webhook_failures_total", "subscription")[sub]; got != float64(attempts.Load()) || got == 0 {
		t.Errorf("webhook failures: %v, want %d (the receiver's 500s)", got, attempts.Load())
	}
	if got := byLabels(fams, "ktcn_webhook_lag_events", "subscription")[sub]; got != float64(wh.Delivery.LagEvents) || got == 0 {
		t.Errorf("webhook lag: %v events, want %d", got, wh.Delivery.LagEvents)
	}
	if got := byLabels(fams, "ktcn_webhook_lag_seconds", "subscription")[sub]; got <= 0 {
		t.Errorf("webhook lag: %v s, want the oldest event's age", got)
	}

	// The committer and badger.
	batches := byLabels(fams, "ktcn_store_commit_batches_total")[""]
	if updates := byLabels(fams, "ktcn_store_commit_updates_total")[""]; batches <= 0 || updates < n {
		t.Errorf("committer: %v batches of %v updates, want at least the %d declarations", batches, updates, n)
	}
	for _, name := range []string{"ktcn_store_commit_batch_size", "ktcn_store_commit_sync_seconds"} {
		if fams[name].GetType() != dto.MetricType_HISTOGRAM || byLabels(fams, name)[""] != batches {
			t.Errorf("%s counts %v, want one per batch (%v)", name, byLabels(fams, name)[""], batches)
		}
	}
	for _, name := range []string{"ktcn_badger_lsm_size_bytes", "ktcn_badger_vlog_size_bytes"} {
		if len(fams[name].GetMetric()) != 1 || metricValue(fams[name].GetMetric()[0]) < 0 {
			t.Errorf("%s: %v", name, fams[name])
		}
	}

	// Jobs: from the registry, every registered job, with the runs made.
	jobRuns := byLabels(fams, "ktcn_job_runs_total", "job")
	for _, j := range jobs.Jobs {
		if jobRuns[j.Name] != runs[j.Name] {
			t.Errorf("runs of %s: %v, want %v", j.Name, jobRuns[j.Name], runs[j.Name])
		}
		for _, name := range []string{"ktcn_job_failures_total", "ktcn_job_skips_total", "ktcn_job_running"} {
			if v, ok := byLabels(fams, name, "job")[j.Name]; !ok || v != 0 {
				t.Errorf("%s{job=%q}: %v (present %v), want 0", name, j.Name, v, ok)
			}
		}
		success := byLabels(fams, "ktcn_job_last_success_timestamp_seconds", "job")[j.Name]
		took := byLabels(fams, "ktcn_job_last_duration_seconds", "job")[j.Name]
		switch {
		case runs[j.Name] == 0 && (success != 0 || took != 0):
			t.Errorf("%s never ran but has last success %v, duration %v", j.Name, success, took)
		case runs[j.Name] > 0 && (success < float64(began.Unix()) || success > float64(time.Now().Unix()+1) || took != float64(j.LastTookMS)/1000):
			t.Errorf("%s: last success %v (test began %d), duration %v s (GET /v1/jobs: %d ms)", j.Name, success, began.Unix(), took, j.LastTookMS)
		}
	}
	if len(jobRuns) != len(jobs.Jobs) {
		t.Errorf("job series %v, jobs %d", jobRuns, len(jobs.Jobs))
	}

	// No series is labelled by importer, goods or declaration, by name or
	// by value.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for k, v := range labelsOf(m) {
				if k == "importer" || k == "goods" || k == "declaration" || strings.Contains(v, "0101234567") ||
					strings.Contains(v, "METRICS-") || strings.Contains(v, "Metrics") {
					t.Errorf("%s has label %s=%q", name, k, v)
				}
			}
		}
	}

	// With a key of role metrics the scrape is allowed too, and it finds
	// the first scrape counted.
	again := scrapeMetrics(t, base, creds["metrics"])
	if got := byLabels(again, "ktcn_http_requests_total", "route", "method", "status")["/metrics|GET|200"]; got != 1 {
		t.Errorf("the first scrape counted %v times, want 1", got)
	}
	t.Logf("%d requests on %d route/method/status series, decisions %v, %v reduced, backlog %v, webhook %d failures and %d events behind, job runs %v",
		int(sum(got)), len(got), decisions, reduced, backlog, attempts.Load(), wh.Delivery.LagEvents, jobRuns)
}

func jobStatus(l api.JobList, name string) api.JobStatus {
	for _, j := range l.Jobs {
		if j.Name == name {
			return j
		}
	}
	return api.JobStatus{}
}

func sum(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

func sameCounts(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func assertSameCounts(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	if !sameCounts(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}
