package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection/feed"
)

// The receiver is driven as ktcn's delivery drives it: over HTTP, each
// request signed by feed.SignatureHeader. Its verification is the Standard
// Webhooks library's, so these tests also hold ktcn's signer against it.

const (
	rcvSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	rcvNew    = "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24h"
	rcvOther  = "whsec_dW5yZWxhdGVkIHNlY3JldCBrZXkgYnl0ZXM="
)

func startReceiver(t *testing.T, cfg receiverConfig) (*receiver, *httptest.Server) {
	t.Helper()
	if cfg.Secrets == nil {
		cfg.Secrets = []string{rcvSecret}
	}
	cfg.Logger = zerolog.New(io.Discard)
	r, err := newReceiver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		srv.Close()
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r, srv
}

func testEvent(seq uint64, decl string) feed.Event {
	return feed.Event{Seq: seq, ID: fmt.Sprintf("evt_%06d", seq), Type: feed.DecisionMade, SchemaVersion: feed.SchemaVersion,
		OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DeclarationID: decl, LineNo: 1,
		Payload: feed.Payload{DecisionID: "dec_" + strconv.FormatUint(seq, 10), Mode: "normal"}}
}

func webhookJSON(t *testing.T, ev feed.Event) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": ev.Type, "timestamp": ev.OccurredAt, "data": ev})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// delivery is one signed POST; its fields are what the tests spoil.
type delivery struct {
	id      string
	at      time.Time
	secrets []string
	body    []byte // signed
	send    []byte // sent, when not body
}

func signedDelivery(t *testing.T, ev feed.Event, secrets ...string) delivery {
	if len(secrets) == 0 {
		secrets = []string{rcvSecret}
	}
	return delivery{id: ev.ID, at: time.Now(), secrets: secrets, body: webhookJSON(t, ev)}
}

func (d delivery) post(t *testing.T, url string) int {
	t.Helper()
	sig, err := feed.SignatureHeader(d.secrets, d.id, d.at, d.body)
	if err != nil {
		t.Fatal(err)
	}
	send := d.body
	if d.send != nil {
		send = d.send
	}
	req, err := http.NewRequest(http.MethodPost, url+"/webhooks/ktcn", bytes.NewReader(send))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", d.id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(d.at.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func mustPost(t *testing.T, url string, d delivery, want int) {
	t.Helper()
	if got := d.post(t, url); got != want {
		t.Fatalf("POST %s: %d, want %d", d.id, got, want)
	}
}

func getStats(t *testing.T, url string) receiverStats {
	t.Helper()
	resp, err := http.Get(url + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /stats: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var st receiverStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func acceptedIDs(t *testing.T, path string) []string {
	t.Helper()
	recs, err := readReceiverRecord(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		if r.Status == recordAccepted {
			ids = append(ids, r.WebhookID)
		}
	}
	return ids
}

func TestReceiverAcceptsSignedAndRecords(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "nsw.jsonl")
	_, srv := startReceiver(t, receiverConfig{Record: rec})
	for seq := uint64(1); seq <= 3; seq++ {
		mustPost(t, srv.URL, signedDelivery(t, testEvent(seq, "D1")), http.StatusNoContent)
	}
	st := getStats(t, srv.URL)
	if st.Received != 3 || st.Events != 3 || st.Rejected != 0 || st.MinSeq != 1 || st.MaxSeq != 3 || st.Missing.Count != 0 {
		t.Fatalf("stats %+v", st)
	}
	recs, err := readReceiverRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("record holds %d lines, want 3", len(recs))
	}
	for i, r := range recs {
		var ev feed.Event
		if err := json.Unmarshal(r.Event, &ev); err != nil {
			t.Fatal(err)
		}
		want := testEvent(uint64(i+1), "D1")
		if r.Status != recordAccepted || r.WebhookID != want.ID || r.Type != string(feed.DecisionMade) ||
			r.OrderKey != "declaration:D1" || ev.Seq != want.Seq || ev.Payload.DecisionID != want.Payload.DecisionID {
			t.Fatalf("record line %d: %+v (event %+v)", i+1, r, ev)
		}
	}
}

func TestReceiverRejects(t *testing.T) {
	ev := testEvent(7, "D7")
	for _, tc := range []struct {
		name  string
		spoil func(*delivery)
	}{
		{"tampered body", func(d *delivery) { d.send = bytes.Replace(d.body, []byte(`"seq":7`), []byte(`"seq":8`), 1) }},
		{"wrong secret", func(d *delivery) { d.secrets = []string{rcvOther} }},
		{"stale timestamp", func(d *delivery) { d.at = time.Now().Add(-6 * time.Minute) }},
		{"timestamp from the future", func(d *delivery) { d.at = time.Now().Add(6 * time.Minute) }},
		{"no webhook-id", func(d *delivery) { d.id = "" }},
		{"signed but not an event", func(d *delivery) { d.body = []byte(`{"type":"decision.made"}`) }},
		{"signed but not JSON", func(d *delivery) { d.body = []byte(`seq=7`) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "nsw.jsonl")
			_, srv := startReceiver(t, receiverConfig{Record: rec})
			d := signedDelivery(t, ev)
			tc.spoil(&d)
			if got := d.post(t, srv.URL); got < 400 || got > 499 {
				t.Fatalf("POST: %d, want 4xx", got)
			}
			st := getStats(t, srv.URL)
			if st.Rejected != 1 || st.Received != 0 || st.Events != 0 {
				t.Fatalf("stats %+v", st)
			}
			recs, err := readReceiverRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].Status != recordRejected || recs[0].Reason == "" {
				t.Fatalf("record %+v, want one rejection", recs)
			}
			// A rejection does not spoil dedupe: the genuine delivery of
			// the same event is still taken.
			mustPost(t, srv.URL, signedDelivery(t, ev), http.StatusNoContent)
			if ids := acceptedIDs(t, rec); !slices.Equal(ids, []string{ev.ID}) {
				t.Fatalf("accepted %v", ids)
			}
		})
	}
}

func TestReceiverDuplicateCountedOnce(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "nsw.jsonl")
	_, srv := startReceiver(t, receiverConfig{Record: rec})
	ev := testEvent(1, "D1")
	first := signedDelivery(t, ev)
	mustPost(t, srv.URL, first, http.StatusNoContent)
	// A retry: same webhook-id, new attempt timestamp and signature.
	retry := first
	retry.at = time.Now().Add(-time.Minute)
	mustPost(t, srv.URL, retry, http.StatusNoContent)
	mustPost(t, srv.URL, first, http.StatusNoContent)
	// Concurrent deliveries of one new event are recorded once.
	ev2 := testEvent(2, "D1")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got := signedDelivery(t, ev2).post(t, srv.URL); got != http.StatusNoContent {
				t.Errorf("concurrent POST: %d", got)
			}
		})
	}
	wg.Wait()
	st := getStats(t, srv.URL)
	if st.Received != 2 || st.Duplicates != 9 || st.OrderViolations != 0 {
		t.Fatalf("stats %+v", st)
	}
	if ids := acceptedIDs(t, rec); !slices.Equal(ids, []string{ev.ID, ev2.ID}) {
		t.Fatalf("accepted %v", ids)
	}
}

func TestReceiverOrderAndGaps(t *testing.T) {
	goods := func(seq uint64, gk string) feed.Event {
		ev := testEvent(seq, "")
		ev.Type, ev.Payload, ev.Subject = feed.GoodsModeChanged, feed.Payload{GoodsKey: gk, Mode: "strict"}, "goods:"+gk
		return ev
	}
	for _, tc := range []struct {
		name       string
		events     []feed.Event
		violations int64
		missing    missingSeqs
	}{
		{"in order", []feed.Event{testEvent(1, "A"), testEvent(2, "A"), testEvent(3, "B")}, 0, missingSeqs{First: []uint64{}}},
		{"declarations interleave freely", []feed.Event{testEvent(2, "A"), testEvent(1, "B"), testEvent(3, "A")}, 0, missingSeqs{First: []uint64{}}},
		{"later event of a declaration first", []feed.Event{testEvent(5, "A"), testEvent(3, "A"), testEvent(4, "B")}, 1, missingSeqs{First: []uint64{}}},
		{"events of no declaration ordered by subject", []feed.Event{goods(4, "G1"), goods(3, "G2"), goods(2, "G1")}, 1, missingSeqs{First: []uint64{}}},
		{"gaps reported, not violations", []feed.Event{testEvent(2, "A"), testEvent(5, "A"), testEvent(9, "B")}, 0,
			missingSeqs{Count: 5, First: []uint64{3, 4, 6, 7, 8}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := startReceiver(t, receiverConfig{})
			for _, ev := range tc.events {
				mustPost(t, srv.URL, signedDelivery(t, ev), http.StatusNoContent)
			}
			st := getStats(t, srv.URL)
			if st.OrderViolations != tc.violations || st.Missing.Count != tc.missing.Count ||
				!slices.Equal(st.Missing.First, tc.missing.First) || st.Received != int64(len(tc.events)) {
				t.Fatalf("stats %+v, want %d violations, missing %+v", st, tc.violations, tc.missing)
			}
		})
	}
}

func TestReceiverMissingListIsBounded(t *testing.T) {
	_, srv := startReceiver(t, receiverConfig{})
	mustPost(t, srv.URL, signedDelivery(t, testEvent(1, "A")), http.StatusNoContent)
	mustPost(t, srv.URL, signedDelivery(t, testEvent(1_000_000, "A")), http.StatusNoContent)
	st := getStats(t, srv.URL)
	if st.Missing.Count != 999_998 || len(st.Missing.First) != missingShown || st.Missing.First[0] != 2 {
		t.Fatalf("missing %+v", st.Missing)
	}
}

func TestReceiverRestartKeepsDedupeAndOrder(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "nsw.jsonl")
	first, srv := startReceiver(t, receiverConfig{Record: rec})
	for _, seq := range []uint64{1, 2, 4} {
		mustPost(t, srv.URL, signedDelivery(t, testEvent(seq, "A")), http.StatusNoContent)
	}
	mustPost(t, srv.URL, signedDelivery(t, testEvent(9, "A"), rcvOther), http.StatusBadRequest)
	srv.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash mid-append leaves a torn line, never acknowledged.
	f, err := os.OpenFile(rec, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"status":"accepted","webhook_id":"evt_0000`)
	f.Close()

	_, srv2 := startReceiver(t, receiverConfig{Record: rec})
	st := getStats(t, srv2.URL)
	if st.Reloaded != 3 || st.Events != 3 || st.Received != 0 || st.MaxSeq != 4 || st.Missing.Count != 1 {
		t.Fatalf("after restart: %+v", st)
	}
	mustPost(t, srv2.URL, signedDelivery(t, testEvent(2, "A")), http.StatusNoContent) // duplicate
	mustPost(t, srv2.URL, signedDelivery(t, testEvent(3, "A")), http.StatusNoContent) // after 4: violation
	mustPost(t, srv2.URL, signedDelivery(t, testEvent(5, "A")), http.StatusNoContent)
	st = getStats(t, srv2.URL)
	if st.Duplicates != 1 || st.Received != 2 || st.OrderViolations != 1 || st.Missing.Count != 0 || st.Events != 5 {
		t.Fatalf("stats %+v", st)
	}
	want := []string{"evt_000001", "evt_000002", "evt_000004", "evt_000003", "evt_000005"}
	if ids := acceptedIDs(t, rec); !slices.Equal(ids, want) {
		t.Fatalf("accepted %v, want %v", ids, want)
	}
}

func TestReceiverRotation(t *testing.T) {
	_, srv := startReceiver(t, receiverConfig{Secrets: []string{rcvNew, rcvSecret}})
	for i, tc := range []struct {
		name    string
		signers []string
		want    int
	}{
		{"ktcn signs with old and new", []string{rcvNew, rcvSecret}, http.StatusNoContent},
		{"only the old secret", []string{rcvSecret}, http.StatusNoContent},
		{"only the new secret", []string{rcvNew}, http.StatusNoContent},
		{"neither", []string{rcvOther}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustPost(t, srv.URL, signedDelivery(t, testEvent(uint64(i+1), "A"), tc.signers...), tc.want)
		})
	}
	if st := getStats(t, srv.URL); st.Received != 3 || st.Rejected != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReceiverFailRate(t *testing.T) {
	const n = 400
	run := func(seed uint64) (failed int64, tries int) {
		rec := filepath.Join(t.TempDir(), "nsw.jsonl")
		_, srv := startReceiver(t, receiverConfig{Record: rec, FailRate: 0.3, Seed: seed})
		for seq := uint64(1); seq <= n; seq++ {
			// Retry until taken, as ktcn's delivery does.
			for {
				tries++
				got := signedDelivery(t, testEvent(seq, "A")).post(t, srv.URL)
				if got == http.StatusNoContent {
					break
				}
				if got != http.StatusServiceUnavailable {
					t.Fatalf("POST: %d", got)
				}
			}
		}
		st := getStats(t, srv.URL)
		if st.Received != n || st.Duplicates != 0 || st.Rejected != 0 || st.Missing.Count != 0 || st.Failed != int64(tries-n) {
			t.Fatalf("stats %+v after %d tries", st, tries)
		}
		if ids := acceptedIDs(t, rec); len(ids) != n {
			t.Fatalf("record holds %d events, want %d", len(ids), n)
		}
		return st.Failed, tries
	}
	failed, tries := run(7)
	if share := float64(failed) / float64(tries); share < 0.2 || share > 0.4 {
		t.Fatalf("%d of %d requests failed (%.2f), want about 0.3", failed, tries, share)
	}
	if again, _ := run(7); again != failed {
		t.Fatalf("seed 7 failed %d then %d requests: the draws are not seeded", failed, again)
	}
}

func TestReceiverMethods(t *testing.T) {
	_, srv := startReceiver(t, receiverConfig{FailRate: 1})
	// /stats answers even when every delivery fails.
	getStats(t, srv.URL)
	resp, err := http.Post(srv.URL+"/stats", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST with fail rate 1: %d", resp.StatusCode)
	}
	_, srv2 := startReceiver(t, receiverConfig{})
	resp, err = http.Get(srv2.URL + "/webhooks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /webhooks: %d", resp.StatusCode)
	}
}

func TestReceiverFlags(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secrets")
	if err := os.WriteFile(secretFile, []byte("# rotated 2026-01-02\n"+rcvNew+"\n\n"+rcvSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		secrets []string
		err     string
	}{
		{"one secret", []string{"-secret", rcvSecret}, []string{rcvSecret}, ""},
		{"repeated", []string{"-secret", rcvNew, "-secret", rcvSecret}, []string{rcvNew, rcvSecret}, ""},
		{"file and flag", []string{"-secret", rcvOther, "-secret-file", secretFile}, []string{rcvOther, rcvNew, rcvSecret}, ""},
		{"no secret", []string{"-record", "x.jsonl"}, nil, "needs a secret"},
		{"missing file", []string{"-secret-file", filepath.Join(dir, "none")}, nil, "-secret-file"},
		{"fail rate above 1", []string{"-secret", rcvSecret, "-fail-rate", "1.5"}, nil, "-fail-rate"},
		{"stray argument", []string{"-secret", rcvSecret, "extra"}, nil, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseReceiverFlags(tc.args, io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.cfg.Secrets, tc.secrets) || f.addr != "127.0.0.1:9090" {
				t.Fatalf("parsed %+v", f)
			}
		})
	}
	if _, err := newReceiver(receiverConfig{Secrets: []string{"whsec_not base64!"}}); err == nil {
		t.Fatal("newReceiver took a secret that is not base64")
	}
}

func TestReceiverCommandRegistered(t *testing.T) {
	c, ok := findCommand([]string{"nsw-receiver", "-secret", rcvSecret})
	if !ok || !slices.Equal(c.words, []string{"nsw-receiver"}) {
		t.Fatalf("nsw-receiver not registered: %v", c.words)
	}
	if !strings.Contains(usage(), "nsw-receiver") {
		t.Fatal("usage does not mention nsw-receiver")
	}
	var stderr bytes.Buffer
	if code := Run(t.Context(), []string{"nsw-receiver"}, func(string) string { return "" }, io.Discard, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "needs a secret") {
		t.Fatalf("Run without a secret: %d %q", code, stderr.String())
	}
}
