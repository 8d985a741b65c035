package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestInteractiveTransactions(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.waitLeader()
	follower := (lead + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a := c.connect(follower, "")
	b := c.connect(lead, "")
	if _, err := a.Exec(ctx, "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "INSERT INTO acct VALUES (1, 100), (2, 100)"); err != nil {
		t.Fatal(err)
	}

	// Reads see the transaction's own writes; RETURNING and row counts are
	// exact; nothing is visible to others before COMMIT.
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := tx.Exec(ctx, "UPDATE acct SET bal = bal - 30 WHERE id = 1")
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("update in tx: %v %v", tag, err)
	}
	var bal int64
	if err := tx.QueryRow(ctx, "SELECT bal FROM acct WHERE id = 1").Scan(&bal); err != nil || bal != 70 {
		t.Fatalf("read own write: %d %v", bal, err)
	}
	if err := tx.QueryRow(ctx, "UPDATE acct SET bal = bal + 30 WHERE id = 2 RETURNING bal").Scan(&bal); err != nil || bal != 130 {
		t.Fatalf("returning in tx: %d %v", bal, err)
	}
	if err := b.QueryRow(ctx, "SELECT bal FROM acct WHERE id = 1").Scan(&bal); err != nil || bal != 100 {
		t.Fatalf("other session saw an uncommitted write: %d %v", bal, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var total int64
		if err := c.connect(i, "").QueryRow(ctx, "SELECT sum(bal) FROM acct").Scan(&total); err != nil || total != 200 {
			t.Fatalf("node %d total %d %v", i+1, total, err)
		}
	}

	// A lost update is refused: the transaction read before another
	// session wrote, so its commit fails with 40001 and changes nothing.
	tx, err = a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SELECT bal FROM acct WHERE id = 1").Scan(&bal); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, "UPDATE acct SET bal = bal + 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE acct SET bal = $1 WHERE id = 1", bal+10); err != nil {
		t.Fatal(err)
	}
	err = tx.Commit(ctx)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "40001" {
		t.Fatalf("commit after a concurrent update: %v, want SQLSTATE 40001", err)
	}
	if err := b.QueryRow(ctx, "SELECT bal FROM acct WHERE id = 1").Scan(&bal); err != nil || bal != 71 {
		t.Fatalf("balance after the refused commit = %d %v, want 71", bal, err)
	}

	// ROLLBACK leaves nothing; the session stays usable.
	tx, err = a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM acct"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := a.QueryRow(ctx, "SELECT count(*) FROM acct").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows after rollback = %d %v", n, err)
	}
	// A constraint error inside a transaction fails it at the statement,
	// as in PostgreSQL; COMMIT then rolls back.
	tx, err = a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO acct VALUES (3, 5)"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO acct VALUES (1, 5)"); !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("duplicate in tx: %v, want 23505", err)
	}
	if err := tx.Commit(ctx); err == nil || !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Logf("commit of failed tx: %v", err)
	}
	if err := a.QueryRow(ctx, "SELECT count(*) FROM acct").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows after failed tx = %d %v", n, err)
	}
}
