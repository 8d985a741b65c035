package fsm

import (
	"context"
	"fmt"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

// BenchmarkApply measures applied entries per second for batch sizes the
// driver may hand over (one INSERT per entry, each with a session).
func BenchmarkApply(b *testing.B) {
	for _, batch := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			f := openT(b, b.TempDir())
			mustApply(b, f, ent(1, cmd(0, 0, st("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"))))
			idx := uint64(1)
			entries := make([]consensus.Entry, 0, batch)
			b.ResetTimer()
			for i := 0; i < b.N; {
				entries = entries[:0]
				for j := 0; j < batch && i < b.N; j++ {
					idx++
					i++
					entries = append(entries, ent(idx, cmd(uint64(1+i%64), uint64(i), st("INSERT INTO t(v) VALUES ($1)", "value"))))
				}
				if err := f.Apply(context.Background(), entries); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

func BenchmarkQuery(b *testing.B) {
	f := openT(b, b.TempDir())
	mustApply(b, f, ent(1, cmd(0, 0, st("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"), st("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100) INSERT INTO t(v) SELECT 'x' FROM c"))))
	stmts := []Statement{st("SELECT v FROM t WHERE id = $1", int64(7))}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.Query(context.Background(), stmts); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPreview measures a preview of an interactive transaction: one
// pending write and a read of it, rolled back (compare BenchmarkQuery for
// a plain read). The "during-apply" variant runs previews while entries
// are applied and reports the applier's rate, to show what previews cost
// the log.
func BenchmarkPreview(b *testing.B) {
	setup := func(b *testing.B) *FSM {
		f := openT(b, b.TempDir())
		mustApply(b, f, ent(1, cmd(0, 0, st("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"), st("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100) INSERT INTO t(v) SELECT 'x' FROM c"))))
		return f
	}
	pending := []Statement{st("UPDATE t SET v = $1 WHERE id = $2", "y", int64(7))}
	stmts := []Statement{st("SELECT v FROM t WHERE id = $1", int64(7))}
	b.Run("alone", func(b *testing.B) {
		f := setup(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := f.Preview(context.Background(), pending, stmts, t0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("read-only", func(b *testing.B) {
		f := setup(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := f.Preview(context.Background(), nil, stmts, t0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("during-apply", func(b *testing.B) {
		f := setup(b)
		done := make(chan struct{})
		applied := make(chan int)
		go func() {
			n := 0
			for idx := uint64(2); ; idx++ {
				select {
				case <-done:
					applied <- n
					return
				default:
				}
				if err := f.Apply(context.Background(), []consensus.Entry{ent(idx, cmd(1, idx, st("INSERT INTO t(v) VALUES ('z')")))}); err != nil {
					b.Error(err)
				}
				n++
			}
		}()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, _, err := f.Preview(context.Background(), pending, stmts, t0); err != nil {
				b.Fatal(err)
			}
		}
		close(done)
		b.ReportMetric(float64(<-applied)/b.Elapsed().Seconds(), "entries/s")
	})
}
