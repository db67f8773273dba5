package inspection

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/quota"
)

// checkQuotaKeys makes sure the master secret in use is the one every
// stored period committed to: a different secret would silently break the
// commitments and make draws unverifiable.
func checkQuotaKeys(tx QuotaReader, keys quota.Keys) error {
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
	return read(ctx, s.reads, by, access.ActReadQuota, func(tx ReadTx) ([]quota.Period, error) { return tx.QuotaPeriods() })
}

// OpenQuotaPeriod publishes a period's key commitment before its first
// reduced lot (the quota-rollover job opens each year as it begins), so a
// year's commitment is on record from its first day whether or not a lot
// has been drawn yet. A period already open is left as it was (false); a
// period that has ended is not opened after the fact.
func (s *Service) OpenQuotaPeriod(ctx context.Context, by access.Principal, period string) (bool, error) {
	if err := by.Require(access.ActAdminister); err != nil {
		return false, err
	}
	end, err := quota.PeriodEnd(period)
	if err != nil {
		return false, err
	}
	now := s.clock.Now()
	if !now.Before(end) {
		return false, Conflict("period", "period %s ended at %s: it is not opened after the fact", period, end.Format(time.RFC3339))
	}
	key, err := s.keys.PeriodKey(period)
	if err != nil {
		return false, err
	}
	opened := false
	err = s.w.write(ctx, by, audit.QuotaPeriodOpened, now, func(tx Tx, c *Change) error {
		if _, err := tx.QuotaPeriod(period); !errors.Is(err, fault.ErrNotFound) {
			return err // open already, or a failed read
		}
		if err := tx.PutQuotaPeriod(quota.Period{Period: period, Commitment: quota.Commitment(key), OpenedAt: now}); err != nil {
			return err
		}
		opened, c.Subjects = true, []string{"quota_period:" + period}
		return nil
	})
	if err != nil {
		return false, err
	}
	if opened {
		s.log.Info().Str("period", period).Str("actor", by.Name).Msg("quota period opened")
	}
	return opened, nil
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
		if errors.Is(err, fault.ErrNotFound) {
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

// VerifyQuota recomputes every draw of a closed period from its key (given,
// or revealed in the store) and checks, naming the first mismatch: the key
// against its commitment; in every scope, each lot in eligible order — its
// decision is reduced-mode, its stored draw and probability equal the
// recomputed ones, its selection follows the rule, and the counts it saw
// follow from the lots before it; selected ≤ floor(cap × eligible) at every
// step; and the stored counter equals the replayed counts.
func (s *Service) VerifyQuota(ctx context.Context, by access.Principal, period string, key []byte) (quota.Report, error) {
	if err := by.Require(access.ActReadQuota); err != nil {
		return quota.Report{Period: period}, err
	}
	end, err := quota.PeriodEnd(period)
	if err != nil {
		return quota.Report{Period: period}, err
	}
	if s.clock.Now().Before(end) {
		return quota.Report{Period: period}, Conflict("period", "period %s is still open until %s: verify it once it has closed", period, end.Format(time.RFC3339))
	}
	return s.verifyQuota(ctx, period, key)
}

// VerifyOpenQuota is VerifyQuota for the operator who holds the master
// secret: it checks a period still open (after a crash, say) with the key
// derived from the secret, revealing nothing.
func (s *Service) VerifyOpenQuota(ctx context.Context, by access.Principal, period string) (quota.Report, error) {
	if err := by.Require(access.ActAdminister); err != nil {
		return quota.Report{Period: period}, err
	}
	if _, err := quota.PeriodEnd(period); err != nil {
		return quota.Report{Period: period}, err
	}
	key, err := s.keys.PeriodKey(period)
	if err != nil {
		return quota.Report{Period: period}, err
	}
	return s.verifyQuota(ctx, period, key)
}

func (s *Service) verifyQuota(ctx context.Context, period string, key []byte) (quota.Report, error) {
	rep := quota.Report{Period: period}
	err := s.reads.View(ctx, func(tx ReadTx) error {
		p, err := tx.QuotaPeriod(period)
		if errors.Is(err, fault.ErrNotFound) {
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
				return quota.Mismatch("quota period %s: revealed key is not hex", period)
			}
		}
		if subtle.ConstantTimeCompare([]byte(quota.Commitment(key)), []byte(p.Commitment)) != 1 {
			return quota.Mismatch("quota period %s: key does not match commitment %s", period, p.Commitment)
		}
		counters, err := tx.QuotaCounters(period)
		if err != nil {
			return err
		}
		for _, c := range counters {
			if err := quota.VerifyScope(drawnLots{tx}, key, c, &rep); err != nil {
				return err
			}
		}
		rep.Scopes = len(counters)
		return nil
	})
	return rep, err
}

// drawnLots reads a period's drawn lots for quota.VerifyScope.
type drawnLots struct {
	tx interface {
		LotReader
		QuotaReader
	}
}

func (r drawnLots) Draws(period, scope string) ([]string, error) {
	return r.tx.QuotaDraws(period, scope)
}

func (r drawnLots) Drawn(id string) (quota.Drawn, error) {
	d, err := r.tx.Decision(id)
	if err != nil {
		return quota.Drawn{}, err
	}
	return quota.Drawn{DecisionID: d.ID, DeclarationID: d.DeclarationID, LineNo: d.LineNo, Reduced: d.Mode == ModeReduced,
		Inspect: d.Inspect, Record: d.Quota, GoodsRisk: goodsRisk(d.Explanation.Scores),
		Checked: func(where string) (bool, error) { return swappedState(r.tx, d, where) }}, nil
}

// swappedState is whether a sampled lot is checked after its overrides,
// each of which must be a swap with a lot of the same scope and period
// whose own override names this one back.
func swappedState(tx LotReader, d Decision, where string) (bool, error) {
	ovs, err := tx.Overrides(d.ID)
	if err != nil {
		return false, quota.Mismatch("%s: overrides: %v", where, err)
	}
	inForce := d.Inspect
	for _, o := range ovs {
		if o.SwapWith == "" {
			return false, quota.Mismatch("%s: override %s is not a like-for-like swap", where, o.ID)
		}
		other, err := tx.Decision(o.SwapWith)
		if err != nil {
			return false, quota.Mismatch("%s: override %s swaps with %s: %v", where, o.ID, o.SwapWith, err)
		}
		if other.Quota == nil || other.Quota.Scope != d.Quota.Scope || other.Quota.Period != d.Quota.Period {
			return false, quota.Mismatch("%s: override %s swaps with %s, which is not a lot of the same scope and period", where, o.ID, other.ID)
		}
		back, err := tx.Overrides(other.ID)
		if err != nil {
			return false, quota.Mismatch("%s: overrides of %s: %v", where, other.ID, err)
		}
		if !slices.ContainsFunc(back, func(b Override) bool {
			return b.SwapWith == d.ID && b.At.Equal(o.At) && b.Inspect == !o.Inspect
		}) {
			return false, quota.Mismatch("%s: override %s swaps with %s, which has no matching override", where, o.ID, other.ID)
		}
		if o.WasInspected != inForce {
			return false, quota.Mismatch("%s: override %s found the lot %s, but it was %s", where, o.ID, inspectedWord(o.WasInspected), inspectedWord(inForce))
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
		pol, err := s.policyIn(tx, s.clock.Now())
		if err != nil {
			return err
		}
		opened := false
		switch _, err := tx.QuotaPeriod(period); {
		case err == nil:
			opened = true
		case !errors.Is(err, fault.ErrNotFound):
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
