package store_test

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/store"
)

// BenchmarkBytesPerDecision is issue 21's bytes on disk per decision (not
// in CI, nor in make bench: it skips unless KTCN_BYTES_DECISIONS is set).
//
//	KTCN_BYTES_DECISIONS=50000 go test -run '^$' -bench BytesPerDecision -benchtime 1x -timeout 0 -v ./store/
//
// It fills a store on disk (KTCN_BENCH_DIR, else a temporary dir) through
// the service's own path in process: the reference data and a generated
// universe, then about N lots of a generated year decided by Decide from 64
// goroutines (so group commit batches them, as under load), with the NSW
// outbox hook serve installs, each goroutine recording a passing result
// for its lots' assignments as soon as they are decided. It closes the
// store, reopens it, counts every key by prefix (keys, key and value bytes
// before compression, and an estimate of them compressed as store.Open's
// tables compress: store.PrefixSizes), flattens the LSM tree (badger's
// Flatten: what compaction converges to), runs value-log GC, closes, and
// reports the allocated bytes of every file in the directory per decision;
// then reopens it once more and times 20,000 decisions read by ID in
// random order, what the compression costs a read.
//
// KTCN_BYTES_COMPRESSION lists the badger compressions to compare,
// comma-separated: default (what store.Open sets), snappy, zstd1, zstd3,
// none, each optionally with -b<KiB>, a table block size; each changes
// only what it names in store.Open's options (snappy-b4 is badger's own
// default, what store.Open used before). Each gets its own fill;
// decisions/s is the fill's rate with it.
func BenchmarkBytesPerDecision(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("KTCN_BYTES_DECISIONS"))
	if n <= 0 {
		b.Skip("set KTCN_BYTES_DECISIONS (e.g. 50000)")
	}
	variants := strings.Split(cmp.Or(os.Getenv("KTCN_BYTES_COMPRESSION"), "default"), ",")
	g, err := fixtures.New(fixtures.Config{Seed: 21, Lots: n, Years: 1, End: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	var decls []declaration.Input
	for r, err := range g.Records() {
		if err != nil {
			b.Fatal(err)
		}
		if r.Type == fixtures.RecordDeclaration {
			decls = append(decls, r.Declaration.Input)
		}
	}
	for _, v := range variants {
		alter, err := compression(v)
		if err != nil {
			b.Fatalf("KTCN_BYTES_COMPRESSION: %v", err)
		}
		b.Run(v, func(b *testing.B) {
			for range b.N {
				fillAndMeasure(b, g, decls, alter)
			}
		})
	}
}

// compression parses a KTCN_BYTES_COMPRESSION name: default, snappy,
// zstd1, zstd3 or none, optionally with -b<KiB> for badger's table block
// size (what one compressed unit holds; store.Open's unless set).
func compression(name string) (func(badger.Options) badger.Options, error) {
	base, block, _ := strings.Cut(name, "-b")
	var alter func(badger.Options) badger.Options
	switch base {
	case "default":
		alter = func(o badger.Options) badger.Options { return o }
	case "snappy":
		alter = func(o badger.Options) badger.Options { return o.WithCompression(options.Snappy) }
	case "zstd1", "zstd3":
		level := int(base[4] - '0')
		alter = func(o badger.Options) badger.Options {
			return o.WithCompression(options.ZSTD).WithZSTDCompressionLevel(level)
		}
	case "none":
		alter = func(o badger.Options) badger.Options { return o.WithCompression(options.None) }
	default:
		return nil, fmt.Errorf("unknown compression %q", name)
	}
	if block == "" {
		return alter, nil
	}
	kib, err := strconv.Atoi(block)
	if err != nil || kib <= 0 {
		return nil, fmt.Errorf("%q: block size %q, want KiB", name, block)
	}
	return func(o badger.Options) badger.Options { return alter(o).WithBlockSize(kib << 10) }, nil
}

func fillAndMeasure(b *testing.B, g *fixtures.Generator, decls []declaration.Input, alter func(badger.Options) badger.Options) {
	ctx := context.Background()
	dir := benchDir(b)
	opts := store.Options{Dir: dir, Logger: zerolog.Nop()}
	db, err := store.OpenWith(opts, alter)
	if err != nil {
		b.Fatal(err)
	}
	p, err := policy.DefaultPolicy()
	if err != nil {
		b.Fatal(err)
	}
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: calendar.SystemClock{},
		QuotaKeys: fixtures.SeedSecret(21), Logger: zerolog.Nop(), Hooks: []inspection.Hook{inspection.NewOutbox()}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := fixtures.Load(ctx, svc); err != nil {
		b.Fatal(err)
	}
	if err := fixtures.LoadUniverse(ctx, svc, g.Universe()); err != nil {
		b.Fatal(err)
	}

	// Decide from 64 goroutines, each recording a passing result for its
	// lot's assignment as soon as it is decided, so assignments close and
	// later lots of the same goods decide on a history of events (their
	// explanations cite them), as in a store that has run for a while.
	sys := access.SystemPrincipal()
	var (
		next               atomic.Int64
		decisions, results atomic.Int64
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		ids                []string // every decision's, for the reads
	)
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(decls); i = int(next.Add(1)) - 1 {
				out, err := svc.Decide(ctx, sys, decls[i])
				if err != nil {
					b.Error(err)
					return
				}
				decisions.Add(int64(len(out.Decisions)))
				mu.Lock()
				for _, d := range out.Decisions {
					ids = append(ids, d.ID)
				}
				mu.Unlock()
				for _, d := range out.Decisions {
					if d.AssignmentID == "" {
						continue
					}
					in := inspection.ResultInput{Outcome: "pass", InspectedAt: time.Now().Format(time.RFC3339)}
					if _, err := svc.RecordResult(ctx, sys, d.AssignmentID, in); err != nil {
						b.Error(err)
						return
					}
					results.Add(1)
				}
			}
		})
	}
	wg.Wait()
	fill := time.Since(start)
	if b.Failed() {
		b.FailNow()
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	nd := decisions.Load()
	closed := duBytes(dir)

	db, err = store.OpenWith(opts, alter)
	if err != nil {
		b.Fatal(err)
	}
	sizes, err := store.PrefixSizes(db)
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Flatten(db); err != nil {
		b.Fatal(err)
	}
	if _, err := db.CollectGarbage(ctx); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	flat := duBytes(dir)

	// What the compression costs a read: decisions by ID in random order
	// on the reopened store (its block cache empty), one at a time, each
	// in its own transaction as GET /v1/decisions/{id} reads one.
	db, err = store.OpenWith(opts, alter)
	if err != nil {
		b.Fatal(err)
	}
	const reads = 20_000
	rng := rand.New(rand.NewPCG(21, 0))
	readStart := time.Now()
	for range reads {
		id := ids[rng.IntN(len(ids))]
		if err := db.View(ctx, func(tx inspection.ReadTx) error { _, err := tx.Decision(id); return err }); err != nil {
			b.Fatal(err)
		}
	}
	perRead := time.Since(readStart) / reads
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "%d decisions (%d declarations) and %d results in %.1fs: %.0f decisions/s (with their results) from 64 goroutines\n",
		nd, len(decls), results.Load(), fill.Seconds(), float64(nd)/fill.Seconds())
	fmt.Fprintf(&sb, "a decision read by ID, random order, cold cache: %s\n", perRead)
	fmt.Fprintf(&sb, "on disk: %d bytes after close (%.0f per decision), %d after Flatten and value-log GC (%.0f per decision)\n",
		closed, float64(closed)/float64(nd), flat, float64(flat)/float64(nd))
	for ext, n := range filesByKind(dir) {
		fmt.Fprintf(&sb, "  %-6s %12d bytes\n", ext, n)
	}
	slices.SortFunc(sizes, func(x, y store.PrefixSize) int {
		return cmp.Compare(y.KeyBytes+y.ValueBytes, x.KeyBytes+x.ValueBytes)
	})
	var keys, total, zstd int64
	for _, s := range sizes {
		keys += s.Keys
		total += s.KeyBytes + s.ValueBytes
		zstd += s.Compressed
	}
	fmt.Fprintf(&sb, "%-6s %-28s %10s %8s %14s %10s %6s %10s %6s\n", "prefix", "records", "keys", "/decision", "key+value B", "B/decision",
		"share", "zstd B/dec", "share")
	for _, s := range sizes {
		kv := s.KeyBytes + s.ValueBytes
		fmt.Fprintf(&sb, "0x%02X   %-28s %10d %8.2f %14d %10.0f %5.1f%% %10.0f %5.1f%%\n", s.Prefix, s.Name, s.Keys,
			float64(s.Keys)/float64(nd), kv, float64(kv)/float64(nd), 100*float64(kv)/float64(total),
			float64(s.Compressed)/float64(nd), 100*float64(s.Compressed)/float64(zstd))
	}
	fmt.Fprintf(&sb, "%-6s %-28s %10d %8.2f %14d %10.0f %6s %10.0f\n", "", "total (zstd: an estimate)", keys,
		float64(keys)/float64(nd), total, float64(total)/float64(nd), "", float64(zstd)/float64(nd))
	b.Log("\n" + sb.String())
	b.ReportMetric(float64(flat)/float64(nd), "bytes/decision")
	b.ReportMetric(float64(closed)/float64(nd), "closed-bytes/decision")
	b.ReportMetric(float64(total)/float64(nd), "raw-bytes/decision")
	b.ReportMetric(float64(nd)/fill.Seconds(), "decisions/s")
	b.ReportMetric(float64(perRead.Microseconds()), "µs/read")
}

// duBytes is the space the files under dir take on disk (du, not the
// sum of sizes: badger's files may be sparse or preallocated), as
// cmd/ktcn's scale benchmark measures it.
func duBytes(dir string) int64 {
	var total int64
	for _, n := range filesByKind(dir) {
		total += n
	}
	return total
}

// filesByKind sums allocated bytes by file extension.
func filesByKind(dir string) map[string]int64 {
	out := map[string]int64{}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var st syscall.Stat_t
		if syscall.Stat(path, &st) == nil {
			out[cmp.Or(filepath.Ext(path), "other")] += st.Blocks * 512
		}
		return nil
	})
	return out
}
