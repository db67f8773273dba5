package inspection

import (
	"sort"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/policy"
)

// TrimEvent is what TrimHistory needs of one event of a sorted history,
// in whatever compact form a replay keeps it (the generator and the
// backtest keep a hundred thousand goods' histories at once).
type TrimEvent[K comparable] interface {
	// TrimAt is the event's time (results by inspection date, alerts by
	// issue date) in the history's unit.
	TrimAt() int64
	// TrimFailed: a failed result, or an alert.
	TrimFailed() bool
	// TrimImporter is a result's importer; false for an alert.
	TrimImporter() (K, bool)
}

// TrimHistory drops the events of a history sorted as Evaluate replays it
// that can no longer change what Evaluate decides under any of pols,
// given that every event added later has TrimAt ≥ settled (results and
// alerts reach ktcn at most a bounded time after they happened) and every
// later decision is at or after the last event. unit is the duration of
// one step of TrimAt (time.Second, time.Nanosecond). It keeps the mode,
// rule, reason, progress, certificate and exemption of every such
// decision, for any lot when trackImporters is set and for lots not under
// the quality procedure otherwise; only the explanation's event count and
// event list may shrink. It reuses ev's array.
//
// Why it is exact: Evaluate replays events in order and a failure or
// alert resets everything, so nothing before the last failure matters
// wherever later events land. After it, the first Strict.PassesToNormal
// passes end strict; later passes form the normal run, of which the reduced
// rule reads only the trailing Reduced.ConsecutivePasses. Among the settled
// events (those no later event can precede) that leaves the last failure,
// the strict passes and the last k passes; events not yet settled are kept,
// because a late failure landing among them would turn some back into
// strict passes. The quality exemption folds each importer's passes into
// runs and terms (keepImporterFolds). With several policies it keeps what
// any of them needs.
func TrimHistory[E TrimEvent[K], K comparable](pols []*policy.Policy, ev []E, settled int64, trackImporters bool, unit time.Duration) []E {
	ns := sort.Search(len(ev), func(i int) bool { return ev[i].TrimAt() >= settled })
	last := -1
	for i := len(ev) - 1; i >= 0; i-- {
		if ev[i].TrimFailed() {
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
				keepImporterFolds[E, K](ev[:ns], i, keep, qe, unit)
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

// TrimAgainAt is the length at which a history trimmed to kept events is
// trimmed again: once it has grown by half (at least minTrimGrowth
// events), so trimming costs O(1) per event while a replay holds at most
// 1.5 times what its decisions need. A replay's memory is mostly these
// histories (the generator's and a backtest's, a goods each).
func TrimAgainAt(kept int) int { return kept + max(kept/2, minTrimGrowth) }

// minTrimGrowth is the growth below which trimming again is not worth it.
const minTrimGrowth = 8

// keepImporterFolds marks, among the settled normal-run passes ev[from:],
// what rebuilds each importer's quality-exemption fold. Evaluate counts an
// importer's passes into a run until a term opens, ignores its passes
// during the term, and resets at the first pass on or after the term's
// end. So the fold falls into segments, each starting clean (at the start
// of the normal run, or at such a reset) and holding at most
// QualityExemption.ConsecutivePasses counted passes. Replaying the counted
// passes of every segment from the one holding the importer's earliest
// pass kept for another reason (or its last segment) rebuilds the same
// terms, so the passes kept for the reduced rule are counted or ignored as
// in the full history, and the fold ends in the same state.
func keepImporterFolds[E TrimEvent[K], K comparable](ev []E, from int, keep []bool, qe policy.QualityExemptionRules, unit time.Duration) {
	type fold struct {
		seg, run int
		until    int64 // end of the current term, 0 for none
		idx      []int // the importer's passes
		segOf    []int // the segment of each
		counted  []bool
	}
	folds := map[K]*fold{}
	var order []K
	loc := calendar.Vietnam()
	for j := from; j < len(ev); j++ {
		im, ok := ev[j].TrimImporter()
		if !ok {
			continue
		}
		f := folds[im]
		if f == nil {
			f = &fold{}
			folds[im] = f
			order = append(order, im)
		}
		at := ev[j].TrimAt()
		if f.until != 0 && at >= f.until {
			f.until, f.run = 0, 0
			f.seg++
		}
		counted := f.until == 0
		if counted {
			f.run++
			if f.run >= qe.ConsecutivePasses {
				end := time.Unix(0, at*int64(unit)).In(loc).AddDate(0, qe.TermMonths, 0)
				f.until, f.run = end.UnixNano()/int64(unit), 0
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
