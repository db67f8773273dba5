package backtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
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

// JobStore keeps backtest jobs and their changed lots across restarts
// (the store implements it). Every write is durable when it returns. The
// records are operational data, not audited ones: a backtest changes
// nothing in the domain, and who started it is on the job's record.
type JobStore interface {
	PutBacktestJob(ctx context.Context, j Job) error
	// BacktestJob reads a job; one not held is a not-found fault.
	BacktestJob(ctx context.Context, id string) (Job, error)
	// BacktestJobs lists every job without its report.
	BacktestJobs(ctx context.Context) ([]Job, error)
	// AppendBacktestChanges writes changes as the job's changed lots
	// first, first+1, …
	AppendBacktestChanges(ctx context.Context, id string, first int, changes []Change) error
	// BacktestChanges reads at most limit changed lots from index after.
	BacktestChanges(ctx context.Context, id string, after, limit int) ([]Change, error)
	DeleteBacktestChanges(ctx context.Context, id string) error
	// DeleteBacktestJob deletes a job with its changed lots.
	DeleteBacktestJob(ctx context.Context, id string) error
}

// JobsConfig wires the jobs.
type JobsConfig struct {
	// Service reads the versions and the policy in force, as the principal
	// who starts the job.
	Service *inspection.Service
	// Store is read for the store's own history (one snapshot per job).
	Store inspection.Reader
	// Jobs keeps the jobs and their changed lots. Required.
	Jobs JobStore
	// Keys are the quota's period keys (the master secret).
	Keys      quota.Keys
	Generate  Source
	Clock     calendar.Clock
	MaxChange int // changed lots a job keeps for paging; zero: 100,000
	// Keep is how many finished jobs are kept, the newest; older ones are
	// deleted with their changed lots. Zero: 100.
	Keep int
	// ProgressEvery is the least time between two saves of a running
	// job's progress (by Clock; the first is saved at once). Zero: 1 s.
	ProgressEvery time.Duration
}

// Jobs runs backtests in the background, at most MaxRunning at once (a
// replay keeps a core busy), and keeps them in the store: a job's record
// is saved when it starts, its progress at most every ProgressEvery, its
// changed lots in batches as the run finds them, and its state and report
// when it ends. A restart does not resume a job: NewJobs marks every job
// it finds unfinished failed ("interrupted by a restart"), so a job never
// looks as if it ran on, and a partial report is never shown as complete.
type Jobs struct {
	cfg  JobsConfig
	base context.Context
	stop context.CancelFunc
	runs sync.WaitGroup

	mu sync.Mutex
	// live are the jobs this process runs, read from memory while they
	// run (their progress moves faster than it is saved), and any whose
	// end could not be saved.
	live    map[string]*job
	running int

	pruning sync.Mutex
}

// MaxRunning is how many backtests run at once: one per core of the
// machine ktcn was sized for, which still leaves decisions their share.
const MaxRunning = 2

// KeepFinished is how many finished jobs are kept by default.
const KeepFinished = 100

// changesBatch is how many changed lots a run gathers before it writes
// them to the store.
const changesBatch = 1000

type job struct {
	Job
	cancel context.CancelFunc
	// Owned by the run's goroutine alone.
	pending []Change
	kept    int // changed lots written or pending
	savedAt time.Time
	saved   bool
}

// MaxChangesPerJob is how many changed lots a job keeps by default.
const MaxChangesPerJob = 100_000

// Interrupted is the error of a job a restart found unfinished.
func Interrupted(at time.Time) string {
	return fmt.Sprintf("interrupted by a restart at %s; start it again", at.UTC().Format(time.RFC3339))
}

// NewJobs makes the jobs; they stop when ctx ends or Close is called.
// Every job the store holds unfinished (its process stopped while it ran)
// is marked failed with Interrupted, and its changed lots deleted.
func NewJobs(ctx context.Context, cfg JobsConfig) (*Jobs, error) {
	if cfg.Jobs == nil {
		return nil, errors.New("backtest: jobs need a job store")
	}
	if cfg.MaxChange <= 0 {
		cfg.MaxChange = MaxChangesPerJob
	}
	if cfg.Keep <= 0 {
		cfg.Keep = KeepFinished
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = calendar.SystemClock{}
	}
	all, err := cfg.Jobs.BacktestJobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("backtest: read jobs: %w", err)
	}
	now := cfg.Clock.Now()
	for _, jb := range all {
		if jb.State.Finished() {
			continue
		}
		jb.State, jb.Error, jb.FinishedAt, jb.Report = JobFailed, Interrupted(now), &now, nil
		jb.Progress.SecondsLeft = nil
		if err := cfg.Jobs.DeleteBacktestChanges(ctx, jb.ID); err != nil {
			return nil, fmt.Errorf("backtest: job %s: %w", jb.ID, err)
		}
		if err := cfg.Jobs.PutBacktestJob(ctx, jb); err != nil {
			return nil, fmt.Errorf("backtest: job %s: %w", jb.ID, err)
		}
	}
	base, stop := context.WithCancel(ctx)
	j := &Jobs{cfg: cfg, base: base, stop: stop, live: map[string]*job{}}
	if err := j.prune(ctx); err != nil {
		stop()
		return nil, err
	}
	return j, nil
}

// Close stops the running jobs and waits for them. Their records stay as
// they were last saved, running: the next NewJobs marks them failed, as
// after a crash.
func (j *Jobs) Close() {
	j.stop()
	j.runs.Wait()
}

// Finished reports whether a job in state s has ended.
func (s JobState) Finished() bool {
	return s == JobDone || s == JobFailed || s == JobCancelled
}

// Start starts a backtest of version against the policy in force. The job
// is saved before Start returns.
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
	id, err := newJobID()
	if err != nil {
		cancel()
		return Job{}, err
	}
	jb := &job{Job: Job{ID: id, Version: version, Active: active.Version, Request: req, State: JobRunning, By: by.Name,
		StartedAt: j.cfg.Clock.Now(), Progress: Progress{Total: total}}, cancel: cancel}

	j.mu.Lock()
	if j.running >= MaxRunning {
		j.mu.Unlock()
		cancel()
		return Job{}, fault.Of(fault.Conflict, "version", "%d backtests are running: cancel one or wait", MaxRunning)
	}
	if j.base.Err() != nil {
		j.mu.Unlock()
		cancel()
		return Job{}, fault.Of(fault.Unavailable, "", "backtests are stopping")
	}
	j.running++
	j.live[id] = jb
	j.runs.Add(1)
	j.mu.Unlock()
	// Saved before the answer, so a restart right after it still finds
	// the job (and marks it interrupted).
	if err := j.cfg.Jobs.PutBacktestJob(ctx, jb.Job); err != nil {
		j.mu.Lock()
		j.running--
		delete(j.live, id)
		j.mu.Unlock()
		j.runs.Done()
		cancel()
		return Job{}, fmt.Errorf("backtest: save job %s: %w", id, err)
	}
	cfg.OnChange = func(c Change) error {
		if jb.kept >= j.cfg.MaxChange {
			j.mu.Lock()
			jb.ChangesTruncated = true
			j.mu.Unlock()
			return nil
		}
		jb.pending = append(jb.pending, c)
		jb.kept++
		if len(jb.pending) >= changesBatch {
			return j.writeChanges(jb)
		}
		return nil
	}
	cfg.Progress = func(lots int64) { j.progress(jb, lots) }
	go func() {
		defer j.runs.Done()
		src, err := source()
		var rep *Report
		if err == nil {
			rep, err = Run(jctx, cfg, src)
		}
		if err == nil {
			err = j.writeChanges(jb)
		}
		j.finish(jb, rep, err)
	}()
	j.mu.Lock()
	defer j.mu.Unlock()
	return jb.view(false), nil
}

// writeChanges writes the changed lots gathered since the last write.
func (j *Jobs) writeChanges(jb *job) error {
	if len(jb.pending) == 0 {
		return nil
	}
	if err := j.cfg.Jobs.AppendBacktestChanges(j.base, jb.ID, jb.kept-len(jb.pending), jb.pending); err != nil {
		return fmt.Errorf("backtest: save changed lots: %w", err)
	}
	jb.pending = jb.pending[:0]
	return nil
}

// progress moves a running job's progress forward (never back) and saves
// it when ProgressEvery has passed since the last save. Called by the
// run's goroutine only, so saves are in order and the saved progress
// never goes back either.
func (j *Jobs) progress(jb *job, lots int64) {
	j.mu.Lock()
	if lots <= jb.Progress.Lots {
		j.mu.Unlock()
		return // never backwards
	}
	now := j.cfg.Clock.Now()
	jb.Progress.Lots = lots
	if t := jb.Progress.Total; t > 0 && lots < t {
		left := now.Sub(jb.StartedAt).Seconds() * float64(t-lots) / float64(lots)
		jb.Progress.SecondsLeft = &left
	}
	save := !jb.saved || now.Sub(jb.savedAt) >= j.cfg.ProgressEvery
	rec := jb.Job
	j.mu.Unlock()
	if !save || rec.State != JobRunning {
		return
	}
	jb.saved, jb.savedAt = true, now
	rec.Report, rec.Progress.SecondsLeft = nil, nil
	// A failed save loses only this progress: the next one, or the end,
	// saves it again.
	_ = j.cfg.Jobs.PutBacktestJob(j.base, rec)
}

func (j *Jobs) finish(jb *job, rep *Report, err error) {
	defer jb.cancel()
	now := j.cfg.Clock.Now()
	j.mu.Lock()
	end := jb.Job
	j.mu.Unlock()
	end.FinishedAt, end.Progress.SecondsLeft = &now, nil
	switch {
	case err == nil:
		end.State, end.Report, end.Changes = JobDone, rep, jb.kept
		end.Progress.Lots = max(end.Progress.Lots, rep.Lots+rep.WarmupLots)
	case end.State == JobCancelled:
	case j.base.Err() != nil:
		// Stopping (Close, or the server's context): the record stays
		// running and the next start marks it interrupted, the same as
		// after a crash; its progress is saved as reached, so a reader
		// never sees it go back across the restart (after a crash it can
		// be up to ProgressEvery behind).
		if end.State == JobRunning {
			end.FinishedAt = nil
			_ = j.cfg.Jobs.PutBacktestJob(context.WithoutCancel(j.base), end)
		}
		j.mu.Lock()
		j.running--
		delete(j.live, jb.ID)
		j.mu.Unlock()
		return
	case errors.Is(err, context.Canceled):
		end.State = JobCancelled
	default:
		end.State, end.Error = JobFailed, err.Error()
	}
	// Only a done job's changed lots are ever listed.
	if end.State != JobDone {
		err = j.cfg.Jobs.DeleteBacktestChanges(j.base, jb.ID)
	} else {
		err = nil
	}
	if err == nil {
		err = j.cfg.Jobs.PutBacktestJob(j.base, end)
	}
	if err == nil {
		// Before the job leaves memory, so whoever reads it ended from
		// the store also finds the older jobs pruned. Best effort: a
		// prune that fails is done again at the next end.
		_ = j.prune(j.base)
	}
	j.mu.Lock()
	j.running--
	if err != nil {
		// Kept in memory, failed, so its reader is told why; the store
		// still says running, which the next start marks interrupted.
		end.State, end.Error, end.Report, end.Changes = JobFailed, fmt.Sprintf("saving its end: %v", err), nil, 0
		jb.Job = end
	} else {
		delete(j.live, jb.ID)
	}
	j.mu.Unlock()
}

// prune deletes the finished jobs beyond the newest Keep, with their
// changed lots.
func (j *Jobs) prune(ctx context.Context) error {
	j.pruning.Lock()
	defer j.pruning.Unlock()
	all, err := j.cfg.Jobs.BacktestJobs(ctx)
	if err != nil {
		return fmt.Errorf("backtest: read jobs: %w", err)
	}
	var done []Job
	for _, jb := range all {
		if jb.State.Finished() && jb.FinishedAt != nil {
			done = append(done, jb)
		}
	}
	if len(done) <= j.cfg.Keep {
		return nil
	}
	slices.SortFunc(done, func(a, b Job) int {
		if c := b.FinishedAt.Compare(*a.FinishedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	for _, old := range done[j.cfg.Keep:] {
		if err := j.cfg.Jobs.DeleteBacktestJob(ctx, old.ID); err != nil {
			return fmt.Errorf("backtest: delete job %s: %w", old.ID, err)
		}
	}
	return nil
}

// find is a job as this process holds it while it runs, else as saved.
func (j *Jobs) find(ctx context.Context, id string) (Job, error) {
	j.mu.Lock()
	jb, ok := j.live[id]
	var v Job
	if ok {
		v = jb.view(true)
	}
	j.mu.Unlock()
	if ok {
		return v, nil
	}
	saved, err := j.cfg.Jobs.BacktestJob(ctx, id)
	if err != nil {
		return Job{}, err
	}
	return saved, nil
}

// Get reads a job; its report only once it is done.
func (j *Jobs) Get(ctx context.Context, by access.Principal, id string) (Job, error) {
	if err := by.Require(access.ActReadBacktests); err != nil {
		return Job{}, err
	}
	v, err := j.find(ctx, id)
	if err != nil {
		return Job{}, err
	}
	if v.State != JobDone {
		v.Report = nil
	}
	return v, nil
}

// Cancel stops a running job; a finished one is answered as it is.
func (j *Jobs) Cancel(ctx context.Context, by access.Principal, id string) (Job, error) {
	if err := by.Require(access.ActRunBacktests); err != nil {
		return Job{}, err
	}
	j.mu.Lock()
	if jb, ok := j.live[id]; ok {
		defer j.mu.Unlock()
		if jb.State == JobRunning {
			jb.State = JobCancelled // the run ends at its next check and keeps this state
			jb.cancel()
		}
		return jb.view(false), nil
	}
	j.mu.Unlock()
	v, err := j.find(ctx, id)
	v.Report = nil
	return v, err
}

// Changes pages a done job's changed lots: after is the index of the last
// one read (0 for the start), next the cursor of the following page, 0
// at the end. A job not done has none to list (a conflict): its changes
// would be a partial list.
func (j *Jobs) Changes(ctx context.Context, by access.Principal, id string, after, limit int) (page []Change, next int, err error) {
	if err := by.Require(access.ActReadBacktests); err != nil {
		return nil, 0, err
	}
	jb, err := j.find(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if jb.State != JobDone {
		return nil, 0, fault.Of(fault.Conflict, "id", "backtest %s is %s: its changed lots are listed once it is done", id, jb.State)
	}
	if after < 0 || after > jb.Changes {
		return nil, 0, fault.Of(fault.Invalid, "after", "must be between 0 and %d", jb.Changes)
	}
	end := min(after+limit, jb.Changes)
	if end > after {
		if page, err = j.cfg.Jobs.BacktestChanges(ctx, id, after, end-after); err != nil {
			return nil, 0, err
		}
		if len(page) != end-after {
			return nil, 0, fmt.Errorf("backtest %s: %d changed lots from %d in the store, want %d", id, len(page), after, end-after)
		}
	}
	if end < jb.Changes {
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
