package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection/feed"
)

// TestCrashKill9Delivery: the crash harness for the NSW feed. Each cycle
// starts the real binary on the same data dir, decides declarations from
// several clients while webhook delivery runs to the reference receiver
// (failing 30% of requests), and kill -9s the server at a random moment.
// After the last cycle the server runs until delivery catches up; then the
// receiver holds exactly the outbox (same IDs, same sequence numbers), the
// outbox's sequence has no gap, and every acknowledged decision has its
// decision.made event. Skipped unless KTCN_CRASH_CYCLES is set (make
// crash-test).
func TestCrashKill9Delivery(t *testing.T) {
	cycles := envInt(t, "KTCN_CRASH_CYCLES", 0)
	if cycles <= 0 {
		t.Skip("KTCN_CRASH_CYCLES not set (make crash-test)")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	bin := buildKtcn(t)
	work := workDir(t, os.Getenv("KTCN_CRASH_DIR"), "feed-crash-*")
	dataDir, logPath := filepath.Join(work, "data"), filepath.Join(work, "serve.log")
	flags := []string{"-webhook-retries", "0s,20ms,50ms,100ms,200ms,500ms,1s,2s,2s,2s,5s,5s,5s,10s,10s,10s"}

	nsw := &flakyNSW{}
	rsrv := httptest.NewServer(nsw)
	defer rsrv.Close()
	record := filepath.Join(work, "nsw.jsonl")

	s := startServerWith(t, bin, dataDir, logPath, flags)
	creds := readDevCredentials(t, filepath.Join(dataDir, devCredentialsFile))
	do := func(base, who, method, path string, body any, out any) (int, error) {
		var raw []byte
		if body != nil {
			raw, _ = json.Marshal(body)
		}
		resp, err := send(base, creds[who], method, path, string(raw))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, err
		}
		if out != nil && resp.StatusCode < 300 {
			if err := json.Unmarshal(b, out); err != nil {
				return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
			}
		}
		return resp.StatusCode, nil
	}
	var wh struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if status, err := do(s.base(), "admin", "POST", "/v1/webhooks", map[string]any{"url": rsrv.URL + "/nsw"}, &wh); err != nil || status != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", status, err)
	}
	rcv, err := newReceiver(receiverConfig{Secrets: []string{wh.Secret}, Record: record, FailRate: 0.3, Seed: seed, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	nsw.rcv.Store(rcv)

	var (
		mu    sync.Mutex
		acked = map[string]bool{} // decision IDs whose declaration was answered
		next  atomic.Int64
	)
	for c := range cycles {
		if c > 0 {
			s = startServerWith(t, bin, dataDir, logPath, flags)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					i := next.Add(1)
					body := map[string]any{"declaration_id": fmt.Sprintf("FC-%07d", i), "importer_tax_code": "0101234567",
						"lines": []map[string]any{{"line_no": 1, "hs_code": "1905.31.20", "product_name": fmt.Sprintf("Bánh %d", i%41),
							"manufacturer": "Crash Biscuits", "origin": "DK", "procedure": "food_safety", "quantity": 5, "unit": "kg"}}}
					var out struct {
						Lines []struct {
							DecisionID string `json:"decision_id"`
						} `json:"lines"`
					}
					status, err := do(s.base(), "nsw", "POST", "/v1/declarations", body, &out)
					if err != nil {
						return // the server is gone: this declaration was never acknowledged
					}
					if status != http.StatusCreated {
						t.Errorf("declare %d: %d", i, status)
						return
					}
					mu.Lock()
					for _, l := range out.Lines {
						acked[l.DecisionID] = true
					}
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		s.kill()
		close(stop)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}

	// Back up, no load: delivery catches up with what survived.
	s = startServerWith(t, bin, dataDir, logPath, flags)
	var outbox []feed.Event
	for after := uint64(0); ; {
		var page struct {
			Events []feed.Event `json:"events"`
			Next   uint64       `json:"next"`
		}
		if status, err := do(s.base(), "auditor", "GET", fmt.Sprintf("/v1/events?after=%d&limit=1000", after), nil, &page); err != nil || status != http.StatusOK {
			t.Fatalf("pull: %d %v", status, err)
		}
		outbox = append(outbox, page.Events...)
		if page.Next == after {
			break
		}
		after = page.Next
	}
	made := map[string]bool{}
	for i, e := range outbox {
		if e.Seq != uint64(i+1) {
			t.Fatalf("outbox event %d has seq %d: a gap", i+1, e.Seq)
		}
		if e.Type == feed.DecisionMade {
			made[e.Payload.DecisionID] = true
		}
	}
	for id := range acked {
		if !made[id] {
			t.Errorf("acknowledged decision %s has no decision.made event", id)
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for rcv.Stats().Events < len(outbox) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	st := rcv.Stats()
	t.Logf("%d cycles: %d acknowledged decisions, %d events in the outbox; receiver %+v", cycles, len(acked), len(outbox), st)
	recs, err := readReceiverRecord(record)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, r := range recs {
		if r.Status == recordAccepted {
			got[r.WebhookID] = r.Seq
		}
	}
	if len(got) != len(outbox) || st.Rejected != 0 || st.OrderViolations != 0 {
		t.Fatalf("receiver holds %d events, the outbox %d (rejected %d, out of order %d)\n%s", len(got), len(outbox), st.Rejected, st.OrderViolations,
			tail(logPath, 3000))
	}
	for _, e := range outbox {
		if seq, ok := got[e.ID]; !ok || seq != e.Seq {
			t.Fatalf("event %d (%s) not received as sent", e.Seq, e.ID)
		}
	}
	s.stop(s.cmd.Process.Pid)
	if strings.Contains(tail(logPath, 1<<20), `"level":"error"`) {
		t.Logf("errors logged (kills cut requests):\n%s", tail(logPath, 3000))
	}
}
