package risk

import "time"

// Fold is a history folded as of its latest observation up to some time:
// its counts and its most influential lots as of that observation. From
// then until the history's next observation every weight decays by one
// and the same factor, so a fold scores the history at any time it holds
// for (Holds) without reading the history again: a decision on a goods
// with a long history scores it from the fold kept for that history,
// at a cost that does not grow with it. ScoreHistory scores through a fold
// too, so both give the same score to the last bit.
type Fold struct {
	// Counts are the history's counts as of its latest observation up to
	// the fold's time (Counts.AsOf); with no such observation they are
	// empty, with a zero AsOf.
	Counts Counts
	// Lots are the most influential lots as of Counts.AsOf, with their
	// weights then (nil when p.EvidenceLots asks for none); mult are
	// their observations' own weights, to weigh them again at scoring.
	Lots []Lot
	mult []float64
	// Next is the date of the history's earliest observation after the
	// fold's time, zero when there is none.
	Next time.Time
	p    Params
}

// FoldHistory folds a history as of now (observations dated after now are
// left for later: Next is the first of them).
func FoldHistory(history []Observation, now time.Time, p Params) (Fold, error) {
	if err := p.Validate(); err != nil {
		return Fold{}, err
	}
	if now.IsZero() {
		return Fold{}, invalid("now", "is required")
	}
	var last, next time.Time
	for _, o := range history {
		switch {
		case o.At.After(now):
			if next.IsZero() || o.At.Before(next) {
				next = o.At
			}
		case o.At.After(last):
			last = o.At
		}
	}
	f := Fold{Next: next, p: p}
	if last.IsZero() {
		// Nothing up to now: empty counts, which score as of any time.
		// (Accumulate still checks every observation.)
		if _, err := Accumulate(history, now, p.HalfLife); err != nil {
			return Fold{}, err
		}
		f.Counts = Counts{HalfLife: p.HalfLife}
		if p.EvidenceLots > 0 {
			f.Lots = []Lot{}
		}
		return f, nil
	}
	// No observation lies in (last, now]: as of last, the same ones count.
	c, err := Accumulate(history, last, p.HalfLife)
	if err != nil {
		return Fold{}, err
	}
	f.Counts = c
	f.Lots, f.mult = influentialLots(history, last, p)
	return f, nil
}

// Holds reports whether the fold scores its history at t: no observation
// was added to or left out of the fold by moving from its time to t.
func (f Fold) Holds(t time.Time) bool {
	return !t.Before(f.Counts.AsOf) && (f.Next.IsZero() || t.Before(f.Next))
}

// Score scores the folded history's subject as of now (a time the fold
// holds for), under the parameters it was folded with. The counts decay
// from the fold's AsOf to now as ScoreCounts decays any counts. The
// evidence lots are the ones most influential at AsOf: every weight
// decays by the same factor from then on, so they are the most
// influential at now too (but for rounding ties at the last place). Each
// is weighed again at now, as InfluentialLots weighs it, and they are put
// back in order by those weights; a lot whose weight underflows to zero
// is left out, as InfluentialLots leaves out lots of zero weight.
func (f Fold) Score(s Subject, prior Prior, now time.Time, p Params) (Score, error) {
	if p != f.p {
		return Score{}, invalid("Params", "differ from the ones the history was folded with: fold it again")
	}
	if !f.Holds(now) {
		return Score{}, invalid("now", "%s is outside the fold's span [%s, %s): fold the history again",
			now.Format(time.RFC3339), f.Counts.AsOf.Format(time.RFC3339), f.Next.Format(time.RFC3339))
	}
	sc, err := ScoreCounts(s, f.Counts, prior, now, p)
	if err != nil {
		return Score{}, err
	}
	if f.Lots != nil {
		lots := make([]Lot, 0, len(f.Lots))
		for i, l := range f.Lots {
			w := f.mult[i] * Decay(now.Sub(l.At), p.HalfLife)
			if l.Alert {
				w *= p.AlertWeight
			}
			if l.Weight = w; !(w > 0) {
				continue
			}
			lots = append(lots, l)
			for j := len(lots) - 1; j > 0 && moreInfluential(lots[j], lots[j-1]); j-- {
				lots[j], lots[j-1] = lots[j-1], lots[j]
			}
		}
		sc.Evidence.Lots = lots
	}
	return sc, nil
}
