package inspection

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/feed"
)

// The one write path. Every use case that changes state hands the write
// path the acting principal, the kind of change and a function; the write
// path runs the function in one transaction and, in that same transaction,
// runs the registered hooks and appends the audit entry covering every
// record the transaction wrote, then tells the audit observer of the new
// head once the commit is durable.
//
// Skipping it is not a matter of convention. Use cases hold no Store, only
// the write path (and a read-only View); the store's Tx notes every record
// written at its lowest write, whatever the method, and refuses to commit
// a transaction whose records no audit entry covers exactly (see the
// store's records.go). So a new Put method is audited without a wrapper,
// and a write that reaches the store without the write path fails.

// Change is what a use case's transaction changes, as the hooks and the
// audit entry see it: who, what kind, when, and the IDs it concerns.
type Change struct {
	By       access.Principal
	Kind     audit.Kind
	At       time.Time
	Subjects []string
	// Events are the outbox events the change emitted (outbox.go), in
	// the order they happened; the outbox hook numbers and writes them.
	Events []feed.Event
	// emitting: an outbox hook runs, so events are worth building.
	emitting bool
	// ledger are the change's increments to the effectiveness ledger
	// (ledger.go), folded in before the hooks run.
	ledger ledgerDeltas
}

// emit adds an outbox event to the change, when an outbox records them.
func (c *Change) emit(e feed.Event) {
	if c.emitting {
		c.Events = append(c.Events, e)
	}
}

// Hook runs inside the transaction of every change, after the use case's
// writes and before the audit entry, so what it writes commits with the
// change and is covered by the same entry (the NSW outbox is the first).
// It runs again whenever the transaction does.
type Hook interface {
	InTx(tx Tx, c Change) error
}

// CommitHook is a Hook that also hears, after the commit is durable, of
// each change it ran in (the outbox wakes its readers and delivery).
type CommitHook interface {
	Hook
	Committed(c Change)
}

// AuditedTx is what the write path needs of a store's transaction beyond
// Tx: the records it wrote since its last entry, and the append. Use cases
// see only Tx, which has neither; only the write path appends entries.
type AuditedTx interface {
	Written() []audit.RecordDigest
	PutAuditEntry(audit.Entry) error
}

// writePath is the helper; Service and Access each hold one over the same
// store.
type writePath struct {
	store    Store
	observer audit.Observer
	hooks    []Hook
	// emits: an outbox is among the hooks, so changes build their events.
	emits bool
}

// newWritePath is the write path over store with its hooks.
func newWritePath(store Store, observer audit.Observer, hooks []Hook) writePath {
	w := writePath{store: store, observer: observer, hooks: hooks}
	for _, h := range hooks {
		if _, ok := h.(*Outbox); ok {
			w.emits = true
		}
	}
	return w
}

// write runs fn as by's change of kind at at. fn adds the subjects of the
// audit entry to c ("declaration:<id>", …), and may name a more precise
// kind. A transaction that wrote nothing (a replay of something already
// done) appends no entry and runs no hook: nothing changed.
func (w *writePath) write(ctx context.Context, by access.Principal, kind audit.Kind, at time.Time, fn func(tx Tx, c *Change) error) error {
	if by.Name == "" {
		return errors.New("inspection: a change needs the acting principal")
	}
	var (
		head audit.Head
		done Change
	)
	err := w.store.Update(ctx, func(tx Tx) error {
		head, done = audit.Head{}, Change{}
		atx, ok := tx.(AuditedTx)
		if !ok {
			return errors.New("inspection: the store's transactions cannot be audited")
		}
		c := Change{By: by, Kind: kind, At: at, emitting: w.emits}
		if err := fn(tx, &c); err != nil || len(atx.Written()) == 0 {
			return err
		}
		// The ledger is not a pluggable hook: its tallies are a fold of
		// the records every store holds, so no wiring may leave them out.
		if err := applyLedger(tx, c.ledger); err != nil {
			return fmt.Errorf("%s ledger: %w", kind, err)
		}
		var err error
		for _, h := range w.hooks {
			if err := h.InTx(tx, c); err != nil {
				return fmt.Errorf("%s hook: %w", kind, err)
			}
		}
		head, err = appendEntry(tx, atx, c)
		done = c
		return err
	})
	if err == nil && head.Seq > 0 {
		if w.observer != nil {
			w.observer.AuditCommitted(head)
		}
		for _, h := range w.hooks {
			if ch, ok := h.(CommitHook); ok {
				ch.Committed(done)
			}
		}
	}
	return err
}

// read is a read use case: by must be allowed action a, and fn reads one
// snapshot.
func read[T any](ctx context.Context, r Reader, by access.Principal, a access.Action, fn func(ReadTx) (T, error)) (T, error) {
	var out T
	if err := by.Require(a); err != nil {
		return out, err
	}
	err := r.View(ctx, func(tx ReadTx) (err error) {
		out, err = fn(tx)
		return err
	})
	return out, err
}

// appendEntry writes the transaction's audit entry: it reads the head
// (under group commit every Update runs in one goroutine, so this never
// conflicts and the sequence is commit order), takes the records the
// store noted and links the entry to the head.
func appendEntry(tx audit.Reader, atx AuditedTx, c Change) (audit.Head, error) {
	head, err := tx.AuditHead()
	switch {
	case errors.Is(err, fault.ErrNotFound):
		head = audit.Head{}
	case err != nil:
		return audit.Head{}, fmt.Errorf("audit head: %w", err)
	}
	var prev [sha256.Size]byte
	if head.Seq > 0 {
		var ok bool
		if prev, ok = audit.DecodeHash(head.Hash); !ok {
			return audit.Head{}, fmt.Errorf("audit head %d: hash %q is not 64 hex digits", head.Seq, head.Hash)
		}
	}
	e := audit.Entry{Seq: head.Seq + 1, Prev: hex.EncodeToString(prev[:]), At: c.At, Actor: c.By.Name, Key: c.By.Key, Kind: c.Kind,
		Subjects: slices.Clone(c.Subjects), Records: atx.Written()}
	sum, err := audit.Hash(prev, e)
	if err != nil {
		return audit.Head{}, fmt.Errorf("audit entry %d: %w", e.Seq, err)
	}
	e.Hash = hex.EncodeToString(sum[:])
	if err := atx.PutAuditEntry(e); err != nil {
		return audit.Head{}, err
	}
	return audit.Head{Seq: e.Seq, Hash: e.Hash}, nil
}
