package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/ktcn/ktcn/inspection/feed"
)

// The reference receiver of ktcn's webhooks: what an NSW integrator can
// copy, and what the end-to-end tests point ktcn's delivery at. It checks
// ktcn the way a stranger would: signatures with the Standard Webhooks
// library (never ktcn's own signer), at-least-once delivery by deduping on
// webhook-id, order per declaration by Event.OrderKey, and gaps by seq.

const receiverUsage = `Usage: ktcn nsw-receiver -secret whsec_… [flags]

A reference receiver of ktcn's webhooks. Every POST is verified with the
Standard Webhooks library against each configured secret (repeat -secret
during a rotation: a request any of them verifies is accepted); a failure
is answered 400. A webhook-id seen before is answered 204 and counted as a
duplicate. Each accepted event is appended to -record as one JSON line and
fsync'd before the 2xx, and a restart reloads that file, so dedupe and the
order check survive it. An event whose seq is lower than the last one seen
for its declaration (or goods) is an order violation; seqs missing between
the lowest and highest seen are reported as gaps (a subscription filtered
by type has them legitimately). GET /stats answers the counts as JSON.

Flags:
`

// receiverConfig configures a receiver.
type receiverConfig struct {
	// Secrets are "whsec_…" secrets; a request any one verifies is accepted.
	Secrets []string
	// Record is the JSON-lines file of accepted (and rejected) requests;
	// empty keeps nothing on disk and a restart forgets everything.
	Record string
	// FailRate is the share of requests answered 503 before anything else
	// is done with them (an unreliable NSW), drawn from a PCG seeded by Seed.
	FailRate float64
	Seed     uint64
	Logger   zerolog.Logger
}

// receiverRecord is one line of the record file.
type receiverRecord struct {
	// Status is "accepted" or "rejected".
	Status     string    `json:"status"`
	WebhookID  string    `json:"webhook_id"`
	Timestamp  string    `json:"webhook_timestamp,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	// Reason says why a request was rejected.
	Reason string `json:"reason,omitempty"`
	// Type and SentAt are the body's type and timestamp; Event its data,
	// as sent; OrderKey and Seq what the order check used.
	Type     string          `json:"type,omitempty"`
	SentAt   json.RawMessage `json:"timestamp,omitempty"`
	OrderKey string          `json:"order_key,omitempty"`
	Seq      uint64          `json:"seq,omitempty"`
	Event    json.RawMessage `json:"event,omitempty"`
}

const (
	recordAccepted = "accepted"
	recordRejected = "rejected"
)

// receiverStats is what GET /stats answers.
type receiverStats struct {
	// Received counts events accepted by this process (new webhook-ids);
	// Reloaded those read back from the record file at start; Events is
	// every distinct event held, both together.
	Received   int64 `json:"received"`
	Reloaded   int64 `json:"reloaded"`
	Events     int   `json:"events"`
	Duplicates int64 `json:"duplicates"`
	// Rejected counts requests answered 400 (signature, headers or body);
	// Failed the 503s -fail-rate answered.
	Rejected        int64 `json:"rejected"`
	Failed          int64 `json:"failed"`
	OrderViolations int64 `json:"order_violations"`
	// IDMismatches counts events whose data.id is not their webhook-id
	// (ktcn promises they are the same).
	IDMismatches int64       `json:"id_mismatches"`
	MinSeq       uint64      `json:"min_seq"`
	MaxSeq       uint64      `json:"max_seq"`
	Missing      missingSeqs `json:"missing"`
}

// missingSeqs are the seqs between the lowest and highest seen that were
// not received: Count of them, the First few.
type missingSeqs struct {
	Count uint64   `json:"count"`
	First []uint64 `json:"first"`
}

const (
	missingShown      = 20
	receiverMaxBody   = 1 << 20
	receiverStatsPath = "/stats"
)

// receiver verifies, dedupes, order-checks and records webhook deliveries.
// It is an http.Handler; Close it after the server has stopped.
type receiver struct {
	hooks    []*standardwebhooks.Webhook
	failRate float64
	log      zerolog.Logger

	randMu sync.Mutex
	rand   *rand.Rand

	// mu serialises acceptance, so two concurrent deliveries of one event
	// cannot both be recorded, and guards everything below.
	mu      sync.Mutex
	file    *os.File
	size    int64 // of the record file, to cut a failed append
	seen    map[string]struct{}
	lastSeq map[string]uint64
	seqs    map[uint64]struct{}
	stats   receiverStats
}

// newReceiver builds a receiver, reloading cfg.Record when it exists.
func newReceiver(cfg receiverConfig) (*receiver, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("nsw-receiver: no secret (-secret or -secret-file)")
	}
	if cfg.FailRate < 0 || cfg.FailRate > 1 {
		return nil, fmt.Errorf("nsw-receiver: fail rate %v: want 0 to 1", cfg.FailRate)
	}
	r := &receiver{failRate: cfg.FailRate, log: cfg.Logger, rand: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		seen: map[string]struct{}{}, lastSeq: map[string]uint64{}, seqs: map[uint64]struct{}{}}
	for i, s := range cfg.Secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			return nil, fmt.Errorf("nsw-receiver: secret %d: %w", i+1, err)
		}
		r.hooks = append(r.hooks, wh)
	}
	if cfg.Record == "" {
		return r, nil
	}
	if err := r.reload(cfg.Record); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(cfg.Record, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nsw-receiver: record: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("nsw-receiver: record: %w", err)
	}
	r.file, r.size = f, info.Size()
	return r, nil
}

// reload reads back the accepted events of an earlier run. A torn last
// line (a crash mid-append) was never acknowledged, so it is cut.
func (r *receiver) reload(path string) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("nsw-receiver: record: %w", err)
	}
	if n := len(raw); n > 0 && raw[n-1] != '\n' {
		keep := bytes.LastIndexByte(raw, '\n') + 1
		if err := os.Truncate(path, int64(keep)); err != nil {
			return fmt.Errorf("nsw-receiver: record: cut a torn last line: %w", err)
		}
		r.log.Warn().Str("path", path).Int("bytes", n-keep).Msg("cut a torn last line from the record file")
		raw = raw[:keep]
	}
	recs, err := decodeReceiverRecords(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("nsw-receiver: record %s: %w", path, err)
	}
	for _, rec := range recs {
		if rec.Status != recordAccepted {
			continue
		}
		r.seen[rec.WebhookID] = struct{}{}
		r.lastSeq[rec.OrderKey] = max(r.lastSeq[rec.OrderKey], rec.Seq)
		r.noteSeq(rec.Seq)
		r.stats.Reloaded++
	}
	if r.stats.Reloaded > 0 {
		r.log.Info().Str("path", path).Int64("events", r.stats.Reloaded).Msg("reloaded the record file")
	}
	return nil
}

// readReceiverRecord reads a record file (for tests and tools).
func readReceiverRecord(path string) ([]receiverRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return decodeReceiverRecords(f)
}

func decodeReceiverRecords(rd io.Reader) ([]receiverRecord, error) {
	var out []receiverRecord
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 4*receiverMaxBody)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var rec receiverRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// Close closes the record file.
func (r *receiver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.file == nil {
		return nil
	}
	err := r.file.Close()
	r.file = nil
	return err
}

// webhookBody is what ktcn POSTs: Standard Webhooks' envelope around one
// outbox event.
type webhookBody struct {
	Type      string          `json:"type"`
	Timestamp json.RawMessage `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// /stats never fails: tests poll it while deliveries are failed.
	if req.Method == http.MethodGet && req.URL.Path == receiverStatsPath {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(r.Stats())
		return
	}
	// An unreliable NSW fails before it looks at the request.
	if r.failRate > 0 && r.draw() < r.failRate {
		r.mu.Lock()
		r.stats.Failed++
		r.mu.Unlock()
		http.Error(w, "injected failure", http.StatusServiceUnavailable)
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST webhooks here; GET /stats", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, receiverMaxBody))
	if err != nil {
		r.reject(w, req.Header, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := r.verify(body, req.Header); err != nil {
		r.reject(w, req.Header, err.Error(), http.StatusBadRequest)
		return
	}
	status, reason := r.accept(body, req.Header)
	if reason != "" {
		r.reject(w, req.Header, reason, status)
		return
	}
	w.WriteHeader(status)
}

func (r *receiver) draw() float64 {
	r.randMu.Lock()
	defer r.randMu.Unlock()
	return r.rand.Float64()
}

// verify is the Standard Webhooks check under every configured secret.
func (r *receiver) verify(body []byte, h http.Header) error {
	var first error
	for _, wh := range r.hooks {
		err := wh.Verify(body, h)
		if err == nil {
			return nil
		}
		// A stale timestamp or a missing header fails under every secret;
		// say that rather than "no matching signature".
		if first == nil || errors.Is(first, standardwebhooks.ErrNoMatchingSignature) {
			first = err
		}
	}
	return first
}

// accept dedupes, parses, order-checks and records a verified request,
// and says what to answer: a 2xx, or a status and why it was refused.
func (r *receiver) accept(body []byte, h http.Header) (int, string) {
	id := h.Get(standardwebhooks.HeaderWebhookID)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.seen[id]; dup {
		r.stats.Duplicates++
		r.log.Debug().Str("webhook_id", id).Msg("duplicate delivery")
		return http.StatusNoContent, ""
	}
	var msg webhookBody
	if err := json.Unmarshal(body, &msg); err != nil {
		return http.StatusBadRequest, "body: " + err.Error()
	}
	if msg.Type == "" || len(msg.Data) == 0 {
		return http.StatusBadRequest, `body: want {"type", "timestamp", "data"}`
	}
	var ev feed.Event
	if err := json.Unmarshal(msg.Data, &ev); err != nil {
		return http.StatusBadRequest, "body data: " + err.Error()
	}
	// An event about no declaration is ordered by its subject.
	key := ev.OrderKey()
	rec := receiverRecord{Status: recordAccepted, WebhookID: id, Timestamp: h.Get(standardwebhooks.HeaderWebhookTimestamp),
		ReceivedAt: time.Now().UTC(), Type: msg.Type, SentAt: msg.Timestamp, OrderKey: key, Seq: ev.Seq, Event: msg.Data}
	if err := r.append(rec); err != nil {
		r.log.Error().Err(err).Str("webhook_id", id).Msg("record the event")
		// Not acknowledged (no reason: not a rejection): the sender retries.
		return http.StatusInternalServerError, ""
	}
	r.seen[id] = struct{}{}
	r.stats.Received++
	if ev.ID != id {
		r.stats.IDMismatches++
		r.log.Warn().Str("webhook_id", id).Str("event_id", ev.ID).Msg("data.id is not the webhook-id")
	}
	if last, ok := r.lastSeq[key]; ok && ev.Seq < last {
		r.stats.OrderViolations++
		r.log.Warn().Str("order_key", key).Uint64("seq", ev.Seq).Uint64("after", last).Str("webhook_id", id).
			Msg("order violation: an event arrived after a later one of the same declaration")
	}
	r.lastSeq[key] = max(r.lastSeq[key], ev.Seq)
	r.noteSeq(ev.Seq)
	r.log.Debug().Str("webhook_id", id).Uint64("seq", ev.Seq).Str("type", msg.Type).Str("order_key", key).Msg("accepted")
	return http.StatusNoContent, ""
}

func (r *receiver) noteSeq(seq uint64) {
	if len(r.seqs) == 0 {
		r.stats.MinSeq, r.stats.MaxSeq = seq, seq
	}
	r.stats.MinSeq, r.stats.MaxSeq = min(r.stats.MinSeq, seq), max(r.stats.MaxSeq, seq)
	r.seqs[seq] = struct{}{}
}

// append writes one line and syncs it; on failure it cuts what it wrote,
// so no torn line sits before the next one. r.mu is held.
func (r *receiver) append(rec receiverRecord) error {
	if r.file == nil {
		return nil
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	n, err := r.file.Write(line)
	if err == nil {
		err = r.file.Sync()
	}
	if err != nil {
		if n > 0 {
			err = errors.Join(err, r.file.Truncate(r.size))
		}
		return err
	}
	r.size += int64(n)
	return nil
}

// reject answers a refused request and records why.
func (r *receiver) reject(w http.ResponseWriter, h http.Header, reason string, status int) {
	id := h.Get(standardwebhooks.HeaderWebhookID)
	r.mu.Lock()
	r.stats.Rejected++
	err := r.append(receiverRecord{Status: recordRejected, WebhookID: id, Timestamp: h.Get(standardwebhooks.HeaderWebhookTimestamp),
		ReceivedAt: time.Now().UTC(), Reason: reason})
	r.mu.Unlock()
	if err != nil {
		r.log.Error().Err(err).Msg("record a rejection")
	}
	r.log.Warn().Str("webhook_id", id).Str("reason", reason).Int("status", status).Msg("rejected")
	http.Error(w, reason, status)
}

// Stats are the counts so far, with the gaps between the lowest and
// highest seq seen.
func (r *receiver) Stats() receiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Events = len(r.seen)
	st.Missing = missingSeqs{First: []uint64{}}
	if len(r.seqs) == 0 {
		return st
	}
	st.Missing.Count = st.MaxSeq - st.MinSeq + 1 - uint64(len(r.seqs))
	if st.Missing.Count == 0 {
		return st
	}
	sorted := make([]uint64, 0, len(r.seqs))
	for s := range r.seqs {
		sorted = append(sorted, s)
	}
	slices.Sort(sorted)
	for i := 1; i < len(sorted) && len(st.Missing.First) < missingShown; i++ {
		for s := sorted[i-1] + 1; s < sorted[i] && len(st.Missing.First) < missingShown; s++ {
			st.Missing.First = append(st.Missing.First, s)
		}
	}
	return st
}

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// receiverFlags is the parsed command line of nsw-receiver.
type receiverFlags struct {
	addr     string
	logLevel string
	cfg      receiverConfig
}

func parseReceiverFlags(args []string, stderr io.Writer) (receiverFlags, error) {
	var (
		f          receiverFlags
		secrets    stringsFlag
		secretFile string
	)
	fs := flag.NewFlagSet("nsw-receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, receiverUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.addr, "addr", "127.0.0.1:9090", "listen address")
	fs.Var(&secrets, "secret", "signing secret whsec_… (repeat during a rotation)")
	fs.StringVar(&secretFile, "secret-file", "", "file of signing secrets, one a line (# comments), beside any -secret")
	fs.StringVar(&f.cfg.Record, "record", "", "JSON-lines file of accepted events (reloaded at start); empty keeps none")
	fs.Float64Var(&f.cfg.FailRate, "fail-rate", 0, "share of requests answered 503 at random, 0 to 1 (simulates an unreliable NSW)")
	fs.Uint64Var(&f.cfg.Seed, "seed", 1, "seed of -fail-rate's draws")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	f.cfg.Secrets = secrets
	if secretFile != "" {
		raw, err := os.ReadFile(secretFile)
		if err != nil {
			return f, fmt.Errorf("-secret-file: %w", err)
		}
		for line := range strings.Lines(string(raw)) {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				f.cfg.Secrets = append(f.cfg.Secrets, line)
			}
		}
	}
	if len(f.cfg.Secrets) == 0 {
		return f, errors.New("nsw-receiver needs a secret: -secret whsec_… or -secret-file")
	}
	if f.cfg.FailRate < 0 || f.cfg.FailRate > 1 {
		return f, fmt.Errorf("-fail-rate %v: want 0 to 1", f.cfg.FailRate)
	}
	return f, nil
}

func runReceiver(ctx context.Context, args []string, _ func(string) string, _, stderr io.Writer) error {
	f, err := parseReceiverFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(f.logLevel, stderr)
	if err != nil {
		return err
	}
	f.cfg.Logger = log
	rcv, err := newReceiver(f.cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := rcv.Close(); err != nil {
			log.Error().Err(err).Msg("close record file")
		}
	}()
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", f.addr, err)
	}
	srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Info().Str("addr", ln.Addr().String()).Int("secrets", len(f.cfg.Secrets)).Str("record", f.cfg.Record).
		Float64("fail_rate", f.cfg.FailRate).Msg("nsw-receiver listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	st := rcv.Stats()
	log.Log().Int64("received", st.Received).Int64("duplicates", st.Duplicates).Int64("rejected", st.Rejected).
		Int64("failed", st.Failed).Int64("order_violations", st.OrderViolations).Uint64("max_seq", st.MaxSeq).
		Uint64("missing", st.Missing.Count).Msg("nsw-receiver stopped")
	return nil
}
