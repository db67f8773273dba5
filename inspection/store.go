package inspection

import (
	"context"

	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/risk"
)

// Reader reads consistent snapshots; every read use case holds only this.
type Reader interface {
	View(ctx context.Context, fn func(ReadTx) error) error
}

// Store is the storage inspection needs. Only the write path (write.go)
// calls Update. Update runs fn in one atomic,
// serializable transaction that is durable (synced) before Update returns
// nil; on a write conflict the store discards the attempt and runs fn
// again, so fn must have no effect outside the Tx. Missing records are
// reported with an error that errors.Is(err, ErrNotFound).
type Store interface {
	View(ctx context.Context, fn func(ReadTx) error) error
	Update(ctx context.Context, fn func(Tx) error) error
}

// ReadTx reads a consistent snapshot: the small readers each consumer
// declares beside it.
type ReadTx interface {
	LotReader
	HistoryReader
	ReferenceReader
	PolicyReader
	KeyReader
	QuotaReader
	RiskReader
	LinkReader
	OutboxReader
	SubscriptionReader
	ShadowReader
	AssignmentQueueReader
	WorkloadReader
	DecisionSearcher
	CapacityReader
	LedgerReader
	audit.Reader // the chain and the records it covers, for verification
}

// Tx is a read-write transaction: ReadTx and the small writers.
type Tx interface {
	ReadTx
	LotWriter
	HistoryWriter
	ReferenceWriter
	PolicyWriter
	KeyWriter
	QuotaWriter
	RiskWriter
	LinkWriter
	OutboxWriter
	SubscriptionWriter
	ShadowWriter
	CapacityWriter
	LedgerWriter
}

// InputVersioner is an optional capability of a ReadTx (the badger store
// has it): a counter per subject that the store bumps in the same
// transaction as every write that can change what deciding a lot reads
// about the subject. Subjects are named as risk subjects: the goods
// (risk.KindGoods, goods key in hex), its manufacturer and heading × origin
// (their keys in hex), the importer (tax code), and PriorsSubject for the
// fitted priors. Events bump their subject (and a result its importer), risk
// counts their subject, a manufacturer record the manufacturer, any prior
// PriorsSubject. Counters only grow.
//
// Decide uses it to prepare a declaration's decisions outside the single
// committer, on a snapshot, and to let the committer use them only when no
// input has moved since (see prepareDecision). A store without it gets
// every decision computed inside its write transaction.
type InputVersioner interface {
	InputVersion(s risk.Subject) (uint64, error)
}

// InputSubject is the version subject of a history subject: history kinds
// and risk kinds share their names, so it is also the subject's risk
// subject. The store bumps it and Decide reads it; both name it here.
func (s Subject) InputSubject() risk.Subject {
	return risk.Subject{Kind: string(s.Kind), ID: s.Key.String()}
}

// PriorsSubject names the one version counter every stored prior bumps
// (a function, not a variable: nothing may reassign it).
func PriorsSubject() risk.Subject { return risk.Subject{Kind: "risk_prior", ID: "*"} }

// Encoded is a record its store encoded ahead of the write transaction
// (RecordEncoder); its bytes are the store's business.
type Encoded interface {
	Size() int
}

// RecordEncoder is an optional capability of a Store (the badger store
// has it): encoding a lot's decision and assignment in the caller's
// goroutine, ahead of the transaction, so the single committer does not
// spend its serial time on it.
type RecordEncoder interface {
	EncodeDecision(Decision) (Encoded, error)
	EncodeAssignment(Assignment) (Encoded, error)
}

// EncodedWriter is an optional capability of a Tx: writing a record its
// store encoded ahead. Both write the records of a lot decided in this
// transaction: none exists yet under its IDs (they derive from the lot ID,
// and the declaration was not found), so the store need not look for a
// previous version to unindex.
type EncodedWriter interface {
	PutDecisionEncoded(d Decision, e Encoded) error
	PutAssignmentEncoded(a Assignment, e Encoded) error
}

// ReadAheadStore is an optional capability of a Store (the badger store
// has it): ViewAhead is View that also returns the point reads fn made,
// for a later Update to reuse (ReadReuser). Decide reads on its prepared
// snapshot what its write transaction will read again (the declaration,
// the input versions, the goods states), so the single committer need not
// walk badger's memtables and levels for them.
type ReadAheadStore interface {
	ViewAhead(ctx context.Context, fn func(ReadTx) error) (SnapshotReads, error)
}

// SnapshotReads are the point reads of a ViewAhead, opaque to callers.
// Len is how many keys were read.
type SnapshotReads interface {
	Len() int
}

// ReadReuser is an optional capability of a Tx: Reuse lets the
// transaction answer a point read from r where the store can prove nothing
// has written that key since r's snapshot, so every read still returns
// what it would have returned without r. A store that cannot prove it for
// a key (or for r at all) reads it as usual.
type ReadReuser interface {
	Reuse(r SnapshotReads)
}

// reuse has tx answer point reads from r where it can (ReadReuser); a
// nil r, or a tx that cannot, reads for itself.
func reuse(tx Tx, r SnapshotReads) {
	if rr, ok := tx.(ReadReuser); ok && r != nil {
		rr.Reuse(r)
	}
}
