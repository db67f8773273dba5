package backtest_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/quota"
)

// BenchmarkBacktestGenerated backtests a generated history, a stricter
// candidate and the active version side by side, streaming the history
// from the generator as it replays (generation is part of the cost, as it
// is for a generated backtest job). Environment knobs:
//
//   - KTCN_BACKTEST_LOTS: lots (default 100,000); the target is
//     2 M lots of a year in under 60 s, about 35k lots/s;
//   - KTCN_BACKTEST_YEARS: years the lots span (default 1);
//   - KTCN_BACKTEST_GOODS: the universe's goods (default: from the volume
//     per year), fixed so runs of different lengths show whether memory
//     stays flat as lots grow (`make bench-backtest`: 1 M and 10 M lots
//     over 10 years, the same goods);
//   - KTCN_BACKTEST_HEAPPROFILE=file writes the heap profile as the peak
//     grows, and file.fifth-N once N fifths of the run are done (N = 1..4),
//     to compare with go tool pprof -diff_base;
//   - KTCN_BACKTEST_FLOOR=0 skips timing generation alone first (a second
//     pass over the history: minutes at 10 M lots).
//
// It reports lots/s of the whole run, lots/s of generation alone (the
// floor), and the peak live heap sampled during the run.
func BenchmarkBacktestGenerated(b *testing.B) {
	env := func(name string, def int) int {
		s := os.Getenv(name)
		if s == "" {
			return def
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return n
	}
	lots, years, goods := env("KTCN_BACKTEST_LOTS", 100_000), env("KTCN_BACKTEST_YEARS", 1), env("KTCN_BACKTEST_GOODS", 0)
	h := generateWith(b, 21, lots, years, goods)
	candidate := variant(b, "2026.2-stricter", stricter)
	ctx := context.Background()

	genRate := 0.0
	if env("KTCN_BACKTEST_FLOOR", 1) != 0 {
		start := time.Now()
		for _, err := range h.gen.BacktestItems(ctx) {
			if err != nil {
				b.Fatal(err)
			}
		}
		genRate = float64(lots) / time.Since(start).Seconds()
	}

	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	// KTCN_BACKTEST_HEAPPROFILE names a file to hold the heap profile
	// taken as the peak grows: what the peak is made of.
	prof := os.Getenv("KTCN_BACKTEST_HEAPPROFILE")
	// The peak is also taken over each fifth of the run: memory is flat
	// when the later fifths peak no higher than the earlier ones once the
	// universe's goods and importers have been seen (their state is
	// bounded by the policy, not by the lots replayed).
	var peak uint64
	var fifths [5]uint64
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		peak, fifths = 0, [5]uint64{}
		rep, err := backtest.Run(ctx, backtest.Config{Active: h.active, Candidate: candidate, Keys: quota.MasterSecret(h.secret),
			MaxLag: fixtures.BacktestMaxLag, Progress: func(done int64) {
				metrics.Read(sample)
				v := sample[0].Value.Uint64()
				fifth := min(int(done*5/int64(lots)), 4)
				if prof != "" && fifth > 0 && fifths[fifth] == 0 {
					writeHeapProfile(b, fmt.Sprintf("%s.fifth-%d", prof, fifth))
				}
				f := &fifths[fifth]
				*f = max(*f, v)
				if v > peak {
					if prof != "" && v > peak+peak/20 {
						writeHeapProfile(b, prof)
					}
					peak = v
				}
			}}, h.gen.BacktestItems(ctx))
		if err != nil {
			b.Fatal(err)
		}
		if rep.Lots != int64(lots) {
			b.Fatalf("replayed %d of %d lots", rep.Lots, lots)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(lots)*float64(b.N)/b.Elapsed().Seconds(), "lots/s")
	if genRate > 0 {
		b.ReportMetric(genRate, "generated-lots/s")
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	for i, f := range fifths {
		b.ReportMetric(float64(f)/(1<<20), fmt.Sprintf("peak-fifth-%d-MiB", i+1))
	}
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}
