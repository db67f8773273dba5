package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/store"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Set(t time.Time)         { c.mu.Lock(); c.now = t; c.mu.Unlock() }
func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

type env struct {
	t      testing.TB
	srv    *httptest.Server
	echo   *echo.Echo
	db     *store.DB
	dir    string
	svc    *inspection.Service
	access *inspection.Access
	feed   *inspection.Feed
	clock  *testClock
	// backups is the backup dir behind the backup routes.
	backups *store.BackupDir
	// backtests runs the backtest routes' jobs.
	backtests *backtest.Jobs
	// tokens holds a key for every principal in principals.
	tokens map[string]string
	// who sends the requests: a principal name, anonymous for none, or ""
	// for the principal a well-behaved client uses on the route (routeUser).
	who string
	// client sends the requests; nil is the test server's own client.
	client *http.Client
	// spec receives what the OpenAPI check finds wrong with a request or
	// a response exchanged through send (openapi_test.go); nil is t.Errorf.
	spec func(format string, args ...any)
	// peer, when set, is the client address the server sees (from).
	peer string
}

// testPeerHeader carries, from this harness only, the address the server
// should take for the connection's peer (asPeer).
const testPeerHeader = "X-Test-Peer"

// asPeer makes the server see the peer a test names in testPeerHeader, as
// if the connection came from there.
func asPeer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.Header.Get(testPeerHeader); p != "" {
			r.RemoteAddr = p
			r.Header.Del(testPeerHeader)
		}
		h.ServeHTTP(w, r)
	})
}

// from returns the env sending from another loopback address (all of
// 127/8 is the loopback on Linux), as another client machine would; ""
// is the default. A test cannot dial from another machine, so an address
// off the loopback is handed to the server in testPeerHeader (asPeer).
func (e *env) from(ip string) *env {
	if ip == "" {
		return e
	}
	c := *e
	if addr := net.ParseIP(ip); addr != nil && !addr.IsLoopback() {
		c.peer = net.JoinHostPort(ip, "4242")
		return &c
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c.client = &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	e.t.Cleanup(c.client.CloseIdleConnections)
	return &c
}

// anonymous sends no Authorization header.
const anonymous = "-"

// envOptions vary the server; the zero value is the default wiring.
type envOptions struct {
	rateLimit float64
	rateBurst int
	// logs receives the server's, the service's and the store's log lines
	// (at trace level) when not nil.
	logs io.Writer
	// routes adds routes after api.New and before serving.
	routes func(*echo.Echo)
	// policy replaces the default policy.
	policy *policy.Policy
	// authFailures and authFailWindow set the failed-authentication limit
	// per address (0: the defaults).
	authFailures   int
	authFailWindow time.Duration
	// keyReads, when not nil, counts the store reads authentication makes.
	keyReads *atomic.Int64
	// specFailures, when not nil, collects what the OpenAPI check finds
	// wrong (openapi_test.go) instead of failing the test.
	specFailures *failures
	// jobs serves /v1/jobs; nil is a fakeJobs with one idle job, "noop".
	jobs api.Jobs
	// ready is /readyz's check (nil: none beyond the policy).
	ready api.Readiness
	// beforeBacktests, when not nil, writes to the store before the
	// backtest jobs start: what a previous process left there.
	beforeBacktests func(*store.DB)
}

// countingStore counts the read transactions opened through it.
type countingStore struct {
	inspection.Store
	views *atomic.Int64
}

func (s countingStore) View(ctx context.Context, fn func(inspection.ReadTx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

// keyTTL outlives every scenario's clock (some jump years ahead).
const keyTTL = 20 * 365 * 24 * time.Hour

// newEnv serves the real API over a real badger in a temp dir with the
// fixtures loaded, the default policy, and a key for every principal.
func newEnv(t testing.TB, start time.Time) *env { return newEnvWith(t, start, envOptions{}) }

func newEnvWith(t testing.TB, start time.Time, o envOptions) *env {
	t.Helper()
	log := zerolog.Nop()
	if o.logs != nil {
		log = zerolog.New(o.logs).Level(zerolog.TraceLevel)
	}
	dir := t.TempDir()
	db, err := store.Open(store.Options{Dir: dir, Small: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	p, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if o.policy != nil {
		p = o.policy
	}
	clock := &testClock{now: start}
	outbox := inspection.NewOutbox()
	hooks := []inspection.Hook{outbox}
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: clock, QuotaKeys: testKeys, Logger: log, Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	if err := fixtures.Load(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if missing, err := svc.Start(ctx); err != nil || len(missing) > 0 {
		t.Fatalf("start: %v, missing agencies %v", err, missing)
	}
	var accessStore inspection.Store = db
	if o.keyReads != nil {
		accessStore = countingStore{Store: db, views: o.keyReads}
	}
	acc, err := inspection.NewAccess(inspection.AccessConfig{Store: accessStore, Clock: clock, Logger: log, MaxKeyTTL: keyTTL, Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	fd, err := inspection.NewFeed(inspection.FeedConfig{Store: db, States: db, Outbox: outbox, Clock: clock, Logger: log, AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, dir: dir, svc: svc, access: acc, feed: fd, clock: clock, tokens: map[string]string{}}
	// Keys come through the same use case as `ktcn keys create` and the
	// admin endpoint, so tests authenticate exactly as clients do.
	var reqs []inspection.KeyRequest
	for _, name := range principals() {
		reqs = append(reqs, inspection.KeyRequest{Principal: name, ExpiresAt: start.Add(keyTTL)})
	}
	keys, err := acc.CreateKeys(ctx, access.Principal{Name: "admin:test", Role: access.RoleAdmin}, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		e.tokens[k.Key.Principal.Name] = k.Token
	}
	if o.specFailures != nil {
		e.spec = o.specFailures.add
	}
	bd, err := store.NewBackupDir(db, dir, filepath.Join(t.TempDir(), "backups"), 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	backups, err := inspection.NewBackups(bd, log)
	if err != nil {
		t.Fatal(err)
	}
	e.backups = bd
	if o.jobs == nil {
		o.jobs = &fakeJobs{names: []string{"noop"}}
	}
	// Backtests stop before the store closes (cleanups run last first).
	btCtx, stopBacktests := context.WithCancel(ctx)
	t.Cleanup(stopBacktests)
	if o.beforeBacktests != nil {
		o.beforeBacktests(db)
	}
	if e.backtests, err = backtest.NewJobs(btCtx, backtest.JobsConfig{Service: svc, Store: db, Jobs: db, Keys: testKeys, Clock: clock}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.backtests.Close)
	// The registry as the wiring makes it: the API's series and the store's.
	reg := prometheus.NewRegistry()
	reg.MustRegister(db.Collector())
	e.echo = api.New(api.Config{Service: svc, Access: acc, Feed: fd, Backups: backups, Logger: log, Jobs: o.jobs, Ready: o.ready, Backtests: e.backtests, RateLimit: o.rateLimit, RateBurst: o.rateBurst,
		AuthFailures: o.authFailures, AuthFailWindow: o.authFailWindow, Clock: clock, Registry: reg})
	if o.routes != nil {
		o.routes(e.echo)
	}
	e.srv = httptest.NewServer(asPeer(e.echo))
	t.Cleanup(e.srv.Close)
	return e
}

// principals names one principal of every role, and every fixture agency.
func principals() []string {
	names := []string{"nsw", "customs", "policy-author", "policy-approver", "auditor", "admin", "metrics"}
	for _, a := range fixtures.Agencies() {
		names = append(names, "agency:"+a.ID)
	}
	return names
}

// in returns the env reporting failures to t (a subtest).
func (e *env) in(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// as returns the env sending as the named principal (or anonymous).
func (e *env) as(who string) *env {
	c := *e
	c.who = who
	return &c
}

// routeUser is who a well-behaved client is on a route: NSW declares, the
// agency an assignment is routed to posts its result, admins manage keys,
// customs does the rest.
func (e *env) routeUser(method, path string) string {
	switch {
	case method == "POST" && path == "/v1/declarations":
		return "nsw"
	case strings.HasPrefix(path, "/v1/admin/"):
		return "admin"
	case method == "POST" && strings.HasPrefix(path, "/v1/assignments/") && strings.HasSuffix(path, "/result"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/assignments/"), "/result")
		if a, err := e.svc.Assignment(context.Background(), access.SystemPrincipal(), id); err == nil {
			return "agency:" + a.Agency
		}
		return "agency:" + fixtures.Agencies()[0].ID
	}
	return "customs"
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (e *env) do(method, path string, body any, out any) (int, http.Header) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(buf)
	}
	ct := ""
	if body != nil {
		ct = "application/json"
	}
	return e.send(method, path, ct, r, out)
}

// doRaw sends a raw body with the given content type.
func (e *env) doRaw(method, path, contentType, body string, out any) (int, http.Header) {
	e.t.Helper()
	return e.send(method, path, contentType, bytes.NewBufferString(body), out)
}

func (e *env) send(method, path, contentType string, r io.Reader, out any) (int, http.Header) {
	e.t.Helper()
	sent, known := peek(r)
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if e.peer != "" {
		req.Header.Set(testPeerHeader, e.peer)
	}
	who := e.who
	if who == "" {
		who = e.routeUser(method, path)
	}
	if who != anonymous {
		token, ok := e.tokens[who]
		if !ok {
			e.t.Fatalf("no key for principal %q", who)
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := e.client
	if client == nil {
		client = e.srv.Client()
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.checkSpec(req, sent, known, resp, raw)
	if b, ok := out.(*[]byte); ok {
		*b = raw
	} else if out != nil && resp.Header.Get("Content-Type") != echo.MIMEOctetStream {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header
}

type line struct {
	LineNo       int                            `json:"line_no"`
	HSCode       string                         `json:"hs_code"`
	ProductName  string                         `json:"product_name"`
	Brand        string                         `json:"brand,omitempty"`
	Manufacturer string                         `json:"manufacturer"`
	Origin       string                         `json:"origin"`
	Procedure    string                         `json:"procedure"`
	Quantity     float64                        `json:"quantity"`
	Unit         string                         `json:"unit"`
	Certificates []declaration.CertificateInput `json:"certificates,omitempty"`
	Exemption    string                         `json:"exemption,omitempty"`
}

type declarationBody struct {
	DeclarationID   string `json:"declaration_id"`
	ImporterTaxCode string `json:"importer_tax_code"`
	Lines           []line `json:"lines"`
}

// decide submits a one-line declaration and returns its decision.
func (e *env) decide(id, importer string, l line) api.LineDecision {
	e.t.Helper()
	l.LineNo = 1
	var resp api.DeclarationResponse
	status, _ := e.do("POST", "/v1/declarations", declarationBody{id, importer, []line{l}}, &resp)
	if status != http.StatusCreated || len(resp.Lines) != 1 {
		e.t.Fatalf("declare %s: status %d, %+v", id, status, resp)
	}
	return resp.Lines[0]
}

func (e *env) decision(id string) inspection.Decision {
	e.t.Helper()
	var d inspection.Decision
	if status, _ := e.do("GET", "/v1/decisions/"+id, nil, &d); status != http.StatusOK {
		e.t.Fatalf("decision %s: status %d", id, status)
	}
	return d
}

// result posts an agency's result for an assignment, inspected at the
// current test time.
func (e *env) result(assignmentID string, outcome inspection.Outcome) {
	e.t.Helper()
	in := map[string]any{"outcome": outcome, "inspected_at": e.clock.Now().Format(time.RFC3339)}
	if outcome == inspection.OutcomeFail {
		in["findings"] = []inspection.Finding{{Code: "MICRO", Text: "Enterobacteriaceae above limit"}}
	}
	var a inspection.Assignment
	if status, _ := e.do("POST", "/v1/assignments/"+assignmentID+"/result", in, &a); status != http.StatusCreated {
		e.t.Fatalf("result %s: status %d", assignmentID, status)
	}
}

// register has a designated agency put a certificate it checked on the
// manufacturer's record (its documents check), over HTTP.
func (e *env) register(manufacturer, origin string, c declaration.CertificateInput) {
	e.t.Helper()
	body := map[string]string{"kind": c.Kind, "number": c.Number, "valid_until": c.ValidUntil, "manufacturer": manufacturer, "origin": origin}
	path := "/v1/manufacturers/" + identity.ManufacturerKey(manufacturer, origin).String() + "/certificates"
	if status, _ := e.as("agency:moit-firi").do("POST", path, body, nil); status != http.StatusCreated {
		e.t.Fatalf("register certificate %s %s of %s: status %d", c.Kind, c.Number, manufacturer, status)
	}
}
