package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestLimitFlags runs raftsqld in-process with --statement-timeout,
// --idle-in-transaction-timeout, --max-connections and --max-message-size
// and checks with pgx that sessions start with them, that a long statement
// is canceled (57014), that a session idle in a transaction is ended
// (FATAL 25P03) and rolled back, that one session too many gets 53300 and
// that an oversized message gets 08P01.
func TestLimitFlags(t *testing.T) {
	pgAddr, httpAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"raftsqld", "--data-dir", t.TempDir(),
			"--pg-addr", pgAddr, "--raft-addr", freeAddr(t), "--http-addr", httpAddr,
			"--election-timeout", "300ms", "--heartbeat-interval", "50ms", "--log-level", "error",
			"--statement-timeout", "250ms", "--idle-in-transaction-timeout", "1.5s",
			"--max-connections", "2", "--max-message-size", "4096"}, io.Discard, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("raftsqld: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("raftsqld did not stop")
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("raftsqld stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer tcancel()
	conn, err := pgx.Connect(tctx, "postgres://u@"+pgAddr+"/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for name, want := range map[string]string{"statement_timeout": "250ms", "idle_in_transaction_session_timeout": "1500ms", "max_connections": "2"} {
		var got string
		if err := conn.QueryRow(tctx, "SHOW "+name).Scan(&got); err != nil || got != want {
			t.Fatalf("SHOW %s: %q %v, want %q", name, got, err, want)
		}
	}
	// A statement that would run for many seconds is canceled.
	var n int64
	err = conn.QueryRow(tctx, "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r WHERE i < 1000000000) SELECT count(*) FROM r").Scan(&n)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("long statement: %v, want 57014", err)
	}
	// Idle in a transaction: the server ends the session and drops the
	// transaction. pgconn reads what the server sends while waiting for a
	// notification, so the FATAL arrives here without polling.
	if _, err := conn.Exec(tctx, "CREATE TABLE t (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"BEGIN", "INSERT INTO t VALUES (1)"} {
		if _, err := conn.Exec(tctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	err = conn.PgConn().WaitForNotification(tctx)
	if !errors.As(err, &pgErr) || pgErr.Code != "25P03" || pgErr.Severity != "FATAL" {
		t.Fatalf("idle in transaction: %v, want FATAL 25P03", err)
	}
	conn2, err := pgx.Connect(tctx, "postgres://u@"+pgAddr+"/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(context.Background())
	if err := conn2.QueryRow(tctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after the ended transaction: %d %v, want 0", n, err)
	}

	// --max-connections 2: a third session is refused with 53300 while two
	// are open. (The server may not have unregistered the session it
	// closed above yet: retry while it still counts.)
	conn3, err := pgx.Connect(tctx, "postgres://u@"+pgAddr+"/db?sslmode=disable")
	for deadline := time.Now().Add(10 * time.Second); err != nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		conn3, err = pgx.Connect(tctx, "postgres://u@"+pgAddr+"/db?sslmode=disable")
	}
	if err != nil {
		t.Fatalf("second session: %v", err)
	}
	defer conn3.Close(context.Background())
	_, err = pgx.Connect(tctx, "postgres://u@"+pgAddr+"/db?sslmode=disable")
	if !errors.As(err, &pgErr) || pgErr.Code != "53300" {
		t.Fatalf("third session: %v, want 53300", err)
	}

	// --max-message-size 4096: a bigger message ends its connection with
	// 08P01; the other session goes on.
	_, err = conn3.Exec(tctx, "SELECT '"+strings.Repeat("x", 8192)+"'")
	if !errors.As(err, &pgErr) || pgErr.Code != "08P01" {
		t.Fatalf("oversized message: %v, want 08P01", err)
	}
	if err := conn2.QueryRow(tctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatalf("the other session after the oversized message: %v", err)
	}
}
