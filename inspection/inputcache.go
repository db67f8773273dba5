package inspection

import (
	"errors"
	"sync"

	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/inspection/scoring"
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
	mfrs   map[versioned]cachedRecord[reference.Manufacturer]
	risks  map[versioned]cachedRecord[scoring.Record]
	priors map[priorKey]cachedRecord[risk.Prior]
	// links and linked hold a goods' link and the goods linked into it:
	// a link moves both goods' versions.
	links  map[versioned]cachedRecord[GoodsLink]
	linked map[versioned][]identity.Key
}

type versioned struct {
	sub risk.Subject
	v   uint64
}

type priorKey struct {
	group string
	v     uint64
}

// cachedRecord is a record read under a version, or the fact that the
// snapshot had none (found false).
type cachedRecord[V any] struct {
	v     V
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

// cachedRead serves a record from m under k, or reads it and keeps it
// (a miss too: ErrNotFound is an answer of the snapshot like any other).
func cachedRead[K comparable, V any](c *inputCache, m *map[K]cachedRecord[V], k K, read func() (V, error)) (V, error) {
	if r, ok := cacheGet(c, m, k); ok {
		if !r.found {
			var zero V
			return zero, fault.ErrNotFound
		}
		return r.v, nil
	}
	v, err := read()
	switch {
	case err == nil:
		cachePut(c, m, k, cachedRecord[V]{v, true})
	case errors.Is(err, fault.ErrNotFound):
		cachePut(c, m, k, cachedRecord[V]{})
	}
	return v, err
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
	sub := s.InputSubject()
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

func (t cachedReadTx) Manufacturer(mk identity.Key) (reference.Manufacturer, error) {
	sub := Subject{SubjectManufacturer, mk}.InputSubject()
	v, ok := t.versions[sub]
	if !ok {
		return t.ReadTx.Manufacturer(mk)
	}
	return cachedRead(t.c, &t.c.mfrs, versioned{sub, v}, func() (reference.Manufacturer, error) { return t.ReadTx.Manufacturer(mk) })
}

func (t cachedReadTx) RiskRecord(sub risk.Subject) (scoring.Record, error) {
	v, ok := t.versions[sub]
	if !ok {
		return t.ReadTx.RiskRecord(sub)
	}
	return cachedRead(t.c, &t.c.risks, versioned{sub, v}, func() (scoring.Record, error) { return t.ReadTx.RiskRecord(sub) })
}

func (t cachedReadTx) RiskPrior(group string) (risk.Prior, error) {
	v, ok := t.versions[PriorsSubject()]
	if !ok {
		return t.ReadTx.RiskPrior(group)
	}
	return cachedRead(t.c, &t.c.priors, priorKey{group, v}, func() (risk.Prior, error) { return t.ReadTx.RiskPrior(group) })
}

func (t cachedReadTx) GoodsLink(k identity.Key) (GoodsLink, error) {
	sub := Subject{SubjectGoods, k}.InputSubject()
	v, ok := t.versions[sub]
	if !ok {
		return t.ReadTx.GoodsLink(k)
	}
	return cachedRead(t.c, &t.c.links, versioned{sub, v}, func() (GoodsLink, error) { return t.ReadTx.GoodsLink(k) })
}

func (t cachedReadTx) LinkedInto(k identity.Key) ([]identity.Key, error) {
	sub := Subject{SubjectGoods, k}.InputSubject()
	v, ok := t.versions[sub]
	if !ok {
		return t.ReadTx.LinkedInto(k)
	}
	if ks, ok := cacheGet(t.c, &t.c.linked, versioned{sub, v}); ok {
		return ks, nil
	}
	ks, err := t.ReadTx.LinkedInto(k)
	if err != nil {
		return nil, err
	}
	cachePut(t.c, &t.c.linked, versioned{sub, v}, ks)
	return ks, nil
}
