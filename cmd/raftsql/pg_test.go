package main

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// tinyServer is a minimal PostgreSQL-protocol server on pgproto3, enough
// for the shell's real connection code (pgConn): startup without
// authentication and simple queries with canned answers.
func tinyServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveTiny(c)
		}
	}()
	return ln.Addr().String()
}

func serveTiny(c net.Conn) {
	defer c.Close()
	be := pgproto3.NewBackend(c, c)
	for {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		if _, ok := msg.(*pgproto3.SSLRequest); ok {
			c.Write([]byte("N"))
			continue
		}
		break
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0 (tiny)"})
	be.Send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
	be.Send(&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 2}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		q, ok := msg.(*pgproto3.Query)
		if !ok {
			return
		}
		for _, stmt := range strings.Split(q.String, ";") {
			stmt = strings.TrimSpace(stmt)
			switch {
			case stmt == "":
				continue
			case strings.HasPrefix(stmt, "select"):
				be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
					{Name: []byte("n"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1},
					{Name: []byte("s"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1},
				}})
				be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("7"), []byte("seven")}})
				be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("10"), nil}})
				be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 2")})
			case strings.HasPrefix(stmt, "insert"):
				be.Send(&pgproto3.CommandComplete{CommandTag: []byte("INSERT 0 3")})
			default:
				be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error", Position: 1})
				goto ready
			}
		}
	ready:
		be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if be.Flush() != nil {
			return
		}
	}
}

func TestShellOverWire(t *testing.T) {
	addr := tinyServer(t)
	host, port, _ := net.SplitHostPort(addr)
	run := func(args ...string) (string, string, error) {
		var out, errOut strings.Builder
		e := defaultEnv()
		e.isTerminal = func(io.Reader) bool { return false }
		all := append([]string{"raftsql", "-h", host, "-p", port, "-U", "u", "-d", "db"}, args...)
		err := e.run(context.Background(), all, strings.NewReader(""), &out, &errOut)
		return out.String(), errOut.String(), err
	}
	out, errOut, err := run("-c", "insert x; select 1")
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	want := "INSERT 0 3\n n  |   s   \n----+-------\n  7 | seven\n 10 | \n(2 rows)\n\n"
	if out != want {
		t.Errorf("got:\n%q\nwant:\n%q", out, want)
	}
	_, errOut, err = run("-c", "bogus")
	if exitCode(err) != 1 || errOut != "ERROR:  syntax error\nLINE 1: bogus\n        ^\n" {
		t.Errorf("exit %d stderr %q", exitCode(err), errOut)
	}
	if pe, ok := pgErrorOf(err); !ok || pe.Code != "42601" {
		t.Errorf("SQLSTATE not in the error chain: %v", err)
	}
}

// The tests below need a real server: RAFTSQL_TEST_PG is a postgres://
// URL of PostgreSQL 15 (or of raftsqld) that the tests may write to.

func testPGURL(t *testing.T) *url.URL {
	t.Helper()
	s := os.Getenv("RAFTSQL_TEST_PG")
	if s == "" {
		t.Skip("RAFTSQL_TEST_PG not set")
	}
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestShellAgainstServer(t *testing.T) {
	u := testPGURL(t)
	var out, errOut strings.Builder
	e := defaultEnv()
	e.isTerminal = func(io.Reader) bool { return false }
	script := `DROP TABLE IF EXISTS shell_t;
CREATE TABLE shell_t(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO shell_t VALUES (1, 'a;b'), (2, $$multi
line$$);
SELECT id, name FROM shell_t ORDER BY id;
\dt shell_t
\d shell_t
`
	err := e.run(context.Background(), []string{"raftsql", u.String()}, strings.NewReader(script), &out, &errOut)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	for _, want := range []string{"CREATE TABLE", "INSERT 0 2", "  1 | a;b\n", "  2 | multi+\n", "(2 rows)", "List of relations", " shell_t | table", `Table "public.shell_t"`, "not null", "PRIMARY KEY"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	errOut.Reset()
	err = e.run(context.Background(), []string{"raftsql", u.String(), "-c", "INSERT INTO shell_t VALUES (1, 'dup')"}, strings.NewReader(""), &out, &errOut)
	if pe, ok := pgErrorOf(err); !ok || pe.Code != "23505" || !strings.HasPrefix(errOut.String(), "ERROR:  ") {
		t.Errorf("err %v stderr %q, want 23505", err, errOut.String())
	}
}

func TestBenchAgainstServer(t *testing.T) {
	u := testPGURL(t)
	pass, _ := u.User.Password()
	cfg := benchConfig{Hosts: []string{u.Host}, User: u.User.Username(), Password: pass, Database: strings.TrimPrefix(u.Path, "/"),
		Conns: 4, Ops: 400, Workload: "mixed", ReadPercent: 50, ValueSize: 16, Keys: 100, Seed: 1, Progress: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := runBench(ctx, cfg, pgxDriver{cfg: &cfg}, time.Now, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops() != 400 || res.Errors() != 0 {
		t.Fatalf("ops %d errors %d (%q)", res.Ops(), res.Errors(), res.FirstErrors)
	}
	if err := writeBenchReport(io.Discard, res); err != nil {
		t.Fatal(err)
	}
	// The read level travels as a startup option; PostgreSQL accepts it
	// as a placeholder setting, raftsqld as its own, and a malformed
	// option would fail every connection.
	cfg.ReadConsistency = "stale"
	cfg.Workload = "read"
	res, err = runBench(ctx, cfg, pgxDriver{cfg: &cfg}, time.Now, io.Discard)
	if err != nil || res.Errors() != 0 || res.Reads.Count() != 400 {
		t.Fatalf("stale reads: err %v, %d reads, errors %q", err, res.Reads.Count(), res.FirstErrors)
	}
}
