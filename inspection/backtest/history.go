package backtest

import (
	"sort"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/policy"
)

// event is one history event in the compact form a replay keeps for
// every goods at once; inspection.Event is rebuilt from it only for the
// length of an Evaluate call.
type event struct {
	at        int64  // Unix nanoseconds: results by inspection date, alerts by issue date
	id        string // orders events at the same instant, as Evaluate does
	importer  string // the result's importer, "" for an alert
	authority string // the alert's authority
	kind      uint8
	own       bool // a result of the goods, or an alert on the goods itself (not its maker or heading × origin)
}

const (
	evPass uint8 = iota
	evFail
	evAlert
)

func (e *event) failed() bool { return e.kind != evPass }

func before(a, b *event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.id < b.id
}

// history is one goods' compliance history as a decision reads it,
// sorted as Evaluate replays it and trimmed to the events that can still
// change a decision under either policy of the backtest.
type history struct {
	events []event
	trimAt int
	// settled is the largest bound a trim assumed (no later event dated
	// before it); an event arriving dated earlier breaks that assumption.
	settled int64
}

// minTrim is the history length below which trimming is not worth it.
const minTrim = 8

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

// maybeTrim trims once the history has doubled since the last trim, so
// trimming costs O(1) per event, and gives back capacity a burst left.
func (h *history) maybeTrim(pols []*policy.Policy, settled int64, trackImporters bool) {
	if len(h.events) < max(h.trimAt, minTrim) {
		return
	}
	h.events = trim(pols, h.events, settled, trackImporters)
	h.settled = max(h.settled, settled)
	h.trimAt = 2 * len(h.events)
	if cap(h.events) > 4*max(len(h.events), minTrim) {
		h.events = append([]event(nil), h.events...)
	}
}

// trim drops the events of a sorted history that can no longer change
// what inspection.Evaluate decides under any of pols, given that every
// event added later has at ≥ settled and every later decision is at or
// after the last event. It keeps the union of what each policy needs, so
// one history serves both sides of a backtest.
//
// Why it is exact (the argument fixtures.trimHistory makes for the
// generator): Evaluate replays events in order and a failure or alert
// resets everything, so nothing before the last failure matters. After it
// the first Strict.PassesToNormal passes end strict; later passes form
// the normal run, of which the reduced rule reads only the trailing
// Reduced.ConsecutivePasses. Events not yet settled are kept, because a
// late failure landing among them would turn some back into strict
// passes. The quality exemption folds each importer's passes into runs
// and terms (keepImporterFolds).
func trim(pols []*policy.Policy, ev []event, settled int64, trackImporters bool) []event {
	ns := sort.Search(len(ev), func(i int) bool { return ev[i].at >= settled })
	last := -1
	for i := len(ev) - 1; i >= 0; i-- {
		if ev[i].failed() {
			last = i
			break
		}
	}
	keep := make([]bool, len(ev))
	for i := max(ns, last); i < len(ev); i++ {
		keep[i] = true
	}
	if last < ns {
		for _, p := range pols {
			i := 0
			if last >= 0 {
				keep[last] = true
				i = last + 1
				for passes := 0; i < ns && passes < p.Strict.PassesToNormal; i++ {
					keep[i] = true // every event after the last failure is a pass
					passes++
				}
			}
			// ev[i:ns] is the settled part of the normal run (all passes).
			for j := ns - 1; j >= i && j >= ns-p.Reduced.ConsecutivePasses; j-- {
				keep[j] = true
			}
			if qe := p.QualityExemption; trackImporters && qe.Enabled {
				keepImporterFolds(ev[:ns], i, keep, qe)
			}
		}
	}
	out := ev[:0]
	for i := range ev {
		if keep[i] {
			out = append(out, ev[i])
		}
	}
	clear(ev[len(out):]) // let the dropped events' strings go
	return out
}

// keepImporterFolds marks, among the settled normal-run passes ev[from:],
// what rebuilds each importer's quality-exemption fold: Evaluate counts an
// importer's passes into a run until a term opens, ignores its passes
// during the term and resets at the first pass on or after the term's end,
// so the fold falls into segments that each start clean. Replaying the
// counted passes of every segment from the one holding the importer's
// earliest pass kept for another reason rebuilds the same terms.
func keepImporterFolds(ev []event, from int, keep []bool, qe policy.QualityExemptionRules) {
	type fold struct {
		seg, run int
		until    int64 // end of the current term, 0 for none
		idx      []int
		segOf    []int
		counted  []bool
	}
	folds := map[string]*fold{}
	var order []string
	loc := calendar.Vietnam()
	for j := from; j < len(ev); j++ {
		e := &ev[j]
		if e.importer == "" {
			continue
		}
		f := folds[e.importer]
		if f == nil {
			f = &fold{}
			folds[e.importer] = f
			order = append(order, e.importer)
		}
		if f.until != 0 && e.at >= f.until {
			f.until, f.run = 0, 0
			f.seg++
		}
		counted := f.until == 0
		if counted {
			f.run++
			if f.run >= qe.ConsecutivePasses {
				f.until, f.run = time.Unix(0, e.at).In(loc).AddDate(0, qe.TermMonths, 0).UnixNano(), 0
			}
		}
		f.idx, f.segOf, f.counted = append(f.idx, j), append(f.segOf, f.seg), append(f.counted, counted)
	}
	for _, im := range order {
		f := folds[im]
		first := f.seg
		for n, j := range f.idx {
			if keep[j] {
				first = min(first, f.segOf[n])
				break
			}
		}
		for n, j := range f.idx {
			if f.counted[n] && f.segOf[n] >= first {
				keep[j] = true
			}
		}
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
			ImporterTaxCode: e.importer, Subject: inspection.Subject{Kind: inspection.SubjectGoods}}
		switch e.kind {
		case evFail:
			x.Outcome = inspection.OutcomeFail
		case evAlert:
			x.Kind, x.Outcome, x.Authority = inspection.EventAlert, "", e.authority
		}
		if !e.own {
			x.Subject.Kind = inspection.SubjectManufacturer // shared: only "not the goods' own" matters to a decision
		}
		buf = append(buf, x)
	}
	return buf
}
