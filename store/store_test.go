package store_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/store"
)

// openDir opens a Small store in dir and closes it when the test ends.
func openDir(tb testing.TB, dir string) *store.DB {
	tb.Helper()
	db, err := store.Open(store.Options{Dir: dir, Small: true})
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

func openMemory(tb testing.TB) *store.DB {
	return openWith(tb, store.Options{InMemory: true, Small: true})
}

// openDirect is an in-memory store where every Update commits its own
// transaction (no group commit), for the conflict-retry path.
func openDirect(tb testing.TB) *store.DB {
	return openWith(tb, store.Options{InMemory: true, Small: true, DirectCommit: true})
}

func openWith(tb testing.TB, opts store.Options) *store.DB {
	tb.Helper()
	db, err := store.Open(opts)
	if err != nil {
		tb.Fatalf("Open(in memory): %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

// backends runs f against a store on disk and one in memory.
func backends(t *testing.T, f func(t *testing.T, db *store.DB)) {
	t.Run("disk", func(t *testing.T) { f(t, openDir(t, t.TempDir())) })
	t.Run("memory", func(t *testing.T) { f(t, openMemory(t)) })
	t.Run("direct commit", func(t *testing.T) { f(t, openDirect(t)) })
}

func update(tb testing.TB, db *store.DB, fn func(inspection.Tx) error) {
	tb.Helper()
	if err := db.UpdateRaw(context.Background(), fn); err != nil {
		tb.Fatalf("Update: %v", err)
	}
}

func view(tb testing.TB, db *store.DB, fn func(inspection.ReadTx) error) {
	tb.Helper()
	if err := db.View(context.Background(), fn); err != nil {
		tb.Fatalf("View: %v", err)
	}
}

// t0 is in UTC without a monotonic reading, so records compare equal with
// reflect.DeepEqual after a JSON round trip.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)

var goods = identity.Goods{
	HSCode: "04021000", ProductName: "skim milk powder", Brand: "acme",
	Manufacturer: "acme dairy", Origin: "NZ",
}

func sampleDeclaration() declaration.Record {
	return declaration.Record{
		ID: "DECL-1", ImporterTaxCode: "0101234567", Digest: "abc123",
		DecidedAt: t0, DecisionIDs: []string{"DECL-1/1", "DECL-1/2"},
	}
}

func sampleDecision() inspection.Decision {
	until := t0.Add(365 * 24 * time.Hour)
	return inspection.Decision{
		ID: "DECL-1/1", DeclarationID: "DECL-1", LineNo: 1, ImporterTaxCode: "0101234567",
		Goods: goods, GoodsKey: goods.Key(), Procedure: policy.ProcedureFoodSafety,
		Mode: inspection.ModeReduced, Inspect: true, Agency: "AG-1", AssignmentID: "AS-1",
		Reason: "random sample", PolicyVersion: "2025.1", DecidedAt: t0,
		Explanation: inspection.Explanation{
			Rule: "reduced.consecutive_passes", Reason: "three passes", Progress: "3 of 3",
			EventsSeen: 4,
			// The explanation cites a recorded event: the store keeps its
			// ID and reads the rest from the event (decision.go).
			Events:      []inspection.EventRef{citedEvent().Ref()},
			Certificate: &reference.Certificate{Kind: "HACCP", Number: "H-9", ValidUntil: until},
			Exemption:   "quality_importer",
			ExemptUntil: &until,
		},
	}
}

func sampleAssignment() inspection.Assignment {
	return inspection.Assignment{
		ID: "AS-1", DecisionID: "DECL-1/1", DeclarationID: "DECL-1", LineNo: 1,
		ImporterTaxCode: "0101234567", Agency: "AG-1", Mode: inspection.ModeStrict,
		Check: "documents_and_sampling", Goods: goods, GoodsKey: goods.Key(),
		Procedure: policy.ProcedureQuality, CreatedAt: t0, DueAt: t0.Add(48 * time.Hour),
		Status: inspection.AssignmentClosed,
		Result: &inspection.Result{
			Outcome: inspection.OutcomeFail, InspectedAt: t0.Add(time.Hour),
			Findings:  []inspection.Finding{{Code: "F1", Text: "aflatoxin over limit"}},
			LabReport: "LR-7", RejectedQuantity: 12.5, Partial: true,
			RecordedAt: t0.Add(2 * time.Hour), Source: "agency:AG-1",
		},
	}
}

func sampleEvent() inspection.Event {
	return inspection.Event{
		ID: "EV-1", Kind: inspection.EventResult,
		Subject: inspection.Subject{Kind: inspection.SubjectGoods, Key: goods.Key()},
		At:      t0, RecordedAt: t0.Add(time.Minute), Outcome: inspection.OutcomePass,
		ImporterTaxCode: "0101234567", DecisionID: "DECL-1/1", AssignmentID: "AS-1",
		Mode: inspection.ModeNormal, Authority: "MOH", Reference: "R-1", Reason: "why",
		Source: "agency:AG-1",
	}
}

// citedEvent is the event sampleDecision's explanation cites: an earlier
// result, of other goods (the round trips of sampleEvent's subject's
// history expect it alone).
func citedEvent() inspection.Event {
	e := sampleEvent()
	other := goods
	other.ProductName += " (other)"
	e.Subject.Key = other.Key()
	e.ID, e.At, e.RecordedAt, e.DecisionID, e.AssignmentID = "EV-0", t0.Add(-time.Hour), t0.Add(-time.Hour), "DECL-0/1", "AS-0"
	return e
}

func sampleGoodsState() inspection.GoodsState {
	return inspection.GoodsState{
		Key: goods.Key(), Goods: goods, Mode: inspection.ModeReduced, Rule: "reduced.consecutive_passes",
		Progress: "3 of 3", Lots: 7, Results: 3, PolicyVersion: "2025.1", UpdatedAt: t0,
	}
}

func sampleManufacturer() reference.Manufacturer {
	return reference.Manufacturer{
		Name: "acme dairy", Origin: "NZ",
		Certificates: []reference.Certificate{{Kind: "ISO 22000", Number: "I-1", ValidUntil: t0}},
	}
}

var (
	sampleImporter = reference.Importer{TaxCode: "0101234567", Name: "Nhập khẩu ABC", ComplianceLevel: "high"}
	sampleAgency   = reference.Agency{ID: "AG-1", Name: "Lab One", NameVI: "Phòng thí nghiệm Một", Ministry: "MOH", City: "Hà Nội"}
	samplePolicy   = []byte(`{"version":"2025.1","rules":[]}`)
)

// roundTrips lists every record type: how to write it, how to read it back
// and what must come back.
func roundTrips() []struct {
	name string
	put  func(inspection.Tx) error
	get  func(inspection.ReadTx) (any, error)
	want any
} {
	return []struct {
		name string
		put  func(inspection.Tx) error
		get  func(inspection.ReadTx) (any, error)
		want any
	}{
		{"declaration",
			func(tx inspection.Tx) error { return tx.PutDeclaration(sampleDeclaration()) },
			func(tx inspection.ReadTx) (any, error) { return tx.Declaration("DECL-1") },
			sampleDeclaration()},
		{"decision",
			func(tx inspection.Tx) error {
				if err := tx.AddEvent(citedEvent()); err != nil {
					return err
				}
				return tx.PutDecision(sampleDecision())
			},
			func(tx inspection.ReadTx) (any, error) { return tx.Decision("DECL-1/1") },
			sampleDecision()},
		{"assignment",
			func(tx inspection.Tx) error { return tx.PutAssignment(sampleAssignment()) },
			func(tx inspection.ReadTx) (any, error) { return tx.Assignment("AS-1") },
			sampleAssignment()},
		{"event by id",
			func(tx inspection.Tx) error { return tx.AddEvent(sampleEvent()) },
			func(tx inspection.ReadTx) (any, error) { return tx.Event("EV-1") },
			sampleEvent()},
		{"events of subject",
			func(tx inspection.Tx) error { return tx.AddEvent(sampleEvent()) },
			func(tx inspection.ReadTx) (any, error) { return tx.Events(sampleEvent().Subject) },
			[]inspection.Event{sampleEvent()}},
		{"goods state",
			func(tx inspection.Tx) error { return tx.PutGoodsState(sampleGoodsState()) },
			func(tx inspection.ReadTx) (any, error) { return tx.GoodsState(goods.Key()) },
			sampleGoodsState()},
		{"manufacturer",
			func(tx inspection.Tx) error { return tx.PutManufacturer(sampleManufacturer()) },
			func(tx inspection.ReadTx) (any, error) {
				return tx.Manufacturer(identity.ManufacturerKey("ACME  Dairy", "nz"))
			},
			sampleManufacturer()},
		{"importer",
			func(tx inspection.Tx) error { return tx.PutImporter(sampleImporter) },
			func(tx inspection.ReadTx) (any, error) { return tx.Importer("0101234567") },
			sampleImporter},
		{"agency",
			func(tx inspection.Tx) error { return tx.PutAgency(sampleAgency) },
			func(tx inspection.ReadTx) (any, error) { return tx.Agency("AG-1") },
			sampleAgency},
		{"agencies",
			func(tx inspection.Tx) error { return tx.PutAgency(sampleAgency) },
			func(tx inspection.ReadTx) (any, error) { return tx.Agencies() },
			[]reference.Agency{sampleAgency}},
		{"policy",
			func(tx inspection.Tx) error { return tx.PutPolicy("2025.1", samplePolicy) },
			func(tx inspection.ReadTx) (any, error) { return tx.Policy("2025.1") },
			samplePolicy},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range roundTrips() {
		t.Run(tc.name, func(t *testing.T) {
			backends(t, func(t *testing.T, db *store.DB) {
				update(t, db, tc.put)
				var got any
				var err error
				// Read inside the writing transaction too: badger serves
				// pending writes from the transaction itself.
				update(t, db, func(tx inspection.Tx) error {
					got, err = tc.get(tx)
					return nil
				})
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("in Update: got %+v, %v\nwant %+v", got, err, tc.want)
				}
				view(t, db, func(tx inspection.ReadTx) error {
					got, err = tc.get(tx)
					return nil
				})
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("in View: got %+v, %v\nwant %+v", got, err, tc.want)
				}
			})
		})
	}
}

func TestPutOverwrites(t *testing.T) {
	db := openMemory(t)
	update(t, db, func(tx inspection.Tx) error { return tx.PutImporter(sampleImporter) })
	changed := sampleImporter
	changed.ComplianceLevel = "non_compliant"
	update(t, db, func(tx inspection.Tx) error { return tx.PutImporter(changed) })
	view(t, db, func(tx inspection.ReadTx) error {
		got, err := tx.Importer(changed.TaxCode)
		if err != nil || got != changed {
			t.Errorf("Importer = %+v, %v; want %+v", got, err, changed)
		}
		return nil
	})
}

func TestNotFound(t *testing.T) {
	k := goods.Key()
	tests := []struct {
		name string
		get  func(inspection.ReadTx) error
		want string // what the error message must name
	}{
		{"declaration", func(tx inspection.ReadTx) error { _, err := tx.Declaration("D-404"); return err }, "D-404"},
		{"decision", func(tx inspection.ReadTx) error { _, err := tx.Decision("X-404"); return err }, "X-404"},
		{"assignment", func(tx inspection.ReadTx) error { _, err := tx.Assignment("A-404"); return err }, "A-404"},
		{"event", func(tx inspection.ReadTx) error { _, err := tx.Event("E-404"); return err }, "E-404"},
		{"goods state", func(tx inspection.ReadTx) error { _, err := tx.GoodsState(k); return err }, k.String()},
		{"manufacturer", func(tx inspection.ReadTx) error { _, err := tx.Manufacturer(k); return err }, k.String()},
		{"importer", func(tx inspection.ReadTx) error { _, err := tx.Importer("T-404"); return err }, "T-404"},
		{"agency", func(tx inspection.ReadTx) error { _, err := tx.Agency("AG-404"); return err }, "AG-404"},
		{"policy", func(tx inspection.ReadTx) error { _, err := tx.Policy("v404"); return err }, "v404"},
	}
	db := openMemory(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			view(t, db, func(tx inspection.ReadTx) error {
				err := tc.get(tx)
				if !errors.Is(err, fault.ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
				if fault.CodeOf(err) != fault.NotFound {
					t.Errorf("ErrorCode = %s", fault.CodeOf(err))
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("err %q does not name %q", err, tc.want)
				}
				return nil
			})
		})
	}
}

func TestEmptyListsAreNotErrors(t *testing.T) {
	db := openMemory(t)
	view(t, db, func(tx inspection.ReadTx) error {
		if ev, err := tx.Events(sampleEvent().Subject); err != nil || len(ev) != 0 {
			t.Errorf("Events = %v, %v", ev, err)
		}
		if ag, err := tx.Agencies(); err != nil || len(ag) != 0 {
			t.Errorf("Agencies = %v, %v", ag, err)
		}
		if as, next, err := tx.OpenAssignments("AG-1", "", 0); err != nil || len(as) != 0 || next != "" {
			t.Errorf("OpenAssignments = %v, %q, %v", as, next, err)
		}
		return nil
	})
}

func TestAgenciesOrderedByID(t *testing.T) {
	db := openMemory(t)
	ids := []string{"hcm-3", "HN-1", "dn-2", "AG-10", "AG-9"}
	update(t, db, func(tx inspection.Tx) error {
		for _, id := range ids {
			if err := tx.PutAgency(reference.Agency{ID: id, Name: "n" + id}); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, db, func(tx inspection.ReadTx) error {
		got, err := tx.Agencies()
		if err != nil {
			t.Fatal(err)
		}
		var gotIDs []string
		for _, a := range got {
			gotIDs = append(gotIDs, a.ID)
		}
		want := []string{"AG-10", "AG-9", "HN-1", "dn-2", "hcm-3"}
		if !reflect.DeepEqual(gotIDs, want) {
			t.Errorf("Agencies IDs = %v, want %v", gotIDs, want)
		}
		return nil
	})
}

func TestPutRejectsRecordsWithoutIdentity(t *testing.T) {
	tests := []struct {
		name string
		put  func(inspection.Tx) error
	}{
		{"declaration", func(tx inspection.Tx) error { return tx.PutDeclaration(declaration.Record{}) }},
		{"decision", func(tx inspection.Tx) error { return tx.PutDecision(inspection.Decision{}) }},
		{"assignment", func(tx inspection.Tx) error { return tx.PutAssignment(inspection.Assignment{}) }},
		{"open assignment without agency", func(tx inspection.Tx) error {
			return tx.PutAssignment(inspection.Assignment{ID: "A", Status: inspection.AssignmentOpen, CreatedAt: t0})
		}},
		{"open assignment with zero created_at", func(tx inspection.Tx) error {
			return tx.PutAssignment(inspection.Assignment{ID: "A", Agency: "AG-1", Status: inspection.AssignmentOpen})
		}},
		{"event", func(tx inspection.Tx) error { return tx.AddEvent(inspection.Event{}) }},
		{"goods state", func(tx inspection.Tx) error { return tx.PutGoodsState(inspection.GoodsState{}) }},
		{"manufacturer", func(tx inspection.Tx) error { return tx.PutManufacturer(reference.Manufacturer{}) }},
		{"importer", func(tx inspection.Tx) error { return tx.PutImporter(reference.Importer{}) }},
		{"agency", func(tx inspection.Tx) error { return tx.PutAgency(reference.Agency{}) }},
		{"policy version", func(tx inspection.Tx) error { return tx.PutPolicy("", samplePolicy) }},
		{"policy document", func(tx inspection.Tx) error { return tx.PutPolicy("v1", nil) }},
	}
	db := openMemory(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.UpdateRaw(context.Background(), tc.put); err == nil {
				t.Fatal("Update succeeded")
			}
		})
	}
}

func TestCollectGarbageOnFreshAndInMemoryStores(t *testing.T) {
	for _, opts := range []store.Options{{Dir: t.TempDir(), Small: true}, {InMemory: true, Small: true}} {
		db, err := store.Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		n, err := db.CollectGarbage(context.Background())
		if err != nil || n != 0 {
			t.Fatalf("GC on a fresh store: %d rewrites, %v", n, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
