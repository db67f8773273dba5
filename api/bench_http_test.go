package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
)

// Over HTTP at 64 concurrent clients on loopback, the acceptance
// ratio: the decision endpoint (authentication against the store, rate
// limiter, strict decoding, Decide through group commit on a data dir on
// disk, encoding) against a bare echo handler that decodes and encodes the
// same JSON. Both benchmarks move the same bytes with the same client code,
// so their ratio is what the server adds. The serial pair in bench_test.go
// measures one client; this pair measures a burst, which is when NSW
// matters and when group commit can batch.

// post64 posts declarations from 64 goroutines over one pooled client (64
// kept connections) and reports requests/s and latency percentiles.
func post64(b *testing.B, url, token, unit string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	var (
		seq  atomic.Int64
		mu   sync.Mutex
		lats []time.Duration
	)
	b.SetParallelism(32) // × GOMAXPROCS 2 = 64 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			body, _ := json.Marshal(benchDeclaration(seq.Add(1)))
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			var out api.DeclarationResponse
			err = json.NewDecoder(resp.Body).Decode(&out)
			_, _ = io.Copy(io.Discard, resp.Body) // drain, so the connection is reused
			resp.Body.Close()
			if err != nil || resp.StatusCode >= 300 || len(out.Lines) != 1 {
				b.Errorf("status %d: %v", resp.StatusCode, err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lats = append(lats, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit+"/s")
	if len(lats) > 0 {
		slices.Sort(lats)
		b.ReportMetric(float64(lats[len(lats)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds()), "p99-µs")
	}
}

func BenchmarkDecideHTTP64(b *testing.B) {
	svc, keys, fd := benchService(b)
	k, err := keys.CreateKey(context.Background(), access.Principal{Name: "admin:bench", Role: access.RoleAdmin},
		inspection.KeyRequest{Principal: "nsw"})
	if err != nil {
		b.Fatal(err)
	}
	// The limiter runs, but at a limit 64 clients cannot reach: refusals
	// would measure the limit, not the path.
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Access: keys, Feed: fd, Logger: zerolog.Nop(),
		RateLimit: 1e7, RateBurst: 1e7}))
	defer srv.Close()
	post64(b, srv.URL+"/v1/declarations", k.Token, "decisions")
}

// BenchmarkBareEchoHTTP64 is the floor of BenchmarkDecideHTTP64: echo, the
// same strict decoder, a same-shaped answer, no domain and no store.
func BenchmarkBareEchoHTTP64(b *testing.B) {
	srv := httptest.NewServer(bareEcho())
	defer srv.Close()
	post64(b, srv.URL+"/v1/declarations", "ktcn_0000000000000000_"+strings.Repeat("0", 64), "requests")
}
