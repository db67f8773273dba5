package store

import (
	"bytes"
	"context"

	"github.com/dgraph-io/badger/v4"

	"github.com/ktcn/ktcn/inspection"
)

// Reads ahead of the committer. The committer's serial time is the
// ceiling on decisions a second, and a third of it went to point reads
// (the declaration that is not there yet, the input versions, the goods
// state), each walking badger's memtable skiplists and levels. A caller
// can make those reads on its own snapshot first, in parallel with the
// other callers (ViewAhead), and hand them to its write transaction
// (Reuse); the transaction answers a read from them only for a key no
// batch has written since that snapshot.
//
// That check is exact because the committer is the only writer: it keeps
// the keys each recent batch wrote, and a snapshot opened after the
// committer had committed batch S holds every batch up to S. So a key
// that no batch after S wrote, and that the running batch has not written
// (its own writes are looked up first), holds now what the snapshot read.
// A snapshot older than the kept batches is not used at all.

// A snapshot opened while a batch is syncing waits for that sync (badger
// makes every new transaction see every commit under way), and with the
// next batch running over the one syncing there nearly always is one: each
// caller would spend a whole sync waiting before it could prepare. So one
// read-only snapshot is opened as each commit returns, before the next
// commit starts (committer.launch), and ViewAhead shares it: it lacks only
// the batch syncing, whose keys the committer checks like any other.
// badger's read-only transactions serve concurrent reads and iterators.

// recentBatches is how many committed batches' written keys the committer
// keeps. A prepared snapshot waits behind one or two batches; under the
// heaviest load (64 callers, ~30 decisions a batch) a hundred batches is
// seconds.
const recentBatches = 128

// snapshotReads are the point reads of one ViewAhead snapshot, opened
// when the committer had committed `through` batches.
type snapshotReads struct {
	through uint64
	reads   map[string]pendingRead
}

var (
	_ inspection.ReadAheadStore = (*DB)(nil)
	_ inspection.SnapshotReads  = (*snapshotReads)(nil)
	_ inspection.ReadReuser     = (*writeTx)(nil)
)

func (r *snapshotReads) Len() int { return len(r.reads) }

// ViewAhead is View that records fn's point reads for a later Update to
// Reuse. The reads come back even when fn fails, for whatever they are
// worth; they are nil only when the view could not start.
func (d *DB) ViewAhead(ctx context.Context, fn func(inspection.ReadTx) error) (inspection.SnapshotReads, error) {
	if err := d.enter(ctx); err != nil {
		return nil, err
	}
	defer d.leave()
	rec := &snapshotReads{reads: map[string]pendingRead{}}
	var txn *badger.Txn
	if sh := d.committer.acquire(); sh != nil {
		defer d.committer.release(sh)
		txn, rec.through = sh.txn, sh.through
	} else {
		if d.committer != nil {
			// Before the snapshot opens: batches up to this one are in it.
			rec.through = d.committer.committed.Load()
		}
		txn = d.db.NewTransaction(false)
		defer txn.Discard()
	}
	tx := &readTx{txn: txn, rec: rec}
	defer func() { tx.done = true }()
	return rec, fn(tx)
}

// Reuse lets t answer point reads from r where no batch has written the
// key since r's snapshot (see above). It does nothing outside group commit
// or for a snapshot older than the committer remembers.
func (t *writeTx) Reuse(r inspection.SnapshotReads) {
	rec, ok := r.(*snapshotReads)
	if !ok || t.c == nil || !t.c.remembersSince(rec.through) {
		return
	}
	t.prior = rec
}

// reused answers a point read from the reused snapshot: found says whether
// the key held a value there, ok whether the snapshot may answer.
func (t *readTx) reused(key []byte) (val []byte, found, ok bool) {
	if t.prior == nil {
		return nil, false, false
	}
	r, seen := t.prior.reads[string(key)]
	if !seen {
		return nil, false, false
	}
	if t.c.writtenSince(t.prior.through, key) {
		t.c.stats.staleReads.Add(1)
		return nil, false, false
	}
	t.c.stats.reusedReads.Add(1)
	return bytes.Clone(r.val), r.found, true
}

// record keeps a point read of a ViewAhead snapshot.
func (t *readTx) record(key, val []byte, found bool) {
	if t.rec != nil {
		t.rec.reads[string(key)] = pendingRead{val: bytes.Clone(val), found: found}
	}
}

// committedBatch remembers the keys batch seq wrote and makes seq the last
// committed batch. Called by the committer goroutine after the batch's
// commit returned, whatever it returned: a failed commit may have written.
func (c *committer) committedBatch(bv *batchView) {
	seq := c.committed.Load() + 1
	keys := make(map[string]struct{}, len(bv.writes))
	for k := range bv.writes {
		keys[k] = struct{}{}
	}
	c.recent[seq%recentBatches] = keys
	c.committed.Store(seq)
}

// remembersSince reports whether the committer still has the written keys
// of every batch after through. Committer goroutine only.
func (c *committer) remembersSince(through uint64) bool {
	return c.committed.Load()-through < recentBatches
}

// writtenSince reports whether a batch committed after through wrote key.
// Committer goroutine only, and only when remembersSince(through).
func (c *committer) writtenSince(through uint64, key []byte) bool {
	for seq := through + 1; seq <= c.committed.Load(); seq++ {
		if _, ok := c.recent[seq%recentBatches][string(key)]; ok {
			return true
		}
	}
	return false
}

// sharedSnapshot is a read-only transaction the committer opened when it
// had committed `through` batches, for ViewAhead calls to share.
type sharedSnapshot struct {
	txn     *badger.Txn
	through uint64
	refs    int  // ViewAhead calls reading it (committer.snapMu)
	retired bool // replaced: discarded once refs is zero
}

// publish makes n's shared snapshot, opened at the last landed commit,
// the one ViewAhead reads. Committer goroutine only.
func (c *committer) publish(n *next) {
	sh := &sharedSnapshot{through: c.committed.Load(), txn: n.shared}
	n.shared = nil
	c.snapMu.Lock()
	old := c.snap
	c.snap = sh
	c.snapMu.Unlock()
	c.retire(old)
}

// retire discards sh once nobody reads it.
func (c *committer) retire(sh *sharedSnapshot) {
	if sh == nil {
		return
	}
	c.snapMu.Lock()
	sh.retired = true
	done := sh.refs == 0
	c.snapMu.Unlock()
	if done {
		sh.txn.Discard()
	}
}

// acquire returns the shared snapshot to read (nil when there is none, or
// no committer), to be released.
func (c *committer) acquire() *sharedSnapshot {
	if c == nil {
		return nil
	}
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	if c.snap != nil {
		c.snap.refs++
	}
	return c.snap
}

func (c *committer) release(sh *sharedSnapshot) {
	c.snapMu.Lock()
	sh.refs--
	done := sh.retired && sh.refs == 0
	c.snapMu.Unlock()
	if done {
		sh.txn.Discard()
	}
}

// ReadAheadCurrent reports whether the snapshot ViewAhead shares holds every
// batch launched so far. A batch's callers are answered as it syncs, before
// the committer hears of its landing and shares a snapshot with it (see
// launch), so a caller that prepares right after its own write may prepare
// on a snapshot without it, and its write transaction evaluates again.
// Tests that count prepared evaluations wait for it.
func (d *DB) ReadAheadCurrent() bool {
	c := d.committer
	if c == nil {
		return true
	}
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	return c.snap == nil || c.snap.through == c.launched.Load() // none shared: ViewAhead opens its own
}
