package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Digest is SHA-256 over every live key and value in key order: two stores
// with the same digest hold the same data. Tests use it to show that a
// refused request changed nothing; verification tools can compare copies.
func (d *DB) Digest() (string, error) {
	if err := d.enter(context.Background()); err != nil {
		return "", err
	}
	defer d.leave()
	h := sha256.New()
	err := d.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		var n [8]byte
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read %x: %w", item.Key(), err)
			}
			for _, b := range [][]byte{item.Key(), v} {
				binary.BigEndian.PutUint64(n[:], uint64(len(b)))
				h.Write(n[:])
				h.Write(b)
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("store: digest: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
