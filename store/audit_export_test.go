package store

import "github.com/dgraph-io/badger/v4"

// Hooks for the audit tamper tests in package store_test: raw access to
// the chain's keys, as someone holding the data dir has.

func AuditEntryKey(seq uint64) []byte { return auditEntryKey(seq) }
func AuditHeadKey() []byte            { return auditHeadKey() }

// EncodeRaw wraps bytes as the store writes a value (version byte first).
func EncodeRaw(b []byte) []byte { return encodeRaw(b) }

// GetRaw reads a value as stored.
func GetRaw(d *DB, key []byte) ([]byte, error) {
	var out []byte
	err := d.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	return out, err
}
