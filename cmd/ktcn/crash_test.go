package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/quota"
)

// The crash harness: `make crash-test` (KTCN_CRASH_CYCLES=5, as CI runs
// it), `make soak` (50). It is skipped unless KTCN_CRASH_CYCLES is set,
// because it builds and kills real processes for minutes.
//
// Each cycle starts the real binary (`ktcn serve`) on the same data dir,
// drives it from several concurrent clients, and kill -9s it at a random
// moment. A client counts a declaration acknowledged only after it has
// appended the response to its own log file and fsynced it, so the harness
// never believes in an acknowledgement it could not prove after its own
// crash. A declaration that got no answer stays pending and is resent,
// same ID and same body, once the server is back: NSW's retry, which must
// get the original decisions (200) if the lost answer's commit survived,
// or fresh ones (201) if it did not. After every kill, with the server
// down, `ktcn verify quota -open` recomputes every draw and checks the cap
// in every scope; after every restart, each decision acknowledged since the
// last check is read back with the customs key and compared field by field,
// and its quota record is checked against the cap. At the end every
// acknowledged decision of the whole run is read back once more.
//
// Knobs (environment): KTCN_CRASH_CYCLES (required), KTCN_CRASH_CLIENTS
// (16), KTCN_CRASH_WINDOW (2s: kills land uniformly in [20ms, window] after
// load starts), KTCN_CRASH_SEED (random; logged, so a failure can be
// replayed), KTCN_CRASH_DIR (where the data dir goes; a failed run leaves
// it there), KTCN_BIN (a prebuilt binary; default: go build).

func envInt(t testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: want a whole number", name, s)
	}
	return n
}

// buildKtcn returns $KTCN_BIN, or builds the binary of this package.
func buildKtcn(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("KTCN_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	out := filepath.Join(t.TempDir(), "ktcn")
	cmd := exec.Command(gobin, "build", "-o", out, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// workDir is a fresh directory under dir (or the system temp dir), removed
// when the test passes and kept, with its logs, when it fails.
func workDir(t testing.TB, dir, pattern string) string {
	t.Helper()
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := os.MkdirTemp(dir, pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept %s for inspection", d)
			return
		}
		_ = os.RemoveAll(d)
	})
	return d
}

func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serverProc is one `ktcn serve` process.
type serverProc struct {
	t       testing.TB
	addr    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// startServer runs `bin serve` on dataDir at a free loopback port with its
// output in logPath, optionally under a wrapper (strace), and waits until
// GET /healthz answers. Rate limits are lifted: the harness and the
// benchmarks measure the decision path, not the limiter's refusal.
func startServer(t testing.TB, bin, dataDir, logPath string, wrapper ...string) *serverProc {
	t.Helper()
	return startServerWith(t, bin, dataDir, logPath, nil, wrapper...)
}

// startServerWith is startServer with more serve flags.
func startServerWith(t testing.TB, bin, dataDir, logPath string, flags []string, wrapper ...string) *serverProc {
	t.Helper()
	for attempt := 0; ; attempt++ {
		s := &serverProc{t: t, addr: freeLoopbackAddr(t), logPath: logPath, exited: make(chan struct{})}
		args := append(slices.Clone(wrapper), bin, "serve", "-data-dir", dataDir, "-addr", s.addr, "-log-level", "warn",
			"-rate-limit", "1000000", "-rate-burst", "1000000")
		args = append(args, flags...)
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		s.cmd = exec.Command(args[0], args[1:]...)
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
		if err := s.cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("start %s: %v", bin, err)
		}
		go func() {
			s.waitErr = s.cmd.Wait()
			logf.Close()
			close(s.exited)
		}()
		err = s.waitReady(2 * time.Minute)
		if err == nil {
			return s
		}
		s.kill()
		if attempt < 3 && strings.Contains(tail(logPath, 2000), "address already in use") {
			continue // the free port was taken between our probe and its bind
		}
		t.Fatalf("server did not come up: %v\n%s", err, tail(logPath, 4000))
	}
}

func (s *serverProc) base() string { return "http://" + s.addr }

func (s *serverProc) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("exited: %v", s.waitErr)
		default:
		}
		resp, err := c.Get(s.base() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no answer from /healthz")
}

// kill is kill -9 of the process (the server, or its wrapper), and waits
// for it.
func (s *serverProc) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// stop asks pid (the server, or the server under a wrapper) to shut down as
// SIGINT does, and waits for the process started to end.
func (s *serverProc) stop(pid int) {
	s.t.Helper()
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		s.t.Fatalf("SIGINT %d: %v", pid, err)
	}
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		s.kill()
		s.t.Fatalf("server did not stop within a minute of SIGINT\n%s", tail(s.logPath, 4000))
	}
	if s.waitErr != nil {
		s.t.Fatalf("server exit: %v\n%s", s.waitErr, tail(s.logPath, 4000))
	}
}

func tail(path string, n int64) string {
	b, _ := os.ReadFile(path)
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}

// commitStats is the "group commit stats" line serve logs at shutdown.
type commitStats struct {
	Batches  int64 `json:"batches"`
	Updates  int64 `json:"updates"`
	Reruns   int64 `json:"reruns"`
	MaxBatch int64 `json:"max_batch"`
}

// lastCommitStats reads the last stats line of a server log.
func lastCommitStats(t testing.TB, logPath string) commitStats {
	t.Helper()
	var st commitStats
	found := false
	eachLogLine(t, logPath, `"group commit stats"`, func(line []byte) {
		if err := json.Unmarshal(line, &st); err != nil {
			t.Fatalf("stats line: %v", err)
		}
		found = true
	})
	if !found {
		t.Fatalf("no group commit stats line in %s", logPath)
	}
	return st
}

// eachLogLine calls fn with each line of a server's log that contains
// substr, in order.
func eachLogLine(t testing.TB, logPath, substr string, fn func(line []byte)) {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte(substr)) {
			fn(sc.Bytes())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", logPath, err)
	}
}

func devCreds(t testing.TB, dataDir string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, devCredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	var creds map[string]string
	if err := json.Unmarshal(raw, &creds); err != nil {
		t.Fatal(err)
	}
	if creds["nsw"] == "" || creds["customs"] == "" {
		t.Fatal("dev credentials without nsw and customs keys")
	}
	return creds
}

// ackRecord is one line of a client's acknowledgement log.
type ackRecord struct {
	Cycle         int                `json:"cycle"`
	Status        int                `json:"status"`
	DeclarationID string             `json:"declaration_id"`
	Lines         []api.LineDecision `json:"lines"`
}

// crashClient sends declarations one at a time and keeps what was
// acknowledged in its own synced log.
type crashClient struct {
	log     *os.File
	pending []byte // the body sent without an answer; resent until answered
	pendID  string
	// A declaration left unanswered by a kill and answered after the
	// restart: 200 means its commit had survived (the kill fell between
	// sync and answer), 201 that it had not been committed.
	resentOK, resentCreated int
}

func (c *crashClient) run(ctx context.Context, cycle int, srv *serverProc, token string, src *declSource,
	seq *atomic.Int64, inflight *atomic.Int64, acked *atomic.Int64, unexpected func(string)) {
	client := loadClient(srv.addr, 1, 10*time.Second)
	defer client.CloseIdleConnections()
	resent := c.pending != nil
	for ctx.Err() == nil {
		if c.pending == nil {
			n := seq.Add(1)
			c.pending, _ = src.body(n)
			c.pendID = src.id(n)
		}
		inflight.Add(1)
		status, body, err := postDeclaration(ctx, client, srv.base(), token, c.pending, true)
		inflight.Add(-1)
		if err != nil || status >= 500 || status == http.StatusTooManyRequests {
			// The server is dying or dead (or briefly busy): the answer is
			// unknown, so the same declaration goes again.
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if status != http.StatusCreated && status != http.StatusOK {
			unexpected(fmt.Sprintf("declaration %s: status %d: %.300s", c.pendID, status, body))
			c.pending = nil
			continue
		}
		var resp api.DeclarationResponse
		if err := json.Unmarshal(body, &resp); err != nil || resp.DeclarationID != c.pendID || len(resp.Lines) == 0 {
			unexpected(fmt.Sprintf("declaration %s: unreadable answer (%v): %.300s", c.pendID, err, body))
			c.pending = nil
			continue
		}
		line, _ := json.Marshal(ackRecord{Cycle: cycle, Status: status, DeclarationID: resp.DeclarationID, Lines: resp.Lines})
		// Acknowledged only once it is on disk in our own log.
		if _, err := c.log.Write(append(line, '\n')); err != nil {
			unexpected("ack log: " + err.Error())
			return
		}
		if err := c.log.Sync(); err != nil {
			unexpected("ack log sync: " + err.Error())
			return
		}
		acked.Add(1)
		if resent {
			if status == http.StatusOK {
				c.resentOK++
			} else {
				c.resentCreated++
			}
			resent = false
		}
		c.pending = nil
	}
}

// readAcks reads every client's log back from disk: the harness checks
// what survived on disk, not what it remembers.
func readAcks(t testing.TB, dir string) map[string]ackRecord {
	t.Helper()
	out := map[string]ackRecord{}
	files, _ := filepath.Glob(filepath.Join(dir, "acks-*.log"))
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r ackRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if prev, ok := out[r.DeclarationID]; ok {
				// Acknowledged twice (a resend after a lost answer): both
				// answers must be the same decisions.
				a, _ := json.Marshal(prev.Lines)
				b, _ := json.Marshal(r.Lines)
				if string(a) != string(b) {
					t.Errorf("declaration %s acknowledged twice with different decisions:\n%s\n%s", r.DeclarationID, a, b)
				}
				continue
			}
			out[r.DeclarationID] = r
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// checkTally counts what reading acknowledged decisions back found.
type checkTally struct {
	checked, lost, changed, overshoots int
	periods                            map[string]bool
}

// checkAcks reads back every decision of the given acknowledgements.
func checkAcks(t testing.TB, base, customs string, acks []ackRecord) checkTally {
	t.Helper()
	type job struct {
		decl string
		line api.LineDecision
	}
	jobs := make(chan job)
	var (
		mu    sync.Mutex
		tally = checkTally{periods: map[string]bool{}}
		wg    sync.WaitGroup
		fatal error
	)
	addr := strings.TrimPrefix(base, "http://")
	client := loadClient(addr, 8, 30*time.Second)
	defer client.CloseIdleConnections()
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				lost, changed, over, period, err := checkDecision(t, client, base, customs, j.decl, j.line)
				mu.Lock()
				if err != nil && fatal == nil {
					fatal = err
				}
				tally.checked++
				tally.lost += lost
				tally.changed += changed
				tally.overshoots += over
				if period != "" {
					tally.periods[period] = true
				}
				mu.Unlock()
			}
		})
	}
	for _, a := range acks {
		for _, l := range a.Lines {
			jobs <- job{a.DeclarationID, l}
		}
	}
	close(jobs)
	wg.Wait()
	if fatal != nil {
		t.Fatal(fatal) // on the test goroutine, as FailNow requires
	}
	return tally
}

// checkDecision reads one decision back. Findings go to t.Errorf; an error
// means the check itself could not be made.
func checkDecision(t testing.TB, client *http.Client, base, customs, decl string, want api.LineDecision) (lost, changed, over int, period string, err error) {
	var resp *http.Response
	for attempt := 0; attempt < 5; attempt++ {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/decisions/"+want.DecisionID, nil)
		req.Header.Set("Authorization", "Bearer "+customs)
		if resp, err = client.Do(req); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return 0, 0, 0, "", fmt.Errorf("read decision %s: %w", want.DecisionID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		t.Errorf("LOST: decision %s of declaration %s was acknowledged and is gone", want.DecisionID, decl)
		return 1, 0, 0, "", nil
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, "", fmt.Errorf("read decision %s: status %d", want.DecisionID, resp.StatusCode)
	}
	var got inspection.Decision
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return 0, 0, 0, "", fmt.Errorf("read decision %s: %w", want.DecisionID, err)
	}
	if got.DeclarationID != decl || got.LineNo != want.LineNo || got.Mode != want.Mode || got.Inspect != want.Inspect ||
		got.Agency != want.Agency || got.AssignmentID != want.AssignmentID || got.Reason != want.Reason {
		t.Errorf("CHANGED: decision %s acknowledged as %+v, stored as declaration %s line %d mode %s inspect %v agency %q assignment %q reason %q",
			want.DecisionID, want, got.DeclarationID, got.LineNo, got.Mode, got.Inspect, got.Agency, got.AssignmentID, got.Reason)
		changed = 1
	}
	if q := got.Quota; q != nil {
		period = q.Period
		// selected ≤ floor(cap × eligible), in integers: cap is in basis points.
		if q.Selected*10000 > q.Eligible*q.CapBasisPoints {
			t.Errorf("OVERSHOOT: decision %s saw %d selected of %d eligible at cap %d bp in scope %s", got.ID, q.Selected, q.Eligible, q.CapBasisPoints, q.Scope)
			over = 1
		}
	}
	return 0, changed, over, period, nil
}

// verifyQuota runs `ktcn verify quota -open` on a stopped server's data dir
// for each period; a period that never opened is skipped. It returns the
// number of overshoots reported and fails on any other mismatch.
func verifyQuota(t testing.TB, bin, dataDir string, periods map[string]bool) (verified, overshoots int) {
	t.Helper()
	names := make([]string, 0, len(periods))
	for p := range periods {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		out, err := exec.Command(bin, "verify", "quota", "-period", p, "-open", "-data-dir", dataDir, "-log-level", "warn").CombinedOutput()
		switch s := string(out); {
		case err == nil && strings.Contains(s, "consistent"):
			verified++
		case strings.Contains(s, "no quota period"):
		case strings.Contains(s, "exceeds the cap"):
			t.Errorf("OVERSHOOT: verify quota %s: %s", p, s)
			overshoots++
		default:
			t.Errorf("verify quota %s: %v\n%s", p, err, s)
		}
	}
	return verified, overshoots
}

func TestCrashKill9(t *testing.T) {
	cycles := envInt(t, "KTCN_CRASH_CYCLES", 0)
	if cycles <= 0 {
		t.Skip("crash harness: set KTCN_CRASH_CYCLES (make crash-test runs 5, make soak 50)")
	}
	nClients := envInt(t, "KTCN_CRASH_CLIENTS", 16)
	window := 2 * time.Second
	if s := os.Getenv("KTCN_CRASH_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 50*time.Millisecond {
			t.Fatalf("KTCN_CRASH_WINDOW=%q: want a duration of at least 50ms", s)
		}
		window = d
	}
	seed := uint64(envInt(t, "KTCN_CRASH_SEED", int(time.Now().UnixNano()&0x7fffffff)))
	rng := rand.New(rand.NewPCG(seed, 6))
	t.Logf("crash harness: %d cycles, %d clients, kills within %v of load, seed %d (KTCN_CRASH_SEED to replay)", cycles, nClients, window, seed)

	bin := buildKtcn(t)
	work := workDir(t, os.Getenv("KTCN_CRASH_DIR"), "ktcn-crash-*")
	dataDir := filepath.Join(work, "data")
	logPath := filepath.Join(work, "server.log")

	// First start: fixtures, a year of history, development credentials.
	srv := startServer(t, bin, dataDir, logPath)
	creds := devCreds(t, dataDir)
	src, err := newDeclSource("history", firstStartSeed, 5, fmt.Sprintf("CRASH%d", seed%100000))
	if err != nil {
		t.Fatal(err)
	}
	clients := make([]*crashClient, nClients)
	for i := range clients {
		f, err := os.OpenFile(filepath.Join(work, fmt.Sprintf("acks-%02d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		clients[i] = &crashClient{log: f}
	}
	var (
		seq, inflight, acked atomic.Int64
		unexpectedMu         sync.Mutex
		unexpected           []string
		checked              = map[string]bool{}
		total                = checkTally{periods: map[string]bool{}}
		quotaRuns, quotaOver int
	)
	period := quota.PeriodOf(time.Now())
	total.periods[period] = true
	// The generated history reaches back a year: its periods too.
	total.periods[strconv.Itoa(time.Now().Year()-1)] = true
	for cycle := 1; cycle <= cycles; cycle++ {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		before := acked.Load()
		for _, c := range clients {
			wg.Go(func() {
				c.run(ctx, cycle, srv, creds["nsw"], src, &seq, &inflight, &acked, func(msg string) {
					unexpectedMu.Lock()
					unexpected = append(unexpected, msg)
					unexpectedMu.Unlock()
				})
			})
		}
		after := 20*time.Millisecond + time.Duration(rng.Int64N(int64(window-20*time.Millisecond)))
		time.Sleep(after)
		flying := inflight.Load()
		srv.kill()
		cancel()
		wg.Wait()
		ackedNow := acked.Load() - before

		// Server down: badger recovers on open, then every draw of every
		// scope is recomputed and the cap checked.
		v, o := verifyQuota(t, bin, dataDir, total.periods)
		quotaRuns += v
		quotaOver += o

		restarted := time.Now()
		srv = startServer(t, bin, dataDir, logPath)
		restart := time.Since(restarted)

		var fresh []ackRecord
		for id, a := range readAcks(t, work) {
			if !checked[id] {
				fresh = append(fresh, a)
				checked[id] = true
			}
		}
		tl := checkAcks(t, srv.base(), creds["customs"], fresh)
		total.checked += tl.checked
		total.lost += tl.lost
		total.changed += tl.changed
		total.overshoots += tl.overshoots
		for p := range tl.periods {
			total.periods[p] = true
		}
		t.Logf("cycle %2d: kill -9 after %4dms with %2d requests in flight; %4d declarations acknowledged; restart %4dms; read back %5d decisions: lost %d, changed %d, over cap %d; quota verified in %d periods",
			cycle, after.Milliseconds(), flying, ackedNow, restart.Milliseconds(), tl.checked, tl.lost, tl.changed, tl.overshoots, v)
		if t.Failed() {
			break
		}
	}

	// Everything once more, on the last restart.
	all := readAcks(t, work)
	list := make([]ackRecord, 0, len(all))
	for _, a := range all {
		list = append(list, a)
	}
	final := checkAcks(t, srv.base(), creds["customs"], list)
	srv.stop(srv.cmd.Process.Pid)
	v, o := verifyQuota(t, bin, dataDir, total.periods)
	quotaRuns += v
	quotaOver += o
	for _, msg := range unexpected {
		t.Error(msg)
	}
	decisions := 0
	for _, a := range all {
		decisions += len(a.Lines)
	}
	resentOK, resentCreated := 0, 0
	for _, c := range clients {
		resentOK += c.resentOK
		resentCreated += c.resentCreated
	}
	t.Logf("declarations cut off by a kill and resent after the restart: %d answered 200 (committed before the kill, answer lost), %d answered 201 (not committed)",
		resentOK, resentCreated)
	t.Logf("crash harness: %d kill -9 cycles, %d declarations (%d decisions) acknowledged; final read-back of all %d decisions: lost=%d changed=%d overshoots=%d; quota verifications %d, overshoots=%d",
		cycles, len(all), decisions, final.checked, total.lost+final.lost, total.changed+final.changed,
		total.overshoots+final.overshoots, quotaRuns, quotaOver)
	if len(all) == 0 {
		t.Fatal("no declaration was acknowledged: the harness proved nothing")
	}
}
