package pgwire_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
)

func TestPgxSimpleProtocol(t *testing.T) {
	s := startServer(t, nil)
	c := connect(t, s, "default_query_exec_mode=simple_protocol")
	ctx := ctxT(t)
	if _, err := c.Exec(ctx, schema); err != nil {
		t.Fatal(err)
	}
	var str string
	if err := c.QueryRow(ctx, `select  'it''s' ::text || 'z'`).Scan(&str); err != nil || str != "it'sz" {
		t.Fatalf("got %q, %v", str, err)
	}
	if _, err := c.Exec(ctx, "insert into t(name, v, b, data) values($1, $2, $3, $4)", "a", 1.25, true, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	var (
		id   int
		v    float64
		b    bool
		data []byte
	)
	if err := c.QueryRow(ctx, "select id, v, b, data from t where name = $1", "a").Scan(&id, &v, &b, &data); err != nil {
		t.Fatal(err)
	}
	if id != 1 || v != 1.25 || !b || string(data) != "hi" {
		t.Fatalf("got %d %v %v %q", id, v, b, data)
	}
	var cnt int64
	if err := c.QueryRow(ctx, "select count(*) from t").Scan(&cnt); err != nil || cnt != 1 {
		t.Fatalf("count %d %v", cnt, err)
	}
}

// TestSimpleMultiStatement: several statements in one Query are one
// implicit transaction: one Write for the group, all or nothing.
func TestSimpleMultiStatement(t *testing.T) {
	s := startServer(t, nil)
	c := connect(t, s, "")
	ctx := ctxT(t)
	if _, err := c.Exec(ctx, schema); err != nil {
		t.Fatal(err)
	}
	s.eng.Calls()
	res := c.PgConn().Exec(ctx, "insert into t(name) values('a'); insert into t(name) values('b'); select count(*) from t")
	rs, err := res.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].CommandTag.String() != "INSERT 0 1" || rs[2].CommandTag.String() != "SELECT 1" || string(rs[2].Rows[0][0]) != "2" {
		t.Fatalf("results: %+v", rs)
	}
	calls := s.eng.Calls()
	if len(calls) != 1 || !calls[0].Write || len(calls[0].Stmts) != 3 {
		t.Fatalf("calls: %+v", calls)
	}
	// A failure rolls back the whole group.
	_, err = c.PgConn().Exec(ctx, "insert into t(name) values('c'); insert into t(name) values('a')").ReadAll()
	if pgCode(err) != "23505" {
		t.Fatalf("err = %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("count = %d, %v (group not atomic)", n, err)
	}
	// Empty and comment-only queries.
	rs, err = c.PgConn().Exec(ctx, "-- ping").ReadAll()
	if err != nil || len(rs) != 1 {
		t.Fatalf("ping: %+v %v", rs, err)
	}
}

func TestTransactions(t *testing.T) {
	s := startServer(t, nil)
	c := connect(t, s, "")
	ctx := ctxT(t)
	if _, err := c.Exec(ctx, schema); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		var n int
		if err := c.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Commit: one Write with all the writes.
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tx.Conn().PgConn().TxStatus() != 'T' {
		t.Fatalf("status %c", tx.Conn().PgConn().TxStatus())
	}
	var n int
	if err := tx.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 0 {
		t.Fatalf("read before writes: %d %v", n, err)
	}
	s.eng.Calls()
	for _, name := range []string{"a", "b", "c"} {
		if _, err := tx.Exec(ctx, "insert into t(name) values($1)", name); err != nil {
			t.Fatal(err)
		}
	}
	// A read after buffered writes is refused, and fails the transaction.
	err = tx.QueryRow(ctx, "select count(*) from t").Scan(&n)
	if pgCode(err) != "0A000" || !strings.Contains(err.Error(), "reads after writes") {
		t.Fatalf("read after write: %v", err)
	}
	if tx.Conn().PgConn().TxStatus() != 'E' {
		t.Fatalf("status %c, want E", tx.Conn().PgConn().TxStatus())
	}
	_, err = tx.Exec(ctx, "insert into t(name) values('d')")
	if pgCode(err) != "25P02" {
		t.Fatalf("in failed txn: %v", err)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatalf("commit of failed txn succeeded")
	}
	if count() != 0 {
		t.Fatalf("failed transaction left rows")
	}
	// Commit applies atomically in one Write.
	tx, _ = c.Begin(ctx)
	for _, name := range []string{"a", "b", "c"} {
		if _, err := tx.Exec(ctx, "insert into t(name) values($1)", name); err != nil {
			t.Fatal(err)
		}
	}
	s.eng.Calls()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	calls := s.eng.Calls()
	if len(calls) != 1 || !calls[0].Write || len(calls[0].Stmts) != 3 {
		t.Fatalf("commit calls: %+v", calls)
	}
	if count() != 3 {
		t.Fatalf("count after commit")
	}
	// Rollback discards.
	tx, _ = c.Begin(ctx)
	tx.Exec(ctx, "insert into t(name) values('z')")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if count() != 3 {
		t.Fatalf("rollback kept rows")
	}
	// A failure at COMMIT reports the error and rolls back everything.
	tx, _ = c.Begin(ctx)
	tx.Exec(ctx, "insert into t(name) values('y')")
	tx.Exec(ctx, "insert into t(name) values('a')") // duplicate
	err = tx.Commit(ctx)
	if pgCode(err) != "23505" {
		t.Fatalf("commit: %v", err)
	}
	if c.PgConn().TxStatus() != 'I' || count() != 3 {
		t.Fatalf("after failed commit: status %c count %d", c.PgConn().TxStatus(), count())
	}
	// Simple-protocol BEGIN; ...; COMMIT in one string.
	if _, err := c.Exec(ctx, "BEGIN; insert into t(name) values('m1'); insert into t(name) values('m2'); COMMIT"); err != nil {
		t.Fatal(err)
	}
	if count() != 5 {
		t.Fatalf("count = %d", count())
	}
	// COMMIT of a failed transaction answers ROLLBACK.
	rs, err := c.PgConn().Exec(ctx, "BEGIN; select * from nosuch").ReadAll()
	if pgCode(err) != "42P01" {
		t.Fatalf("%v %v", rs, err)
	}
	rs, err = c.PgConn().Exec(ctx, "COMMIT").ReadAll()
	if err != nil || rs[0].CommandTag.String() != "ROLLBACK" {
		t.Fatalf("commit of failed: %v %v", rs, err)
	}
	// RETURNING inside a transaction is refused clearly.
	tx, _ = c.Begin(ctx)
	_, err = tx.Exec(ctx, "insert into t(name) values($1) returning id", "r")
	if pgCode(err) != "0A000" {
		t.Fatalf("returning in txn: %v", err)
	}
	tx.Rollback(ctx)
	// READ ONLY transactions refuse writes.
	if _, err := c.Exec(ctx, "BEGIN READ ONLY"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, "insert into t(name) values('ro')")
	if pgCode(err) != "25006" {
		t.Fatalf("write in read only: %v", err)
	}
	c.Exec(ctx, "ROLLBACK")
}

// TestBatch: a pipelined batch under one Sync is one Write, atomic; an
// error fails the whole batch as PostgreSQL does.
func TestBatch(t *testing.T) {
	s := startServer(t, nil)
	c := connect(t, s, "")
	ctx := ctxT(t)
	if _, err := c.Exec(ctx, schema); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue("insert into t(name) values($1)", "b1")
	b.Queue("insert into t(name) values($1)", "b2")
	b.Queue("select count(*) from t where name like $1", "b%")
	b.Queue("select 2")
	s.eng.Calls()
	br := c.SendBatch(ctx, b)
	for i := 0; i < 2; i++ {
		tag, err := br.Exec()
		if err != nil || tag.String() != "INSERT 0 1" {
			t.Fatalf("batch insert %d: %v %v", i, tag, err)
		}
	}
	var n, two int
	if err := br.QueryRow().Scan(&n); err != nil || n != 2 {
		t.Fatalf("batch count = %d, %v", n, err)
	}
	if err := br.QueryRow().Scan(&two); err != nil || two != 2 {
		t.Fatalf("select 2 = %d, %v", two, err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	writes := 0
	for _, call := range s.eng.Calls() {
		if call.Write {
			writes++
			if len(call.Stmts) != 4 {
				t.Fatalf("batch write has %d statements", len(call.Stmts))
			}
		}
	}
	if writes != 1 {
		t.Fatalf("%d writes for one batch", writes)
	}
	// A failing statement fails the batch: nothing is applied.
	b = &pgx.Batch{}
	b.Queue("insert into t(name) values($1)", "b3")
	b.Queue("insert into t(name) values($1)", "b1") // duplicate
	b.Queue("select 2")
	br = c.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		t.Fatalf("first: %v", err)
	}
	if _, err := br.Exec(); pgCode(err) != "23505" {
		t.Fatalf("second: %v", err)
	}
	if _, err := br.Exec(); err == nil {
		t.Fatalf("third ran after the error")
	}
	br.Close()
	if err := c.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("count after failed batch = %d, %v", n, err)
	}
}

func TestStdlib(t *testing.T) {
	s := startServer(t, nil)
	db, err := sql.Open("pgx", s.url(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := ctxT(t)
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		t.Fatal(err)
	}
	res, err := db.ExecContext(ctx, "insert into t(name, v) values($1, $2)", "x", 1.5)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("rows affected %d", n)
	}
	var name string
	if err := db.QueryRowContext(ctx, "select name from t where id = $1", 1).Scan(&name); err != nil || name != "x" {
		t.Fatalf("%q %v", name, err)
	}
	var cnt int
	if err := db.QueryRowContext(ctx, "select count(*) from t").Scan(&cnt); err != nil || cnt != 1 {
		t.Fatalf("%d %v", cnt, err)
	}
	// Expression columns of unknown type (OID 0 before execution).
	var mx string
	var next int64
	if err := db.QueryRowContext(ctx, "select coalesce(max(name), ''), max(id) + 1 from t where id > $1", 0).Scan(&mx, &next); err != nil || mx != "x" || next != 2 {
		t.Fatalf("expressions: %q %d %v", mx, next, err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "delete from t where name = $1", "x"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "select count(*) from t").Scan(&cnt); err != nil || cnt != 0 {
		t.Fatalf("%d %v", cnt, err)
	}
}

func TestSetShowBuiltins(t *testing.T) {
	s := startServer(t, nil)
	c := connect(t, s, "options=-c%20raftsql.read_consistency%3Dstale")
	ctx := ctxT(t)
	show := shower(t, c)
	if v := show("raftsql.read_consistency"); v != "stale" {
		t.Fatalf("startup option: %q", v)
	}
	if _, err := c.Exec(ctx, "SET raftsql.read_consistency = lease"); err != nil {
		t.Fatal(err)
	}
	if v := show("raftsql.read_consistency"); v != "lease" {
		t.Fatalf("after SET: %q", v)
	}
	_, err := c.Exec(ctx, "SET raftsql.read_consistency = 'bogus'")
	if pgCode(err) != "22023" {
		t.Fatalf("bad value: %v", err)
	}
	if _, err := c.Exec(ctx, "SET application_name = 'myapp'"); err != nil {
		t.Fatal(err)
	}
	if c.PgConn().ParameterStatus("application_name") != "myapp" {
		t.Fatalf("no ParameterStatus for application_name")
	}
	if v := show("server_version"); !strings.HasPrefix(v, "15.") {
		t.Fatalf("server_version %q", v)
	}
	if v := show("transaction_read_only"); v != "off" {
		t.Fatalf("transaction_read_only on leader: %q", v)
	}
	var rec bool
	if err := c.QueryRow(ctx, "select pg_is_in_recovery()").Scan(&rec); err != nil || rec {
		t.Fatalf("pg_is_in_recovery on leader: %v %v", rec, err)
	}
	s.eng.Leader.Store(false)
	if v := show("transaction_read_only"); v != "on" {
		t.Fatalf("transaction_read_only on follower: %q", v)
	}
	if err := c.QueryRow(ctx, "select pg_is_in_recovery()").Scan(&rec); err != nil || !rec {
		t.Fatalf("pg_is_in_recovery on follower: %v %v", rec, err)
	}
	s.eng.Leader.Store(true)
	var ver, schemaName, db, user string
	if err := c.QueryRow(ctx, "select version(), current_schema(), current_database(), current_user").Scan(&ver, &schemaName, &db, &user); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ver, "PostgreSQL 15") || schemaName != "public" || db != "testdb" || user != "tester" {
		t.Fatalf("builtins: %q %q %q %q", ver, schemaName, db, user)
	}
	_, err = c.Exec(ctx, "SHOW nosuchsetting")
	if pgCode(err) != "42704" {
		t.Fatalf("unknown SHOW: %v", err)
	}
	for _, q := range []string{"DISCARD ALL", "DEALLOCATE ALL", "RESET ALL", "SET search_path TO public", "SET TIME ZONE 'UTC'", "SET extra_float_digits = 3", "UNLISTEN *"} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, q := range []string{"LISTEN ch", "COPY t FROM STDIN"} {
		if _, err := c.Exec(ctx, q); pgCode(err) != "0A000" {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Savepoints: trivial ones are accepted, ROLLBACK TO is refused and
	// aborts the transaction.
	if _, err := c.Exec(ctx, "SAVEPOINT a"); pgCode(err) != "25P01" {
		t.Fatalf("savepoint outside a transaction: %v", err)
	}
	rs, err := c.PgConn().Exec(ctx, "BEGIN; SAVEPOINT a; RELEASE SAVEPOINT a; SAVEPOINT b").ReadAll()
	if err != nil || rs[1].CommandTag.String() != "SAVEPOINT" || rs[2].CommandTag.String() != "RELEASE" {
		t.Fatalf("savepoints: %v %v", rs, err)
	}
	if _, err := c.Exec(ctx, "ROLLBACK TO SAVEPOINT b"); pgCode(err) != "0A000" || c.PgConn().TxStatus() != 'E' {
		t.Fatalf("rollback to: %v %c", err, c.PgConn().TxStatus())
	}
	c.Exec(ctx, "ROLLBACK")
	// The session is still usable.
	var one int
	if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatal(err)
	}
	// Bad startup option value refuses the connection with 22023.
	_, err = pgx.Connect(ctx, s.url("options=-c%20raftsql.read_consistency%3Dnope"))
	if pgCode(err) != "22023" {
		t.Fatalf("bad startup option: %v", err)
	}
	_ = context.Background
}

// TestInteractiveTransactions: with an Engine session that implements
// InteractiveSession, reads after writes and RETURNING work inside
// BEGIN … COMMIT, row counts are exact, and ROLLBACK discards.
func TestInteractiveTransactions(t *testing.T) {
	s := startServer(t, nil)
	s.eng.Interactive = true
	c := connect(t, s, "")
	ctx := ctxT(t)
	if _, err := c.Exec(ctx, schema); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "insert into t(name) values ('a'), ('b')"); err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var id int
	if err := tx.QueryRow(ctx, "insert into t(name) values($1) returning id", "c").Scan(&id); err != nil || id != 3 {
		t.Fatalf("returning: %d %v", id, err)
	}
	tag, err := tx.Exec(ctx, "update t set v = $1 where id < $2", 1.5, 3)
	if err != nil || tag.String() != "UPDATE 2" {
		t.Fatalf("update: %v %v", tag, err)
	}
	var n int
	if err := tx.QueryRow(ctx, "select count(*) from t where v = 1.5").Scan(&n); err != nil || n != 2 {
		t.Fatalf("read own writes: %d %v", n, err)
	}
	// Another session does not see uncommitted writes.
	other := connect(t, s, "")
	if err := other.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("other session: %d %v", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 3 {
		t.Fatalf("after commit: %d %v", n, err)
	}
	// Rollback discards; an error fails the transaction and releases it.
	tx, _ = c.Begin(ctx)
	tx.Exec(ctx, "insert into t(name) values ('d')")
	tx.Rollback(ctx)
	tx, _ = c.Begin(ctx)
	tx.Exec(ctx, "insert into t(name) values ('e')")
	if _, err := tx.Exec(ctx, "insert into t(name) values ('a')"); pgCode(err) != "23505" {
		t.Fatalf("dup: %v", err)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatalf("commit of a failed transaction succeeded")
	}
	if err := other.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 3 {
		t.Fatalf("after rollbacks: %d %v", n, err)
	}
	// Other writers were not blocked forever by the released transaction.
	if _, err := other.Exec(ctx, "insert into t(name) values ('f')"); err != nil {
		t.Fatal(err)
	}
	// psycopg's shape: BEGIN, a read, then INSERT … RETURNING, COMMIT.
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 4 {
		t.Fatalf("read before write: %d %v", n, err)
	}
	if err := c.QueryRow(ctx, "insert into t(name) values ($1) returning id", "g").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := other.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 5 {
		t.Fatalf("end: %d %v", n, err)
	}
}
