package store

import (
	"sync/atomic"
	"time"
)

// Histogram is a distribution under fixed upper bounds, as Prometheus
// keeps one: Counts[i] is the observations at most Bounds[i] (cumulative),
// Count all of them and Sum their total. The committer keeps its own
// (atomics, no lock on the commit path), so CommitStats carries them to
// any reader; store/metrics.go exports them to Prometheus.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Bucket bounds of the committer's histograms: a synced commit takes from
// well under a millisecond (a fast SSD) to tens of milliseconds (a busy
// disk); a batch carries from one update to MaxBatch.
var (
	syncBounds  = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
	batchBounds = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}
)

// histogram counts observations with atomics (any goroutine may observe);
// values are int64 in a unit, scale converts them to the bounds' unit.
type histogram struct {
	bounds []float64
	scale  float64
	counts []atomic.Uint64 // per bucket, the last one past every bound
	sum    atomic.Int64
}

func newHistogram(bounds []float64, scale float64) *histogram {
	return &histogram{bounds: bounds, scale: scale, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(v int64) {
	f := float64(v) * h.scale
	i := 0
	for i < len(h.bounds) && f > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(v)
}

func (h *histogram) observeDuration(d time.Duration) { h.observe(int64(d)) }

func (h *histogram) snapshot() Histogram {
	out := Histogram{Bounds: h.bounds, Counts: make([]uint64, len(h.bounds))}
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if i < len(h.bounds) {
			out.Counts[i] = cum
		}
	}
	out.Count = cum
	out.Sum = float64(h.sum.Load()) * h.scale
	return out
}

// Sizes reports badger's LSM tree (SST files) and value log sizes in bytes,
// as badger last measured them: at open and then every minute.
func (d *DB) Sizes() (lsm, vlog int64) { return d.db.Size() }
