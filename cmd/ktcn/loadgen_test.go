package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/policy"
)

func TestLoadgenLoopbackOnly(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:8080", "127.0.0.1:8080"},
		{"http://127.0.0.1:8080", "127.0.0.1:8080"},
		{"localhost:9", "127.0.0.1:9"},
		{"[::1]:8080", "[::1]:8080"},
		{"127.1.2.3:80", "127.1.2.3:80"},
	} {
		got, err := loopbackAddr(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("loopbackAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"10.0.0.1:8080", "0.0.0.0:8080", "example.com:80", "ktcn.internal:8080", "[::]:80",
		"192.168.1.5:8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:http", ":8080"} {
		if got, err := loopbackAddr(in); err == nil {
			t.Errorf("loopbackAddr(%q) = %q, want refused", in, got)
		}
	}
}

// The histogram's percentiles are never below the truth and at most 1/128
// above it, at every scale.
func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, scale := range []float64{100, 50e3, 3e6, 2e9} { // ns: sub-µs to seconds
		h := newHistogram()
		vals := make([]int64, 100_000)
		for i := range vals {
			vals[i] = int64(rng.ExpFloat64() * scale)
			h.record(time.Duration(vals[i]))
		}
		slices.Sort(vals)
		for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
			truth := vals[max(int(math.Ceil(q*float64(len(vals))))-1, 0)]
			got := int64(h.quantile(q))
			if got < truth || float64(got-truth) > float64(truth)/128+1 {
				t.Errorf("scale %g q %v: got %d, truth %d", scale, q, got, truth)
			}
		}
		if time.Duration(vals[len(vals)-1]) != h.quantile(1) {
			t.Errorf("scale %g: max %d, q1 %v", scale, vals[len(vals)-1], h.quantile(1))
		}
	}
	// Buckets tile the line: each value lands in the bucket whose upper
	// bound is the first at or above it.
	for v := int64(0); v < 1<<20; v += 1 + v/1000 {
		i := histBucket(v)
		if histUpper(i) < v || (i > 0 && histUpper(i-1) >= v) {
			t.Fatalf("value %d in bucket %d [.., %d], previous ends %d", v, i, histUpper(i), histUpper(i-1))
		}
	}
	a, b := newHistogram(), newHistogram()
	a.record(time.Millisecond)
	b.record(3 * time.Millisecond)
	a.merge(b)
	if a.n != 2 || a.quantile(1) != 3*time.Millisecond || a.mean() != 2*time.Millisecond {
		t.Fatalf("merge: n %d max %v mean %v", a.n, a.quantile(1), a.mean())
	}
}

// Every declaration a source mints parses under the default policy, has 1
// to max lines, and carries the run's prefix and a unique ID.
func TestDeclSource(t *testing.T) {
	p, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"history", "catalogue"} {
		src, err := newDeclSource(kind, firstStartSeed, 5, "T-1")
		if err != nil {
			t.Fatal(kind, err)
		}
		seen := map[string]bool{}
		hist := map[int]int{}
		for n := int64(1); n <= int64(2*len(src.tails)); n++ {
			body, lines := src.body(n)
			var d declaration.Input
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&d); err != nil {
				t.Fatalf("%s %d: %v: %s", kind, n, err, body)
			}
			if _, err := declaration.Parse(p, d); err != nil {
				t.Fatalf("%s %d: %v", kind, n, err)
			}
			if !strings.HasPrefix(d.DeclarationID, "T-1-") || seen[d.DeclarationID] || d.DeclarationID != src.id(n) {
				t.Fatalf("%s %d: ID %q (seen %v)", kind, n, d.DeclarationID, seen[d.DeclarationID])
			}
			seen[d.DeclarationID] = true
			if len(d.Lines) != lines || lines < 1 || lines > 5 {
				t.Fatalf("%s %d: %d lines, reported %d", kind, n, len(d.Lines), lines)
			}
			hist[lines]++
		}
		if len(hist) < 3 {
			t.Errorf("%s: line counts %v: want a spread of 1 to 5", kind, hist)
		}
	}
	for _, bad := range []string{"", "-x", "a b", strings.Repeat("x", 41)} {
		if _, err := newDeclSource("catalogue", 1, 5, bad); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	if _, err := newDeclSource("catalogue", 1, 6, "x"); err == nil {
		t.Error("6 lines accepted")
	}
	if _, err := newDeclSource("nope", 1, 5, "x"); err == nil {
		t.Error("unknown source accepted")
	}
}

// TestLoadgenAgainstServe runs the command end to end against the real
// wiring: closed loop bounded by count, open loop bounded by time, both
// authenticating with the data dir's development credentials.
func TestLoadgenAgainstServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn"}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- withApp(ctx, "serve", nil, getenv, &logs, func(a *app) error { return a.serve(ctx, ready) })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve ended early: %v\n%s", err, logs.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("serve did not start")
	}
	loadgen := func(args ...string) loadReport {
		t.Helper()
		var out, errs bytes.Buffer
		if code := Run(ctx, append([]string{"loadgen", "-addr", addr, "-data-dir", dir, "-json"}, args...),
			func(string) string { return "" }, &out, &errs); code != 0 {
			t.Fatalf("loadgen %v: exit %d: %s", args, code, errs.String())
		}
		var rep loadReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("report: %v\n%s", err, out.String())
		}
		return rep
	}
	closed := loadgen("-count", "60", "-clients", "4", "-prefix", "LGT-A")
	if closed.Sent != 60 || closed.Acked != 60 || closed.Status["201"] != 60 || closed.Decisions < 60 || closed.LatencyMs.P50 <= 0 ||
		closed.LatencyMs.P50 > closed.LatencyMs.P99 || closed.LatencyMs.P99 > closed.LatencyMs.Max {
		t.Fatalf("closed loop: %+v", closed)
	}
	// The same prefix again: every declaration is a resubmission (200).
	again := loadgen("-count", "20", "-clients", "2", "-prefix", "LGT-A")
	if again.Status["200"] != 20 {
		t.Fatalf("resubmission: %+v", again)
	}
	open := loadgen("-rate", "100", "-duration", "500ms", "-clients", "8", "-source", "catalogue", "-prefix", "LGT-B")
	if open.Mode != "open" || open.Sent < 45 || open.Sent > 50 || open.Acked != open.Sent {
		t.Fatalf("open loop: %+v", open)
	}
	var out, errs bytes.Buffer
	if code := Run(ctx, []string{"loadgen", "-addr", "10.0.0.1:8080", "-data-dir", dir}, func(string) string { return "" }, &out, &errs); code == 0 ||
		!strings.Contains(errs.String(), "loopback") {
		t.Fatalf("non-loopback target: exit %d: %s", code, errs.String())
	}
	if code := Run(ctx, []string{"loadgen", "-addr", addr, "-data-dir", t.TempDir()}, func(string) string { return "" }, &out, &errs); code == 0 ||
		!strings.Contains(errs.String(), "no nsw key") {
		t.Fatalf("no credentials: exit %d: %s", code, errs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), `"group commit stats"`) {
		t.Errorf("no group commit stats at shutdown:\n%s", logs.String())
	}
	// The report never carries the key.
	tok, _ := loadToken("", getenv, dir)
	if strings.Contains(out.String()+errs.String(), tok) {
		t.Error("loadgen printed its key")
	}
}

// -count alone runs until the count is sent; an explicit -duration still
// bounds it, and without -count the default -duration does.
func TestLoadDuration(t *testing.T) {
	for _, c := range []struct {
		count int64
		dur   time.Duration
		set   bool
		want  time.Duration
	}{
		{10_000, 10 * time.Second, false, maxLoadDuration},
		{10_000, 5 * time.Second, true, 5 * time.Second},
		{0, 10 * time.Second, false, 10 * time.Second},
		{0, time.Minute, true, time.Minute},
	} {
		if got := loadDuration(c.count, c.dur, c.set); got != c.want {
			t.Errorf("loadDuration(%d, %v, %v) = %v, want %v", c.count, c.dur, c.set, got, c.want)
		}
	}
}

// TestLoadgenSlowSeconds: a server that stalls its answers for the first
// 300 ms of a run shows that as the run's worst second, the first. (A
// loaded machine may make another second slow too, never as slow.)
func TestLoadgenSlowSeconds(t *testing.T) {
	src, err := newDeclSource("catalogue", 1, 1, "LGT-S")
	if err != nil {
		t.Fatal(err)
	}
	stallUntil := time.Now().Add(300 * time.Millisecond)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if time.Now().Before(stallUntil) {
			time.Sleep(120 * time.Millisecond)
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	rep := runLoad(t.Context(), loadPlan{addr: strings.TrimPrefix(srv.URL, "http://"), token: "t", rate: 50, clients: 16,
		duration: 2500 * time.Millisecond, timeout: 5 * time.Second, src: src})
	if rep.Acked != rep.Sent || rep.Sent < 100 {
		t.Fatalf("sent %d, acknowledged %d", rep.Sent, rep.Acked)
	}
	if len(rep.Slow) == 0 || rep.Slow[0].At != 0 || rep.Slow[0].MaxMs < 120 || rep.Slow[0].Over < 5 {
		t.Fatalf("slow seconds %+v; want second 0 first, its slowest at least 120 ms, at least 5 over 50 ms", rep.Slow)
	}
	for _, sl := range rep.Slow[1:] {
		if sl.At == 0 || sl.MaxMs > rep.Slow[0].MaxMs {
			t.Fatalf("slow seconds %+v: second 0 listed twice or not the worst", rep.Slow)
		}
	}
	var out bytes.Buffer
	rep.write(&out)
	if !strings.Contains(out.String(), "slow seconds 0s: ") {
		t.Errorf("report does not list the slow second:\n%s", out.String())
	}
}
