package api_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ktcn/ktcn/api"
)

// fakeJobs is api.Jobs over a fixed list of names; busy ones refuse a
// start.
type fakeJobs struct {
	mu      sync.Mutex
	names   []string
	busy    []string
	started []string
}

func (f *fakeJobs) List() []api.JobStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.JobStatus
	for _, n := range f.names {
		out = append(out, api.JobStatus{Name: n, Schedule: "@every 1m", Running: slices.Contains(f.busy, n)})
	}
	return out
}

func (f *fakeJobs) Start(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case !slices.Contains(f.names, name):
		return api.ErrJobUnknown
	case slices.Contains(f.busy, name):
		return api.ErrJobBusy
	}
	f.started = append(f.started, name)
	return nil
}

func TestJobsEndpoints(t *testing.T) {
	jobs := &fakeJobs{names: []string{"escalation", "rescoring"}, busy: []string{"rescoring"}}
	e := newEnvWith(t, start, envOptions{jobs: jobs})

	for _, who := range []string{"admin", "auditor"} {
		var list api.JobList
		if status, _ := e.as(who).do("GET", "/v1/jobs", nil, &list); status != http.StatusOK || len(list.Jobs) != 2 ||
			list.Jobs[0].Name != "escalation" || !list.Jobs[1].Running {
			t.Errorf("%s: GET /v1/jobs: %d %+v", who, status, list)
		}
	}
	if status, _ := e.as("customs").do("GET", "/v1/jobs", nil, nil); status != http.StatusForbidden {
		t.Errorf("customs lists jobs: %d, want 403", status)
	}

	if status, _ := e.as("admin").do("POST", "/v1/jobs/escalation/run", nil, nil); status != http.StatusAccepted {
		t.Errorf("admin runs escalation: %d, want 202", status)
	}
	var p api.Problem
	if status, _ := e.as("auditor").do("POST", "/v1/jobs/escalation/run", nil, &p); status != http.StatusForbidden || p.Code != "forbidden" {
		t.Errorf("auditor runs a job: %d %+v, want 403", status, p)
	}
	if status, _ := e.as("admin").do("POST", "/v1/jobs/rescoring/run", nil, &p); status != http.StatusConflict || p.Code != "conflict" {
		t.Errorf("admin runs a running job: %d %+v, want 409", status, p)
	}
	if status, _ := e.as("admin").do("POST", "/v1/jobs/backup/run", nil, &p); status != http.StatusNotFound || p.Code != "not_found" {
		t.Errorf("admin runs an unknown job: %d %+v, want 404", status, p)
	}
	jobs.mu.Lock()
	defer jobs.mu.Unlock()
	if !slices.Equal(jobs.started, []string{"escalation"}) {
		t.Errorf("started %v, want only escalation", jobs.started)
	}
}

// /readyz is public: 200 ready, or 503 problem+json saying why not.
func TestReadyz(t *testing.T) {
	var reason error
	e := newEnvWith(t, start, envOptions{ready: func(context.Context) error { return reason }})
	var body map[string]string
	if status, _ := e.as(anonymous).do("GET", "/readyz", nil, &body); status != http.StatusOK || body["status"] != "ready" {
		t.Fatalf("ready: %d %v", status, body)
	}
	reason = errors.New("jobs stuck: rescoring (running since 2026-01-05T02:00:00+07:00)")
	var p api.Problem
	status, hdr := e.as(anonymous).do("GET", "/readyz", nil, &p)
	if status != http.StatusServiceUnavailable || hdr.Get("Content-Type") != "application/problem+json" ||
		p.Code != "unavailable" || !strings.Contains(p.Detail, "rescoring") {
		t.Fatalf("not ready: %d %q %+v", status, hdr.Get("Content-Type"), p)
	}
}
