package inspection

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The audit log: a hash chain of every state change (docs/audit.md is the
// auditor's description of the encoding; keep the two in step, and
// TestAuditHashMatchesTheDocument pins the example there).
//
// Every use case that writes appends exactly one entry, in the same
// transaction as its writes, so the entry and the change commit together
// or not at all. The entry names the actor, the time (the injected clock),
// what happened, the IDs it concerns and, for every record the transaction
// wrote, the SHA-256 of the record as stored. An entry's hash covers the
// previous entry's hash, so altering, removing or reordering any entry
// breaks every link after it; the record digests make a later rewrite of a
// stored decision (or assignment, result, key…) detectable too.
//
// A rewrite of the whole chain by someone who can write the store is
// caught by signed checkpoints kept outside it (audit_checkpoint.go).

// AuditKind is what an audit entry records.
type AuditKind string

const (
	// AuditDeclarationDecided covers one declaration: its record, every
	// line's decision and assignment, goods states, quota counters and, when
	// its first reduced lot opened a quota period, the period (with its key
	// commitment). One entry per declaration, not per line: the decisions
	// of a declaration are one atomic write and one NSW answer.
	AuditDeclarationDecided AuditKind = "declaration.decided"
	AuditResultRecorded     AuditKind = "result.recorded"
	AuditAlertRaised        AuditKind = "alert.raised"
	// AuditDecisionOverridden covers a customs override: the override
	// records (two for a swap) and the assignments opened or cancelled.
	AuditDecisionOverridden AuditKind = "decision.overridden"
	AuditKeyCreated         AuditKind = "apikey.created"
	AuditKeyRevoked         AuditKind = "apikey.revoked"
	AuditQuotaKeyRevealed   AuditKind = "quota.key_revealed"
	AuditPolicyStored       AuditKind = "policy.stored"
)

// ActorSystem is the actor of what ktcn does on its own (storing the
// configured policy when it starts), as opposed to a principal's request.
const ActorSystem = "system"

// RecordKind names a kind of stored record for audit digests.
type RecordKind string

const (
	RecordDeclaration  RecordKind = "declaration"   // ID: declaration ID
	RecordDecision     RecordKind = "decision"      // ID: decision ID
	RecordAssignment   RecordKind = "assignment"    // ID: assignment ID
	RecordEvent        RecordKind = "event"         // ID: event ID (results, alerts)
	RecordGoodsState   RecordKind = "goods_state"   // ID: goods key (hex)
	RecordQuotaCounter RecordKind = "quota_counter" // ID: period "/" scope
	RecordQuotaPeriod  RecordKind = "quota_period"  // ID: period
	RecordPolicy       RecordKind = "policy"        // ID: policy version
	RecordAPIKey       RecordKind = "api_key"       // ID: key ID
	RecordOverride     RecordKind = "override"      // ID: decision ID "/" n
	RecordAgency       RecordKind = "agency"        // ID: agency ID
	RecordImporter     RecordKind = "importer"      // ID: tax code
	RecordManufacturer RecordKind = "manufacturer"  // ID: manufacturer key (hex)
)

// AuditedKinds are the record kinds only audited use cases write, so
// VerifyAudit reports any stored record of these kinds that no entry
// covers (a record slipped in beside the log, or an entry cut off the
// end). Agencies, importers and manufacturers are reference data loaded
// in bulk (fixtures); they are covered when an audited use case writes
// them, and not required to be.
var AuditedKinds = []RecordKind{
	RecordDeclaration, RecordDecision, RecordAssignment, RecordEvent, RecordGoodsState,
	RecordQuotaCounter, RecordQuotaPeriod, RecordPolicy, RecordAPIKey, RecordOverride,
}

// RecordDigest names a stored record and the SHA-256 (hex) of its stored
// encoding: the JSON body the store keeps (encoding/json of the inspection
// type, without the store's one-byte version prefix), or the raw document
// for a policy. An auditor hashes the stored bytes; nothing is re-encoded.
type RecordDigest struct {
	Kind   RecordKind `json:"kind"`
	ID     string     `json:"id"`
	SHA256 string     `json:"sha256"`
}

// QuotaCounterID is the record ID of a scope's counter in a period. Periods
// are years, so the first "/" separates them.
func QuotaCounterID(period, scope string) string { return period + "/" + scope }

// AuditEntry is one link of the chain.
type AuditEntry struct {
	Seq uint64 `json:"seq"` // 1, 2, 3… in commit order
	// Prev is the hex hash of entry Seq-1 (64 zeros for entry 1).
	Prev     string         `json:"prev"`
	At       time.Time      `json:"at"`
	Actor    string         `json:"actor"` // principal name, or ActorSystem
	Kind     AuditKind      `json:"kind"`
	Subjects []string       `json:"subjects"` // "declaration:<id>", "decision:<id>", …
	Records  []RecordDigest `json:"records"`
	// Hash is hex SHA-256(prev hash ‖ AuditMessage(entry)).
	Hash string `json:"hash"`
}

// AuditHead is the last entry's sequence and hash.
type AuditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// auditTag starts every entry's message, so a hash of some other ktcn
// structure can never pass for an entry hash.
const auditTag = "ktcn/audit-entry/v1"

// AuditMessage is the byte string an entry hash covers after the previous
// hash (docs/audit.md): the tag, Seq (8 bytes big-endian), At as UnixNano
// (8 bytes big-endian, two's complement), Actor, Kind, the number of
// subjects (4 bytes big-endian) and each subject, the number of records
// and, for each, its kind, its ID and its 32-byte digest. Strings are a
// 4-byte big-endian length and their UTF-8 bytes. A digest that is not 64
// hex digits is an error: it could not have been written by ktcn.
func AuditMessage(e AuditEntry) ([]byte, error) {
	b := make([]byte, 0, 128+len(e.Records)*96)
	str := func(s string) { b = binary.BigEndian.AppendUint32(b, uint32(len(s))); b = append(b, s...) }
	str(auditTag)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.At.UnixNano()))
	str(e.Actor)
	str(string(e.Kind))
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Subjects)))
	for _, s := range e.Subjects {
		str(s)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Records)))
	for _, r := range e.Records {
		sum, err := hex.DecodeString(r.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("record %s %q: digest %q is not 64 hex digits", r.Kind, r.ID, r.SHA256)
		}
		str(string(r.Kind))
		str(r.ID)
		b = append(b, sum...)
	}
	return b, nil
}

// AuditHash is SHA-256(prev ‖ AuditMessage(e)).
func AuditHash(prev [sha256.Size]byte, e AuditEntry) ([sha256.Size]byte, error) {
	msg, err := AuditMessage(e)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	h := sha256.New()
	h.Write(prev[:])
	h.Write(msg)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out, nil
}

func decodeHash(s string) ([sha256.Size]byte, bool) {
	var out [sha256.Size]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return out, false
	}
	copy(out[:], b)
	return out, true
}

// AuditObserver hears of every audit head a Service commits, after the
// commit, from the committing caller's goroutine (so in no fixed order
// across callers). The checkpointer is one.
type AuditObserver interface {
	AuditCommitted(AuditHead)
}

// recordRef names a record written in a transaction.
type recordRef struct {
	kind RecordKind
	id   string
}

// auditTx is the Tx a use case writes through: it passes every write on
// and notes which record it wrote, so the entry covers exactly what the
// transaction changed, with no list to keep by hand. Index-only writes
// (the quota draw index) are derived data and are not covered; verify
// quota checks them.
type auditTx struct {
	Tx
	refs []recordRef
	seen map[recordRef]bool
	// sums holds the digests of records written from an encoding made
	// ahead (putDecision, putAssignment), so append need not read them
	// back; a later write of the same record drops its entry.
	sums map[recordRef]string
}

func audited(tx Tx) *auditTx { return &auditTx{Tx: tx, seen: map[recordRef]bool{}} }

func (a *auditTx) note(k RecordKind, id string, err error) error {
	if err != nil {
		return err
	}
	r := recordRef{k, id}
	delete(a.sums, r)
	if !a.seen[r] { // a record written twice is covered once, as it ends
		a.seen[r] = true
		a.refs = append(a.refs, r)
	}
	return nil
}

func (a *auditTx) PutDeclaration(r DeclarationRecord) error {
	return a.note(RecordDeclaration, r.ID, a.Tx.PutDeclaration(r))
}
func (a *auditTx) PutDecision(d Decision) error {
	return a.note(RecordDecision, d.ID, a.Tx.PutDecision(d))
}
func (a *auditTx) PutAssignment(x Assignment) error {
	return a.note(RecordAssignment, x.ID, a.Tx.PutAssignment(x))
}
func (a *auditTx) AddEvent(e Event) error { return a.note(RecordEvent, e.ID, a.Tx.AddEvent(e)) }
func (a *auditTx) PutGoodsState(g GoodsState) error {
	return a.note(RecordGoodsState, g.Key.String(), a.Tx.PutGoodsState(g))
}
func (a *auditTx) PutAgency(x Agency) error { return a.note(RecordAgency, x.ID, a.Tx.PutAgency(x)) }
func (a *auditTx) PutImporter(i Importer) error {
	return a.note(RecordImporter, i.TaxCode, a.Tx.PutImporter(i))
}
func (a *auditTx) PutManufacturer(m Manufacturer) error {
	return a.note(RecordManufacturer, m.Key().String(), a.Tx.PutManufacturer(m))
}
func (a *auditTx) PutPolicy(version string, doc []byte) error {
	return a.note(RecordPolicy, version, a.Tx.PutPolicy(version, doc))
}
func (a *auditTx) PutAPIKey(k APIKey) error { return a.note(RecordAPIKey, k.ID, a.Tx.PutAPIKey(k)) }
func (a *auditTx) PutQuotaCounter(c QuotaCounter) error {
	return a.note(RecordQuotaCounter, QuotaCounterID(c.Period, c.Scope), a.Tx.PutQuotaCounter(c))
}
func (a *auditTx) PutQuotaPeriod(p QuotaPeriod) error {
	return a.note(RecordQuotaPeriod, p.Period, a.Tx.PutQuotaPeriod(p))
}
func (a *auditTx) PutOverride(o Override) error {
	return a.note(RecordOverride, o.ID, a.Tx.PutOverride(o))
}

// encodedRecord is a record's stored encoding made ahead of its write
// transaction, and its digest.
type encodedRecord struct {
	body []byte
	sum  string // hex SHA-256 of body
}

func newEncodedRecord(body []byte) encodedRecord {
	if body == nil {
		return encodedRecord{}
	}
	sum := sha256.Sum256(body)
	return encodedRecord{body: body, sum: hex.EncodeToString(sum[:])}
}

// putDecision writes d from its encoding made ahead when there is one and
// the store takes it, else through PutDecision.
func (a *auditTx) putDecision(d Decision, enc encodedRecord) error {
	w, ok := a.Tx.(EncodedWriter)
	if !ok || enc.body == nil {
		return a.PutDecision(d)
	}
	return a.noteEncoded(RecordDecision, d.ID, enc, w.PutDecisionJSON(d, enc.body))
}

// putAssignment is putDecision for an assignment.
func (a *auditTx) putAssignment(x Assignment, enc encodedRecord) error {
	w, ok := a.Tx.(EncodedWriter)
	if !ok || enc.body == nil {
		return a.PutAssignment(x)
	}
	return a.noteEncoded(RecordAssignment, x.ID, enc, w.PutAssignmentJSON(x, enc.body))
}

func (a *auditTx) noteEncoded(k RecordKind, id string, enc encodedRecord, err error) error {
	if err := a.note(k, id, err); err != nil {
		return err
	}
	if a.sums == nil {
		a.sums = map[recordRef]string{}
	}
	a.sums[recordRef{k, id}] = enc.sum
	return nil
}

// PutAuditEntry is refused through auditTx: entries are appended by
// append, once, after every write.
func (a *auditTx) PutAuditEntry(AuditEntry) error {
	return errors.New("inspection: audit entries are appended by auditTx.append")
}

// append writes the transaction's audit entry: it reads the head (under
// group commit every Update runs in one goroutine, so this never
// conflicts and the sequence is commit order), digests every record the
// transaction wrote as the store now holds it, and links the entry to the
// head. Call it last, after every write.
func (a *auditTx) append(at time.Time, actor string, kind AuditKind, subjects ...string) (AuditHead, error) {
	if len(a.refs) == 0 {
		// A use case that wrote nothing has nothing to record; one that
		// calls append anyway has a bug.
		return AuditHead{}, fmt.Errorf("inspection: audit %s: the transaction wrote nothing", kind)
	}
	head, err := a.Tx.AuditHead()
	switch {
	case errors.Is(err, ErrNotFound):
		head = AuditHead{}
	case err != nil:
		return AuditHead{}, fmt.Errorf("audit head: %w", err)
	}
	var prev [sha256.Size]byte
	if head.Seq > 0 {
		var ok bool
		if prev, ok = decodeHash(head.Hash); !ok {
			return AuditHead{}, fmt.Errorf("audit head %d: hash %q is not 64 hex digits", head.Seq, head.Hash)
		}
	}
	e := AuditEntry{Seq: head.Seq + 1, Prev: hex.EncodeToString(prev[:]), At: at, Actor: actor, Kind: kind,
		Subjects: slices.Clone(subjects), Records: make([]RecordDigest, 0, len(a.refs))}
	for _, r := range a.refs {
		if sum, ok := a.sums[r]; ok {
			e.Records = append(e.Records, RecordDigest{Kind: r.kind, ID: r.id, SHA256: sum})
			continue
		}
		d, err := a.Tx.RecordDigest(r.kind, r.id)
		if err != nil {
			return AuditHead{}, fmt.Errorf("audit digest of %s %q: %w", r.kind, r.id, err)
		}
		e.Records = append(e.Records, d)
	}
	sum, err := AuditHash(prev, e)
	if err != nil {
		return AuditHead{}, fmt.Errorf("audit entry %d: %w", e.Seq, err)
	}
	e.Hash = hex.EncodeToString(sum[:])
	if err := a.Tx.PutAuditEntry(e); err != nil {
		return AuditHead{}, err
	}
	return AuditHead{Seq: e.Seq, Hash: e.Hash}, nil
}

// AuditLog pages through the chain for auditors: at most limit entries
// after seq after, and the head.
func (s *Service) AuditLog(ctx context.Context, after uint64, limit int) ([]AuditEntry, AuditHead, error) {
	if limit < 1 || limit > 1000 {
		return nil, AuditHead{}, Invalid("limit", "must be between 1 and 1000, got %d", limit)
	}
	var (
		out  []AuditEntry
		head AuditHead
	)
	err := s.store.View(ctx, func(tx ReadTx) error {
		out = out[:0]
		h, err := tx.AuditHead()
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		head = h
		return tx.AuditEntries(after+1, func(seq uint64, e AuditEntry, bad error) error {
			if bad != nil {
				return fmt.Errorf("audit entry %d: %w", seq, bad)
			}
			out = append(out, e)
			if len(out) == limit {
				return errStopScan
			}
			return nil
		})
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return out, head, err
}

// errStopScan ends a scan early; never returned to callers.
var errStopScan = errors.New("stop scan")
