package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/store"
)

func importerN(i int) reference.Importer {
	return reference.Importer{TaxCode: fmt.Sprintf("%010d", i), Name: fmt.Sprintf("Importer %d", i), ComplianceLevel: "medium"}
}

// runConcurrently runs n Updates from 64 goroutines and returns their errors.
func runConcurrently(db *store.DB, n int, fn func(i int) func(inspection.Tx) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = db.UpdateRaw(context.Background(), fn(i))
		}()
	}
	wg.Wait()
	return errs
}

func TestGroupCommitBatchesConcurrentUpdates(t *testing.T) {
	db := openDir(t, t.TempDir())
	const n = 2000
	errs := runConcurrently(db, n, func(i int) func(inspection.Tx) error {
		return func(tx inspection.Tx) error { return tx.PutImporter(importerN(i)) }
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	view(t, db, func(tx inspection.ReadTx) error {
		for i := range n {
			if _, err := tx.Importer(importerN(i).TaxCode); err != nil {
				t.Fatalf("importer %d lost: %v", i, err)
			}
		}
		return nil
	})
	st := db.CommitStats()
	if st.Updates < n || st.Batches >= st.Updates || st.MaxBatch < 2 {
		t.Fatalf("no batching: %+v", st)
	}
	// The histograms count what the counters count.
	if b := st.BatchSize; b.Count != uint64(st.Batches) || int64(b.Sum) != st.Updates || b.Counts[len(b.Counts)-1] > b.Count {
		t.Fatalf("batch size histogram %+v disagrees with %d batches of %d updates", b, st.Batches, st.Updates)
	}
	if s := st.SyncSeconds; s.Count != uint64(st.Batches) || s.Sum <= 0 {
		t.Fatalf("sync latency histogram %+v for %d batches", s, st.Batches)
	}
	t.Logf("%d updates in %d synced commits (%.1f per fsync, largest batch %d)", st.Updates, st.Batches,
		float64(st.Updates)/float64(st.Batches), st.MaxBatch)
}

// A function that fails after writing must leave nothing, and must not
// take the rest of its batch down with it, whether its batch was gathered
// at once or was building while another synced.
func TestGroupCommitIsolatesAFailingUpdate(t *testing.T) {
	db := openDir(t, t.TempDir()) // real syncs, so batches build while others sync
	const n, every = 1200, 97
	boom := errors.New("boom")
	errs := runConcurrently(db, n, func(i int) func(inspection.Tx) error {
		return func(tx inspection.Tx) error {
			if err := tx.PutImporter(importerN(i)); err != nil {
				return err
			}
			if i%every == 0 {
				return boom
			}
			return nil
		}
	})
	view(t, db, func(tx inspection.ReadTx) error {
		for i := range n {
			_, err := tx.Importer(importerN(i).TaxCode)
			if i%every == 0 {
				if !errors.Is(errs[i], boom) || !errors.Is(err, fault.ErrNotFound) {
					t.Fatalf("failed update %d: returned %v, stored %v", i, errs[i], err)
				}
			} else if errs[i] != nil || err != nil {
				t.Fatalf("update %d: returned %v, stored %v", i, errs[i], err)
			}
		}
		return nil
	})
	if st := db.CommitStats(); st.Overlaid == 0 || st.Reruns == 0 {
		t.Fatalf("no failure met a batch building over one syncing: the test proved nothing (%+v)", st)
	}
}

// Batches that outgrow one transaction are cut, and every update still
// lands; one update larger than a transaction fails alone.
func TestGroupCommitSplitsOversizeBatches(t *testing.T) {
	db := openMemory(t) // Small: about 150 KiB per transaction
	doc := []byte(strings.Repeat("x", 40<<10))
	const n = 40
	errs := runConcurrently(db, n+1, func(i int) func(inspection.Tx) error {
		return func(tx inspection.Tx) error {
			if i == n { // alone too big
				for j := range 10 {
					if err := tx.PutPolicy(fmt.Sprintf("huge-%d", j), doc); err != nil {
						return err
					}
				}
				return nil
			}
			return tx.PutPolicy(fmt.Sprintf("v%d", i), doc)
		}
	})
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("update %d: %v", i, errs[i])
		}
	}
	if !errors.Is(errs[n], store.ErrTxnTooBig) {
		t.Fatalf("the oversize update: %v, want ErrTxnTooBig", errs[n])
	}
	view(t, db, func(tx inspection.ReadTx) error {
		for i := range n {
			if _, err := tx.Policy(fmt.Sprintf("v%d", i)); err != nil {
				t.Fatalf("policy %d lost: %v", i, err)
			}
		}
		if _, err := tx.Policy("huge-0"); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("part of the oversize update was written: %v", err)
		}
		return nil
	})
}

// Inside a batch, a scan must see the writes of the functions before it
// (they are serial): each update counts the subject's history, checks the
// count against a record the previous update wrote, and appends.
func TestGroupCommitScansSeeEarlierWritesOfTheBatch(t *testing.T) {
	db := openDir(t, t.TempDir())
	k := goods.Key()
	subject := inspection.Subject{Kind: inspection.SubjectGoods, Key: k}
	const n = 200
	errs := runConcurrently(db, n, func(i int) func(inspection.Tx) error {
		return func(tx inspection.Tx) error {
			evs, err := tx.Events(subject)
			if err != nil {
				return err
			}
			g, err := tx.GoodsState(k)
			if errors.Is(err, fault.ErrNotFound) {
				g = inspection.GoodsState{Key: k, Goods: goods}
			} else if err != nil {
				return err
			}
			if g.Results != len(evs) {
				return fmt.Errorf("scan saw %d events, the state says %d", len(evs), g.Results)
			}
			e := sampleEvent()
			e.ID, e.Subject, e.At = fmt.Sprintf("ev-%04d", i), subject, t0.Add(time.Duration(i)*time.Minute)
			if err := tx.AddEvent(e); err != nil {
				return err
			}
			g.Results++
			return tx.PutGoodsState(g)
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	if st := db.CommitStats(); st.MaxBatch < 2 {
		t.Fatalf("the test needs batches of more than one: %+v", st)
	}
}

// Sizes is badger's measure of the LSM tree and the value log: after a
// reopen it covers what the first run wrote.
func TestSizes(t *testing.T) {
	dir := t.TempDir()
	db := openDir(t, dir)
	errs := runConcurrently(db, 200, func(i int) func(inspection.Tx) error {
		return func(tx inspection.Tx) error { return tx.PutImporter(importerN(i)) }
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDir(t, dir)
	lsm, vlog := db.Sizes()
	if lsm <= 0 || vlog < 0 {
		t.Fatalf("sizes after a reopen: lsm %d, vlog %d", lsm, vlog)
	}
}

// A batch cut because it outgrew one transaction, whose last part is one
// update that then fails: the part before it is syncing, and the
// transaction opened for what follows was spent on the failed part. The
// committer must still have something to run the next update on: it
// once crashed on the update that came while that part synced. The
// updates queue behind one the committer is running, so they meet as one
// batch; the next is sent as the failed one returns, before the sync ends.
func TestGroupCommitCutBatchEndingInAFailure(t *testing.T) {
	db := openDir(t, t.TempDir()) // Small (about 150 KiB a transaction), real syncs
	doc := []byte(strings.Repeat("x", 40<<10))
	boom := errors.New("boom")
	put := func(name string, fail bool) func(inspection.Tx) error {
		return func(tx inspection.Tx) error {
			if err := tx.PutPolicy(name, doc); err != nil {
				return err
			}
			if fail {
				return boom
			}
			return nil
		}
	}
	type step struct {
		name string
		fn   func(inspection.Tx) error
		want error
	}
	for round := range 5 {
		name := func(s string) string { return fmt.Sprintf("%s-%d", s, round) }
		started, release := make(chan struct{}), make(chan struct{})
		steps := []step{
			{name("blocker"), func(tx inspection.Tx) error { close(started); <-release; return tx.PutPolicy(name("blocker"), doc) }, nil},
			{name("a"), put(name("a"), false), nil},
			{name("b"), put(name("b"), false), nil},
			{name("c"), put(name("c"), false), nil},
			{name("d"), put(name("d"), true), boom}, // with a-c, too big; alone, fails
		}
		errs := make([]error, len(steps)+1)
		var wg sync.WaitGroup
		for i, s := range steps {
			wg.Go(func() {
				errs[i] = db.UpdateRaw(context.Background(), s.fn)
				if i == len(steps)-1 { // the update after
					errs[i+1] = db.UpdateRaw(context.Background(), put(name("e"), false))
				}
			})
			if i == 0 {
				<-started
			}
			time.Sleep(20 * time.Millisecond) // queued in this order
		}
		close(release)
		wg.Wait()
		steps = append(steps, step{name: name("e")})
		for i, s := range steps {
			if !errors.Is(errs[i], s.want) { // nil wants nil
				t.Errorf("%s: %v, want %v", s.name, errs[i], s.want)
			}
		}
		view(t, db, func(tx inspection.ReadTx) error {
			for _, s := range steps {
				_, err := tx.Policy(s.name)
				if s.want == nil && err != nil {
					t.Errorf("%s lost: %v", s.name, err)
				} else if s.want != nil && !errors.Is(err, fault.ErrNotFound) {
					t.Errorf("%s failed but was written: %v", s.name, err)
				}
			}
			return nil
		})
	}
}
