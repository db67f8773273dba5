package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/feed"
)

// The outbox (0x10 by sequence, 0x20 its head), webhook subscriptions
// (0x21, audited records), and delivery's own bookkeeping (0x22 state,
// 0x23 dead letters). The sequence is assigned here, inside the commit:
// under group commit every Update runs in one goroutine, so reading the
// head never conflicts and key order is commit order; with DirectCommit
// two writers that read the same head conflict and one runs again. So
// the sequence has no gap and no reorder either way.

const outboxKeySize = 1 + 8

func outboxKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{byte(prefixOutbox)}, seq)
}

func outboxHeadKey() []byte { return []byte{byte(prefixOutboxHead)} }

// storedEvent keeps what the event's JSON leaves out for readers: the
// agencies that may read it.
type storedEvent struct {
	feed.Event
	Agencies []string `json:"agencies,omitempty"`
}

func (t *readTx) OutboxHead() (feed.Head, error) {
	var h feed.Head
	err := t.load(prefixOutboxHead, outboxHeadKey(), "outbox head", &h)
	if errors.Is(err, fault.ErrNotFound) {
		return feed.Head{}, nil
	}
	return h, err
}

// AppendOutbox numbers events after the head, in order, and writes them
// with the new head.
func (t *writeTx) AppendOutbox(events []feed.Event) error {
	if len(events) == 0 {
		return nil
	}
	h, err := t.OutboxHead()
	if err != nil {
		return err
	}
	for i := range events {
		h.Seq++
		events[i].Seq = h.Seq
		se := storedEvent{Event: events[i], Agencies: events[i].Agencies}
		if err := t.putDerived(prefixOutbox, outboxKey(h.Seq), "outbox event", se); err != nil {
			return err
		}
	}
	return t.putDerived(prefixOutboxHead, outboxHeadKey(), "outbox head", h)
}

// OutboxEvents calls fn with every event after after, in sequence order,
// until fn says no more. A read-side scan: inside an Update badger would
// copy the batch's pending writes for the iterator.
func (t *readTx) OutboxEvents(after uint64, fn func(feed.Event) (bool, error)) error {
	if t.done {
		return errTxDone
	}
	if err := t.bareScan(); err != nil {
		return err
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{byte(prefixOutbox)}
	opts.PrefetchSize = 64
	it := t.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(outboxKey(after + 1)); it.Valid(); it.Next() {
		item := it.Item()
		if len(item.Key()) != outboxKeySize {
			return fmt.Errorf("store: outbox key %x is %d bytes, want %d", item.Key(), len(item.Key()), outboxKeySize)
		}
		var se storedEvent
		if err := item.Value(func(val []byte) error { return decode(prefixOutbox, val, &se) }); err != nil {
			return fmt.Errorf("store: outbox event %d: %w", binary.BigEndian.Uint64(item.Key()[1:]), err)
		}
		e := se.Event
		e.Agencies = se.Agencies
		more, err := fn(e)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// CompactOutbox removes the events at or below upTo (never past the head)
// and moves the horizon there; it returns how many it removed.
func (t *writeTx) CompactOutbox(upTo uint64) (int, error) {
	h, err := t.OutboxHead()
	if err != nil {
		return 0, err
	}
	upTo = min(upTo, h.Seq)
	if upTo <= h.Compacted {
		return 0, nil
	}
	n := 0
	for seq := h.Compacted + 1; seq <= upTo; seq++ {
		if err := t.delete(outboxKey(seq), "outbox event"); err != nil {
			return n, err
		}
		n++
	}
	h.Compacted = upTo
	return n, t.putDerived(prefixOutboxHead, outboxHeadKey(), "outbox head", h)
}

func (t *readTx) Subscription(id string) (feed.Subscription, error) {
	return loadID(t, prefixWebhook, id, func(s *feed.Subscription) string { return s.ID })
}

// Subscriptions lists every subscription, enabled or not, in key order.
func (t *readTx) Subscriptions() ([]feed.Subscription, error) {
	var out []feed.Subscription
	err := t.iterate([]byte{byte(prefixWebhook)}, func(_, val []byte) error {
		var s feed.Subscription
		if err := decode(prefixWebhook, val, &s); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

func (t *writeTx) PutSubscription(s feed.Subscription) error {
	return t.putID(prefixWebhook, s.ID, s)
}

// EventsAfter is feed.Source's read: at most limit events after after.
func (d *DB) EventsAfter(ctx context.Context, after uint64, limit int) ([]feed.Event, error) {
	var out []feed.Event
	err := d.View(ctx, func(tx inspection.ReadTx) error {
		out = out[:0]
		return tx.(*readTx).OutboxEvents(after, func(e feed.Event) (bool, error) {
			out = append(out, e)
			return len(out) < limit, nil
		})
	})
	return out, err
}

// OutboxHead is feed.Source's head: the last sequence written.
func (d *DB) OutboxHead(ctx context.Context) (uint64, error) {
	var h feed.Head
	err := d.View(ctx, func(tx inspection.ReadTx) (err error) {
		h, err = tx.(*readTx).OutboxHead()
		return err
	})
	return h.Seq, err
}

func deliveryKey(sub string) []byte { return idKey(prefixDelivery, sub) }

func deadLetterKey(sub string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(idKey(prefixDeadLetter, sub), seq)
}

// DeliveryState is a subscription's saved delivery progress (zero if none).
func (d *DB) DeliveryState(ctx context.Context, sub string) (feed.State, error) {
	var s feed.State
	err := d.View(ctx, func(tx inspection.ReadTx) error {
		s = feed.State{}
		err := tx.(*readTx).load(prefixDelivery, deliveryKey(sub), "delivery state", &s)
		if errors.Is(err, fault.ErrNotFound) {
			return nil
		}
		return err
	})
	return s, err
}

// SaveDeliveryState saves progress and new dead letters in one durable
// commit. Not a record: delivery's bookkeeping, no audit entry.
func (d *DB) SaveDeliveryState(ctx context.Context, sub string, s feed.State, dead []feed.DeadLetter) error {
	return d.Update(ctx, func(tx inspection.Tx) error {
		w := tx.(*writeTx)
		for _, dl := range dead {
			if err := w.putDerived(prefixDeadLetter, deadLetterKey(sub, dl.Seq), "dead letter", dl); err != nil {
				return err
			}
		}
		return w.putDerived(prefixDelivery, deliveryKey(sub), "delivery state", s)
	})
}

// DeadLetters lists a subscription's dead letters after a sequence.
func (d *DB) DeadLetters(ctx context.Context, sub string, after uint64, limit int) ([]feed.DeadLetter, error) {
	var out []feed.DeadLetter
	err := d.View(ctx, func(tx inspection.ReadTx) error {
		out = out[:0]
		t := tx.(*readTx)
		opts := badger.DefaultIteratorOptions
		opts.Prefix = idKey(prefixDeadLetter, sub)
		it := t.txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(deadLetterKey(sub, after+1)); it.Valid() && len(out) < limit; it.Next() {
			var dl feed.DeadLetter
			if err := it.Item().Value(func(val []byte) error { return decode(prefixDeadLetter, val, &dl) }); err != nil {
				return fmt.Errorf("store: dead letter: %w", err)
			}
			out = append(out, dl)
		}
		return nil
	})
	return out, err
}
