package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// naiveQuantile is the reference: the ceil(q*n)-th smallest sample.
func naiveQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = max(rank, 1)
	return sorted[rank-1]
}

func TestHistogramMatchesSortedSamples(t *testing.T) {
	// Relative error bound of the bucket layout.
	const tol = 1.0 / halfCount
	dists := map[string]func(r *rand.Rand) time.Duration{
		"uniform µs":  func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(10 * time.Millisecond))) },
		"exponential": func(r *rand.Rand) time.Duration { return time.Duration(r.ExpFloat64() * float64(2*time.Millisecond)) },
		"small exact": func(r *rand.Rand) time.Duration { return time.Duration(r.IntN(subCount)) },
		"heavy tail": func(r *rand.Rand) time.Duration {
			if r.IntN(1000) == 0 {
				return time.Duration(r.Int64N(int64(5 * time.Second)))
			}
			return time.Duration(200*time.Microsecond) + time.Duration(r.Int64N(int64(time.Millisecond)))
		},
	}
	for name, dist := range dists {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var h histogram
			var samples []time.Duration
			for range 20000 {
				d := dist(r)
				h.Record(d)
				samples = append(samples, d)
			}
			slices.Sort(samples)
			for _, q := range []float64{0, 0.001, 0.5, 0.9, 0.99, 0.999, 1} {
				want := naiveQuantile(samples, q)
				got := h.Quantile(q)
				if got < want || float64(got-want) > tol*float64(want) {
					t.Errorf("q=%v: got %v, want %v (within %.2f%% above)", q, got, want, tol*100)
				}
			}
			if h.Min() != samples[0] || h.Max() != samples[len(samples)-1] {
				t.Errorf("min/max %v/%v, want %v/%v", h.Min(), h.Max(), samples[0], samples[len(samples)-1])
			}
			if h.Count() != uint64(len(samples)) {
				t.Errorf("count %d", h.Count())
			}
		})
	}
}

func TestHistogramEdges(t *testing.T) {
	var h histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Error("empty histogram should report 0")
	}
	h.Record(-5)
	h.Record(time.Duration(math.MaxInt64))
	if h.Min() != 0 || h.Max() != time.Duration(math.MaxInt64) {
		t.Errorf("min %v max %v", h.Min(), h.Max())
	}
	if h.Quantile(1) != time.Duration(math.MaxInt64) {
		t.Errorf("p100 = %v", h.Quantile(1))
	}
	// Bucket bounds are monotonic and every value lands in a bucket whose
	// high end is not below it.
	prev := uint64(0)
	for i := 1; i < numBuckets; i++ {
		hi := bucketHigh(i)
		if hi <= prev {
			t.Fatalf("bucket %d high %d <= previous %d", i, hi, prev)
		}
		prev = hi
	}
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 40, math.MaxUint64} {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets || bucketHigh(i) < v || (i > 0 && bucketHigh(i-1) >= v) {
			t.Errorf("value %d in bucket %d [%d, %d]", v, i, bucketHigh(i-1)+1, bucketHigh(i))
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all histogram
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&histogram{})
	if m != all {
		t.Errorf("merge differs: count %d/%d min %v/%v max %v/%v", m.Count(), all.Count(), m.Min(), all.Min(), m.Max(), all.Max())
	}
}
