package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

// t0 is the commands' clock in tests.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMicro()

func openT(t testing.TB, dir string) *FSM {
	t.Helper()
	f, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func st(sql string, args ...any) Statement { return Statement{SQL: sql, Args: args} }

func ent(index uint64, c Command) consensus.Entry {
	return consensus.Entry{Term: 1, Index: index, Type: consensus.EntryNormal, Data: EncodeCommand(c)}
}

func cmd(session, seq uint64, stmts ...Statement) Command {
	return Command{SessionID: session, Seq: seq, UnixMicro: t0 + int64(seq), Stmts: stmts}
}

func mustApply(t testing.TB, f *FSM, entries ...consensus.Entry) {
	t.Helper()
	if err := f.Apply(context.Background(), entries); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// applyOne applies c as entry index and returns its results (through a
// waiter, the way the server glue gets them).
func applyOne(t testing.TB, f *FSM, index uint64, c Command) []Result {
	t.Helper()
	w := f.Expect(c.SessionID, c.Seq)
	mustApply(t, f, ent(index, c))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := w.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return rs
}

func query(t testing.TB, f *FSM, sql string, args ...any) Result {
	t.Helper()
	rs, err := f.Query(context.Background(), []Statement{st(sql, args...)})
	if err != nil {
		t.Fatalf("Query(%q): %v", sql, err)
	}
	if len(rs) != 1 {
		t.Fatalf("Query(%q): %d results", sql, len(rs))
	}
	if rs[0].Err != nil {
		t.Fatalf("Query(%q): %v", sql, rs[0].Err)
	}
	return rs[0]
}

func count(t testing.TB, f *FSM, table string) int64 {
	t.Helper()
	return query(t, f, "SELECT count(*) FROM "+table).Rows[0][0].(int64)
}

func TestApplyResults(t *testing.T) {
	f := openT(t, t.TempDir())
	rs := applyOne(t, f, 1, cmd(1, 1,
		st("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, score float8, at timestamptz, data BLOB)"),
		st("INSERT INTO t(name, score, at, data) VALUES ($1, $2, $3, $4), ('b', NULL, '2024-01-01 00:00:00', x'') RETURNING id, name, score, at, data, 1+1 AS two",
			"a", 1.5, "2025-02-03 04:05:06+00", []byte{0, 1, 2}),
		st("UPDATE t SET score = score + 1 WHERE name = $1", "a"),
		st("SELECT name FROM t ORDER BY id"),
		st("DELETE FROM t WHERE score IS NULL"),
	))
	if len(rs) != 5 {
		t.Fatalf("got %d results, want 5", len(rs))
	}
	for i, r := range rs {
		if r.Err != nil {
			t.Fatalf("result %d: %v", i, r.Err)
		}
	}
	wantCols := []Column{{"id", "INTEGER"}, {"name", "TEXT"}, {"score", "float8"}, {"at", "timestamptz"}, {"data", "BLOB"}, {"two", ""}}
	if !reflect.DeepEqual(rs[1].Columns, wantCols) {
		t.Errorf("RETURNING columns = %v, want %v", rs[1].Columns, wantCols)
	}
	wantRows := [][]any{
		{int64(1), "a", 1.5, "2025-02-03 04:05:06+00", []byte{0, 1, 2}, int64(2)},
		{int64(2), "b", nil, "2024-01-01 00:00:00", []byte{}, int64(2)},
	}
	if !reflect.DeepEqual(rs[1].Rows, wantRows) {
		t.Errorf("RETURNING rows = %#v, want %#v", rs[1].Rows, wantRows)
	}
	if rs[1].RowsAffected != 2 || rs[1].LastInsertID != 2 {
		t.Errorf("insert: RowsAffected=%d LastInsertID=%d, want 2, 2", rs[1].RowsAffected, rs[1].LastInsertID)
	}
	if rs[2].RowsAffected != 1 || rs[2].LastInsertID != 0 {
		t.Errorf("update: RowsAffected=%d LastInsertID=%d, want 1, 0", rs[2].RowsAffected, rs[2].LastInsertID)
	}
	if !reflect.DeepEqual(rs[3].Rows, [][]any{{"a"}, {"b"}}) || rs[3].RowsAffected != 0 {
		t.Errorf("select: rows %v affected %d", rs[3].Rows, rs[3].RowsAffected)
	}
	if rs[4].RowsAffected != 1 {
		t.Errorf("delete: RowsAffected=%d, want 1", rs[4].RowsAffected)
	}
	if got := f.AppliedIndex(); got != 1 {
		t.Errorf("AppliedIndex = %d, want 1", got)
	}
	r := query(t, f, "SELECT id, name, score FROM t")
	if !reflect.DeepEqual(r.Rows, [][]any{{int64(1), "a", 2.5}}) {
		t.Errorf("read back %v", r.Rows)
	}
}

// TestApplyErrors: a failing statement rolls back its whole entry (the
// statements before it too) and nothing else of the batch.
func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name     string
		stmts    []Statement
		wantCode int
		nResults int
	}{
		{"unique", []Statement{st("INSERT INTO t VALUES (10, 'x')"), st("INSERT INTO t VALUES (1, 'dup')")}, 1555, 2},
		{"not null", []Statement{st("INSERT INTO t VALUES (11, NULL)")}, 1299, 1},
		{"check", []Statement{st("INSERT INTO t VALUES (12, 'x'), (-1, 'neg')")}, 275, 1},
		{"foreign key", []Statement{st("INSERT INTO t VALUES (13, 'x')"), st("INSERT INTO child VALUES (1, 999)")}, 787, 2},
		{"syntax", []Statement{st("INSERT INTO t VALUES (14, 'x')"), st("INSRT INTO t VALUES (1)")}, 1, 2},
		{"no such table", []Statement{st("SELECT * FROM nope")}, 1, 1},
		{"too few params", []Statement{st("INSERT INTO t VALUES ($1, $2)", int64(15))}, CodeBadParameter, 1},
		{"too many params", []Statement{st("INSERT INTO t VALUES ($1, 'x')", int64(16), int64(2))}, CodeBadParameter, 1},
		{"two statements", []Statement{st("INSERT INTO t VALUES (17, 'x'); INSERT INTO t VALUES (18, 'y')")}, CodeMultipleStatements, 1},
		{"named param", []Statement{st("INSERT INTO t VALUES (:a, 'x')", int64(19))}, CodeBadParameter, 1},
		{"deferred fk", []Statement{st("INSERT INTO t VALUES (20, 'x')"), st("INSERT INTO dchild VALUES (1, 999)")}, 787, 2},
	}
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1,
		st("CREATE TABLE t(id INTEGER PRIMARY KEY CHECK (id >= 0), v TEXT NOT NULL)"),
		st("CREATE TABLE child(id INTEGER PRIMARY KEY, tid INTEGER REFERENCES t(id))"),
		st("CREATE TABLE dchild(id INTEGER PRIMARY KEY, tid INTEGER REFERENCES t(id) DEFERRABLE INITIALLY DEFERRED)"),
		st("INSERT INTO t VALUES (1, 'one')")))
	idx := uint64(1)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idx++
			session := uint64(100 + i)
			good := cmd(session+1000, 1, st("INSERT INTO t VALUES ($1, 'ok')", int64(1000+i)))
			bad := cmd(session, 1, tc.stmts...)
			wg, wb := f.Expect(good.SessionID, good.Seq), f.Expect(bad.SessionID, bad.Seq)
			before := count(t, f, "t")
			// The bad entry sits between two good ones of the same batch.
			mustApply(t, f, ent(idx, bad), ent(idx+1, good))
			idx++
			rs, err := wb.Wait(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != tc.nResults {
				t.Fatalf("got %d results, want %d: %+v", len(rs), tc.nResults, rs)
			}
			last := rs[len(rs)-1]
			if last.Err == nil || last.Err.Code != tc.wantCode {
				t.Fatalf("last result error = %v, want code %d", last.Err, tc.wantCode)
			}
			for _, r := range rs[:len(rs)-1] {
				if r.Err != nil {
					t.Errorf("earlier result has error %v", r.Err)
				}
			}
			if gr, err := wg.Wait(context.Background()); err != nil || gr[0].Err != nil {
				t.Fatalf("good entry: %v %v", err, gr)
			}
			if got := count(t, f, "t"); got != before+1 {
				t.Errorf("rows in t: %d, want %d (only the good entry's)", got, before+1)
			}
			if f.AppliedIndex() != idx {
				t.Errorf("AppliedIndex = %d, want %d", f.AppliedIndex(), idx)
			}
		})
	}
}

func TestNotAllowed(t *testing.T) {
	tests := []struct {
		sql     string
		allowed bool
	}{
		{"BEGIN", false},
		{"  /* c */ commit", false},
		{"END TRANSACTION", false},
		{"ROLLBACK", false},
		{"SAVEPOINT a", false},
		{"RELEASE a", false},
		{"ATTACH DATABASE 'x.db' AS x", false},
		{"DETACH x", false},
		{"VACUUM", false},
		{"PRAGMA foreign_keys = OFF", false},
		{"pragma user_version=3", false},
		{"INSERT OR ROLLBACK INTO t VALUES (5, 'x')", false},
		{"INSERT INTO t VALUES (5, 'x') ON CONFLICT DO NOTHING", true},
		{"CREATE TABLE r(a UNIQUE ON CONFLICT ROLLBACK)", false},
		{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT RAISE(ROLLBACK, 'no'); END", false},
		{"CREATE TEMP TABLE x(a)", false},
		{"CREATE TEMPORARY VIEW v AS SELECT 1", false},
		{"CREATE TABLE temp.x(a)", false},
		{`CREATE TABLE "temp".x(a)`, false},
		{"DELETE FROM _raftsql_sessions", false},
		{`UPDATE "_RAFTSQL_meta" SET value = 0`, false},
		{"SELECT * FROM [_raftsql_meta]", false},
		{"UPDATE sqlite_dbpage SET data = zeroblob(4096) WHERE pgno = 2", false},
		{"INSERT INTO t VALUES (6, 'rollback; BEGIN; _raftsql_meta')", true},
		{"INSERT INTO t VALUES (7, 'x') -- ROLLBACK", true},
		{"CREATE TABLE rollbacks(tempo INTEGER)", true},
	}
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")))
	for i, tc := range tests {
		t.Run(tc.sql, func(t *testing.T) {
			before := query(t, f, "SELECT count(*), (SELECT count(*) FROM sqlite_schema) FROM t").Rows
			rs := applyOne(t, f, uint64(i+2), cmd(1, uint64(i+2), st(tc.sql)))
			if tc.allowed {
				if rs[0].Err != nil {
					t.Fatalf("refused: %v", rs[0].Err)
				}
				return
			}
			if rs[0].Err == nil || rs[0].Err.Code != CodeNotAllowed {
				t.Fatalf("result %+v, want CodeNotAllowed", rs[0])
			}
			after := query(t, f, "SELECT count(*), (SELECT count(*) FROM sqlite_schema) FROM t").Rows
			if !reflect.DeepEqual(before, after) {
				t.Errorf("state changed: %v -> %v", before, after)
			}
		})
	}
}

func TestExactlyOnce(t *testing.T) {
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(0, 0, st("CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)")))
	ins := cmd(7, 1, st("INSERT INTO t(v) VALUES ('a') RETURNING id"))
	first := applyOne(t, f, 2, ins)
	// A retry of the same (session, seq) proposed again: not re-applied,
	// the first result comes back.
	again := applyOne(t, f, 3, ins)
	if !reflect.DeepEqual(first, again) {
		t.Errorf("retry result %+v, want first result %+v", again, first)
	}
	if n := count(t, f, "t"); n != 1 {
		t.Fatalf("rows = %d after a retried insert, want 1", n)
	}
	// The next seq applies; an older seq gets CodeStaleSequence.
	applyOne(t, f, 4, cmd(7, 2, st("INSERT INTO t(v) VALUES ('b')")))
	stale := applyOne(t, f, 5, ins)
	if stale[0].Err == nil || stale[0].Err.Code != CodeStaleSequence {
		t.Errorf("stale retry: %+v", stale)
	}
	// A failed command also consumes its seq: its retry returns the error.
	bad := cmd(7, 3, st("INSERT INTO t(id, v) VALUES (1, 'dup')"))
	r1 := applyOne(t, f, 6, bad)
	r2 := applyOne(t, f, 7, bad)
	if r1[0].Err == nil || !reflect.DeepEqual(r1, r2) {
		t.Errorf("failed command: first %+v, retry %+v", r1, r2)
	}
	// Session 0 has no dedup.
	anon := cmd(0, 9, st("INSERT INTO t(v) VALUES ('anon')"))
	applyOne(t, f, 8, anon)
	applyOne(t, f, 9, anon)
	if n := count(t, f, "t"); n != 4 {
		t.Fatalf("rows = %d, want 4", n)
	}
	// Sessions expire deterministically by the commands' clock.
	later := Command{SessionID: 8, Seq: 1, UnixMicro: t0 + (2 * SessionTTL).Microseconds(), Stmts: []Statement{st("SELECT 1")}}
	applyOne(t, f, 10, later)
	r := query(t, f, "SELECT session_id FROM _raftsql_sessions ORDER BY session_id")
	if !reflect.DeepEqual(r.Rows, [][]any{{int64(8)}}) {
		t.Errorf("sessions after expiry: %v, want only 8", r.Rows)
	}
	// After expiry the old retry is applied again (documented).
	applyOne(t, f, 11, ins)
	if n := count(t, f, "t"); n != 5 {
		t.Fatalf("rows = %d, want 5", n)
	}
}

// TestCrashReplay: the database files as a kill -9 leaves them (WAL not
// checkpointed) reopen at the applied index, and the driver replaying
// entries from an older index repeats nothing.
func TestCrashReplay(t *testing.T) {
	dir := t.TempDir()
	f := openT(t, dir)
	var entries []consensus.Entry
	entries = append(entries, ent(1, cmd(1, 1, st("CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v INTEGER)"))))
	for i := uint64(2); i <= 30; i++ {
		entries = append(entries, ent(i, cmd(0, 0, st("INSERT INTO t(v) VALUES ($1)", int64(i)))))
	}
	entries = append(entries, consensus.Entry{Term: 2, Index: 31, Type: consensus.EntryNormal}) // no-op
	entries = append(entries, consensus.Entry{Term: 2, Index: 32, Type: consensus.EntryConfChange, Data: []byte{1, 2}})
	mustApply(t, f, entries[:10]...)
	mustApply(t, f, entries[10:]...)

	// "Crash": copy the files while the FSM is open, as kill -9 would
	// leave them.
	crashed := t.TempDir()
	for _, s := range []string{"", "-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, DBFile+s))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashed, DBFile+s), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := openT(t, crashed)
	if g.AppliedIndex() != 32 {
		t.Fatalf("AppliedIndex after crash = %d, want 32", g.AppliedIndex())
	}
	// The driver replays from an older index (its own applied index was
	// not yet persisted, say): nothing is repeated.
	mustApply(t, g, entries[5:]...)
	mustApply(t, g, ent(33, cmd(0, 0, st("INSERT INTO t(v) VALUES (33)"))))
	if n := count(t, g, "t"); n != 30 {
		t.Fatalf("rows = %d, want 30", n)
	}
	m := query(t, g, "SELECT value FROM _raftsql_meta WHERE key IN ('applied_index', 'applied_term', 'conf_index') ORDER BY key").Rows
	if !reflect.DeepEqual(m, [][]any{{int64(33)}, {int64(1)}, {int64(32)}}) {
		t.Errorf("meta = %v", m)
	}
	// A clean close and reopen keeps the index too.
	g.Close()
	h := openT(t, crashed)
	if h.AppliedIndex() != 33 {
		t.Fatalf("AppliedIndex after reopen = %d", h.AppliedIndex())
	}
	// A hole is refused and changes nothing.
	if err := h.Apply(context.Background(), []consensus.Entry{ent(35, cmd(0, 0, st("INSERT INTO t(v) VALUES (35)")))}); !errors.Is(err, ErrIndexGap) {
		t.Fatalf("gap: err = %v, want ErrIndexGap", err)
	}
	if h.AppliedIndex() != 33 || count(t, h, "t") != 30 {
		t.Fatalf("gap changed state")
	}
}

func TestCorruptEntries(t *testing.T) {
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE t(v)")))
	good := EncodeCommand(cmd(2, 1, st("INSERT INTO t VALUES (1)")))
	truncated := good[:len(good)-3]
	unsupported := cmd(3, 1, st("INSERT INTO t VALUES ($1)", struct{}{}))
	w := f.Expect(3, 1)
	mustApply(t, f,
		consensus.Entry{Term: 1, Index: 2, Data: []byte{0xff, 0xfe}},
		consensus.Entry{Term: 1, Index: 3, Data: truncated},
		ent(4, unsupported),
		consensus.Entry{Term: 1, Index: 5, Type: consensus.EntryType(99), Data: []byte("?")},
	)
	if f.AppliedIndex() != 5 {
		t.Fatalf("AppliedIndex = %d, want 5", f.AppliedIndex())
	}
	rs, err := w.Wait(context.Background())
	if err != nil || len(rs) != 1 || rs[0].Err == nil || rs[0].Err.Code != CodeCorruptCommand {
		t.Fatalf("unsupported arg: %v %+v", err, rs)
	}
	if n := count(t, f, "t"); n != 0 {
		t.Fatalf("corrupt entries changed the table: %d rows", n)
	}
}

func TestWaiters(t *testing.T) {
	f := openT(t, t.TempDir())
	// Results nobody expects are dropped.
	mustApply(t, f, ent(1, cmd(1, 1, st("CREATE TABLE t(v)"))))
	if n := f.waiters.pending(); n != 0 {
		t.Fatalf("pending = %d", n)
	}
	// Cancel.
	w := f.Expect(1, 2)
	w.Cancel()
	if _, err := w.Wait(context.Background()); !errors.Is(err, ErrCanceled) {
		t.Fatalf("after Cancel: %v", err)
	}
	mustApply(t, f, ent(2, cmd(1, 2, st("INSERT INTO t VALUES (1)"))))
	// Context end.
	w = f.Expect(1, 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled ctx: %v", err)
	}
	// Replaced.
	w1 := f.Expect(1, 4)
	w2 := f.Expect(1, 4)
	if _, err := w1.Wait(context.Background()); !errors.Is(err, ErrWaiterReplaced) {
		t.Fatalf("replaced: %v", err)
	}
	// Delivered from another goroutine while waiting.
	var got []Result
	var werr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, werr = w2.Wait(context.Background())
	}()
	mustApply(t, f, ent(3, cmd(1, 4, st("SELECT count(*) FROM t"))))
	wg.Wait()
	if werr != nil || !reflect.DeepEqual(got[0].Rows, [][]any{{int64(1)}}) {
		t.Fatalf("Wait = %+v, %v", got, werr)
	}
	if n := f.waiters.pending(); n != 0 {
		t.Fatalf("pending = %d", n)
	}
	// Close fails pending waiters.
	w = f.Expect(9, 9)
	f.Close()
	if _, err := w.Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestWaitApplied(t *testing.T) {
	f := openT(t, t.TempDir())
	ctx := context.Background()
	if err := f.WaitApplied(ctx, 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.WaitApplied(ctx, 3) }()
	mustApply(t, f, ent(1, cmd(0, 0, st("SELECT 1"))), ent(2, cmd(0, 0, st("SELECT 1"))))
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(3) returned at applied 2: %v", err)
	default:
	}
	mustApply(t, f, ent(3, cmd(0, 0, st("SELECT 1"))))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := f.WaitApplied(tctx, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied past applied: %v", err)
	}
}

func TestQuery(t *testing.T) {
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"), st("INSERT INTO t VALUES (1, 'a'), (2, 'b')")))
	tests := []struct {
		sql      string
		args     []any
		wantCode int // 0: success
		rows     [][]any
	}{
		{"SELECT v FROM t WHERE id = $1", []any{int64(2)}, 0, [][]any{{"b"}}},
		{"SELECT $2 || $1", []any{"x", "y"}, 0, [][]any{{"yx"}}},
		{"SELECT ?, ?", []any{int64(1), int64(2)}, 0, [][]any{{int64(1), int64(2)}}},
		{"PRAGMA table_info(t)", nil, 0, nil},
		{"SELECT name FROM pragma_table_info('t') ORDER BY cid", nil, 0, [][]any{{"id"}, {"v"}}},
		{"INSERT INTO t VALUES (3, 'c')", nil, CodeReadOnly, nil},
		{"DELETE FROM t", nil, CodeReadOnly, nil},
		{"PRAGMA query_only = 0", nil, CodeNotAllowed, nil},
		{"PRAGMA user_version(7)", nil, CodeNotAllowed, nil},
		{"PRAGMA journal_mode", nil, CodeNotAllowed, nil},
		{"BEGIN", nil, CodeNotAllowed, nil},
		{"ATTACH 'x' AS y", nil, CodeNotAllowed, nil},
		{"SELECT nope FROM t", nil, 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.sql, func(t *testing.T) {
			rs, err := f.Query(context.Background(), []Statement{st(tc.sql, tc.args...)})
			if err != nil {
				t.Fatal(err)
			}
			r := rs[0]
			if tc.wantCode == 0 {
				if r.Err != nil {
					t.Fatalf("error %v", r.Err)
				}
				if tc.rows != nil && !reflect.DeepEqual(r.Rows, tc.rows) {
					t.Fatalf("rows %v, want %v", r.Rows, tc.rows)
				}
				return
			}
			if r.Err == nil || r.Err.Code != tc.wantCode {
				t.Fatalf("result %+v, want code %d", r, tc.wantCode)
			}
		})
	}
	if n := count(t, f, "t"); n != 2 {
		t.Fatalf("reads changed the table: %d rows", n)
	}
	// Several statements: one consistent state, and an error stops the call.
	rs, err := f.Query(context.Background(), []Statement{st("SELECT count(*) FROM t"), st("SELECT bad"), st("SELECT 1")})
	if err != nil || len(rs) != 2 || rs[1].Err == nil {
		t.Fatalf("multi: %v %+v", err, rs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Query(ctx, []Statement{st("SELECT 1")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

// TestQueryInterrupt: a long read ends when its context does.
func TestQueryInterrupt(t *testing.T) {
	f := openT(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := f.Query(ctx, []Statement{st("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	// The connection is usable afterwards.
	for range 8 {
		query(t, f, "SELECT 1")
	}
}

func TestDescribe(t *testing.T) {
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE t(id INTEGER PRIMARY KEY, name text, at timestamptz)")))
	tests := []struct {
		sql  string
		want Description
		code int
	}{
		{"SELECT id, name, at, 1 AS one FROM t WHERE id = $1", Description{1, []Column{{"id", "INTEGER"}, {"name", "TEXT"}, {"at", "timestamptz"}, {"one", ""}}, true}, 0},
		{"INSERT INTO t(name) VALUES ($1), ($2) RETURNING id, at", Description{2, []Column{{"id", "INTEGER"}, {"at", "timestamptz"}}, false}, 0},
		{"UPDATE t SET name = $2 WHERE id = $1", Description{2, nil, false}, 0},
		{"SELECT $3", Description{3, []Column{{"$3", ""}}, true}, 0},
		{"CREATE TABLE u(a)", Description{0, nil, false}, 0},
		{"BEGIN", Description{0, nil, false}, 0},
		{"", Description{0, nil, true}, 0},
		{"SELECT * FROM missing", Description{}, 1},
		{"SELEC 1", Description{}, 1},
		{"SELECT 1; SELECT 2", Description{}, CodeMultipleStatements},
	}
	for _, tc := range tests {
		t.Run(tc.sql, func(t *testing.T) {
			d, err := f.Describe(context.Background(), tc.sql)
			if tc.code != 0 {
				var se *SQLError
				if !errors.As(err, &se) || se.Code != tc.code {
					t.Fatalf("err = %v, want code %d", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d, tc.want) {
				t.Fatalf("Describe = %+v, want %+v", d, tc.want)
			}
		})
	}
	if n := count(t, f, "t"); n != 0 {
		t.Fatalf("Describe ran a statement: %d rows", n)
	}
	// A schema change applied on the writer is seen at once.
	applyOne(t, f, 2, cmd(1, 2, st("ALTER TABLE t ADD COLUMN extra numeric")))
	d, err := f.Describe(context.Background(), "SELECT * FROM t")
	if err != nil || len(d.Columns) != 4 || d.Columns[3] != (Column{"extra", "numeric"}) {
		t.Fatalf("after ALTER: %+v %v", d, err)
	}
}

// dump is a logical dump of a database: schema and every row of every
// table, including the fsm's own.
func dump(t testing.TB, f *FSM) string {
	t.Helper()
	var b bytes.Buffer
	schema := query(t, f, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
	for _, row := range schema.Rows {
		fmt.Fprintf(&b, "%v\n", row)
		if row[0] == "table" && row[1] != "sqlite_sequence" {
			r := query(t, f, fmt.Sprintf(`SELECT * FROM "%s" ORDER BY 1`, row[1]))
			fmt.Fprintf(&b, "%v\n", r.Rows)
		}
	}
	return b.String()
}

// workload is a batch of entries with DDL, writes, failures, dedup and
// no-ops.
func workload(n int) []consensus.Entry {
	es := []consensus.Entry{ent(1, cmd(1, 1,
		st("CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB, n INTEGER, f REAL)"),
		st("CREATE TABLE log(id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT)"),
		st("CREATE INDEX kv_n ON kv(n)"),
		st("CREATE TRIGGER kv_log AFTER INSERT ON kv BEGIN INSERT INTO log(k) VALUES (new.k); END")))}
	for i := 2; i <= n; i++ {
		idx := uint64(i)
		switch {
		case i%17 == 0:
			es = append(es, consensus.Entry{Term: 2, Index: idx})
		case i%13 == 0:
			es = append(es, ent(idx, cmd(2, uint64(i), st("INSERT INTO kv VALUES ('k0', NULL, 0, 0)"))))
		case i%11 == 0:
			es = append(es, ent(idx, cmd(3, uint64(i/11), st("DELETE FROM kv WHERE n % 7 = $1", int64(i%7)))))
		default:
			es = append(es, ent(idx, cmd(4, uint64(i),
				st("INSERT INTO kv VALUES ($1, $2, $3, $4) ON CONFLICT(k) DO UPDATE SET n = n + 1", fmt.Sprintf("k%d", i%50), bytes.Repeat([]byte{byte(i)}, i%300), int64(i), float64(i)/3))))
		}
	}
	return es
}

// TestReplicasIdentical: two FSMs applying the same entries in different
// batches end up with byte-identical database files.
func TestReplicasIdentical(t *testing.T) {
	es := workload(400)
	a, b := openT(t, t.TempDir()), openT(t, t.TempDir())
	mustApply(t, a, es...)
	for i := 0; i < len(es); {
		j := min(len(es), i+1+i%7)
		mustApply(t, b, es[i:j]...)
		if i%5 == 0 {
			// Checkpoints run at different moments on different nodes.
			if err := b.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		i = j
	}
	assertSameDB(t, a, b)
	if n := count(t, a, "kv"); n == 0 {
		t.Fatal("workload wrote nothing")
	}
}

// assertSameDB checks that a and b hold byte-identical databases: the same
// Checksum, and the same file bytes after a checkpoint except the two
// header fields SQLite keeps per file (see Checksum).
func assertSameDB(t *testing.T, a, b *FSM) {
	t.Helper()
	ctx := context.Background()
	ia, sa, err := a.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ib, sb, err := b.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ia != ib {
		t.Fatalf("applied index %d vs %d", ia, ib)
	}
	if dump(t, a) != dump(t, b) {
		t.Fatal("logical dumps differ")
	}
	if sa != sb {
		t.Errorf("checksums differ at index %d", ia)
	}
	var files [2][]byte
	for i, f := range []*FSM{a, b} {
		if err := f.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		buf, err := os.ReadFile(filepath.Join(f.Dir(), DBFile))
		if err != nil {
			t.Fatal(err)
		}
		if len(buf) < 100 {
			t.Fatalf("database file of %d bytes", len(buf))
		}
		clear(buf[24:28])
		clear(buf[92:96])
		files[i] = buf
	}
	if len(files[0]) != len(files[1]) {
		t.Fatalf("database files differ in size: %d, %d", len(files[0]), len(files[1]))
	}
	for i := range files[0] {
		if files[0][i] != files[1][i] {
			t.Fatalf("database files differ at byte %d (page %d)", i, i/4096+1)
		}
	}
}

// TestCrashMidBatch: a kill -9 in the middle of a batch (its transaction
// partly written to the WAL, never committed) leaves the state and the
// applied index of the previous batch; applying the batch again applies
// each entry once.
func TestCrashMidBatch(t *testing.T) {
	dir := t.TempDir()
	f := openT(t, dir)
	es := []consensus.Entry{ent(1, cmd(1, 1, st("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")))}
	for i := uint64(2); i <= 6; i++ {
		// Big rows, so the open transaction spills pages into the WAL.
		es = append(es, ent(i, cmd(1, i, st("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300) INSERT INTO t(v) SELECT zeroblob(4000) FROM c"))))
	}
	mustApply(t, f, es[:2]...)

	// Start the next batch by hand, as Apply does, and "crash" half-way:
	// copy the files while its transaction is open.
	if err := f.w.exec("PRAGMA cache_size = 10; BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	for _, e := range es[2:5] {
		c, err := DecodeCommand(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		rs, _, _, _, err := f.applyCommand(c, e.Index)
		if err != nil || rs[0].Err != nil {
			t.Fatal(err, rs)
		}
		if err := setApplied(f.w, e.Index, e.Term); err != nil {
			t.Fatal(err)
		}
	}
	wal, err := os.Stat(filepath.Join(dir, DBFile+"-wal"))
	if err != nil {
		t.Fatal(err)
	}
	if wal.Size() < 1<<20 {
		t.Fatalf("WAL is %d bytes: the open transaction did not spill, the test proves nothing", wal.Size())
	}
	crashed := t.TempDir()
	for _, s := range []string{"", "-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, DBFile+s))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashed, DBFile+s), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.w.exec("ROLLBACK"); err != nil {
		t.Fatal(err)
	}

	g := openT(t, crashed)
	if g.AppliedIndex() != 2 || count(t, g, "t") != 300 {
		t.Fatalf("after crash: applied %d, rows %d; want 2, 300", g.AppliedIndex(), count(t, g, "t"))
	}
	mustApply(t, g, es...)
	if g.AppliedIndex() != 6 || count(t, g, "t") != 1500 {
		t.Fatalf("after replay: applied %d, rows %d; want 6, 1500", g.AppliedIndex(), count(t, g, "t"))
	}
	var buf bytes.Buffer
	if _, err := g.Snapshot(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
}

// TestOpenGarbage: a data directory holding something that is not our
// database gives a clear error and is left as it was.
func TestOpenGarbage(t *testing.T) {
	dir := t.TempDir()
	garbage := bytes.Repeat([]byte("this is not sqlite "), 400)
	path := filepath.Join(dir, DBFile)
	if err := os.WriteFile(path, garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(context.Background(), dir, Options{})
	if err == nil {
		f.Close()
		t.Fatal("Open accepted a garbage database")
	}
	var se *SQLError
	if !errors.As(err, &se) || se.Code&0xff != 26 {
		t.Fatalf("err = %v, want SQLITE_NOTADB", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, garbage) {
		t.Fatal("Open modified the garbage file")
	}
}

// TestStatementCache: cached statements follow schema changes, and the
// cache stays bounded.
func TestStatementCache(t *testing.T) {
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE t(a)"), st("INSERT INTO t VALUES (1)")))
	if r := query(t, f, "SELECT * FROM t"); len(r.Columns) != 1 {
		t.Fatalf("columns %v", r.Columns)
	}
	rs := applyOne(t, f, 2, cmd(1, 2, st("SELECT * FROM t"), st("ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'"), st("SELECT * FROM t")))
	if len(rs[0].Columns) != 1 || !reflect.DeepEqual(rs[2].Rows, [][]any{{int64(1), "x"}}) {
		t.Fatalf("writer after ALTER: %+v", rs)
	}
	for range 2 * len(f.reads) {
		if r := query(t, f, "SELECT * FROM t"); !reflect.DeepEqual(r.Rows, [][]any{{int64(1), "x"}}) {
			t.Fatalf("reader after ALTER: %+v", r)
		}
	}
	for i := range 3 * stmtCacheSize {
		applyOne(t, f, uint64(3+i), cmd(1, uint64(3+i), st(fmt.Sprintf("INSERT INTO t(a) VALUES (%d)", i))))
	}
	if n := f.w.lru.l.Len(); n > stmtCacheSize {
		t.Fatalf("writer caches %d statements, limit %d", n, stmtCacheSize)
	}
	if n := count(t, f, "t"); n != 1+3*stmtCacheSize {
		t.Fatalf("rows = %d", n)
	}
}

// TestConnectionStateFunctions: changes() and last_insert_rowid() give the
// same values on a node that restarts between entries as on one that does
// not.
func TestConnectionStateFunctions(t *testing.T) {
	es := []consensus.Entry{ent(1, cmd(1, 1, st("CREATE TABLE t(id INTEGER PRIMARY KEY, c INTEGER, l INTEGER)")))}
	for i := uint64(2); i <= 8; i++ {
		es = append(es, ent(i, cmd(1, i,
			st("INSERT INTO t(c, l) VALUES (changes(), last_insert_rowid())"),
			st("INSERT INTO t(c, l) VALUES (changes(), last_insert_rowid())"))))
	}
	a := openT(t, t.TempDir())
	mustApply(t, a, es...)
	dir := t.TempDir()
	for _, e := range es {
		b, err := Open(context.Background(), dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		mustApply(t, b, e)
		b.Close()
	}
	b := openT(t, dir)
	assertSameDB(t, a, b)
}
