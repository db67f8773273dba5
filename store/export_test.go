package store

import "github.com/dgraph-io/badger/v4"

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
