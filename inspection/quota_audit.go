package inspection

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/quota"
)

// checkQuotaKeys makes sure the master secret in use is the one every
// stored period committed to: a different secret would silently break the
// commitments and make draws unverifiable.
func checkQuotaKeys(tx ReadTx, keys quota.Keys) error {
	periods, err := tx.QuotaPeriods()
	if err != nil {
		return err
	}
	for _, p := range periods {
		key, err := keys.PeriodKey(p.Period)
		if err != nil {
			return fmt.Errorf("quota period %s: %w", p.Period, err)
		}
		if quota.Commitment(key) != p.Commitment {
			return fmt.Errorf("quota period %s: the master secret does not match the stored commitment %s: wrong secret file?", p.Period, p.Commitment)
		}
	}
	return nil
}

// QuotaPeriods lists the periods with their commitments (and keys revealed
// after they closed).
func (s *Service) QuotaPeriods(ctx context.Context, by access.Principal) ([]quota.Period, error) {
	if err := by.Require(access.ActReadQuota); err != nil {
		return nil, err
	}
	var out []quota.Period
	err := s.reads.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.QuotaPeriods()
		return err
	})
	return out, err
}

// RevealQuotaKey returns a closed period's key and records the reveal, so
// auditors can recompute every draw. An open period's key is never revealed:
// it would make the rest of the period's draws predictable.
func (s *Service) RevealQuotaKey(ctx context.Context, by access.Principal, period string) ([]byte, error) {
	if err := by.Require(access.ActRevealQuotaKey); err != nil {
		return nil, err
	}
	end, err := quota.PeriodEnd(period)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	if now.Before(end) {
		return nil, Conflict("period", "period %s is still open until %s", period, end.Format(time.RFC3339))
	}
	key, err := s.keys.PeriodKey(period)
	if err != nil {
		return nil, err
	}
	err = s.w.write(ctx, by, audit.QuotaKeyRevealed, now, func(tx Tx, c *Change) error {
		p, err := tx.QuotaPeriod(period)
		if errors.Is(err, ErrNotFound) {
			return NotFound("no quota period %s", period)
		}
		if err != nil {
			return err
		}
		if quota.Commitment(key) != p.Commitment {
			return fmt.Errorf("period %s: the master secret does not match the stored commitment", period)
		}
		if p.RevealedKey != "" {
			return nil
		}
		p.RevealedKey, p.RevealedAt = hex.EncodeToString(key), &now
		if err := tx.PutQuotaPeriod(p); err != nil {
			return err
		}
		c.Subjects = []string{"quota_period:" + period}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info().Str("period", period).Str("actor", by.Name).Msg("quota period key revealed")
	return key, nil
}

// QuotaReport sums up a verified period.
type QuotaReport struct {
	Period         string
	Commitment     string
	Scopes         int
	Eligible       int64
	Selected       int64
	CapBasisPoints int64
}

// VerifyQuota recomputes every draw of a closed period from its key (given,
// or revealed in the store) and checks, naming the first mismatch: the key
// against its commitment; in every scope, each lot in eligible order — its
// decision is reduced-mode, its stored draw and probability equal the
// recomputed ones, its selection follows the rule, and the counts it saw
// follow from the lots before it; selected ≤ floor(cap × eligible) at every
// step; and the stored counter equals the replayed counts.
func (s *Service) VerifyQuota(ctx context.Context, by access.Principal, period string, key []byte) (QuotaReport, error) {
	if err := by.Require(access.ActReadQuota); err != nil {
		return QuotaReport{Period: period}, err
	}
	end, err := quota.PeriodEnd(period)
	if err != nil {
		return QuotaReport{Period: period}, err
	}
	if s.clock.Now().Before(end) {
		return QuotaReport{Period: period}, Conflict("period", "period %s is still open until %s: verify it once it has closed", period, end.Format(time.RFC3339))
	}
	return s.verifyQuota(ctx, period, key)
}

// VerifyOpenQuota is VerifyQuota for the operator who holds the master
// secret: it checks a period still open (after a crash, say) with the key
// derived from the secret, revealing nothing.
func (s *Service) VerifyOpenQuota(ctx context.Context, by access.Principal, period string) (QuotaReport, error) {
	if err := by.Require(access.ActAdminister); err != nil {
		return QuotaReport{Period: period}, err
	}
	if _, err := quota.PeriodEnd(period); err != nil {
		return QuotaReport{Period: period}, err
	}
	key, err := s.keys.PeriodKey(period)
	if err != nil {
		return QuotaReport{Period: period}, err
	}
	return s.verifyQuota(ctx, period, key)
}

func (s *Service) verifyQuota(ctx context.Context, period string, key []byte) (QuotaReport, error) {
	rep := QuotaReport{Period: period}
	err := s.reads.View(ctx, func(tx ReadTx) error {
		p, err := tx.QuotaPeriod(period)
		if errors.Is(err, ErrNotFound) {
			return NotFound("no quota period %s", period)
		}
		if err != nil {
			return err
		}
		rep.Commitment = p.Commitment
		if key == nil {
			if p.RevealedKey == "" {
				return Invalid("key-file", "period %s's key has not been revealed: pass it", period)
			}
			if key, err = hex.DecodeString(p.RevealedKey); err != nil {
				return mismatch("quota period %s: revealed key is not hex", period)
			}
		}
		if subtle.ConstantTimeCompare([]byte(quota.Commitment(key)), []byte(p.Commitment)) != 1 {
			return mismatch("quota period %s: key does not match commitment %s", period, p.Commitment)
		}
		counters, err := tx.QuotaCounters(period)
		if err != nil {
			return err
		}
		for _, c := range counters {
			if err := verifyScope(tx, key, c, &rep); err != nil {
				return err
			}
		}
		rep.Scopes = len(counters)
		return nil
	})
	return rep, err
}

// ErrQuotaMismatch marks a verification failure (as opposed to an error
// reading the store).
var ErrQuotaMismatch = errors.New("quota verification failed")

func mismatch(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrQuotaMismatch, fmt.Sprintf(format, args...))
}

// verifyScope replays a scope's draws. Customs swaps (override.go) move a
// check between lots of the scope without touching the draws: each
// decision keeps the draw's choice, and the scope's count of lots checked
// after overrides must still equal the draws' count, with every override
// on a sampled lot a swap with a lot of the same scope and period.
func verifyScope(tx ReadTx, key []byte, c quota.Counter, rep *QuotaReport) error {
	ids, err := tx.QuotaDraws(c.Period, c.Scope)
	if err != nil {
		return mismatch("scope %s: %v", c.Scope, err)
	}
	replay := quota.Counter{Period: c.Period, Scope: c.Scope}
	var checked int64 // lots checked after overrides
	for i, id := range ids {
		where := fmt.Sprintf("scope %s lot %d (decision %s)", c.Scope, i+1, id)
		d, err := tx.Decision(id)
		if err != nil {
			return mismatch("%s: %v", where, err)
		}
		q := d.Quota
		if d.Mode != ModeReduced || q == nil {
			return mismatch("%s: not a sampled reduced-mode decision", where)
		}
		if q.Scope != c.Scope || q.Period != c.Period {
			return mismatch("%s: decision records scope %s period %s", where, q.Scope, q.Period)
		}
		drawHex, u := quota.Draw(key, c.Scope, c.Period, d.DeclarationID, d.LineNo)
		if drawHex != q.Draw || u != q.U {
			return mismatch("%s: stored draw %s, recomputed %s", where, q.Draw, drawHex)
		}
		rules := quota.Rules{Cap: float64(q.CapBasisPoints) / quota.CapDenominator, Selection: q.Selection, Gain: q.Gain, Reserve: q.Reserve, WeightBy: q.WeightBy}
		if rules.CapBasisPoints() != q.CapBasisPoints || q.CapBasisPoints > 500 {
			return mismatch("%s: cap %d basis points is not a legal cap", where, q.CapBasisPoints)
		}
		if err := verifyWeight(d, rules); err != nil {
			return mismatch("%s: %v", where, err)
		}
		after, want := quota.Select(rules, replay, drawHex, u, q.Weight)
		if q.Eligible != want.Eligible || q.Selected != want.Selected || q.Allowance != want.Allowance ||
			q.Chosen != want.Chosen || !sameFloat(q.Probability, want.Probability) || !sameFloat(q.WeightSum, want.WeightSum) {
			return mismatch("%s: recorded eligible %d selected %d allowance %d q %v chosen %v; replay gives %d %d %d %v %v",
				where, q.Eligible, q.Selected, q.Allowance, q.Probability, q.Chosen,
				want.Eligible, want.Selected, want.Allowance, want.Probability, want.Chosen)
		}
		if d.Inspect != q.Chosen {
			return mismatch("%s: inspect %v but the draw chose %v", where, d.Inspect, q.Chosen)
		}
		inForce, err := swappedState(tx, d, where)
		if err != nil {
			return err
		}
		if inForce {
			checked++
		}
		if after.Selected*quota.CapDenominator > after.Eligible*q.CapBasisPoints {
			return mismatch("%s: %d selected of %d eligible exceeds the cap", where, after.Selected, after.Eligible)
		}
		if rep.CapBasisPoints == 0 {
			rep.CapBasisPoints = q.CapBasisPoints
		}
		replay = after
	}
	if c.Eligible != replay.Eligible || c.Selected != replay.Selected {
		return mismatch("scope %s: counter says %d eligible %d selected, the lots say %d and %d",
			c.Scope, c.Eligible, c.Selected, replay.Eligible, replay.Selected)
	}
	if checked != replay.Selected {
		return mismatch("scope %s: %d lots are checked after overrides, the draws selected %d: a swap was not like for like",
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
func verifyWeight(d Decision, rules quota.Rules) error {
	q := d.Quota
	var want float64
	switch {
	case q.Selection == quota.SelectionUniform:
		want = 1
	case q.WeightBy == quota.WeightByGoodsScore:
		want = rules.LotWeight("", goodsRisk(d.Explanation.Scores))
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

// swappedState is whether a sampled lot is checked after its overrides,
// each of which must be a swap with a lot of the same scope and period
// whose own override names this one back.
func swappedState(tx ReadTx, d Decision, where string) (bool, error) {
	ovs, err := tx.Overrides(d.ID)
	if err != nil {
		return false, mismatch("%s: overrides: %v", where, err)
	}
	inForce := d.Inspect
	for _, o := range ovs {
		if o.SwapWith == "" {
			return false, mismatch("%s: override %s is not a like-for-like swap", where, o.ID)
		}
		other, err := tx.Decision(o.SwapWith)
		if err != nil {
			return false, mismatch("%s: override %s swaps with %s: %v", where, o.ID, o.SwapWith, err)
		}
		if other.Quota == nil || other.Quota.Scope != d.Quota.Scope || other.Quota.Period != d.Quota.Period {
			return false, mismatch("%s: override %s swaps with %s, which is not a lot of the same scope and period", where, o.ID, other.ID)
		}
		back, err := tx.Overrides(other.ID)
		if err != nil {
			return false, mismatch("%s: overrides of %s: %v", where, other.ID, err)
		}
		if !slices.ContainsFunc(back, func(b Override) bool {
			return b.SwapWith == d.ID && b.At.Equal(o.At) && b.Inspect == !o.Inspect
		}) {
			return false, mismatch("%s: override %s swaps with %s, which has no matching override", where, o.ID, other.ID)
		}
		if o.WasInspected != inForce {
			return false, mismatch("%s: override %s found the lot %s, but it was %s", where, o.ID, inspectedWord(o.WasInspected), inspectedWord(inForce))
		}
		inForce = o.Inspect
	}
	return inForce, nil
}

// QuotaUsage reports a period's scopes, most lots first, under the cap of
// the policy in force.
func (s *Service) QuotaUsage(ctx context.Context, by access.Principal, period string) (quota.Usage, error) {
	if err := by.Require(access.ActReadQuota); err != nil {
		return quota.Usage{}, err
	}
	if _, err := quota.PeriodEnd(period); err != nil {
		return quota.Usage{}, err
	}
	var out quota.Usage
	err := s.reads.View(ctx, func(tx ReadTx) error {
		pol, err := s.policyIn(tx)
		if err != nil {
			return err
		}
		opened := false
		switch _, err := tx.QuotaPeriod(period); {
		case err == nil:
			opened = true
		case !errors.Is(err, ErrNotFound):
			return err
		}
		counters, err := tx.QuotaCounters(period)
		if err != nil {
			return err
		}
		out = quota.UsageOf(period, opened, pol.Reduced.Sampling.CapBasisPoints(), counters)
		return nil
	})
	return out, err
}
