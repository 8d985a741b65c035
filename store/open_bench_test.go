package store_test

import (
	"context"
	"testing"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/store"
)

// BenchmarkOpen100k measures Open (validation plus loading and verifying
// every entry) of a store holding 100,000 200-byte entries.
func BenchmarkOpen100k(b *testing.B) {
	dir := b.TempDir()
	s, err := store.Open(context.Background(), dir, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 200)
	for i := uint64(0); i < 100; i++ {
		es := make([]consensus.Entry, 1000)
		for j := range es {
			es[j] = consensus.Entry{Index: i*1000 + uint64(j) + 1, Term: 1, Data: data}
		}
		if err := s.Save(consensus.HardState{Term: 1}, es, nil); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := store.Open(context.Background(), dir, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkEntriesUncached measures reading 1,000 entries older than the
// cache (a follower catching up from far behind): one bolt read per entry.
func BenchmarkEntriesUncached(b *testing.B) {
	s, err := store.Open(context.Background(), b.TempDir(), store.Options{CacheEntries: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 200)
	es := make([]consensus.Entry, 1000)
	for j := range es {
		es[j] = consensus.Entry{Index: uint64(j) + 1, Term: 1, Data: data}
	}
	if err := s.Save(consensus.HardState{Term: 1}, es, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := s.Entries(1, 1001, 1<<30)
		if err != nil || len(got) != 1000 {
			b.Fatal(len(got), err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "entries/s")
}
