package inspection

import (
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/risk"
)

// A goods' history folded for deciding its lots (issue 21: a goods with
// 10,000 events must decide within 1.5× the time of one with 10).
//
// Everything a decision takes from the goods' history is kept here, once
// per version of that history, so that deciding a lot no longer passes
// over every event: the events up to the fold's time in replay order, with
// the index of the last failure or alert (Evaluate replays from there:
// evaluateOrdered), the goods' score folded as of its latest event
// (risk.Fold: decayed to the decision's second, it is the score
// ScoreHistory gives to the last bit), and the counts the goods state
// keeps. The fold is keyed by the input versions of the subjects whose
// events make up the history (cachedReadTx): the store bumps a subject's
// version in the same transaction as every write to its events, so one
// key names one history, and the key is known without reading it.
//
// A fold is taken at one decision time and holds from the latest event
// dated up to then until the earliest event dated after (events dated
// ahead): in that span the same events count. A decision outside it folds
// the history again.

// goodsFold is one history's fold; it is shared and never changed.
type goodsFold struct {
	// events are the history's events up to the fold's time, in replay
	// order (inOrder); reset is the index of the last failure or alert
	// among them, -1 when none.
	events []Event
	reset  int
	// from and next bound the decision times the fold holds for: the
	// latest event up to the fold's time (zero when none) and the
	// earliest after it (zero when none).
	from, next time.Time
	// results and own are goodsResults and hasGoodsEvents of the whole
	// history (events dated ahead included, as the goods state counts).
	results int
	own     bool
	// seen and idHash name the events up to the fold's time for the
	// score memo (scoring.MemoKey.History), as scoreLot always named them.
	seen   int
	idHash uint64
	// score is the goods' score folded under the key's risk parameters;
	// scored is false when folding failed (the full computation then
	// reports the error).
	score  risk.Fold
	scored bool
}

// holds reports whether the fold decides at t: the same events are dated
// up to t as up to the fold's time.
func (f *goodsFold) holds(t time.Time) bool {
	return !t.Before(f.from) && (f.next.IsZero() || t.Before(f.next))
}

// evaluate is Evaluate over the folded history, at a time it holds for.
func (f *goodsFold) evaluate(p *policy.Policy, lot Lot, now time.Time) Evaluation {
	return evaluateOrdered(p, f.events, f.reset, lot, now)
}

// foldGoodsHistory folds a goods' history as of now under the risk
// parameters p.
func foldGoodsHistory(history []Event, now time.Time, p risk.Params) *goodsFold {
	events := inOrder(history, now)
	f := &goodsFold{events: events, reset: lastReset(events), results: goodsResults(history), own: hasGoodsEvents(history), seen: len(events)}
	for i := range history {
		switch at := history[i].At; {
		case at.After(now):
			if f.next.IsZero() || at.Before(f.next) {
				f.next = at
			}
		case at.After(f.from):
			f.from = at
		}
	}
	h := fnv.New64a()
	for i := range events {
		h.Reset()
		h.Write([]byte(events[i].ID))
		f.idHash ^= h.Sum64() // as scoreLot hashes them: an order-free name of the set
	}
	var err error
	f.score, err = risk.FoldHistory(historyObservations(history, now, true), now, p)
	f.scored = err == nil
	return f
}

// historyObservations are the history's events as the goods' score sees
// them; with ahead false, only those dated up to now.
func historyObservations(history []Event, now time.Time, ahead bool) []risk.Observation {
	obs := make([]risk.Observation, 0, len(history))
	for _, e := range history {
		if !ahead && e.At.After(now) {
			continue
		}
		obs = append(obs, risk.Observation{At: e.At, Failed: e.Kind == EventAlert || e.Outcome == OutcomeFail,
			Alert: e.Kind == EventAlert, Ref: e.ID})
	}
	return obs
}

// foldKey names a fold: the history (historyID) and the risk parameters
// its score was folded with.
type foldKey struct {
	history string
	params  risk.Params
}

// foldMemo keeps recent folds, at most foldMemoSize (a full memo is
// emptied: folds of old versions are never asked for again). A fold of a
// long history holds its events in order, usually the input cache's own
// slice, a sorted copy when the history was joined or read out of order.
type foldMemo struct {
	mu sync.Mutex
	m  map[foldKey]*goodsFold
}

const foldMemoSize = 1024

// get returns the fold of history (named by id) that holds at now, folding
// it if none does.
func (m *foldMemo) get(id string, p risk.Params, history []Event, now time.Time) *goodsFold {
	k := foldKey{id, p}
	m.mu.Lock()
	f := m.m[k]
	m.mu.Unlock()
	if f != nil && f.holds(now) {
		return f
	}
	f = foldGoodsHistory(history, now, p)
	m.mu.Lock()
	if m.m == nil || len(m.m) >= foldMemoSize {
		m.m = make(map[foldKey]*goodsFold)
	}
	m.m[k] = f
	m.mu.Unlock()
	return f
}

// historyVersions is what cachedReadTx knows of a snapshot: the input
// version it holds for a subject, when it read it.
type historyVersions interface {
	historyVersion(s Subject) (uint64, bool)
}

func (t cachedReadTx) historyVersion(s Subject) (uint64, bool) {
	v, ok := t.versions[s.InputSubject()]
	return v, ok
}

// historyID names the history joined from subjects' events, in that
// order, by the input versions tx holds for them; "" when tx does not
// know them all (the history is then folded afresh).
func historyID(tx any, subjects []Subject) string {
	hv, ok := tx.(historyVersions)
	if !ok {
		return ""
	}
	b := make([]byte, 0, 64*len(subjects))
	for _, s := range subjects {
		v, ok := hv.historyVersion(s)
		if !ok {
			return ""
		}
		b = append(b, s.Kind...)
		b = append(b, ':')
		b = append(b, s.Key[:]...)
		b = append(b, ':')
		b = strconv.AppendUint(b, v, 10)
		b = append(b, ';')
	}
	return string(b)
}
