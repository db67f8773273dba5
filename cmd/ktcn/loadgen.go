package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/policy"
)

const loadgenUsage = `Usage: ktcn loadgen [flags]

Replays realistic declarations against a running ktcn over loopback and
reports throughput, status counts and latency percentiles.

With -rate R it runs open loop: declaration n is due at start + n/R whether
or not earlier ones were answered, and its latency is measured from that due
time, so time spent queued behind a slow server counts (a closed loop would
hide it by sending less). Without -rate, -clients workers send back to back,
as fast as the server answers. Either way the run ends at -duration or after
-count declarations, whichever comes first; -count without -duration runs
until that many are sent.

Declarations come from the seeded history generator (-source history: the
same goods, importers and makers that serve's first start loads, so lots meet
real history and land in every mode) or from the goods catalogue (-source
catalogue), with 1 to -max-lines lines each and IDs <prefix>-<n>, unique per
run. Only loopback addresses are accepted.

The key is -key, else $KTCN_LOADGEN_KEY, else the "nsw" entry of
<data dir>/dev-credentials.json (written by serve's first start).

`

// Loopback only: a load generator pointed at someone else's server is an
// attack, and over a real network it would measure the network.
func loopbackAddr(addr string) (string, error) {
	hostport := strings.TrimPrefix(addr, "http://")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("-addr %q: want host:port on loopback, e.g. 127.0.0.1:8080", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("-addr %q: bad port", addr)
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1" // not resolved: a hosts file must not redirect the load
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("-addr %q: loadgen only targets loopback (127.0.0.1, ::1 or localhost)", addr)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// loadClient is an HTTP client that can reach only one loopback address,
// whatever URL it is given, and follows no redirects.
func loadClient(addr string, conns int, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			// One connection per worker, kept: the measurement is of the
			// server, not of TCP handshakes.
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// loadToken finds the NSW key: the flag, the environment, then the
// development credentials serve wrote into the data dir.
func loadToken(flagKey string, getenv func(string) string, dataDir string) (string, error) {
	return credential(flagKey, getenv("KTCN_LOADGEN_KEY"), "KTCN_LOADGEN_KEY", dataDir, "nsw")
}

// credential is a command's API key: the flag's, the environment
// variable's (envKey, named envVar), then the principal's entry of the
// development credentials in dataDir.
func credential(flagKey, envKey, envVar, dataDir, principal string) (string, error) {
	if flagKey != "" {
		return flagKey, nil
	}
	if envKey != "" {
		return envKey, nil
	}
	path := filepath.Join(dataDir, devCredentialsFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no %s key: pass -key, set %s, or point -data-dir at the data dir of a server started with fixtures (%w)", principal, envVar, err)
	}
	var creds map[string]string
	if err := json.Unmarshal(raw, &creds); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if creds[principal] == "" {
		return "", fmt.Errorf("%s has no %q key", path, principal)
	}
	return creds[principal], nil
}

// declSource mints declarations from templates. Each template is stored as
// JSON split around its (empty) declaration ID, so a request costs the load
// generator an append, not a json.Marshal: its CPU is the server's CPU on a
// two-core machine.
type declSource struct {
	kind   string
	prefix string
	head   []byte   // {"declaration_id":"
	tails  [][]byte // ","importer_tax_code":... per template
	lines  []int
}

var prefixRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,39}$`)

// defaultPrefix is unique per run (time to the millisecond, base 36), so
// a second run against the same store decides new declarations rather than
// replaying the first run's.
func defaultPrefix() string {
	return "LG" + strings.ToUpper(strconv.FormatInt(time.Now().UnixMilli(), 36))
}

// historyUniverse says which generated history -source history draws its
// declarations from. The zero value is serve's first start (firstStartLots,
// the universe sized from them); a store filled by `ktcn fixtures generate
// -goods G -importers I` is met by the same seed, goods and importers,
// whatever the lots, because the universe depends on those alone.
type historyUniverse struct {
	lots, goods, importers int
}

func newDeclSource(kind string, seed uint64, maxLines int, prefix string) (*declSource, error) {
	return newDeclSourceIn(kind, seed, historyUniverse{}, maxLines, prefix)
}

// newDeclSourceIn is newDeclSource over the history u describes.
func newDeclSourceIn(kind string, seed uint64, u historyUniverse, maxLines int, prefix string) (*declSource, error) {
	if maxLines < 1 || maxLines > 5 {
		return nil, fmt.Errorf("-max-lines %d: want 1 to 5", maxLines)
	}
	if !prefixRe.MatchString(prefix) {
		return nil, fmt.Errorf("-prefix %q: want 1-40 letters, digits or ._:- starting with a letter or digit", prefix)
	}
	var decls []declaration.Input
	var err error
	switch kind {
	case "history":
		decls, err = historyDeclarations(seed, u, maxLines)
	case "catalogue":
		decls = catalogueDeclarations(seed, maxLines)
	default:
		return nil, fmt.Errorf("-source %q: want history or catalogue", kind)
	}
	if err != nil {
		return nil, err
	}
	// Keep only what the default policy accepts, so a 4xx in the report
	// means the server disagreed, not that the generator drifted.
	p, err := policy.DefaultPolicy()
	if err != nil {
		return nil, err
	}
	s := &declSource{kind: kind, prefix: prefix, head: []byte(`{"declaration_id":"`)}
	for _, d := range decls {
		d.DeclarationID = "X"
		if _, err := declaration.Parse(p, d); err != nil {
			continue
		}
		d.DeclarationID = ""
		doc, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		tail, ok := bytes.CutPrefix(doc, s.head)
		if !ok {
			return nil, fmt.Errorf("declaration JSON does not start with the ID: %.40s", doc)
		}
		s.tails = append(s.tails, tail)
		s.lines = append(s.lines, len(d.Lines))
	}
	if len(s.tails) == 0 {
		return nil, fmt.Errorf("-source %s gave no declaration the default policy accepts", kind)
	}
	return s, nil
}

// historyDeclarations are the declarations of the generated history that
// serve loads on first start (generate.go): the same seed and volume give
// the same universe, so replayed lots meet goods with history.
func historyDeclarations(seed uint64, u historyUniverse, maxLines int) ([]declaration.Input, error) {
	if u.lots <= 0 {
		u.lots = firstStartLots
	}
	g, err := fixtures.New(fixtures.Config{Seed: seed, Lots: u.lots, Years: firstStartYears, End: time.Now(), Goods: u.goods, Importers: u.importers})
	if err != nil {
		return nil, fmt.Errorf("history generator: %w", err)
	}
	var out []declaration.Input
	for r, err := range g.Records() {
		if err != nil {
			return nil, fmt.Errorf("history generator: %w", err)
		}
		if r.Type != fixtures.RecordDeclaration || r.Declaration == nil {
			continue
		}
		d := r.Declaration.Input
		d.Lines = slices.Clone(d.Lines[:min(len(d.Lines), maxLines)])
		out = append(out, d)
	}
	return out, nil
}

// catalogueDeclarations pair fixture importers with 1 to maxLines distinct
// catalogue goods, seeded.
func catalogueDeclarations(seed uint64, maxLines int) []declaration.Input {
	rng := rand.New(rand.NewPCG(seed, 0x6b74636e))
	cat, imps := fixtures.Catalogue(), fixtures.Importers()
	out := make([]declaration.Input, 0, 2000)
	for range 2000 {
		d := declaration.Input{ImporterTaxCode: imps[rng.IntN(len(imps))].TaxCode}
		for no, i := range rng.Perm(len(cat))[:min(1+rng.IntN(maxLines), len(cat))] {
			it := cat[i]
			lineNo, qty := no+1, float64(1+rng.IntN(5000))
			d.Lines = append(d.Lines, declaration.LineInput{LineNo: &lineNo, HSCode: it.Goods.HSCode,
				ProductName: it.Goods.ProductName, Brand: it.Goods.Brand, Manufacturer: it.Goods.Manufacturer,
				Origin: it.Goods.Origin, Procedure: string(it.Procedure), Quantity: &qty, Unit: it.Unit})
		}
		out = append(out, d)
	}
	return out
}

// id is the declaration ID of request n (from 1).
func (s *declSource) id(n int64) string { return fmt.Sprintf("%s-%09d", s.prefix, n) }

// body is request n's JSON and its number of lines: the templates in
// order, round and round, each time under a new ID.
func (s *declSource) body(n int64) ([]byte, int) {
	i := int((n - 1) % int64(len(s.tails)))
	id := s.id(n)
	b := make([]byte, 0, len(s.head)+len(id)+len(s.tails[i]))
	b = append(append(append(b, s.head...), id...), s.tails[i]...)
	return b, s.lines[i]
}

// postDeclaration sends one declaration. With keep it returns the body;
// otherwise the body is drained (so the connection is reused) and dropped.
func postDeclaration(ctx context.Context, c *http.Client, base, token string, body []byte, keep bool) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/declarations", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if keep {
		out, err := io.ReadAll(resp.Body)
		return resp.StatusCode, out, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil, err
}

// errorKind names a transport failure for the report.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return "reset"
	default:
		return "other"
	}
}

// maxLoadDuration bounds every run, also one bounded only by -count.
const maxLoadDuration = 24 * time.Hour

// loadDuration is how long a run may last. -count alone means "send this
// many": the default -duration would end the run first on a slow machine
// (-count 10000 stopped at 4,491), so only an explicit -duration bounds a
// counted run.
func loadDuration(count int64, duration time.Duration, durationSet bool) time.Duration {
	if count > 0 && !durationSet {
		return maxLoadDuration
	}
	return duration
}

// loadPlan is one run.
type loadPlan struct {
	addr     string // validated loopback host:port
	token    string
	rate     float64 // declarations per second; 0 is closed loop
	clients  int
	duration time.Duration
	count    int64 // 0: only duration bounds the run
	timeout  time.Duration
	src      *declSource
}

// loadReport is what a run measured. Latencies are of acknowledged (2xx)
// declarations only: a 429 or a refused connection answers fast and would
// flatter the percentiles.
type loadReport struct {
	Target        string           `json:"target"`
	Mode          string           `json:"mode"` // open or closed
	TargetRate    float64          `json:"target_rate,omitempty"`
	Clients       int              `json:"clients"`
	Source        string           `json:"source"`
	Prefix        string           `json:"prefix"`
	Elapsed       float64          `json:"elapsed_s"`
	Sent          int64            `json:"sent"`
	Acked         int64            `json:"acknowledged"`
	Decisions     int64            `json:"decisions"`
	AckedPerS     float64          `json:"acknowledged_per_s"`
	DecisionsPerS float64          `json:"decisions_per_s"`
	Status        map[string]int64 `json:"status"`
	Errors        map[string]int64 `json:"errors,omitempty"`
	LatencyMs     latencySummary   `json:"latency_ms"`
	// Late counts open-loop declarations sent more than 10 ms after they
	// were due: the server (or this generator) could not keep the rate.
	Late int64 `json:"late,omitempty"`
	// Slow lists the seconds of the run (counted from its start, by when
	// a declaration was due) whose slowest acknowledged declaration took
	// more than slowSecondMs, worst first, at most maxSlowSeconds: where
	// in a run its pauses were, to line up with the server's log.
	Slow []slowSecond `json:"slow_seconds,omitempty"`

	hist *histogram
}

// A slowSecond is one second of a run with a pause in it.
type slowSecond struct {
	At    int     `json:"at_s"`
	MaxMs float64 `json:"max_ms"`
	Over  int64   `json:"over"` // declarations due in it that took more than slowSecondMs
}

const (
	slowSecondMs   = 50
	maxSlowSeconds = 10
)

type latencySummary struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
	Max  float64 `json:"max"`
}

type loadWorker struct {
	hist              *histogram
	status            map[int]int64
	errs              map[string]int64
	sent, acked, decs int64
	late              int64
	last              time.Time
	seconds           secondStats
}

// secondStat is one second of a run: the slowest acknowledged
// declaration due in it, and how many took over slowSecondMs.
type secondStat struct {
	slowest time.Duration
	over    int64
}

// secondStats is a run's seconds, indexed by when declarations were due.
type secondStats []secondStat

// add records a declaration due in second sec that took d.
func (s *secondStats) add(sec int, d time.Duration) {
	s.merge(sec, secondStat{slowest: d, over: boolInt(d > slowSecondMs*time.Millisecond)})
}

// merge folds o into second sec, growing s to hold it.
func (s *secondStats) merge(sec int, o secondStat) {
	if len(*s) <= sec {
		*s = append(*s, make(secondStats, sec+1-len(*s))...)
	}
	(*s)[sec].slowest = max((*s)[sec].slowest, o.slowest)
	(*s)[sec].over += o.over
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// runLoad drives the plan and returns what it measured. It ends early,
// reporting what it has, when ctx ends.
func runLoad(ctx context.Context, p loadPlan) loadReport {
	client := loadClient(p.addr, p.clients, p.timeout)
	defer client.CloseIdleConnections()
	base := "http://" + p.addr
	var next atomic.Int64
	start := time.Now()
	deadline := start.Add(p.duration)
	workers := make([]loadWorker, p.clients)
	var wg sync.WaitGroup
	for w := range workers {
		ws := &workers[w]
		ws.hist, ws.status, ws.errs = newHistogram(), map[int]int64{}, map[string]int64{}
		wg.Go(func() {
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for ctx.Err() == nil {
				n := next.Add(1)
				if p.count > 0 && n > p.count {
					return
				}
				var due time.Time
				if p.rate > 0 {
					due = start.Add(time.Duration(float64(n-1) / p.rate * float64(time.Second)))
					if !due.Before(deadline) {
						return
					}
					if d := time.Until(due); d > 0 {
						timer.Reset(d)
						select {
						case <-ctx.Done():
							return
						case <-timer.C:
						}
					} else if d < -10*time.Millisecond {
						ws.late++
					}
				} else if due = time.Now(); !due.Before(deadline) {
					return
				}
				body, lines := p.src.body(n)
				status, _, err := postDeclaration(ctx, client, base, p.token, body, false)
				done := time.Now()
				ws.sent++
				ws.last = done
				if err != nil {
					ws.errs[errorKind(err)]++
					continue
				}
				ws.status[status]++
				if status >= 200 && status < 300 {
					ws.acked++
					ws.decs += int64(lines)
					ws.hist.record(done.Sub(due))
					ws.seconds.add(int(due.Sub(start)/time.Second), done.Sub(due))
				}
			}
		})
	}
	wg.Wait()
	rep := loadReport{Target: base, Mode: "closed", Clients: p.clients, Source: p.src.kind, Prefix: p.src.prefix,
		Status: map[string]int64{}, Errors: map[string]int64{}, hist: newHistogram()}
	if p.rate > 0 {
		rep.Mode, rep.TargetRate = "open", p.rate
	}
	end := start
	var seconds secondStats
	for i := range workers {
		ws := &workers[i]
		rep.hist.merge(ws.hist)
		for sec, st := range ws.seconds {
			seconds.merge(sec, st)
		}
		rep.Sent += ws.sent
		rep.Acked += ws.acked
		rep.Decisions += ws.decs
		rep.Late += ws.late
		for s, c := range ws.status {
			rep.Status[strconv.Itoa(s)] += c
		}
		for k, c := range ws.errs {
			rep.Errors[k] += c
		}
		if ws.last.After(end) {
			end = ws.last
		}
	}
	rep.Elapsed = end.Sub(start).Seconds()
	if rep.Elapsed > 0 {
		rep.AckedPerS = float64(rep.Acked) / rep.Elapsed
		rep.DecisionsPerS = float64(rep.Decisions) / rep.Elapsed
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for sec, st := range seconds {
		if st.slowest > slowSecondMs*time.Millisecond {
			rep.Slow = append(rep.Slow, slowSecond{At: sec, MaxMs: ms(st.slowest), Over: st.over})
		}
	}
	slices.SortStableFunc(rep.Slow, func(a, b slowSecond) int { return cmp.Compare(b.MaxMs, a.MaxMs) })
	rep.Slow = rep.Slow[:min(len(rep.Slow), maxSlowSeconds)]
	h := rep.hist
	rep.LatencyMs = latencySummary{Mean: ms(h.mean()), P50: ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)),
		P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(time.Duration(max(h.max, 0)))}
	return rep
}

func (r loadReport) write(w io.Writer) {
	mode := fmt.Sprintf("closed loop, %d clients", r.Clients)
	if r.Mode == "open" {
		mode = fmt.Sprintf("open loop at %.0f declarations/s, up to %d in flight", r.TargetRate, r.Clients)
	}
	fmt.Fprintf(w, "ktcn loadgen → %s: %s, source %s, IDs %s-*\n", r.Target, mode, r.Source, r.Prefix)
	fmt.Fprintf(w, "  sent        %d declarations in %.2fs (%.0f/s)\n", r.Sent, r.Elapsed, float64(r.Sent)/max(r.Elapsed, 1e-9))
	fmt.Fprintf(w, "  acknowledged %d declarations (%.0f/s), %d decisions (%.0f/s)\n", r.Acked, r.AckedPerS, r.Decisions, r.DecisionsPerS)
	codes := make([]string, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s: %d", c, r.Status[c]))
	}
	fmt.Fprintf(w, "  status      %s\n", strings.Join(parts, "  "))
	if len(r.Errors) > 0 {
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		parts = parts[:0]
		for _, k := range kinds {
			parts = append(parts, fmt.Sprintf("%s: %d", k, r.Errors[k]))
		}
		fmt.Fprintf(w, "  errors      %s\n", strings.Join(parts, "  "))
	}
	l := r.LatencyMs
	fmt.Fprintf(w, "  latency ms  p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  mean %.2f  (acknowledged only", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	if r.Mode == "open" {
		fmt.Fprint(w, "; from each declaration's due time, so queueing counts")
	}
	fmt.Fprintln(w, ")")
	if len(r.Slow) > 0 {
		parts = parts[:0]
		for _, sl := range r.Slow {
			parts = append(parts, fmt.Sprintf("%ds: %.0f ms (%d over)", sl.At, sl.MaxMs, sl.Over))
		}
		fmt.Fprintf(w, "  slow seconds %s  (worst first: second of the run a declaration was due, its slowest, how many took over %d ms)\n", strings.Join(parts, "  "), slowSecondMs)
	}
	if r.Late > 0 {
		fmt.Fprintf(w, "  behind      %d declarations left more than 10 ms after they were due: the target rate was not kept\n", r.Late)
	}
}

func runLoadgen(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, loadgenUsage)
		fs.PrintDefaults()
	}
	var (
		addr     = fs.String("addr", env("KTCN_ADDR", "127.0.0.1:8080"), "server address, loopback only")
		dataDir  = fs.String("data-dir", env("KTCN_DATA_DIR", "./data"), "data dir holding dev-credentials.json (when no -key)")
		key      = fs.String("key", "", "NSW API key (default: $KTCN_LOADGEN_KEY, then the data dir's development credentials)")
		rate     = fs.Float64("rate", 0, "declarations per second, open loop; 0 sends as fast as the server answers")
		clients  = fs.Int("clients", 64, "concurrent connections (closed loop: workers; open loop: most in flight)")
		duration = fs.Duration("duration", 10*time.Second, "stop after this long (with -count and no -duration: when the count is sent)")
		count    = fs.Int64("count", 0, "stop after this many declarations (0: only -duration bounds the run)")
		prefix   = fs.String("prefix", defaultPrefix(), "declaration ID prefix (default: unique per run)")
		source   = fs.String("source", "history", "history (the generated history serve loads) or catalogue")
		seed     = fs.Uint64("seed", firstStartSeed, "generator seed (the default matches serve's first start)")
		maxLines = fs.Int("max-lines", 5, "most lines per declaration (1-5)")
		hLots    = fs.Int("history-lots", 0, "with -source history: lots of the generated history the declarations come from (default: serve's first start)")
		goods    = fs.Int("goods", 0, "with -source history: goods in its universe, as given to `ktcn fixtures generate -goods` (default: from -history-lots)")
		imps     = fs.Int("importers", 0, "with -source history: importers in its universe, as given to `ktcn fixtures generate -importers` (default: from -history-lots)")
		timeout  = fs.Duration("timeout", 30*time.Second, "per-request timeout")
		asJSON   = fs.Bool("json", false, "print the report as JSON")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	durationSet := false
	fs.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "duration" })
	*duration = loadDuration(*count, *duration, durationSet)
	target, err := loopbackAddr(*addr)
	if err != nil {
		return err
	}
	switch {
	case *rate < 0 || *rate > 1e6:
		return fmt.Errorf("-rate %v: want 0 (as fast as possible) up to 1e6", *rate)
	case *clients < 1 || *clients > 4096:
		return fmt.Errorf("-clients %d: want 1 to 4096", *clients)
	case *duration <= 0 || *duration > maxLoadDuration:
		return fmt.Errorf("-duration %v: want more than 0 and at most 24h", *duration)
	case *count < 0:
		return fmt.Errorf("-count %d: want 0 (no limit) or more", *count)
	case *timeout <= 0:
		return fmt.Errorf("-timeout %v: want more than 0", *timeout)
	case *hLots < 0 || *hLots > 1_000_000 || *goods < 0 || *imps < 0:
		return fmt.Errorf("-history-lots %d, -goods %d, -importers %d: want 0 (the default) or more, -history-lots at most 1,000,000", *hLots, *goods, *imps)
	}
	token, err := loadToken(*key, getenv, *dataDir)
	if err != nil {
		return err
	}
	src, err := newDeclSourceIn(*source, *seed, historyUniverse{lots: *hLots, goods: *goods, importers: *imps}, *maxLines, *prefix)
	if err != nil {
		return err
	}
	rep := runLoad(ctx, loadPlan{addr: target, token: token, rate: *rate, clients: *clients, duration: *duration,
		count: *count, timeout: *timeout, src: src})
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.write(stdout)
	}
	if rep.Sent > 0 && rep.Acked == 0 {
		return errors.New("loadgen: no declaration was acknowledged")
	}
	return nil
}
