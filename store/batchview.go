package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// batchView serves prefix scans inside a group-commit batch. badger's
// Txn.NewIterator on a read-write transaction copies and sorts every
// pending write of the transaction, so with hundreds of functions in one
// batch each scan cost as much as the whole batch had written: decisions
// became quadratic in the batch size. Instead a scan reads a read-only
// snapshot taken together with the batch transaction (with one writer,
// both see the same commits) and merges in the batch's own writes, which
// are indexed by the prefix widths the store scans.
//
// It also remembers the point reads of the batch. The committer is the only
// writer, so a key read once from the batch's snapshot holds the same value
// for the rest of the batch unless the batch writes it, and the batch's own
// writes are looked up first: the decisions of a batch share most of their
// reads (input versions, quota counters, the audit head), and each read
// badger serves walks a memtable skiplist and the levels, which the floor
// of bare writes never does. A batch that is rebuilt gets a new view.
//
// While the previous batch is still syncing (committer.go), the next one
// runs on a transaction and snapshot opened before that commit began, so
// neither holds the previous batch's writes: its view overlays them, below
// the batch's own writes and above the snapshot. A scan the view cannot
// serve (a prefix width it does not index) would read the bare
// transaction and miss them, so over an overlay it fails the batch with
// errSettleFirst and the committer runs it again once the previous batch
// has landed.
type batchView struct {
	snap     *badger.Txn
	writes   map[string]pendingWrite
	byPrefix map[string][]string    // scan prefix → keys written under it
	reads    map[string]pendingRead // point reads from the snapshot
	overlay  *batchView             // the batch committing underneath, or nil
	// unsettled is set when a function asked for what the overlay cannot
	// serve: the batch must run again without one.
	unsettled bool
}

// errSettleFirst is what a read the overlay cannot serve returns.
var errSettleFirst = errors.New("store: the batch must wait for the previous commit")

type pendingRead struct {
	val   []byte
	found bool
}

type pendingWrite struct {
	val     []byte
	deleted bool
}

// scanWidths are the prefix lengths the store scans: a kind byte (agencies,
// periods); kind + one hashed part (an importer's history, a period's
// counters); kind + subject kind + subject key (a history); kind + two
// hashed parts (a scope's draws).
var scanWidths = [...]int{1, 1 + hashSize, 2 + hashSize, 1 + 2*hashSize}

// newBatchView is a batch's view over the snapshot snap, with overlay the
// writes of the batch committing underneath it (nil when there is none).
func newBatchView(snap *badger.Txn, overlay *batchView) *batchView {
	// Sized like the batch before, which the next one usually resembles:
	// growing the maps key by key cost the committer ~7% of its time.
	var writes, reads, prefixes int
	if overlay != nil {
		writes, reads, prefixes = len(overlay.writes), len(overlay.reads), len(overlay.byPrefix)
	}
	return &batchView{snap: snap, writes: make(map[string]pendingWrite, writes), byPrefix: make(map[string][]string, prefixes),
		reads: make(map[string]pendingRead, reads), overlay: overlay}
}

// settleFirst reports whether a read that only the bare transaction can
// serve must wait: it marks the batch to run again without the overlay.
func (b *batchView) settleFirst() bool {
	if b.overlay == nil {
		return false
	}
	b.unsettled = true
	return true
}

func (b *batchView) discard() { b.snap.Discard() }

func (b *batchView) record(key, val []byte, deleted bool) {
	k := string(key)
	if _, seen := b.writes[k]; !seen {
		for _, w := range scanWidths {
			if len(k) >= w {
				b.byPrefix[k[:w]] = append(b.byPrefix[k[:w]], k)
			}
		}
	}
	// Not copied: badger's Txn.Set keeps val as well, so no caller may
	// change it after the write (the store encodes every value afresh).
	b.writes[k] = pendingWrite{val: val, deleted: deleted}
}

// size is the keys the batch writes and their key and value bytes.
func (b *batchView) size() (entries, bytes int64) {
	for k, w := range b.writes {
		entries++
		bytes += int64(len(k) + len(w.val))
	}
	return entries, bytes
}

// lookup answers a point read from the batch's own writes, the overlay's,
// or its earlier reads: found says whether the key holds a value, ok whether the view
// knew. The value is a copy the caller may keep.
func (b *batchView) lookup(key []byte) (val []byte, found, ok bool) {
	if w, seen := b.writes[string(key)]; seen {
		return bytes.Clone(w.val), !w.deleted, true
	}
	if b.overlay != nil {
		if w, seen := b.overlay.writes[string(key)]; seen {
			return bytes.Clone(w.val), !w.deleted, true
		}
	}
	if r, seen := b.reads[string(key)]; seen {
		return bytes.Clone(r.val), r.found, true
	}
	return nil, false, false
}

// remember keeps a point read of the snapshot for the rest of the batch.
func (b *batchView) remember(key, val []byte, found bool) {
	b.reads[string(key)] = pendingRead{val: bytes.Clone(val), found: found}
}

// covers reports whether scans of pfx can be served here.
func (b *batchView) covers(pfx []byte) bool {
	return slices.Contains(scanWidths[:], len(pfx))
}

// scan calls fn for every live key under pfx in key order, the batch's
// writes taking precedence over the overlay's, and both over the snapshot.
func (b *batchView) scan(pfx []byte, fn func(key, val []byte) error) error {
	mine := slices.Clone(b.byPrefix[string(pfx)])
	if b.overlay != nil {
		mine = append(mine, b.overlay.byPrefix[string(pfx)]...)
	}
	slices.Sort(mine)
	mine = slices.Compact(mine)
	opts := badger.DefaultIteratorOptions
	opts.Prefix = pfx
	it := b.snap.NewIterator(opts)
	defer it.Close()
	emit := func(k string) error {
		w, seen := b.writes[k]
		if !seen {
			w = b.overlay.writes[k] // only the overlay indexes k
		}
		if w.deleted {
			return nil
		}
		return fn([]byte(k), w.val)
	}
	i := 0
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		key := string(item.Key())
		for ; i < len(mine) && mine[i] < key; i++ {
			if err := emit(mine[i]); err != nil {
				return err
			}
		}
		if i < len(mine) && mine[i] == key {
			if err := emit(mine[i]); err != nil {
				return err
			}
			i++
			continue
		}
		val, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("store: read %s: %w", prefix(pfx[0]), err)
		}
		if err := fn([]byte(key), val); err != nil {
			return err
		}
	}
	for ; i < len(mine); i++ {
		if err := emit(mine[i]); err != nil {
			return err
		}
	}
	return nil
}
