package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/reference"
)

// The audit chain (0x14 by sequence, 0x15 the head) and record digests.
// What an entry says is inspection's business; the store keeps entries in
// sequence order, refuses one that does not follow the head, and digests
// records exactly as it stores them.

const auditEntryKeySize = 1 + 8

func auditEntryKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{byte(prefixAuditEntry)}, seq)
}

func auditHeadKey() []byte { return []byte{byte(prefixAuditHead)} }

func (t *readTx) AuditHead() (audit.Head, error) {
	var h audit.Head
	err := t.load(prefixAuditHead, auditHeadKey(), "audit head", &h)
	return h, err
}

// AuditEntries scans 0x14 from seq from. A value that does not decode, or
// a key of the wrong width, is handed to fn as bad rather than ending the
// scan with an error: a verifier must name its position.
func (t *readTx) AuditEntries(from uint64, fn func(keySeq uint64, e audit.Entry, bad error) error) error {
	if t.done {
		return errTxDone
	}
	// A View-side scan (verification, paging): inside an Update badger
	// would copy every pending write of the batch for the iterator.
	if err := t.bareScan(); err != nil {
		return err
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{byte(prefixAuditEntry)}
	it := t.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(auditEntryKey(from)); it.Valid(); it.Next() {
		item := it.Item()
		key := item.Key()
		var (
			seq uint64
			e   audit.Entry
			bad error
		)
		if len(key) != auditEntryKeySize {
			bad = fmt.Errorf("audit entry key %x is %d bytes, want %d", key, len(key), auditEntryKeySize)
		} else {
			seq = binary.BigEndian.Uint64(key[1:])
			val, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("store: read audit entry %d: %w", seq, err)
			}
			if err := decode(prefixAuditEntry, val, &e); err != nil {
				bad = err
			}
		}
		if err := fn(seq, e, bad); err != nil {
			return err
		}
	}
	return nil
}

// PutAuditEntry writes e at its sequence and moves the head to it, in
// the caller's transaction. An entry that does not follow the head is a
// caller bug (or a concurrent writer outside group commit), never written.
func (t *writeTx) PutAuditEntry(e audit.Entry) error {
	head, err := t.AuditHead()
	switch {
	case errors.Is(err, fault.ErrNotFound):
		head = audit.Head{Hash: strings.Repeat("0", 2*sha256.Size)}
	case err != nil:
		return err
	}
	if e.Seq != head.Seq+1 || e.Prev != head.Hash {
		return fmt.Errorf("store: audit entry %d (prev %.12s…) does not follow the head %d (%.12s…)", e.Seq, e.Prev, head.Seq, head.Hash)
	}
	if !t.raw && !slices.Equal(e.Records, t.notes.list) {
		return fmt.Errorf("store: audit entry %d covers %d records, but the transaction wrote %d since its last entry: it must cover exactly those",
			e.Seq, len(e.Records), len(t.notes.list))
	}
	for _, x := range []struct {
		p   prefix
		key []byte
		v   any
	}{{prefixAuditEntry, auditEntryKey(e.Seq), e}, {prefixAuditHead, auditHeadKey(), audit.Head{Seq: e.Seq, Hash: e.Hash}}} {
		val, err := encode(x.p, x.v)
		if err != nil {
			return fmt.Errorf("store: audit entry %d: %w", e.Seq, err)
		}
		if err := t.setF(x.key, val, func() string { return fmt.Sprintf("%s %d", x.p, e.Seq) }); err != nil {
			return err
		}
	}
	t.notes.reset()
	return nil
}

// Overrides: 0x16 | h16(decision id) | n (8, BE), so a decision's
// overrides are one prefix scan in the order they were made.

func overridePrefix(decisionID string) []byte { return idKey(prefixOverride, decisionID) }

func overrideKey(decisionID string, n int) []byte {
	return binary.BigEndian.AppendUint64(overridePrefix(decisionID), uint64(n))
}

func (t *readTx) Overrides(decisionID string) ([]inspection.Override, error) {
	var out []inspection.Override
	err := t.iterate(overridePrefix(decisionID), func(key, val []byte) error {
		var o inspection.Override
		if err := decode(prefixOverride, val, &o); err != nil {
			return fmt.Errorf("store: overrides of %q: %w", decisionID, err)
		}
		if o.DecisionID != decisionID {
			return fmt.Errorf("store: overrides of %q: stored override is %q's (key hash collision)", decisionID, o.DecisionID)
		}
		if n := binary.BigEndian.Uint64(key[len(key)-8:]); n != uint64(len(out)+1) || o.N != len(out)+1 {
			// A gap is a lost or removed override: report it, never renumber.
			return fmt.Errorf("store: overrides of %q: override %d (numbered %d) found where %d was expected", decisionID, n, o.N, len(out)+1)
		}
		out = append(out, o)
		return nil
	})
	return out, err
}

// PutOverride appends o; overrides are never rewritten, so o.N must be
// the next number and its key free.
func (t *writeTx) PutOverride(o inspection.Override) error {
	if o.DecisionID == "" || o.N < 1 || o.ID != inspection.OverrideID(o.DecisionID, o.N) {
		return fmt.Errorf("store: put override %q: decision %q, number %d", o.ID, o.DecisionID, o.N)
	}
	key := overrideKey(o.DecisionID, o.N)
	what := fmt.Sprintf("override %q", o.ID)
	if _, err := t.value(key, what); err == nil {
		return inspection.Conflict("id", "override %s is already recorded", o.ID)
	} else if !errors.Is(err, fault.ErrNotFound) {
		return err
	}
	if o.N > 1 {
		if _, err := t.value(overrideKey(o.DecisionID, o.N-1), what); err != nil {
			return fmt.Errorf("store: put override %q: its predecessor: %w", o.ID, err)
		}
	}
	if err := t.putRecord(prefixOverride, key, o.ID, o); err != nil {
		return err
	}
	// The inspection in force changed, and the lot may be routed to one
	// more agency: the decision's search entries say so, in this
	// transaction (search.go).
	return t.reindexOverridden(o.DecisionID)
}

// ResolveOverride rewrites a pending override as confirmed or rejected.
// Everything the officer who made it decided stays as stored; only its
// resolution is added.
func (t *writeTx) ResolveOverride(o inspection.Override) error {
	if o.DecisionID == "" || o.N < 1 || o.ID != inspection.OverrideID(o.DecisionID, o.N) {
		return fmt.Errorf("store: resolve override %q: decision %q, number %d", o.ID, o.DecisionID, o.N)
	}
	if o.Status != inspection.OverrideConfirmed && o.Status != inspection.OverrideRejected {
		return fmt.Errorf("store: resolve override %q: status %q is not a resolution", o.ID, o.Status)
	}
	key := overrideKey(o.DecisionID, o.N)
	val, err := t.value(key, fmt.Sprintf("override %q", o.ID))
	if err != nil {
		return fmt.Errorf("store: resolve override %q: %w", o.ID, err)
	}
	var was inspection.Override
	if err := decode(prefixOverride, val, &was); err != nil {
		return fmt.Errorf("store: resolve override %q: %w", o.ID, err)
	}
	if was.Status != inspection.OverridePending {
		return inspection.Conflict("status", "override %s is not pending (status %q)", o.ID, was.Status)
	}
	if was.ID != o.ID || was.By != o.By || !was.At.Equal(o.At) || was.ReasonCode != o.ReasonCode || was.ReasonText != o.ReasonText ||
		was.WasInspected != o.WasInspected || was.Inspect != o.Inspect || was.SwapWith != o.SwapWith {
		return fmt.Errorf("store: resolve override %q: only its resolution may change, not what was asked", o.ID)
	}
	return t.putRecord(prefixOverride, key, o.ID, o)
}

// recordKey is where a record of kind k with ID id is stored, for kinds
// stored under one key. Events go through their by-ID index.
func recordKey(k audit.RecordKind, id string) ([]byte, prefix, error) {
	switch k {
	case audit.RecordDeclaration:
		return idKey(prefixDeclaration, id), prefixDeclaration, nil
	case audit.RecordDecision:
		return idKey(prefixDecision, id), prefixDecision, nil
	case audit.RecordAssignment:
		return idKey(prefixAssignment, id), prefixAssignment, nil
	case audit.RecordQuotaPeriod:
		return idKey(prefixQuotaPeriod, id), prefixQuotaPeriod, nil
	case audit.RecordPolicy:
		return idKey(prefixPolicy, id), prefixPolicy, nil
	case audit.RecordAPIKey:
		return idKey(prefixAPIKey, id), prefixAPIKey, nil
	case audit.RecordAgency:
		return idKey(prefixAgency, id), prefixAgency, nil
	case audit.RecordImporter:
		return idKey(prefixImporter, id), prefixImporter, nil
	case audit.RecordWebhook:
		return idKey(prefixWebhook, id), prefixWebhook, nil
	case audit.RecordPolicyVersion:
		return idKey(prefixPolicyVer, id), prefixPolicyVer, nil

	case audit.RecordGoodsState, audit.RecordManufacturer:
		key, err := identity.ParseKey(id)
		if err != nil {
			return nil, 0, fmt.Errorf("store: %s %q: %w", k, id, err)
		}
		p := prefixGoodsState
		if k == audit.RecordManufacturer {
			p = prefixManufacture
		}
		return hashKey(p, key), p, nil
	case audit.RecordQuotaCounter:
		period, scope, ok := strings.Cut(id, "/")
		if !ok {
			return nil, 0, fmt.Errorf("store: quota counter %q: want period/scope", id)
		}
		return quotaScopeKey(prefixQuota, period, scope), prefixQuota, nil
	case audit.RecordCapacityCounter:
		agency, day, check, ok := inspection.ParseCapacityCounterID(id)
		if !ok {
			return nil, 0, fmt.Errorf("store: capacity counter %q: want agency/day/check", id)
		}
		return capacityKey(agency, day, check), prefixCapacity, nil
	case audit.RecordGoodsLink:
		key, err := identity.ParseKey(id)
		if err != nil {
			return nil, 0, fmt.Errorf("store: %s %q: %w", k, id, err)
		}
		return hashKey(prefixGoodsLink, key), prefixGoodsLink, nil
	case audit.RecordOverride:
		i := strings.LastIndexByte(id, '/')
		var n int
		if i < 0 || len(id) == i+1 {
			return nil, 0, fmt.Errorf("store: override %q: want decision/n", id)
		}
		if _, err := fmt.Sscanf(id[i+1:], "%d", &n); err != nil || n < 1 {
			return nil, 0, fmt.Errorf("store: override %q: want decision/n", id)
		}
		return overrideKey(id[:i], n), prefixOverride, nil
	}
	return nil, 0, fmt.Errorf("store: no record kind %q", k)
}

// digest is the hex SHA-256 of a stored value after its version byte.
func digest(p prefix, val []byte) (string, error) {
	body, err := unwrap(p, val)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:]), nil
}

// RecordDigest digests the record as stored now. Inside an Update it sees
// the transaction's own writes, which is how an audit entry digests what
// its transaction wrote without encoding anything twice.
func (t *readTx) RecordDigest(k audit.RecordKind, id string) (audit.RecordDigest, error) {
	what := func() string { return fmt.Sprintf("%s %q", k, id) }
	var (
		key []byte
		p   prefix
		err error
	)
	if k == audit.RecordEvent {
		idx, err := t.valueF(idKey(prefixEventByID, id), what)
		if err != nil {
			return audit.RecordDigest{}, err
		}
		if key, err = unwrap(prefixEventByID, idx); err != nil {
			return audit.RecordDigest{}, fmt.Errorf("store: %s: %w", what(), err)
		}
		p = prefixEvent
	} else if key, p, err = recordKey(k, id); err != nil {
		return audit.RecordDigest{}, err
	}
	val, err := t.valueF(key, what)
	if err != nil {
		return audit.RecordDigest{}, err
	}
	sum, err := digest(p, val)
	if err != nil {
		return audit.RecordDigest{}, fmt.Errorf("store: %s: %w", what(), err)
	}
	return audit.RecordDigest{Kind: k, ID: id, SHA256: sum}, nil
}

// recordScan says where a kind's records live and how to read a record's
// ID from its JSON (keys hold only hashes).
type recordScan struct {
	p  prefix
	id func(body []byte) (string, error)
}

// jsonID reads the string fields named from a JSON record and joins them
// with "/" (a quota counter's ID is period/scope).
func jsonID(fields ...string) func([]byte) (string, error) {
	return func(body []byte) (string, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return "", err
		}
		parts := make([]string, len(fields))
		for i, f := range fields {
			if err := json.Unmarshal(m[f], &parts[i]); err != nil {
				return "", fmt.Errorf("field %s: %w", f, err)
			}
		}
		return strings.Join(parts, "/"), nil
	}
}

var recordScans = map[audit.RecordKind]recordScan{
	audit.RecordDeclaration:     {prefixDeclaration, jsonID("declaration_id")},
	audit.RecordGoodsLink:       {prefixGoodsLink, jsonID("from")},
	audit.RecordDecision:        {prefixDecision, jsonID("id")},
	audit.RecordAssignment:      {prefixAssignment, jsonID("id")},
	audit.RecordEvent:           {prefixEvent, jsonID("id")},
	audit.RecordGoodsState:      {prefixGoodsState, jsonID("key")},
	audit.RecordQuotaCounter:    {prefixQuota, jsonID("period", "scope")},
	audit.RecordQuotaPeriod:     {prefixQuotaPeriod, jsonID("period")},
	audit.RecordCapacityCounter: {prefixCapacity, jsonID("agency", "day", "check")},
	audit.RecordPolicy:          {prefixPolicy, jsonID("version")},
	audit.RecordAPIKey:          {prefixAPIKey, jsonID("id")},
	audit.RecordOverride:        {prefixOverride, jsonID("id")},
	audit.RecordAgency:          {prefixAgency, jsonID("id")},
	audit.RecordImporter:        {prefixImporter, jsonID("tax_code")},
	audit.RecordWebhook:         {prefixWebhook, jsonID("id")},
	audit.RecordPolicyVersion:   {prefixPolicyVer, jsonID("version")},
	audit.RecordManufacturer: {prefixManufacture, func(body []byte) (string, error) {
		var m reference.Manufacturer
		if err := json.Unmarshal(body, &m); err != nil {
			return "", err
		}
		return m.Key().String(), nil
	}},
}

// Records scans every record of a kind (for VerifyAudit's search for
// records no entry covers). A record whose ID cannot be read is reported
// by its key, so tampering cannot hide a record from the scan.
func (t *readTx) Records(k audit.RecordKind, fn func(audit.RecordDigest) error) error {
	rs, ok := recordScans[k]
	if !ok {
		return fmt.Errorf("store: cannot scan records of kind %q", k)
	}
	return t.iterate([]byte{byte(rs.p)}, func(key, val []byte) error {
		body, err := unwrap(rs.p, val)
		var id string
		if err == nil {
			id, err = rs.id(body)
		}
		if err != nil {
			id = fmt.Sprintf("(unreadable, key %x)", key)
			body = bytes.Clone(val)
		}
		sum := sha256.Sum256(body)
		return fn(audit.RecordDigest{Kind: k, ID: id, SHA256: hex.EncodeToString(sum[:])})
	})
}
