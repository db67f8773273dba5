package store_test

import (
	"context"
	"testing"

	"github.com/ktcn/ktcn/store"
)

// Ping reads and writes through the committer and writes nothing; on a
// closed store it fails.
func TestPing(t *testing.T) {
	for _, direct := range []bool{false, true} {
		db, err := store.Open(store.Options{Dir: t.TempDir(), Small: true, DirectCommit: direct})
		if err != nil {
			t.Fatal(err)
		}
		before, err := db.Digest()
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := db.Ping(context.Background()); err != nil {
				t.Fatalf("direct=%v: %v", direct, err)
			}
		}
		if after, _ := db.Digest(); after != before {
			t.Errorf("direct=%v: Ping changed the store", direct)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Ping(context.Background()); err == nil {
			t.Errorf("direct=%v: Ping of a closed store succeeded", direct)
		}
	}
}
