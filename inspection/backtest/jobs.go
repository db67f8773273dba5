package backtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
)

// JobState is where a backtest job stands.
type JobState string

const (
	JobRunning   JobState = "running"
	JobDone      JobState = "done"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// Request says what history a job replays: a stretch of the store's
// history (From, To; either may be zero), or a generated one.
type Request struct {
	From      time.Time  `json:"from,omitzero"`
	To        time.Time  `json:"to,omitzero"`
	Generated *Generated `json:"generated,omitempty"`
}

// Generated names a generated history.
type Generated struct {
	Seed  uint64 `json:"seed"`
	Lots  int    `json:"lots"`
	Years int    `json:"years"`
}

// Progress is how far a job has come. Lots never goes backwards; Total is
// known for a generated history only, and SecondsLeft with it.
type Progress struct {
	Lots        int64    `json:"lots"`
	Total       int64    `json:"total,omitempty"`
	SecondsLeft *float64 `json:"seconds_left,omitempty"`
}

// Job is a backtest job as its readers see it. Report is set only when
// the job is done: a partial report is never shown.
type Job struct {
	ID         string     `json:"id"`
	Version    string     `json:"version"`
	Active     string     `json:"active_version,omitempty"`
	Request    Request    `json:"request"`
	State      JobState   `json:"state"`
	By         string     `json:"started_by"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Progress   Progress   `json:"progress"`
	Error      string     `json:"error,omitempty"`
	Report     *Report    `json:"report,omitempty"`
	// Changes counts the changed lots kept for paging; ChangesTruncated
	// says more changed than a job keeps (the report's Changed counts all).
	Changes          int  `json:"changes"`
	ChangesTruncated bool `json:"changes_truncated,omitempty"`
}

// Source gives a generated history under the active policy: its items,
// the quota keys its random checks were drawn under, and the lag bound
// of its results. The wiring supplies it (the generator lives in
// fixtures, which the domain does not import).
type Source func(ctx context.Context, active *policy.Policy, g Generated) (iter.Seq2[Item, error], quota.Keys, time.Duration, error)

// JobsConfig wires the jobs.
type JobsConfig struct {
	// Service reads the versions and the policy in force, as the principal
	// who starts the job.
	Service *inspection.Service
	// Store is read for the store's own history (one snapshot per job).
	Store inspection.Reader
	// Keys are the quota's period keys (the master secret).
	Keys      quota.Keys
	Generate  Source
	Clock     calendar.Clock
	MaxChange int // changed lots a job keeps for paging; zero: 100,000
}

// Jobs runs backtests in the background, at most MaxRunning at once (a
// replay keeps a core busy), and keeps them in memory: a restart forgets them, so a job
// is never left looking as if it ran on (its reader gets not found and
// starts it again).
type Jobs struct {
	cfg  JobsConfig
	base context.Context

	mu      sync.Mutex
	jobs    map[string]*job
	running map[string]bool
}

// MaxRunning is how many backtests run at once: one per core of the
// machine ktcn was sized for, which still leaves decisions their share.
const MaxRunning = 2

type job struct {
	Job
	cancel  context.CancelFunc
	changes []Change
}

// MaxChangesPerJob is how many changed lots a job keeps by default.
const MaxChangesPerJob = 100_000

// NewJobs makes the jobs; they stop when base ends.
func NewJobs(base context.Context, cfg JobsConfig) *Jobs {
	if cfg.MaxChange <= 0 {
		cfg.MaxChange = MaxChangesPerJob
	}
	if cfg.Clock == nil {
		cfg.Clock = calendar.SystemClock{}
	}
	return &Jobs{cfg: cfg, base: base, jobs: map[string]*job{}, running: map[string]bool{}}
}

// Start starts a backtest of version against the policy in force.
func (j *Jobs) Start(ctx context.Context, by access.Principal, version string, req Request) (Job, error) {
	if err := by.Require(access.ActRunBacktests); err != nil {
		return Job{}, err
	}
	if g := req.Generated; g != nil && (g.Lots < 1 || g.Lots > 20_000_000 || g.Years < 1 || g.Years > 50) {
		return Job{}, fault.Of(fault.Invalid, "generated", "lots must be 1 to 20,000,000 and years 1 to 50")
	}
	if g := req.Generated; g != nil && (!req.From.IsZero() || !req.To.IsZero()) {
		return Job{}, fault.Of(fault.Invalid, "generated", "a generated history takes no from or to")
	}
	if !req.From.IsZero() && !req.To.IsZero() && !req.From.Before(req.To) {
		return Job{}, fault.Of(fault.Invalid, "to", "must be after from")
	}
	v, err := j.cfg.Service.PolicyVersionOf(ctx, by, version)
	if err != nil {
		return Job{}, err
	}
	candidate, err := policy.ParsePolicy(v.Document)
	if err != nil {
		return Job{}, fault.Of(fault.Invalid, "version", "version %s does not validate: %v", version, err)
	}
	active, err := j.cfg.Service.Policy(ctx, by)
	if err != nil {
		return Job{}, err
	}
	cfg := Config{Active: active, Candidate: candidate, Keys: j.cfg.Keys, From: req.From, To: req.To}
	total := int64(0)
	jctx, cancel := context.WithCancel(j.base)
	// The history is made in the job, not in the request: generating one
	// calibrates first, seconds to minutes.
	source := func() (iter.Seq2[Item, error], error) { return Stored(jctx, j.cfg.Store), nil }
	if g := req.Generated; g != nil {
		if j.cfg.Generate == nil {
			cancel()
			return Job{}, fault.Of(fault.Unavailable, "generated", "this server cannot generate histories")
		}
		total = int64(g.Lots)
		source = func() (iter.Seq2[Item, error], error) {
			src, keys, lag, err := j.cfg.Generate(jctx, active, *g)
			cfg.Keys, cfg.MaxLag = keys, lag
			return src, err
		}
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.running) >= MaxRunning {
		cancel()
		return Job{}, fault.Of(fault.Conflict, "version", "%d backtests are running: cancel one or wait", len(j.running))
	}
	id, err := newJobID()
	if err != nil {
		cancel()
		return Job{}, err
	}
	jb := &job{Job: Job{ID: id, Version: version, Active: active.Version, Request: req, State: JobRunning, By: by.Name,
		StartedAt: j.cfg.Clock.Now(), Progress: Progress{Total: total}}, cancel: cancel}
	j.jobs[id], j.running[id] = jb, true
	cfg.OnChange = func(c Change) error {
		j.mu.Lock()
		defer j.mu.Unlock()
		if len(jb.changes) < j.cfg.MaxChange {
			jb.changes = append(jb.changes, c)
		} else {
			jb.ChangesTruncated = true
		}
		return nil
	}
	cfg.Progress = func(lots int64) {
		j.mu.Lock()
		defer j.mu.Unlock()
		if lots <= jb.Progress.Lots {
			return // never backwards
		}
		jb.Progress.Lots = lots
		if t := jb.Progress.Total; t > 0 && lots < t {
			left := j.cfg.Clock.Now().Sub(jb.StartedAt).Seconds() * float64(t-lots) / float64(lots)
			jb.Progress.SecondsLeft = &left
		}
	}
	go func() {
		src, err := source()
		var rep *Report
		if err == nil {
			rep, err = Run(jctx, cfg, src)
		}
		j.finish(jb, rep, err)
	}()
	return jb.view(false), nil
}

func (j *Jobs) finish(jb *job, rep *Report, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.cfg.Clock.Now()
	jb.FinishedAt, jb.Progress.SecondsLeft = &now, nil
	switch {
	case err == nil:
		jb.State, jb.Report, jb.Changes = JobDone, rep, len(jb.changes)
	case jb.State == JobCancelled || errors.Is(err, context.Canceled):
		jb.State = JobCancelled
	default:
		jb.State, jb.Error = JobFailed, err.Error()
	}
	jb.cancel()
	delete(j.running, jb.ID)
}

// Get reads a job; its report only once it is done.
func (j *Jobs) Get(_ context.Context, by access.Principal, id string) (Job, error) {
	if err := by.Require(access.ActReadBacktests); err != nil {
		return Job{}, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	jb, ok := j.jobs[id]
	if !ok {
		return Job{}, inspection.NotFound("no backtest %q", id)
	}
	return jb.view(true), nil
}

// Cancel stops a running job; a finished one is answered as it is.
func (j *Jobs) Cancel(_ context.Context, by access.Principal, id string) (Job, error) {
	if err := by.Require(access.ActRunBacktests); err != nil {
		return Job{}, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	jb, ok := j.jobs[id]
	if !ok {
		return Job{}, inspection.NotFound("no backtest %q", id)
	}
	if jb.State == JobRunning {
		jb.State = JobCancelled // the run ends at its next check and keeps this state
		jb.cancel()
	}
	return jb.view(false), nil
}

// Changes pages a done job's changed lots: after is the index of the last
// one read (0 for the start), next the cursor of the following page, 0
// at the end.
func (j *Jobs) Changes(_ context.Context, by access.Principal, id string, after, limit int) (page []Change, next int, err error) {
	if err := by.Require(access.ActReadBacktests); err != nil {
		return nil, 0, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	jb, ok := j.jobs[id]
	if !ok {
		return nil, 0, inspection.NotFound("no backtest %q", id)
	}
	if jb.State != JobDone {
		return nil, 0, fault.Of(fault.Conflict, "id", "backtest %s is %s: its changed lots are listed once it is done", id, jb.State)
	}
	if after < 0 || after > len(jb.changes) {
		return nil, 0, fault.Of(fault.Invalid, "after", "must be between 0 and %d", len(jb.changes))
	}
	end := min(after+limit, len(jb.changes))
	page = append([]Change(nil), jb.changes[after:end]...)
	if end < len(jb.changes) {
		next = end
	}
	return page, next, nil
}

func (jb *job) view(withReport bool) Job {
	v := jb.Job
	if !withReport || v.State != JobDone {
		v.Report = nil
	}
	if v.State == JobRunning {
		v.Changes = 0
	}
	return v
}

func newJobID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("backtest id: %w", err)
	}
	return "bt_" + hex.EncodeToString(b), nil
}
