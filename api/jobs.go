package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
)

// Jobs is the periodic jobs as the API sees them (cmd/ktcn's registry
// implements it): their status, and a run started by hand.
type Jobs interface {
	List() []JobStatus
	// Start runs the job now, in the background; ErrJobUnknown or
	// ErrJobBusy (a run is in progress: runs never overlap) when it cannot.
	Start(name string) error
}

// The errors of Jobs.Start.
var (
	ErrJobUnknown = errors.New("no such job")
	ErrJobBusy    = errors.New("job is running")
)

// JobStatus is one job: its schedule and how its runs went.
type JobStatus struct {
	Name     string `json:"name"`
	Schedule string `json:"schedule"`
	// Running is set while a run is in progress, since RunningSince.
	Running      bool       `json:"running"`
	RunningSince *time.Time `json:"running_since,omitempty"`
	Runs         int64      `json:"runs"`
	Failures     int64      `json:"failures"`
	// Skipped counts ticks (or manual runs) that found a run in progress.
	Skipped     int64      `json:"skipped"`
	LastStart   *time.Time `json:"last_start,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastFailure *time.Time `json:"last_failure,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastSummary string     `json:"last_summary,omitempty"`
	// LastTookMS is how long the last finished run took, in milliseconds.
	LastTookMS int64 `json:"last_took_ms"`
	// StuckAfterMS is how long a run may take before /readyz reports the
	// job stuck.
	StuckAfterMS int64 `json:"stuck_after_ms"`
}

// JobList is GET /v1/jobs.
type JobList struct {
	Jobs []JobStatus `json:"jobs"`
}

func (h *handlers) listJobs(c echo.Context, p access.Principal) error {
	if err := p.Require(access.ActReadJobs); err != nil {
		return err
	}
	if h.jobs == nil {
		return c.JSON(http.StatusOK, JobList{Jobs: []JobStatus{}})
	}
	return c.JSON(http.StatusOK, JobList{Jobs: h.jobs.List()})
}

// runJob starts a job now: 202, the run goes on in the background and
// GET /v1/jobs shows how it went; 409 when it is already running.
func (h *handlers) runJob(c echo.Context, p access.Principal) error {
	if err := p.Require(access.ActRunJobs); err != nil {
		return err
	}
	name := c.Param("name")
	if h.jobs == nil {
		return inspection.NotFound("no job %q", name)
	}
	switch err := h.jobs.Start(name); {
	case errors.Is(err, ErrJobUnknown):
		return inspection.NotFound("no job %q", name)
	case errors.Is(err, ErrJobBusy):
		return inspection.Conflict("name", "job %s is already running", name)
	case err != nil:
		return err
	}
	return c.JSON(http.StatusAccepted, JobStarted{Status: "started", Job: name})
}

// JobStarted answers a job started by hand.
type JobStarted struct {
	Status string `json:"status"`
	Job    string `json:"job"`
}

// ReadyStatus answers GET /readyz when ready.
type ReadyStatus struct {
	Status string `json:"status"`
}

// Readiness says whether the service can do its work; nil is ready, an
// error says why not (cmd/ktcn checks the store, the jobs and the outbox).
type Readiness func(ctx context.Context) error

// readyTimeout bounds a readiness check: a store that cannot answer in
// time is not ready.
const readyTimeout = 5 * time.Second

// readiness is GET /readyz: 200 {"status":"ready"}, or 503 problem+json
// whose detail says what is not ready.
func (h *handlers) readiness(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	if _, err := h.svc.PolicyInForce(ctx); err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "policy in force not readable: "+err.Error())
	}
	if h.ready != nil {
		if err := h.ready(ctx); err != nil {
			return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
		}
	}
	return c.JSON(http.StatusOK, ReadyStatus{Status: "ready"})
}
