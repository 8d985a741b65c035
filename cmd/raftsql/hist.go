package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records durations in log-linear buckets, like HdrHistogram:
// values below 2^subBits ns are exact, larger ones land in one of
// 2^(subBits-1) buckets per power of two, so a reported percentile is
// within 1/2^(subBits-1) (under 1.6%) of the true sample. Recording is
// O(1) and allocation free; a histogram is not safe for concurrent use
// (each bench worker has its own and they are merged).
type histogram struct {
	counts [numBuckets]uint64
	total  uint64
	sum    float64 // ns, for the mean
	min    uint64
	max    uint64
}

const (
	subBits    = 7
	subCount   = 1 << subBits
	halfCount  = subCount / 2
	numBuckets = subCount + (64-subBits)*halfCount
)

// bucketOf returns the bucket index of v.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits // shift that leaves subBits significant bits
	m := v >> e                  // in [halfCount, subCount)
	return subCount + (e-1)*halfCount + int(m-halfCount)
}

// bucketHigh returns the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	e := (i-subCount)/halfCount + 1
	m := uint64((i-subCount)%halfCount + halfCount)
	hi := (m+1)<<e - 1
	if hi < m<<e { // overflow of the top bucket
		return math.MaxUint64
	}
	return hi
}

// Record adds one duration (negative counts as zero).
func (h *histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// Merge adds every sample of o to h.
func (h *histogram) Merge(o *histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.total += o.total
	h.sum += o.sum
}

// Count is the number of samples.
func (h *histogram) Count() uint64 { return h.total }

// Quantile returns the value at quantile q in [0, 1]: the smallest
// recorded bucket that holds at least ceil(q*n) samples, reported as the
// bucket's highest value but never above the largest sample.
func (h *histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketHigh(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// Mean returns the average sample.
func (h *histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Min and Max return the extreme samples.
func (h *histogram) Min() time.Duration { return time.Duration(h.min) }
func (h *histogram) Max() time.Duration { return time.Duration(h.max) }
