package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	json "github.com/goccy/go-json"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/fault"
)

// Backtest jobs (0x2E by job ID) and their changed lots (0x2F by job ID and
// index), backtest.JobStore. Both are derived data, written without an
// audit entry (records.go says why). The jobs are few (backtest.Jobs keeps
// the newest finished ones and deletes the rest with their changes), and a
// job's changed lots are bounded by its MaxChange.

// changesChunk bounds the encoded changes of one Update: well under the
// smallest transaction a store accepts (ErrTxnTooBig, about 150 KiB with
// Options.Small), so appending never needs splitting by the caller.
const changesChunk = 64 << 10

// deleteChunk bounds the keys one Update deletes, for the same reason.
const deleteChunk = 2000

func backtestJobKey(id string) []byte { return idKey(prefixBacktestJob, id) }

func backtestChangeKey(id string, i int) []byte {
	return binary.BigEndian.AppendUint32(idKey(prefixBacktestChange, id), uint32(i))
}

// PutBacktestJob writes a job's record, replacing the one it had.
func (d *DB) PutBacktestJob(ctx context.Context, j backtest.Job) error {
	if j.ID == "" {
		return errors.New("store: backtest job with no id (a bug)")
	}
	return d.Update(ctx, func(tx inspection.Tx) error {
		return tx.(*writeTx).putDerived(prefixBacktestJob, backtestJobKey(j.ID), "backtest job "+j.ID, j)
	})
}

// BacktestJob reads a job's record; a job it does not hold is a not-found
// fault.
func (d *DB) BacktestJob(ctx context.Context, id string) (backtest.Job, error) {
	var j backtest.Job
	err := d.View(ctx, func(tx inspection.ReadTx) error {
		j = backtest.Job{}
		err := tx.(*readTx).load(prefixBacktestJob, backtestJobKey(id), "backtest job "+id, &j)
		if errors.Is(err, fault.ErrNotFound) {
			return inspection.NotFound("no backtest %q", id)
		}
		if err == nil && j.ID != id {
			return fmt.Errorf("store: backtest job %q: stored record is %q (key hash collision)", id, j.ID)
		}
		return err
	})
	return j, err
}

// jobHead decodes a job's record without its report: the embedded field
// is shadowed, so listing every job does not decode every report.
type jobHead struct {
	backtest.Job
	Report json.RawMessage `json:"report,omitempty"`
}

// BacktestJobs lists every job's record without its report, in key order.
func (d *DB) BacktestJobs(ctx context.Context) ([]backtest.Job, error) {
	var out []backtest.Job
	err := d.View(ctx, func(tx inspection.ReadTx) error {
		out = out[:0]
		return tx.(*readTx).iterate([]byte{byte(prefixBacktestJob)}, func(_, val []byte) error {
			var h jobHead
			if err := decode(prefixBacktestJob, val, &h); err != nil {
				return fmt.Errorf("store: backtest job: %w", err)
			}
			out = append(out, h.Job)
			return nil
		})
	})
	return out, err
}

// AppendBacktestChanges writes changes as a job's changed lots first,
// first+1, …, in as many durable commits as their size needs.
func (d *DB) AppendBacktestChanges(ctx context.Context, id string, first int, changes []backtest.Change) error {
	if first < 0 || first+len(changes) > 1<<32-1 {
		return fmt.Errorf("store: backtest %s changes %d+%d: out of range (a bug)", id, first, len(changes))
	}
	type kv struct{ key, val []byte }
	var chunk []kv
	size := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := d.Update(ctx, func(tx inspection.Tx) error {
			w := tx.(*writeTx)
			for _, c := range chunk {
				if err := w.setDerived(c.key, c.val, func() string { return "backtest change of " + id }); err != nil {
					return err
				}
			}
			return nil
		})
		chunk, size = chunk[:0], 0
		return err
	}
	for i, c := range changes {
		val, err := encode(prefixBacktestChange, c)
		if err != nil {
			return fmt.Errorf("store: backtest %s change %d: %w", id, first+i, err)
		}
		if size+len(val) > changesChunk {
			if err := flush(); err != nil {
				return err
			}
		}
		chunk = append(chunk, kv{backtestChangeKey(id, first+i), val})
		size += len(val)
	}
	return flush()
}

// BacktestChanges reads at most limit of a job's changed lots from index
// after on, in order.
func (d *DB) BacktestChanges(ctx context.Context, id string, after, limit int) ([]backtest.Change, error) {
	var out []backtest.Change
	err := d.View(ctx, func(tx inspection.ReadTx) error {
		out = out[:0]
		opts := badger.DefaultIteratorOptions
		opts.Prefix = idKey(prefixBacktestChange, id)
		opts.PrefetchSize = min(max(limit, 1), 100)
		it := tx.(*readTx).txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(backtestChangeKey(id, after)); it.Valid() && len(out) < limit; it.Next() {
			var c backtest.Change
			if err := it.Item().Value(func(val []byte) error { return decode(prefixBacktestChange, val, &c) }); err != nil {
				return fmt.Errorf("store: backtest %s change: %w", id, err)
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// DeleteBacktestChanges deletes a job's changed lots.
func (d *DB) DeleteBacktestChanges(ctx context.Context, id string) error {
	for {
		// The keys are read on a snapshot and deleted by name, a chunk per
		// commit: a scan inside a group-committed Update would have to
		// settle the batch first.
		var keys [][]byte
		err := d.View(ctx, func(tx inspection.ReadTx) error {
			keys = keys[:0]
			opts := badger.DefaultIteratorOptions
			opts.Prefix = idKey(prefixBacktestChange, id)
			opts.PrefetchValues = false
			it := tx.(*readTx).txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < deleteChunk; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		if err := d.Update(ctx, func(tx inspection.Tx) error {
			w := tx.(*writeTx)
			for _, k := range keys {
				if err := w.delete(k, "backtest change of "+id); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
}

// DeleteBacktestJob deletes a job's changed lots, then its record (so a
// failure between leaves a record whose changes can be deleted again).
func (d *DB) DeleteBacktestJob(ctx context.Context, id string) error {
	if err := d.DeleteBacktestChanges(ctx, id); err != nil {
		return err
	}
	return d.Update(ctx, func(tx inspection.Tx) error {
		return tx.(*writeTx).delete(backtestJobKey(id), "backtest job "+id)
	})
}
