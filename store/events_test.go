package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/store"
)

func event(id string, s inspection.Subject, at time.Time) inspection.Event {
	return inspection.Event{
		ID: id, Kind: inspection.EventResult, Subject: s, At: at, RecordedAt: t0,
		Outcome: inspection.OutcomePass, Source: "test",
	}
}

func TestEventsOrderedByAtThenID(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB) {
		s := inspection.Subject{Kind: inspection.SubjectGoods, Key: goods.Key()}
		// Same key, other kinds: separate histories.
		m := inspection.Subject{Kind: inspection.SubjectManufacturer, Key: goods.Key()}
		h := inspection.Subject{Kind: inspection.SubjectHeadingOrigin, Key: goods.Key()}
		before1970 := time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)

		// Inserted out of order, across transactions; ties on At are
		// chosen so that ID order differs from insertion order (and, for
		// some, from hash order).
		batches := [][]inspection.Event{
			{event("e5", s, t0.Add(3*time.Hour)), event("m1", m, t0)},
			{event("e2", s, t0.Add(time.Hour)), event("e9", s, t0)},
			{event("e1", s, t0.Add(time.Hour)), event("e0", s, before1970), event("h1", h, t0)},
			{event("e3", s, t0.Add(time.Hour)), event("e8", s, t0.Add(time.Nanosecond))},
			{event("e10", s, t0.Add(time.Hour)), event("e11", s, t0.Add(time.Hour))},
		}
		for _, b := range batches {
			update(t, db, func(tx inspection.Tx) error {
				for _, e := range b {
					if err := tx.AddEvent(e); err != nil {
						return err
					}
				}
				return nil
			})
		}
		ids := func(subject inspection.Subject) []string {
			var out []string
			view(t, db, func(tx inspection.ReadTx) error {
				evs, err := tx.Events(subject)
				for _, e := range evs {
					out = append(out, e.ID)
				}
				return err
			})
			return out
		}
		want := []string{"e0", "e9", "e8", "e1", "e10", "e11", "e2", "e3", "e5"}
		if got := ids(s); !reflect.DeepEqual(got, want) {
			t.Errorf("goods history = %v, want %v", got, want)
		}
		if got := ids(m); !reflect.DeepEqual(got, []string{"m1"}) {
			t.Errorf("manufacturer history = %v", got)
		}
		if got := ids(h); !reflect.DeepEqual(got, []string{"h1"}) {
			t.Errorf("heading-origin history = %v", got)
		}
		view(t, db, func(tx inspection.ReadTx) error {
			e, err := tx.Event("e0")
			if err != nil || !e.At.Equal(before1970) || e.Subject != s {
				t.Errorf("Event(e0) = %+v, %v", e, err)
			}
			return nil
		})
	})
}

func TestAddEventRefusesDuplicateID(t *testing.T) {
	db := openMemory(t)
	s := inspection.Subject{Kind: inspection.SubjectGoods, Key: goods.Key()}
	update(t, db, func(tx inspection.Tx) error { return tx.AddEvent(event("e1", s, t0)) })
	// Same ID, different At: would otherwise leave two history entries.
	err := db.UpdateRaw(t.Context(), func(tx inspection.Tx) error { return tx.AddEvent(event("e1", s, t0.Add(time.Hour))) })
	if fault.CodeOf(err) != fault.Conflict {
		t.Fatalf("err = %v, want conflict", err)
	}
	view(t, db, func(tx inspection.ReadTx) error {
		evs, err := tx.Events(s)
		if err != nil || len(evs) != 1 || !evs[0].At.Equal(t0) {
			t.Errorf("Events = %+v, %v", evs, err)
		}
		return nil
	})
}

func TestEventsRejectBadInput(t *testing.T) {
	db := openMemory(t)
	good := inspection.Subject{Kind: inspection.SubjectGoods, Key: goods.Key()}
	bad := inspection.Subject{Kind: "planet", Key: goods.Key()}
	tests := []struct {
		name  string
		fn    func(inspection.Tx) error
		field string
	}{
		{"unknown subject on read", func(tx inspection.Tx) error { _, err := tx.Events(bad); return err }, "subject.kind"},
		{"unknown subject on write", func(tx inspection.Tx) error { return tx.AddEvent(event("e", bad, t0)) }, "subject.kind"},
		{"zero time", func(tx inspection.Tx) error { return tx.AddEvent(event("e", good, time.Time{})) }, "at"},
		{"after 2262", func(tx inspection.Tx) error {
			return tx.AddEvent(event("e", good, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)))
		}, "at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := db.UpdateRaw(t.Context(), tc.fn)
			var e *fault.Error
			if !errors.As(err, &e) || e.Code != fault.Invalid || e.Field != tc.field {
				t.Fatalf("err = %v, want invalid %s", err, tc.field)
			}
		})
	}
}
