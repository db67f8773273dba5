package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/api"
)

// A job that panics, or fails, is recorded as failed (the panic's stack
// logged) and runs again at its next tick: the registry survives it.
func TestJobPanicIsRecordedAndNextRunSucceeds(t *testing.T) {
	var logs bytes.Buffer
	r := newRegistry(context.Background(), zerolog.New(&logs))
	var calls atomic.Int64
	r.Add("flaky", "@every 1m", time.Minute, func(context.Context) (string, error) {
		switch calls.Add(1) {
		case 1:
			panic("boom")
		case 2:
			return "", errors.New("store unavailable")
		}
		return "did it", nil
	})
	if err := r.Run("flaky"); err == nil || !strings.Contains(err.Error(), "panic: boom") {
		t.Fatalf("first run: %v, want the panic as an error", err)
	}
	if !strings.Contains(logs.String(), `"job panicked"`) || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("the panic's stack is not logged: %s", logs.String())
	}
	st := r.List()[0]
	if st.Runs != 1 || st.Failures != 1 || st.LastError != "panic: boom" || st.LastFailure == nil || st.LastSuccess != nil || st.Running {
		t.Fatalf("after the panic: %+v", st)
	}
	if err := r.Run("flaky"); err == nil {
		t.Fatal("second run: want its error")
	}
	if err := r.Run("flaky"); err != nil {
		t.Fatalf("third run: %v", err)
	}
	st = r.List()[0]
	if st.Runs != 3 || st.Failures != 2 || st.LastSuccess == nil || st.LastSummary != "did it" || st.LastError != "store unavailable" {
		t.Fatalf("after recovering: %+v", st)
	}
	if !strings.Contains(logs.String(), `"took_ms"`) {
		t.Errorf("runs are not logged with took_ms: %s", logs.String())
	}
}

// Overlapping ticks (and manual runs) never run one job twice at once:
// fifty concurrent Runs of a slow job see it run one at a time, and every
// Run that found it running is refused as busy and counted as skipped.
func TestJobNeverOverlapsItself(t *testing.T) {
	r := newRegistry(context.Background(), zerolog.Nop())
	var cur, maxCur, ran atomic.Int64
	r.Add("slow", "@every 1m", time.Minute, func(context.Context) (string, error) {
		n := cur.Add(1)
		for {
			m := maxCur.Load()
			if n <= m || maxCur.CompareAndSwap(m, n) {
				break
			}
		}
		ran.Add(1)
		time.Sleep(20 * time.Millisecond)
		cur.Add(-1)
		return "", nil
	})
	var wg sync.WaitGroup
	var busy atomic.Int64
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if err := r.Run("slow"); errors.Is(err, api.ErrJobBusy) {
					busy.Add(1)
				} else if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	r.Wait()
	if maxCur.Load() != 1 {
		t.Fatalf("at most %d runs at once, want 1", maxCur.Load())
	}
	st := r.List()[0]
	if st.Runs != ran.Load() || st.Skipped != busy.Load() || st.Runs+st.Skipped != 250 || busy.Load() == 0 {
		t.Fatalf("runs %d (ran %d), skipped %d (busy %d), want runs+skipped = 250 with some skipped", st.Runs, ran.Load(), st.Skipped, busy.Load())
	}
}

// Start (the manual run) answers busy while a run is in progress, unknown
// for a name not registered; a run past its threshold is reported stuck.
func TestJobStartBusyUnknownAndStuck(t *testing.T) {
	r := newRegistry(context.Background(), zerolog.Nop())
	release := make(chan struct{})
	r.Add("held", "@every 1m", time.Millisecond, func(context.Context) (string, error) { <-release; return "", nil })
	if err := r.Start("held"); err != nil {
		t.Fatal(err)
	}
	if err := r.Start("held"); !errors.Is(err, api.ErrJobBusy) {
		t.Fatalf("second start: %v, want busy", err)
	}
	if err := r.Start("nope"); !errors.Is(err, api.ErrJobUnknown) {
		t.Fatalf("unknown: %v", err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := r.Stuck(); err == nil || !strings.Contains(err.Error(), "held") {
		t.Fatalf("stuck: %v", err)
	}
	if st := r.List()[0]; !st.Running || st.RunningSince == nil {
		t.Fatalf("status while running: %+v", st)
	}
	close(release)
	r.Wait()
	if err := r.Stuck(); err != nil {
		t.Fatal(err)
	}
}

// The served jobs and /readyz, end to end: ready on a fresh store, every
// job listed, a manual run recorded.
func TestJobsAndReadyzServed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn"}
	base, _ := serveInProcess(t, env)
	call := caller(t, base, readDevCredentials(t, filepath.Join(dir, devCredentialsFile)))
	var ready map[string]string
	if status := call("", "GET", "/readyz", nil, &ready); status != http.StatusOK || ready["status"] != "ready" {
		t.Fatalf("readyz: %d %v", status, ready)
	}
	var list api.JobList
	if status := call("auditor", "GET", "/v1/jobs", nil, &list); status != http.StatusOK {
		t.Fatalf("list: %d", status)
	}
	var names []string
	for _, j := range list.Jobs {
		names = append(names, j.Name)
	}
	if want := []string{"backup", "escalation", "outbox-compaction", "quota-rollover", "rescoring", "value-log-gc"}; !slices.Equal(names, want) {
		t.Fatalf("jobs %v, want %v", names, want)
	}
	if status := call("admin", "POST", "/v1/jobs/quota-rollover/run", nil, nil); status != http.StatusAccepted {
		t.Fatalf("run: %d", status)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		call("admin", "GET", "/v1/jobs", nil, &list)
		if st := list.Jobs[3]; st.Runs == 1 {
			if st.Failures != 0 || st.LastSuccess == nil || !strings.HasPrefix(st.LastSummary, "period ") {
				t.Fatalf("quota-rollover: %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the manual run never finished: %+v", list.Jobs[3])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
