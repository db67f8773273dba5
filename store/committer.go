package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/ktcn/ktcn/inspection"
)

// Group commit. One fsync costs about as much as hundreds of decisions'
// worth of CPU (design.md: ~0.4 ms), so one goroutine gathers the Updates
// that arrive while the previous batch is syncing, runs their functions one
// after another in ONE badger transaction (each sees the writes of those
// before it, so the batch is serial), commits once with SyncWrites, and
// only then answers every caller. A single writer also means hot keys
// (quota counters, goods state) never conflict.
//
// A function that fails leaves partial writes in the shared transaction, so
// the batch is discarded and rebuilt without it (functions must be
// re-runnable, as for any Update). A batch that grows past badger's
// transaction limit is cut before the function that overflowed it.

// maxBatch bounds the functions in one commit; the transaction size limit
// usually binds first for large records.
const maxBatch = 1024

type commitRequest struct {
	ctx  context.Context
	fn   func(inspection.Tx) error
	done chan error // buffered: the committer never blocks on a caller
}

// CommitStats counts what the committer did: Batches is the number of
// synced commits, Updates the functions they carried (Updates/Batches is
// decisions per fsync on the decision path), Reruns the functions run again
// because another function of their batch failed or overflowed it.
//
// Entries and Bytes are the keys and the key and value bytes the batches
// committed (a key written twice in one batch counts once, as badger
// writes it once): per update, what one decision costs the disk.
//
// ReusedReads are point reads answered from a caller's read-ahead
// snapshot, StaleReads those it had but a later batch had written
// (readahead.go).
type CommitStats struct {
	Entries     int64
	Bytes       int64
	ReusedReads int64
	StaleReads  int64
	Batches     int64
	Updates     int64
	Reruns      int64
	MaxBatch    int64
}

type committer struct {
	db    *badger.DB
	reqs  chan *commitRequest
	quit  chan struct{}
	wg    sync.WaitGroup
	stats struct {
		batches, updates, reruns, max, entries, bytes atomic.Int64
		reusedReads, staleReads                       atomic.Int64
	}
	// committed counts the batches whose commit has returned; recent holds
	// the keys the last recentBatches of them wrote, by sequence modulo
	// its length (committer goroutine only; readahead.go).
	committed atomic.Uint64
	recent    [recentBatches]map[string]struct{}
}

func newCommitter(db *badger.DB) *committer {
	c := &committer{db: db, reqs: make(chan *commitRequest, maxBatch), quit: make(chan struct{})}
	c.wg.Add(1)
	go c.loop()
	return c
}

// stop lets the committer finish what is queued, then ends it. Callers
// must not submit after stop (DB.Close guarantees it).
func (c *committer) stop() {
	close(c.quit)
	c.wg.Wait()
}

func (c *committer) submit(ctx context.Context, fn func(inspection.Tx) error) error {
	r := &commitRequest{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return &inspection.Error{Code: inspection.CodeUnavailable, Message: "store: request abandoned", Err: ctx.Err()}
	}
	// Once queued, wait for the outcome even if ctx ends: the write may
	// already be in a commit, and the caller must not be told it failed.
	return <-r.done
}

func (c *committer) loop() {
	defer c.wg.Done()
	for {
		var first *commitRequest
		select {
		case first = <-c.reqs:
		case <-c.quit:
			// Drain what was queued before Close began.
			for {
				select {
				case r := <-c.reqs:
					c.run([]*commitRequest{r})
				default:
					return
				}
			}
		}
		batch := []*commitRequest{first}
	gather:
		for len(batch) < maxBatch {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		c.run(batch)
	}
}

// run commits a batch, splitting and rebuilding it as needed; every
// request gets exactly one answer.
func (c *committer) run(batch []*commitRequest) {
	pending := make([]*commitRequest, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil { // abandoned before it ran: nothing written
			r.done <- &inspection.Error{Code: inspection.CodeUnavailable, Message: "store: request abandoned", Err: err}
			continue
		}
		pending = append(pending, r)
	}
	conflicts := 0
	for len(pending) > 0 {
		limit := len(pending)
		for {
			txn, bv, failed, ferr := c.apply(pending[:limit])
			if failed < 0 {
				err := txn.Commit()
				txn.Discard()
				c.committedBatch(bv)
				bv.discard()
				if errors.Is(err, badger.ErrConflict) && conflicts < MaxUpdateAttempts {
					// Only a direct Update racing the committer can cause
					// this; run the same functions again on fresh data.
					conflicts++
					c.stats.reruns.Add(int64(limit))
					break
				}
				if err != nil {
					err = fmt.Errorf("store: commit: %w", badgerErr(err))
				}
				c.stats.batches.Add(1)
				c.stats.updates.Add(int64(limit))
				entries, bytes := bv.size()
				c.stats.entries.Add(entries)
				c.stats.bytes.Add(bytes)
				if int64(limit) > c.stats.max.Load() {
					c.stats.max.Store(int64(limit))
				}
				for _, r := range pending[:limit] {
					r.done <- err
				}
				pending = pending[limit:]
				break
			}
			c.stats.reruns.Add(int64(failed))
			if errors.Is(ferr, badger.ErrTxnTooBig) && failed > 0 {
				limit = failed // commit those that fit; the rest go next
				continue
			}
			if errors.Is(ferr, badger.ErrTxnTooBig) {
				ferr = fmt.Errorf("store: one update is larger than a transaction allows: %w", ErrTxnTooBig)
			}
			pending[failed].done <- ferr
			pending = append(pending[:failed:failed], pending[failed+1:]...)
			break
		}
	}
}

// apply runs functions in order in one new transaction. On the first
// error it discards the transaction and returns the function's index.
func (c *committer) apply(reqs []*commitRequest) (*badger.Txn, *batchView, int, error) {
	txn := c.db.NewTransaction(true)
	bv := newBatchView(c.db)
	for i, r := range reqs {
		tx := &writeTx{readTx: readTx{txn: txn, bv: bv, c: c}}
		err := r.fn(tx)
		tx.done = true
		if err != nil {
			txn.Discard()
			bv.discard()
			return nil, nil, i, err
		}
	}
	return txn, bv, -1, nil
}

func (c *committer) snapshot() CommitStats {
	return CommitStats{Entries: c.stats.entries.Load(), Bytes: c.stats.bytes.Load(), Batches: c.stats.batches.Load(), Updates: c.stats.updates.Load(),
		Reruns: c.stats.reruns.Load(), MaxBatch: c.stats.max.Load(),
		ReusedReads: c.stats.reusedReads.Load(), StaleReads: c.stats.staleReads.Load()}
}
