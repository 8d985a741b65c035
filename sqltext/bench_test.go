package sqltext

import (
	"testing"
)

const (
	benchShort = "insert into t(name, v) values ($1, $2) returning id"
	benchPsql  = `SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3;`
)

func BenchmarkSplit(b *testing.B) {
	for _, q := range []struct{ name, q string }{{"short", benchShort}, {"psql", benchPsql}} {
		b.Run(q.name, func(b *testing.B) {
			b.SetBytes(int64(len(q.q)))
			for b.Loop() {
				if _, err := Split(q.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTranslate(b *testing.B) {
	for _, q := range []struct{ name, q string }{{"short", benchShort}, {"psql", benchPsql}, {"cast", "select $1::int + 1"}} {
		b.Run(q.name, func(b *testing.B) {
			b.SetBytes(int64(len(q.q)))
			for b.Loop() {
				if _, err := Translate(q.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMakeDeterministic(b *testing.B) {
	for _, q := range []struct{ name, q string }{{"nothing", "insert into t(name, v) values (?1, ?2) returning id"}, {"random_now", "insert into t values (random(), datetime('now'))"}} {
		b.Run(q.name, func(b *testing.B) {
			rnd := testRand()
			b.SetBytes(int64(len(q.q)))
			for b.Loop() {
				if _, err := MakeDeterministic(q.q, testNow, rnd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
