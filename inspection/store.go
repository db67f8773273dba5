package inspection

import (
	"context"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/inspection/scoring"
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

// ReadTx reads a consistent snapshot.
type ReadTx interface {
	Declaration(id string) (DeclarationRecord, error)
	Decision(id string) (Decision, error)
	Assignment(id string) (Assignment, error)
	// OpenAssignments lists an agency's open assignments in the order they
	// were created, at most limit, starting after the cursor (empty for the
	// start); next is empty when there are no more.
	OpenAssignments(agency, after string, limit int) (list []Assignment, next string, err error)
	// Events returns a subject's history ordered by At, then ID.
	Events(s Subject) ([]Event, error)
	Event(id string) (Event, error)
	// ImporterEvents returns the results of an importer's lots across all
	// goods (the importer's own compliance history), ordered by At, then ID.
	ImporterEvents(taxCode string) ([]Event, error)
	GoodsState(k identity.Key) (GoodsState, error)
	Manufacturer(k identity.Key) (reference.Manufacturer, error)
	Importer(taxCode string) (reference.Importer, error)
	Agency(id string) (reference.Agency, error)
	Agencies() ([]reference.Agency, error)
	// Policy returns a stored policy document by version.
	Policy(version string) ([]byte, error)
	// ActivePolicy names the policy version in force.
	ActivePolicy() (ActivePolicy, error)
	// APIKey returns a stored API key by its (public) key ID.
	APIKey(id string) (access.APIKey, error)
	// APIKeys lists every stored key, oldest first (then by ID).
	APIKeys() ([]access.APIKey, error)
	// QuotaCounter returns a scope's counter in a period.
	QuotaCounter(period, scope string) (quota.Counter, error)
	// QuotaCounters lists every scope's counter in a period.
	QuotaCounters(period string) ([]quota.Counter, error)
	QuotaPeriod(period string) (quota.Period, error)
	QuotaPeriods() ([]quota.Period, error)
	// QuotaDraws lists the decision IDs of a scope's reduced lots in a
	// period, in the order they became eligible (index 0 is eligible 1).
	QuotaDraws(period, scope string) ([]string, error)
	// RiskRecord returns a subject's stored risk counts.
	RiskRecord(s risk.Subject) (scoring.Record, error)
	// RiskRecords lists every subject of a kind.
	RiskRecords(kind string) ([]scoring.Record, error)
	// RiskPrior returns a group's fitted prior.
	RiskPrior(group string) (risk.Prior, error)
	// Overrides lists a decision's overrides in the order they were made.
	Overrides(decisionID string) ([]Override, error)

	// The audit chain and the records it covers, for verification.
	audit.Reader
}

// Tx is a read-write transaction.
type Tx interface {
	ReadTx
	PutDeclaration(DeclarationRecord) error
	PutDecision(Decision) error
	// PutAssignment writes a and keeps the agency's open-assignment index
	// in step with a.Status.
	PutAssignment(a Assignment) error
	// AddEvent appends e to its subject's history (keyed by At and ID),
	// indexes it by ID and, for a result, in its importer's history. An ID
	// already recorded is a CodeConflict.
	AddEvent(e Event) error
	PutGoodsState(GoodsState) error
	PutAgency(reference.Agency) error
	PutImporter(reference.Importer) error
	PutManufacturer(reference.Manufacturer) error
	PutPolicy(version string, doc []byte) error
	// PutActivePolicy puts a stored version in force.
	PutActivePolicy(ActivePolicy) error
	// PutAPIKey writes a key record, new or updated (revocation).
	PutAPIKey(access.APIKey) error
	PutQuotaCounter(quota.Counter) error
	PutQuotaPeriod(quota.Period) error
	// PutQuotaDraw records that the eligible-th reduced lot of a scope in a
	// period was decided by decisionID.
	PutQuotaDraw(period, scope string, eligible int64, decisionID string) error
	PutRiskRecord(scoring.Record) error
	PutRiskPrior(risk.Prior) error
	// PutOverride appends a decision's override; o.N must be one more than
	// the overrides it already has.
	PutOverride(o Override) error
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
