package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/store"
)

// BenchmarkScale is issue 21's scale benchmark (make bench-scale, not CI):
// the same measurements of the real `ktcn serve` on a store holding N
// decisions and on an empty one, in one run, as ratios. Both stores are
// filled through the service's own path — `ktcn fixtures generate
// -data-dir` replays a generated year (declarations decided by the
// service, results, alerts) — then customs overrides a share of the
// decisions over HTTP; the empty store gets a small history of the same
// universe, so both are loaded with the same declarations and only the
// history behind them differs.
//
// Per store, three phases, each on its own server process started after
// `ktcn compact` has let compaction catch up (with the fill, then with
// the phase before): closed loop (64 clients, KTCN_SCALE_PEAK_DURATION,
// 30s), open loop at 1,000 declarations/s (KTCN_SCALE_OPEN_DURATION,
// 60s), open loop at 200/s for the same time while every cron job is
// started by hand (pauses: p99.9 and max); each server's VmHWM, and du of
// the data dir settled after the last. Each server is first warmed up at
// 200/s for KTCN_SCALE_WARMUP (10s), not measured: a server that has
// just started reads its tables and fills its caches from cold, and the
// cron phase on the large store had its worst seconds in its first ten;
// a warm-up at the low rate leaves no compaction debt worth the name
// (2,000 decisions).
// With KTCN_SCALE_PROFILE=1 the server runs with -debug-addr and the
// closed loop is profiled (CPU, heap, block, mutex, a 5 s trace) into
// <dir>/profiles/.
//
// KTCN_SCALE_DECISIONS (2,000,000) sets N. The filled store is kept in
// KTCN_SCALE_DIR (./.bench-scale under make) and reused by the next run
// with the same N, because filling replays one transaction per declaration
// (about two thousand lots a second on two cores with -bulk, which does
// not sync each commit); each run's load adds to it, and the table says
// how many decisions the store held.
func BenchmarkScale(b *testing.B) {
	n := envInt(b, "KTCN_SCALE_DECISIONS", 0)
	if n == 0 {
		b.Skip("set KTCN_SCALE_DECISIONS (make bench-scale does)")
	}
	dir := os.Getenv("KTCN_SCALE_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ktcn-bench-scale")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		b.Fatal(err)
	}
	cfg := scaleConfig{
		bin:      buildKtcn(b),
		dir:      dir,
		peak:     envDuration(b, "KTCN_SCALE_PEAK_DURATION", 30*time.Second),
		open:     envDuration(b, "KTCN_SCALE_OPEN_DURATION", 60*time.Second),
		warmup:   envDuration(b, "KTCN_SCALE_WARMUP", 10*time.Second),
		openRate: float64(envInt(b, "KTCN_SCALE_OPEN_RATE", 1000)),
		lowRate:  float64(envInt(b, "KTCN_SCALE_PAUSE_RATE", 200)),
		profile:  os.Getenv("KTCN_SCALE_PROFILE") == "1",
	}
	// The universe of goods and importers a year of n lots has
	// (fixtures' universeSize: about 25 lots a goods, 2,000 an importer),
	// fixed for both stores so the load meets the same goods in each.
	cfg.goods = min(max(int(math.Round(float64(n)/25)), 150), 100_000)
	cfg.importers = min(max(int(math.Round(float64(n)/2000)), len(fixtures.Importers())), 5_000)
	src, err := newDeclSourceIn("history", firstStartSeed,
		// One line per declaration, as the figures were measured:
		// its rates (1,000/s, 200/s) are then decisions per second too.
		historyUniverse{lots: min(n, 20_000), goods: cfg.goods, importers: cfg.importers}, 1, "SCALE")
	if err != nil {
		b.Fatal(err)
	}
	cfg.src = src
	b.ResetTimer()
	empty := cfg.fill(b, "empty", envInt(b, "KTCN_SCALE_EMPTY_LOTS", 1000), true)
	full := cfg.fill(b, "n"+strconv.Itoa(n), n, os.Getenv("KTCN_SCALE_FRESH") == "1")
	// The empty store first: a cold page cache then penalises the empty
	// store, not the large one, so the ratio errs against the target.
	em := cfg.measure(b, empty)
	fm := cfg.measure(b, full)
	b.StopTimer()

	var sb strings.Builder
	writeScaleTable(&sb, cfg, em, fm)
	b.Log("\n" + sb.String())
	report := filepath.Join(dir, "scale-"+time.Now().UTC().Format("20060102T150405Z")+".txt")
	if err := os.WriteFile(report, []byte(sb.String()), 0o644); err != nil {
		b.Error(err)
	}
	ratio := fm.peak.DecisionsPerS / max(em.peak.DecisionsPerS, 1e-9)
	b.ReportMetric(ratio, "peak-ratio")
	b.ReportMetric(fm.peak.DecisionsPerS, "n-peak-decisions/s")
	b.ReportMetric(em.peak.DecisionsPerS, "empty-peak-decisions/s")
	b.ReportMetric(fm.open.LatencyMs.P99, "n-open-p99-ms")
	b.ReportMetric(fm.open.LatencyMs.P999, "n-open-p99.9-ms")
	b.ReportMetric(fm.low.LatencyMs.Max, "n-pause-max-ms")
	b.ReportMetric(fm.bytesPerDecision, "n-bytes/decision")
	b.ReportMetric(fm.hwmMiB, "n-peak-rss-MiB")
}

type scaleConfig struct {
	bin               string
	dir               string
	peak, open        time.Duration
	warmup            time.Duration
	openRate, lowRate float64
	profile           bool
	goods, importers  int
	src               *declSource
}

// scaleStore is a filled data dir and what the harness knows of it,
// kept beside it as store.json so a later run can reuse it.
type scaleStore struct {
	Name      string            `json:"name"`
	DataDir   string            `json:"data_dir"`
	Lots      int               `json:"lots"`
	Decisions int64             `json:"decisions"` // the fill's and every later run's load
	Overrides int               `json:"overrides"`
	Tokens    map[string]string `json:"tokens"`
	FillSecs  float64           `json:"fill_s"`
	FillBytes int64             `json:"fill_bytes"` // du after the fill, store closed
	Summary   string            `json:"fill_summary"`
}

func (s scaleStore) save(tb testing.TB) {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(s.DataDir), "store.json"), raw, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// fill makes (or, unless fresh, reuses) the store called name holding
// lots decisions of the benchmark's universe.
func (c scaleConfig) fill(tb testing.TB, name string, lots int, fresh bool) scaleStore {
	tb.Helper()
	base := filepath.Join(c.dir, fmt.Sprintf("%s-g%d-i%d", name, c.goods, c.importers))
	meta := filepath.Join(base, "store.json")
	if !fresh {
		if raw, err := os.ReadFile(meta); err == nil {
			var s scaleStore
			if err := json.Unmarshal(raw, &s); err == nil && s.Lots == lots {
				tb.Logf("%s: reusing %s (%d decisions; KTCN_SCALE_FRESH=1 refills)", name, s.DataDir, s.Decisions)
				return s
			}
		}
	}
	if err := os.RemoveAll(base); err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		tb.Fatal(err)
	}
	s := scaleStore{Name: name, DataDir: filepath.Join(base, "data"), Lots: lots, Tokens: map[string]string{}}
	logPath := filepath.Join(base, "fill.log")
	started := time.Now()
	// -bulk: a fill interrupted is refilled (store.json is written only
	// after it), so its commits need not wait for the disk one by one.
	out, err := c.run(logPath, "fixtures", "generate", "-lots", strconv.Itoa(lots), "-goods", strconv.Itoa(c.goods),
		"-importers", strconv.Itoa(c.importers), "-data-dir", s.DataDir, "-log-level", "warn", "-bulk")
	if err != nil {
		tb.Fatalf("fill %s: %v\n%s", name, err, tail(logPath, 4000))
	}
	s.FillSecs = time.Since(started).Seconds()
	s.Summary = strings.TrimSpace(string(out))
	s.Decisions = int64(lots)
	tb.Logf("%s: %d lots replayed through the service in %.0fs (%.0f lots/s)", name, lots, s.FillSecs, float64(lots)/s.FillSecs)
	// Keys the way an operator issues them on a stopped store.
	for _, p := range []string{"nsw", "customs", "admin"} {
		raw, err := c.run(logPath, "keys", "create", "-principal", p, "-data-dir", s.DataDir, "-log-level", "warn")
		if err != nil {
			tb.Fatalf("keys create %s: %v\n%s", p, err, tail(logPath, 4000))
		}
		var k struct {
			Token string `json:"token"`
		}
		if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&k); err != nil || k.Token == "" {
			tb.Fatalf("keys create %s: no token in %q (%v)", p, raw, err)
		}
		s.Tokens[p] = k.Token
	}
	// Overrides: one decision in 200, made by customs over the API.
	srv := startServer(tb, c.bin, s.DataDir, filepath.Join(base, "server.log"))
	s.Overrides = overrideSome(tb, srv.base(), s.Tokens["customs"], max(lots/200, 1))
	srv.stop(srv.cmd.Process.Pid)
	s.FillBytes = duBytes(tb, s.DataDir)
	tb.Logf("%s: %d overrides; %d bytes on disk after the fill (%.0f per decision)", name, s.Overrides, s.FillBytes, float64(s.FillBytes)/float64(lots))
	s.save(tb)
	return s
}

// run runs the binary, stderr appended to logPath, and returns stdout.
func (c scaleConfig) run(logPath string, args ...string) ([]byte, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(c.bin, args...)
	cmd.Stderr = logf
	return cmd.Output()
}

// overrideSome makes want overrides through POST
// /v1/decisions/{id}/override, 8 at a time, and returns how many took:
// customs orders an inspection of an exempt lot on intelligence (a
// released reduced-mode lot may only have its random check swapped, and
// relaxing a strict one waits for a second officer).
func overrideSome(tb testing.TB, base, token string, want int) int {
	tb.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	call := func(method, path string, body any) (int, []byte) {
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(method, base+path, rd)
		if err != nil {
			tb.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			tb.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	ids := make(chan string)
	var done atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for id := range ids {
				status, raw := call("POST", "/v1/decisions/"+url.PathEscape(id)+"/override",
					map[string]any{"reason_code": "intelligence", "reason_text": "scale benchmark", "inspect": true})
				if status == http.StatusCreated || status == http.StatusOK {
					done.Add(1)
				} else {
					once.Do(func() { tb.Logf("override %s: %d %s (further refusals not logged)", id, status, raw) })
				}
			}
		})
	}
	after, sent := "", 0
	for sent < want {
		q := url.Values{"mode": {"exempt"}, "inspect": {"false"}, "limit": {"100"}}
		if after != "" {
			q.Set("after", after)
		}
		status, raw := call("GET", "/v1/decisions?"+q.Encode(), nil)
		if status != http.StatusOK {
			tb.Fatalf("search decisions: %d %s", status, raw)
		}
		var page struct {
			Decisions []struct {
				ID string `json:"id"`
			} `json:"decisions"`
			Next string `json:"next"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			tb.Fatal(err)
		}
		// Every 4th of a page, so the overrides spread over the history.
		for i := 0; i < len(page.Decisions) && sent < want; i += 4 {
			ids <- page.Decisions[i].ID
			sent++
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	close(ids)
	wg.Wait()
	return int(done.Load())
}

// duBytes is the space the files under dir take on disk (du, not the
// sum of sizes: badger's files may be sparse or preallocated).
func duBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		total += allocatedBytes(path)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return total
}

// allocatedBytes is what path occupies on disk: st_blocks of 512 bytes.
func allocatedBytes(path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Blocks * 512
}

// storeFiles sums allocated bytes by kind of badger file.
func storeFiles(dir string) map[string]int64 {
	out := map[string]int64{}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		kind := filepath.Ext(path)
		if kind != ".sst" && kind != ".vlog" && kind != ".mem" {
			kind = "other"
		}
		out[kind] += allocatedBytes(path)
		return nil
	})
	return out
}

// scaleRun is what one store measured.
type scaleRun struct {
	store                scaleStore
	peak, open, low      loadReport
	warm                 int64 // decisions of the warm-ups, not measured
	jobs                 []string
	hwmMiB               float64
	mem                  map[string]float64 // procStatus at the end of the run
	bytes                int64              // du after the run's clean shutdown
	files                map[string]int64
	bytesPerDecision     float64
	fillBytesPerDecision float64
	stats                commitStats
	compactions          []string // slowCompactions of the measured phases
}

// measure runs the three phases against s, each on its own server
// started after ktcn compact has settled the store: a phase then measures
// the store, not the compaction debt the phase before it left (a 1,000/s
// phase at the store's capacity leaves minutes of it). The phases' load
// stays in the store, so later phases and runs meet a few percent more
// decisions; the table says how many.
//
// (Not copies of one settled store: badger truncates a table file before
// it deletes it, so a compaction in a copy whose tables are hard links
// empties the original's tables, and a full copy of a store of millions
// of decisions is gigabytes written before every phase.)
func (c scaleConfig) measure(tb testing.TB, s scaleStore) scaleRun {
	tb.Helper()
	base := filepath.Dir(s.DataDir)
	logPath := filepath.Join(base, "server.log")
	// Info, not the warn startServer sets: the store logs a compaction
	// of over 2 s at info, and the table puts them beside the slow
	// seconds. (Info is a few lines a minute; no line per request.)
	flags := []string{"-log-level", "info"}
	debugAddr := ""
	if c.profile {
		debugAddr = freeLoopbackAddr(tb)
		flags = append(flags, "-debug-addr", debugAddr)
	}
	settle := func() {
		started := time.Now()
		if out, err := c.run(logPath, "compact", "-data-dir", s.DataDir, "-log-level", "warn"); err != nil {
			tb.Fatalf("%s: compact: %v\n%s", s.Name, err, tail(logPath, 4000))
		} else {
			tb.Logf("%s: %s (%s)", s.Name, strings.TrimSpace(string(out)), time.Since(started).Round(time.Second))
		}
	}
	r := scaleRun{store: s}
	stamp := strconv.FormatInt(time.Now().Unix(), 36)
	phase := func(name string, run func(srv *serverProc, plan func(prefix string, rate float64, d time.Duration) loadPlan)) {
		settle()
		srv := startServerWith(tb, c.bin, s.DataDir, logPath, flags)
		pid := srv.cmd.Process.Pid
		plan := func(prefix string, rate float64, d time.Duration) loadPlan {
			src := *c.src
			src.prefix = prefix + stamp
			return loadPlan{addr: srv.addr, token: s.Tokens["nsw"], rate: rate, clients: 64, duration: d, timeout: 30 * time.Second, src: &src}
		}
		if c.warmup > 0 {
			r.warm += runLoad(context.Background(), plan("W"+name, c.lowRate, c.warmup)).Decisions
		}
		began := time.Now()
		run(srv, plan)
		ended := time.Now()
		r.mem = procStatus(tb, pid)
		r.hwmMiB = max(r.hwmMiB, r.mem["VmHWM"])
		srv.stop(pid)
		r.compactions = append(r.compactions, slowCompactions(tb, logPath, name, began, ended)...)
		st := lastCommitStats(tb, logPath)
		r.stats.Batches += st.Batches
		r.stats.Updates += st.Updates
	}

	phase("P", func(srv *serverProc, plan func(string, float64, time.Duration) loadPlan) {
		var profWG sync.WaitGroup
		if c.profile {
			dir := filepath.Join(c.dir, "profiles")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				tb.Fatal(err)
			}
			profWG.Go(func() { c.profilePeak(tb, debugAddr, filepath.Join(dir, s.Name)) })
		}
		r.peak = runLoad(context.Background(), plan("P", 0, c.peak))
		profWG.Wait()
	})
	phase("O", func(srv *serverProc, plan func(string, float64, time.Duration) loadPlan) {
		r.open = runLoad(context.Background(), plan("O", c.openRate, c.open))
	})
	phase("L", func(srv *serverProc, plan func(string, float64, time.Duration) loadPlan) {
		// The cron jobs, each started by hand at an even step through the
		// low-rate phase: on their own schedules most would not run in a
		// minute, and a pause they cause is what this phase looks for.
		var jobWG sync.WaitGroup
		jobWG.Go(func() {
			for _, j := range scaleJobs {
				time.Sleep(c.jobStep())
				status := postJob(srv.base(), s.Tokens["admin"], j)
				r.jobs = append(r.jobs, fmt.Sprintf("%s %d", j, status))
			}
		})
		r.low = runLoad(context.Background(), plan("L", c.lowRate, c.open))
		jobWG.Wait()
	})
	settle()
	r.bytes = duBytes(tb, s.DataDir)
	r.files = storeFiles(s.DataDir)
	s.Decisions += r.warm + r.peak.Decisions + r.open.Decisions + r.low.Decisions
	s.save(tb)
	r.store = s
	r.bytesPerDecision = float64(r.bytes) / float64(max(s.Decisions, 1))
	r.fillBytesPerDecision = float64(s.FillBytes) / float64(max(s.Lots, 1))
	return r
}

// slowCompactions lists the compactions over 2 s that the server logged
// (store.SlowCompactionMessage) and that ran while the phase's load did,
// each as the phase's letter, the levels, the seconds into the load it
// ran (from its end less its duration; the log's times are whole
// seconds) and how long: "O L0→L6 12–23s (11.5s, 32→35 tables)". On two
// cores such a compaction is the usual cause of a phase's slow seconds.
func slowCompactions(tb testing.TB, logPath, phase string, began, ended time.Time) []string {
	tb.Helper()
	var out []string
	eachLogLine(tb, logPath, store.SlowCompactionMessage, func(line []byte) {
		var l struct {
			Time      time.Time `json:"time"`
			From      int       `json:"from_level"`
			To        int       `json:"to_level"`
			TablesIn  int       `json:"tables_in"`
			TablesOut int       `json:"tables_out"`
			TookMs    int64     `json:"took_ms"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			tb.Fatalf("%s: %v: %s", logPath, err, line)
		}
		took := time.Duration(l.TookMs) * time.Millisecond
		start, end := l.Time.Add(-took), l.Time
		if end.Before(began.Truncate(time.Second)) || start.After(ended) {
			return
		}
		out = append(out, fmt.Sprintf("%s L%d→L%d %.0f–%.0fs (%.1fs, %d→%d tables)", phase, l.From, l.To,
			start.Sub(began).Seconds(), end.Sub(began).Seconds(), took.Seconds(), l.TablesIn, l.TablesOut))
	})
	return out
}

// scaleJobs are the cron jobs the low-rate phase starts, one every
// jobStep.
var scaleJobs = []string{"value-log-gc", "escalation", "outbox-compaction", "quota-rollover", "rescoring", "backup"}

func (c scaleConfig) jobStep() time.Duration { return c.open / time.Duration(len(scaleJobs)+1) }

// profilePeak fetches the profiles of the closed-loop phase: a CPU
// profile over most of it, a 5 s execution trace in its middle, then the
// heap (in use and allocated since start), block and mutex profiles,
// which count from the server's start.
func (c scaleConfig) profilePeak(tb testing.TB, addr, prefix string) {
	cpuSecs := max(int((c.peak-4*time.Second)/time.Second), 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(2 * time.Second)
		fetchProfile(tb, addr, "profile?seconds="+strconv.Itoa(cpuSecs), prefix+"-cpu.pprof")
	})
	wg.Go(func() {
		time.Sleep(c.peak / 2)
		fetchProfile(tb, addr, "trace?seconds=5", prefix+"-trace.out")
	})
	wg.Wait()
	for _, p := range []string{"heap", "allocs", "block", "mutex", "goroutine"} {
		fetchProfile(tb, addr, p, prefix+"-"+p+".pprof")
	}
}

func fetchProfile(tb testing.TB, addr, what, path string) {
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Get("http://" + addr + "/debug/pprof/" + what)
	if err != nil {
		tb.Errorf("profile %s: %v", what, err)
		return
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Errorf("profile %s: %d %v", what, resp.StatusCode, err)
		return
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		tb.Error(err)
	}
}

// postJob starts a cron job now (POST /v1/jobs/{name}/run) and returns
// the status; the job runs on in the server.
func postJob(base, token, name string) int {
	req, err := http.NewRequest("POST", base+"/v1/jobs/"+name+"/run", nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// procStatus reads the memory lines of /proc/<pid>/status, MiB:
// VmHWM is the peak resident set; RssAnon and RssFile split the current
// one into the heap and the badger files mapped in (tables and the value
// log are mmapped, and their resident pages count, though the kernel may
// drop them).
func procStatus(tb testing.TB, pid int) map[string]float64 {
	out := map[string]float64{}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Logf("/proc/%d/status: %v", pid, err)
		return out
	}
	for line := range strings.Lines(string(raw)) {
		if f := strings.Fields(line); len(f) >= 2 && (f[0] == "VmHWM:" || strings.HasPrefix(f[0], "Rss")) {
			kb, _ := strconv.ParseFloat(f[1], 64)
			out[strings.TrimSuffix(f[0], ":")] = kb / 1024
		}
	}
	return out
}

func writeScaleTable(w io.Writer, c scaleConfig, e, f scaleRun) {
	fmt.Fprintf(w, "ktcn serve on an empty store and on one of N decisions, one run (2-core machine shared with other work: compare ratios within the run)\n")
	fmt.Fprintf(w, "universe: %d goods, %d importers; load: declarations of one line from its history; phases %s closed (64 clients), %s open at %.0f/s, %s open at %.0f/s with every cron job started\n\n",
		c.goods, c.importers, c.peak, c.open, c.openRate, c.open, c.lowRate)
	row := func(name string, fe, ff float64, format string) {
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f\n", name, fmt.Sprintf(format, fe), fmt.Sprintf(format, ff), ff/max(fe, 1e-9))
	}
	fmt.Fprintf(w, "  %-44s %12s %12s %8s\n", "", "empty", "N", "N/empty")
	row("decisions in the store before the run", float64(e.store.Decisions-e.warm-e.peak.Decisions-e.open.Decisions-e.low.Decisions),
		float64(f.store.Decisions-f.warm-f.peak.Decisions-f.open.Decisions-f.low.Decisions), "%.0f")
	row("closed-loop peak, decisions/s", e.peak.DecisionsPerS, f.peak.DecisionsPerS, "%.0f")
	row("closed-loop peak, declarations/s", e.peak.AckedPerS, f.peak.AckedPerS, "%.0f")
	row("closed-loop p99 ms", e.peak.LatencyMs.P99, f.peak.LatencyMs.P99, "%.1f")
	for _, ph := range []struct {
		name string
		e, f loadReport
	}{{fmt.Sprintf("open %.0f/s", c.openRate), e.open, f.open}, {fmt.Sprintf("open %.0f/s + cron", c.lowRate), e.low, f.low}} {
		row(ph.name+": declarations/s acknowledged", ph.e.AckedPerS, ph.f.AckedPerS, "%.0f")
		row(ph.name+": p50 ms", ph.e.LatencyMs.P50, ph.f.LatencyMs.P50, "%.2f")
		row(ph.name+": p99 ms", ph.e.LatencyMs.P99, ph.f.LatencyMs.P99, "%.2f")
		row(ph.name+": p99.9 ms", ph.e.LatencyMs.P999, ph.f.LatencyMs.P999, "%.2f")
		row(ph.name+": max ms", ph.e.LatencyMs.Max, ph.f.LatencyMs.Max, "%.2f")
		row(ph.name+": sent late (>10 ms)", float64(ph.e.Late), float64(ph.f.Late), "%.0f")
	}
	row("bytes on disk per decision after the fill", e.fillBytesPerDecision, f.fillBytesPerDecision, "%.0f")
	row("bytes on disk per decision after the run", e.bytesPerDecision, f.bytesPerDecision, "%.0f")
	row("  of which .sst MiB", float64(e.files[".sst"])/(1<<20), float64(f.files[".sst"])/(1<<20), "%.1f")
	row("  of which .vlog MiB", float64(e.files[".vlog"])/(1<<20), float64(f.files[".vlog"])/(1<<20), "%.1f")
	row("  of which .mem and other MiB", float64(e.files[".mem"]+e.files["other"])/(1<<20), float64(f.files[".mem"]+f.files["other"])/(1<<20), "%.1f")
	row("peak RSS of the server (VmHWM) MiB", e.hwmMiB, f.hwmMiB, "%.0f")
	row("  RSS at the end: anonymous MiB", e.mem["RssAnon"], f.mem["RssAnon"], "%.0f")
	row("  RSS at the end: files mapped in MiB", e.mem["RssFile"], f.mem["RssFile"], "%.0f")
	row("decisions per synced batch, whole run", float64(e.stats.Updates)/float64(max(e.stats.Batches, 1)),
		float64(f.stats.Updates)/float64(max(f.stats.Batches, 1)), "%.1f")
	fmt.Fprintf(w, "\n  targets at N: peak ratio %.2f (>= 0.80); at %.0f/s p99 %.1f ms (< 50), p99.9 %.1f ms (< 100); at %.0f/s with cron max %.1f ms (< 50); %.0f bytes/decision (<= 2048)\n",
		f.peak.DecisionsPerS/max(e.peak.DecisionsPerS, 1e-9), c.openRate, f.open.LatencyMs.P99, f.open.LatencyMs.P999, c.lowRate, f.low.LatencyMs.Max, f.bytesPerDecision)
	fmt.Fprintf(w, "  cron jobs started (status), one every %s of the low-rate phase: empty %v; N %v\n", c.jobStep(), e.jobs, f.jobs)
	slow := func(r loadReport) string {
		var parts []string
		for _, sl := range r.Slow {
			parts = append(parts, fmt.Sprintf("%ds %.0f ms (%d over)", sl.At, sl.MaxMs, sl.Over))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	fmt.Fprintf(w, "  low-rate phase, slow seconds (worst first: second, slowest, how many over %d ms): empty %s; N %s\n", slowSecondMs, slow(e.low), slow(f.low))
	fmt.Fprintf(w, "  compactions over 2 s during a phase's load (P closed, O open, L low rate; levels, seconds into the load, how long): empty %v; N %v\n", e.compactions, f.compactions)
	fmt.Fprintf(w, "  each phase on its own server, started after ktcn compact settled the store and warmed up at %.0f/s for %s (not measured); bytes on disk: du of the data dir after the run, settled again (no forced Flatten); peak RSS the highest of the three servers, RSS at the end the cron phase's\n", c.lowRate, c.warmup)
	for _, r := range []scaleRun{e, f} {
		fmt.Fprintf(w, "  %s: fill %s\n", r.store.Name, strings.ReplaceAll(r.store.Summary, "\n", "\n      "))
	}
}
