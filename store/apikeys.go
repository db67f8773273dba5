package store

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/ktcn/ktcn/inspection/access"
)

// API keys live under 0x0D | h16(key id). The record holds the key's
// principal, lifetime and a hash of its secret; the token itself never
// reaches the store (inspection.Access hashes it before calling here).

func (t *readTx) APIKey(id string) (access.APIKey, error) {
	return loadID(t, prefixAPIKey, id, func(k *access.APIKey) string { return k.ID })
}

// APIKeys returns every key ordered by creation time, then ID (keys are in
// hash order). Keys are few (one per agency, system and person), so a
// full scan is fine; revoked and expired keys stay listed for the record.
func (t *readTx) APIKeys() ([]access.APIKey, error) {
	var out []access.APIKey
	err := t.iterate([]byte{byte(prefixAPIKey)}, func(_, val []byte) error {
		var k access.APIKey
		if err := decode(prefixAPIKey, val, &k); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b access.APIKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// PutAPIKey writes k. A record without a secret hash is refused: it would
// be a key no token can match, which only a bug produces.
func (t *writeTx) PutAPIKey(k access.APIKey) error {
	if k.SecretHash == "" {
		return fmt.Errorf("store: put API key %q: no secret hash", k.ID)
	}
	return t.putID(prefixAPIKey, k.ID, k)
}
