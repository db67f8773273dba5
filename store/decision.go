package store

import (
	"fmt"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/risk"
)

// A decision is stored with its explanation's events by reference. The
// events it cites are records of their own (0x05), append-only (AddEvent
// refuses an ID already recorded, so an event never changes), and each
// EventRef is Event.Ref() of one of them: the explanation keeps only their
// IDs, in order, and reading the decision rebuilds the list from the
// events. Up to 20 refs of ~200 bytes became 20 IDs of ~30, on the record
// that dominates the store (BenchmarkBytesPerDecision).
//
// Its explanation's risk scores are stored without what each derives from
// the rest (risk.Score.Compact: mean, pessimistic bound, weighted counts,
// effective lots, posterior shapes, time), which reading puts back by the
// scoring's own arithmetic, to the last bit. They were two thirds of a
// decision's JSON, mostly digits a compressor cannot shrink. A decision
// with a score that would not come back exactly keeps its scores whole.
//
// A decision stored before, with its events or scores inline, has no
// explanation_event_ids or explanation_scores and decodes as it was
// written; so does one whose explanation cites no event. The stored body
// is still the decision's JSON with its "id", which the audit's record
// scan reads.

// storedDecision is a decision as stored.
type storedDecision struct {
	inspection.Decision
	// EventIDs are the IDs of Explanation.Events, whose stored list is
	// then null; absent in a decision stored with its events inline.
	EventIDs []string `json:"explanation_event_ids,omitempty"`
	// Scores are Explanation.Scores compacted, whose stored list is then
	// null; absent in a decision stored with its scores whole.
	Scores []storedScore `json:"explanation_scores,omitempty"`
}

// storedScore is a risk score as risk.Score.Compact leaves it.
type storedScore struct {
	Subject     risk.Subject  `json:"subject"`
	Interval    risk.Interval `json:"interval"`
	Level       float64       `json:"level"`
	Counts      risk.Counts   `json:"counts"`
	AlertWeight float64       `json:"alert_weight"`
	Prior       risk.Prior    `json:"prior"`
	// HalfLifeDays only for empty counts, which do not carry it.
	HalfLifeDays float64    `json:"half_life_days,omitempty"`
	Lots         []risk.Lot `json:"lots,omitempty"`
}

// storedForm is d as stored: the explanation's events by ID, its scores
// compacted.
func storedForm(d inspection.Decision) storedDecision {
	s := storedDecision{Scores: compactScores(d.Explanation.Scores)}
	if s.Scores != nil {
		d.Explanation.Scores = nil
	}
	if evs := d.Explanation.Events; len(evs) > 0 {
		s.EventIDs = make([]string, len(evs))
		for i, e := range evs {
			s.EventIDs[i] = e.ID
		}
		d.Explanation.Events = nil
	}
	s.Decision = d
	return s
}

// compactScores is scores compacted, or nil when there are none or one
// would not come back exactly (then all are stored whole).
func compactScores(scores []risk.Score) []storedScore {
	if len(scores) == 0 {
		return nil
	}
	out := make([]storedScore, len(scores))
	for i, sc := range scores {
		c, ok := sc.Compact()
		if !ok {
			return nil
		}
		out[i] = storedScore{Subject: c.Subject, Interval: c.Interval, Level: c.Level, Counts: c.Evidence.Counts,
			AlertWeight: c.Evidence.AlertWeight, Prior: c.Evidence.Prior, HalfLifeDays: c.Evidence.HalfLifeDays, Lots: c.Evidence.Lots}
	}
	return out
}

// withScores is the decision s stores with its explanation's scores
// restored (its events still by ID).
func (s storedDecision) withScores() inspection.Decision {
	d := s.Decision
	if len(s.Scores) == 0 {
		return d
	}
	d.Explanation.Scores = make([]risk.Score, len(s.Scores))
	for i, c := range s.Scores {
		sc := risk.Score{Subject: c.Subject, Interval: c.Interval, Level: c.Level, Evidence: risk.Evidence{
			Counts: c.Counts, AlertWeight: c.AlertWeight, Prior: c.Prior, HalfLifeDays: c.HalfLifeDays, Lots: c.Lots}}
		sc.Restore()
		d.Explanation.Scores[i] = sc
	}
	return d
}

// decision rebuilds the decision s stores: its scores restored, its
// explanation's events read from the events it names.
func (t *readTx) decision(s storedDecision) (inspection.Decision, error) {
	d := s.withScores()
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
