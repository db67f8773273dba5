package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/store"
)

// Benchmarks of the decision path, each beside its floor in the same run:
// over HTTP against a bare echo handler that decodes and encodes the same
// JSON, in process against bare synced badger writes (store package,
// BenchmarkBareSyncedWrite). Data dirs live under KTCN_BENCH_DIR (make
// bench points it at the work tree, on disk) so fsync costs what it costs.

func benchDir(b *testing.B) string {
	root := os.Getenv("KTCN_BENCH_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(root, "bench-*")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// benchService is the service over a fresh store with the fixtures, and
// the access use cases over the same store.
func benchService(b *testing.B) (*inspection.Service, *inspection.Access, *inspection.Feed) {
	db, err := store.Open(store.Options{Dir: benchDir(b), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	p, err := policy.DefaultPolicy()
	if err != nil {
		b.Fatal(err)
	}
	outbox := inspection.NewOutbox()
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: calendar.SystemClock{}, QuotaKeys: testKeys, Logger: zerolog.Nop(),
		Hooks: []inspection.Hook{outbox}})
	if err != nil {
		b.Fatal(err)
	}
	if err := fixtures.Load(ctx, svc); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	access, err := inspection.NewAccess(inspection.AccessConfig{Store: db, Clock: calendar.SystemClock{}, Logger: zerolog.Nop(),
		Hooks: []inspection.Hook{outbox}})
	if err != nil {
		b.Fatal(err)
	}
	fd, err := inspection.NewFeed(inspection.FeedConfig{Store: db, States: db, Outbox: outbox, Clock: calendar.SystemClock{}, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	return svc, access, fd
}

// benchDeclaration is a one-line declaration over a few goods, so history
// grows as it would for popular goods.
func benchDeclaration(n int64) declaration.Input {
	no, q := 1, 100.0
	return declaration.Input{
		DeclarationID: fmt.Sprintf("BENCH%012d", n), ImporterTaxCode: "0101234567",
		Lines: []declaration.LineInput{{LineNo: &no, HSCode: "0402.21.20", ProductName: fmt.Sprintf("Sữa bột %d", n%64),
			Manufacturer: "Dairy One", Origin: "NZ", Procedure: "food_safety", Quantity: &q, Unit: "kg"}},
	}
}

func reportRate(b *testing.B, what string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), what+"/s")
}

func BenchmarkDecideInProcess(b *testing.B) {
	svc, _, _ := benchService(b)
	ctx := context.Background()
	var seq atomic.Int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := svc.Decide(ctx, access.SystemPrincipal(), benchDeclaration(seq.Add(1))); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "decisions")
}

func BenchmarkDecideInProcessParallel16(b *testing.B) {
	svc, _, _ := benchService(b)
	ctx := context.Background()
	var seq atomic.Int64
	b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 callers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := svc.Decide(ctx, access.SystemPrincipal(), benchDeclaration(seq.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, "decisions")
}

// postLoop posts declarations as one client holding one key, as NSW does:
// the token is obtained once and sent on every request, and the server
// authenticates every request against the store.
func postLoop(b *testing.B, url, token string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body, _ := json.Marshal(benchDeclaration(seq.Add(1)))
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var out api.DeclarationResponse
		err = json.NewDecoder(resp.Body).Decode(&out)
		_, _ = io.Copy(io.Discard, resp.Body) // drain, so the connection is reused
		resp.Body.Close()
		if err != nil || resp.StatusCode >= 300 {
			b.Fatalf("status %d: %v", resp.StatusCode, err)
		}
	}
}

func BenchmarkDecideHTTP(b *testing.B) {
	svc, keys, fd := benchService(b)
	k, err := keys.CreateKey(context.Background(), access.Principal{Name: "admin:bench", Role: access.RoleAdmin},
		inspection.KeyRequest{Principal: "nsw"})
	if err != nil {
		b.Fatal(err)
	}
	// Default rate limits: they must not throttle this benchmark.
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Access: keys, Feed: fd, Logger: zerolog.Nop()}))
	defer srv.Close()
	postLoop(b, srv.URL+"/v1/declarations", k.Token)
	reportRate(b, "decisions")
}

// bareEcho is the HTTP floor of the decision endpoint: echo, the same
// strict decoder and a same-shaped answer, no domain and no store.
func bareEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/v1/declarations", func(c echo.Context) error {
		var in declaration.Input
		if err := api.DecodeStrict(c.Request().Body, &in); err != nil {
			return err
		}
		out := api.DeclarationResponse{DeclarationID: in.DeclarationID, PolicyVersion: "bare"}
		for _, l := range in.Lines {
			out.Lines = append(out.Lines, api.LineDecision{LineNo: *l.LineNo, DecisionID: "dec_000000000000000000000000",
				Mode: inspection.ModeNormal, Inspect: true, Agency: "moit-vinacontrol", AssignmentID: "asg_000000000000000000000000",
				Reason: "normal: 0 of 3 passes within 12 months toward reduced"})
		}
		return c.JSON(http.StatusCreated, out)
	})
	return e
}

// BenchmarkBareEchoHTTP is the HTTP floor for one caller over loopback.
func BenchmarkBareEchoHTTP(b *testing.B) {
	srv := httptest.NewServer(bareEcho())
	defer srv.Close()
	// The same header is sent (and ignored), so the floor moves the same bytes.
	postLoop(b, srv.URL+"/v1/declarations", "ktcn_0000000000000000_"+strings.Repeat("0", 64))
	reportRate(b, "requests")
}

// BenchmarkFeedPullHTTP is events/s the pull feed serves NSW over HTTP:
// pages of 1000 read in turn over an outbox of 4000 decisions' events (a
// decision and, for inspected lots, its assignment), wrapping round.
func BenchmarkFeedPullHTTP(b *testing.B) {
	svc, keys, fd := benchService(b)
	ctx := context.Background()
	var seq atomic.Int64
	done := make(chan error, 16)
	for range 16 {
		go func() {
			for seq.Load() < 4000 {
				if _, err := svc.Decide(ctx, access.SystemPrincipal(), benchDeclaration(seq.Add(1))); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 16 {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	k, err := keys.CreateKey(ctx, access.Principal{Name: "admin:bench", Role: access.RoleAdmin}, inspection.KeyRequest{Principal: "nsw"})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Access: keys, Feed: fd, Logger: zerolog.Nop(), RateLimit: 1e7, RateBurst: 1e7}))
	defer srv.Close()
	client := srv.Client()
	var after, events uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/events?after=%d&limit=1000", srv.URL, after), nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+k.Token)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var page api.EventPageResponse
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("pull: %d %v", resp.StatusCode, err)
		}
		events += uint64(len(page.Events))
		if after = page.Next; len(page.Events) < 1000 {
			after = 0
		}
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
