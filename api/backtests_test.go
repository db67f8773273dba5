package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/store"
)

// A backtest job over HTTP: started by an author (202), its progress
// read until it is done (never going backwards, no report before), then
// its report, its changed lots paged and as CSV; bad input is refused.
func TestBacktestJob(t *testing.T) {
	e := newEnv(t, start)
	for i := range 6 {
		e.decide("BT-"+string(rune('A'+i)), importerA, milk("Backtest Dairy"))
	}
	var j backtest.Job
	if status, _ := e.in(t).as("policy-author").do(http.MethodPost, "/v1/policies/2026.1-default/backtests", map[string]any{}, &j); status != http.StatusAccepted {
		t.Fatalf("start: status %d", status)
	}
	if j.State != backtest.JobRunning && j.State != backtest.JobDone || j.Report != nil || j.Version != "2026.1-default" {
		t.Fatalf("started: %+v", j)
	}
	last := int64(-1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got backtest.Job
		if status, _ := e.in(t).as("auditor").do(http.MethodGet, "/v1/backtests/"+j.ID, nil, &got); status != http.StatusOK {
			t.Fatalf("read: status %d", status)
		}
		if got.Progress.Lots < last {
			t.Fatalf("progress went back from %d to %d", last, got.Progress.Lots)
		}
		last = got.Progress.Lots
		if got.State != backtest.JobDone {
			if got.Report != nil || got.State != backtest.JobRunning || time.Now().After(deadline) {
				t.Fatalf("not done: %+v", got)
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if got.Report == nil || got.Report.Lots < 6 || got.Report.Changed != 0 || got.Report.AgainstHistory.Mismatches != 0 {
			t.Fatalf("done: %+v, report %+v", got, got.Report)
		}
		break
	}
	var page api.BacktestChangesPage
	if status, _ := e.in(t).as("customs").do(http.MethodGet, "/v1/backtests/"+j.ID+"/changes?limit=10", nil, &page); status != http.StatusOK || len(page.Changes) != 0 || page.Next != 0 {
		t.Fatalf("changes: status %d, %+v", status, page)
	}
	status, hdr := e.in(t).as("customs").do(http.MethodGet, "/v1/backtests/"+j.ID+"/changes?format=csv", nil, nil)
	if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: status %d, %q", status, hdr.Get("Content-Type"))
	}
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{http.MethodPost, "/v1/policies/2026.1-default/backtests", map[string]any{"from": "last week"}, http.StatusUnprocessableEntity},
		{http.MethodPost, "/v1/policies/2026.1-default/backtests", map[string]any{"generated": map[string]any{"seed": 1, "lots": 0, "years": 1}}, http.StatusUnprocessableEntity},
		{http.MethodPost, "/v1/policies/no-such-version/backtests", map[string]any{}, http.StatusNotFound},
		{http.MethodGet, "/v1/backtests/bt_0000", nil, http.StatusNotFound},
		{http.MethodGet, "/v1/backtests/" + j.ID + "/changes?format=xml", nil, http.StatusUnprocessableEntity},
	} {
		who := "policy-approver"
		if status, _ := e.in(t).as(who).do(c.method, c.path, c.body, nil); status != c.want {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, status, c.want)
		}
	}
}

// Backtests across a restart, over HTTP: the store holds what a previous
// process left, a job done with its report and changed lots, and one it
// was running when it stopped. After the start, the done one reads as it
// was and its changed lots page from the store (and as CSV); the running
// one reads failed, interrupted by the restart, with the progress it had
// saved and no report, and its changed lots are refused (409): a partial
// list is never shown as complete.
func TestBacktestsAfterARestart(t *testing.T) {
	ctx := context.Background()
	began := start.Add(-time.Hour)
	ended := began.Add(time.Minute)
	done := backtest.Job{ID: "bt_done", Version: "2026.1-default", State: backtest.JobDone, By: "policy-author", StartedAt: began, FinishedAt: &ended,
		Progress: backtest.Progress{Lots: 3}, Report: &backtest.Report{Lots: 3, Changed: 2}, Changes: 2}
	running := backtest.Job{ID: "bt_running", Version: "2026.1-default", State: backtest.JobRunning, By: "policy-author", StartedAt: began,
		Progress: backtest.Progress{Lots: 1234, Total: 5000}}
	e := newEnvWith(t, start, envOptions{beforeBacktests: func(db *store.DB) {
		for _, j := range []backtest.Job{done, running} {
			if err := db.PutBacktestJob(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.AppendBacktestChanges(ctx, done.ID, 0, []backtest.Change{{DecisionID: "dec_a", Why: "a"}, {DecisionID: "dec_b", Why: "b"}}); err != nil {
			t.Fatal(err)
		}
		if err := db.AppendBacktestChanges(ctx, running.ID, 0, []backtest.Change{{DecisionID: "dec_partial"}}); err != nil {
			t.Fatal(err)
		}
	}})

	var got backtest.Job
	if status, _ := e.in(t).as("auditor").do(http.MethodGet, "/v1/backtests/bt_running", nil, &got); status != http.StatusOK {
		t.Fatalf("interrupted job: status %d", status)
	}
	if got.State != backtest.JobFailed || !strings.HasPrefix(got.Error, "interrupted by a restart at ") || !strings.HasSuffix(got.Error, "; start it again") ||
		got.Progress.Lots != 1234 || got.Report != nil || got.FinishedAt == nil {
		t.Fatalf("interrupted job: %+v", got)
	}
	for _, path := range []string{"/v1/backtests/bt_running/changes", "/v1/backtests/bt_running/changes?format=csv"} {
		if status, _ := e.in(t).as("customs").do(http.MethodGet, path, nil, nil); status != http.StatusConflict {
			t.Errorf("%s: status %d, want 409", path, status)
		}
	}

	if status, _ := e.in(t).as("auditor").do(http.MethodGet, "/v1/backtests/bt_done", nil, &got); status != http.StatusOK {
		t.Fatalf("done job: status %d", status)
	}
	if got.State != backtest.JobDone || got.Report == nil || got.Report.Changed != 2 || got.Changes != 2 || got.By != "policy-author" {
		t.Fatalf("done job: %+v", got)
	}
	var page api.BacktestChangesPage
	if status, _ := e.in(t).as("customs").do(http.MethodGet, "/v1/backtests/bt_done/changes?limit=1", nil, &page); status != http.StatusOK ||
		len(page.Changes) != 1 || page.Changes[0].DecisionID != "dec_a" || page.Next != 1 {
		t.Fatalf("first page: status %d, %+v", status, page)
	}
	if status, _ := e.in(t).as("customs").do(http.MethodGet, "/v1/backtests/bt_done/changes?limit=1&after=1", nil, &page); status != http.StatusOK ||
		len(page.Changes) != 1 || page.Changes[0].DecisionID != "dec_b" || page.Next != 0 {
		t.Fatalf("second page: status %d, %+v", status, page)
	}
	var body []byte
	if status, _ := e.in(t).as("customs").do(http.MethodGet, "/v1/backtests/bt_done/changes?format=csv", nil, &body); status != http.StatusOK ||
		!strings.Contains(string(body), "dec_a") || !strings.Contains(string(body), "dec_b") {
		t.Fatalf("csv: status %d, %q", status, body)
	}
}
