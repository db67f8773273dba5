package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
)

// Group commit. One fsync costs about as much as hundreds of decisions'
// worth of CPU (design.md: ~0.4 ms), so one goroutine runs the Updates one
// after another in ONE badger transaction (each sees the writes of those
// before it, so the batch is serial), commits once with SyncWrites, and
// only then answers the batch's callers. A single writer also means hot
// keys (quota counters, goods state) never conflict.
//
// The batches are pipelined: while batch N commits and syncs, the Updates
// that arrive run, one by one as they come, in batch N+1, which commits
// the moment N has landed. N+1's transaction and snapshot are opened just
// before N's commit begins (one opened during it would wait for its sync),
// so they lack N's writes: the batch view overlays them (batchview.go). If
// N's commit fails, N+1 is void and runs again from scratch.
//
// A function that fails leaves partial writes in the shared transaction, so
// the batch is discarded and rebuilt without it (functions must be
// re-runnable, as for any Update). A batch that grows past badger's
// transaction limit is cut before the function that overflowed it.

// maxBatch bounds the functions in one commit; the transaction size limit
// usually binds first for large records.
const maxBatch = 1024

type commitRequest struct {
	ctx       context.Context
	fn        func(inspection.Tx) error
	raw       bool       // UpdateRaw: no audit check
	done      chan error // buffered: the committer never blocks on a caller
	conflicts int        // commits of it that met a write conflict
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
//
// Overlaid counts the batches that ran while the one before them synced,
// Settled the times a batch ran again because it read what the syncing
// batch's overlay cannot serve.
type CommitStats struct {
	Entries     int64
	Bytes       int64
	ReusedReads int64
	StaleReads  int64
	Overlaid    int64
	Settled     int64
	Batches     int64
	Updates     int64
	Reruns      int64
	MaxBatch    int64
	// SyncSeconds is how long each batch's commit took to return, its
	// fsync included; BatchSize how many updates each batch carried.
	SyncSeconds Histogram
	BatchSize   Histogram
}

type committer struct {
	db    *badger.DB
	reqs  chan *commitRequest
	quit  chan struct{}
	wg    sync.WaitGroup
	stats struct {
		batches, updates, reruns, max, entries, bytes atomic.Int64
		reusedReads, staleReads, overlaid, settled    atomic.Int64
		sync, batch                                   *histogram
	}
	// committed counts the batches whose commit has returned; recent holds
	// the keys the last recentBatches of them wrote, by sequence modulo
	// its length (committer goroutine only; readahead.go).
	committed atomic.Uint64
	// launched counts the batches whose commit has started: a batch is
	// launched, its callers answered as it syncs, then landed (committed).
	launched atomic.Uint64
	recent   [recentBatches]map[string]struct{}
	// snap is the snapshot ViewAhead shares (readahead.go).
	snapMu sync.Mutex
	snap   *sharedSnapshot
}

func newCommitter(db *badger.DB) *committer {
	c := &committer{db: db, reqs: make(chan *commitRequest, maxBatch), quit: make(chan struct{})}
	c.stats.sync, c.stats.batch = newHistogram(syncBounds, 1e-9), newHistogram(batchBounds, 1)
	c.wg.Add(1)
	go c.loop()
	return c
}

// stop lets the committer finish what is queued, then ends it. Callers
// must not submit after stop (DB.Close guarantees it).
func (c *committer) stop() {
	close(c.quit)
	c.wg.Wait()
	c.snapMu.Lock()
	sh := c.snap
	c.snap = nil
	c.snapMu.Unlock()
	c.retire(sh)
}

func (c *committer) submit(ctx context.Context, fn func(inspection.Tx) error, raw bool) error {
	r := &commitRequest{ctx: ctx, fn: fn, raw: raw, done: make(chan error, 1)}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return &fault.Error{Code: fault.Unavailable, Message: "store: request abandoned", Err: ctx.Err()}
	}
	// Once queued, wait for the outcome even if ctx ends: the write may
	// already be in a commit, and the caller must not be told it failed.
	return <-r.done
}

// flight is a batch whose commit is running: the goroutine committing it
// answers its callers, then sends the outcome on done.
type flight struct {
	reqs []*commitRequest
	bv   *batchView
	done chan landing
}

// landing is a flight's outcome: its commit's error and, when it
// committed, what the batch after the next one runs on, opened by the
// committing goroutine the moment the commit returned (see launch).
type landing struct {
	err  error
	next *next
}

// next is what a batch runs on, opened before the commit of the batch
// before it began (badger makes a transaction opened during a commit wait
// for that commit's sync): a write transaction and its snapshot, and the
// snapshot ViewAhead shares until the next commit lands.
type next struct {
	txn, snap, shared *badger.Txn
}

func (n *next) discard() {
	if n == nil {
		return
	}
	n.txn.Discard()
	n.snap.Discard()
	if n.shared != nil {
		n.shared.Discard()
	}
}

// building is the batch the committer adds requests to, one by one as
// they arrive, while the batch before it syncs.
type building struct {
	txn  *badger.Txn
	bv   *batchView
	reqs []*commitRequest
}

func (c *committer) loop() {
	defer c.wg.Done()
	var (
		f   *flight   // the batch syncing, or nil
		pre *next     // opened for the batch after f
		cur *building // that batch, once a request came (nil while f is nil)
	)
	for {
		if f == nil {
			select {
			case first := <-c.reqs:
				f, pre = c.run(c.gather(first), nil)
			case <-c.quit:
				// Drain what was queued before Close began.
				for {
					select {
					case r := <-c.reqs:
						c.settle(c.run([]*commitRequest{r}, nil))
					default:
						return
					}
				}
			}
			continue
		}
		// A landed commit goes first: the disk must not wait for the
		// requests queued behind it (select alone picks at random).
		select {
		case l := <-f.done:
			f, pre = c.advance(f, l, pre, cur)
			cur = nil
			continue
		default:
		}
		reqs := c.reqs
		if cur != nil && len(cur.reqs) >= maxBatch {
			reqs = nil // full: wait for f
		}
		select {
		case r := <-reqs:
			f, pre, cur = c.add(r, f, pre, cur)
		case l := <-f.done:
			f, pre = c.advance(f, l, pre, cur)
			cur = nil
		}
	}
}

// advance lands f, whose commit ended as l, and launches the batch built
// over it (if any); it returns the new flight and what the batch after
// runs on.
func (c *committer) advance(f *flight, l landing, pre *next, cur *building) (*flight, *next) {
	landed := c.land(f, l.err)
	switch {
	case cur == nil: // nothing came while it synced
		pre.discard()
		if l.next == nil {
			l.next = c.openNext() // nothing under way: no wait
		}
		c.publish(l.next)
		l.next.discard()
		return nil, nil
	case !landed: // what ran over it is void: run it again
		l.next.discard()
		cur.txn.Discard()
		cur.bv.discard()
		c.stats.reruns.Add(int64(len(cur.reqs)))
		return c.run(cur.reqs, nil)
	default:
		f = c.launch(cur.txn, cur.bv, cur.reqs)
		c.publish(l.next)
		return f, l.next
	}
}

// gather appends to batch whatever is queued, up to maxBatch.
func (c *committer) gather(batch ...*commitRequest) []*commitRequest {
	for len(batch) < maxBatch {
		select {
		case r := <-c.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// add runs r in the batch building over f (starting it on pre if need
// be). If r fails, or reads what the overlay cannot serve, the batch's
// transaction holds partial writes: the batch and r go through run, which
// lets f land first and rebuilds them.
func (c *committer) add(r *commitRequest, f *flight, pre *next, cur *building) (*flight, *next, *building) {
	if c.abandoned(r) {
		return f, pre, cur
	}
	if cur == nil {
		cur = &building{txn: pre.txn, bv: newBatchView(pre.snap, f.bv)}
		pre = nil
	}
	failed, err := c.applyAll(cur.txn, cur.bv, []*commitRequest{r})
	if failed < 0 {
		cur.reqs = append(cur.reqs, r)
		return f, pre, cur
	}
	if errors.Is(err, errSettleFirst) {
		c.stats.settled.Add(1)
	}
	c.stats.reruns.Add(int64(len(cur.reqs)))
	// Whatever queued meanwhile joins them: run waits for f anyway.
	f, pre = c.run(c.gather(append(cur.reqs, r)...), f)
	return f, pre, nil
}

// abandoned answers r if its caller gave up before it ran (nothing of it
// is written) and reports whether it did.
func (c *committer) abandoned(r *commitRequest) bool {
	err := r.ctx.Err()
	if err != nil {
		r.done <- &fault.Error{Code: fault.Unavailable, Message: "store: request abandoned", Err: err}
	}
	return err != nil
}

// openNext opens what a batch runs on, and the snapshot ViewAhead shares:
// at the latest commit, which must have returned (see next).
func (c *committer) openNext() *next {
	return &next{txn: c.db.NewTransaction(true), snap: c.db.NewTransaction(false), shared: c.db.NewTransaction(false)}
}

// run commits a batch, splitting and rebuilding it as needed, once f (if
// any) has landed; a part split off runs over the part before it while
// that one syncs, overlaid with its writes. It returns the last part's
// flight and what the batch after runs on. Every request gets exactly one
// answer.
func (c *committer) run(batch []*commitRequest, f *flight) (*flight, *next) {
	var pre *next // what the next part runs on, once a part is launched
	pending := make([]*commitRequest, 0, len(batch))
	for _, r := range batch {
		if !c.abandoned(r) {
			pending = append(pending, r)
		}
	}
	for len(pending) > 0 {
		limit := len(pending)
		for {
			var (
				txn, snap *badger.Txn
				overlay   *batchView
			)
			if f != nil && pre != nil {
				txn, snap, overlay = pre.txn, pre.snap, f.bv
				pre = nil
			} else {
				// A retry: let f land first (a transaction opened now would
				// wait for its sync anyway) and run on what is committed.
				c.settle(f, pre)
				f, pre = nil, nil
				txn, snap = c.db.NewTransaction(true), c.db.NewTransaction(false)
			}
			bv := newBatchView(snap, overlay)
			failed, ferr := c.applyAll(txn, bv, pending[:limit])
			if failed < 0 {
				var n *next
				if f != nil {
					l := <-f.done
					landed := c.land(f, l.err)
					f = nil
					if !landed { // what ran over it is void
						l.next.discard()
						txn.Discard()
						bv.discard()
						continue
					}
					n = l.next
				} else {
					n = c.openNext() // nothing under way: no wait
				}
				f = c.launch(txn, bv, pending[:limit])
				c.publish(n)
				pre = n
				pending = pending[limit:]
				break
			}
			if errors.Is(ferr, errSettleFirst) {
				c.stats.settled.Add(1)
				continue // again, without the overlay
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
	if f != nil && pre == nil {
		// The last part failed on the transaction opened for what follows
		// f, so nothing is left to build the next batch on until f lands:
		// let it land here (a batch cut because it outgrew a transaction,
		// whose last part failed). Returning f without it crashed the
		// next update (TestGroupCommitCutBatchEndingInAFailure).
		c.wait(f)
		f = nil
	}
	return f, pre
}

// applyAll runs functions in order in txn. On the first error, or the
// first read the view cannot serve over its overlay, it discards txn and
// bv and returns the function's index and error.
func (c *committer) applyAll(txn *badger.Txn, bv *batchView, reqs []*commitRequest) (int, error) {
	for i, r := range reqs {
		tx := &writeTx{readTx: readTx{txn: txn, bv: bv, c: c}, raw: r.raw}
		err := tx.finish(r.fn(tx))
		if bv.unsettled {
			err = errSettleFirst
		}
		if err != nil {
			txn.Discard()
			bv.discard()
			return i, err
		}
	}
	return -1, nil
}

// launch commits txn in its own goroutine, which answers the callers once
// the commit (and its sync) returned, unless it was a write conflict:
// land runs those again.
func (c *committer) launch(txn *badger.Txn, bv *batchView, reqs []*commitRequest) *flight {
	if bv.overlay != nil {
		c.stats.overlaid.Add(1)
		bv.overlay = nil // landed: only this batch's writes overlay the next
	}
	f := &flight{reqs: reqs, bv: bv, done: make(chan landing, 1)}
	c.launched.Add(1)
	go func() {
		began := time.Now()
		err := txn.Commit()
		if err == nil {
			c.stats.sync.observeDuration(time.Since(began))
		}
		txn.Discard()
		var n *next
		if err == nil {
			// Open what the batch after the next one runs on here, before
			// waking anyone. badger's NewTransaction waits for its
			// watermark goroutine to record this commit; when the committer
			// opened it after hearing of the landing, that wait came after
			// this goroutine, the callers and the committer had been woken
			// on two busy processors, and the next batch's launch waited on
			// all of it (execution trace: the committer blocked 0.8 ms a
			// batch on the watermark, this goroutine 0.5 ms runnable before
			// it ran). Nothing else commits until this goroutine reports,
			// so the open is at this commit.
			n = c.openNext()
		}
		if !errors.Is(err, badger.ErrConflict) {
			if err != nil {
				err = fmt.Errorf("store: commit: %w", badgerErr(err))
			}
			for _, r := range reqs {
				r.done <- err
			}
		}
		f.done <- landing{err: err, next: n}
	}()
	return f
}

// wait lands f once its commit returned; it reports whether f committed.
func (c *committer) wait(f *flight) bool {
	l := <-f.done
	l.next.discard()
	return c.land(f, l.err)
}

// settle discards pre and lands f, if any.
func (c *committer) settle(f *flight, pre *next) {
	pre.discard()
	if f != nil {
		c.wait(f)
	}
}

// land records a flight's commit and reports whether it committed. A
// write conflict (only a direct Update racing the committer could cause
// one) runs the same functions again on fresh data, up to
// MaxUpdateAttempts times each.
func (c *committer) land(f *flight, err error) bool {
	c.committedBatch(f.bv) // whatever the outcome: a failed commit may have written
	f.bv.discard()
	if errors.Is(err, badger.ErrConflict) {
		var again []*commitRequest
		for _, r := range f.reqs {
			if r.conflicts++; r.conflicts >= MaxUpdateAttempts {
				r.done <- fmt.Errorf("store: commit: %w", err)
				continue
			}
			again = append(again, r)
		}
		c.stats.reruns.Add(int64(len(again)))
		c.settle(c.run(again, nil))
		return false
	}
	c.stats.batches.Add(1)
	c.stats.updates.Add(int64(len(f.reqs)))
	c.stats.batch.observe(int64(len(f.reqs)))
	entries, bytes := f.bv.size()
	c.stats.entries.Add(entries)
	c.stats.bytes.Add(bytes)
	if n := int64(len(f.reqs)); n > c.stats.max.Load() {
		c.stats.max.Store(n)
	}
	return err == nil
}

func (c *committer) snapshot() CommitStats {
	return CommitStats{Entries: c.stats.entries.Load(), Bytes: c.stats.bytes.Load(), Batches: c.stats.batches.Load(), Updates: c.stats.updates.Load(),
		Reruns: c.stats.reruns.Load(), MaxBatch: c.stats.max.Load(),
		ReusedReads: c.stats.reusedReads.Load(), StaleReads: c.stats.staleReads.Load(),
		Overlaid: c.stats.overlaid.Load(), Settled: c.stats.settled.Load(),
		SyncSeconds: c.stats.sync.snapshot(), BatchSize: c.stats.batch.snapshot()}
}
