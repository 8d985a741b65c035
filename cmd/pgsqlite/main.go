// Command pgsqlite is a development tool: one SQLite database served over
// raftsql's own PostgreSQL front end (pgwire) with no Raft at all. It is
// the baseline that BENCHMARKS.md compares raftsqld against, so that the
// cost of consensus can be told apart from the cost of pgwire and SQLite.
//
//	go build -o /tmp/b/pgsqlite ./cmd/pgsqlite
//	/tmp/b/pgsqlite -addr 127.0.0.1:35439
//	raftsql bench --hosts 127.0.0.1:35439 --workload write
//
// The engine is pgwire/pgwiretest's: a fresh SQLite file (WAL,
// synchronous=OFF) in a new directory under $TMPDIR, removed at exit. It is
// not durable and not for data anyone wants to keep. Reads ignore the
// requested consistency (there is one copy). SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/raftsql/raftsql/pgwire"
	"github.com/raftsql/raftsql/pgwire/pgwiretest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5439", "PostgreSQL protocol listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, *addr, log, nil); err != nil {
		fmt.Fprintln(os.Stderr, "pgsqlite:", err)
		os.Exit(1)
	}
}

// run serves addr until ctx ends; ready, when set, gets the bound address.
func run(ctx context.Context, addr string, log *slog.Logger, ready func(net.Addr)) error {
	eng, err := pgwiretest.New()
	if err != nil {
		return err
	}
	defer eng.Close()
	// No record of calls: a long benchmark would grow it without bound.
	eng.NoRecord = true
	srv, err := pgwire.NewServer(pgwire.Config{Engine: eng, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("serving", "addr", ln.Addr().String())
	if ready != nil {
		ready(ln.Addr())
	}
	if err := srv.Serve(ctx, ln); err != nil && !errors.Is(err, pgwire.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
