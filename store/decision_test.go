package store_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/store"
)

// A decision's explanation is stored with its events by ID and read back
// whole; one stored before, with its events inline, still reads as written.
func TestDecisionExplanationEventsByReference(t *testing.T) {
	db := openDir(t, t.TempDir())
	d := sampleDecision()
	update(t, db, func(tx inspection.Tx) error {
		if err := tx.AddEvent(citedEvent()); err != nil {
			return err
		}
		return tx.PutDecision(d)
	})
	raw, err := store.GetRaw(db, store.DecisionKey(d.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"explanation_event_ids":["EV-0"]`)) || bytes.Contains(raw, []byte(`"kind":"result"`)) {
		t.Errorf("stored decision does not cite its event by ID alone: %s", raw)
	}
	readBack := func(want inspection.Decision) {
		t.Helper()
		view(t, db, func(tx inspection.ReadTx) error {
			got, err := tx.Decision(want.ID)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("read\n%+v\nwant\n%+v", got, want)
			}
			return nil
		})
	}
	readBack(d)

	// As the previous build stored it: encoding/json of the decision,
	// events inline, after the encoding's version byte.
	old := sampleDecision()
	old.ID = "DECL-OLD/1"
	old.Explanation.Events = append(old.Explanation.Events, inspection.EventRef{ID: "EV-GONE", Kind: inspection.EventAlert,
		Subject: "manufacturer", At: t0, Authority: "RASFF"})
	body, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutRaw(db, store.DecisionKey(old.ID), append([]byte{1}, body...)); err != nil {
		t.Fatal(err)
	}
	readBack(old)
}
