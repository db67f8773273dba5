package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
)

// Issue 15, acceptance 4: "32 parallel 1 MiB bodies of empty lines keep
// the resident memory within 100 MB of idle". Before the streaming decoder
// one such body raised the resident memory by ~180 MB and 32 reached
// 5.6 GB. Run by make crash-test, which sets KTCN_BIN; skipped without it
// (it starts the real binary) or without /proc.

const (
	memoryBurst     = 32        // requests at once
	memoryRounds    = 3         // bursts, one after another
	memoryAllowance = 100 << 20 // bytes over idle
)

// vmStatus reads a field of /proc/<pid>/status in bytes.
func vmStatus(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// emptyLines is a declaration body of exactly size bytes whose lines are
// all {}: 349,501 of them in 1 MiB.
func emptyLines(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"declaration_id":"EMPTY","importer_tax_code":"0101234567","lines":[{}`)
	for b.Len()+5 <= size {
		b.WriteString(",{}")
	}
	b.WriteString(strings.Repeat(" ", size-b.Len()-2))
	b.WriteString("]}")
	return b.Bytes()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func TestEmptyLinesMemory(t *testing.T) {
	bin := os.Getenv("KTCN_BIN")
	if bin == "" {
		t.Skip("starts the real binary: set KTCN_BIN (make crash-test does)")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("reads the resident memory from /proc")
	}
	work := workDir(t, os.Getenv("KTCN_CRASH_DIR"), "ktcn-memory-*")
	dataDir := filepath.Join(work, "data")
	logPath := filepath.Join(work, "server.log")
	// Reference data only: a first start with fixtures otherwise loads a
	// year of history in the background, whose memory would be counted
	// with the burst's.
	srv := startServerWith(t, bin, dataDir, logPath, []string{"-fixtures", "reference"})
	pid := srv.cmd.Process.Pid
	defer srv.stop(pid)
	nsw := devCreds(t, dataDir)["nsw"]
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: memoryBurst}}
	defer client.CloseIdleConnections()
	post := func(body []byte) (int, []byte, error) {
		req, err := http.NewRequest(http.MethodPost, srv.base()+"/v1/declarations", bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+nsw)
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	normal := func(id string) (time.Duration, error) {
		body := `{"declaration_id":"` + id + `","importer_tax_code":"0101234567","lines":[{"line_no":1,"hs_code":"1905.31.10",
		  "product_name":"Bánh quy bơ","manufacturer":"Nobody Biscuits","origin":"DK","procedure":"food_safety","quantity":5,"unit":"kg"}]}`
		began := time.Now()
		status, b, err := post([]byte(body))
		if err == nil && status != http.StatusCreated {
			err = fmt.Errorf("status %d: %s", status, b)
		}
		return time.Since(began), err
	}

	// Idle: a server that has served a declaration and settled.
	if _, err := normal("MEM-WARM"); err != nil {
		t.Fatalf("warm-up declaration: %v", err)
	}
	time.Sleep(time.Second)
	idle, err := vmStatus(pid, "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	// Reset the kernel's high-water mark to now, so VmHWM after the burst
	// is its true peak between samples too (not where it is refused).
	hwmReset := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil

	var (
		mu     sync.Mutex
		peak   = idle
		stop   = make(chan struct{})
		walked sync.WaitGroup
	)
	walked.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if rss, err := vmStatus(pid, "VmRSS"); err == nil {
					mu.Lock()
					peak = max(peak, rss)
					mu.Unlock()
				}
			}
		}
	})

	body := emptyLines(api.DefaultBodyLimit)
	var (
		refused, failed int
		firstFailure    string
		during          []time.Duration
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for round := range memoryRounds {
		var wg sync.WaitGroup
		results := make(chan error, memoryBurst)
		for range memoryBurst {
			wg.Go(func() {
				status, b, err := post(body)
				var p api.Problem
				switch {
				case err != nil:
				case status != http.StatusUnprocessableEntity || json.Unmarshal(b, &p) != nil || p.Field != "lines":
					err = fmt.Errorf("status %d: %.200s", status, b)
				}
				results <- err
			})
		}
		// A normal declaration while the burst is on (the issue saw 214 ms
		// instead of 2): logged, as wall-clock figures are not asserted.
		if d, err := normal(fmt.Sprintf("MEM-%d", round)); err != nil && ctx.Err() == nil {
			t.Errorf("a normal declaration during the burst: %v", err)
		} else {
			during = append(during, d)
		}
		wg.Wait()
		close(results)
		for err := range results {
			if err != nil {
				failed++
				if firstFailure == "" {
					firstFailure = err.Error()
				}
				continue
			}
			refused++
		}
	}
	close(stop)
	walked.Wait()
	after, _ := vmStatus(pid, "VmRSS")
	hwm, hwmErr := vmStatus(pid, "VmHWM")
	if !hwmReset || hwmErr != nil {
		hwm = peak // the sampled peak is all there is
	}
	top := max(peak, hwm)
	t.Logf("%d rounds of %d parallel %s bodies of %d empty lines: %d refused 422 naming lines, %d failed",
		memoryRounds, memoryBurst, mib(int64(len(body))), bytes.Count(body, []byte("{}")), refused, failed)
	t.Logf("resident memory: idle %s, peak %s sampled every 2 ms, %s by the kernel's high-water mark%s, after %s; peak over idle %s (allowed %s)",
		mib(idle), mib(peak), mib(hwm), map[bool]string{true: "", false: " (not resettable here: sampled)"}[hwmReset], mib(after),
		mib(top-idle), mib(memoryAllowance))
	t.Logf("a normal declaration during each burst took %v", during)
	if failed > 0 {
		t.Errorf("%d of %d requests did not get 422 naming lines; first: %s", failed, memoryRounds*memoryBurst, firstFailure)
	}
	if top-idle > memoryAllowance {
		t.Errorf("resident memory rose %s over idle, more than %s (acceptance 4 of issue 15)", mib(top-idle), mib(memoryAllowance))
	}
}
