package inspection

import (
	"errors"
	"sync"

	"github.com/ktcn/ktcn/risk"
)

// inputCache keeps what deciding a lot reads about a subject (its history,
// its manufacturer record, its risk counts, the fitted priors) under the
// subject's input version (InputVersioner). The store bumps a version in
// the same transaction as every write to what it covers, so in any snapshot
// a version names exactly one value: a cached value read under the same
// version is the value the snapshot holds. Lots of the same goods,
// manufacturer, heading and importer mostly repeat, so prepareDecision
// reads the few version counters and takes the records from here.
type inputCache struct {
	mu     sync.Mutex
	events map[versioned][]Event
	mfrs   map[versioned]cachedManufacturer
	risks  map[versioned]cachedRisk
	priors map[priorKey]cachedPrior
}

type versioned struct {
	sub risk.Subject
	v   uint64
}

type priorKey struct {
	group string
	v     uint64
}

type cachedManufacturer struct {
	m     Manufacturer
	found bool
}

type cachedPrior struct {
	p     risk.Prior
	found bool
}

type cachedRisk struct {
	r     RiskRecord
	found bool
}

// inputCacheSize bounds each map; a full map is emptied (entries of old
// versions are never read again anyway).
const inputCacheSize = 4096

func cacheGet[K comparable, V any](c *inputCache, m *map[K]V, k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := (*m)[k]
	return v, ok
}

func cachePut[K comparable, V any](c *inputCache, m *map[K]V, k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *m == nil || len(*m) >= inputCacheSize {
		*m = make(map[K]V)
	}
	(*m)[k] = v
}

// cachedReadTx serves a snapshot's reads of versioned inputs from the
// cache, for the versions that snapshot holds (read first, into versions);
// everything else, and any subject whose version it did not read, goes to
// the snapshot. Cached slices are shared: callers copy before changing
// them (goodsHistory and evalLot do).
type cachedReadTx struct {
	ReadTx
	c        *inputCache
	versions map[risk.Subject]uint64
}

func (t cachedReadTx) Events(s Subject) ([]Event, error) {
	sub := risk.Subject{Kind: string(s.Kind), ID: s.Key.String()}
	v, ok := t.versions[sub]
	if !ok {
		return t.ReadTx.Events(s)
	}
	k := versioned{sub, v}
	if evs, ok := cacheGet(t.c, &t.c.events, k); ok {
		return evs, nil
	}
	evs, err := t.ReadTx.Events(s)
	if err != nil {
		return nil, err
	}
	cachePut(t.c, &t.c.events, k, evs)
	return evs, nil
}

func (t cachedReadTx) Manufacturer(mk Key) (Manufacturer, error) {
	sub := risk.Subject{Kind: risk.KindManufacturer, ID: mk.String()}
	v, ok := t.versions[sub]
	if !ok {
		return t.ReadTx.Manufacturer(mk)
	}
	k := versioned{sub, v}
	if m, ok := cacheGet(t.c, &t.c.mfrs, k); ok {
		if !m.found {
			return Manufacturer{}, ErrNotFound
		}
		return m.m, nil
	}
	m, err := t.ReadTx.Manufacturer(mk)
	switch {
	case err == nil:
		cachePut(t.c, &t.c.mfrs, k, cachedManufacturer{m, true})
	case errors.Is(err, ErrNotFound):
		cachePut(t.c, &t.c.mfrs, k, cachedManufacturer{})
	}
	return m, err
}

func (t cachedReadTx) RiskRecord(sub risk.Subject) (RiskRecord, error) {
	v, ok := t.versions[sub]
	if !ok {
		return t.ReadTx.RiskRecord(sub)
	}
	k := versioned{sub, v}
	if r, ok := cacheGet(t.c, &t.c.risks, k); ok {
		if !r.found {
			return RiskRecord{}, ErrNotFound
		}
		return r.r, nil
	}
	r, err := t.ReadTx.RiskRecord(sub)
	switch {
	case err == nil:
		cachePut(t.c, &t.c.risks, k, cachedRisk{r, true})
	case errors.Is(err, ErrNotFound):
		cachePut(t.c, &t.c.risks, k, cachedRisk{})
	}
	return r, err
}

func (t cachedReadTx) RiskPrior(group string) (risk.Prior, error) {
	v, ok := t.versions[PriorsSubject]
	if !ok {
		return t.ReadTx.RiskPrior(group)
	}
	k := priorKey{group, v}
	if p, ok := cacheGet(t.c, &t.c.priors, k); ok {
		if !p.found {
			return risk.Prior{}, ErrNotFound
		}
		return p.p, nil
	}
	p, err := t.ReadTx.RiskPrior(group)
	switch {
	case err == nil:
		cachePut(t.c, &t.c.priors, k, cachedPrior{p, true})
	case errors.Is(err, ErrNotFound):
		cachePut(t.c, &t.c.priors, k, cachedPrior{})
	}
	return p, err
}
