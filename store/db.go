package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
)

// SchemaVersion is the on-disk layout this build writes and reads (the key
// layout in the package doc and the value encoding). Bump it when either
// changes incompatibly, and migrate on Open.
//
// Version 2 stores a decision's explanation with its events by ID
// (decision.go). A build of version 1 would read such a decision with no
// events, silently, so the bump makes it refuse the store instead. A
// version 1 store needs no rewrite (its decisions, events inline, read as
// written): Open marks it version 2, since what it writes from then on is.
//
// Version 3 stores an explanation's risk scores compacted, without what
// each derives from the rest (decision.go); a version 2 build would read
// them as absent. Older stores read as written and are marked 3 the same
// way.
const SchemaVersion uint32 = 3

// oldestSchema is the oldest version this build reads (and upgrades).
const oldestSchema uint32 = 1

// MaxUpdateAttempts bounds how often Update re-runs fn after a write
// conflict before giving up with CodeUnavailable.
const MaxUpdateAttempts = 64

var (
	// ErrSchemaVersion is wrapped by Open when the store was written by a
	// newer build (or is otherwise not a layout this build can read).
	ErrSchemaVersion = errors.New("unsupported schema version")
	// ErrTxnTooBig is wrapped when one transaction holds more than badger
	// accepts in one commit (15% of the memtable: about 9.6 MiB by
	// default, about 150 KiB with Options.Small); split the work.
	ErrTxnTooBig = errors.New("transaction too big")
	// ErrClosed is wrapped (in a CodeUnavailable error) by View and Update
	// once Close has begun.
	ErrClosed = errors.New("store closed")
)

// Options configure Open.
type Options struct {
	// Dir is the badger directory. Required unless InMemory.
	Dir string
	// InMemory keeps everything in memory (tests); Dir must be empty.
	InMemory bool
	// Logger receives the store's and badger's log lines. The zero Logger
	// discards them.
	Logger zerolog.Logger
	// Small shrinks badger's buffers for tests: 1 MiB memtables (two of
	// them), 1 MiB value-log files, a 1 MiB block cache and two compactors,
	// instead of 64 MiB memtables (five), 1 GiB value-log files and a
	// 256 MiB block cache. Opening is then fast and a store costs a few MiB.
	// It also lowers the largest transaction to about 150 KiB (see
	// ErrTxnTooBig), so do not use it in production.
	Small bool
	// DirectCommit gives every Update its own synced transaction (retried
	// on conflict) instead of group commit. It exists to measure what group
	// commit buys; production leaves it off.
	DirectCommit bool
	// BulkLoad commits without waiting for each commit to reach the disk;
	// Close syncs. Commits stay atomic and in order, so a crash leaves the
	// store as it was after some earlier commit, but one acknowledged since
	// may be lost: only for loading generated history into a new store,
	// which is loaded again if it was interrupted (ktcn fixtures generate
	// -data-dir -bulk). One synced commit per declaration is what bounds a
	// replay's rate (a few hundred lots a second); never for serving.
	BulkLoad bool
}

// DB is the badger-backed inspection.Store. It is safe for concurrent use.
type DB struct {
	db        *badger.DB
	log       zerolog.Logger
	committer *committer // nil with DirectCommit

	// mu guards closed and active, so Close can wait for transactions in
	// flight instead of pulling badger out from under them (badger panics
	// when an iterator is created on a closed DB).
	mu     sync.Mutex
	idle   *sync.Cond // signalled when active drops to zero
	closed bool
	active int

	// pinging is set while a Ping's update is queued (ping.go), so a
	// stuck committer costs one waiting goroutine, not one per probe.
	pinging atomic.Bool

	bulk bool // Options.BulkLoad: Close syncs what the commits did not

	stopWALAdvice func() // waladvice_linux.go
}

var _ inspection.Store = (*DB)(nil)

// Open opens (creating if needed) the store described by opts, with
// SyncWrites on: Update returns only after its commit is on disk.
func Open(opts Options) (*DB, error) {
	bo, err := badgerOptions(opts)
	if err != nil {
		return nil, err
	}
	return open(opts, bo)
}

// ErrNotDurable is returned by Open for badger options without SyncWrites
// on disk: every acknowledgement promises the write is synced.
var ErrNotDurable = errors.New("store: refusing to open without SyncWrites")

func open(opts Options, bo badger.Options) (*DB, error) {
	if !bo.InMemory && !bo.SyncWrites && !opts.BulkLoad {
		return nil, ErrNotDurable
	}
	where := opts.Dir
	if opts.InMemory {
		where = "(in memory)"
	}
	bdb, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", where, err)
	}
	d := &DB{db: bdb, log: opts.Logger, bulk: opts.BulkLoad, stopWALAdvice: func() {}}
	if !opts.InMemory {
		d.stopWALAdvice = startWALAdvice(opts.Dir, opts.Logger)
	}
	d.idle = sync.NewCond(&d.mu)
	if err := d.checkSchema(); err != nil {
		d.stopWALAdvice()
		if cerr := bdb.Close(); cerr != nil {
			d.log.Error().Err(cerr).Str("dir", where).Msg("store: close after failed open")
		}
		return nil, fmt.Errorf("store: open %s: %w", where, err)
	}
	if !opts.DirectCommit {
		d.committer = newCommitter(bdb)
	}
	if n, err := d.buildDecisionIndexes(context.Background()); err != nil {
		if cerr := d.Close(); cerr != nil {
			d.log.Error().Err(cerr).Str("dir", where).Msg("store: close after failed open")
		}
		return nil, fmt.Errorf("store: open %s: index decisions: %w", where, err)
	} else if n > 0 {
		d.log.Info().Int("decisions", n).Msg("store: decisions indexed for search (first open since the search)")
	}
	d.log.Info().Str("dir", where).Bool("small", opts.Small).Bool("group_commit", !opts.DirectCommit).
		Uint32("schema", SchemaVersion).Msg("store opened")
	return d, nil
}

func badgerOptions(opts Options) (badger.Options, error) {
	var bo badger.Options
	switch {
	case opts.InMemory && opts.Dir != "":
		return bo, errors.New("store: open: Dir and InMemory are exclusive")
	case opts.InMemory:
		bo = badger.DefaultOptions("").WithInMemory(true)
	case opts.Dir == "":
		return bo, errors.New("store: open: Dir is required unless InMemory")
	default:
		bo = badger.DefaultOptions(opts.Dir)
	}
	// SyncWrites is off by default in badger v4; without it an acknowledged
	// write can be lost on power failure.
	bo = bo.WithSyncWrites(true).
		WithLogger(badgerLogger{log: opts.Logger.With().Str("component", "badger").Logger()})
	// Tables compress with ZSTD (level 1) over 32 KiB blocks, not badger's
	// Snappy over 4 KiB: a 4 KiB block holds one decision, so it could only
	// be squeezed alone, while 32 KiB lets the compressor find what records
	// share (field names, goods, policy, reasons). It takes a store from
	// 3.7 KB to 1.6 KB a decision after compaction, the fill's rate within
	// the noise (docs/performance.md, Bytes on disk per decision). Tables
	// written before keep their compression (badger records it per table
	// in its manifest) and are rewritten in the new one as compaction
	// reaches them.
	bo = bo.WithCompression(options.ZSTD).WithZSTDCompressionLevel(1).WithBlockSize(32 << 10)
	if opts.BulkLoad {
		bo = bo.WithSyncWrites(false)
	}
	if !opts.Small {
		// Levels sized for 64 MiB memtables: badger's 10 MiB base level
		// is a sixth of one memtable, so every flush to level 0 cascaded
		// through levels of 10, 100 and 1,000 MiB. With a 256 MiB base
		// level (what five level-0 tables hold) and 8 MiB tables a store
		// of a few GiB has three levels instead of four, and each byte is
		// rewritten fewer times: a closed loop of 90 s from an empty
		// store, growing it by ~150,000 decisions, decided 1,796 and
		// 1,801 a second against 1,423 and 1,459 (docs/performance.md).
		bo = bo.WithBaseLevelSize(256 << 20).WithBaseTableSize(8 << 20)
	} else {
		bo = bo.WithMemTableSize(1 << 20).
			WithNumMemtables(2).
			WithValueLogFileSize(1 << 20).
			// ValueThreshold must not exceed the batch size (15% of the
			// memtable); 64 KiB still keeps all our records in the LSM,
			// as the 1 MiB default does in production.
			WithValueThreshold(64 << 10).
			// Compression is on, so badger needs a non-zero block cache.
			WithBlockCacheSize(1 << 20).
			WithNumCompactors(2)
	}
	return bo, nil
}

// checkSchema writes the schema version into a new store and refuses a store
// written by a newer build, or a non-empty directory without a version.
func (d *DB) checkSchema() error {
	return d.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(schemaKey())
		if errors.Is(err, badger.ErrKeyNotFound) {
			it := txn.NewIterator(badger.IteratorOptions{})
			it.Rewind()
			empty := !it.Valid()
			it.Close()
			if !empty {
				return fmt.Errorf("%w: the store holds data but no schema version", ErrSchemaVersion)
			}
			return txn.Set(schemaKey(), encodeSchema(SchemaVersion))
		}
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		val, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		v, err := decodeSchema(val)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSchemaVersion, err)
		}
		if v < oldestSchema || v > SchemaVersion {
			return fmt.Errorf("%w: the store is at version %d, this build reads versions %d to %d", ErrSchemaVersion, v, oldestSchema, SchemaVersion)
		}
		if v < SchemaVersion {
			d.log.Info().Uint32("from", v).Uint32("to", SchemaVersion).Msg("store: schema version upgraded (no record rewritten)")
			return txn.Set(schemaKey(), encodeSchema(SchemaVersion))
		}
		return nil
	})
}

// Close waits for transactions in flight, then closes badger. Later calls
// return nil; View and Update called after Close has begun fail with
// ErrClosed.
func (d *DB) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for d.active > 0 {
		d.idle.Wait()
	}
	d.mu.Unlock()
	if d.committer != nil {
		d.committer.stop()
	}
	d.stopWALAdvice()
	if d.bulk {
		if err := d.db.Sync(); err != nil {
			return fmt.Errorf("store: close: sync the bulk load: %w", err)
		}
	}
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	d.log.Info().Msg("store closed")
	return nil
}

// enter registers a transaction in flight; leave must follow.
func (d *DB) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return &fault.Error{Code: fault.Unavailable, Message: "store: request abandoned", Err: err}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return &fault.Error{Code: fault.Unavailable, Err: ErrClosed}
	}
	d.active++
	return nil
}

func (d *DB) leave() {
	d.mu.Lock()
	d.active--
	if d.active == 0 {
		d.idle.Broadcast()
	}
	d.mu.Unlock()
}

// View runs fn in a read-only transaction over a consistent snapshot and
// returns fn's error unchanged.
func (d *DB) View(ctx context.Context, fn func(inspection.ReadTx) error) error {
	if err := d.enter(ctx); err != nil {
		return err
	}
	defer d.leave()
	txn := d.db.NewTransaction(false)
	defer txn.Discard()
	tx := &readTx{txn: txn}
	defer func() { tx.done = true }()
	return fn(tx)
}

// Update runs fn atomically and returns nil only once its writes are
// synced to disk. If fn fails, nothing of it is written and fn's error is
// returned unchanged. By default fn joins the group commit (see
// committer.go): it runs in a batch transaction after the functions queued
// before it, and may run more than once. With DirectCommit it runs in its
// own transaction; on a write conflict the attempt is discarded and fn
// runs again after a short random pause, up to MaxUpdateAttempts times,
// then Update fails with CodeUnavailable. Cancelling ctx abandons a request
// not yet run, never one already in a commit.
//
// A transaction that writes a record must append an audit entry covering
// exactly the records it wrote (inspection's write path does); otherwise
// Update fails with ErrUnaudited and commits nothing (records.go).
func (d *DB) Update(ctx context.Context, fn func(inspection.Tx) error) error {
	return d.update(ctx, fn, false)
}

// UpdateRaw is Update without the audit check: records may be written
// with no entry covering them. Nothing in ktcn's domain reaches it (its
// Store interface has only Update); it is for tests that play someone with
// write access to the data directory, whose writes verify audit must then
// find, and for repairs by hand.
func (d *DB) UpdateRaw(ctx context.Context, fn func(inspection.Tx) error) error {
	return d.update(ctx, fn, true)
}

func (d *DB) update(ctx context.Context, fn func(inspection.Tx) error, raw bool) error {
	if err := d.enter(ctx); err != nil {
		return err
	}
	defer d.leave()
	if d.committer != nil {
		return d.committer.submit(ctx, fn, raw)
	}
	var conflict error
	for attempt := 1; attempt <= MaxUpdateAttempts; attempt++ {
		retry, err := d.try(fn, raw)
		if !retry {
			return err
		}
		conflict = err
		if err := pause(ctx, attempt); err != nil {
			return &fault.Error{Code: fault.Unavailable,
				Message: fmt.Sprintf("store: request abandoned after %d conflicting attempts", attempt), Err: err}
		}
	}
	d.log.Warn().Int("attempts", MaxUpdateAttempts).Msg("store: update gave up on write conflicts")
	return &fault.Error{Code: fault.Unavailable,
		Message: fmt.Sprintf("store: write conflict persisted over %d attempts", MaxUpdateAttempts), Err: conflict}
}

// CommitStats reports what group commit has done since Open (zero with
// DirectCommit).
func (d *DB) CommitStats() CommitStats {
	if d.committer == nil {
		return CommitStats{}
	}
	return d.committer.snapshot()
}

// try runs one attempt; retry reports a write conflict at commit.
func (d *DB) try(fn func(inspection.Tx) error, raw bool) (retry bool, err error) {
	txn := d.db.NewTransaction(true)
	defer txn.Discard()
	tx := &writeTx{readTx: readTx{txn: txn}, raw: raw}
	if ferr := tx.finish(fn(tx)); ferr != nil {
		return false, ferr
	}
	if err := txn.Commit(); err != nil {
		if errors.Is(err, badger.ErrConflict) {
			return true, err
		}
		return false, fmt.Errorf("store: commit: %w", badgerErr(err))
	}
	return false, nil
}

// pause sleeps a random time up to a bound that doubles per attempt from
// 100µs to 5ms; the randomness spreads contenders for a hot key apart.
func pause(ctx context.Context, attempt int) error {
	if err := ctx.Err(); err != nil {
		// Checked first: with both ready, select would pick at random, and
		// a pause as short as a nanosecond often finds its timer fired.
		return err
	}
	bound := min(100*time.Microsecond<<min(attempt, 6), 5*time.Millisecond)
	t := time.NewTimer(rand.N(bound) + 1)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
