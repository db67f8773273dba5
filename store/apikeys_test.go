package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/store"
)

func sampleKey(id string, created time.Time) access.APIKey {
	return access.APIKey{ID: id, Principal: access.Principal{Name: "agency:moh-nifc", Role: access.RoleAgency, Agency: "moh-nifc"},
		SecretHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", CreatedAt: created, CreatedBy: "admin",
		ExpiresAt: created.Add(time.Hour)}
}

func TestAPIKeys(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB) {
		k1, k2, k3 := sampleKey("00000000000000bb", t0), sampleKey("00000000000000aa", t0), sampleKey("0000000000000001", t0.Add(-time.Second))
		update(t, db, func(tx inspection.Tx) error {
			for _, k := range []access.APIKey{k1, k2, k3} {
				if err := tx.PutAPIKey(k); err != nil {
					return err
				}
			}
			return nil
		})
		revoked := k1
		at := t0.Add(time.Minute)
		revoked.RevokedAt, revoked.RevokedBy = &at, "admin:x"
		update(t, db, func(tx inspection.Tx) error { return tx.PutAPIKey(revoked) })
		view(t, db, func(tx inspection.ReadTx) error {
			got, err := tx.APIKey(k1.ID)
			if err != nil || !reflect.DeepEqual(got, revoked) {
				t.Errorf("APIKey = %+v, %v; want %+v", got, err, revoked)
			}
			if _, err := tx.APIKey("ffffffffffffffff"); !errors.Is(err, fault.ErrNotFound) {
				t.Errorf("missing key: %v, want ErrNotFound", err)
			}
			list, err := tx.APIKeys()
			if err != nil {
				return err
			}
			var ids []string
			for _, k := range list {
				ids = append(ids, k.ID)
			}
			// Oldest first, then by ID.
			if want := []string{k3.ID, k2.ID, k1.ID}; !reflect.DeepEqual(ids, want) {
				t.Errorf("APIKeys order %v, want %v", ids, want)
			}
			return nil
		})
		err := db.UpdateRaw(t.Context(), func(tx inspection.Tx) error {
			k := sampleKey("0000000000000002", t0)
			k.SecretHash = ""
			return tx.PutAPIKey(k)
		})
		if err == nil {
			t.Error("a key without a secret hash was stored")
		}
	})
}
