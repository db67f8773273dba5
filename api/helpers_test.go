package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
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
	t     testing.TB
	srv   *httptest.Server
	db    *store.DB
	clock *testClock
}

// newEnv serves the real API over a real badger in a temp dir with the
// fixtures loaded and the default policy.
func newEnv(t testing.TB, start time.Time) *env {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir(), Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	if err := fixtures.Load(ctx, db); err != nil {
		t.Fatal(err)
	}
	p, err := inspection.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{now: start}
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if missing, err := svc.Start(ctx); err != nil || len(missing) > 0 {
		t.Fatalf("start: %v, missing agencies %v", err, missing)
	}
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Logger: zerolog.Nop()}))
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, db: db, clock: clock}
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
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header
}

type line struct {
	LineNo       int                           `json:"line_no"`
	HSCode       string                        `json:"hs_code"`
	ProductName  string                        `json:"product_name"`
	Brand        string                        `json:"brand,omitempty"`
	Manufacturer string                        `json:"manufacturer"`
	Origin       string                        `json:"origin"`
	Procedure    string                        `json:"procedure"`
	Quantity     float64                       `json:"quantity"`
	Unit         string                        `json:"unit"`
	Certificates []inspection.CertificateInput `json:"certificates,omitempty"`
	Exemption    string                        `json:"exemption,omitempty"`
}

type declaration struct {
	DeclarationID   string `json:"declaration_id"`
	ImporterTaxCode string `json:"importer_tax_code"`
	Lines           []line `json:"lines"`
}

// decide submits a one-line declaration and returns its decision.
func (e *env) decide(id, importer string, l line) api.LineDecision {
	e.t.Helper()
	l.LineNo = 1
	var resp api.DeclarationResponse
	status, _ := e.do("POST", "/v1/declarations", declaration{id, importer, []line{l}}, &resp)
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
