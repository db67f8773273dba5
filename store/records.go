package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/ktcn/ktcn/inspection/audit"
)

// The audit at the lowest write: every key a transaction writes is one of
// three classes, told by its prefix alone.
//
//   - a record (decision, assignment, event, …): written only with its
//     record kind and ID, and noted with the SHA-256 of its stored body;
//   - derived data (indexes, input versions, risk counts and priors, which
//     are folds of audited events): written freely;
//   - the audit chain itself (entries and head), written by PutAuditEntry.
//
// A record noted since the transaction's last audit entry must be covered
// by the next one, exactly (PutAuditEntry checks the entry's records
// against the notes), and Update refuses to commit a transaction that
// wrote a record no entry covers (ErrUnaudited). So a use case cannot skip
// the audit by forgetting a wrapper, and a new Put method cannot either:
// it can only write through putRecord (noted) or setDerived, which refuses
// a record prefix.

// ErrUnaudited is what Update returns for a transaction that wrote a
// record and appended no audit entry covering it: a write that bypassed
// inspection's write path. Nothing of it is committed.
var ErrUnaudited = errors.New("store: records written without an audit entry covering them")

// recordKind is the audited record kind stored under p, if p holds records.
func (p prefix) recordKind() (audit.RecordKind, bool) {
	switch p {
	case prefixDeclaration:
		return audit.RecordDeclaration, true
	case prefixDecision:
		return audit.RecordDecision, true
	case prefixAssignment:
		return audit.RecordAssignment, true
	case prefixEvent:
		return audit.RecordEvent, true
	case prefixGoodsState:
		return audit.RecordGoodsState, true
	case prefixManufacture:
		return audit.RecordManufacturer, true
	case prefixImporter:
		return audit.RecordImporter, true
	case prefixAgency:
		return audit.RecordAgency, true
	case prefixPolicy:
		return audit.RecordPolicy, true
	case prefixAPIKey:
		return audit.RecordAPIKey, true
	case prefixQuota:
		return audit.RecordQuotaCounter, true
	case prefixCapacity:
		return audit.RecordCapacityCounter, true
	case prefixQuotaPeriod:
		return audit.RecordQuotaPeriod, true
	case prefixOverride:
		return audit.RecordOverride, true
	case prefixGoodsLink:
		return audit.RecordGoodsLink, true
	case prefixWebhook:
		return audit.RecordWebhook, true
	case prefixPolicyVer:
		return audit.RecordPolicyVersion, true
	}
	return "", false
}

// derived reports prefixes whose keys a transaction may write without an
// audit entry: indexes over records, input versions, risk counts and
// priors (time-decayed folds of the audited events, refit by a job), and
// the pointer to the policy in force (an index over the audited policy
// records, written with the entry that stores its policy).
func (p prefix) derived() bool {
	switch p {
	case prefixOpenIndex, prefixEventByID, prefixImporterLog, prefixQuotaDraw, prefixRisk, prefixRiskPrior, prefixInputVersion,
		prefixActivePolicy, prefixImporterSeen, prefixIdentity, prefixResemblance, prefixLinkedInto,
		// The outbox is a projection of the records its transaction wrote
		// (written only by inspection's outbox hook, inside the write path,
		// and compacted after delivery); delivery state and dead letters
		// are the delivery's own bookkeeping, saved as it goes.
		prefixOutbox, prefixOutboxHead, prefixDelivery, prefixDeadLetter,
		// What a version in shadow would have decided: it decides nothing.
		prefixShadow,
		// The assignment queues' indexes, kept in step by putAssignment.
		prefixQueueDue, prefixDueIndex, prefixClosedIndex,
		// The decision search's indexes over decisions and overrides, and
		// the marker that they cover every decision.
		prefixDecisionByTime, prefixDecisionByImporter, prefixDecisionByDecl, prefixDecisionByHeading, prefixDecisionByAgency,
		prefixDecisionIndexed,
		// The effectiveness ledger: a fold of the decisions, overrides
		// and results, kept in their transactions by the write path.
		prefixLedger,
		// Backtest jobs and their changed lots: operational data of a
		// replay that changes nothing in the domain (it reads history and
		// writes only its own report), kept so a job outlives a restart.
		// Who started one is kept on the job's record; nothing is audited
		// because nothing the audit vouches for is decided or altered.
		prefixBacktestJob, prefixBacktestChange:
		return true
	}
	return false
}

// notes are the records a transaction wrote since its last audit entry,
// in the order first written, each with the digest of its last write.
type notes struct {
	list []audit.RecordDigest
	at   map[recordRef]int
}

type recordRef struct {
	kind audit.RecordKind
	id   string
}

func (n *notes) add(kind audit.RecordKind, id, sum string) {
	r := recordRef{kind, id}
	if i, ok := n.at[r]; ok {
		n.list[i].SHA256 = sum // written twice: covered once, as it ends
		return
	}
	if n.at == nil {
		n.at = map[recordRef]int{}
	}
	n.at[r] = len(n.list)
	n.list = append(n.list, audit.RecordDigest{Kind: kind, ID: id, SHA256: sum})
}

func (n *notes) reset() { n.list, n.at = nil, nil }

// Written lists the records this transaction wrote since its last audit
// entry, each with the SHA-256 of its stored body (inspection's write
// path builds the entry from it).
func (t *writeTx) Written() []audit.RecordDigest { return slices.Clone(t.notes.list) }

// unaudited is the commit-time check: nil unless the transaction wrote a
// record that no audit entry covers.
func (t *writeTx) unaudited() error {
	if t.raw || len(t.notes.list) == 0 {
		return nil
	}
	r := t.notes.list[0]
	return fmt.Errorf("%w (%d, the first %s %q)", ErrUnaudited, len(t.notes.list), r.Kind, r.ID)
}

// putRecord encodes v and writes it as the record of its prefix's kind
// with ID id, noting it for the audit.
func (t *writeTx) putRecord(p prefix, key []byte, id string, v any) error {
	val, err := encode(p, v)
	if err != nil {
		return fmt.Errorf("store: %s %q: %w", p, id, err)
	}
	return t.setRecord(p, key, id, val, "")
}

// setRecord writes val (version byte and body) as a record and notes it;
// sum is the body's hex SHA-256 when the caller has it, else it is
// computed here.
func (t *writeTx) setRecord(p prefix, key []byte, id string, val []byte, sum string) error {
	kind, ok := p.recordKind()
	if !ok || id == "" {
		return fmt.Errorf("store: write %s %q: not a record with an ID (a bug)", p, id)
	}
	if err := t.setF(key, val, func() string { return fmt.Sprintf("%s %q", p, id) }); err != nil {
		return err
	}
	if sum == "" {
		s := sha256.Sum256(val[1:])
		sum = hex.EncodeToString(s[:])
	}
	t.notes.add(kind, id, sum)
	return nil
}

// setDerived writes a key that is not a record; a record prefix here is a
// bug that would slip a record past the audit, so it is refused.
func (t *writeTx) setDerived(key, val []byte, whatF func() string) error {
	if p := prefix(key[0]); !p.derived() {
		return fmt.Errorf("store: write %s: %s keys are not derived data (a bug)", whatF(), p)
	}
	return t.setF(key, val, whatF)
}
