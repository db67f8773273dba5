package store

import (
	"context"
	"fmt"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
)

// Ping checks that the store can be read and written: a read transaction
// that reads the outbox head, then an empty update through the write
// path (with group commit, the committer must take it in a batch and
// answer). It writes nothing. It gives up when ctx ends, even if the
// update is still queued (a stuck committer is exactly what it reports);
// the update then completes, harmlessly, whenever the committer does.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.View(ctx, func(tx inspection.ReadTx) error { _, err := tx.OutboxHead(); return err }); err != nil {
		return fmt.Errorf("store not readable: %w", err)
	}
	if !d.pinging.CompareAndSwap(false, true) {
		return &fault.Error{Code: fault.Unavailable, Message: "store not writable: the previous probe's empty update has not committed"}
	}
	done := make(chan error, 1)
	go func() {
		defer d.pinging.Store(false)
		done <- d.Update(context.WithoutCancel(ctx), func(inspection.Tx) error { return nil })
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("store not writable: %w", err)
		}
		return nil
	case <-ctx.Done():
		return &fault.Error{Code: fault.Unavailable, Message: "store not writable: an empty update did not commit in time", Err: ctx.Err()}
	}
}
