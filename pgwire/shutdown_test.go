package pgwire_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/pgwire"
	"github.com/raftsql/raftsql/pgwire/pgwiretest"
)

// serveUntil runs a server whose Serve context the caller ends with stop
// (at the latest when the test ends); done has Serve's result.
func serveUntil(t testing.TB, mod func(*pgwire.Config)) (addr string, eng *pgwiretest.Engine, stop context.CancelFunc, done <-chan error) {
	t.Helper()
	eng, err := pgwiretest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	cfg := pgwire.Config{Engine: eng}
	if os.Getenv("PGWIRE_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := pgwire.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch := make(chan error, 1)
	go func() { ch <- srv.Serve(ctx, ln) }()
	return ln.Addr().String(), eng, cancel, ch
}

// blockOn makes statements containing marker wait for release (or their
// context) and reports on started when one has begun.
func blockOn(eng *pgwiretest.Engine, marker string) (started <-chan struct{}, release chan<- struct{}) {
	st, rel := make(chan struct{}, 8), make(chan struct{})
	eng.Hook = func(ctx context.Context, _ bool, stmts []fsm.Statement) error {
		if !strings.Contains(stmts[0].SQL, marker) {
			return nil
		}
		st <- struct{}{}
		select {
		case <-rel:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return st, rel
}

// untilError reads until an ErrorResponse and returns it and the
// messages that came before it.
func (r *rawConn) untilError() (*pgproto3.ErrorResponse, []pgproto3.BackendMessage) {
	r.t.Helper()
	var before []pgproto3.BackendMessage
	for {
		msg, err := r.fe.Receive()
		if err != nil {
			r.t.Fatalf("receive: %v (after %d messages)", err, len(before))
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			cp := *e
			return &cp, before
		}
		before = append(before, msg)
	}
}

func waitServe(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, pgwire.ErrServerClosed) {
			t.Fatalf("Serve: %v, want ErrServerClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestShutdownDrains: when Serve's context ends, an idle session and one
// inside a transaction get FATAL 57P01 at once; a running statement
// finishes and its client gets the answer (CommandComplete and
// ReadyForQuery) before 57P01; new connections are refused; Serve
// returns ErrServerClosed once all are gone.
func TestShutdownDrains(t *testing.T) {
	addr, eng, stop, done := serveUntil(t, func(c *pgwire.Config) { c.ShutdownGrace = time.Minute })
	s := &testServer{addr: addr, eng: eng}
	idle := dialRaw(t, s, nil)
	inTx := dialRaw(t, s, nil)
	if st := inTx.query("BEGIN"); st != 'T' {
		t.Fatalf("BEGIN: status %q", st)
	}
	busy := dialRaw(t, s, nil)
	started, release := blockOn(eng, "'slow'")
	busy.fe.Send(&pgproto3.Query{String: "select 'slow'"})
	if err := busy.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	<-started

	stop()
	for name, r := range map[string]*rawConn{"idle": idle, "in a transaction": inTx} {
		e, before := r.untilError()
		if e.Code != "57P01" || e.Severity != "FATAL" || len(before) != 0 {
			t.Errorf("%s session: %s %s %q after %d messages, want FATAL 57P01 at once", name, e.Severity, e.Code, e.Message, len(before))
		}
	}
	// The listener is closed: nobody new gets in while draining.
	if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		nc.Close()
		t.Error("a new connection was accepted while draining")
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned (%v) while a statement was still running", err)
	default:
	}

	close(release)
	e, before := busy.untilError()
	var complete, ready bool
	for _, m := range before {
		switch m.(type) {
		case *pgproto3.CommandComplete:
			complete = true
		case *pgproto3.ReadyForQuery:
			ready = complete
		}
	}
	if !complete || !ready {
		t.Errorf("busy session: its statement's answer did not come before the end (%d messages)", len(before))
	}
	if e.Code != "57P01" {
		t.Errorf("busy session ended with %s %q, want 57P01", e.Code, e.Message)
	}
	waitServe(t, done)
}

// TestShutdownGraceCutsOff: a statement still running when the grace is
// over is cancelled and its connection closed; Serve returns.
func TestShutdownGraceCutsOff(t *testing.T) {
	addr, eng, stop, done := serveUntil(t, func(c *pgwire.Config) { c.ShutdownGrace = 200 * time.Millisecond })
	s := &testServer{addr: addr, eng: eng}
	busy := dialRaw(t, s, nil)
	started, _ := blockOn(eng, "'stuck'")
	busy.fe.Send(&pgproto3.Query{String: "select 'stuck'"})
	if err := busy.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	<-started
	stop()
	waitServe(t, done)
	// Whatever the session got, it ends: the socket is closed.
	for {
		if _, err := busy.fe.Receive(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the cut-off session's connection stayed open")
			}
			break
		}
	}
}
