package feed

import (
	"bytes"
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/rs/zerolog"
)

// Delivery. One worker per enabled subscription reads the outbox after
// the subscription's cursor and POSTs each event it wants to the
// receiver, signed, until the receiver acknowledges it (2xx) or its retry
// budget is spent (dead letter). Delivery is at least once: progress is
// saved after acknowledgements, never before, so a crash resends what
// was acknowledged since the last save (with the same webhook-id, which
// receivers deduplicate on) and never loses what was not. Events of one
// declaration (one OrderKey) go one at a time in sequence order; events
// of other declarations keep flowing past a failing one, bounded by
// Window and Parallel, so one broken lot cannot hold up the country's.

// UserAgent names ktcn to receivers.
const UserAgent = "ktcn-webhooks/1"

// Body is the request body of e's delivery, in the Standard Webhooks
// shape: the type, the timestamp, and the event itself as data.
func Body(e Event) ([]byte, error) {
	b, err := json.Marshal(struct {
		Type      Type   `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      Event  `json:"data"`
	}{e.Type, e.OccurredAt.Format(time.RFC3339Nano), e})
	if err != nil {
		return nil, fmt.Errorf("feed: body of event %d: %w", e.Seq, err)
	}
	return b, nil
}

// Response is what one delivery attempt came to: the HTTP status (0 when
// no response came), how long the receiver asked to be left alone
// (Retry-After, 0 if it did not say), or the transport error.
type Response struct {
	Status     int
	RetryAfter time.Duration
	Err        error
}

// ok reports whether the receiver acknowledged the event.
func (r Response) ok() bool { return r.Err == nil && r.Status >= 200 && r.Status < 300 }

// describe says why an attempt failed, for LastError and dead letters.
func (r Response) describe() string {
	if r.Err != nil {
		return r.Err.Error()
	}
	return "HTTP " + strconv.Itoa(r.Status) + " " + http.StatusText(r.Status)
}

// Sender makes one delivery attempt. It is an interface so tests (and a
// future queue) can stand in for HTTP.
type Sender interface {
	Send(ctx context.Context, url string, header http.Header, body []byte) Response
}

// maxResponseBody is how much of a receiver's answer is read: enough to
// let the connection be reused, never so much that a misbehaving
// receiver can make ktcn buffer a large body.
const maxResponseBody = 64 << 10

// HTTPSender POSTs deliveries over net/http.
type HTTPSender struct {
	client  *http.Client
	timeout time.Duration
	clock   calendar.Clock
}

// NewHTTPSender returns a sender whose every request gives up after
// timeout. It follows no redirect: a receiver that moved must be
// re-registered, not followed wherever a 3xx points (the signed body
// would otherwise go to a host nobody registered), so a 3xx is a failed
// attempt. clock reads Retry-After dates.
func NewHTTPSender(timeout time.Duration, clock calendar.Clock) *HTTPSender {
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	// Own transport, not http.DefaultTransport: its idle pool is sized for
	// Parallel requests per receiver, and nothing global is changed.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	return &HTTPSender{
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: timeout,
		clock:   clock,
	}
}

// Send POSTs body to url with header.
func (s *HTTPSender) Send(ctx context.Context, url string, header http.Header, body []byte) Response {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Response{Err: fmt.Errorf("feed: request to %s: %w", url, err)}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return Response{Err: fmt.Errorf("feed: post: %w", err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	return Response{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), s.clock.Now())}
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
// A value it cannot read, or one in the past, asks for nothing.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(365*24*time.Hour/time.Second) {
			n = int64(365 * 24 * time.Hour / time.Second) // no overflow; capped later anyway
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Config tunes delivery.
type Config struct {
	// Schedule is the retry budget: attempt n (from 0) waits Schedule[n]
	// after the previous attempt failed (Schedule[0]: after the event is
	// ready), and after len(Schedule) failed attempts the event is dead-
	// lettered.
	Schedule []time.Duration
	// Jitter spreads every wait by a random factor in [1-Jitter, 1+Jitter]
	// so the retries of events that failed together (a receiver outage) do
	// not all come back at once.
	Jitter float64
	// Window is how many events after the cursor may be in flight, waiting
	// for a retry or settled ahead of it: it bounds the memory a worker
	// holds and what a restart may resend.
	Window int
	// Parallel is how many requests a subscription has in flight at once.
	Parallel int
	// Poll is how often a worker looks for new events (and the deliverer
	// re-reads the subscriptions) without a Notify.
	Poll time.Duration
	// SaveEvery is how long a busy worker may hold acknowledgements before
	// it saves its State; an idle one saves at once.
	SaveEvery time.Duration
	// Seed seeds the jitter; 0 picks one at random.
	Seed uint64
}

// DefaultSchedule is the retry budget: about a day in all, ten attempts
// at roughly 0, 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h and 24h after the
// first, then a dead letter. The schedule holds the waits between
// attempts, so it is the differences of those offsets.
func DefaultSchedule() []time.Duration {
	at := []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
		5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour}
	out := make([]time.Duration, len(at))
	for i := range at {
		if i > 0 {
			out[i] = at[i] - at[i-1]
		}
	}
	return out
}

// DefaultConfig is the configuration ktcn runs with.
func DefaultConfig() Config {
	return Config{Schedule: DefaultSchedule(), Jitter: 0.1, Window: 1000, Parallel: 8, Poll: time.Second,
		SaveEvery: 100 * time.Millisecond}
}

// withDefaults fills the zero fields from DefaultConfig (Jitter 0 stays
// 0: no jitter is a valid choice).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if len(c.Schedule) == 0 {
		c.Schedule = d.Schedule
	}
	c.Schedule = slices.Clone(c.Schedule)
	c.Jitter = min(max(c.Jitter, 0), 1)
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.Parallel <= 0 {
		c.Parallel = d.Parallel
	}
	if c.Poll <= 0 {
		c.Poll = d.Poll
	}
	if c.SaveEvery <= 0 {
		c.SaveEvery = d.SaveEvery
	}
	return c
}

// Deliverer runs the delivery workers.
type Deliverer struct {
	src   Source
	subs  Subscriptions
	store StateStore
	send  Sender
	clock calendar.Clock
	log   zerolog.Logger
	cfg   Config

	notify  chan struct{}
	running atomic.Bool

	// mu guards workers. Redeliver holds it while it hands a range to a
	// worker or writes it to the store, so a worker cannot start between
	// its look-up and its write.
	mu      sync.Mutex
	workers map[string]*worker
}

// NewDeliverer returns a deliverer; Run starts it.
func NewDeliverer(src Source, subs Subscriptions, st StateStore, send Sender, clock calendar.Clock,
	log zerolog.Logger, cfg Config) *Deliverer {
	cfg = cfg.withDefaults()
	if cfg.Seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
		cfg.Seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	return &Deliverer{src: src, subs: subs, store: st, send: send, clock: clock,
		log: log.With().Str("component", "feed.deliver").Logger(), cfg: cfg,
		notify: make(chan struct{}, 1), workers: map[string]*worker{}}
}

// Notify wakes the deliverer: events were committed, a subscription
// changed, or a redelivery was written to the store. It never blocks;
// wake-ups that arrive while one is pending are one wake-up.
func (d *Deliverer) Notify() {
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is done, then stops every worker (each saves
// its State) and returns nil. It re-reads the subscriptions on Notify and
// every Poll, starting a worker for each enabled one and stopping those
// of subscriptions deleted or disabled.
func (d *Deliverer) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("feed: deliverer is already running")
	}
	defer d.running.Store(false)
	exited := make(chan *worker)
	poll := time.NewTicker(d.cfg.Poll)
	defer poll.Stop()
	d.reconcile(ctx, exited)
	for {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			n := len(d.workers)
			for _, w := range d.workers {
				w.cancel()
			}
			d.mu.Unlock()
			// Every worker sends on exited exactly once and is removed only
			// then, so n is the number still to come.
			for ; n > 0; n-- {
				d.remove(<-exited)
			}
			return nil
		case w := <-exited:
			d.remove(w)
		case <-d.notify:
			d.reconcile(ctx, exited)
			d.mu.Lock()
			for _, w := range d.workers {
				w.wakeUp()
			}
			d.mu.Unlock()
		case <-poll.C:
			d.reconcile(ctx, exited)
		}
	}
}

// remove forgets a worker that exited.
func (d *Deliverer) remove(w *worker) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.workers[w.id] == w {
		delete(d.workers, w.id)
	}
}

// reconcile starts and stops workers to match the subscriptions. A
// worker that exited on its own (its receiver answered 410, or its store
// failed) is removed by Run before the next reconcile, which reads the
// subscriptions afresh: one disabled by a 410 is then not restarted, one
// that failed is, a Poll later.
func (d *Deliverer) reconcile(ctx context.Context, exited chan<- *worker) {
	subs, err := d.subs.Subscriptions(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error().Err(err).Msg("reading subscriptions")
		}
		return
	}
	want := map[string]Subscription{}
	for _, s := range subs {
		if s.Enabled {
			want[s.ID] = s
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, w := range d.workers {
		if s, ok := want[id]; ok {
			w.setSub(s)
		} else {
			w.cancel()
		}
	}
	for id, s := range want {
		if _, ok := d.workers[id]; ok || ctx.Err() != nil {
			continue
		}
		w := d.newWorker(ctx, s)
		d.workers[id] = w
		go func() {
			defer func() { exited <- w }()
			defer close(w.done)
			if err := w.run(); err != nil {
				w.log.Error().Err(err).Msg("delivery worker stopped")
			}
		}()
	}
}

// Redeliver asks for the events r covers to be sent to the subscription
// again, with their webhook-ids, whether or not they were acknowledged
// (events the outbox no longer holds are skipped). The range is saved in
// the subscription's State before Redeliver returns: by the running
// worker, which is the State's only writer while it runs, or, when none
// runs, here.
func (d *Deliverer) Redeliver(ctx context.Context, subID string, r Range) error {
	if r.From == 0 {
		r.From = 1
	}
	if r.To < r.From {
		return fmt.Errorf("feed: redeliver %d..%d: empty range", r.From, r.To)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if w := d.workers[subID]; w != nil {
		reply := make(chan error, 1)
		select {
		case w.redo <- redoReq{r: r, reply: reply}:
			select {
			case err := <-reply:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		case <-w.done:
			// The worker stopped (and saved) before taking the range; no
			// other starts while mu is held, so write it here.
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	st, err := d.store.DeliveryState(ctx, subID)
	if err != nil {
		return fmt.Errorf("feed: redeliver to %s: %w", subID, err)
	}
	st.Redeliver = append(st.Redeliver, r)
	if err := d.store.SaveDeliveryState(ctx, subID, st, nil); err != nil {
		return fmt.Errorf("feed: redeliver to %s: %w", subID, err)
	}
	return nil
}

// Status is a subscription's delivery progress as the API shows it.
type Status struct {
	Subscription string `json:"subscription_id"`
	Running      bool   `json:"running"`
	// State is as last saved (a busy worker saves every SaveEvery).
	State State  `json:"state"`
	Head  uint64 `json:"outbox_head"`
	// Behind counts the events after the cursor not yet settled.
	Behind uint64 `json:"behind"`
	// OldestUnsettled is when the oldest unsettled event occurred, and
	// LagSeconds how long ago that was (0 when nothing is behind).
	OldestUnsettled *time.Time `json:"oldest_unsettled,omitempty"`
	LagSeconds      float64    `json:"lag_seconds"`
}

// Status reads sub's delivery progress.
func (d *Deliverer) Status(ctx context.Context, sub Subscription) (Status, error) {
	st, err := d.store.DeliveryState(ctx, sub.ID)
	if err != nil {
		return Status{}, fmt.Errorf("feed: status of %s: %w", sub.ID, err)
	}
	head, err := d.src.OutboxHead(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("feed: status of %s: %w", sub.ID, err)
	}
	d.mu.Lock()
	_, running := d.workers[sub.ID]
	d.mu.Unlock()
	out := Status{Subscription: sub.ID, Running: running, State: st, Head: head}
	cursor := max(st.Cursor, sub.Start)
	if head <= cursor {
		return out, nil
	}
	ahead := map[uint64]bool{}
	for _, s := range st.Ahead {
		if s > cursor && s <= head {
			ahead[s] = true
		}
	}
	out.Behind = head - cursor - uint64(len(ahead))
	if out.Behind == 0 {
		return out, nil
	}
	evs, err := d.src.EventsAfter(ctx, cursor, len(ahead)+1)
	if err != nil {
		return Status{}, fmt.Errorf("feed: status of %s: %w", sub.ID, err)
	}
	for _, e := range evs {
		if !ahead[e.Seq] {
			at := e.OccurredAt
			out.OldestUnsettled = &at
			out.LagSeconds = max(d.clock.Now().Sub(at).Seconds(), 0)
			break
		}
	}
	return out, nil
}

// Lag is how far sub's delivery is behind: the events not yet settled,
// and the age in seconds of the oldest of them.
func (d *Deliverer) Lag(ctx context.Context, sub Subscription) (events uint64, seconds float64, err error) {
	s, err := d.Status(ctx, sub)
	if err != nil {
		return 0, 0, err
	}
	return s.Behind, s.LagSeconds, nil
}

// worker delivers to one subscription. Its fields below the line are its
// goroutine's alone.
type worker struct {
	d      *Deliverer
	id     string
	ctx    context.Context
	cancel context.CancelFunc
	log    zerolog.Logger
	wake   chan struct{}
	redo   chan redoReq
	done   chan struct{}

	subMu sync.Mutex
	sub   Subscription

	// ---
	rng       *rand.Rand
	st        State
	ahead     map[uint64]bool     // settled after the cursor (State.Ahead)
	pool      map[uint64]*item    // loaded and not settled, by Seq
	keys      map[string][]uint64 // pool seqs per order key, ascending
	flying    map[string]bool     // order keys with a request in flight
	loadedTo  uint64              // the normal flow has looked at every event up to here
	atHead    bool                // the last load found no more events
	ranges    []Range             // redeliveries still to do, sorted, disjoint
	redoNext  uint64              // next seq a redelivery loads
	redoItems int                 // pool items that are redeliveries
	savedRedo []Range             // State.Redeliver as the store last had it
	dead      []DeadLetter        // dead letters not yet saved
	dirty     bool                // State changed since the last save
	lastSave  time.Time           // real time, throttles saves
	lastLoad  time.Time           // real time, paces polling
	needLoad  bool
	inflight  int
	results   chan result
}

// item is an event a worker holds to send.
type item struct {
	ev       Event
	body     []byte
	n        int // failed attempts
	nextAt   time.Time
	inflight bool
	redo     bool // a redelivery of an event already settled
}

type result struct {
	seq  uint64
	resp Response
}

type redoReq struct {
	r     Range
	reply chan error
}

func (d *Deliverer) newWorker(ctx context.Context, s Subscription) *worker {
	ctx, cancel := context.WithCancel(ctx)
	h := fnv.New64a()
	h.Write([]byte(s.ID))
	return &worker{d: d, id: s.ID, ctx: ctx, cancel: cancel,
		log:  d.log.With().Str("subscription_id", s.ID).Logger(),
		wake: make(chan struct{}, 1), redo: make(chan redoReq), done: make(chan struct{}), sub: s,
		rng:  rand.New(rand.NewPCG(d.cfg.Seed, h.Sum64())),
		pool: map[uint64]*item{}, keys: map[string][]uint64{}, flying: map[string]bool{}, ahead: map[uint64]bool{},
		results: make(chan result, d.cfg.Parallel)}
}

func (w *worker) setSub(s Subscription) {
	w.subMu.Lock()
	w.sub = s
	w.subMu.Unlock()
}

func (w *worker) current() Subscription {
	w.subMu.Lock()
	defer w.subMu.Unlock()
	return w.sub
}

func (w *worker) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// errGone stops a worker whose receiver answered 410 Gone.
var errGone = errors.New("feed: receiver is gone")

// run is the worker's loop: load, send what may go, save, wait.
func (w *worker) run() error {
	if err := w.init(); err != nil {
		return err
	}
	cfg := w.d.cfg
	for {
		if polled := time.Since(w.lastLoad) >= cfg.Poll; w.needLoad || polled {
			if polled {
				w.mergeStored(w.ctx)
			}
			w.load()
		}
		w.dispatch()
		if w.dirty && (w.inflight == 0 || time.Since(w.lastSave) >= cfg.SaveEvery) {
			_ = w.save(w.ctx)
		}
		timer := time.NewTimer(w.nextWake())
		select {
		case <-w.ctx.Done():
			timer.Stop()
			return w.stop()
		case r := <-w.results:
			timer.Stop()
			err := w.complete(r)
			// Take every completion already waiting, so one save covers them.
			for more := true; more && err == nil; {
				select {
				case r := <-w.results:
					err = w.complete(r)
				default:
					more = false
				}
			}
			if errors.Is(err, errGone) {
				return w.gone(err)
			}
		case <-w.wake:
			timer.Stop()
			w.needLoad, w.atHead = true, false
			w.mergeStored(w.ctx)
		case req := <-w.redo:
			timer.Stop()
			w.addRange(req.r)
			req.reply <- w.save(w.ctx)
		case <-timer.C:
		}
	}
}

// init loads the saved State and puts it in order: a new subscription
// starts after its Start, settled entries the cursor reached fold in.
func (w *worker) init() error {
	st, err := w.d.store.DeliveryState(w.ctx, w.id)
	if err != nil {
		return fmt.Errorf("feed: delivery state of %s: %w", w.id, err)
	}
	w.savedRedo = slices.Clone(st.Redeliver)
	if start := w.current().Start; st.Cursor < start {
		st.Cursor = start
		w.dirty = true
	}
	for _, s := range st.Ahead {
		if s > st.Cursor {
			w.ahead[s] = true
		}
	}
	st.Ahead = nil
	w.st = st
	w.advance()
	w.loadedTo = w.st.Cursor
	w.ranges = nil
	for _, r := range st.Redeliver {
		w.addRange(r)
	}
	w.st.Redeliver = nil
	if w.st.Retrying == nil {
		w.st.Retrying = map[uint64]Attempts{}
	}
	// Attempts of redeliveries no range covers any more would never be
	// loaded again.
	for s := range w.st.Retrying {
		if w.settled(s) && !w.inRanges(s) {
			delete(w.st.Retrying, s)
			w.dirty = true
		}
	}
	w.needLoad = true
	w.lastSave = time.Now()
	return nil
}

// settled reports whether seq is settled in the State.
func (w *worker) settled(seq uint64) bool { return seq <= w.st.Cursor || w.ahead[seq] }

func (w *worker) inRanges(seq uint64) bool {
	for _, r := range w.ranges {
		if seq >= r.From && seq <= r.To {
			return true
		}
	}
	return false
}

// advance moves the cursor over the settled events right after it.
func (w *worker) advance() {
	for w.ahead[w.st.Cursor+1] {
		delete(w.ahead, w.st.Cursor+1)
		w.st.Cursor++
	}
}

// markSettled records seq as settled and advances the cursor over the
// contiguous settled prefix.
func (w *worker) markSettled(seq uint64) {
	if w.settled(seq) {
		return
	}
	w.dirty = true
	w.ahead[seq] = true
	before := w.st.Cursor
	w.advance()
	if w.st.Cursor != before && !w.atHead {
		w.needLoad = true // room in the window
	}
}

// addRange takes a redelivery request.
func (w *worker) addRange(r Range) {
	if r.From == 0 {
		r.From = 1
	}
	if r.To < r.From {
		return
	}
	rs := append(slices.Clone(w.ranges), r)
	slices.SortFunc(rs, func(a, b Range) int { return cmp.Compare(a.From, b.From) })
	merged := rs[:0]
	for _, x := range rs {
		if n := len(merged); n > 0 && x.From <= merged[n-1].To+1 {
			merged[n-1].To = max(merged[n-1].To, x.To)
			continue
		}
		merged = append(merged, x)
	}
	w.ranges = merged
	// Seqs below redoNext were loaded; a range reaching below it is
	// loaded again from its start (what is still in the pool is not
	// doubled).
	w.redoNext = min(w.redoNext, r.From)
	w.needLoad = true
	w.dirty = true
}

// mergeStored takes the redeliveries written to the store (by an admin's
// use case) since this worker's last save: the ranges there that it did
// not save itself.
func (w *worker) mergeStored(ctx context.Context) {
	st, err := w.d.store.DeliveryState(ctx, w.id)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn().Err(err).Msg("re-reading delivery state")
		}
		return
	}
	for _, r := range st.Redeliver {
		if !slices.Contains(w.savedRedo, r) {
			w.log.Info().Uint64("from", r.From).Uint64("to", r.To).Msg("redelivery requested")
			w.addRange(r)
		}
	}
	w.savedRedo = st.Redeliver
}

// redoLow is the lowest seq a redelivery still has to do: what is
// loaded and unsettled, or what is not loaded yet.
func (w *worker) redoLow() uint64 {
	low := uint64(0)
	for _, r := range w.ranges {
		if r.To >= w.redoNext {
			low = max(r.From, w.redoNext)
			break
		}
	}
	for s, it := range w.pool {
		if it.redo && (low == 0 || s < low) {
			low = s
		}
	}
	return low
}

// trimRanges drops what redeliveries have done.
func (w *worker) trimRanges() {
	low := w.redoLow()
	if low == 0 {
		w.ranges = nil
		return
	}
	var out []Range
	for _, r := range w.ranges {
		if r.To >= low {
			out = append(out, Range{From: max(r.From, low), To: r.To})
		}
	}
	w.ranges = out
}

// save writes the State and the dead letters, after taking redeliveries
// written to the store meanwhile (so a save does not erase one; the race
// left, between that read and this write, is why Deliverer.Redeliver
// hands ranges to the worker instead).
func (w *worker) save(ctx context.Context) error {
	w.mergeStored(ctx)
	w.trimRanges()
	st := w.st
	st.Ahead = make([]uint64, 0, len(w.ahead))
	for s := range w.ahead {
		st.Ahead = append(st.Ahead, s)
	}
	slices.Sort(st.Ahead)
	if len(st.Ahead) == 0 {
		st.Ahead = nil
	}
	st.Retrying = make(map[uint64]Attempts, len(w.st.Retrying))
	for k, v := range w.st.Retrying {
		st.Retrying[k] = v
	}
	if len(st.Retrying) == 0 {
		st.Retrying = nil
	}
	st.Redeliver = slices.Clone(w.ranges)
	w.lastSave = time.Now()
	if err := w.d.store.SaveDeliveryState(ctx, w.id, st, w.dead); err != nil {
		if ctx.Err() == nil {
			w.log.Error().Err(err).Msg("saving delivery state")
		}
		return fmt.Errorf("feed: saving delivery state of %s: %w", w.id, err)
	}
	w.dead = nil
	w.dirty = false
	w.savedRedo = st.Redeliver
	return nil
}

// maxBatch bounds one read of the outbox.
const maxBatch = 500

// load reads the outbox: the events after what the normal flow has
// looked at, up to the window's end, and the next events redeliveries
// ask for.
func (w *worker) load() {
	w.needLoad = false
	w.lastLoad = time.Now()
	if err := w.loadNew(); err != nil {
		if w.ctx.Err() == nil {
			w.log.Warn().Err(err).Msg("reading the outbox")
		}
		return
	}
	if err := w.loadRedo(); err != nil && w.ctx.Err() == nil {
		w.log.Warn().Err(err).Msg("reading the outbox for a redelivery")
	}
}

func (w *worker) loadNew() error {
	window := uint64(w.d.cfg.Window)
	end := w.st.Cursor + window
	if w.loadedTo >= end {
		return nil
	}
	limit := int(min(end-w.loadedTo, maxBatch))
	evs, err := w.d.src.EventsAfter(w.ctx, w.loadedTo, limit)
	if err != nil {
		return err
	}
	w.atHead = len(evs) < limit
	sub := w.current()
	for _, e := range evs {
		if e.Seq <= w.loadedTo {
			continue
		}
		if e.Seq > w.loadedTo+1 {
			// The outbox no longer holds the events in between (its
			// retention dropped them; sequence numbers have no gaps
			// otherwise): nothing is left to send of them.
			w.log.Warn().Uint64("from", w.loadedTo+1).Uint64("to", e.Seq-1).Msg("events missing from the outbox skipped")
			if w.loadedTo == w.st.Cursor {
				w.st.Cursor = e.Seq - 1
				for s := range w.ahead {
					if s <= w.st.Cursor {
						delete(w.ahead, s)
					}
				}
				w.dirty = true
				end = w.st.Cursor + window
			} else if e.Seq > end {
				w.atHead = false // come back when the cursor has caught up
				break
			} else {
				for s := w.loadedTo + 1; s < e.Seq; s++ {
					w.markSettled(s)
				}
			}
		}
		if e.Seq > end {
			w.atHead = false
			break
		}
		w.loadedTo = e.Seq
		if w.settled(e.Seq) || w.pool[e.Seq] != nil {
			continue
		}
		if !sub.Wants(e.Type) {
			w.markSettled(e.Seq)
			continue
		}
		w.add(e, false)
	}
	return nil
}

func (w *worker) loadRedo() error {
	// A few reads per load: a long range of events the normal flow still
	// owns (or the subscription does not want) loads nothing, and must
	// not hold the loop.
	for reads := 0; reads < 4 && w.redoItems < w.d.cfg.Window; reads++ {
		var r Range
		found := false
		for _, x := range w.ranges {
			if x.To >= w.redoNext {
				r, found = x, true
				break
			}
		}
		if !found {
			return nil
		}
		start := max(r.From, w.redoNext)
		limit := int(min(r.To-start+1, uint64(w.d.cfg.Window-w.redoItems), maxBatch))
		evs, err := w.d.src.EventsAfter(w.ctx, start-1, limit)
		if err != nil {
			return err
		}
		sub := w.current()
		w.redoNext = start + uint64(limit) // past what this read covered
		for _, e := range evs {
			if e.Seq > r.To {
				w.redoNext = r.To + 1
				break
			}
			w.redoNext = e.Seq + 1
			// Events not settled are the normal flow's, loaded or to be.
			if !w.settled(e.Seq) || w.pool[e.Seq] != nil || !sub.Wants(e.Type) {
				continue
			}
			w.add(e, true)
		}
		if len(evs) < limit {
			w.redoNext = r.To + 1 // the rest of the range is not in the outbox
		}
		w.dirty = true
	}
	return nil
}

// add puts an event in the pool, with the attempts a saved State holds
// for it.
func (w *worker) add(e Event, redo bool) {
	it := &item{ev: e, redo: redo}
	if a, ok := w.st.Retrying[e.Seq]; ok {
		it.n, it.nextAt = a.N, a.NextAt
	} else if d := w.d.cfg.Schedule[0]; d > 0 {
		it.nextAt = w.d.clock.Now().Add(w.jitter(d))
	}
	w.pool[e.Seq] = it
	k := e.OrderKey()
	seqs := w.keys[k]
	i, _ := slices.BinarySearch(seqs, e.Seq)
	w.keys[k] = slices.Insert(seqs, i, e.Seq)
	if redo {
		w.redoItems++
	}
}

// drop takes a settled item out of the pool.
func (w *worker) drop(it *item) {
	delete(w.pool, it.ev.Seq)
	k := it.ev.OrderKey()
	seqs := w.keys[k]
	if i, ok := slices.BinarySearch(seqs, it.ev.Seq); ok {
		seqs = slices.Delete(seqs, i, i+1)
	}
	if len(seqs) == 0 {
		delete(w.keys, k)
	} else {
		w.keys[k] = seqs
	}
	if it.redo {
		w.redoItems--
	}
	delete(w.st.Retrying, it.ev.Seq)
	if !it.redo {
		w.markSettled(it.ev.Seq)
	}
	w.dirty = true
}

// ready lists what may be sent now, lowest seq first: per order key only
// the lowest unsettled event, only when its wait is over, and only when
// nothing of its key is in flight (a redelivery of an earlier event can
// become the key's lowest while a later one is on its way).
func (w *worker) ready(now time.Time) []*item {
	var out []*item
	for k, seqs := range w.keys {
		it := w.pool[seqs[0]]
		if !w.flying[k] && !it.nextAt.After(now) {
			out = append(out, it)
		}
	}
	slices.SortFunc(out, func(a, b *item) int {
		if a.ev.Seq < b.ev.Seq {
			return -1
		}
		return 1
	})
	return out
}

// dispatch starts the requests that may go.
func (w *worker) dispatch() {
	if w.inflight >= w.d.cfg.Parallel {
		return
	}
	now := w.d.clock.Now()
	for _, it := range w.ready(now) {
		if w.inflight >= w.d.cfg.Parallel {
			return
		}
		w.start(it, now)
	}
}

// start sends one attempt in its own goroutine; the results channel has
// room for every request in flight, so the goroutine never blocks.
func (w *worker) start(it *item, now time.Time) {
	it.inflight = true
	w.inflight++
	w.flying[it.ev.OrderKey()] = true
	seq := it.ev.Seq
	fail := func(err error) { w.results <- result{seq: seq, resp: Response{Err: err}} }
	if it.body == nil {
		b, err := Body(it.ev)
		if err != nil {
			fail(err)
			return
		}
		it.body = b
	}
	sub := w.current()
	sig, err := SignatureHeader(sub.SigningSecrets(now), it.ev.ID, now, it.body)
	if err != nil {
		fail(fmt.Errorf("feed: signing: %w", err))
		return
	}
	h := http.Header{}
	h.Set("webhook-id", it.ev.ID)
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", UserAgent)
	body, url, ctx, send := it.body, sub.URL, w.ctx, w.d.send
	go func() { w.results <- result{seq: seq, resp: send.Send(ctx, url, h, body)} }()
}

// complete books one attempt's outcome.
func (w *worker) complete(r result) error {
	w.inflight--
	it := w.pool[r.seq]
	if it == nil {
		return nil
	}
	it.inflight = false
	delete(w.flying, it.ev.OrderKey())
	if w.ctx.Err() != nil {
		return nil // stopping: a cancelled request is not the receiver's failure
	}
	now := w.d.clock.Now()
	switch {
	case r.resp.ok():
		w.drop(it)
		w.st.Delivered++
		w.st.LastSuccess = &now
		return nil
	case r.resp.Err == nil && r.resp.Status == http.StatusGone:
		return fmt.Errorf("%w: HTTP 410 to event %s (seq %d)", errGone, it.ev.ID, it.ev.Seq)
	}
	msg := r.resp.describe()
	it.n++
	w.st.Failures++
	w.st.LastFailure = &now
	w.st.LastError = msg
	w.dirty = true
	sched := w.d.cfg.Schedule
	if it.n >= len(sched) {
		w.log.Warn().Uint64("seq", it.ev.Seq).Str("event_id", it.ev.ID).Int("attempts", it.n).Str("error", msg).
			Msg("event dead-lettered")
		w.dead = append(w.dead, DeadLetter{Subscription: w.id, Seq: it.ev.Seq, EventID: it.ev.ID, Type: it.ev.Type,
			Attempts: it.n, LastError: msg, At: now})
		w.st.DeadLetters++
		w.drop(it)
		return nil
	}
	wait := w.jitter(sched[it.n])
	// Honour Retry-After, but not beyond the longest wait of the schedule:
	// a receiver must not be able to park a declaration for a year.
	if ra := min(r.resp.RetryAfter, slices.Max(sched)); ra > wait {
		wait = ra
	}
	it.nextAt = now.Add(wait)
	w.st.Retrying[it.ev.Seq] = Attempts{N: it.n, NextAt: it.nextAt, LastError: msg}
	return nil
}

// jitter spreads a wait by the configured factor.
func (w *worker) jitter(d time.Duration) time.Duration {
	j := w.d.cfg.Jitter
	if j == 0 || d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 - j + 2*j*w.rng.Float64()))
}

// nextWake is how long the loop may sleep: until the next poll, the next
// retry that could go, or the save a busy worker owes.
func (w *worker) nextWake() time.Duration {
	cfg := w.d.cfg
	wait := cfg.Poll - time.Since(w.lastLoad)
	if w.dirty {
		wait = min(wait, cfg.SaveEvery-time.Since(w.lastSave))
	}
	if w.inflight < cfg.Parallel {
		now := w.d.clock.Now()
		for k, seqs := range w.keys {
			if it := w.pool[seqs[0]]; !w.flying[k] {
				wait = min(wait, it.nextAt.Sub(now))
			}
		}
	}
	return max(wait, time.Millisecond)
}

// finish waits for the requests in flight (cancelled or not) and saves.
func (w *worker) finish(ctx context.Context) error {
	for w.inflight > 0 {
		r := <-w.results
		if err := w.complete(r); err != nil && w.ctx.Err() == nil {
			w.log.Warn().Err(err).Msg("while stopping")
		}
	}
	if !w.dirty && len(w.dead) == 0 {
		return nil
	}
	return w.save(ctx)
}

// stop ends the worker when its context is done: the State is saved on
// a context of its own, since the worker's is cancelled.
func (w *worker) stop() error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), 10*time.Second)
	defer cancel()
	return w.finish(ctx)
}

// gone disables the subscription whose receiver answered 410 Gone and
// stops the worker; the event it answered on stays unsettled, so a
// re-enabled subscription resumes with it.
func (w *worker) gone(cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), 10*time.Second)
	defer cancel()
	if err := w.finish(ctx); err != nil {
		return err
	}
	reason := "receiver answered 410 Gone"
	w.log.Warn().Err(cause).Msg("disabling subscription")
	if err := w.d.subs.DisableSubscription(w.ctx, w.id, reason); err != nil {
		return fmt.Errorf("feed: disabling %s after 410: %w", w.id, err)
	}
	return nil
}
