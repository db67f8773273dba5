package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/ktcn/ktcn/inspection/feed"
)

// flakyNSW stands in front of the reference receiver: before the
// subscription's secret is known it answers 503, and while down it drops
// every connection unanswered, as a receiver that is not there.
type flakyNSW struct {
	rcv  atomic.Pointer[receiver]
	down atomic.Bool
}

func (f *flakyNSW) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	rcv := f.rcv.Load()
	if rcv == nil {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	rcv.ServeHTTP(w, r)
}

// feedE2ESize is how many declarations TestWebhooksEndToEnd decides
// (KTCN_FEED_E2E_DECLARATIONS, default 10,000).
func feedE2ESize(t *testing.T) int {
	if s := os.Getenv("KTCN_FEED_E2E_DECLARATIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("KTCN_FEED_E2E_DECLARATIONS=%q", s)
		}
		return n
	}
	return 10000
}

// TestWebhooksEndToEnd: the real wiring decides 10,000 declarations, with
// results on a share of their assignments, overrides and alerts, while
// webhooks deliver to the reference receiver failing 30% of requests at
// random and down for a stretch. At the end the receiver holds every
// event of the outbox, each verified by the Standard Webhooks library,
// none out of order per declaration; duplicates only as retries of one
// webhook-id.
func TestWebhooksEndToEnd(t *testing.T) {
	n := feedE2ESize(t)
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn",
		"KTCN_RATE_LIMIT": "1000000", "KTCN_RATE_BURST": "1000000",
		// A day of retries in about a minute: the outage and the random
		// failures must not exhaust it.
		"KTCN_WEBHOOK_RETRIES": "0s,20ms,50ms,100ms,200ms,400ms,800ms,1s,2s,3s,5s,5s,5s,10s,10s,10s"}
	nsw := &flakyNSW{}
	rsrv := httptest.NewServer(nsw)
	defer rsrv.Close()

	base, stop := serveInProcess(t, env)
	call := caller(t, base, readDevCredentials(t, filepath.Join(dir, devCredentialsFile)))

	var wh struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if status := call("admin", "POST", "/v1/webhooks", map[string]any{"url": rsrv.URL + "/nsw", "note": "e2e"}, &wh); status != http.StatusCreated {
		t.Fatalf("create webhook: %d", status)
	}
	record := filepath.Join(t.TempDir(), "nsw.jsonl")
	rcv, err := newReceiver(receiverConfig{Secrets: []string{wh.Secret}, Record: record,
		FailRate: 0.3, Seed: 7, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	nsw.rcv.Store(rcv)

	// The workload: 16 NSW clients; agencies post results on a third of
	// the inspections; customs overrides one lot in 50 and raises an alert
	// every 500 declarations. The receiver is down from a quarter to a
	// third of the way.
	type lineOut struct {
		DecisionID   string `json:"decision_id"`
		Inspect      bool   `json:"inspect"`
		Agency       string `json:"agency"`
		AssignmentID string `json:"assignment_id"`
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	products := []struct{ hs, name, maker, origin, proc string }{
		{"0402.21.20", "Sữa bột", "E2E Dairy", "NZ", "food_safety"},
		{"1905.31.20", "Bánh quy", "E2E Biscuits", "DK", "food_safety"},
		{"8516.71.00", "Ấm đun nước", "E2E Kettles", "CN", "quality"},
	}
	for c := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				switch i {
				case int64(n) / 4:
					nsw.down.Store(true)
				case int64(n) / 3:
					nsw.down.Store(false)
				}
				p := products[i%3]
				body := map[string]any{"declaration_id": fmt.Sprintf("E2E-%06d", i), "importer_tax_code": "0101234567",
					"lines": []map[string]any{{"line_no": 1, "hs_code": p.hs, "product_name": fmt.Sprintf("%s %d", p.name, i%97),
						"manufacturer": p.maker, "origin": p.origin, "procedure": p.proc, "quantity": 10, "unit": "kg"}}}
				var out struct {
					Lines []lineOut `json:"lines"`
				}
				if status := call("nsw", "POST", "/v1/declarations", body, &out); status != http.StatusCreated || len(out.Lines) != 1 {
					t.Errorf("declare %d: %d", i, status)
					return
				}
				l := out.Lines[0]
				switch {
				case l.Inspect && i%50 == 7:
					ov := map[string]any{"reason_code": "duplicate_declaration", "reason_text": "declared twice", "inspect": false}
					if status := call("customs", "POST", "/v1/decisions/"+l.DecisionID+"/override", ov, nil); status != http.StatusCreated {
						t.Errorf("override %s: %d", l.DecisionID, status)
					}
				case l.Inspect && rng.IntN(3) == 0:
					res := map[string]any{"outcome": "pass", "inspected_at": time.Now().Format(time.RFC3339Nano)}
					if rng.IntN(10) == 0 {
						res = map[string]any{"outcome": "fail", "inspected_at": time.Now().Format(time.RFC3339Nano),
							"findings": []map[string]string{{"code": "LABEL", "text": "label missing"}}}
					}
					if status := call("agency:"+l.Agency, "POST", "/v1/assignments/"+l.AssignmentID+"/result", res, nil); status != http.StatusCreated {
						t.Errorf("result %s: %d", l.AssignmentID, status)
					}
				}
				if i%500 == 0 {
					al := map[string]any{"authority": "RASFF", "reference": fmt.Sprintf("E2E-%d", i), "reason": "Salmonella",
						"issued_at": time.Now().Format(time.RFC3339), "target": map[string]string{"kind": "manufacturer", "manufacturer": p.maker, "origin": p.origin}}
					if status := call("customs", "POST", "/v1/alerts", al, nil); status != http.StatusCreated {
						t.Errorf("alert %d: %d", i, status)
					}
				}
			}
		})
	}
	wg.Wait()
	nsw.down.Store(false)
	if t.Failed() {
		t.FailNow()
	}

	// The outbox, as the auditor pulls it.
	pull := func() []feed.Event {
		var outbox []feed.Event
		for after := uint64(0); ; {
			var page struct {
				Events []feed.Event `json:"events"`
				Next   uint64       `json:"next"`
			}
			if status := call("auditor", "GET", fmt.Sprintf("/v1/events?after=%d&limit=1000", after), nil, &page); status != http.StatusOK {
				t.Fatalf("pull: %d", status)
			}
			outbox = append(outbox, page.Events...)
			if page.Next == after {
				break
			}
			after = page.Next
		}
		for i, e := range outbox {
			if e.Seq != uint64(i+1) {
				t.Fatalf("outbox event %d has seq %d", i+1, e.Seq)
			}
		}
		return outbox
	}
	outbox := pull()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		for rcv.Stats().Events < len(outbox) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		// The server's jobs run on their schedules (escalation every five
		// minutes, which a slow run outlasts) and may append events after
		// the load: the receiver must end holding the outbox as it is
		// once nothing more is added.
		again := pull()
		if len(again) == len(outbox) || !time.Now().Before(deadline) {
			outbox = again
			break
		}
		outbox = again
	}
	st := rcv.Stats()
	t.Logf("%d declarations, %d events; receiver: %+v", n, len(outbox), st)
	if st.Events != len(outbox) || st.Rejected != 0 || st.OrderViolations != 0 || st.IDMismatches != 0 || st.Missing.Count != 0 || st.Failed == 0 {
		t.Fatalf("receiver %+v, want all %d events, none rejected, out of order or missing (and some failed on purpose)", st, len(outbox))
	}
	// Every event of the outbox, under its own ID, and nothing else.
	recs, err := readReceiverRecord(record)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, r := range recs {
		if r.Status != recordAccepted {
			continue
		}
		if _, dup := got[r.WebhookID]; dup {
			t.Fatalf("webhook-id %s accepted twice", r.WebhookID)
		}
		got[r.WebhookID] = r.Seq
	}
	for _, e := range outbox {
		if seq, ok := got[e.ID]; !ok || seq != e.Seq {
			t.Fatalf("event %d (%s) not received under its ID (got seq %d, %v)", e.Seq, e.ID, seq, ok)
		}
	}
	var w struct {
		Delivery struct {
			LagEvents   uint64 `json:"lag_events"`
			DeadLetters int64  `json:"dead_letters"`
			Failures    int64  `json:"failures"`
		} `json:"delivery"`
	}
	deadline = time.Now().Add(time.Minute)
	for {
		if status := call("admin", "GET", "/v1/webhooks/"+wh.ID, nil, &w); status != http.StatusOK {
			t.Fatalf("webhook status: %d", status)
		}
		if w.Delivery.LagEvents == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if w.Delivery.LagEvents != 0 || w.Delivery.DeadLetters != 0 || w.Delivery.Failures == 0 {
		t.Fatalf("delivery status %+v: want no lag, no dead letter, and the failures counted", w.Delivery)
	}
	stop()
}

// serveInProcess runs the real wiring in this process (so -race sees it)
// with env as its environment, and returns its base URL and a stop that
// shuts it down as SIGTERM does.
func serveInProcess(t *testing.T, env map[string]string) (base string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- withApp(ctx, "serve", nil, func(k string) string { return env[k] }, &logs, func(a *app) error { return a.serve(ctx, ready) })
	}()
	select {
	case addr := <-ready:
		base = "http://" + addr
	case err := <-done:
		cancel()
		t.Fatalf("serve ended early: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("serve did not start")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	t.Cleanup(stop)
	return base, stop
}

// caller sends requests as the named principals and decodes 2xx answers.
func caller(t *testing.T, base string, creds map[string]string) func(who, method, path string, body, out any) int {
	return func(who, method, path string, body, out any) int {
		t.Helper()
		var raw []byte
		if body != nil {
			raw, _ = json.Marshal(body)
		}
		resp, err := send(base, creds[who], method, path, string(raw))
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil && resp.StatusCode < 300 {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, b)
			}
		}
		if resp.StatusCode >= 300 {
			t.Logf("%s %s as %s: %d %s", method, path, who, resp.StatusCode, b)
		}
		return resp.StatusCode
	}
}

// TestWebhookSecretRotation: after POST /v1/webhooks/{id}/rotate-secret,
// deliveries carry signatures under both secrets for the overlap, so a
// receiver still on the old secret and one already on the new both verify
// them with the library; the subscription shows both secrets' dates and
// never a secret's value.
func TestWebhookSecretRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn"}
	type delivery struct {
		body   []byte
		header http.Header
	}
	got := make(chan delivery, 64)
	rsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- delivery{b, r.Header.Clone()}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rsrv.Close()
	base, _ := serveInProcess(t, env)
	call := caller(t, base, readDevCredentials(t, filepath.Join(dir, devCredentialsFile)))
	var created, rotated struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if status := call("admin", "POST", "/v1/webhooks", map[string]any{"url": rsrv.URL, "event_types": []string{"decision.made"}}, &created); status != http.StatusCreated {
		t.Fatalf("create: %d", status)
	}
	verifies := func(secret string, d delivery) bool {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		return wh.Verify(d.body, d.header) == nil
	}
	declare := func(id string) delivery {
		body := map[string]any{"declaration_id": id, "importer_tax_code": "0101234567", "lines": []map[string]any{{"line_no": 1,
			"hs_code": "1905.31.20", "product_name": "Bánh quy", "manufacturer": "Rotation Biscuits", "origin": "DK",
			"procedure": "food_safety", "quantity": 5, "unit": "kg"}}}
		if status := call("nsw", "POST", "/v1/declarations", body, nil); status != http.StatusCreated {
			t.Fatalf("declare: %d", status)
		}
		select {
		case d := <-got:
			return d
		case <-time.After(30 * time.Second):
			t.Fatal("no delivery")
		}
		return delivery{}
	}
	before := declare("ROT-1")
	if !verifies(created.Secret, before) || strings.Count(before.header.Get("webhook-signature"), "v1,") != 1 {
		t.Fatalf("before rotation: signature %q", before.header.Get("webhook-signature"))
	}
	if status := call("admin", "POST", "/v1/webhooks/"+created.ID+"/rotate-secret", nil, &rotated); status != http.StatusOK || rotated.Secret == created.Secret {
		t.Fatalf("rotate: %d", status)
	}
	after := declare("ROT-2")
	if !verifies(created.Secret, after) || !verifies(rotated.Secret, after) {
		t.Fatalf("during the overlap both secrets must verify: %q", after.header.Get("webhook-signature"))
	}
	if verifies(rotated.Secret, before) {
		t.Fatal("the new secret verified a delivery signed before it existed")
	}
	var view map[string]any
	if status := call("admin", "GET", "/v1/webhooks/"+created.ID, nil, &view); status != http.StatusOK {
		t.Fatalf("get: %d", status)
	}
	raw, _ := json.Marshal(view)
	if strings.Contains(string(raw), created.Secret) || strings.Contains(string(raw), rotated.Secret) || strings.Contains(string(raw), "whsec_") {
		t.Fatalf("a secret is shown again: %s", raw)
	}
	if secrets, _ := view["secrets"].([]any); len(secrets) != 2 {
		t.Fatalf("secrets %v, want the new and the old (until the overlap ends)", view["secrets"])
	}
}
