package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/store"
)

// A bulk load leaves level 0 over its target (here: written with
// compaction off, as if the compactors had fallen behind); Settle returns
// once the compactors have brought every level under it, with the data
// intact.
func TestSettleWaitsForCompaction(t *testing.T) {
	dir := t.TempDir()
	db, err := store.OpenWith(store.Options{Dir: dir, Small: true, BulkLoad: true},
		func(o badger.Options) badger.Options { return o.WithNumCompactors(0) })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pad := strings.Repeat("x", 400)
	const batches, per = 100, 200
	for i := range batches {
		err := db.UpdateRaw(ctx, func(tx inspection.Tx) error {
			for j := range per {
				if err := tx.PutAgency(reference.Agency{ID: fmt.Sprintf("a-%03d-%03d", i, j), Name: pad}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if store.LevelsOverTarget(db) == 0 {
		t.Fatal("no compaction debt to settle: write more")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openWith(t, store.Options{Dir: dir, Small: true})
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := db.Settle(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if pending := store.LevelsOverTarget(db); pending != 0 {
		t.Fatalf("settled with %d levels over target", pending)
	}
	var n int
	err = db.View(ctx, func(tx inspection.ReadTx) error {
		as, err := tx.Agencies()
		n = len(as)
		return err
	})
	if err != nil || n != batches*per {
		t.Fatalf("after settling: %d agencies, %v", n, err)
	}
}
