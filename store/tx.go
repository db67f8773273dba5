package store

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/risk"
)

// Page sizes for OpenAssignments.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// errTxDone is returned when a Tx is used after its View or Update
// returned; badger would panic on some calls to a finished transaction.
var errTxDone = errors.New("store: transaction used after View or Update returned")

// readTx satisfies inspection.ReadTx over one badger transaction. View
// hands out a *readTx, so a caller cannot type-assert its way to writes.
type readTx struct {
	txn  *badger.Txn
	done bool
	// bv serves scans inside a group-commit batch (nil elsewhere).
	bv *batchView
	// c is the committer running the batch (nil elsewhere); prior the
	// snapshot reads it may reuse (readahead.go).
	c     *committer
	prior *snapshotReads
	// rec records the point reads of a ViewAhead (nil elsewhere).
	rec *snapshotReads
	// keysRead counts point reads and scanned keys (the search's cost,
	// which its tests bound).
	keysRead int
}

// writeTx satisfies inspection.Tx.
type writeTx struct {
	readTx
	// bumped notes the input versions this transaction has bumped.
	bumped map[risk.Subject]bool
	// notes are the records written since the last audit entry (records.go).
	notes notes
	// raw is an UpdateRaw: records may be written without an entry.
	raw bool
}

// finish ends fn's use of t and is the commit-time check every Update
// makes: fn's own error, or ErrUnaudited for records no entry covers.
func (t *writeTx) finish(ferr error) error {
	t.done = true
	if ferr != nil {
		return ferr
	}
	return t.unaudited()
}

var (
	_ inspection.ReadTx = (*readTx)(nil)
	_ inspection.Tx     = (*writeTx)(nil)
)

// badgerErr marks badger's ErrTxnTooBig with our own sentinel, so callers
// outside this package can recognise it without importing badger.
func badgerErr(err error) error {
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("%w: %w", ErrTxnTooBig, err)
	}
	return err
}

// value returns a copy of the value at key (valid beyond the txn). what
// names the thing for the error: "decision \"D1\"".
func (t *readTx) value(key []byte, what string) ([]byte, error) {
	return t.valueF(key, func() string { return what })
}

// valueF is value with the name made only when an error needs it: the
// decision path reads and writes a dozen records each, and formatting
// their names up front cost more than some of the reads.
func (t *readTx) valueF(key []byte, whatF func() string) ([]byte, error) {
	v, found, err := t.get(key, whatF)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s: %w", whatF(), fault.ErrNotFound)
	}
	return v, nil
}

// get is a point read that reports a missing key as found == false, not
// as an error: a miss costs no error value (input versions miss often).
// Inside a batch it asks the batch's own writes and reads first, then the
// read-ahead snapshot; a ViewAhead records what badger answered.
func (t *readTx) get(key []byte, whatF func() string) (val []byte, found bool, err error) {
	if t.done {
		return nil, false, errTxDone
	}
	t.keysRead++
	if t.bv != nil {
		v, found, ok := t.bv.lookup(key)
		if !ok {
			if v, found, ok = t.reused(key); ok {
				t.bv.remember(key, v, found)
			}
		}
		if ok {
			return v, found, nil
		}
	}
	item, err := t.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		if t.bv != nil {
			t.bv.remember(key, nil, false)
		}
		t.record(key, nil, false)
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: read %s: %w", whatF(), err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, false, fmt.Errorf("store: read %s: %w", whatF(), err)
	}
	if t.bv != nil {
		t.bv.remember(key, v, true)
	}
	t.record(key, v, true)
	return v, true, nil
}

func (t *readTx) load(p prefix, key []byte, what string, v any) error {
	return t.loadF(p, key, func() string { return what }, v)
}

func (t *readTx) loadF(p prefix, key []byte, whatF func() string, v any) error {
	val, err := t.valueF(key, whatF)
	if err != nil {
		return err
	}
	if err := decode(p, val, v); err != nil {
		return fmt.Errorf("store: %s: %w", whatF(), err)
	}
	return nil
}

// loadID reads the record of kind p whose string ID is id, and checks that
// the stored record carries that ID: keys hold only a hash of it.
func loadID[T any](t *readTx, p prefix, id string, idOf func(*T) string) (T, error) {
	var v T
	what := func() string { return fmt.Sprintf("%s %q", p, id) }
	if err := t.loadF(p, idKey(p, id), what, &v); err != nil {
		var zero T
		return zero, err
	}
	if got := idOf(&v); got != id {
		var zero T
		return zero, fmt.Errorf("store: %s: stored record is %q (key hash collision)", what(), got)
	}
	return v, nil
}

func (t *readTx) Declaration(id string) (declaration.Record, error) {
	return loadID(t, prefixDeclaration, id, func(r *declaration.Record) string { return r.ID })
}

func (t *readTx) Decision(id string) (inspection.Decision, error) {
	s, err := t.storedDecision(id)
	if err != nil {
		return inspection.Decision{}, err
	}
	return t.decision(s)
}

// storedDecision is a decision as stored, its explanation's events not
// read back: for the store's own bookkeeping (the search indexes), which
// reads no explanation and need not pay one read per event.
func (t *readTx) storedDecision(id string) (storedDecision, error) {
	return loadID(t, prefixDecision, id, func(d *storedDecision) string { return d.ID })
}

func (t *readTx) Assignment(id string) (inspection.Assignment, error) {
	return loadID(t, prefixAssignment, id, func(a *inspection.Assignment) string { return a.ID })
}

func (t *readTx) Importer(taxCode string) (reference.Importer, error) {
	return loadID(t, prefixImporter, taxCode, func(i *reference.Importer) string { return i.TaxCode })
}

func (t *readTx) Agency(id string) (reference.Agency, error) {
	return loadID(t, prefixAgency, id, func(a *reference.Agency) string { return a.ID })
}

func (t *readTx) GoodsState(k identity.Key) (inspection.GoodsState, error) {
	var g inspection.GoodsState
	err := t.loadF(prefixGoodsState, hashKey(prefixGoodsState, k), func() string { return "goods state " + k.String() }, &g)
	return g, err
}

func (t *readTx) Manufacturer(k identity.Key) (reference.Manufacturer, error) {
	var m reference.Manufacturer
	err := t.load(prefixManufacture, hashKey(prefixManufacture, k), "manufacturer "+k.String(), &m)
	return m, err
}

// Policy returns the document bytes as stored. The key holds only a hash of
// the version and the value only the document, so a hash collision is not
// detected here; versions are few and chosen by staff.
func (t *readTx) Policy(version string) ([]byte, error) {
	what := fmt.Sprintf("policy %q", version)
	val, err := t.value(idKey(prefixPolicy, version), what)
	if err != nil {
		return nil, err
	}
	doc, err := unwrap(prefixPolicy, val)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return doc, nil
}

// bareScan is asked before a scan of the bare transaction: inside a batch
// running over an overlay it fails (batchView.settleFirst).
func (t *readTx) bareScan() error {
	if t.bv != nil && t.bv.settleFirst() {
		return errSettleFirst
	}
	return nil
}

// iterate calls fn with a copy of every value under pfx, in key order.
// Callers get copies because badger reuses item memory after Next.
func (t *readTx) iterate(pfx []byte, fn func(key, val []byte) error) error {
	if t.done {
		return errTxDone
	}
	if t.bv != nil && t.bv.covers(pfx) {
		return t.bv.scan(pfx, fn)
	}
	if err := t.bareScan(); err != nil {
		return err
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = pfx
	it := t.txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		t.keysRead++
		item := it.Item()
		val, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("store: read %s: %w", prefix(pfx[0]), err)
		}
		if err := fn(item.KeyCopy(nil), val); err != nil {
			return err
		}
	}
	return nil
}

// Agencies returns every agency ordered by ID (keys are in hash order).
func (t *readTx) Agencies() ([]reference.Agency, error) {
	var out []reference.Agency
	err := t.iterate([]byte{byte(prefixAgency)}, func(_, val []byte) error {
		var a reference.Agency
		if err := decode(prefixAgency, val, &a); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b reference.Agency) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Events returns s's history ordered by At, then ID. Keys order events by
// At, then by the hash of the ID, so equal instants are re-sorted by ID.
func (t *readTx) Events(s inspection.Subject) ([]inspection.Event, error) {
	pfx, err := eventPrefix(s)
	if err != nil {
		return nil, err
	}
	var out []inspection.Event
	err = t.iterate(pfx, func(_, val []byte) error {
		var e inspection.Event
		if err := decode(prefixEvent, val, &e); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortHistory(out)
	return inspection.Current(out), nil
}

// sortHistory orders events by At, then ID: keys order equal instants by
// the hash of the ID, the domain by the ID itself.
func sortHistory(evs []inspection.Event) {
	slices.SortStableFunc(evs, func(a, b inspection.Event) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// ImporterEvents returns the results of an importer's lots, across all
// goods, ordered by At, then ID.
func (t *readTx) ImporterEvents(taxCode string) ([]inspection.Event, error) {
	var out []inspection.Event
	err := t.iterate(idKey(prefixImporterLog, taxCode), func(_, val []byte) error {
		hk, err := unwrap(prefixImporterLog, val)
		if err != nil {
			return fmt.Errorf("store: importer %q history: %w", taxCode, err)
		}
		var e inspection.Event
		if err := t.load(prefixEvent, hk, fmt.Sprintf("importer %q history entry", taxCode), &e); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortHistory(out)
	return inspection.Current(out), nil
}

func (t *readTx) Event(id string) (inspection.Event, error) {
	what := fmt.Sprintf("event %q", id)
	val, err := t.value(idKey(prefixEventByID, id), what)
	if err != nil {
		return inspection.Event{}, err
	}
	hk, err := unwrap(prefixEventByID, val)
	if err != nil {
		return inspection.Event{}, fmt.Errorf("store: %s: %w", what, err)
	}
	var e inspection.Event
	if err := t.load(prefixEvent, hk, what, &e); err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			// The index names a history entry that is gone: corruption,
			// not a missing event, so it must not read as not-found.
			return inspection.Event{}, fmt.Errorf("store: %s: indexed history entry %x is missing", what, hk)
		}
		return inspection.Event{}, err
	}
	if e.ID != id {
		return inspection.Event{}, fmt.Errorf("store: %s: stored record is %q (key hash collision)", what, e.ID)
	}
	return e, nil
}

// OpenAssignments pages through the agency's open-assignment index. The
// cursor is the hex form of the last index key returned: opaque to
// callers, and still valid if that assignment closes in the meantime
// because the scan seeks to the key's position, not to the entry. Index
// keys order by created_at, then by the hash of the assignment ID.
//
// In an Update, badger records the index keys read for conflict detection
// but not the range, so an assignment opened concurrently does not make the
// transaction conflict.
func (t *readTx) OpenAssignments(agency, after string, limit int) ([]inspection.Assignment, string, error) {
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return nil, "", inspection.Invalid("limit", "must be between 1 and %d, got %d", MaxPageSize, limit)
	}
	return t.Queue(inspection.QueueQuery{Agency: agency, Sort: "created", After: after, Limit: limit})
}

// setF writes one key, marking ErrTxnTooBig so the caller can split the
// work, with the key's name made only for an error. Every write reaches it
// through setRecord or setDerived (records.go), or PutAuditEntry.
func (t *writeTx) setF(key, val []byte, whatF func() string) error {
	if t.done {
		return errTxDone
	}
	if err := t.txn.Set(key, val); err != nil {
		return fmt.Errorf("store: write %s: %w", whatF(), badgerErr(err))
	}
	if t.bv != nil {
		t.bv.record(key, val, false)
	}
	return nil
}

func (t *writeTx) delete(key []byte, what string) error {
	if t.done {
		return errTxDone
	}
	if !prefix(key[0]).derived() {
		return fmt.Errorf("store: delete %s: records are never deleted (a bug)", what)
	}
	if err := t.txn.Delete(key); err != nil {
		return fmt.Errorf("store: delete %s: %w", what, badgerErr(err))
	}
	if t.bv != nil {
		t.bv.record(key, nil, true)
	}
	return nil
}

// putDerived encodes v and writes it as derived data.
func (t *writeTx) putDerived(p prefix, key []byte, what string, v any) error {
	val, err := encode(p, v)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return t.setDerived(key, val, func() string { return what })
}

// putID writes a record keyed by its string ID; an empty ID is a caller bug.
func (t *writeTx) putID(p prefix, id string, v any) error {
	if id == "" {
		return fmt.Errorf("store: put %s: empty id", p)
	}
	return t.putRecord(p, idKey(p, id), id, v)
}

func (t *writeTx) PutDeclaration(r declaration.Record) error {
	return t.putID(prefixDeclaration, r.ID, r)
}

// PutDecision writes d and its search index entries (search.go). A
// decision written again keeps its overrides' effect on the entries.
func (t *writeTx) PutDecision(d inspection.Decision) error {
	if d.ID == "" {
		return fmt.Errorf("store: put %s: empty id", prefixDecision)
	}
	ovs, err := t.reindexPrevious(d)
	if err != nil {
		return err
	}
	if err := t.putID(prefixDecision, d.ID, storedForm(d)); err != nil {
		return err
	}
	return t.indexDecision(entryOf(d, ovs))
}

var (
	_ inspection.EncodedWriter = (*writeTx)(nil)
	_ inspection.RecordEncoder = (*DB)(nil)
)

// encoded is a record encoded ahead of its write transaction: the value as
// stored (version byte and JSON) and the SHA-256 of its body.
type encoded struct {
	p   prefix
	val []byte
	sum string
}

// Size is the encoded value's length in bytes.
func (e *encoded) Size() int { return len(e.val) }

func encodeAhead(p prefix, v any) (inspection.Encoded, error) {
	val, err := encode(p, v)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(val[1:])
	return &encoded{p: p, val: val, sum: hex.EncodeToString(sum[:])}, nil
}

// EncodeDecision encodes d as PutDecision would store it, outside any
// transaction, so the single committer need not spend its serial time on
// it (inspection.RecordEncoder).
func (d *DB) EncodeDecision(dec inspection.Decision) (inspection.Encoded, error) {
	return encodeAhead(prefixDecision, storedForm(dec))
}

// EncodeAssignment is EncodeDecision for an assignment.
func (d *DB) EncodeAssignment(a inspection.Assignment) (inspection.Encoded, error) {
	return encodeAhead(prefixAssignment, a)
}

// ownEncoding is e when this store made it for records under p.
func ownEncoding(p prefix, e inspection.Encoded) (*encoded, bool) {
	x, ok := e.(*encoded)
	return x, ok && x != nil && x.p == p
}

// PutDecisionEncoded writes d as encoded ahead by EncodeDecision; an
// encoding from elsewhere is not trusted and d is encoded here.
func (t *writeTx) PutDecisionEncoded(d inspection.Decision, e inspection.Encoded) error {
	x, ok := ownEncoding(prefixDecision, e)
	if !ok {
		return t.PutDecision(d)
	}
	if d.ID == "" {
		return fmt.Errorf("store: put %s: empty id", prefixDecision)
	}
	if err := t.setRecord(prefixDecision, idKey(prefixDecision, d.ID), d.ID, x.val, x.sum); err != nil {
		return err
	}
	// A lot decided in this transaction: no previous entries, no overrides.
	return t.indexDecision(entryOf(d, nil))
}

func (t *writeTx) PutImporter(i reference.Importer) error {
	return t.putID(prefixImporter, i.TaxCode, i)
}

func (t *writeTx) PutAgency(a reference.Agency) error {
	return t.putID(prefixAgency, a.ID, a)
}

func (t *writeTx) PutGoodsState(g inspection.GoodsState) error {
	if g.Key == (identity.Key{}) {
		return errors.New("store: put goods state: zero key")
	}
	return t.putRecord(prefixGoodsState, hashKey(prefixGoodsState, g.Key), g.Key.String(), g)
}

// PutManufacturer keys m by m.Key(), derived from its name and origin.
func (t *writeTx) PutManufacturer(m reference.Manufacturer) error {
	if m.Name == "" {
		return errors.New("store: put manufacturer: empty name")
	}
	k := m.Key()
	if err := t.bumpInput(inspection.Subject{Kind: inspection.SubjectManufacturer, Key: k}.InputSubject()); err != nil {
		return err
	}
	return t.putRecord(prefixManufacture, hashKey(prefixManufacture, k), k.String(), m)
}

func (t *writeTx) PutPolicy(version string, doc []byte) error {
	if version == "" {
		return errors.New("store: put policy: empty version")
	}
	if len(doc) == 0 {
		return fmt.Errorf("store: put policy %q: empty document", version)
	}
	return t.setRecord(prefixPolicy, idKey(prefixPolicy, version), version, encodeRaw(doc), "")
}

// PutAssignment writes a and keeps the queue indexes in step: their
// entries exist exactly while a.Status is active. The previous record is
// read so that an entry whose agency or created_at changed is removed.
// Everything is validated before anything is written.
func (t *writeTx) PutAssignment(a inspection.Assignment) error {
	return t.putAssignment(a, nil)
}

// PutAssignmentEncoded is PutAssignment for a lot decided in this
// transaction, as encoded ahead by EncodeAssignment: no assignment exists
// under the lot's ID yet (inspection.EncodedWriter), so there is no
// previous index entry to look up, a read that misses every level of the
// LSM tree. An encoding from elsewhere is not trusted.
func (t *writeTx) PutAssignmentEncoded(a inspection.Assignment, e inspection.Encoded) error {
	x, ok := ownEncoding(prefixAssignment, e)
	if !ok {
		return t.PutAssignment(a)
	}
	return t.putAssignment(a, x)
}

// putAssignment writes a, encoding it, or, when enc is given, as enc: the
// encoding made ahead for a lot decided in this transaction, which has no
// previous version to unindex. An active assignment (open, accepted,
// sampled) has its entries in the agency's queues (by creation and by
// deadline) and in the due index; they go when it closes or is cancelled,
// and move when its agency or deadline does.
func (t *writeTx) putAssignment(a inspection.Assignment, enc *encoded) error {
	if a.ID == "" {
		return errors.New("store: put assignment: empty id")
	}
	var oldIdx, newIdx [][]byte
	prev, err := inspection.Assignment{}, fault.ErrNotFound
	if enc == nil {
		prev, err = t.Assignment(a.ID)
	}
	switch {
	case err == nil:
		if oldIdx, err = indexKeys(prev); err != nil {
			return fmt.Errorf("store: put assignment %q: previous record: %w", a.ID, err)
		}
	case !errors.Is(err, fault.ErrNotFound):
		return err
	}
	if a.Status.Active() && a.Agency == "" {
		return fmt.Errorf("store: put assignment %q: open without an agency", a.ID)
	}
	if newIdx, err = indexKeys(a); err != nil {
		return fmt.Errorf("store: put assignment %q: %w", a.ID, err)
	}

	if enc != nil {
		err = t.setRecord(prefixAssignment, idKey(prefixAssignment, a.ID), a.ID, enc.val, enc.sum)
	} else {
		err = t.putID(prefixAssignment, a.ID, a)
	}
	if err != nil {
		return err
	}
	what := func() string { return fmt.Sprintf("index entry of assignment %q", a.ID) }
	for _, k := range oldIdx {
		if !slices.ContainsFunc(newIdx, func(n []byte) bool { return bytes.Equal(n, k) }) {
			if err := t.delete(k, what()); err != nil {
				return err
			}
		}
	}
	for _, k := range newIdx {
		if err := t.setDerived(k, encodeRaw([]byte(a.ID)), what); err != nil {
			return err
		}
	}
	return nil
}

// AddEvent appends e to its subject's history and indexes it by ID. History
// is append-only: an ID already recorded is a conflict, never an overwrite,
// so the by-ID index and the history cannot drift apart.
func (t *writeTx) AddEvent(e inspection.Event) error {
	if e.ID == "" {
		return errors.New("store: add event: empty id")
	}
	hk, err := eventKey(e)
	if err != nil {
		return err
	}
	idx := idKey(prefixEventByID, e.ID)
	what := fmt.Sprintf("event %q", e.ID)
	if _, err := t.value(idx, what); err == nil {
		return inspection.Conflict("id", "event %q is already recorded", e.ID)
	} else if !errors.Is(err, fault.ErrNotFound) {
		return err
	}
	if err := t.bumpInput(e.Subject.InputSubject()); err != nil {
		return err
	}
	if e.ImporterTaxCode != "" {
		if err := t.bumpInput(risk.Subject{Kind: risk.KindImporter, ID: e.ImporterTaxCode}); err != nil {
			return err
		}
	}
	if err := t.putRecord(prefixEvent, hk, e.ID, e); err != nil {
		return err
	}
	if e.Kind == inspection.EventResult && e.ImporterTaxCode != "" {
		ik, err := importerLogKey(e)
		if err != nil {
			return err
		}
		if err := t.setDerived(ik, encodeRaw(hk), func() string { return "importer index of " + what }); err != nil {
			return err
		}
	}
	return t.setDerived(idx, encodeRaw(hk), func() string { return "index of " + what })
}

// ActivePolicy is the policy version in force (0x1A, one key).
func (t *readTx) ActivePolicy() (inspection.ActivePolicy, error) {
	var a inspection.ActivePolicy
	err := t.load(prefixActivePolicy, []byte{byte(prefixActivePolicy)}, "active policy", &a)
	return a, err
}

// PutActivePolicy makes a.Version the policy in force; the document must
// be stored already.
func (t *writeTx) PutActivePolicy(a inspection.ActivePolicy) error {
	if a.Version == "" {
		return errors.New("store: put active policy: empty version")
	}
	if _, err := t.Policy(a.Version); err != nil {
		return fmt.Errorf("store: put active policy %q: %w", a.Version, err)
	}
	return t.putDerived(prefixActivePolicy, []byte{byte(prefixActivePolicy)}, "active policy", a)
}

// ImporterSeen reports whether an importer has declared (0x1B | h16(tax
// code), written with its first declaration).
func (t *readTx) ImporterSeen(taxCode string) (bool, error) {
	_, found, err := t.get(idKey(prefixImporterSeen, taxCode), func() string { return "importer seen " + taxCode })
	return found, err
}

// NoteImporter records that an importer has declared.
func (t *writeTx) NoteImporter(taxCode string) error {
	if taxCode == "" {
		return errors.New("store: note importer: empty tax code")
	}
	return t.setDerived(idKey(prefixImporterSeen, taxCode), encodeRaw(nil), func() string { return "importer seen " + taxCode })
}

// IdentityLegacy reports whether the store holds history under identity
// version 1 (0x1C, written once by the service's first start under
// version 2); marked is false before that.
func (t *readTx) IdentityLegacy() (legacy, marked bool, err error) {
	val, found, err := t.get([]byte{byte(prefixIdentity)}, func() string { return "identity version" })
	if err != nil || !found {
		return false, false, err
	}
	b, err := unwrap(prefixIdentity, val)
	if err != nil || len(b) != 1 {
		return false, false, fmt.Errorf("store: identity version: %q", val)
	}
	return b[0] == 1, true, nil
}

// MarkIdentity records whether the store holds identity version 1 history.
func (t *writeTx) MarkIdentity(legacy bool) error {
	b := byte(0)
	if legacy {
		b = 1
	}
	return t.setDerived([]byte{byte(prefixIdentity)}, encodeRaw([]byte{b}), func() string { return "identity version" })
}

// Resembling lists the goods indexed under a resemblance group with their
// product names (0x1D | group | goods key).
func (t *readTx) Resembling(group identity.Key) ([]inspection.Resembling, error) {
	var out []inspection.Resembling
	pfx := append([]byte{byte(prefixResemblance)}, group[:]...)
	err := t.iterate(pfx, func(key, val []byte) error {
		body, err := unwrap(prefixResemblance, val)
		name, match, ok := strings.Cut(string(body), "\x00")
		if err != nil || !ok || len(key) != len(pfx)+identity.KeySize {
			return fmt.Errorf("store: resemblance index entry %x: %v", key, err)
		}
		var k identity.Key
		copy(k[:], key[len(pfx):])
		out = append(out, inspection.Resembling{Goods: k, ProductName: name, Match: match})
		return nil
	})
	return out, err
}

// IndexResemblance puts goods under its resemblance group, with its
// product name as shown and in match form. It is written with the goods'
// first state, which ends the goods being new, and adds a goods new goods
// of the group are compared with: both decision inputs, so the goods' and
// the group's input versions move too.
func (t *writeTx) IndexResemblance(group, goods identity.Key, productName, match string) error {
	if err := t.bumpInput(inspection.Subject{Kind: inspection.SubjectGoods, Key: goods}.InputSubject()); err != nil {
		return err
	}
	if err := t.bumpInput(inspection.ResemblanceSubject(group)); err != nil {
		return err
	}
	key := append(append([]byte{byte(prefixResemblance)}, group[:]...), goods[:]...)
	return t.setDerived(key, encodeRaw([]byte(productName+"\x00"+match)), func() string { return "resemblance index of " + goods.String() })
}

// GoodsLink is the link of goods k into another, if customs made one.
func (t *readTx) GoodsLink(k identity.Key) (inspection.GoodsLink, error) {
	var l inspection.GoodsLink
	err := t.loadF(prefixGoodsLink, hashKey(prefixGoodsLink, k), func() string { return "goods link of " + k.String() }, &l)
	return l, err
}

// LinkedInto lists the goods an active link joins into k.
func (t *readTx) LinkedInto(k identity.Key) ([]identity.Key, error) {
	var out []identity.Key
	pfx := append([]byte{byte(prefixLinkedInto)}, k[:]...)
	err := t.iterate(pfx, func(key, _ []byte) error {
		var from identity.Key
		if len(key) != len(pfx)+identity.KeySize {
			return fmt.Errorf("store: linked-into entry %x", key)
		}
		copy(from[:], key[len(pfx):])
		out = append(out, from)
		return nil
	})
	return out, err
}

// PutGoodsLink writes a link and keeps the linked-into index in step: an
// entry under the target exactly while the link is active. Both goods'
// input versions move, so a decision prepared before reads again.
func (t *writeTx) PutGoodsLink(l inspection.GoodsLink) error {
	if l.From == (identity.Key{}) || l.To == (identity.Key{}) || l.From == l.To {
		return fmt.Errorf("store: put goods link %s → %s", l.From, l.To)
	}
	prev, err := t.GoodsLink(l.From)
	switch {
	case err == nil && prev.Active:
		if err := t.delete(append(append([]byte{byte(prefixLinkedInto)}, prev.To[:]...), l.From[:]...), "linked-into entry"); err != nil {
			return err
		}
	case err != nil && !errors.Is(err, fault.ErrNotFound):
		return err
	}
	for _, k := range []identity.Key{l.From, l.To} {
		if err := t.bumpInput(inspection.Subject{Kind: inspection.SubjectGoods, Key: k}.InputSubject()); err != nil {
			return err
		}
	}
	if err := t.putRecord(prefixGoodsLink, hashKey(prefixGoodsLink, l.From), l.From.String(), l); err != nil {
		return err
	}
	if !l.Active {
		return nil
	}
	idx := append(append([]byte{byte(prefixLinkedInto)}, l.To[:]...), l.From[:]...)
	return t.setDerived(idx, encodeRaw(nil), func() string { return "linked-into entry of " + l.From.String() })
}
