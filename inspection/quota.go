package inspection

import (
	"errors"
	"time"

	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
)

// QuotaReader reads the quota's periods, counters and draw index.
type QuotaReader interface {
	QuotaCounter(period, scope string) (quota.Counter, error)
	QuotaCounters(period string) ([]quota.Counter, error)
	QuotaPeriod(period string) (quota.Period, error)
	QuotaPeriods() ([]quota.Period, error)
	// QuotaDraws lists the decision IDs of a scope's reduced lots in a
	// period, in the order they became eligible (index 0 is eligible 1).
	QuotaDraws(period, scope string) ([]string, error)
}

// QuotaWriter writes them.
type QuotaWriter interface {
	PutQuotaCounter(quota.Counter) error
	PutQuotaPeriod(quota.Period) error
	// PutQuotaDraw records that the eligible-th reduced lot of a scope in a
	// period was decided by decisionID.
	PutQuotaDraw(period, scope string, eligible int64, decisionID string) error
}

// sample draws a reduced-mode lot inside the decision's transaction
// through the one quota.Sampler: the book opens the period (storing the
// key commitment) on first use, reads and bumps the scope's counter, and
// indexes the lot among the scope's draws, so the counter, the index and
// the decision commit together or not at all. goodsRisk is the goods'
// posterior violation rate from the decision's scores (0 when it was not
// scored), for weight_by goods_score.
func (s *Service) sample(tx Tx, pol *policy.Policy, d declaration.Declaration, l declaration.Line, gk identity.Key, goodsRisk float64, now time.Time, opened *[]quota.Period) (quota.Record, error) {
	r := pol.Reduced.Sampling
	lot := quota.Lot{DeclarationID: d.ID, LineNo: l.LineNo, ImporterTaxCode: d.ImporterTaxCode, HSCode: identity.HSDigits(l.Goods.HSCode),
		GoodsKey: gk.String(), At: now, GoodsRisk: goodsRisk}
	if r.WeighsByCompliance() {
		if imp, err := tx.Importer(d.ImporterTaxCode); err == nil {
			lot.ComplianceLevel = imp.ComplianceLevel
		} else if !errors.Is(err, fault.ErrNotFound) {
			return quota.Record{}, err
		}
	}
	return quota.NewSampler(r, s.keys).Draw(txBook{tx: tx, now: now, decisionID: identity.DecisionID(d.ID, l.LineNo), opened: opened}, lot)
}

// txBook keeps a sampler's counts in a decision's transaction.
type txBook struct {
	tx         Tx
	now        time.Time
	decisionID string
	opened     *[]quota.Period
}

// Open stores the period's key commitment when the period first draws.
func (b txBook) Open(period string, key []byte) error {
	_, err := b.tx.QuotaPeriod(period)
	if !errors.Is(err, fault.ErrNotFound) {
		return err
	}
	p := quota.Period{Period: period, Commitment: quota.Commitment(key), OpenedAt: b.now}
	if err := b.tx.PutQuotaPeriod(p); err != nil {
		return err
	}
	*b.opened = append(*b.opened, p)
	return nil
}

func (b txBook) Counter(period, scope string) (quota.Counter, error) {
	c, err := b.tx.QuotaCounter(period, scope)
	if errors.Is(err, fault.ErrNotFound) {
		return quota.Counter{Period: period, Scope: scope}, nil
	}
	return c, err
}

// Put writes the counter and indexes the lot among the scope's draws.
func (b txBook) Put(after quota.Counter, _ quota.Lot) error {
	if err := b.tx.PutQuotaCounter(after); err != nil {
		return err
	}
	return b.tx.PutQuotaDraw(after.Period, after.Scope, after.Eligible, b.decisionID)
}
