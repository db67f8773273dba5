package quota

import (
	"cmp"
	"errors"
	"fmt"
	"math"
)

// Verification: every draw of a period recomputed from its key and
// replayed through the selection rule, scope by scope, in the order the
// lots became eligible.

// ErrMismatch marks a verification failure (as opposed to an error
// reading the store).
var ErrMismatch = errors.New("quota verification failed")

// Mismatch is a verification failure, described.
func Mismatch(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMismatch, fmt.Sprintf(format, args...))
}

// Report sums up a verified period.
type Report struct {
	Period         string
	Commitment     string
	Scopes         int
	Eligible       int64
	Selected       int64
	CapBasisPoints int64
}

// Drawn is a drawn lot as its decision recorded it.
type Drawn struct {
	DecisionID    string
	DeclarationID string
	LineNo        int
	// Reduced: the lot was decided in reduced mode; Inspect is the
	// decision's own inspection (the draw's choice); Record the draw.
	Reduced bool
	Inspect bool
	Record  *Record
	// GoodsRisk is the goods score the decision's explanation carries (0
	// when it was not scored), against which a goods-score weight is
	// checked.
	GoodsRisk float64
	// Checked says whether the lot is checked after customs' overrides,
	// each of which must be a like-for-like swap within the scope (the
	// reader checks the swaps, naming the lot as where in a Mismatch).
	Checked func(where string) (bool, error)
}

// DrawnLots reads a period's drawn lots for verification.
type DrawnLots interface {
	// Draws lists the decision IDs of a scope's lots in eligible order.
	Draws(period, scope string) ([]string, error)
	// Drawn reads one lot.
	Drawn(decisionID string) (Drawn, error)
}

// VerifyScope replays a scope's draws under key, adding its counts to rep.
// Customs swaps move a check between lots of the scope without touching
// the draws: each decision keeps the draw's choice, and the scope's count
// of lots checked after overrides must still equal the draws' count.
func VerifyScope(r DrawnLots, key []byte, c Counter, rep *Report) error {
	ids, err := r.Draws(c.Period, c.Scope)
	if err != nil {
		return Mismatch("scope %s: %v", c.Scope, err)
	}
	replay := Counter{Period: c.Period, Scope: c.Scope}
	var checked int64 // lots checked after overrides
	for i, id := range ids {
		where := fmt.Sprintf("scope %s lot %d (decision %s)", c.Scope, i+1, id)
		d, err := r.Drawn(id)
		if err != nil {
			return Mismatch("%s: %v", where, err)
		}
		q := d.Record
		if !d.Reduced || q == nil {
			return Mismatch("%s: not a sampled reduced-mode decision", where)
		}
		if q.Scope != c.Scope || q.Period != c.Period {
			return Mismatch("%s: decision records scope %s period %s", where, q.Scope, q.Period)
		}
		drawHex, u := Draw(key, c.Scope, c.Period, d.DeclarationID, d.LineNo)
		if drawHex != q.Draw || u != q.U {
			return Mismatch("%s: stored draw %s, recomputed %s", where, q.Draw, drawHex)
		}
		rules := Rules{Cap: float64(q.CapBasisPoints) / CapDenominator, Selection: q.Selection, Gain: q.Gain, Reserve: q.Reserve, WeightBy: q.WeightBy}
		if rules.CapBasisPoints() != q.CapBasisPoints || q.CapBasisPoints > 500 {
			return Mismatch("%s: cap %d basis points is not a legal cap", where, q.CapBasisPoints)
		}
		if err := verifyWeight(d, rules); err != nil {
			return Mismatch("%s: %v", where, err)
		}
		after, want := Select(rules, replay, drawHex, u, q.Weight)
		if q.Eligible != want.Eligible || q.Selected != want.Selected || q.Allowance != want.Allowance ||
			q.Chosen != want.Chosen || !sameFloat(q.Probability, want.Probability) || !sameFloat(q.WeightSum, want.WeightSum) {
			return Mismatch("%s: recorded eligible %d selected %d allowance %d q %v chosen %v; replay gives %d %d %d %v %v",
				where, q.Eligible, q.Selected, q.Allowance, q.Probability, q.Chosen,
				want.Eligible, want.Selected, want.Allowance, want.Probability, want.Chosen)
		}
		if d.Inspect != q.Chosen {
			return Mismatch("%s: inspect %v but the draw chose %v", where, d.Inspect, q.Chosen)
		}
		inForce, err := d.Checked(where)
		if err != nil {
			return err
		}
		if inForce {
			checked++
		}
		if after.Selected*CapDenominator > after.Eligible*q.CapBasisPoints {
			return Mismatch("%s: %d selected of %d eligible exceeds the cap", where, after.Selected, after.Eligible)
		}
		if rep.CapBasisPoints == 0 {
			rep.CapBasisPoints = q.CapBasisPoints
		}
		replay = after
	}
	if c.Eligible != replay.Eligible || c.Selected != replay.Selected {
		return Mismatch("scope %s: counter says %d eligible %d selected, the lots say %d and %d",
			c.Scope, c.Eligible, c.Selected, replay.Eligible, replay.Selected)
	}
	if checked != replay.Selected {
		return Mismatch("scope %s: %d lots are checked after overrides, the draws selected %d: a swap was not like for like",
			c.Scope, checked, replay.Selected)
	}
	rep.Eligible += replay.Eligible
	rep.Selected += replay.Selected
	return nil
}

// verifyWeight checks a lot's weight where the decision itself shows what
// it must be: 1 under uniform selection, the goods score of the
// explanation under weight_by goods_score. (A compliance-level weight
// depends on the importer's level at the time, which the decision does not
// keep; the replay of q and the weight sum still binds it.)
func verifyWeight(d Drawn, rules Rules) error {
	q := d.Record
	var want float64
	switch {
	case q.Selection == SelectionUniform:
		want = 1
	case q.WeightBy == WeightByGoodsScore:
		want = rules.LotWeight("", d.GoodsRisk)
	default:
		return nil
	}
	if !sameFloat(q.Weight, want) {
		return fmt.Errorf("weight %v, but the decision's %s selection gives %v", q.Weight, cmp.Or(string(q.WeightBy), string(q.Selection)), want)
	}
	return nil
}

func sameFloat(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}
