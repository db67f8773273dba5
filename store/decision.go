package store

import (
	"fmt"

	"github.com/ktcn/ktcn/inspection"
)

// A decision is stored with its explanation's events by reference. The
// events it cites are records of their own (0x05), append-only (AddEvent
// refuses an ID already recorded, so an event never changes), and each
// EventRef is Event.Ref() of one of them: the explanation keeps only their
// IDs, in order, and reading the decision rebuilds the list from the
// events. Up to 20 refs of ~200 bytes became 20 IDs of ~30, on the record
// that dominates the store (BenchmarkBytesPerDecision).
//
// A decision stored before, with its events inline, has no
// explanation_event_ids and decodes as it was written; so does one whose
// explanation cites no event. The stored body is still the decision's
// JSON with its "id", which the audit's record scan reads.

// storedDecision is a decision as stored.
type storedDecision struct {
	inspection.Decision
	// EventIDs are the IDs of Explanation.Events, whose stored list is
	// then null; absent in a decision stored with its events inline.
	EventIDs []string `json:"explanation_event_ids,omitempty"`
}

// storedForm is d as stored: the explanation's events by ID.
func storedForm(d inspection.Decision) storedDecision {
	evs := d.Explanation.Events
	if len(evs) == 0 {
		return storedDecision{Decision: d}
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	d.Explanation.Events = nil
	return storedDecision{Decision: d, EventIDs: ids}
}

// decision rebuilds the decision s stores: its explanation's events read
// from the events it names.
func (t *readTx) decision(s storedDecision) (inspection.Decision, error) {
	d := s.Decision
	if len(s.EventIDs) == 0 {
		return d, nil
	}
	d.Explanation.Events = make([]inspection.EventRef, len(s.EventIDs))
	for i, id := range s.EventIDs {
		e, err := t.Event(id)
		if err != nil {
			return inspection.Decision{}, fmt.Errorf("store: decision %q: explanation's event: %w", d.ID, err)
		}
		d.Explanation.Events[i] = e.Ref()
	}
	return d, nil
}
