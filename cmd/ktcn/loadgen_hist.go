package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram in the manner of HdrHistogram,
// written out here because it is forty lines and a dependency is not: values
// below 256 ns are counted exactly, and every power of two above is split
// into 128 equal buckets, so a reported percentile is within 1/128 (0.8%)
// of the true one at any scale, from loopback microseconds to multi-second
// stalls, in fixed memory. Sorting every latency instead would cost memory
// that grows with the run and GC work inside the load generator, which
// competes with the server for the same cores.
//
// A histogram is not safe for concurrent use: each load worker records into
// its own and the report merges them.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      float64
	min, max int64
}

const (
	histSubBits = 8
	histSub     = 1 << histSubBits // exact values below this
	histHalf    = histSub / 2      // buckets per power of two above it
	// Positive int64 values have at most 63 bits: octaves 1..55.
	histBuckets = histSub + (63-histSubBits)*histHalf
)

func newHistogram() *histogram { return &histogram{min: math.MaxInt64} }

func histBucket(v int64) int {
	if v < histSub {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - histSubBits
	return histSub + (e-1)*histHalf + int(uint64(v)>>e) - histHalf
}

// histUpper is the largest value that falls in bucket i.
func histUpper(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	j := i - histSub
	e := j/histHalf + 1
	low := int64(j%histHalf+histHalf) << e
	return low + (int64(1) << e) - 1
}

func (h *histogram) record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[histBucket(v)]++
	h.n++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// quantile returns the upper bound of the bucket holding the q-th value
// (never below the truth, by at most 0.8%), capped at the largest value
// recorded; zero when empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}
