package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/store"
)

// writeAll writes one of every record type.
func writeAll(tx inspection.Tx) error {
	for _, tc := range roundTrips() {
		if tc.name == "events of subject" || tc.name == "agencies" {
			continue // same records as "event by id" and "agency"
		}
		if err := tc.put(tx); err != nil {
			return fmt.Errorf("%s: %w", tc.name, err)
		}
	}
	return tx.PutAssignment(assignment("A-open", "AG-1", t0, inspection.AssignmentOpen))
}

// expectNothing checks that no record of writeAll is visible.
func expectNothing(t *testing.T, db *store.DB) {
	t.Helper()
	view(t, db, func(tx inspection.ReadTx) error {
		for _, tc := range roundTrips() {
			got, err := tc.get(tx)
			switch v := got.(type) {
			case []inspection.Event:
				if err != nil || len(v) != 0 {
					t.Errorf("%s: %v, %v", tc.name, v, err)
				}
			case []reference.Agency:
				if err != nil || len(v) != 0 {
					t.Errorf("%s: %v, %v", tc.name, v, err)
				}
			default:
				if !errors.Is(err, fault.ErrNotFound) {
					t.Errorf("%s: err = %v, want ErrNotFound", tc.name, err)
				}
			}
		}
		if as, _, err := tx.OpenAssignments("AG-1", "", 0); err != nil || len(as) != 0 {
			t.Errorf("OpenAssignments = %v, %v", as, err)
		}
		return nil
	})
}

func TestUpdateRollsBackOnError(t *testing.T) {
	sentinel := errors.New("boom")
	coded := inspection.Conflict("digest", "differs")
	for _, want := range []error{sentinel, coded} {
		t.Run(want.Error(), func(t *testing.T) {
			backends(t, func(t *testing.T, db *store.DB) {
				err := db.UpdateRaw(t.Context(), func(tx inspection.Tx) error {
					if err := writeAll(tx); err != nil {
						t.Fatalf("writeAll: %v", err)
					}
					return want
				})
				if err != want { // unchanged, not merely wrapping
					t.Fatalf("Update err = %#v, want %#v", err, want)
				}
				expectNothing(t, db)
			})
		})
	}
}

// Many writers read-modify-write one record; conflicts must be retried so
// that no increment is lost.
func TestUpdateRetriesConflicts(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB) {
		const writers, increments = 8, 50
		k := goods.Key()
		var attempts atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Go(func() {
				for range increments {
					err := db.UpdateRaw(context.Background(), func(tx inspection.Tx) error {
						attempts.Add(1)
						g, err := tx.GoodsState(k)
						if errors.Is(err, fault.ErrNotFound) {
							g = inspection.GoodsState{Key: k, Goods: goods}
						} else if err != nil {
							return err
						}
						g.Lots++
						return tx.PutGoodsState(g)
					})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Update: %v", err)
		}
		view(t, db, func(tx inspection.ReadTx) error {
			g, err := tx.GoodsState(k)
			if err != nil || g.Lots != writers*increments {
				t.Errorf("Lots = %d, %v; want %d", g.Lots, err, writers*increments)
			}
			return nil
		})
		t.Logf("%d attempts for %d commits", attempts.Load(), writers*increments)
	})
}

// conflicting runs an Update whose every attempt conflicts: it reads the
// goods state, then a nested Update changes it before the outer commits.
func conflicting(ctx context.Context, db *store.DB, each func(attempt int)) (attempts int, err error) {
	k := goods.Key()
	err = db.UpdateRaw(ctx, func(tx inspection.Tx) error {
		attempts++
		if _, err := tx.GoodsState(k); err != nil && !errors.Is(err, fault.ErrNotFound) {
			return err
		}
		if err := db.UpdateRaw(ctx, func(tx inspection.Tx) error {
			return tx.PutGoodsState(inspection.GoodsState{Key: k, Lots: attempts})
		}); err != nil {
			return err
		}
		if each != nil {
			each(attempts)
		}
		return tx.PutImporter(sampleImporter)
	})
	return attempts, err
}

func TestUpdateGivesUpAfterMaxAttempts(t *testing.T) {
	db := openDirect(t) // a nested Update would wait on the committer it runs in
	attempts, err := conflicting(t.Context(), db, nil)
	if fault.CodeOf(err) != fault.Unavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if attempts != store.MaxUpdateAttempts {
		t.Errorf("%d attempts, want %d", attempts, store.MaxUpdateAttempts)
	}
	view(t, db, func(tx inspection.ReadTx) error {
		if _, err := tx.Importer(sampleImporter.TaxCode); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("a conflicting attempt was committed: %v", err)
		}
		return nil
	})
}

func TestUpdateStopsRetryingWhenCancelled(t *testing.T) {
	db := openDirect(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	attempts, err := conflicting(ctx, db, func(int) { cancel() })
	if !errors.Is(err, context.Canceled) || fault.CodeOf(err) != fault.Unavailable {
		t.Fatalf("err = %v, want unavailable wrapping context.Canceled", err)
	}
	if attempts != 1 {
		t.Errorf("%d attempts, want 1", attempts)
	}
}

func TestCancelledContextRunsNothing(t *testing.T) {
	db := openMemory(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	if err := db.UpdateRaw(ctx, func(inspection.Tx) error { called = true; return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Update err = %v", err)
	}
	if err := db.View(ctx, func(inspection.ReadTx) error { called = true; return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("View err = %v", err)
	}
	if called {
		t.Error("fn ran")
	}
}

func TestUpdateTooBig(t *testing.T) {
	db := openMemory(t) // Small: about 150 KiB per transaction
	doc := make([]byte, 4<<10)
	for i := range doc {
		doc[i] = 'x'
	}
	err := db.UpdateRaw(t.Context(), func(tx inspection.Tx) error {
		for i := range 100 {
			if err := tx.PutPolicy(fmt.Sprintf("v%d", i), doc); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, store.ErrTxnTooBig) {
		t.Fatalf("err = %v, want ErrTxnTooBig", err)
	}
	view(t, db, func(tx inspection.ReadTx) error {
		if _, err := tx.Policy("v0"); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("Policy(v0) err = %v, want ErrNotFound", err)
		}
		return nil
	})
}

func TestViewIsReadOnly(t *testing.T) {
	db := openMemory(t)
	view(t, db, func(tx inspection.ReadTx) error {
		if _, ok := tx.(inspection.Tx); ok {
			t.Error("View's transaction can be asserted to inspection.Tx")
		}
		return nil
	})
}

// A transaction kept past its View or Update fails instead of panicking.
func TestTxUsedAfterReturn(t *testing.T) {
	db := openMemory(t)
	var r inspection.ReadTx
	var w inspection.Tx
	view(t, db, func(tx inspection.ReadTx) error { r = tx; return nil })
	update(t, db, func(tx inspection.Tx) error { w = tx; return nil })
	if _, err := r.Events(sampleEvent().Subject); err == nil {
		t.Error("Events on a finished View succeeded")
	}
	if _, _, err := r.OpenAssignments("AG-1", "", 0); err == nil {
		t.Error("OpenAssignments on a finished View succeeded")
	}
	if _, err := w.Agency("AG-1"); err == nil || errors.Is(err, fault.ErrNotFound) {
		t.Errorf("Agency on a finished Update: %v", err)
	}
	if err := w.PutAgency(sampleAgency); err == nil {
		t.Error("PutAgency on a finished Update succeeded")
	}
}

func TestCloseWaitsForTransactions(t *testing.T) {
	db, err := store.Open(store.Options{InMemory: true, Small: true})
	if err != nil {
		t.Fatal(err)
	}
	inView := make(chan struct{})
	release := make(chan struct{})
	viewDone := make(chan error, 1)
	go func() {
		viewDone <- db.View(context.Background(), func(tx inspection.ReadTx) error {
			close(inView)
			<-release
			_, err := tx.Agencies() // badger must still be open
			return err
		})
	}()
	<-inView
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a View was running", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-viewDone; err != nil {
		t.Errorf("View: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}

	err = db.UpdateRaw(t.Context(), func(inspection.Tx) error { return nil })
	if !errors.Is(err, store.ErrClosed) || fault.CodeOf(err) != fault.Unavailable {
		t.Errorf("Update after Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
