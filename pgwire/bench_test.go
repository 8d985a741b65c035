package pgwire_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// Benchmarks of the front end over loopback TCP with pgx, against the
// SQLite test engine (no Raft): the cost pgwire adds per statement.
//
//	go test ./pgwire -run XXX -bench . -benchtime 2s

func benchConn(b *testing.B, extra string) *pgx.Conn {
	s := startServer(b, nil)
	c := connect(b, s, extra)
	if _, err := c.Exec(ctxT(b), "create table kv (k integer primary key, v text)"); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Exec(ctxT(b), "insert into kv values (1, 'one')"); err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkPointSelect(b *testing.B) {
	for _, mode := range []string{"", "default_query_exec_mode=simple_protocol"} {
		name := "cached"
		if mode != "" {
			name = "simple"
		}
		b.Run(name, func(b *testing.B) {
			c := benchConn(b, mode)
			ctx := ctxT(b)
			var v string
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.QueryRow(ctx, "select v from kv where k = $1", 1).Scan(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkInsert(b *testing.B) {
	c := benchConn(b, "")
	ctx := ctxT(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Exec(ctx, "insert into kv (v) values ($1)", "x"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBatchInsert100(b *testing.B) {
	c := benchConn(b, "")
	ctx := ctxT(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := &pgx.Batch{}
		for j := 0; j < 100; j++ {
			batch.Queue("insert into kv (v) values ($1)", "x")
		}
		if err := c.SendBatch(ctx, batch).Close(); err != nil {
			b.Fatal(err)
		}
	}
}
