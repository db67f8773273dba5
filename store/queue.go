package store

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
)

// The agencies' queues, read from their indexes: by deadline (0x30) or by
// creation (0x04) per agency, and every active assignment by deadline
// (0x31) for the escalation job. A page reads the index entries from its
// cursor (bounded below and above by the due range when sorting by
// deadline) and the assignments they name; filters that the index does
// not order by (status, mode, check) are checked on each assignment read.

const queueCursorSize = 1 + hashSize + timeSize + hashSize

// Queue pages an agency's active assignments.
func (t *readTx) Queue(q inspection.QueueQuery) ([]inspection.Assignment, string, error) {
	var pfx, start, stop []byte
	switch q.Sort {
	case "created":
		pfx = openIndexPrefix(q.Agency)
		start = pfx
	default:
		pfx = idKey(prefixQueueDue, q.Agency)
		start = pfx
		if !q.DueAfter.IsZero() {
			k, err := appendTime(bytes.Clone(pfx), "due_after", q.DueAfter)
			if err != nil {
				return nil, "", inspection.Invalid("due_after", "%v", err)
			}
			start = k
		}
		upper := q.DueBefore
		if q.Overdue && (upper.IsZero() || q.Now.Before(upper)) {
			upper = q.Now
		}
		if !upper.IsZero() {
			k, err := appendTime(bytes.Clone(pfx), "due_before", upper)
			if err != nil {
				return nil, "", inspection.Invalid("due_before", "%v", err)
			}
			stop = k
		}
	}
	var cursor []byte
	if q.After != "" {
		c, err := hex.DecodeString(q.After)
		if err != nil || len(c) != queueCursorSize || !bytes.HasPrefix(c, pfx) {
			return nil, "", inspection.Invalid("after", "%q is not a cursor of this queue", q.After)
		}
		if bytes.Compare(c, start) > 0 {
			start = c
		}
		cursor = c
	}
	return t.pageIndex(pfx, start, stop, cursor, q.Limit, q.Matches)
}

// DueBefore lists active assignments due before due, earliest first.
func (t *readTx) DueBefore(due time.Time, after string, limit int) ([]inspection.Assignment, string, error) {
	pfx := []byte{byte(prefixDueIndex)}
	stop, err := appendTime(bytes.Clone(pfx), "due", due)
	if err != nil {
		return nil, "", err
	}
	start := pfx
	var cursor []byte
	if after != "" {
		c, err := hex.DecodeString(after)
		if err != nil || len(c) != 1+timeSize+hashSize || !bytes.HasPrefix(c, pfx) {
			return nil, "", inspection.Invalid("after", "%q is not a cursor of the due index", after)
		}
		start, cursor = c, c
	}
	return t.pageIndex(pfx, start, stop, cursor, limit, func(inspection.Assignment) bool { return true })
}

// pageIndex walks index entries under pfx from start (skipping cursor)
// up to stop (exclusive, nil for none), reading each named assignment and
// keeping those that match, until limit are kept. The next cursor is the
// last entry kept, empty when the walk ended.
func (t *readTx) pageIndex(pfx, start, stop, cursor []byte, limit int, match func(inspection.Assignment) bool) ([]inspection.Assignment, string, error) {
	var (
		list []inspection.Assignment
		last []byte
		next string
	)
	err := t.walkIndex(pfx, start, stop, limit+1, func(key []byte, load func() (inspection.Assignment, error)) (bool, error) {
		if cursor != nil && bytes.Equal(key, cursor) {
			return true, nil
		}
		if len(list) == limit {
			next = hex.EncodeToString(last)
			return false, nil
		}
		a, err := load()
		if err != nil {
			return false, err
		}
		if !a.Status.Active() {
			return false, fmt.Errorf("store: %s out of step with assignment %q (status %q)", prefix(pfx[0]), a.ID, a.Status)
		}
		if match(a) {
			list = append(list, a)
			last = append(last[:0], key...)
		}
		return true, nil
	})
	if err != nil {
		return nil, "", err
	}
	return list, next, nil
}

// walkIndex calls fn with each index entry's key under pfx from start up
// to stop (exclusive, nil for none), and a loader of the assignment the
// entry names (a read only when fn asks), until fn says no more. Every
// entry and load counts toward the transaction's keys read.
func (t *readTx) walkIndex(pfx, start, stop []byte, prefetch int, fn func(key []byte, load func() (inspection.Assignment, error)) (bool, error)) error {
	if t.done {
		return errTxDone
	}
	if err := t.bareScan(); err != nil {
		return err
	}
	if start == nil {
		start = pfx
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = pfx
	if prefetch > 0 {
		opts.PrefetchSize = min(prefetch, opts.PrefetchSize)
	}
	it := t.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(start); it.Valid(); it.Next() {
		t.keysRead++
		item := it.Item()
		key := item.Key()
		if stop != nil && bytes.Compare(key, stop) >= 0 {
			return nil
		}
		load := func() (inspection.Assignment, error) {
			val, err := item.ValueCopy(nil)
			if err != nil {
				return inspection.Assignment{}, fmt.Errorf("store: read %s: %w", prefix(pfx[0]), err)
			}
			id, err := unwrap(prefix(pfx[0]), val)
			if err != nil {
				return inspection.Assignment{}, fmt.Errorf("store: %w", err)
			}
			a, err := t.Assignment(string(id))
			if errors.Is(err, fault.ErrNotFound) {
				return a, fmt.Errorf("store: %s names missing assignment %q", prefix(pfx[0]), id)
			}
			return a, err
		}
		more, err := fn(key, load)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// EachActive calls fn with every active assignment of an agency, by
// deadline.
func (t *readTx) EachActive(agency string, fn func(inspection.Assignment) error) error {
	return t.eachIndexed(idKey(prefixQueueDue, agency), nil, nil, fn)
}

// EachResult calls fn with the assignments whose result an agency
// recorded in [from, to), in the order recorded.
func (t *readTx) EachResult(agency string, from, to time.Time) func(fn func(inspection.Assignment) error) error {
	return func(fn func(inspection.Assignment) error) error {
		pfx := idKey(prefixClosedIndex, agency)
		start, err := appendTime(bytes.Clone(pfx), "from", from)
		if err != nil {
			return err
		}
		stop, err := appendTime(bytes.Clone(pfx), "to", to)
		if err != nil {
			return err
		}
		return t.eachIndexed(pfx, start, stop, fn)
	}
}

// eachIndexed calls fn with the assignment each index entry under pfx
// names, from start (nil: the beginning) up to stop (nil: the end).
func (t *readTx) eachIndexed(pfx, start, stop []byte, fn func(inspection.Assignment) error) error {
	return t.walkIndex(pfx, start, stop, 0, func(_ []byte, load func() (inspection.Assignment, error)) (bool, error) {
		a, err := load()
		if err == nil {
			err = fn(a)
		}
		return err == nil, err
	})
}
