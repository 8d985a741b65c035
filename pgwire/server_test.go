package pgwire_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/raftsql/raftsql/pgwire"
	"github.com/raftsql/raftsql/pgwire/pgwiretest"
)

type testServer struct {
	addr string
	eng  *pgwiretest.Engine
}

func startServer(t testing.TB, mod func(*pgwire.Config)) *testServer {
	t.Helper()
	addr, eng, stop, done := serveUntil(t, mod)
	t.Cleanup(func() { // before serveUntil's cleanup closes the engine
		stop()
		select {
		case err := <-done:
			if !errors.Is(err, pgwire.ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return")
		}
	})
	return &testServer{addr: addr, eng: eng}
}

func (s *testServer) url(extra string) string {
	host, port, _ := net.SplitHostPort(s.addr)
	u := fmt.Sprintf("postgres://tester@%s:%s/testdb?sslmode=disable", host, port)
	if extra != "" {
		u += "&" + extra
	}
	return u
}

func connect(t testing.TB, s *testServer, extra string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.url(extra))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// shower returns a function that answers SHOW name on c, failing the test
// on an error. It uses the simple protocol, so that it still works after a
// DISCARD ALL dropped pgx's cached statements.
func shower(t testing.TB, c *pgx.Conn) func(name string) string {
	ctx := ctxT(t)
	return func(name string) string {
		t.Helper()
		var v string
		if err := c.QueryRow(ctx, "SHOW "+name, pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil {
			t.Fatalf("SHOW %s: %v", name, err)
		}
		return v
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

const schema = `CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, v DOUBLE PRECISION, b BOOLEAN, created TIMESTAMPTZ, data BYTEA, n BIGINT, price NUMERIC(10,2))`

func TestPgxDefault(t *testing.T) {
	s := startServer(t, nil)
	c := connect(t, s, "")
	ctx := ctxT(t)
	if _, err := c.Exec(ctx, schema); err != nil {
		t.Fatal(err)
	}
	var id int
	if err := c.QueryRow(ctx, "insert into t(name, v, b, data, n, price) values($1, $2, $3, $4, $5, $6) returning id",
		"x", 1.5, true, []byte{0, 1, 2}, int64(1)<<40, "12.34").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if id != 1 {
		t.Fatalf("id = %d", id)
	}
	var (
		name  string
		v     float64
		b     bool
		data  []byte
		n     int64
		price float64
	)
	if err := c.QueryRow(ctx, "select name, v, b, data, n, price from t where id = $1", id).Scan(&name, &v, &b, &data, &n, &price); err != nil {
		t.Fatal(err)
	}
	if name != "x" || v != 1.5 || !b || string(data) != "\x00\x01\x02" || n != 1<<40 || price != 12.34 {
		t.Fatalf("got %q %v %v %x %d %v", name, v, b, data, n, price)
	}
	var cnt int
	if err := c.QueryRow(ctx, "select count(*) from t").Scan(&cnt); err != nil || cnt != 1 {
		t.Fatalf("count = %d, %v", cnt, err)
	}
	var one int
	if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("select 1 = %d, %v", one, err)
	}
	var plus int
	if err := c.QueryRow(ctx, "select $1::int + 1", 41).Scan(&plus); err != nil || plus != 42 {
		t.Fatalf("$1::int + 1 = %d, %v", plus, err)
	}
	tag, err := c.Exec(ctx, "update t set v = $1 where name = $2", 2.5, "x")
	if err != nil || tag.String() != "UPDATE 1" {
		t.Fatalf("update: %v %v", tag, err)
	}
	tag, err = c.Exec(ctx, "delete from t where name = $1", "nope")
	if err != nil || tag.String() != "DELETE 0" {
		t.Fatalf("delete: %v %v", tag, err)
	}
	// Unique violation keeps the session usable.
	_, err = c.Exec(ctx, "insert into t(id, name) values($1, $2)", 1, "dup")
	if pgCode(err) != "23505" {
		t.Fatalf("dup insert: %v", err)
	}
	if err := c.QueryRow(ctx, "select count(*) from t").Scan(&cnt); err != nil || cnt != 1 {
		t.Fatalf("after error: count = %d, %v", cnt, err)
	}
	// Many rows, NULLs.
	for i := 0; i < 5; i++ {
		if _, err := c.Exec(ctx, "insert into t(name) values($1)", fmt.Sprint("r", i)); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := c.Query(ctx, "select id, name, v from t order by id")
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for rows.Next() {
		var id int
		var name string
		var v *float64
		if err := rows.Scan(&id, &name, &v); err != nil {
			t.Fatal(err)
		}
		if id > 1 && v != nil {
			t.Fatalf("row %d: v = %v, want NULL", id, *v)
		}
		got++
	}
	if rows.Err() != nil || got != 6 {
		t.Fatalf("rows: %d, %v", got, rows.Err())
	}
}
