package quota

import (
	"fmt"
	"time"
)

// Lot is what a draw needs of a reduced-mode lot: its ID (the draw is
// keyed on it), what places it in a scope and a period, and what weighs it
// under risk-weighted selection.
type Lot struct {
	DeclarationID   string
	LineNo          int
	ImporterTaxCode string
	// HSCode is the goods' HS code in digits; GoodsKey its identity key in
	// hex (for importer × goods scopes).
	HSCode   string
	GoodsKey string
	// At is when the lot is decided: its period.
	At time.Time
	// ComplianceLevel (the importer's) and GoodsRisk (the goods' posterior
	// violation rate) weigh the lot as the rules' weight_by says.
	ComplianceLevel string
	GoodsRisk       float64
}

// ScopeOf names the scope a lot belongs to under the rules.
func ScopeOf(r Rules, l Lot) string {
	switch r.Scope {
	case ScopeChapterYear:
		return "chapter:" + l.HSCode[:min(2, len(l.HSCode))]
	case ScopeImporterGoodsYear:
		return "importer-goods:" + l.ImporterTaxCode + ":" + l.GoodsKey
	default:
		return "heading:" + l.HSCode[:min(4, len(l.HSCode))]
	}
}

// CounterID is the record ID of a scope's counter in a period. Periods are
// years, so the first "/" separates them.
func CounterID(period, scope string) string { return period + "/" + scope }

// Book is where a sampler keeps the scopes' counts: a store transaction
// (the service), or memory (MemBook: the simulator, the generator).
type Book interface {
	// Open is called before every draw with the period and its key; a
	// store records the key's commitment the first time.
	Open(period string, key []byte) error
	// Counter is a scope's counter in a period; a scope never drawn has
	// zero counts.
	Counter(period, scope string) (Counter, error)
	// Put keeps the counter after a lot's draw.
	Put(after Counter, l Lot) error
}

// Sampler draws lots under rules and keys. It is the only place a draw and
// a selection are made.
type Sampler struct {
	rules Rules
	keys  Keys
}

// NewSampler draws under r with the period keys k.
func NewSampler(r Rules, k Keys) Sampler { return Sampler{rules: r, keys: k} }

// Rules are the sampler's rules.
func (s Sampler) Rules() Rules { return s.rules }

// Draw draws lot l: its scope and period, the keyed draw, the selection
// under the cap from the scope's counts in b, and the counts after it,
// kept in b. The record is what the decision keeps.
func (s Sampler) Draw(b Book, l Lot) (Record, error) {
	period := PeriodOf(l.At)
	key, err := s.keys.PeriodKey(period)
	if err != nil {
		return Record{}, fmt.Errorf("period %s key: %w", period, err)
	}
	if err := b.Open(period, key); err != nil {
		return Record{}, err
	}
	scope := ScopeOf(s.rules, l)
	before, err := b.Counter(period, scope)
	if err != nil {
		return Record{}, err
	}
	drawHex, u := Draw(key, scope, period, l.DeclarationID, l.LineNo)
	after, rec := Select(s.rules, before, drawHex, u, s.rules.LotWeight(l.ComplianceLevel, l.GoodsRisk))
	if err := b.Put(after, l); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// WeighsByCompliance reports whether a lot's weight is its importer's
// compliance level, which the caller then has to look up.
func (r Rules) WeighsByCompliance() bool {
	return r.Selection == SelectionRiskWeighted && r.WeightBy != WeightByGoodsScore
}

// MemBook keeps counters in memory, for replays of history in one
// goroutine (not safe for concurrent use).
type MemBook struct {
	counters map[[2]string]Counter
}

// NewMemBook is an empty book.
func NewMemBook() *MemBook { return &MemBook{counters: map[[2]string]Counter{}} }

// Open does nothing: a replay publishes no commitment.
func (*MemBook) Open(string, []byte) error { return nil }

// Counter is a scope's counts, zero for a scope not drawn yet.
func (m *MemBook) Counter(period, scope string) (Counter, error) {
	c, ok := m.counters[[2]string{period, scope}]
	if !ok {
		c = Counter{Period: period, Scope: scope}
	}
	return c, nil
}

// Put keeps the counter.
func (m *MemBook) Put(after Counter, _ Lot) error {
	m.counters[[2]string{after.Period, after.Scope}] = after
	return nil
}

// Counters lists every scope's counter, in no order.
func (m *MemBook) Counters() []Counter {
	out := make([]Counter, 0, len(m.counters))
	for _, c := range m.counters {
		out = append(out, c)
	}
	return out
}

// cachedKeys derives each period's key once (a replay draws a year of
// lots from the same key).
type cachedKeys struct {
	keys Keys
	by   map[string][]byte
}

// CacheKeys remembers the keys k derives, for one goroutine.
func CacheKeys(k Keys) Keys { return &cachedKeys{keys: k, by: map[string][]byte{}} }

func (c *cachedKeys) PeriodKey(period string) ([]byte, error) {
	if k, ok := c.by[period]; ok {
		return k, nil
	}
	k, err := c.keys.PeriodKey(period)
	if err != nil {
		return nil, err
	}
	c.by[period] = k
	return k, nil
}
