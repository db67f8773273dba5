package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/ktcn/ktcn/inspection/quota"
)

// Quota records: counters (0x11) and the draw index (0x13) share the
// h16(period) | h16(scope) layout so a period's scopes are one prefix scan
// and a scope's draws are in eligible order.

func quotaScopeKey(p prefix, period, scope string) []byte {
	hp, hs := h16(period), h16(scope)
	k := make([]byte, 0, 1+2*hashSize+8)
	k = append(k, byte(p))
	k = append(k, hp[:]...)
	return append(k, hs[:]...)
}

func quotaPeriodPrefix(p prefix, period string) []byte {
	hp := h16(period)
	return append([]byte{byte(p)}, hp[:]...)
}

func (t *readTx) QuotaCounter(period, scope string) (quota.Counter, error) {
	var c quota.Counter
	what := func() string { return fmt.Sprintf("quota counter %s/%s", period, scope) }
	if err := t.loadF(prefixQuota, quotaScopeKey(prefixQuota, period, scope), what, &c); err != nil {
		return quota.Counter{}, err
	}
	if c.Period != period || c.Scope != scope {
		return quota.Counter{}, fmt.Errorf("store: %s: stored record is %s/%s (key hash collision)", what(), c.Period, c.Scope)
	}
	return c, nil
}

// QuotaCounters lists a period's counters ordered by scope.
func (t *readTx) QuotaCounters(period string) ([]quota.Counter, error) {
	var out []quota.Counter
	err := t.iterate(quotaPeriodPrefix(prefixQuota, period), func(_, val []byte) error {
		var c quota.Counter
		if err := decode(prefixQuota, val, &c); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b quota.Counter) int { return cmp.Compare(a.Scope, b.Scope) })
	return out, nil
}

func (t *readTx) QuotaPeriod(period string) (quota.Period, error) {
	return loadID(t, prefixQuotaPeriod, period, func(p *quota.Period) string { return p.Period })
}

// QuotaPeriods lists every period ordered by name (years sort in order).
func (t *readTx) QuotaPeriods() ([]quota.Period, error) {
	var out []quota.Period
	err := t.iterate([]byte{byte(prefixQuotaPeriod)}, func(_, val []byte) error {
		var p quota.Period
		if err := decode(prefixQuotaPeriod, val, &p); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b quota.Period) int { return cmp.Compare(a.Period, b.Period) })
	return out, nil
}

func (t *readTx) QuotaDraws(period, scope string) ([]string, error) {
	var out []string
	err := t.iterate(quotaScopeKey(prefixQuotaDraw, period, scope), func(key, val []byte) error {
		id, err := unwrap(prefixQuotaDraw, val)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if seq := binary.BigEndian.Uint64(key[len(key)-8:]); seq != uint64(len(out)+1) {
			// A gap is a lost or removed lot: report it rather than renumber.
			return fmt.Errorf("store: quota draws %s/%s: entry %d found where %d was expected", period, scope, seq, len(out)+1)
		}
		out = append(out, string(id))
		return nil
	})
	return out, err
}

func (t *writeTx) PutQuotaCounter(c quota.Counter) error {
	if c.Period == "" || c.Scope == "" {
		return fmt.Errorf("store: put quota counter: empty period or scope")
	}
	return t.putRecord(prefixQuota, quotaScopeKey(prefixQuota, c.Period, c.Scope), quota.CounterID(c.Period, c.Scope), c)
}

func (t *writeTx) PutQuotaPeriod(p quota.Period) error {
	return t.putID(prefixQuotaPeriod, p.Period, p)
}

func (t *writeTx) PutQuotaDraw(period, scope string, eligible int64, decisionID string) error {
	if eligible < 1 || decisionID == "" {
		return fmt.Errorf("store: put quota draw %s/%s: eligible %d, decision %q", period, scope, eligible, decisionID)
	}
	k := binary.BigEndian.AppendUint64(quotaScopeKey(prefixQuotaDraw, period, scope), uint64(eligible))
	return t.setDerived(k, encodeRaw([]byte(decisionID)), func() string { return fmt.Sprintf("quota draw %s/%s #%d", period, scope, eligible) })
}
