package inspection_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/store"
)

// Durable decisions in process at 64 concurrent callers, with group commit
// and with one synced transaction per decision (DirectCommit), on a data
// dir on disk (KTCN_BENCH_DIR; make bench sets it). The floor is
// store.BenchmarkBareGroupCommit64: bare writes of a decision's size
// through the same group commit.

func benchDir(b *testing.B) string {
	root := os.Getenv("KTCN_BENCH_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(root, "decide-*")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func benchService(b *testing.B, direct, scoring, outbox, shadow bool) (*inspection.Service, *store.DB) {
	db, err := store.Open(store.Options{Dir: benchDir(b), DirectCommit: direct, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	onRecord(b, db)
	p := mustPolicy(b)
	p.Risk.ScoreDecisions = scoring
	var hooks []inspection.Hook
	if outbox {
		hooks = append(hooks, inspection.NewOutbox())
	}
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: calendar.SystemClock{},
		QuotaKeys: testKeys, Logger: zerolog.Nop(), Hooks: hooks})
	if err != nil {
		b.Fatal(err)
	}
	if err := fixtures.Load(context.Background(), svc); err != nil {
		b.Fatal(err)
	}
	if shadow {
		// A looser version (two passes to reduced) in shadow beside every
		// decision.
		if _, err := svc.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		looser := mustPolicy(b)
		looser.Version, looser.Reduced.ConsecutivePasses = "bench-looser", 2
		doc, err := looser.Document()
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		author, approver := as("policy-author:a"), as("policy-approver:b")
		if _, err := svc.CreatePolicy(ctx, author, inspection.PolicyDraftInput{Document: doc}); err != nil {
			b.Fatal(err)
		}
		sub, err := svc.SubmitPolicy(ctx, author, looser.Version)
		if err == nil {
			_, err = svc.ApprovePolicy(ctx, approver, looser.Version, sub.SHA256)
		}
		if err == nil {
			_, err = svc.ShadowPolicy(ctx, approver, looser.Version, true)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return svc, db
}

// benchLine is one of 256 goods over four headings; a quarter carry a
// certificate, so reduced lots draw on the quota's hot counters.
func benchDeclaration(n int64) declaration.Input {
	no, q := 1, 100.0
	hs := []string{"0402.21.20", "1905.31.20", "2106.90.71", "8516.71.00"}[n%4]
	pr := "food_safety"
	if n%4 == 3 {
		pr = "quality"
	}
	l := declaration.LineInput{LineNo: &no, HSCode: hs, ProductName: fmt.Sprintf("Hàng mẫu %d", n%256), Manufacturer: "Bench Foods",
		Origin: "TH", Procedure: pr, Quantity: &q, Unit: "kg"}
	if n%4 == 1 {
		l.Certificates = []declaration.CertificateInput{{Kind: "HACCP", Number: "H-1", ValidUntil: "2028-12-31"}}
	}
	return declaration.Input{DeclarationID: fmt.Sprintf("B%012d", n), ImporterTaxCode: "0101234567", Lines: []declaration.LineInput{l}}
}

func BenchmarkDecide64(b *testing.B) {
	// group is the path as served (scoring on, the NSW outbox written
	// with every decision); group-noscore is it without decision-time risk
	// scoring (the counts are still kept), group-nooutbox without the
	// outbox, group-shadow with a policy version in shadow, for the on/off
	// ratios of each.
	for _, mode := range []struct {
		name                            string
		direct, scoring, outbox, shadow bool
	}{{"group", false, true, true, false}, {"group-noscore", false, false, true, false}, {"group-nooutbox", false, true, false, false},
		{"group-shadow", false, true, true, true}, {"direct", true, true, true, false}} {
		b.Run(mode.name, func(b *testing.B) {
			svc, db := benchService(b, mode.direct, mode.scoring, mode.outbox, mode.shadow)
			ctx := context.Background()
			var (
				seq    atomic.Int64
				failed atomic.Int64
				mu     sync.Mutex
				lats   []time.Duration
				start  = db.CommitStats()
			)
			used0, re0 := inspection.PreparedStats(svc)
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0))) // 64 callers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					if _, err := svc.Decide(ctx, access.SystemPrincipal(), benchDeclaration(seq.Add(1))); err != nil {
						// One transaction per decision gives up on hot keys
						// (quota counters, goods state) under 64 callers:
						// count it, it is part of what is measured.
						if fault.CodeOf(err) != fault.Unavailable {
							b.Error(err)
							return
						}
						failed.Add(1)
						continue
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lats = append(lats, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			b.ReportMetric(float64(int64(b.N)-failed.Load())/b.Elapsed().Seconds(), "decisions/s")
			b.ReportMetric(100*float64(failed.Load())/float64(b.N), "gave-up-%")
			if st := db.CommitStats(); st.Batches > start.Batches {
				b.ReportMetric(float64(st.Updates-start.Updates)/float64(st.Batches-start.Batches), "decisions/fsync")
				// What one decision costs the disk, for the floor's sizes
				// (store.BenchmarkBareGroupCommit64 writes the same).
				b.ReportMetric(float64(st.Entries-start.Entries)/float64(st.Updates-start.Updates), "keys/decision")
				b.ReportMetric(float64(st.Bytes-start.Bytes)/float64(st.Updates-start.Updates), "bytes/decision")
				b.ReportMetric(float64(st.ReusedReads-start.ReusedReads)/float64(st.Updates-start.Updates), "reused-reads/decision")
				b.ReportMetric(float64(st.StaleReads-start.StaleReads)/float64(st.Updates-start.Updates), "stale-reads/decision")
			}
			// The share of declarations the committer took as prepared
			// outside it (the rest it evaluated again: an input had moved).
			if used, re := inspection.PreparedStats(svc); used+re > used0+re0 {
				b.ReportMetric(100*float64(used-used0)/float64(used+re-used0-re0), "prepared-%")
			}
			if len(lats) > 0 {
				slices.Sort(lats)
				b.ReportMetric(float64(lats[len(lats)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
