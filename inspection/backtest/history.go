package backtest

import (
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/policy"
)

// event is one history event in the compact form a replay keeps for
// every goods at once; inspection.Event is rebuilt from it only for the
// length of an Evaluate call.
type event struct {
	at int64  // Unix nanoseconds: results by inspection date, alerts by issue date
	id string // orders events at the same instant, as Evaluate does
	// who is a result's importer or an alert's authority (by kind): one
	// field for both keeps the event at 48 bytes, and the replay holds
	// a few hundred thousand of them.
	who  string
	kind uint8
	own  bool // a result of the goods, or an alert on the goods itself (not its maker or heading × origin)
}

const (
	evPass uint8 = iota
	evFail
	evAlert
)

func (e *event) failed() bool { return e.kind != evPass }

// TrimAt, TrimFailed and TrimImporter let inspection.TrimHistory read the
// compact form.
func (e event) TrimAt() int64    { return e.at }
func (e event) TrimFailed() bool { return e.kind != evPass }
func (e event) TrimImporter() (string, bool) {
	if e.kind == evAlert || e.who == "" {
		return "", false
	}
	return e.who, true
}

func before(a, b *event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.id < b.id
}

// history is one goods' compliance history as a decision reads it,
// sorted as Evaluate replays it and trimmed (inspection.TrimHistory) to
// the events that can still change a decision under either policy of the
// backtest.
type history struct {
	events []event
	trimAt int
	// settled is the largest bound a trim assumed (no later event dated
	// before it); an event arriving dated earlier breaks that assumption.
	settled int64
}

// add inserts e in order; results mostly arrive in order, so the search
// runs from the end. It reports whether e landed among events a trim had
// already settled (the replay is then no longer exact for these goods).
func (h *history) add(e event) (late bool) {
	late = e.at < h.settled
	h.events = append(h.events, e)
	i := len(h.events) - 1
	for i > 0 && before(&e, &h.events[i-1]) {
		h.events[i] = h.events[i-1]
		i--
	}
	h.events[i] = e
	return late
}

// maybeTrim trims when inspection.TrimAgainAt says, and gives back
// capacity a burst left.
func (h *history) maybeTrim(pols []*policy.Policy, settled int64, trackImporters bool) {
	if len(h.events) < max(h.trimAt, inspection.TrimAgainAt(0)) {
		return
	}
	h.events = inspection.TrimHistory(pols, h.events, settled, trackImporters, time.Nanosecond)
	h.settled = max(h.settled, settled)
	h.trimAt = inspection.TrimAgainAt(len(h.events))
	if cap(h.events) > 2*h.trimAt {
		h.events = append(make([]event, 0, h.trimAt), h.events...)
	}
}

// materialize rebuilds a compact history as the events Evaluate reads,
// into buf (Evaluate copies what it keeps); ownOnly keeps the goods' own
// events, as resemblance reads them.
func materialize(buf []inspection.Event, ev []event, ownOnly bool, loc *time.Location) []inspection.Event {
	buf = buf[:0]
	for i := range ev {
		e := &ev[i]
		if ownOnly && !e.own {
			continue
		}
		x := inspection.Event{ID: e.id, At: time.Unix(0, e.at).In(loc), Kind: inspection.EventResult, Outcome: inspection.OutcomePass,
			ImporterTaxCode: e.who, Subject: inspection.Subject{Kind: inspection.SubjectGoods}}
		switch e.kind {
		case evFail:
			x.Outcome = inspection.OutcomeFail
		case evAlert:
			x.Kind, x.Outcome, x.ImporterTaxCode, x.Authority = inspection.EventAlert, "", "", e.who
		}
		if !e.own {
			x.Subject.Kind = inspection.SubjectManufacturer // shared: only "not the goods' own" matters to a decision
		}
		buf = append(buf, x)
	}
	return buf
}
