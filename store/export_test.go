package store

import (
	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/y"
)

// Hooks for the black-box tests in package store_test: they plant bytes
// that a correct build never writes (a newer schema, an unknown encoding).

func PutRaw(d *DB, key, val []byte) error {
	return d.db.Update(func(txn *badger.Txn) error { return txn.Set(key, val) })
}

func DeleteRaw(d *DB, key []byte) error {
	return d.db.Update(func(txn *badger.Txn) error { return txn.Delete(key) })
}

func SchemaKey() []byte            { return schemaKey() }
func EncodeSchema(v uint32) []byte { return encodeSchema(v) }
func DecisionKey(id string) []byte { return idKey(prefixDecision, id) }

// BareSet writes raw bytes inside an Update, for the group-commit floor
// benchmark (no encoding, no domain).
func BareSet(tx any, key, val []byte) error {
	return tx.(*writeTx).setF(append([]byte{0xEE}, key...), val, func() string { return "bench" })
}

// OpenWith opens with badger options a caller altered, to show Open's
// guard refuses a configuration that would acknowledge unsynced writes.
func OpenWith(opts Options, alter func(badger.Options) badger.Options) (*DB, error) {
	bo, err := badgerOptions(opts)
	if err != nil {
		return nil, err
	}
	return open(opts, alter(bo))
}

// SyncWrites reports whether the open store syncs every commit.
func SyncWrites(d *DB) bool { return d.db.Opts().SyncWrites }

// KeysRead is how many keys tx has read: point reads and scanned entries,
// so a test can bound what a search costs.
func KeysRead(tx any) int {
	switch t := tx.(type) {
	case *readTx:
		return t.keysRead
	case *writeTx:
		return t.keysRead
	}
	return -1
}

// DropDecisionIndexes removes the decision search's indexes and their
// marker, as a store written before them has none.
func DropDecisionIndexes(d *DB) error {
	var ps [][]byte
	for p := prefixDecisionByTime; p <= prefixDecisionIndexed; p++ {
		ps = append(ps, []byte{byte(p)})
	}
	return d.db.DropPrefix(ps...)
}

// CountDecisionIndexKeys counts the keys under the decision indexes.
func CountDecisionIndexKeys(d *DB) (n int, err error) {
	err = d.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if p := prefix(it.Item().Key()[0]); p >= prefixDecisionByTime && p <= prefixDecisionByAgency {
				n++
			}
		}
		return nil
	})
	return n, err
}

// DropLedger deletes every effectiveness-ledger tally, leaving a store as
// one whose decisions predate the ledger.
func DropLedger(d *DB) error { return d.db.DropPrefix([]byte{byte(prefixLedger)}) }

// LevelsOverTarget is how many LSM levels badger would compact now.
func LevelsOverTarget(d *DB) int { return d.levelsOverTarget() }

// PrefixSize is what one key prefix holds in the store: its keys, their
// key and value bytes as stored before badger's compression, and an
// estimate of what they take compressed as the store compresses them.
type PrefixSize struct {
	Prefix     byte
	Name       string
	Keys       int64
	KeyBytes   int64
	ValueBytes int64
	// Compressed is the prefix's keys and values, in key order, cut into
	// blocks of the store's block size and each compressed with ZSTD at
	// level 1, as store.Open's tables are: an estimate of its share on
	// disk, without the tables' per-entry headers, indexes and bloom
	// filters.
	Compressed int64
}

// PrefixSizes counts every live key of the store by prefix (latest
// versions only), for BenchmarkBytesPerDecision's breakdown of what the
// bytes on disk are made of.
func PrefixSizes(d *DB) ([]PrefixSize, error) {
	by := map[byte]*PrefixSize{}
	block := d.db.Opts().BlockSize
	var (
		buf, out []byte
		cur      *PrefixSize
	)
	flush := func() error {
		if cur == nil || len(buf) == 0 {
			return nil
		}
		c, err := y.ZSTDCompress(out, buf, 1)
		if err != nil {
			return err
		}
		cur.Compressed += int64(len(c))
		buf, out = buf[:0], c[:0]
		return nil
	}
	err := d.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			p := by[k[0]]
			if p == nil {
				p = &PrefixSize{Prefix: k[0], Name: prefix(k[0]).String()}
				by[k[0]] = p
			}
			if p != cur || len(buf) >= block {
				if err := flush(); err != nil {
					return err
				}
				cur = p
			}
			p.Keys++
			p.KeyBytes += int64(len(k))
			p.ValueBytes += item.ValueSize()
			buf = append(buf, k...)
			if err := item.Value(func(v []byte) error { buf = append(buf, v...); return nil }); err != nil {
				return err
			}
		}
		return flush()
	})
	list := make([]PrefixSize, 0, len(by))
	for _, p := range by {
		list = append(list, *p)
	}
	return list, err
}

// Flatten compacts the whole LSM tree into one level (badger's Flatten),
// as a long-lived store ends up after compaction.
func Flatten(d *DB) error { return d.db.Flatten(2) }
