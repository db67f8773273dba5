// Package quota is the random check of reduced-mode lots under the legal
// cap: the keyed draw, the capped selection rule, the period keys and
// their commitments, and the one Sampler that the service (over its store
// transaction), the simulator and the history generator (over counters in
// memory) all draw through, so a rule cannot differ between them. It owns
// the arithmetic auditors recompute (docs/sampling.md is its description;
// keep the two in step); where the counters live and which lots are
// reduced are the caller's business.
//
// Every reduced lot belongs to one quota scope (by default its HS heading)
// and one period (the calendar year in Vietnam). Its draw is
// HMAC-SHA-256 under the period key over the lot's identity: the same on
// every retry, unpredictable without the key, recomputable by an auditor
// once the key is revealed. The lot is checked when the draw falls under a
// selection probability and the scope still has allowance:
//
//	allowance = floor(eligible × cap)              (eligible counts this lot)
//	chosen    = selected + 1 ≤ allowance  and  u < q
//	q         = clamp(cap + gain × (credit − reserve), 0, 1)        uniform
//	q         = clamp(q_uniform × weight / mean weight, 0, 1)         risk-weighted
//	weight    = the importer's compliance-level weight, or the goods' risk
//	            score (posterior mean), as the policy's weight_by says
//	credit    = cap × eligible − selected          (unused allowance)
//
// The hard condition keeps selected ≤ floor(cap × eligible) at every
// instant. The feedback term spends unused allowance (a plain coin flip
// under a hard cap leaves much of it unused) while keeping the rate right
// after a selection close to the base rate (a hit lowers q by only `gain`).
package quota

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
)

// Rules configure the random check.
type Rules struct {
	Enabled bool `json:"enabled"`
	// Cap is the legal ceiling on the share of a scope's reduced lots
	// checked in a period, at most 0.05, in whole basis points.
	Cap float64 `json:"cap"`
	// Scope is heading_year, chapter_year or importer_goods_year.
	Scope ScopeKind `json:"scope"`
	// Selection is uniform or risk_weighted.
	Selection Selection `json:"selection"`
	// Gain and Reserve shape q (see above): Reserve is the unused allowance
	// the scope keeps in hand, Gain how fast q moves with it.
	Gain    float64 `json:"gain"`
	Reserve float64 `json:"reserve"`
	// WeightBy says what a lot's weight is under risk-weighted selection:
	// compliance_level (the default: RiskWeights by the importer's level)
	// or goods_score (the posterior mean of the goods' violation rate that
	// the decision's scores carry; needs risk.score_decisions).
	WeightBy WeightBy `json:"weight_by,omitempty"`
	// RiskWeights by importer compliance level (and "unknown").
	RiskWeights map[string]float64 `json:"risk_weights"`
	// RevealAfterDays, when set, is how many days after a period closes
	// its key is revealed on its own (the quota-rollover job), so auditors
	// can recompute every draw without waiting for an operator; the days
	// leave room for late corrections and appeals of the period's checks.
	// Unset (0) the key waits for an auditor's reveal: publishing a key is
	// irreversible, so nothing publishes one unless the policy says so.
	RevealAfterDays int `json:"reveal_after_days,omitempty"`
}

// RevealDue reports whether a closed period's key is due to be revealed
// on its own at now under the rules (never, when RevealAfterDays is unset).
func (r Rules) RevealDue(period string, now time.Time) (bool, error) {
	end, err := PeriodEnd(period)
	if err != nil || r.RevealAfterDays == 0 {
		return false, err
	}
	return !now.Before(end.AddDate(0, 0, r.RevealAfterDays)), nil
}

// ScopeKind is how lots are grouped into quota scopes, each with its own
// counts and cap, within a period.
type ScopeKind string

const (
	ScopeHeadingYear       ScopeKind = "heading_year"        // HS heading × year, across importers (the default)
	ScopeChapterYear       ScopeKind = "chapter_year"        // HS chapter × year
	ScopeImporterGoodsYear ScopeKind = "importer_goods_year" // one importer's goods × year: narrow, often uncheckable
)

// Selection is how a scope's allowance is spent among its lots.
type Selection string

const (
	SelectionUniform      Selection = "uniform"
	SelectionRiskWeighted Selection = "risk_weighted"
)

// WeightBy is what weighs a lot under risk-weighted selection.
type WeightBy string

const (
	WeightByCompliance WeightBy = "compliance_level"
	WeightByGoodsScore WeightBy = "goods_score"
)

// minGoodsWeight keeps a goods-score weight strictly positive (a posterior
// mean always is; this guards a lot that carries no score), so the
// scope's mean weight, and q, stay defined.
const minGoodsWeight = 0.001

// CapDenominator: the cap is kept as whole basis points so that the
// allowance floor(eligible × cap) is integer arithmetic, exact for
// auditors in any language.
const CapDenominator = 10000

// Validate checks the rules; an error names the field under f.
func (r Rules) Validate(f string) error {
	bp := r.Cap * CapDenominator
	if r.Cap < 0 || r.Cap > 0.05 || math.Abs(bp-math.Round(bp)) > 1e-9 {
		return fault.Of(fault.Invalid, f+".cap", "must be between 0 and 0.05 (the legal cap) in whole basis points, got %v", r.Cap)
	}
	switch r.Scope {
	case ScopeHeadingYear, ScopeChapterYear, ScopeImporterGoodsYear:
	default:
		return fault.Of(fault.Invalid, f+".scope", "must be heading_year, chapter_year or importer_goods_year, got %q", r.Scope)
	}
	switch r.Selection {
	case SelectionUniform, SelectionRiskWeighted:
	default:
		return fault.Of(fault.Invalid, f+".selection", "must be uniform or risk_weighted, got %q", r.Selection)
	}
	if r.Gain < 0 || r.Gain > 1 || math.IsNaN(r.Gain) {
		return fault.Of(fault.Invalid, f+".gain", "must be between 0 and 1, got %v", r.Gain)
	}
	if r.Reserve < 0 || r.Reserve > 1000 || math.IsNaN(r.Reserve) {
		return fault.Of(fault.Invalid, f+".reserve", "must be between 0 and 1000, got %v", r.Reserve)
	}
	if r.RevealAfterDays < 0 || r.RevealAfterDays > 366 {
		return fault.Of(fault.Invalid, f+".reveal_after_days", "must be between 1 and 366 days after the period closes (or unset: an auditor reveals), got %d", r.RevealAfterDays)
	}
	switch r.WeightBy {
	case "", WeightByCompliance, WeightByGoodsScore:
	default:
		return fault.Of(fault.Invalid, f+".weight_by", "must be compliance_level or goods_score, got %q", r.WeightBy)
	}
	if r.Selection == SelectionRiskWeighted && r.WeightBy != WeightByGoodsScore {
		if _, ok := r.RiskWeights["unknown"]; !ok {
			return fault.Of(fault.Invalid, f+".risk_weights", `must give a weight for "unknown"`)
		}
	}
	for k, w := range r.RiskWeights {
		if !(w > 0) || w > 100 {
			return fault.Of(fault.Invalid, f+".risk_weights."+k, "must be a positive weight up to 100, got %v", w)
		}
	}
	return nil
}

// AllowanceOf is floor(eligible × cap) for a cap in basis points, in
// integer arithmetic: the checks a scope may have made after eligible lots.
func AllowanceOf(eligible, capBasisPoints int64) int64 {
	return eligible * capBasisPoints / CapDenominator
}

// CapBasisPoints is the cap in basis points.
func (r Rules) CapBasisPoints() int64 { return int64(math.Round(r.Cap * CapDenominator)) }

// Counter is a scope's running counts in one period. Eligible never
// decreases: a later cancellation does not give allowance back.
type Counter struct {
	Period    string  `json:"period"`
	Scope     string  `json:"scope"`
	Eligible  int64   `json:"eligible"`
	Selected  int64   `json:"selected"`
	WeightSum float64 `json:"weight_sum"`
}

// Period is one period's key commitment, published when the period
// opens, and the key itself once revealed after the period closed.
type Period struct {
	Period      string     `json:"period"`
	Commitment  string     `json:"commitment"` // hex SHA-256 of the period key
	OpenedAt    time.Time  `json:"opened_at"`
	RevealedKey string     `json:"revealed_key,omitempty"` // hex, only after the period closed
	RevealedAt  *time.Time `json:"revealed_at,omitempty"`
}

// Record is the quota state a reduced-mode decision saw, kept on the
// decision for customs and auditors (never sent to NSW: the counts would
// tell an importer the remaining budget).
type Record struct {
	Scope     string    `json:"scope"`
	Period    string    `json:"period"`
	Selection Selection `json:"selection"`
	// Cap in basis points, and the float form for readers.
	CapBasisPoints int64   `json:"cap_basis_points"`
	Cap            float64 `json:"cap"`
	Gain           float64 `json:"gain"`
	Reserve        float64 `json:"reserve"`
	// Eligible and Selected are the scope's counts including this lot.
	Eligible  int64 `json:"eligible"`
	Selected  int64 `json:"selected"`
	Allowance int64 `json:"allowance"`
	// Draw is the first 8 bytes of the HMAC (hex); U is the uniform number
	// in [0,1) made from it; Probability is q.
	Draw string  `json:"draw"`
	U    float64 `json:"u"`
	// Weight is the lot's weight under risk-weighted selection (1 under
	// uniform); WeightBy what it was taken from (goods_score: the goods
	// score in the decision's explanation, which verify checks it against).
	Weight      float64  `json:"weight"`
	WeightBy    WeightBy `json:"weight_by,omitempty"`
	WeightSum   float64  `json:"weight_sum"`
	Probability float64  `json:"probability"`
	Chosen      bool     `json:"chosen"`
}

// Keys gives the secret key of a period. Keys derive from a master
// secret kept outside the store, so a copy of the database alone cannot
// predict draws.
type Keys interface {
	PeriodKey(period string) ([]byte, error)
}

// MasterSecret derives period keys: HMAC-SHA-256(master,
// "ktcn/quota-period-key/v1" || 0x00 || period). Revealing one period's
// key reveals nothing of another's.
type MasterSecret []byte

// PeriodKey derives the key of a period.
func (m MasterSecret) PeriodKey(period string) ([]byte, error) {
	if len(m) < 32 {
		return nil, fmt.Errorf("quota master secret is %d bytes, want at least 32", len(m))
	}
	mac := hmac.New(sha256.New, m)
	mac.Write([]byte("ktcn/quota-period-key/v1\x00" + period))
	return mac.Sum(nil), nil
}

// Commitment is the hex SHA-256 of a period key, published when the period
// opens.
func Commitment(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:])
}

// PeriodOf is the period a decision at t belongs to: the calendar year
// in Vietnam.
func PeriodOf(t time.Time) string { return strconv.Itoa(t.In(calendar.Vietnam()).Year()) }

// PeriodEnd is the first instant after a period (a year from 2000 on);
// anything else is invalid input naming the field "period".
func PeriodEnd(period string) (time.Time, error) {
	y, err := strconv.Atoi(period)
	if err != nil || y < 2000 || y > 9999 {
		return time.Time{}, fault.Of(fault.Invalid, "period", "must be a year such as 2026, got %q", period)
	}
	return time.Date(y+1, 1, 1, 0, 0, 0, 0, calendar.Vietnam()), nil
}

// DrawMessage is the byte string a lot's draw is computed over: the tag
// "ktcn/quota-draw/v1", then scope, period, declaration ID and line number
// (decimal), each as a 4-byte big-endian length and its UTF-8 bytes.
func DrawMessage(scope, period, declarationID string, lineNo int) []byte {
	var b []byte
	for _, part := range []string{"ktcn/quota-draw/v1", scope, period, declarationID, strconv.Itoa(lineNo)} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(part)))
		b = append(b, part...)
	}
	return b
}

// Draw computes a lot's draw: the first 8 bytes of HMAC-SHA-256(key,
// DrawMessage) as hex, and u = (those 8 bytes as a big-endian uint64 >> 11)
// / 2^53, a uniform number in [0,1) exact in a float64.
func Draw(key []byte, scope, period, declarationID string, lineNo int) (string, float64) {
	mac := hmac.New(sha256.New, key)
	mac.Write(DrawMessage(scope, period, declarationID, lineNo))
	sum := mac.Sum(nil)
	x := binary.BigEndian.Uint64(sum[:8])
	return hex.EncodeToString(sum[:8]), float64(x>>11) / (1 << 53)
}

// Select applies the selection rule to one lot: from the scope's counter
// before the lot, the lot's draw and weight, it returns the counter after
// and the record the decision keeps. It is pure and is what auditors
// recompute.
func Select(r Rules, before Counter, drawHex string, u, weight float64) (Counter, Record) {
	after := before
	after.Eligible++
	after.WeightSum += weight
	bp := r.CapBasisPoints()
	capF := float64(bp) / CapDenominator
	allowance := AllowanceOf(after.Eligible, bp)
	q := SelectionProbability(r, after.Eligible, before.Selected, weight, after.WeightSum)
	chosen := before.Selected+1 <= allowance && u < q
	if chosen {
		after.Selected++
	}
	var weightBy WeightBy
	if r.Selection == SelectionRiskWeighted {
		weightBy = cmp.Or(r.WeightBy, WeightByCompliance)
	}
	return after, Record{
		Scope: before.Scope, Period: before.Period, Selection: r.Selection, CapBasisPoints: bp, Cap: capF,
		Gain: r.Gain, Reserve: r.Reserve, Eligible: after.Eligible, Selected: after.Selected, Allowance: allowance,
		Draw: drawHex, U: u, Weight: weight, WeightBy: weightBy, WeightSum: after.WeightSum, Probability: q, Chosen: chosen,
	}
}

// SelectionProbability is q for a lot, given the scope's eligible count
// including the lot, the selections before it, the lot's weight and the
// scope's weight sum including it. Evaluated in IEEE-754 double precision
// in exactly this order (auditors reimplementing it must do the same).
func SelectionProbability(r Rules, eligible, selectedBefore int64, weight, weightSum float64) float64 {
	capF := float64(r.CapBasisPoints()) / CapDenominator
	credit := capF*float64(eligible) - float64(selectedBefore)
	q := capF + r.Gain*(credit-r.Reserve)
	if r.Selection == SelectionRiskWeighted && weightSum > 0 {
		q = q * weight / (weightSum / float64(eligible))
	}
	return math.Min(1, math.Max(0, q))
}

// RiskWeight is the weight of a lot for risk-weighted selection by
// compliance level (1 under uniform selection).
func (r Rules) RiskWeight(complianceLevel string) float64 {
	if r.Selection != SelectionRiskWeighted {
		return 1
	}
	if w, ok := r.RiskWeights[complianceLevel]; ok {
		return w
	}
	return r.RiskWeights["unknown"]
}

// LotWeight is a lot's weight in the draw: 1 under uniform selection; under
// risk-weighted selection the importer's compliance-level weight, or with
// weight_by goods_score the goods' posterior violation rate (at least
// minGoodsWeight), so a goods twice as likely to fail is twice as likely to
// be checked, relative to its scope's mean.
func (r Rules) LotWeight(complianceLevel string, goodsRisk float64) float64 {
	if r.Selection != SelectionRiskWeighted {
		return 1
	}
	if r.WeightBy == WeightByGoodsScore {
		if !(goodsRisk >= minGoodsWeight) || math.IsInf(goodsRisk, 0) { // also NaN
			return minGoodsWeight
		}
		return math.Min(goodsRisk, 1)
	}
	if complianceLevel == "" {
		complianceLevel = "unknown"
	}
	return r.RiskWeight(complianceLevel)
}

// InclusionProbability is the probability the draw had of choosing the
// lot, given everything before it in its scope: q when the scope had
// allowance for one more check, else zero (Select). The draw's u is
// a keyed hash independent of the lot's compliance, so this is the lot's
// inclusion probability conditional on the scope's past: the weights of a
// sequential design, whose Horvitz–Thompson sums stay unbiased however q
// adapts to the unused allowance.
func (q Record) InclusionProbability() float64 {
	before := q.Selected
	if q.Chosen {
		before--
	}
	if before+1 > q.Allowance || !(q.Probability > 0) {
		return 0
	}
	return math.Min(q.Probability, 1)
}
