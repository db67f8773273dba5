package store_test

import (
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/store"
)

// An acknowledgement promises a synced write: the store opens with
// SyncWrites on (badger v4's default is off) and refuses options without it.
func TestStoreRefusesToOpenWithoutSyncWrites(t *testing.T) {
	for _, direct := range []bool{false, true} {
		db := openWith(t, store.Options{Dir: t.TempDir(), Small: true, DirectCommit: direct})
		if !store.SyncWrites(db) {
			t.Fatalf("DirectCommit=%v: the store does not sync writes", direct)
		}
	}
	_, err := store.OpenWith(store.Options{Dir: t.TempDir(), Small: true},
		func(o badger.Options) badger.Options { return o.WithSyncWrites(false) })
	if !errors.Is(err, store.ErrNotDurable) {
		t.Fatalf("opened without SyncWrites: %v", err)
	}
}

// A bulk load (fixtures generate -bulk) is the one store that does not
// sync each commit, and only when asked; what it committed is on disk
// once it is closed.
func TestBulkLoadSyncsAtClose(t *testing.T) {
	dir := t.TempDir()
	db := openWith(t, store.Options{Dir: dir, Small: true, BulkLoad: true})
	if store.SyncWrites(db) {
		t.Fatal("a bulk load syncs every commit")
	}
	for _, id := range []string{"bulk-1", "bulk-2"} {
		if err := db.UpdateRaw(t.Context(), func(tx inspection.Tx) error { return tx.PutAgency(reference.Agency{ID: id}) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openWith(t, store.Options{Dir: dir, Small: true})
	if !store.SyncWrites(db) {
		t.Fatal("reopened for serving without SyncWrites")
	}
	var got []reference.Agency
	err := db.View(t.Context(), func(tx inspection.ReadTx) (err error) {
		got, err = tx.Agencies()
		return err
	})
	if err != nil || len(got) != 2 {
		t.Fatalf("after the bulk load: %v, %v", got, err)
	}
}
