package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/store"
)

// TestEncodedWritesAreANewLotsWrites: a new lot's decision and assignment
// written as encoded ahead (inspection.EncodedWriter, which skips the look
// for a previous version) leave the store byte for byte as PutDecision and
// PutAssignment leave it: records, search and queue index entries.
func TestEncodedWritesAreANewLotsWrites(t *testing.T) {
	plain, ahead := openMemory(t), openMemory(t)
	const lots = 60
	write := func(db *store.DB, encoded bool) {
		t.Helper()
		err := db.UpdateRaw(context.Background(), func(tx inspection.Tx) error {
			w := tx.(inspection.EncodedWriter)
			for i := range lots {
				d := searchDecision(i)
				var a *inspection.Assignment
				if d.Inspect {
					a = &inspection.Assignment{ID: identity.AssignmentID(d.DeclarationID, d.LineNo), DecisionID: d.ID,
						DeclarationID: d.DeclarationID, LineNo: d.LineNo, ImporterTaxCode: d.ImporterTaxCode, Agency: d.Agency,
						Mode: d.Mode, Check: "documents", Goods: d.Goods, CreatedAt: d.DecidedAt,
						DueAt: d.DecidedAt.Add(48 * time.Hour), Status: inspection.AssignmentOpen}
					d.AssignmentID = a.ID
				}
				if !encoded {
					if a != nil {
						if err := tx.PutAssignment(*a); err != nil {
							return err
						}
					}
					if err := tx.PutDecision(d); err != nil {
						return err
					}
					continue
				}
				if a != nil {
					e, err := db.EncodeAssignment(*a)
					if err != nil {
						return err
					}
					if err := w.PutAssignmentEncoded(*a, e); err != nil {
						return err
					}
				}
				e, err := db.EncodeDecision(d)
				if err != nil {
					return err
				}
				if err := w.PutDecisionEncoded(d, e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	write(plain, false)
	write(ahead, true)
	want, err := plain.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ahead.Digest(); err != nil || got != want {
		t.Fatalf("encoded ahead: store digest %s (%v), written plainly %s", got, err, want)
	}
}
