package inspection_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/store"
)

// BenchmarkDecideGoodsHistory decides one more lot of a goods whose history
// holds 10 or 10,000 results (issue 21: the long history must decide
// within 1.5× the short one), on a data dir on disk, one caller, scoring
// on as served, each lot a second after the last. The history is written straight into the store (results
// over the five years before now, one in twenty a failure), then each
// iteration decides a new lot of the same goods: a decision adds no event,
// so the history stays fixed while it is measured. events=10000 reports
// its time per decision over events=10's (x-events=10).
func BenchmarkDecideGoodsHistory(b *testing.B) {
	perOp := map[int]float64{}
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			// Each decision is a second after the last: lots of one goods
			// rarely share a second in service, and the score memo would
			// otherwise spare all but the first the goods' scoring.
			var ahead atomic.Int64
			clock := calendar.ClockFunc(func() time.Time { return time.Now().Add(time.Duration(ahead.Load()) * time.Second) })
			db, err := store.Open(store.Options{Dir: benchDir(b), Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			onRecord(b, db)
			pol := mustPolicy(b)
			pol.Risk.ScoreDecisions = true
			svc, err := inspection.NewService(inspection.Config{Store: db, Policy: pol, Clock: clock,
				QuotaKeys: testKeys, Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := fixtures.Load(ctx, svc); err != nil {
				b.Fatal(err)
			}
			line := func(i int) declaration.Input {
				no, q := 1, 100.0
				return declaration.Input{DeclarationID: fmt.Sprintf("H%d-%09d", n, i), ImporterTaxCode: "0101234567",
					Lines: []declaration.LineInput{{LineNo: &no, HSCode: "0402.21.20", ProductName: "Sữa có lịch sử",
						Manufacturer: "Bench Foods", Origin: "TH", Procedure: "food_safety", Quantity: &q, Unit: "kg"}}}
			}
			first, err := svc.Decide(ctx, access.SystemPrincipal(), line(0))
			if err != nil {
				b.Fatal(err)
			}
			gk := first.Decisions[0].GoodsKey
			now := time.Now()
			rng := rand.New(rand.NewPCG(21, uint64(n)))
			span := 5 * 365 * 24 * time.Hour
			const chunk = 1000 // events per transaction
			for done := 0; done < n; done += chunk {
				err := db.UpdateRaw(ctx, func(tx inspection.Tx) error {
					for i := done; i < min(done+chunk, n); i++ {
						outcome := inspection.OutcomePass
						if rng.IntN(20) == 0 {
							outcome = inspection.OutcomeFail
						}
						at := now.Add(-span + time.Duration(i+1)*span/time.Duration(n+1)).Truncate(time.Second)
						if err := tx.AddEvent(inspection.Event{ID: fmt.Sprintf("hist-%d-%d", n, i), Kind: inspection.EventResult,
							Subject: inspection.Subject{Kind: inspection.SubjectGoods, Key: gk}, At: at, RecordedAt: at,
							Outcome: outcome, ImporterTaxCode: "0101234567", Mode: inspection.ModeNormal, Source: "bench"}); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			used0, re0 := inspection.PreparedStats(svc)
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				ahead.Add(1)
				if _, err := svc.Decide(ctx, access.SystemPrincipal(), line(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// A lot evaluated again inside the transaction reads the whole
			// history there, past the input cache.
			if used, re := inspection.PreparedStats(svc); used+re > used0+re0 {
				b.ReportMetric(100*float64(used-used0)/float64(used+re-used0-re0), "prepared-%")
			}
			perOp[n] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if short := perOp[10]; n > 10 && short > 0 {
				// A parent's metrics are not printed: the long history
				// reports the ratio to the short one measured before it.
				b.ReportMetric(perOp[n]/short, "x-events=10")
			}
		})
	}
}
