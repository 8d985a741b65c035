package main

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestServesQueries starts pgsqlite on a free port and runs a write and a
// read through pgx, then stops it with the context.
func TestServesQueries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srvCtx, stop := context.WithCancel(ctx)
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(srvCtx, "127.0.0.1:0", slog.New(slog.DiscardHandler), func(a net.Addr) { addrc <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run ended early: %v", err)
	}
	conn, err := pgx.Connect(ctx, "postgres://u@"+addr.String()+"/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO kv (k, v) VALUES ($1, $2)", 7, "seven"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kv WHERE k = $1", 7).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "seven" {
		t.Fatalf("got %q, want %q", v, "seven")
	}
	conn.Close(ctx)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
