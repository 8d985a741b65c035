package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/raftsql/raftsql/pgwire"
	"github.com/raftsql/raftsql/pgwire/pgwiretest"
)

// startPgwire serves raftsql's own PostgreSQL front end on a SQLite test
// engine (no Raft) on a loopback port: the shell and bench then run
// against the same wire code as raftsqld, without PostgreSQL installed.
func startPgwire(t *testing.T) string {
	t.Helper()
	eng, err := pgwiretest.New()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pgwire.NewServer(pgwire.Config{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		eng.Close()
	})
	return ln.Addr().String()
}

func TestShellAgainstPgwire(t *testing.T) {
	addr := startPgwire(t)
	host, port, _ := net.SplitHostPort(addr)
	var out, errOut strings.Builder
	e := defaultEnv()
	e.isTerminal = func(io.Reader) bool { return false }
	script := `CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL);
INSERT INTO kv VALUES (1, 'one;1'), (2, 'two');
SELECT k, v FROM kv ORDER BY k;
\dt
\d kv
`
	err := e.run(context.Background(), []string{"raftsql", "-h", host, "-p", port}, strings.NewReader(script), &out, &errOut)
	if err != nil {
		t.Fatalf("%v: %s\n%s", err, errOut.String(), out.String())
	}
	for _, want := range []string{"CREATE TABLE\n", "INSERT 0 2\n", " k |   v   \n---+-------\n 1 | one;1\n 2 | two\n(2 rows)\n",
		"List of relations", " kv   | table", `Table "public.kv"`, " k      | integer", "not null"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	errOut.Reset()
	err = e.run(context.Background(), []string{"raftsql", "-h", host, "-p", port, "-c", "INSERT INTO nosuch VALUES (1)"}, strings.NewReader(""), io.Discard, &errOut)
	if pe, ok := pgErrorOf(err); !ok || pe.Code != "42P01" || !strings.HasPrefix(errOut.String(), "ERROR:  ") {
		t.Errorf("err %v stderr %q, want 42P01", err, errOut.String())
	}
}

func TestBenchAgainstPgwire(t *testing.T) {
	addr := startPgwire(t)
	for _, wl := range []string{"write", "mixed"} {
		cfg := benchConfig{Hosts: []string{addr, addr}, User: "u", Database: "db", Conns: 3, Ops: 150, Workload: wl,
			ReadPercent: 50, ReadConsistency: "stale", ValueSize: 10, Keys: 20, Seed: 1, Progress: time.Hour}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := runBench(ctx, cfg, pgxDriver{cfg: &cfg}, time.Now, io.Discard)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", wl, err)
		}
		if res.Ops() != 150 || res.Errors() != 0 {
			t.Fatalf("%s: ops %d errors %d %q", wl, res.Ops(), res.Errors(), res.FirstErrors)
		}
	}
}
