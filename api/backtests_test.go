package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection/backtest"
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
