package store_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/risk"
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

// A decision's risk scores are stored compacted and read back to the last
// bit (the API's JSON unchanged), by Decision and by EachDecision; a score
// that would not come back exactly keeps the decision's scores whole.
func TestDecisionScoresCompacted(t *testing.T) {
	db := openDir(t, t.TempDir())
	p := risk.DefaultParams()
	at := t0.In(time.FixedZone("ICT", 7*3600))
	prior := risk.Prior{Alpha: 0.4, Beta: 7.6, Group: "goods/hs_chapter:04", Method: "moments", Members: 12, Lots: 340, Mean: 0.05}
	hist := []risk.Observation{{At: at.Add(-90 * 24 * time.Hour), Ref: "EV-1"}, {At: at.Add(-40 * 24 * time.Hour), Failed: true, Ref: "EV-2"},
		{At: at.Add(-3 * 24 * time.Hour), Alert: true, Ref: "EV-3"}}
	c, err := risk.Accumulate(hist, at, p.HalfLife)
	if err != nil {
		t.Fatal(err)
	}
	var scores []risk.Score
	for _, x := range []struct {
		s risk.Subject
		c risk.Counts
	}{{risk.Subject{Kind: risk.KindGoods, ID: "g1"}, c}, {risk.Subject{Kind: risk.KindImporter, ID: "0101234567"}, risk.Counts{}}} {
		sc, err := risk.ScoreCounts(x.s, x.c, prior, at, p)
		if err != nil {
			t.Fatal(err)
		}
		scores = append(scores, sc)
	}
	// A goods' score lists its most influential lots; kept as they are.
	withLots, err := risk.ScoreHistory(risk.Subject{Kind: risk.KindManufacturer, ID: "m1"}, hist, prior, at, p)
	if err != nil {
		t.Fatal(err)
	}
	scores = append(scores, withLots)
	// Not made by the scoring's arithmetic: Restore would not give it back.
	odd := withLots
	odd.Mean += 0.01

	compact, whole := sampleDecision(), sampleDecision()
	compact.ID, compact.Explanation.Scores = "DECL-S/1", scores
	whole.ID, whole.Explanation.Scores = "DECL-W/1", append(slices.Clone(scores), odd)
	update(t, db, func(tx inspection.Tx) error {
		if err := tx.AddEvent(citedEvent()); err != nil {
			return err
		}
		if err := tx.PutDecision(compact); err != nil {
			return err
		}
		return tx.PutDecision(whole)
	})
	for _, x := range []struct {
		d       inspection.Decision
		compact bool
	}{{compact, true}, {whole, false}} {
		raw, err := store.GetRaw(db, store.DecisionKey(x.d.ID))
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(raw, []byte(`"explanation_scores":`)) && !bytes.Contains(raw, []byte(`"posterior_alpha"`)); got != x.compact {
			t.Errorf("%s: stored compacted %v, want %v: %s", x.d.ID, got, x.compact, raw)
		}
	}
	same := func(how string, got, want inspection.Decision) {
		t.Helper()
		g, _ := json.Marshal(got.Explanation.Scores)
		w, _ := json.Marshal(want.Explanation.Scores)
		if !bytes.Equal(g, w) {
			t.Errorf("%s %s: scores\n%s\nwant\n%s", how, want.ID, g, w)
		}
	}
	view(t, db, func(tx inspection.ReadTx) error {
		for _, want := range []inspection.Decision{compact, whole} {
			got, err := tx.Decision(want.ID)
			if err != nil {
				return err
			}
			same("Decision", got, want)
		}
		n := 0
		err := tx.(interface {
			EachDecision(func(inspection.Decision) error) error
		}).EachDecision(func(got inspection.Decision) error {
			n++
			if got.ID == compact.ID {
				same("EachDecision", got, compact)
			}
			return nil
		})
		if n != 2 {
			t.Errorf("EachDecision saw %d decisions, want 2", n)
		}
		return err
	})
}
