package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// CollectGarbage reclaims value-log space: badger only gives space back
// when RunValueLogGC is called, and each call rewrites at most one file,
// so it is called until ErrNoRewrite. It returns how many files were
// rewritten. An in-memory store has no value log and returns 0.
func (d *DB) CollectGarbage(ctx context.Context) (int, error) {
	if err := d.enter(ctx); err != nil {
		return 0, err
	}
	defer d.leave()
	if d.db.Opts().InMemory {
		return 0, nil
	}
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		err := d.db.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("store: value log GC: %w", err)
		}
	}
}
