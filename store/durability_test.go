package store_test

import (
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"

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
