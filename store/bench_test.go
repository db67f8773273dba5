package store_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
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
// 64 callers each writing a decision's worth of keys and bytes through the
// same group commit, with nothing read or computed. Both report keys and
// bytes per update from CommitStats, so make bench shows they match.
func BenchmarkBareGroupCommit64(b *testing.B) {
	dir := benchDir(b)
	db, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	vals := decisionSizedValues()
	var seq atomic.Int64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
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
	b.ReportMetric(float64(st.Entries)/float64(max(st.Updates, 1)), "keys/write")
	b.ReportMetric(float64(st.Bytes)/float64(max(st.Updates, 1)), "bytes/write")
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
// of inspection.BenchmarkDecide64 writes at 64 callers, measured there
// (keys/decision, bytes/decision: 5.8 keys, 5,518 bytes, key bytes
// included, shared keys such as the audit head counted once a batch): the
// decision with its explanation and four scores (3,575 bytes), the audit
// entry and head, quota counter and input versions (~780 together), the
// assignment (375 on average: not every lot is inspected), the goods state
// (348), the declaration record (236), and one small key. Until
// 2026-11-30 the floor wrote 3,964 bytes in four keys, the size of a
// decision before scores were part of its explanation.
func decisionSizedValues() [][]byte {
	sizes := []int{3575, 780, 375, 348, 236, 100}
	vals := make([][]byte, len(sizes))
	for i, n := range sizes {
		vals[i] = make([]byte, n)
		_, _ = rand.Read(vals[i])
	}
	return vals
}
