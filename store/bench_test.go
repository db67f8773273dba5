package store_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/store"
)

// BenchmarkBareSyncedWrite is the store floor for the decision path: one
// badger transaction with SyncWrites writing values of a decision's size
// (a decision, an assignment, a goods state and a declaration record,
// ~4 KiB together), with nothing read. Compare decisions/s of
// api.BenchmarkDecideInProcess against writes/s here in the same `make
// bench` run.
func BenchmarkBareSyncedWrite(b *testing.B) {
	dir := benchDir(b)
	db, err := badger.Open(badger.DefaultOptions(dir).WithSyncWrites(true).WithLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	vals := decisionSizedValues()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := db.Update(func(txn *badger.Txn) error {
			for j, v := range vals {
				if err := txn.Set([]byte(fmt.Sprintf("k%d-%012d", j, i)), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkBareGroupCommit64 is the floor for inspection.BenchmarkDecide64:
// 64 callers each writing a decision's worth of bytes (four values, ~3.9
// KiB) through the same group commit, with nothing read or computed.
func BenchmarkBareGroupCommit64(b *testing.B) {
	dir := benchDir(b)
	db, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	vals := decisionSizedValues()
	var seq atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			err := db.Update(context.Background(), func(tx inspection.Tx) error {
				for j, v := range vals {
					if err := store.BareSet(tx, []byte(fmt.Sprintf("k%d-%012d", j, n)), v); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	st := db.CommitStats()
	b.ReportMetric(float64(st.Updates)/float64(max(st.Batches, 1)), "writes/fsync")
}

// benchDir is a data dir on disk: under KTCN_BENCH_DIR when set (make
// bench points it at the work tree, not tmpfs), else the test's temp dir.
func benchDir(b *testing.B) string {
	root := os.Getenv("KTCN_BENCH_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(root, "bare-*")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// decisionSizedValues are random values the sizes of what one decision
// writes: a decision, an assignment, a goods state, a declaration record.
func decisionSizedValues() [][]byte {
	sizes := []int{2200, 900, 500, 300}
	vals := make([][]byte, len(sizes))
	for i, n := range sizes {
		vals[i] = make([]byte, n)
		_, _ = rand.Read(vals[i])
	}
	return vals
}
