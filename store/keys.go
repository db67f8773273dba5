package store

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/identity"
)

// prefix is the first byte of every key: the kind of record stored under it.
// The values are part of the on-disk format; never renumber them.
type prefix byte

const (
	prefixDeclaration  prefix = 0x01
	prefixDecision     prefix = 0x02
	prefixAssignment   prefix = 0x03
	prefixOpenIndex    prefix = 0x04
	prefixEvent        prefix = 0x05
	prefixEventByID    prefix = 0x06
	prefixGoodsState   prefix = 0x07
	prefixManufacture  prefix = 0x08
	prefixImporter     prefix = 0x09
	prefixAgency       prefix = 0x0A
	prefixPolicy       prefix = 0x0B
	prefixImporterLog  prefix = 0x0C // importer's results, by inspection date
	prefixAPIKey       prefix = 0x0D // API key by key ID (the secret only as a hash)
	prefixOutbox       prefix = 0x10 // outbox event by sequence (8 bytes, BE)
	prefixQuota        prefix = 0x11 // quota counter by period and scope
	prefixQuotaPeriod  prefix = 0x12 // quota period: key commitment, revealed key
	prefixQuotaDraw    prefix = 0x13 // a scope's reduced lots in eligible order
	prefixAuditEntry   prefix = 0x14 // audit entry by sequence (8 bytes, BE)
	prefixAuditHead    prefix = 0x15 // the audit head: last sequence and hash
	prefixOverride     prefix = 0x16 // a decision's overrides, in order
	prefixRisk         prefix = 0x17 // risk counts by subject kind and ID
	prefixRiskPrior    prefix = 0x18 // fitted risk prior by group
	prefixInputVersion prefix = 0x19 // decision-input version by subject (inputs.go)
	prefixActivePolicy prefix = 0x1A // the policy version in force
	prefixImporterSeen prefix = 0x1B // an importer has declared (derived from declarations)
	prefixIdentity     prefix = 0x1C // whether the store holds history under identity version 1
	prefixResemblance  prefix = 0x1D // goods by resemblance group (manufacturer, heading, origin)
	prefixGoodsLink    prefix = 0x1E // customs' link of one goods identity into another
	prefixLinkedInto   prefix = 0x1F // the goods linked into a goods (derived from 0x1E)
	prefixOutboxHead   prefix = 0x20 // the outbox's last sequence and compaction horizon
	prefixWebhook      prefix = 0x21 // webhook subscription by ID
	prefixDelivery     prefix = 0x22 // a subscription's delivery state
	prefixDeadLetter   prefix = 0x23 // a subscription's dead letters by sequence
	prefixPolicyVer    prefix = 0x24 // a policy version's record (document and lifecycle)
	prefixShadow       prefix = 0x25 // shadow outcomes by version, decision time and decision
	// The decision search's indexes (search.go): each entry's value is the
	// decision's summary, so filters are checked without the decision.
	prefixDecisionByTime     prefix = 0x26 // decisions by decided_at
	prefixDecisionByImporter prefix = 0x27 // an importer's decisions by decided_at
	prefixDecisionByDecl     prefix = 0x28 // a declaration's decisions by line
	prefixDecisionByHeading  prefix = 0x29 // an HS heading's decisions by decided_at
	prefixDecisionByAgency   prefix = 0x2A // decisions routed to an agency by decided_at
	prefixDecisionIndexed    prefix = 0x2B // the decision indexes cover every decision (backfill done)
	prefixQueueDue           prefix = 0x30 // an agency's active assignments by due time
	prefixDueIndex           prefix = 0x31 // every active assignment by due time (escalation)
	prefixClosedIndex        prefix = 0x32 // an agency's results by the time recorded (workload)
	prefixCapacity           prefix = 0x2C // capacity counter by working day, agency and check kind
	prefixLedger             prefix = 0x2D // effectiveness ledger tally by policy version and rule
	prefixBacktestJob        prefix = 0x2E // a backtest job by ID (backtests.go)
	prefixBacktestChange     prefix = 0x2F // a backtest job's changed lots by job ID and index
	prefixMeta               prefix = 0xFF
)

func (p prefix) String() string {
	switch p {
	case prefixDeclaration:
		return "declaration"
	case prefixDecision:
		return "decision"
	case prefixAssignment:
		return "assignment"
	case prefixOpenIndex:
		return "open-assignment index"
	case prefixEvent:
		return "event"
	case prefixEventByID:
		return "event-by-id index"
	case prefixGoodsState:
		return "goods state"
	case prefixManufacture:
		return "manufacturer"
	case prefixImporter:
		return "importer"
	case prefixAgency:
		return "agency"
	case prefixPolicy:
		return "policy"
	case prefixImporterLog:
		return "importer history index"
	case prefixAPIKey:
		return "API key"
	case prefixOutbox:
		return "outbox"
	case prefixQuota:
		return "quota counter"
	case prefixQuotaPeriod:
		return "quota period"
	case prefixQuotaDraw:
		return "quota draw index"
	case prefixAuditEntry:
		return "audit entry"
	case prefixAuditHead:
		return "audit head"
	case prefixOverride:
		return "override"
	case prefixRisk:
		return "risk counts"
	case prefixRiskPrior:
		return "risk prior"
	case prefixInputVersion:
		return "input version"
	case prefixActivePolicy:
		return "active policy"
	case prefixImporterSeen:
		return "importer seen"
	case prefixIdentity:
		return "identity version"
	case prefixResemblance:
		return "resemblance index"
	case prefixGoodsLink:
		return "goods link"
	case prefixLinkedInto:
		return "linked-into index"
	case prefixOutboxHead:
		return "outbox head"
	case prefixWebhook:
		return "webhook subscription"
	case prefixDelivery:
		return "delivery state"
	case prefixDeadLetter:
		return "dead letter"
	case prefixPolicyVer:
		return "policy version"
	case prefixShadow:
		return "shadow outcome"
	case prefixQueueDue:
		return "queue-by-due index"
	case prefixDueIndex:
		return "due index"
	case prefixClosedIndex:
		return "results-by-time index"
	case prefixDecisionByTime:
		return "decision time index"
	case prefixDecisionByImporter:
		return "decision importer index"
	case prefixDecisionByDecl:
		return "decision declaration index"
	case prefixDecisionByHeading:
		return "decision heading index"
	case prefixDecisionByAgency:
		return "decision agency index"
	case prefixDecisionIndexed:
		return "decision index marker"
	case prefixCapacity:
		return "capacity counter"
	case prefixLedger:
		return "ledger tally"
	case prefixBacktestJob:
		return "backtest job"
	case prefixBacktestChange:
		return "backtest change"
	case prefixMeta:
		return "meta"
	}
	return fmt.Sprintf("prefix 0x%02x", byte(p))
}

const (
	hashSize = identity.KeySize // width of every hashed key part
	timeSize = 8                // width of every time key part

	openIndexKeySize = 1 + hashSize + timeSize + hashSize
	eventKeySize     = 1 + 1 + hashSize + timeSize + hashSize
)

// h16 hashes an external string ID to a fixed-width key part. IDs come from
// outside (NSW, agencies, staff) in any length and alphabet; hashing keeps
// every key fixed-width so prefixes and seeks never need escaping. The full
// ID is kept in the record, and getters compare it to catch a collision.
func h16(s string) [hashSize]byte {
	sum := sha256.Sum256([]byte(s))
	var k [hashSize]byte
	copy(k[:], sum[:hashSize])
	return k
}

// idKey is p | h16(id), the key of every record looked up by a string ID.
func idKey(p prefix, id string) []byte {
	h := h16(id)
	k := make([]byte, 0, 1+hashSize)
	k = append(k, byte(p))
	return append(k, h[:]...)
}

// hashKey is p | k, for records whose identity is already an
// identity.Key (goods, manufacturers).
func hashKey(p prefix, k identity.Key) []byte {
	b := make([]byte, 0, 1+hashSize)
	b = append(b, byte(p))
	return append(b, k[:]...)
}

// Times are keyed as 8-byte big-endian UnixNano with the sign bit flipped,
// so that byte order is time order for every instant UnixNano can
// represent (including any before 1970). Outside that range UnixNano is
// undefined, so such times are refused rather than silently misordered.
func appendTime(b []byte, field string, t time.Time) ([]byte, error) {
	minKeyTime, maxKeyTime := time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)
	if t.Before(minKeyTime) || t.After(maxKeyTime) {
		return nil, inspection.Invalid(field, "%s is outside the storable range %s to %s",
			t.Format(time.RFC3339Nano), minKeyTime.UTC().Format(time.RFC3339), maxKeyTime.UTC().Format(time.RFC3339))
	}
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano())^(1<<63)), nil
}

// openIndexPrefix is 0x04 | h16(agency): one agency's open assignments.
func openIndexPrefix(agency string) []byte { return idKey(prefixOpenIndex, agency) }

// openIndexKey is 0x04 | h16(agency) | created_at | h16(assignment id), so
// an agency's open assignments iterate in creation order.
func openIndexKey(a inspection.Assignment) ([]byte, error) {
	k := make([]byte, 0, openIndexKeySize)
	k = append(k, openIndexPrefix(a.Agency)...)
	k, err := appendTime(k, "created_at", a.CreatedAt)
	if err != nil {
		return nil, err
	}
	h := h16(a.ID)
	return append(k, h[:]...), nil
}

// queueDueKey is 0x30 | h16(agency) | due_at | h16(assignment id): an
// agency's active assignments in deadline order.
func queueDueKey(a inspection.Assignment) ([]byte, error) {
	k, err := appendTime(idKey(prefixQueueDue, a.Agency), "due_at", a.DueAt)
	if err != nil {
		return nil, err
	}
	h := h16(a.ID)
	return append(k, h[:]...), nil
}

// dueIndexKey is 0x31 | due_at | h16(assignment id): every active
// assignment in deadline order, so the escalation job reads only the
// overdue ones.
func dueIndexKey(a inspection.Assignment) ([]byte, error) {
	k, err := appendTime([]byte{byte(prefixDueIndex)}, "due_at", a.DueAt)
	if err != nil {
		return nil, err
	}
	h := h16(a.ID)
	return append(k, h[:]...), nil
}

// closedIndexKey is 0x32 | h16(agency) | result recorded at | h16(id):
// an agency's results in the order recorded, for its workload.
func closedIndexKey(a inspection.Assignment) ([]byte, error) {
	k, err := appendTime(idKey(prefixClosedIndex, a.Agency), "recorded_at", a.Result.RecordedAt)
	if err != nil {
		return nil, err
	}
	h := h16(a.ID)
	return append(k, h[:]...), nil
}

// indexKeys are the index entries an assignment has: the queues' while
// active, the results' once closed with a result.
func indexKeys(a inspection.Assignment) ([][]byte, error) {
	if a.Status == inspection.AssignmentClosed && a.Result != nil {
		k, err := closedIndexKey(a)
		if err != nil {
			return nil, err
		}
		return [][]byte{k}, nil
	}
	if !a.Status.Active() {
		return nil, nil
	}
	return activeIndexKeys(a)
}

// activeIndexKeys are the index entries an active assignment has.
func activeIndexKeys(a inspection.Assignment) ([][]byte, error) {
	var out [][]byte
	for _, f := range []func(inspection.Assignment) ([]byte, error){openIndexKey, queueDueKey, dueIndexKey} {
		k, err := f(a)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// Subject kinds are one byte in event keys; part of the on-disk format.
const (
	subjectGoods         byte = 1
	subjectManufacturer  byte = 2
	subjectHeadingOrigin byte = 3
)

func subjectByte(k inspection.SubjectKind) (byte, error) {
	switch k {
	case inspection.SubjectGoods:
		return subjectGoods, nil
	case inspection.SubjectManufacturer:
		return subjectManufacturer, nil
	case inspection.SubjectHeadingOrigin:
		return subjectHeadingOrigin, nil
	}
	return 0, inspection.Invalid("subject.kind", "unknown subject kind %q", k)
}

// eventPrefix is 0x05 | subject kind | subject key: one subject's history.
func eventPrefix(s inspection.Subject) ([]byte, error) {
	kb, err := subjectByte(s.Kind)
	if err != nil {
		return nil, err
	}
	k := make([]byte, 0, eventKeySize)
	k = append(k, byte(prefixEvent), kb)
	return append(k, s.Key[:]...), nil
}

// eventKey is 0x05 | subject kind | subject key | at | h16(event id).
func eventKey(e inspection.Event) ([]byte, error) {
	k, err := eventPrefix(e.Subject)
	if err != nil {
		return nil, err
	}
	if k, err = appendTime(k, "at", e.At); err != nil {
		return nil, err
	}
	h := h16(e.ID)
	return append(k, h[:]...), nil
}

// importerLogKey is 0x0C | h16(tax code) | at | h16(event id): an
// importer's results in inspection-date order, beside the goods' history.
func importerLogKey(e inspection.Event) ([]byte, error) {
	k, err := appendTime(idKey(prefixImporterLog, e.ImporterTaxCode), "at", e.At)
	if err != nil {
		return nil, err
	}
	h := h16(e.ID)
	return append(k, h[:]...), nil
}

// schemaKey is 0xFF | "schema", holding the store's schema version.
func schemaKey() []byte { return append([]byte{byte(prefixMeta)}, "schema"...) }
