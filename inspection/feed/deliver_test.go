package feed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// --- fakes -----------------------------------------------------------------

// testClock is the wall clock plus an offset a test can advance: short
// real-time schedules run by themselves, long waits (Retry-After) are
// jumped over.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

type fakeSource struct {
	mu     sync.Mutex
	events []Event
}

// add appends events for the given order keys ("A" is declaration A,
// "g:x" an event about goods x) and returns them.
func (s *fakeSource) add(keys ...string) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, k := range keys {
		seq := uint64(len(s.events)) + 1
		e := Event{Seq: seq, ID: fmt.Sprintf("evt_%04d", seq), Type: DecisionMade, SchemaVersion: SchemaVersion,
			OccurredAt: time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second),
			Payload:    Payload{DecisionID: "dec_" + k}}
		if g, ok := strings.CutPrefix(k, "g:"); ok {
			e.Subject, e.Type = "goods:"+g, AlertRaised
		} else {
			e.DeclarationID, e.LineNo = k, 1
		}
		s.events = append(s.events, e)
		out = append(out, e)
	}
	return out
}

func (s *fakeSource) EventsAfter(_ context.Context, after uint64, limit int) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, e := range s.events {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *fakeSource) OutboxHead(context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(len(s.events)), nil
}

type fakeStore struct {
	mu     sync.Mutex
	states map[string]State
	dead   map[string][]DeadLetter
	saves  int
}

func newFakeStore() *fakeStore {
	return &fakeStore{states: map[string]State{}, dead: map[string][]DeadLetter{}}
}

// copyState deep-copies, as a real store's encoding would.
func copyState(s State) State {
	s.Ahead = slices.Clone(s.Ahead)
	s.Redeliver = slices.Clone(s.Redeliver)
	if s.Retrying != nil {
		s.Retrying = maps.Clone(s.Retrying)
	}
	return s
}

func (f *fakeStore) DeliveryState(_ context.Context, sub string) (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return copyState(f.states[sub]), nil
}

func (f *fakeStore) SaveDeliveryState(_ context.Context, sub string, s State, dead []DeadLetter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.states[sub]
	for _, a := range s.Ahead {
		if a <= s.Cursor {
			return fmt.Errorf("ahead %d at or below cursor %d", a, s.Cursor)
		}
	}
	if !slices.IsSorted(s.Ahead) {
		return errors.New("ahead not sorted")
	}
	_ = old
	f.states[sub] = copyState(s)
	f.dead[sub] = append(f.dead[sub], dead...)
	f.saves++
	return nil
}

func (f *fakeStore) DeadLetters(_ context.Context, sub string, after uint64, limit int) ([]DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []DeadLetter
	for _, d := range f.dead[sub] {
		if d.Seq > after && len(out) < limit {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeStore) state(sub string) State {
	s, _ := f.DeliveryState(context.Background(), sub)
	return s
}

func (f *fakeStore) deadLetters(sub string) []DeadLetter {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.dead[sub])
}

type fakeSubs struct {
	mu       sync.Mutex
	subs     []Subscription
	disabled map[string]string
}

func (f *fakeSubs) Subscriptions(context.Context) ([]Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.subs), nil
}

func (f *fakeSubs) DisableSubscription(_ context.Context, id, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.subs {
		if f.subs[i].ID == id {
			f.subs[i].Enabled = false
			f.subs[i].DisabledReason = reason
		}
	}
	if f.disabled == nil {
		f.disabled = map[string]string{}
	}
	f.disabled[id] = reason
	return nil
}

func (f *fakeSubs) set(s ...Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = s
}

func (f *fakeSubs) reason(id string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.disabled[id]
	return r, ok
}

// --- the receiver ----------------------------------------------------------

// request is one delivery attempt as the receiver saw it.
type request struct {
	ID, Timestamp, Signature string
	Seq                      uint64
	Key                      string
	Body                     []byte
	Status                   int
	// Blocked is set when an earlier event of the same order key had not
	// been acknowledged when this one arrived: order per declaration broke.
	Blocked bool
}

// receiver is an httptest server that answers with decide and records
// every attempt.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []request
	acked  map[uint64]bool
	events map[uint64]Event // what the source holds, for the order check
	decide func(r request, n int) (status int, header http.Header)
	tries  map[uint64]int
}

func newReceiver(t *testing.T, src *fakeSource, decide func(r request, n int) (int, http.Header)) *receiver {
	rc := &receiver{t: t, acked: map[uint64]bool{}, tries: map[uint64]int{}, decide: decide}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var env struct {
			Type      Type   `json:"type"`
			Timestamp string `json:"timestamp"`
			Data      Event  `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Errorf("receiver: body %q: %v", body, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		req := request{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"),
			Signature: r.Header.Get("webhook-signature"), Seq: env.Data.Seq, Body: body,
			Key: Event{DeclarationID: env.Data.DeclarationID, Subject: goodsOf(src, env.Data.Seq)}.OrderKey()}
		if r.Header.Get("Content-Type") != "application/json" || !strings.Contains(r.Header.Get("User-Agent"), "ktcn") {
			t.Errorf("receiver: headers %v", r.Header)
		}
		rc.mu.Lock()
		for _, e := range src.snapshot() {
			if e.Seq < req.Seq && e.OrderKey() == req.Key && !rc.acked[e.Seq] {
				req.Blocked = true
			}
		}
		rc.tries[req.Seq]++
		status, h := rc.decide(req, rc.tries[req.Seq])
		req.Status = status
		if status >= 200 && status < 300 {
			rc.acked[req.Seq] = true
		}
		rc.reqs = append(rc.reqs, req)
		rc.mu.Unlock()
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func goodsOf(src *fakeSource, seq uint64) string {
	src.mu.Lock()
	defer src.mu.Unlock()
	if seq == 0 || seq > uint64(len(src.events)) {
		return ""
	}
	return src.events[seq-1].Subject
}

func (s *fakeSource) snapshot() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

func (rc *receiver) ackedCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.acked)
}

func (rc *receiver) isAcked(seq uint64) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.acked[seq]
}

// alwaysOK acknowledges everything.
func alwaysOK(request, int) (int, http.Header) { return http.StatusNoContent, nil }

// --- the rig ---------------------------------------------------------------

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func testSub(url string) Subscription {
	return Subscription{ID: "sub_nsw", URL: url, Enabled: true, Secrets: []Secret{{Value: testSecret}}}
}

// fastConfig retries within milliseconds, budget large enough that a
// receiver failing 30% of the time never exhausts it.
func fastConfig() Config {
	sched := make([]time.Duration, 40)
	for i := 1; i < len(sched); i++ {
		sched[i] = time.Millisecond
	}
	return Config{Schedule: sched, Jitter: 0.5, Window: 1000, Parallel: 8, Poll: 20 * time.Millisecond,
		SaveEvery: 5 * time.Millisecond, Seed: 7}
}

type rig struct {
	src   *fakeSource
	store *fakeStore
	subs  *fakeSubs
	clock *testClock
}

func newRig() *rig {
	return &rig{src: &fakeSource{}, store: newFakeStore(), subs: &fakeSubs{}, clock: &testClock{}}
}

func (r *rig) deliverer(cfg Config) *Deliverer {
	return NewDeliverer(r.src, r.subs, r.store, NewHTTPSender(5*time.Second, r.clock), r.clock, zerolog.Nop(), cfg)
}

// run starts d and returns a stop that waits for Run to return.
func run(t *testing.T, d *Deliverer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// randomKeys interleaves n events over decls declarations and a goods.
func randomKeys(rng *rand.Rand, n, decls int) []string {
	keys := make([]string, n)
	for i := range keys {
		if rng.IntN(10) == 0 {
			keys[i] = "g:coffee"
		} else {
			keys[i] = "D" + strconv.Itoa(rng.IntN(decls))
		}
	}
	return keys
}

// checkDelivered asserts every event was acknowledged, no event was
// sent while an earlier one of its order key was unacknowledged, and
// every request carried its event's ID and a valid signature.
func checkDelivered(t *testing.T, src *fakeSource, rc *receiver, secret string) {
	t.Helper()
	byseq := map[uint64]Event{}
	for _, e := range src.snapshot() {
		byseq[e.Seq] = e
		if !rc.isAcked(e.Seq) {
			t.Errorf("event %d never acknowledged", e.Seq)
		}
	}
	firsts := map[string][]uint64{}
	seen := map[uint64]bool{}
	for _, r := range rc.requests() {
		if r.Blocked {
			t.Errorf("event %d (%s) sent before an earlier event of its key was acknowledged", r.Seq, r.Key)
		}
		if want := byseq[r.Seq].ID; r.ID != want {
			t.Errorf("event %d sent with webhook-id %q, want %q", r.Seq, r.ID, want)
		}
		ts, _ := strconv.ParseInt(r.Timestamp, 10, 64)
		sig, _ := Sign(secret, r.ID, time.Unix(ts, 0), r.Body)
		if !slices.Contains(strings.Fields(r.Signature), sig) {
			t.Errorf("event %d: signature %q does not verify", r.Seq, r.Signature)
		}
		if r.Status/100 == 2 && !seen[r.Seq] {
			seen[r.Seq] = true
			firsts[r.Key] = append(firsts[r.Key], r.Seq)
		}
	}
	for k, seqs := range firsts {
		if !slices.IsSorted(seqs) {
			t.Errorf("%s: first acknowledgements out of order: %v", k, seqs)
		}
	}
}

// --- tests -----------------------------------------------------------------

func TestBody(t *testing.T) {
	at := time.Date(2025, 3, 1, 15, 4, 5, 0, time.FixedZone("ICT", 7*3600))
	e := Event{Seq: 42, ID: "evt_42", Type: ResultRecorded, SchemaVersion: 1, OccurredAt: at, DeclarationID: "D1",
		LineNo: 2, Payload: Payload{Outcome: "pass"}, Agencies: []string{"secret-agency"}, Subject: "goods:g"}
	b, err := Body(e)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["type"] != "result.recorded" || got["timestamp"] != "2025-03-01T15:04:05+07:00" {
		t.Errorf("envelope %s", b)
	}
	data := got["data"].(map[string]any)
	for k, v := range map[string]any{"seq": 42.0, "id": "evt_42", "type": "result.recorded", "schema_version": 1.0,
		"occurred_at": "2025-03-01T15:04:05+07:00", "declaration_id": "D1", "line_no": 2.0} {
		if data[k] != v {
			t.Errorf("data.%s = %v, want %v", k, data[k], v)
		}
	}
	if data["payload"].(map[string]any)["outcome"] != "pass" {
		t.Errorf("payload %v", data["payload"])
	}
	if strings.Contains(string(b), "secret-agency") {
		t.Errorf("body carries the agencies: %s", b)
	}
}

func TestDefaultSchedule(t *testing.T) {
	s := DefaultSchedule()
	if len(s) != 10 || s[0] != 0 || s[1] != 5*time.Second {
		t.Fatalf("schedule %v", s)
	}
	var total time.Duration
	for _, d := range s {
		total += d
	}
	if total != 24*time.Hour {
		t.Errorf("schedule spans %v, want a day", total)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 120 * time.Second},
		{" 5 ", 5 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestHTTPSender(t *testing.T) {
	var hitTarget atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hitTarget.Store(true) }))
	defer target.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("webhook-id") != "evt_1" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(make([]byte, 1<<20))
	})
	block := make(chan struct{})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(block)
	s := NewHTTPSender(200*time.Millisecond, &testClock{})
	h := http.Header{"Webhook-Id": {"evt_1"}}
	ctx := context.Background()

	if r := s.Send(ctx, srv.URL+"/moved", h, nil); r.Err != nil || r.Status != http.StatusTemporaryRedirect || r.ok() {
		t.Errorf("redirect: %+v", r)
	}
	if hitTarget.Load() {
		t.Errorf("redirect followed")
	}
	if r := s.Send(ctx, srv.URL+"/busy", h, nil); r.Status != 503 || r.RetryAfter != 30*time.Second {
		t.Errorf("busy: %+v", r)
	}
	if r := s.Send(ctx, srv.URL+"/big", h, []byte("{}")); !r.ok() {
		t.Errorf("big: %+v", r)
	}
	if r := s.Send(ctx, srv.URL+"/slow", h, nil); r.Err == nil {
		t.Errorf("slow: no timeout: %+v", r)
	}
}

// Every event arrives, per declaration in order, under a receiver that
// fails a third of the time, whatever the window and parallelism.
func TestDeliverOrderUnderRandomFailures(t *testing.T) {
	for _, tc := range []struct {
		name             string
		window, parallel int
	}{
		{"defaults", 1000, 8},
		{"small window", 7, 3},
		{"one at a time", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig()
			r.src.add(randomKeys(rand.New(rand.NewPCG(1, 2)), 150, 12)...)
			var mu sync.Mutex
			fail := rand.New(rand.NewPCG(3, 4))
			rc := newReceiver(t, r.src, func(request, int) (int, http.Header) {
				mu.Lock()
				defer mu.Unlock()
				if fail.Float64() < 0.3 {
					return []int{500, 502, 429, 404}[fail.IntN(4)], nil
				}
				return http.StatusOK, nil
			})
			r.subs.set(testSub(rc.srv.URL))
			cfg := fastConfig()
			cfg.Window, cfg.Parallel = tc.window, tc.parallel
			d := r.deliverer(cfg)
			run(t, d)
			// More events while it runs.
			r.src.add(randomKeys(rand.New(rand.NewPCG(5, 6)), 50, 12)...)
			d.Notify()
			waitFor(t, "every event acknowledged", func() bool { return rc.ackedCount() == 200 })
			waitFor(t, "the cursor at the head", func() bool { return r.store.state("sub_nsw").Cursor == 200 })
			checkDelivered(t, r.src, rc, testSecret)
			st := r.store.state("sub_nsw")
			if len(st.Ahead) != 0 || len(st.Retrying) != 0 || st.Delivered != 200 || st.DeadLetters != 0 {
				t.Errorf("state %+v", st)
			}
			if st.Failures == 0 || st.LastError == "" || st.LastSuccess == nil {
				t.Errorf("failures not booked: %+v", st)
			}
		})
	}
}

// A declaration whose event keeps failing holds back its own later
// events only.
func TestOtherDeclarationsFlow(t *testing.T) {
	r := newRig()
	r.src.add("A", "B", "A", "C", "B", "g:tea", "A", "C")
	rc := newReceiver(t, r.src, func(q request, _ int) (int, http.Header) {
		if q.Key == "declaration:A" {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	r.subs.set(testSub(rc.srv.URL))
	cfg := fastConfig()
	cfg.Schedule = []time.Duration{0, time.Millisecond, time.Hour}
	d := r.deliverer(cfg)
	run(t, d)
	waitFor(t, "the other declarations", func() bool { return rc.ackedCount() == 5 })
	waitFor(t, "A's retry saved", func() bool {
		st := r.store.state("sub_nsw")
		return st.Retrying[1].N == 2 && len(st.Ahead) == 5
	})
	for _, q := range rc.requests() {
		if q.Key == "declaration:A" && q.Seq != 1 {
			t.Errorf("A's event %d sent while its first is unsettled", q.Seq)
		}
	}
	st := r.store.state("sub_nsw")
	if st.Cursor != 0 || !slices.Equal(st.Ahead, []uint64{2, 4, 5, 6, 8}) {
		t.Errorf("cursor %d ahead %v", st.Cursor, st.Ahead)
	}
	if a := st.Retrying[1]; a.LastError != "HTTP 500 Internal Server Error" || !a.NextAt.After(r.clock.Now().Add(20*time.Minute)) {
		t.Errorf("retrying %+v", a)
	}
	n, lag, err := d.Lag(context.Background(), r.subs.subs[0])
	if err != nil || n != 3 || lag <= 0 {
		t.Errorf("lag %d events %v s, %v", n, lag, err)
	}
	s, err := d.Status(context.Background(), r.subs.subs[0])
	if err != nil || !s.Running || s.Head != 8 || s.OldestUnsettled == nil || !s.OldestUnsettled.Equal(r.src.snapshot()[0].OccurredAt) {
		t.Errorf("status %+v, %v", s, err)
	}
}

// Retry-After puts the next attempt off beyond the schedule's wait.
func TestRetryAfterHonoured(t *testing.T) {
	r := newRig()
	r.src.add("A")
	rc := newReceiver(t, r.src, func(_ request, n int) (int, http.Header) {
		if n == 1 {
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"120"}}
		}
		return http.StatusOK, nil
	})
	r.subs.set(testSub(rc.srv.URL))
	cfg := fastConfig()
	cfg.Schedule = []time.Duration{0, time.Millisecond, time.Millisecond, 3 * time.Hour}
	run(t, r.deliverer(cfg))
	waitFor(t, "the failure saved", func() bool { return r.store.state("sub_nsw").Retrying[1].N == 1 })
	first := rc.requests()[0]
	ts, _ := strconv.ParseInt(first.Timestamp, 10, 64)
	if next := r.store.state("sub_nsw").Retrying[1].NextAt; next.Before(time.Unix(ts+119, 0)) {
		t.Errorf("next attempt at %v, first at %d: Retry-After ignored", next, ts)
	}
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("%d requests before the clock moved", n)
	}
	r.clock.Advance(121 * time.Second)
	waitFor(t, "the second attempt", func() bool { return rc.isAcked(1) })
	second := rc.requests()[1]
	ts2, _ := strconv.ParseInt(second.Timestamp, 10, 64)
	if ts2 < ts+120 || second.ID != first.ID {
		t.Errorf("second attempt %s at %d, first %s at %d", second.ID, ts2, first.ID, ts)
	}
}

// 410 Gone disables the subscription and stops its worker; the event
// stays unsettled.
func TestGoneDisables(t *testing.T) {
	r := newRig()
	r.src.add("A", "B", "C")
	rc := newReceiver(t, r.src, func(request, int) (int, http.Header) { return http.StatusGone, nil })
	r.subs.set(testSub(rc.srv.URL))
	cfg := fastConfig()
	cfg.Parallel = 1
	d := r.deliverer(cfg)
	run(t, d)
	waitFor(t, "the subscription disabled", func() bool { _, ok := r.subs.reason("sub_nsw"); return ok })
	waitFor(t, "the worker stopped", func() bool {
		s, _ := d.Status(context.Background(), r.subs.subs[0])
		return !s.Running
	})
	d.Notify()
	time.Sleep(3 * cfg.Poll)
	if n := len(rc.requests()); n != 1 {
		t.Errorf("%d requests after 410, want 1", n)
	}
	if st := r.store.state("sub_nsw"); st.Cursor != 0 || len(st.Ahead) != 0 {
		t.Errorf("state %+v", st)
	}
}

// After its budget an event is dead-lettered and its declaration's
// later events go.
func TestDeadLetter(t *testing.T) {
	r := newRig()
	r.src.add("A", "B", "A", "A")
	rc := newReceiver(t, r.src, func(q request, _ int) (int, http.Header) {
		if q.Seq == 1 {
			return http.StatusBadGateway, nil
		}
		return http.StatusOK, nil
	})
	r.subs.set(testSub(rc.srv.URL))
	cfg := fastConfig()
	cfg.Schedule = []time.Duration{0, time.Millisecond, 2 * time.Millisecond}
	run(t, r.deliverer(cfg))
	waitFor(t, "the cursor at the head", func() bool { return r.store.state("sub_nsw").Cursor == 4 })
	dead := r.store.deadLetters("sub_nsw")
	if len(dead) != 1 || dead[0].Seq != 1 || dead[0].EventID != "evt_0001" || dead[0].Attempts != 3 ||
		dead[0].LastError != "HTTP 502 Bad Gateway" || dead[0].Subscription != "sub_nsw" {
		t.Fatalf("dead letters %+v", dead)
	}
	st := r.store.state("sub_nsw")
	if st.DeadLetters != 1 || st.Delivered != 3 || st.Failures != 3 || len(st.Retrying) != 0 {
		t.Errorf("state %+v", st)
	}
	var order []uint64
	for _, q := range rc.requests() {
		if q.Key == "declaration:A" {
			order = append(order, q.Seq)
		}
	}
	if !slices.Equal(order, []uint64{1, 1, 1, 3, 4}) {
		t.Errorf("A's requests %v", order)
	}
}

// A deliverer stopped midway and a new one on the same store deliver
// everything, resending only with the same IDs.
func TestRestartLosesNothing(t *testing.T) {
	r := newRig()
	r.src.add(randomKeys(rand.New(rand.NewPCG(8, 9)), 300, 20)...)
	var mu sync.Mutex
	fail := rand.New(rand.NewPCG(10, 11))
	rc := newReceiver(t, r.src, func(request, int) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if fail.Float64() < 0.3 {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	r.subs.set(testSub(rc.srv.URL))
	cfg := fastConfig()
	cfg.Window, cfg.Parallel = 50, 4
	for round := 0; round < 3; round++ {
		stop := run(t, r.deliverer(cfg))
		target := min(100*(round+1), 300)
		waitFor(t, "some deliveries", func() bool { return rc.ackedCount() >= target })
		if round == 2 {
			// The receiver may acknowledge a request whose answer the
			// stopping worker never reads: that one is resent, not lost.
			waitFor(t, "the cursor at the head", func() bool { return r.store.state("sub_nsw").Cursor == 300 })
		}
		stop()
		if round < 2 {
			// Saved progress never counts an event the receiver did not
			// acknowledge.
			st := r.store.state("sub_nsw")
			for s := uint64(1); s <= st.Cursor; s++ {
				if !rc.isAcked(s) {
					t.Fatalf("cursor %d passed unacknowledged event %d", st.Cursor, s)
				}
			}
			for _, s := range st.Ahead {
				if !rc.isAcked(s) {
					t.Fatalf("ahead holds unacknowledged event %d", s)
				}
			}
		}
	}
	checkDelivered(t, r.src, rc, testSecret)
	if st := r.store.state("sub_nsw"); st.Cursor != 300 {
		t.Errorf("cursor %d", st.Cursor)
	}
}

// A redelivered range is sent again, in order, with the same IDs, both
// when handed to the deliverer and when written to the store.
func TestRedeliver(t *testing.T) {
	r := newRig()
	r.src.add("A", "B", "A", "B", "A", "C", "C", "A", "B", "A")
	rc := newReceiver(t, r.src, alwaysOK)
	r.subs.set(testSub(rc.srv.URL))
	d := r.deliverer(fastConfig())
	run(t, d)
	waitFor(t, "first delivery", func() bool { return r.store.state("sub_nsw").Cursor == 10 })
	countOf := func(seq uint64) int {
		n := 0
		for _, q := range rc.requests() {
			if q.Seq == seq {
				n++
			}
		}
		return n
	}
	if err := d.Redeliver(context.Background(), "sub_nsw", Range{From: 3, To: 7}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the range redelivered", func() bool {
		for s := uint64(3); s <= 7; s++ {
			if countOf(s) != 2 {
				return false
			}
		}
		return true
	})
	// An admin's use case writing the store, then notifying.
	st := r.store.state("sub_nsw")
	st.Redeliver = append(st.Redeliver, Range{From: 9, To: 12})
	if err := r.store.SaveDeliveryState(context.Background(), "sub_nsw", st, nil); err != nil {
		t.Fatal(err)
	}
	d.Notify()
	waitFor(t, "the stored range redelivered", func() bool { return countOf(9) == 2 && countOf(10) == 2 })
	waitFor(t, "the ranges done", func() bool { return len(r.store.state("sub_nsw").Redeliver) == 0 })
	for _, s := range []uint64{1, 2, 8} {
		if n := countOf(s); n != 1 {
			t.Errorf("event %d sent %d times", s, n)
		}
	}
	// Within the redelivery, each key's events went in order.
	last := map[string]uint64{}
	for _, q := range rc.requests()[10:] {
		if q.Seq < last[q.Key] {
			t.Errorf("%s: redelivered %d after %d", q.Key, q.Seq, last[q.Key])
		}
		last[q.Key] = q.Seq
	}
	checkDelivered(t, r.src, rc, testSecret)
}

// With no worker running, Redeliver writes the range for the next one.
func TestRedeliverWithoutWorker(t *testing.T) {
	r := newRig()
	r.src.add("A", "B", "C")
	rc := newReceiver(t, r.src, alwaysOK)
	sub := testSub(rc.srv.URL)
	sub.Enabled = false
	r.subs.set(sub)
	r.store.states["sub_nsw"] = State{Cursor: 3}
	d := r.deliverer(fastConfig())
	run(t, d)
	if err := d.Redeliver(context.Background(), "sub_nsw", Range{From: 2, To: 3}); err != nil {
		t.Fatal(err)
	}
	if st := r.store.state("sub_nsw"); !slices.Equal(st.Redeliver, []Range{{2, 3}}) {
		t.Fatalf("redeliver %v", st.Redeliver)
	}
	sub.Enabled = true
	r.subs.set(sub)
	d.Notify()
	waitFor(t, "the range sent", func() bool { return len(rc.requests()) == 2 })
	ids := []string{rc.requests()[0].ID, rc.requests()[1].ID}
	if slices.Sort(ids); !slices.Equal(ids, []string{"evt_0002", "evt_0003"}) {
		t.Errorf("sent %v", ids)
	}
	if err := d.Redeliver(context.Background(), "sub_nsw", Range{From: 3, To: 2}); err == nil {
		t.Errorf("empty range accepted")
	}
}

// During a rotation both secrets sign; an expired one does not.
func TestRotationSignsWithBoth(t *testing.T) {
	r := newRig()
	r.src.add("A")
	rc := newReceiver(t, r.src, alwaysOK)
	const newSecret = "whsec_c2Vjb25kLXNlY3JldC1mb3ItdGVzdHM="
	const expired = "whsec_ZXhwaXJlZC1zZWNyZXQ="
	later, earlier := r.clock.Now().Add(time.Hour), r.clock.Now().Add(-time.Hour)
	sub := testSub(rc.srv.URL)
	sub.Secrets = []Secret{{Value: newSecret}, {Value: testSecret, Until: &later}, {Value: expired, Until: &earlier}}
	r.subs.set(sub)
	run(t, r.deliverer(fastConfig()))
	waitFor(t, "the delivery", func() bool { return rc.isAcked(1) })
	q := rc.requests()[0]
	ts, _ := strconv.ParseInt(q.Timestamp, 10, 64)
	sigs := strings.Fields(q.Signature)
	if len(sigs) != 2 {
		t.Fatalf("signature header %q", q.Signature)
	}
	for i, secret := range []string{newSecret, testSecret} {
		want, err := Sign(secret, q.ID, time.Unix(ts, 0), q.Body)
		if err != nil || sigs[i] != want {
			t.Errorf("signature %d = %q, want %q (%v)", i, sigs[i], want, err)
		}
	}
}

// A subscription starts after its Start, is sent only the types it
// wants, and settles the rest without sending; one added later starts
// on Notify.
func TestStartAndTypes(t *testing.T) {
	r := newRig()
	evs := r.src.add("A", "B", "g:x", "A", "g:y", "B")
	_ = evs
	rc := newReceiver(t, r.src, alwaysOK)
	d := r.deliverer(fastConfig())
	run(t, d)
	sub := testSub(rc.srv.URL)
	sub.Start = 1
	sub.Types = []Type{AlertRaised}
	r.subs.set(sub)
	d.Notify()
	waitFor(t, "the cursor at the head", func() bool { return r.store.state("sub_nsw").Cursor == 6 })
	var got []uint64
	for _, q := range rc.requests() {
		got = append(got, q.Seq)
	}
	if slices.Sort(got); !slices.Equal(got, []uint64{3, 5}) {
		t.Errorf("sent %v, want the alerts 3 and 5", got)
	}
	if n, _, err := d.Lag(context.Background(), sub); err != nil || n != 0 {
		t.Errorf("lag %d, %v", n, err)
	}
}

// A restarted worker keeps a failing event's attempts and next time.
func TestRestartKeepsAttempts(t *testing.T) {
	r := newRig()
	r.src.add("A", "A", "B")
	rc := newReceiver(t, r.src, func(q request, _ int) (int, http.Header) {
		if q.Seq == 1 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	r.subs.set(testSub(rc.srv.URL))
	next := r.clock.Now().Add(time.Hour)
	r.store.states["sub_nsw"] = State{Retrying: map[uint64]Attempts{1: {N: 2, NextAt: next, LastError: "HTTP 500"}}}
	cfg := fastConfig()
	cfg.Schedule = []time.Duration{0, time.Millisecond, time.Millisecond}
	run(t, r.deliverer(cfg))
	waitFor(t, "B delivered", func() bool { return rc.isAcked(3) })
	waitFor(t, "B saved", func() bool { return slices.Equal(r.store.state("sub_nsw").Ahead, []uint64{3}) })
	if st := r.store.state("sub_nsw"); st.Retrying[1].N != 2 || !st.Retrying[1].NextAt.Equal(next) {
		t.Errorf("attempts lost: %+v", st.Retrying)
	}
	for _, q := range rc.requests() {
		if q.Key == "declaration:A" {
			t.Errorf("A's event %d sent before its saved next attempt", q.Seq)
		}
	}
	r.clock.Advance(time.Hour)
	// One more failure spends the budget of three.
	waitFor(t, "the cursor at the head", func() bool { return r.store.state("sub_nsw").Cursor == 3 })
	if dead := r.store.deadLetters("sub_nsw"); len(dead) != 1 || dead[0].Attempts != 3 {
		t.Errorf("dead letters %+v", dead)
	}
	if !rc.isAcked(2) {
		t.Errorf("A's second event not delivered after the first was dead-lettered")
	}
}

// A subscription deleted or disabled stops its worker, which saves.
func TestWorkerStopsWhenSubscriptionGoes(t *testing.T) {
	r := newRig()
	r.src.add("A", "B")
	rc := newReceiver(t, r.src, alwaysOK)
	sub := testSub(rc.srv.URL)
	r.subs.set(sub)
	d := r.deliverer(fastConfig())
	run(t, d)
	waitFor(t, "delivered", func() bool { return r.store.state("sub_nsw").Cursor == 2 })
	r.subs.set()
	d.Notify()
	waitFor(t, "the worker stopped", func() bool {
		s, _ := d.Status(context.Background(), sub)
		return !s.Running
	})
	r.src.add("C")
	d.Notify()
	time.Sleep(3 * fastConfig().Poll)
	if n := len(rc.requests()); n != 2 {
		t.Errorf("%d requests after the subscription went", n)
	}
}

// drop removes events from the outbox, as its retention would.
func (s *fakeSource) drop(seqs ...uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = slices.DeleteFunc(s.events, func(e Event) bool { return slices.Contains(seqs, e.Seq) })
}

// Events the outbox no longer holds are skipped, in delivery and in a
// redelivery, and do not hold the cursor back.
func TestEventsGoneFromOutbox(t *testing.T) {
	r := newRig()
	r.src.add("A", "B", "A", "B", "C", "C", "A", "B")
	r.src.drop(1, 2, 5, 6)
	rc := newReceiver(t, r.src, alwaysOK)
	r.subs.set(testSub(rc.srv.URL))
	cfg := fastConfig()
	cfg.Window = 4
	d := r.deliverer(cfg)
	run(t, d)
	waitFor(t, "the cursor at the head", func() bool { return r.store.state("sub_nsw").Cursor == 8 })
	if n := len(rc.requests()); n != 4 {
		t.Errorf("%d requests, want the 4 events left", n)
	}
	if err := d.Redeliver(context.Background(), "sub_nsw", Range{From: 1, To: 6}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the range done", func() bool {
		return len(rc.requests()) == 6 && len(r.store.state("sub_nsw").Redeliver) == 0
	})
	checkDelivered(t, r.src, rc, testSecret)
}
