package pgwire_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/raftsql/raftsql/auth"
	"github.com/raftsql/raftsql/auth/authtest"
	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/pgwire"
)

// rawConn is a protocol-level client: startup done, ready for queries.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	fe *pgproto3.Frontend
}

func dialRaw(t *testing.T, s *testServer, params map[string]string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	// Every read below ends by this deadline at the latest: a test fails
	// instead of hanging, and waits no longer than the server needs.
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	p := map[string]string{"user": "tester", "database": "testdb"}
	for k, v := range params {
		p[k] = v
	}
	r := &rawConn{t: t, nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
	r.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: p})
	if err := r.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	if status, codes := r.untilReady(); status != 'I' || codes != nil {
		t.Fatalf("startup: status %q, errors %v", status, codes)
	}
	return r
}

// untilReady reads until ReadyForQuery and returns its status and the
// SQLSTATEs of the ErrorResponses on the way.
func (r *rawConn) untilReady() (byte, []string) {
	r.t.Helper()
	var codes []string
	for {
		msg, err := r.fe.Receive()
		if err != nil {
			r.t.Fatalf("receive: %v", err)
		}
		switch m := msg.(type) {
		case *pgproto3.ReadyForQuery:
			return m.TxStatus, codes
		case *pgproto3.ErrorResponse:
			codes = append(codes, m.Code)
		}
	}
}

// query runs a simple Query and returns the status of ReadyForQuery; an
// error other than wantErr fails the test.
func (r *rawConn) query(sql string, wantErr ...string) byte {
	r.t.Helper()
	r.fe.Send(&pgproto3.Query{String: sql})
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
	st, codes := r.untilReady()
	if strings.Join(codes, ",") != strings.Join(wantErr, ",") {
		r.t.Fatalf("%s: errors %v, want %v", sql, codes, wantErr)
	}
	return st
}

// waitClosed reads until the server closes the connection and returns
// the ErrorResponses it sent meanwhile.
func (r *rawConn) waitClosed() []*pgproto3.ErrorResponse {
	r.t.Helper()
	var errs []*pgproto3.ErrorResponse
	for {
		msg, err := r.fe.Receive()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("the server did not close the connection")
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
				r.t.Fatalf("receive: %v", err)
			}
			return errs
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			errs = append(errs, e)
		}
	}
}

func wantIdleFatal(t *testing.T, name string, errs []*pgproto3.ErrorResponse) {
	t.Helper()
	if len(errs) != 1 || errs[0].Code != "25P03" || errs[0].Severity != "FATAL" ||
		errs[0].Message != "terminating connection due to idle-in-transaction timeout" {
		t.Fatalf("%s: errors %+v, want one FATAL 25P03", name, errs)
	}
}

// TestIdleInTransactionTimeout: a session idle inside a transaction block
// (open or failed) longer than the limit gets FATAL 25P03 and is closed,
// and its engine transaction is rolled back; sessions idle outside a
// transaction, and the wait between Parse and Sync, are not limited.
func TestIdleInTransactionTimeout(t *testing.T) {
	s := startServer(t, func(c *pgwire.Config) { c.IdleInTxTimeout = 100 * time.Millisecond })
	s.eng.Interactive = true
	setup := dialRaw(t, s, nil)
	setup.query("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)")
	if got := showRaw(t, setup, "idle_in_transaction_session_timeout"); got != "100ms" {
		t.Fatalf("default shown as %q", got)
	}

	// Idle outside a transaction since before the others started: if
	// anything closed it, the checks at the end fail.
	outside := dialRaw(t, s, nil)

	// An open interactive transaction holding the engine's writer.
	open := dialRaw(t, s, nil)
	if st := open.query("BEGIN"); st != 'T' {
		t.Fatalf("BEGIN: status %q", st)
	}
	if st := open.query("INSERT INTO kv VALUES ('a', 1)"); st != 'T' {
		t.Fatalf("INSERT: status %q", st)
	}
	wantIdleFatal(t, "open transaction", open.waitClosed())

	// A failed transaction ('E') is idle in a transaction too.
	failed := dialRaw(t, s, nil)
	failed.query("BEGIN")
	if st := failed.query("SELECT * FROM nosuchtable", "42P01"); st != 'E' {
		t.Fatalf("failed transaction: status %q", st)
	}
	wantIdleFatal(t, "failed transaction", failed.waitClosed())

	// The session's own setting wins over the default: 0 turns it off
	// for this session (checked below, after another session timed out
	// while this one was idle longer).
	off := dialRaw(t, s, map[string]string{"options": "-c idle_in_transaction_session_timeout=0"})
	off.query("BEGIN")
	short := dialRaw(t, s, nil)
	if st := short.query("SET idle_in_transaction_session_timeout = '50ms'; BEGIN"); st != 'T' {
		t.Fatalf("status %q", st)
	}
	wantIdleFatal(t, "SET 50ms", short.waitClosed())
	if st := off.query("SELECT 1"); st != 'T' {
		t.Fatalf("session with the limit off: status %q", st)
	}
	off.query("COMMIT")

	// Between Parse and Sync the client is not idle: a Sync group sent in
	// two halves, the pause longer than the limit, still runs. The other
	// sessions' timeouts above bound the pause from below without sleeping:
	// a session that gets its FATAL has waited at least 100 ms.
	ext := dialRaw(t, s, nil)
	ext.query("BEGIN")
	ext.fe.Send(&pgproto3.Parse{Query: "SELECT 1"})
	ext.fe.Send(&pgproto3.Bind{})
	ext.fe.Flush()
	witness := dialRaw(t, s, nil)
	witness.query("BEGIN")
	wantIdleFatal(t, "witness", witness.waitClosed())
	ext.fe.Send(&pgproto3.Execute{})
	ext.fe.Send(&pgproto3.Sync{})
	ext.fe.Flush()
	if st, codes := ext.untilReady(); st != 'T' || codes != nil {
		t.Fatalf("extended protocol across a pause: status %q, errors %v", st, codes)
	}
	ext.query("ROLLBACK")

	// The timed-out transaction was rolled back: its row is not there,
	// and the writer it held is free again.
	if st := outside.query("INSERT INTO kv VALUES ('a', 2)"); st != 'I' {
		t.Fatalf("write after the timeout: status %q", st)
	}
	if got := showRaw(t, outside, "idle_in_transaction_session_timeout"); got != "100ms" {
		t.Fatalf("outside: %q", got)
	}
}

func showRaw(t *testing.T, r *rawConn, name string) string {
	t.Helper()
	r.fe.Send(&pgproto3.Query{String: "SHOW " + name})
	r.fe.Flush()
	var val string
	for {
		msg, err := r.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			val = string(m.Values[0])
		case *pgproto3.ErrorResponse:
			t.Fatalf("SHOW %s: %s %s", name, m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			return val
		}
	}
}

// TestTimeoutSettings: the configured defaults, SET in PostgreSQL units,
// SHOW in PostgreSQL's format, RESET, and refusals.
func TestTimeoutSettings(t *testing.T) {
	s := startServer(t, func(c *pgwire.Config) {
		c.StatementTimeout = 2 * time.Minute
		c.IdleInTxTimeout = 90 * time.Second
	})
	c := connect(t, s, "")
	ctx := ctxT(t)
	show := shower(t, c)
	if got := show("statement_timeout"); got != "2min" {
		t.Errorf("statement_timeout default %q, want 2min", got)
	}
	if got := show("idle_in_transaction_session_timeout"); got != "90s" {
		t.Errorf("idle_in_transaction_session_timeout default %q, want 90s", got)
	}
	for _, tc := range []struct{ set, want string }{
		{"SET statement_timeout = 1500", "1500ms"},
		{"SET statement_timeout = '1.5s'", "1500ms"},
		{"SET statement_timeout TO '3600s'", "1h"},
		{"SET statement_timeout = 0", "0"},
		{"SET statement_timeout TO DEFAULT", "2min"},
		{"SET statement_timeout = '10min'", "10min"},
		{"RESET statement_timeout", "2min"},
	} {
		if _, err := c.Exec(ctx, tc.set); err != nil {
			t.Fatalf("%s: %v", tc.set, err)
		}
		if got := show("statement_timeout"); got != tc.want {
			t.Errorf("%s: SHOW gives %q, want %q", tc.set, got, tc.want)
		}
	}
	for _, bad := range []string{"'abc'", "'5 sec'", "-1", "'30 days'"} {
		_, err := c.Exec(ctx, "SET idle_in_transaction_session_timeout = "+bad)
		if pgCode(err) != "22023" {
			t.Errorf("SET … = %s: %v, want 22023", bad, err)
		}
	}
	if got := show("idle_in_transaction_session_timeout"); got != "90s" {
		t.Errorf("after refused SETs: %q", got)
	}
	if _, err := c.Exec(ctx, "SET idle_in_transaction_session_timeout = '5min'"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "DISCARD ALL"); err != nil {
		t.Fatal(err)
	}
	if got := show("idle_in_transaction_session_timeout"); got != "90s" {
		t.Errorf("after DISCARD ALL: %q, want the default 90s", got)
	}
	// Out-of-range defaults are refused when the server is made.
	if _, err := pgwire.NewServer(pgwire.Config{Engine: s.eng, StatementTimeout: -time.Second}); err == nil {
		t.Error("negative StatementTimeout accepted")
	}
	if _, err := pgwire.NewServer(pgwire.Config{Engine: s.eng, IdleInTxTimeout: 30 * 24 * time.Hour}); err == nil {
		t.Error("IdleInTxTimeout of 30 days accepted")
	}
}

// TestStatementTimeoutDefault: Config.StatementTimeout cancels a
// statement that runs longer with 57014, and the engine sees it as the
// context's deadline; a session may lift it.
func TestStatementTimeoutDefault(t *testing.T) {
	s := startServer(t, func(c *pgwire.Config) { c.StatementTimeout = 50 * time.Millisecond })
	var mu sync.Mutex
	var sawDeadline bool
	release := make(chan struct{})
	s.eng.Hook = func(ctx context.Context, _ bool, stmts []fsm.Statement) error {
		if !strings.Contains(stmts[0].SQL, "'block'") {
			return nil
		}
		_, ok := ctx.Deadline()
		mu.Lock()
		sawDeadline = ok
		mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-release:
			return nil
		}
	}
	c := connect(t, s, "")
	ctx := ctxT(t)
	_, err := c.Exec(ctx, "select 'block'")
	if pgCode(err) != "57014" || !strings.Contains(err.Error(), "statement timeout") {
		t.Fatalf("blocked statement: %v, want 57014 statement timeout", err)
	}
	mu.Lock()
	if !sawDeadline {
		t.Error("the engine saw no deadline")
	}
	mu.Unlock()
	// With the limit off the statement waits for the engine.
	if _, err := c.Exec(ctx, "SET statement_timeout = 0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "select 'block'")
		done <- err
	}()
	// Let the engine go only once another session has timed out, which
	// takes at least 50 ms: the unlimited statement outlived the default.
	other := connect(t, s, "")
	if _, err := other.Exec(ctx, "select 'block'"); pgCode(err) != "57014" {
		t.Fatalf("other session: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("statement_timeout = 0: %v", err)
	}
}

// TestMessageTooLarge: a message over Config.MaxMessageSize ends the
// session with FATAL 08P01 naming the size and the limit, in plain text
// and over TLS (where the codec is made again after the handshake), and
// the server goes on serving.
func TestMessageTooLarge(t *testing.T) {
	ca := authtest.NewCA(t, "test ca")
	cert, key := ca.Issue(t, "server", authtest.CertOptions{})
	tlsCfg, err := auth.ServerTLS(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, func(c *pgwire.Config) {
		c.MaxMessageSize = 1024
		c.TLSConfig = tlsCfg
	})
	ctx := ctxT(t)
	for _, mode := range []string{"disable", "require"} {
		c, err := pgx.Connect(ctx, strings.Replace(s.url(""), "sslmode=disable", "sslmode="+mode, 1))
		if err != nil {
			t.Fatalf("sslmode=%s: %v", mode, err)
		}
		_, err = c.Exec(ctx, "select '"+strings.Repeat("x", 2000)+"'", pgx.QueryExecModeSimpleProtocol)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "08P01" || pe.Severity != "FATAL" || !strings.Contains(pe.Message, "exceeds the limit of 1024 bytes") {
			t.Errorf("sslmode=%s: err %v, want FATAL 08P01 naming the limit", mode, err)
		}
		c.Close(ctx)
	}
	c := connect(t, s, "")
	var n int
	if err := c.QueryRow(ctx, "select 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after the refusals: %d %v", n, err)
	}
}
