package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The real binary under load from the real load generator: the figures
// `make bench` and docs/performance.md quote that no in-process benchmark
// can give (the server's own process, its own logging and HTTP stack, the
// first-start history in the store, the kernel's syncs).

func envDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		tb.Fatalf("%s=%q: want a positive duration", name, s)
	}
	return d
}

// firstStart gives a data dir that serve has initialised (fixtures, a year
// of history, development credentials) and stopped, so what is measured
// next is load, not loading.
func firstStart(tb testing.TB, bin, work string) (dataDir, logPath string) {
	tb.Helper()
	dataDir, logPath = filepath.Join(work, "data"), filepath.Join(work, "server.log")
	srv := startServer(tb, bin, dataDir, logPath)
	srv.stop(srv.cmd.Process.Pid)
	return dataDir, logPath
}

// loadPhase starts the server on dataDir, runs one plan against it, stops it
// with SIGINT and returns what loadgen measured with the group commit stats
// the server logged at shutdown (one process per phase, so the stats are
// the phase's own).
func loadPhase(tb testing.TB, bin, dataDir, logPath string, plan loadPlan) (loadReport, commitStats) {
	tb.Helper()
	srv := startServer(tb, bin, dataDir, logPath)
	plan.addr = srv.addr
	rep := runLoad(context.Background(), plan)
	srv.stop(srv.cmd.Process.Pid)
	return rep, lastCommitStats(tb, logPath)
}

// BenchmarkLoadHalfPeak measures the peak rate of `ktcn serve` under 64
// closed-loop clients, then runs open loop at half that rate (latency from
// each declaration's due time, so queueing counts) and reports p50/p99 and
// decisions per fsync at both. It runs the whole experiment once whatever
// b.N is: make bench passes -benchtime 1x. KTCN_LOAD_DURATION sets each
// phase's length (10s).
func BenchmarkLoadHalfPeak(b *testing.B) {
	bin := buildKtcn(b)
	work := workDir(b, os.Getenv("KTCN_BENCH_DIR"), "load-*")
	dataDir, logPath := firstStart(b, bin, work)
	token := devCreds(b, dataDir)["nsw"]
	d := envDuration(b, "KTCN_LOAD_DURATION", 10*time.Second)
	src, err := newDeclSource("history", firstStartSeed, 5, "PEAK"+strconv.FormatInt(time.Now().Unix(), 36))
	if err != nil {
		b.Fatal(err)
	}
	halfSrc := *src
	halfSrc.prefix = "HALF" + strings.TrimPrefix(src.prefix, "PEAK")
	b.ResetTimer()
	peak, pst := loadPhase(b, bin, dataDir, logPath, loadPlan{token: token, clients: 64, duration: d, timeout: 30 * time.Second, src: src})
	if peak.Acked == 0 {
		b.Fatalf("peak phase: nothing acknowledged: %+v", peak)
	}
	half, hst := loadPhase(b, bin, dataDir, logPath, loadPlan{token: token, rate: peak.AckedPerS / 2, clients: 64, duration: d,
		timeout: 30 * time.Second, src: &halfSrc})
	b.StopTimer()
	for _, r := range []struct {
		name string
		rep  loadReport
		st   commitStats
	}{{"peak", peak, pst}, {"half", half, hst}} {
		var sb strings.Builder
		r.rep.write(&sb)
		b.Logf("%s phase:\n%s  server: %d synced batches, %d updates, %.1f updates/batch, largest %d",
			r.name, sb.String(), r.st.Batches, r.st.Updates, float64(r.st.Updates)/float64(max(r.st.Batches, 1)), r.st.MaxBatch)
	}
	b.ReportMetric(peak.DecisionsPerS, "peak-decisions/s")
	b.ReportMetric(float64(peak.Decisions)/float64(max(pst.Batches, 1)), "peak-decisions/fsync")
	b.ReportMetric(peak.LatencyMs.P99, "peak-p99-ms")
	b.ReportMetric(half.DecisionsPerS, "half-decisions/s")
	b.ReportMetric(float64(half.Decisions)/float64(max(hst.Batches, 1)), "half-decisions/fsync")
	b.ReportMetric(half.LatencyMs.P50, "half-p50-ms")
	b.ReportMetric(half.LatencyMs.P99, "half-p99-ms")
	b.ReportMetric(float64(half.Late), "half-late")
}

// straceUsable reports whether strace can trace a child here (it needs
// ptrace, which some containers forbid).
func straceUsable() (string, bool) {
	path, err := exec.LookPath("strace")
	if err != nil {
		return "", false
	}
	return path, exec.Command(path, "-f", "-e", "trace=none", "-o", os.DevNull, "true").Run() == nil
}

// childPID is the first child of pid (the server strace started).
func childPID(tb testing.TB, pid int) int {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			if fields := strings.Fields(string(b)); len(fields) > 0 {
				n, err := strconv.Atoi(fields[0])
				if err == nil {
					return n
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("no child of strace (%d)", pid)
	return 0
}

// straceCounts reads the calls column of `strace -c` output.
func straceCounts(tb testing.TB, path string) map[string]int64 {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// % time  seconds  usecs/call  calls  [errors]  syscall
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[len(fields)-1] == "total" {
			continue
		}
		if _, err := strconv.ParseFloat(fields[0], 64); err != nil {
			continue
		}
		n, err := strconv.ParseInt(fields[3], 10, 64)
		if err != nil {
			continue
		}
		out[fields[len(fields)-1]] = n
	}
	return out
}

// TestAckFollowsSync is the measurement behind "acknowledged only after a
// sync": the real server under strace, counting every fsync, fdatasync,
// msync and sync_file_range of all its threads while loadgen drives it, then
// the group commit stats it logs at shutdown. badger with SyncWrites msyncs
// its memory-mapped write-ahead log (and value log) inside every commit,
// and the committer answers no caller before its batch's commit returns, so
// syncs ≥ batches is what SyncWrites on looks like; with SyncWrites off the
// count would stay near zero however many batches committed. Set
// KTCN_SYNC_PROOF=1 (make crash-test does); it skips where strace cannot
// trace.
func TestAckFollowsSync(t *testing.T) {
	if os.Getenv("KTCN_SYNC_PROOF") == "" {
		t.Skip("set KTCN_SYNC_PROOF=1 (make crash-test does)")
	}
	strace, ok := straceUsable()
	if !ok {
		t.Skip("strace is missing or cannot trace here (apt-get install strace; ptrace must be allowed)")
	}
	bin := buildKtcn(t)
	work := workDir(t, os.Getenv("KTCN_CRASH_DIR"), "ktcn-sync-*")
	dataDir, logPath := firstStart(t, bin, work)
	token := devCreds(t, dataDir)["nsw"]
	counts := filepath.Join(work, "strace.txt")
	// --seccomp-bpf stops the server only at the traced calls, so it runs
	// at nearly full speed and batches look as they do untraced; -w times
	// each call by the wall clock, which is what a sync costs a caller.
	srv := startServer(t, bin, dataDir, logPath, strace, "--seccomp-bpf", "-f", "-c", "-w", "-o", counts,
		"-e", "trace=fsync,fdatasync,msync,sync_file_range")
	server := childPID(t, srv.cmd.Process.Pid)
	src, err := newDeclSource("history", firstStartSeed, 5, "SYNC"+strconv.FormatInt(time.Now().Unix(), 36))
	if err != nil {
		t.Fatal(err)
	}
	rep := runLoad(context.Background(), loadPlan{addr: srv.addr, token: token, clients: 16,
		duration: envDuration(t, "KTCN_SYNC_PROOF_DURATION", 3*time.Second), timeout: 30 * time.Second, src: src})
	srv.stop(server) // SIGINT to the server; strace writes its counts when it exits
	st := lastCommitStats(t, logPath)
	calls := straceCounts(t, counts)
	if raw, err := os.ReadFile(counts); err == nil {
		t.Logf("strace -c:\n%s", raw) // time per call too: what one sync costs here
	}
	syncs := calls["fsync"] + calls["fdatasync"] + calls["msync"] + calls["sync_file_range"]
	t.Logf("%d declarations acknowledged (%d decisions) by `ktcn serve` under strace; the server logged %d synced batches carrying %d updates (%.1f per batch, largest %d); strace counted msync %d, fdatasync %d, fsync %d, sync_file_range %d: %.2f syncs per batch",
		rep.Acked, rep.Decisions, st.Batches, st.Updates, float64(st.Updates)/float64(max(st.Batches, 1)), st.MaxBatch,
		calls["msync"], calls["fdatasync"], calls["fsync"], calls["sync_file_range"], float64(syncs)/float64(max(st.Batches, 1)))
	if rep.Acked == 0 || st.Batches == 0 {
		t.Fatalf("nothing measured: %+v, %+v", rep, st)
	}
	if st.Updates < rep.Acked {
		t.Errorf("%d declarations acknowledged but only %d updates committed", rep.Acked, st.Updates)
	}
	if syncs < st.Batches {
		t.Errorf("%d syncs for %d synced batches: some batch was acknowledged without a sync", syncs, st.Batches)
	}
}
