package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/store"
)

func viewAhead(tb testing.TB, db *store.DB, fn func(inspection.ReadTx) error) inspection.SnapshotReads {
	tb.Helper()
	r, err := db.ViewAhead(context.Background(), fn)
	if err != nil {
		tb.Fatalf("ViewAhead: %v", err)
	}
	return r
}

// importerName reads an importer's name, "" when there is none.
func importerName(tx inspection.ReadTx, taxCode string) (string, error) {
	im, err := tx.Importer(taxCode)
	if errors.Is(err, fault.ErrNotFound) {
		return "", nil
	}
	return im.Name, err
}

// A write transaction answers from a read-ahead snapshot only where no
// batch wrote the key since: every read equals what it reads without one.
func TestReadAheadServesOnlyUnchangedKeys(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB) {
		put := func(taxCode, name string) func(inspection.Tx) error {
			return func(tx inspection.Tx) error {
				return tx.PutImporter(reference.Importer{TaxCode: taxCode, Name: name, ComplianceLevel: "medium"})
			}
		}
		update(t, db, put("0000000001", "untouched"))
		update(t, db, put("0000000002", "before"))
		codes := []string{"0000000001", "0000000002", "0000000003", "0000000004", "0000000005"}
		reads := viewAhead(t, db, func(tx inspection.ReadTx) error {
			for _, c := range codes {
				if _, err := importerName(tx, c); err != nil {
					return err
				}
			}
			return nil
		})
		if reads.Len() != len(codes) {
			t.Fatalf("read ahead %d keys, want %d", reads.Len(), len(codes))
		}
		// After the snapshot: 2 rewritten, 3 created; 1 and 4 untouched.
		update(t, db, put("0000000002", "after"))
		update(t, db, put("0000000003", "created"))
		before := db.CommitStats()

		want := map[string]string{
			"0000000001": "untouched", "0000000002": "after", "0000000003": "created", "0000000004": "",
			"0000000005": "own write", // the transaction's own write wins over the snapshot
		}
		got := map[string]string{}
		update(t, db, func(tx inspection.Tx) error {
			tx.(inspection.ReadReuser).Reuse(reads)
			if err := put("0000000005", "own write")(tx); err != nil {
				return err
			}
			for _, c := range codes {
				name, err := importerName(tx, c)
				if err != nil {
					return err
				}
				got[c] = name
			}
			return nil
		})
		for c, w := range want {
			if got[c] != w {
				t.Errorf("importer %s: read %q, want %q", c, got[c], w)
			}
		}
		st := db.CommitStats()
		if st.Batches == 0 && st.Updates == 0 {
			return // direct commit keeps no stats (and reuses nothing): the reads above are the test
		}
		reused, stale := st.ReusedReads-before.ReusedReads, st.StaleReads-before.StaleReads
		if reused != 2 || stale != 2 {
			t.Errorf("reused %d reads and refused %d stale ones, want 2 and 2 (importers 1 and 4; 2 and 3)", reused, stale)
		}
	})
}

// A snapshot older than the batches the committer remembers is not used.
func TestReadAheadOlderThanRememberedIsIgnored(t *testing.T) {
	db := openMemory(t)
	reads := viewAhead(t, db, func(tx inspection.ReadTx) error {
		_, err := importerName(tx, "0000000001")
		return err
	})
	for i := range 200 { // one batch each: sequential
		update(t, db, func(tx inspection.Tx) error { return tx.PutImporter(importerN(1000 + i)) })
	}
	before := db.CommitStats()
	update(t, db, func(tx inspection.Tx) error {
		tx.(inspection.ReadReuser).Reuse(reads)
		_, err := importerName(tx, "0000000001")
		return err
	})
	if st := db.CommitStats(); st.ReusedReads != before.ReusedReads || st.StaleReads != before.StaleReads {
		t.Fatalf("a snapshot 200 batches old was consulted: %+v", st)
	}
}

// Read-modify-write through read-ahead snapshots, from 64 goroutines at
// once: a stale read served from a snapshot would lose an increment.
func TestReadAheadLosesNoIncrement(t *testing.T) {
	db := openDir(t, t.TempDir())
	const n, counters = 1500, 3
	key := func(i int) (string, string) { return "2026", []string{"a", "b", "c"}[i%counters] }
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			period, scope := key(i)
			read := func(tx inspection.ReadTx) (quota.Counter, error) {
				c, err := tx.QuotaCounter(period, scope)
				if errors.Is(err, fault.ErrNotFound) {
					return quota.Counter{Period: period, Scope: scope}, nil
				}
				return c, err
			}
			reads, err := db.ViewAhead(context.Background(), func(tx inspection.ReadTx) error {
				_, err := read(tx)
				return err
			})
			if err != nil {
				errs <- err
				return
			}
			errs <- db.UpdateRaw(context.Background(), func(tx inspection.Tx) error {
				tx.(inspection.ReadReuser).Reuse(reads)
				c, err := read(tx)
				if err != nil {
					return err
				}
				c.Eligible++
				return tx.PutQuotaCounter(c)
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	view(t, db, func(tx inspection.ReadTx) error {
		cs, err := tx.QuotaCounters("2026")
		for _, c := range cs {
			total += c.Eligible
		}
		return err
	})
	st := db.CommitStats()
	if total != n {
		t.Fatalf("counters sum to %d after %d increments (%+v)", total, n, st)
	}
	if st.ReusedReads+st.StaleReads == 0 {
		t.Fatalf("no read was offered a snapshot: %+v", st)
	}
	t.Logf("%d increments in %d batches: %d reads reused, %d refused as stale", n, st.Batches, st.ReusedReads, st.StaleReads)
}
