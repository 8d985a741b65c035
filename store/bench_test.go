package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/store"
)

// BenchmarkFsync measures this disk's raw fsync rate: a 4 KiB write then
// fdatasync on one file, the floor under any Save.
//
//	go test ./store -run '^$' -bench Fsync
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.WriteAt(buf, int64(i%256)*4096); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fsyncs/s")
}

// BenchmarkSave measures Save of n 200-byte entries (one transaction, one
// fsync each).
func BenchmarkSave(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			s, err := store.Open(context.Background(), b.TempDir(), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, 200)
			batch := make([]consensus.Entry, n)
			next := uint64(1)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range batch {
					batch[j] = consensus.Entry{Index: next, Term: 1, Data: data}
					next++
				}
				if err := s.Save(consensus.HardState{Term: 1}, batch, nil); err != nil {
					b.Fatal(err)
				}
			}
			st := s.Stats()
			b.ReportMetric(float64(st.Entries)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(st.Commits)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}
