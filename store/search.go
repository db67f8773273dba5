package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
)

// The decision search's indexes (0x26-0x2A) and their marker (0x2B).
//
// Every decision has one entry in the time index, one in its importer's,
// one in its declaration's, one in its HS heading's, and one in each
// agency's it was ever routed to (by the decision or an override). Every
// entry holds the same summary of the decision as it stands (decisionEntry:
// mode, inspection in force, agencies, whether overridden, importer, HS
// code, time), so a search picks the most selective index its filters
// allow (declaration, importer, agency, heading, time), scans that one
// prefix in order, checks the other filters on the summaries, and loads
// only the decisions of the page. A page scans at most searchScanBudget
// entries and then answers what it found with a cursor to go on from.
//
// The entries are written with the decision (PutDecision and
// PutDecisionEncoded) and rewritten with each override (PutOverride), in
// the same transaction. Decisions never change; an override changes the
// inspection in force and may route the lot to one more agency, so an
// override's entries are the decision's before plus perhaps one agency's:
// none is ever left behind. A store written before the indexes existed is
// indexed at Open (buildDecisionIndexes), once: 0x2B marks it done.

const (
	searchTimedKeySize   = 1 + hashSize + timeSize + hashSize // importer, agency
	searchTimeKeySize    = 1 + timeSize + hashSize
	searchDeclKeySize    = 1 + hashSize + 4
	searchHeadingKeySize = 1 + headingSize + timeSize + hashSize
	headingSize          = 4

	// searchScanBudget bounds the index entries one page reads, so a
	// filter the chosen index does not serve (mode, inspect, …) costs a
	// bounded scan a page, not one over every decision.
	searchScanBudget = 10_000
)

// decisionEntry is the summary of a decision every one of its index
// entries holds: the decision as decided, and what its overrides changed.
type decisionEntry struct {
	ID          string          `json:"id"`
	At          time.Time       `json:"at"`
	Declaration string          `json:"declaration"`
	Line        int             `json:"line"`
	Importer    string          `json:"importer"`
	HS          string          `json:"hs"`
	Mode        inspection.Mode `json:"mode"`
	// Inspect is the inspection in force (the last override's).
	Inspect bool `json:"inspect"`
	// Agencies are every agency the lot was routed to (DecisionView.Agencies).
	Agencies   []string `json:"agencies,omitempty"`
	Overridden bool     `json:"overridden,omitempty"`
}

// entryOf summarises d after its overrides, as inspection's DecisionView
// reads them: the inspection in force is the last override's, and the
// agencies are the decision's and every override's.
func entryOf(d inspection.Decision, ovs []inspection.Override) decisionEntry {
	e := decisionEntry{ID: d.ID, At: d.DecidedAt, Declaration: d.DeclarationID, Line: d.LineNo, Importer: d.ImporterTaxCode,
		HS: identity.HSDigits(d.Goods.HSCode), Mode: d.Mode, Inspect: d.Inspect}
	if d.Agency != "" {
		e.Agencies = []string{d.Agency}
	}
	for _, o := range ovs {
		e.Inspect, e.Overridden = o.Inspect, true
		if o.Agency != "" && !slices.Contains(e.Agencies, o.Agency) {
			e.Agencies = append(e.Agencies, o.Agency)
		}
	}
	return e
}

func cat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

// headingPrefix is 0x29 | the 4-digit heading.
func headingPrefix(hs string) []byte {
	return append([]byte{byte(prefixDecisionByHeading)}, hs[:headingSize]...)
}

// keys are the entry's index keys:
//
//	0x26 | decided_at | h16(id)
//	0x27 | h16(importer) | decided_at | h16(id)
//	0x28 | h16(declaration) | line (4, BE)
//	0x29 | heading (4 digits) | decided_at | h16(id)   (an HS code of 4 digits or more)
//	0x2A | h16(agency) | decided_at | h16(id)          (each agency)
func (e decisionEntry) keys() ([][]byte, error) {
	at, err := appendTime(nil, "decided_at", e.At)
	if err != nil {
		return nil, err
	}
	h := h16(e.ID)
	ks := [][]byte{
		cat([]byte{byte(prefixDecisionByTime)}, at, h[:]),
		cat(idKey(prefixDecisionByImporter, e.Importer), at, h[:]),
		binary.BigEndian.AppendUint32(idKey(prefixDecisionByDecl, e.Declaration), uint32(e.Line)),
	}
	if len(e.HS) >= headingSize {
		ks = append(ks, cat(headingPrefix(e.HS), at, h[:]))
	}
	for _, a := range e.Agencies {
		ks = append(ks, cat(idKey(prefixDecisionByAgency, a), at, h[:]))
	}
	return ks, nil
}

// indexDecision writes e under every key of it: one encoding, shared.
func (t *writeTx) indexDecision(e decisionEntry) error {
	keys, err := e.keys()
	if err != nil {
		return fmt.Errorf("store: index decision %q: %w", e.ID, err)
	}
	val, err := encode(prefixDecisionByTime, e)
	if err != nil {
		return fmt.Errorf("store: index decision %q: %w", e.ID, err)
	}
	for _, k := range keys {
		if err := t.setDerived(k, val, func() string { return fmt.Sprintf("%s entry of %q", prefix(k[0]), e.ID) }); err != nil {
			return err
		}
	}
	return nil
}

// unindexDecision removes e's entries that are not among keep.
func (t *writeTx) unindexDecision(e decisionEntry, keep [][]byte) error {
	keys, err := e.keys()
	if err != nil {
		return fmt.Errorf("store: unindex decision %q: %w", e.ID, err)
	}
	for _, k := range keys {
		if !slices.ContainsFunc(keep, func(x []byte) bool { return bytes.Equal(x, k) }) {
			if err := t.delete(k, fmt.Sprintf("%s entry of %q", prefix(k[0]), e.ID)); err != nil {
				return err
			}
		}
	}
	return nil
}

// reindexPrevious is PutDecision's look at the decision it replaces: a
// decision written again (a repair, a test) keeps its overrides, and its
// entries at keys the new record no longer has are removed. It returns
// the overrides.
func (t *writeTx) reindexPrevious(d inspection.Decision) ([]inspection.Override, error) {
	prev, err := t.storedDecision(d.ID)
	if errors.Is(err, fault.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ovs, err := t.Overrides(d.ID)
	if err != nil {
		return nil, err
	}
	keep, err := entryOf(d, ovs).keys()
	if err != nil {
		return nil, fmt.Errorf("store: put decision %q: %w", d.ID, err)
	}
	return ovs, t.unindexDecision(entryOf(prev.Decision, ovs), keep)
}

// reindexOverridden rewrites a decision's entries after an override: the
// inspection in force changed, and the lot may be routed to another
// agency. A decision not stored has no entries to rewrite.
func (t *writeTx) reindexOverridden(decisionID string) error {
	s, err := t.storedDecision(decisionID)
	if errors.Is(err, fault.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ovs, err := t.Overrides(decisionID)
	if err != nil {
		return err
	}
	return t.indexDecision(entryOf(s.Decision, ovs))
}

// match reports whether e passes every filter of f. Keys hold hashes, so
// the strings are compared here too.
func match(f *inspection.DecisionFilter, e *decisionEntry) bool {
	switch {
	case f.Declaration != "" && e.Declaration != f.Declaration,
		f.Importer != "" && e.Importer != f.Importer,
		f.HS != "" && !strings.HasPrefix(e.HS, f.HS),
		f.Mode != "" && e.Mode != f.Mode,
		f.Inspect != nil && e.Inspect != *f.Inspect,
		f.Agency != "" && !slices.Contains(e.Agencies, f.Agency),
		!f.From.IsZero() && e.At.Before(f.From),
		!f.To.IsZero() && !e.At.Before(f.To),
		f.Overridden != nil && e.Overridden != *f.Overridden:
		return false
	}
	return true
}

// searchIndex is the index a search scans: the most selective its filters
// name (declaration, importer, agency, heading, else time), the prefix to
// scan, its key size, and whether the key orders by time after the prefix.
func searchIndex(f *inspection.DecisionFilter) (pfx []byte, size int, timed bool) {
	switch {
	case f.Declaration != "":
		return idKey(prefixDecisionByDecl, f.Declaration), searchDeclKeySize, false
	case f.Importer != "":
		return idKey(prefixDecisionByImporter, f.Importer), searchTimedKeySize, true
	case f.Agency != "":
		return idKey(prefixDecisionByAgency, f.Agency), searchTimedKeySize, true
	case len(f.HS) >= headingSize:
		return headingPrefix(f.HS), searchHeadingKeySize, true
	}
	return []byte{byte(prefixDecisionByTime)}, searchTimeKeySize, true
}

// SearchDecisions scans one index prefix in key order (time, then the
// hash of the decision ID; a declaration's by line) from the cursor or
// From, stops at To, at limit matches or after searchScanBudget entries,
// and loads the matching decisions (their overrides only when the summary
// says there are some). The cursor is the last index key read, base64url:
// opaque, and still valid when decisions are added, since the scan seeks
// to its position. A read-side scan, on the bare transaction.
func (t *readTx) SearchDecisions(f inspection.DecisionFilter, after string, limit int) ([]inspection.DecisionHit, string, error) {
	if limit < 1 || limit > MaxPageSize {
		return nil, "", inspection.Invalid("limit", "must be between 1 and %d, got %d", MaxPageSize, limit)
	}
	if t.done {
		return nil, "", errTxDone
	}
	pfx, size, timed := searchIndex(&f)
	start := pfx
	var stop, cursor []byte
	if timed && !f.From.IsZero() {
		k, err := appendTime(bytes.Clone(pfx), "from", f.From)
		if err != nil {
			return nil, "", err
		}
		start = k
	}
	if timed && !f.To.IsZero() {
		k, err := appendTime(bytes.Clone(pfx), "to", f.To)
		if err != nil {
			return nil, "", err
		}
		stop = k
	}
	if after != "" {
		c, err := base64.RawURLEncoding.DecodeString(after)
		if err != nil || len(c) != size || !bytes.HasPrefix(c, pfx) {
			return nil, "", inspection.Invalid("after", "%.60q is not a cursor of this search", after)
		}
		cursor = c
		if bytes.Compare(c, start) > 0 {
			start = c
		}
	}
	if err := t.bareScan(); err != nil {
		return nil, "", err
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = pfx
	opts.PrefetchSize = min(max(limit+1, 16), 100)
	it := t.txn.NewIterator(opts)
	defer it.Close()

	var (
		found   []decisionEntry
		last    []byte
		more    bool
		scanned int
	)
	for it.Seek(start); it.Valid(); it.Next() {
		item := it.Item()
		key := item.Key()
		if cursor != nil && bytes.Equal(key, cursor) {
			continue
		}
		if stop != nil && bytes.Compare(key, stop) >= 0 {
			break
		}
		t.keysRead++
		if len(found) == limit || scanned == searchScanBudget {
			more = true
			break
		}
		scanned++
		if len(key) != size {
			return nil, "", fmt.Errorf("store: %s key %x is %d bytes, want %d", prefix(key[0]), key, len(key), size)
		}
		var e decisionEntry
		if err := item.Value(func(val []byte) error { return decode(prefix(key[0]), val, &e) }); err != nil {
			return nil, "", fmt.Errorf("store: %s entry %x: %w", prefix(key[0]), key, err)
		}
		last = item.KeyCopy(last)
		if match(&f, &e) {
			found = append(found, e)
		}
	}
	it.Close()

	hits := make([]inspection.DecisionHit, 0, len(found))
	for _, e := range found {
		d, err := t.Decision(e.ID)
		if errors.Is(err, fault.ErrNotFound) {
			return nil, "", fmt.Errorf("store: decision index names missing decision %q", e.ID)
		}
		if err != nil {
			return nil, "", err
		}
		var ovs []inspection.Override
		if e.Overridden {
			if ovs, err = t.Overrides(e.ID); err != nil {
				return nil, "", err
			}
		}
		hits = append(hits, inspection.DecisionHit{Decision: d, Overrides: ovs})
	}
	next := ""
	if more {
		next = base64.RawURLEncoding.EncodeToString(last)
	}
	return hits, next, nil
}

// decisionIndexedKey is 0x2B: present once every decision is indexed.
func decisionIndexedKey() []byte { return []byte{byte(prefixDecisionIndexed)} }

// backfillChunk is how many decisions one backfill transaction indexes
// at first; halved when badger finds the transaction too big.
const backfillChunk = 512

// buildDecisionIndexes indexes every stored decision, with its overrides,
// unless 0x2B says it was done; then it writes 0x2B. A store written before
// the indexes existed is indexed so; a new store gets the marker at once.
// It runs in Open, before the store serves anyone, so nothing writes a
// decision or an override between its read of one and its write of the
// entries. Chunks are read in a View and written through the committer;
// an interrupted backfill starts again at the next Open (the entries are
// the same).
func (d *DB) buildDecisionIndexes(ctx context.Context) (int, error) {
	var done bool
	if err := d.View(ctx, func(tx inspection.ReadTx) error {
		_, found, err := tx.(*readTx).get(decisionIndexedKey(), func() string { return "decision index marker" })
		done = found
		return err
	}); err != nil || done {
		return 0, err
	}
	var (
		after []byte
		n     int
		chunk = backfillChunk
	)
	for {
		var (
			entries []decisionEntry
			last    []byte
		)
		err := d.View(ctx, func(tx inspection.ReadTx) error {
			t := tx.(*readTx)
			entries, last = entries[:0], nil
			var decs []inspection.Decision
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte{byte(prefixDecision)}
			it := t.txn.NewIterator(opts)
			defer it.Close()
			seek := opts.Prefix
			if after != nil {
				seek = after
			}
			for it.Seek(seek); it.Valid() && len(decs) < chunk; it.Next() {
				item := it.Item()
				if after != nil && bytes.Equal(item.Key(), after) {
					continue
				}
				var dec inspection.Decision
				if err := item.Value(func(val []byte) error { return decode(prefixDecision, val, &dec) }); err != nil {
					return fmt.Errorf("store: index decisions: decision %x: %w", item.Key(), err)
				}
				decs = append(decs, dec)
				last = item.KeyCopy(last)
			}
			it.Close()
			for _, dec := range decs {
				ovs, err := t.Overrides(dec.ID)
				if err != nil {
					return err
				}
				entries = append(entries, entryOf(dec, ovs))
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		err = d.Update(ctx, func(tx inspection.Tx) error {
			w := tx.(*writeTx)
			for _, e := range entries {
				if err := w.indexDecision(e); err != nil {
					return err
				}
			}
			if len(entries) == 0 {
				return w.setDerived(decisionIndexedKey(), encodeRaw(nil), func() string { return "decision index marker" })
			}
			return nil
		})
		if errors.Is(err, ErrTxnTooBig) && chunk > 1 {
			chunk /= 2
			continue
		}
		if err != nil {
			return n, err
		}
		if len(entries) == 0 {
			return n, nil
		}
		n += len(entries)
		after = last
	}
}
