package fsm

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

func occCmd(session, seq, readVersion uint64, stmts ...Statement) Command {
	c := cmd(session, seq, stmts...)
	c.ReadVersion = readVersion
	return c
}

// TestReadVersionConflict: last_write_index moves with entries that
// changed the database only, and a command whose ReadVersion is older
// fails as a whole with CodeConflict — alike however entries are batched.
func TestReadVersionConflict(t *testing.T) {
	es := []consensus.Entry{
		ent(1, cmd(1, 1, st("CREATE TABLE t(k INTEGER PRIMARY KEY, v INTEGER)"))),
		ent(2, cmd(1, 2, st("INSERT INTO t VALUES (1, 10)"))),
		// Read at 1, a write at 2 came after: conflict, nothing applied.
		ent(3, occCmd(2, 1, 1, st("UPDATE t SET v = v + 1 WHERE k = 1"))),
		// Read at 2: fine, and it moves last_write_index to 4.
		ent(4, occCmd(2, 2, 2, st("UPDATE t SET v = v + 100 WHERE k = 1"))),
		{Term: 2, Index: 5}, // no-op
		confEntry(6, consensus.ConfAddVoter, "n2", "127.0.0.1:7002"),
		ent(7, cmd(1, 3, st("INSERT INTO t VALUES (2, 0)"), st("INSERT INTO t VALUES (1, 0)"))), // fails
		ent(8, cmd(1, 4, st("SELECT * FROM t"))),                                                // read-only
		// Writes that changed nothing: no rows matched, nothing inserted.
		ent(9, cmd(1, 5, st("UPDATE t SET v = 0 WHERE k = 99"), st("INSERT INTO t VALUES (1, 5) ON CONFLICT DO NOTHING"))),
		ent(10, occCmd(3, 1, 4, st("INSERT INTO t VALUES (3, 30)"))),
		ent(11, occCmd(3, 2, 9, st("INSERT INTO t VALUES (4, 40)"))), // 10 wrote after 9
		ent(12, cmd(1, 6, st("CREATE INDEX t_v ON t(v)"))),           // DDL changes no rows but counts
	}
	wantLW := []uint64{1, 2, 2, 4, 4, 4, 4, 4, 4, 10, 10, 12}
	a := openT(t, t.TempDir())
	for i, e := range es {
		mustApply(t, a, e)
		if got := a.LastWriteIndex(); got != wantLW[i] {
			t.Fatalf("after entry %d: LastWriteIndex = %d, want %d", e.Index, got, wantLW[i])
		}
	}
	b := openT(t, t.TempDir())
	w3, w4, w11 := b.Expect(2, 1), b.Expect(2, 2), b.Expect(3, 2)
	mustApply(t, b, es...) // one batch: the conflict is decided inside it
	ctx := context.Background()
	r3, _ := w3.Wait(ctx)
	if len(r3) != 1 || r3[0].Err == nil || r3[0].Err.Code != CodeConflict {
		t.Fatalf("entry 3: %+v", r3)
	}
	if r4, _ := w4.Wait(ctx); len(r4) != 1 || r4[0].Err != nil || r4[0].RowsAffected != 1 {
		t.Fatalf("entry 4: %+v", r4)
	}
	if r11, _ := w11.Wait(ctx); len(r11) != 1 || r11[0].Err == nil || r11[0].Err.Code != CodeConflict {
		t.Fatalf("entry 11: %+v", r11)
	}
	if got := fmt.Sprint(query(t, b, "SELECT k, v FROM t ORDER BY k").Rows); got != "[[1 110] [3 30]]" {
		t.Fatalf("rows %s", got)
	}
	if b.LastWriteIndex() != 12 {
		t.Fatalf("batched LastWriteIndex = %d", b.LastWriteIndex())
	}
	assertSameDB(t, a, b)
	// A retry of the conflicted command returns the conflict again.
	if rs := applyOne(t, b, 13, occCmd(3, 2, 9, st("INSERT INTO t VALUES (4, 40)"))); rs[0].Err == nil || rs[0].Err.Code != CodeConflict {
		t.Fatalf("retry: %+v", rs)
	}
	// It survives a restart.
	dir := b.Dir()
	b.Close()
	b = openT(t, dir)
	if b.LastWriteIndex() != 12 {
		t.Fatalf("after reopen LastWriteIndex = %d", b.LastWriteIndex())
	}
}

// TestRestoreMovesLastWrite: a restore entry changes the database.
func TestRestoreMovesLastWrite(t *testing.T) {
	src := openT(t, t.TempDir())
	applyOne(t, src, 1, cmd(1, 1, st("CREATE TABLE r(x)")))
	file := snapshotBytes(t, src)
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE t(x)")))
	rs := applyOne(t, f, 2, Command{SessionID: 2, Seq: 1, UnixMicro: t0, Restore: file})
	if rs[0].Err != nil {
		t.Fatal(rs[0].Err)
	}
	if f.LastWriteIndex() != 2 {
		t.Fatalf("LastWriteIndex = %d after restore at 2", f.LastWriteIndex())
	}
	if rs := applyOne(t, f, 3, occCmd(3, 1, 1, st("INSERT INTO r VALUES (1)"))); rs[0].Err == nil || rs[0].Err.Code != CodeConflict {
		t.Fatalf("write read before the restore: %+v", rs)
	}
}

func TestPreview(t *testing.T) {
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT UNIQUE, at TEXT DEFAULT CURRENT_TIMESTAMP)")))
	applyOne(t, f, 2, cmd(1, 2, st("INSERT INTO t(k, v) VALUES (1, 'a')")))
	mustApply(t, f, consensus.Entry{Term: 1, Index: 3}) // a no-op: the version is the applied index
	ctx := context.Background()
	pending := []Statement{st("INSERT INTO t(k, v) VALUES (2, 'b')"), st("UPDATE t SET v = v || '!' WHERE k = 1")}
	stmts := []Statement{
		st("SELECT k, v, at FROM t ORDER BY k"),
		st("INSERT INTO t(k, v) VALUES ($1, $2) RETURNING k, v", int64(3), "c"),
		st("DELETE FROM t WHERE k < 3"),
		st("INSERT INTO t(k, v) VALUES (9, 'c')"), // UNIQUE fails
		st("SELECT 1"), // does not run
	}
	when := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	rs, version, err := f.Preview(ctx, pending, stmts, when)
	if err != nil {
		t.Fatal(err)
	}
	if version != 3 {
		t.Errorf("version %d, want 3", version)
	}
	if len(rs) != 4 {
		t.Fatalf("%d results: %+v", len(rs), rs)
	}
	if got := fmt.Sprint(rs[0].Rows); got != "[[1 a! 2026-01-02 03:04:05] [2 b 2030-01-01 00:00:00]]" {
		t.Errorf("read of the pending writes: %s", got)
	}
	if got := fmt.Sprint(rs[1].Rows, rs[1].RowsAffected, rs[1].LastInsertID, rs[2].RowsAffected); got != "[[3 c]] 1 3 2" {
		t.Errorf("writes: %s", got)
	}
	if rs[3].Err == nil || rs[3].Err.Code != 2067 {
		t.Errorf("unique violation: %+v", rs[3])
	}
	// Nothing of it stayed.
	if got := fmt.Sprint(query(t, f, "SELECT k, v FROM t").Rows); got != "[[1 a]]" {
		t.Fatalf("state after preview: %s", got)
	}
	// The same statements applied as one entry give the same results.
	c := cmd(2, 1, append(append([]Statement{}, pending...), stmts...)...)
	c.UnixMicro = when
	applied := applyOne(t, f, 4, c)
	if !reflect.DeepEqual(applied[len(pending):], rs) {
		t.Errorf("Apply gave %+v\nPreview gave %+v", applied[len(pending):], rs)
	}

	// A pending statement that fails.
	_, _, err = f.Preview(ctx, []Statement{st("INSERT INTO nosuch VALUES (1)")}, []Statement{st("SELECT 1")}, when)
	var se *SQLError
	if !errors.Is(err, ErrPendingFailed) || !errors.As(err, &se) || se.Code != 1 {
		t.Errorf("pending failure: %v", err)
	}
	// Statements refused in the log are refused here too.
	rs, _, err = f.Preview(ctx, nil, []Statement{st("BEGIN"), st("SELECT 1")}, when)
	if err != nil || len(rs) != 1 || rs[0].Err == nil || rs[0].Err.Code != CodeNotAllowed {
		t.Errorf("BEGIN: %+v %v", rs, err)
	}
	// The step limit.
	f.maxSteps = 300_000
	rs, _, err = f.Preview(ctx, []Statement{st("INSERT INTO t(k, v) VALUES (50, 'x')")}, []Statement{st(runaway + "INSERT INTO t(k, v) SELECT x + 100, x FROM c")}, when)
	if err != nil || len(rs) != 1 || rs[0].Err == nil || rs[0].Err.Code != CodeStepLimit {
		t.Errorf("runaway: %+v %v", rs, err)
	}
	// A canceled preview.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)
	f.maxSteps = MaxEntrySteps
	_, _, err = f.Preview(cctx, nil, []Statement{st(runaway + "SELECT count(*) FROM c")}, when)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled preview: %v", err)
	}
	// No lock left behind: the applier goes on.
	applyOne(t, f, 5, cmd(1, 3, st("INSERT INTO t(k, v) VALUES (7, 'z')")))
	if n := count(t, f, "t"); n != 2 { // 1 and 7: entry 4 failed as a whole
		t.Fatalf("%d rows", n)
	}
}

// TestPreviewKeepsApplyDeterministic: previews interleaved with Apply
// (concurrently) neither change the writer's connection state nor the
// database: the replica that ran them is identical to one that did not.
func TestPreviewKeepsApplyDeterministic(t *testing.T) {
	es := []consensus.Entry{ent(1, cmd(1, 1, st("CREATE TABLE t(id INTEGER PRIMARY KEY, c INTEGER, l INTEGER, r INTEGER)")))}
	for i := uint64(2); i <= 40; i++ {
		es = append(es, ent(i, cmd(1, i,
			st("INSERT INTO t(c, l, r) VALUES (changes(), last_insert_rowid(), random())"),
			st("UPDATE t SET r = random() WHERE id % 3 = 0"))))
	}
	a, b := openT(t, t.TempDir()), openT(t, t.TempDir())
	mustApply(t, a, es...)
	ctx := context.Background()
	var wg sync.WaitGroup
	done := make(chan struct{})
	var previews int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			_, _, err := b.Preview(ctx, []Statement{st("INSERT INTO t(c, l, r) VALUES (-1, -1, random())")},
				[]Statement{st("UPDATE t SET c = 0, r = random()"), st("SELECT changes(), last_insert_rowid()")}, t0)
			if err != nil && !errors.Is(err, ErrPendingFailed) { // no table t before entry 1
				t.Error(err)
				return
			}
			previews++
		}
	}()
	for _, e := range es {
		mustApply(t, b, e)
	}
	close(done)
	wg.Wait()
	if previews == 0 {
		t.Fatal("no preview ran")
	}
	assertSameDB(t, a, b)
}

// TestPreviewWaitsWithCtx: a preview that writes waits for the writer's
// mutex (a long batch) and gives up when its ctx ends; a preview that
// only reads does not wait for it.
func TestPreviewWaitsWithCtx(t *testing.T) {
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE t(x)")))
	f.wmu.Lock() // a batch being applied
	rs, version, err := f.Preview(context.Background(), nil, []Statement{st("SELECT count(*), CURRENT_TIMESTAMP FROM t")}, t0)
	if err != nil || version != 1 || fmt.Sprint(rs[0].Rows) != "[[0 2026-01-02 03:04:05]]" {
		t.Errorf("read-only preview during a batch: %+v %d %v", rs, version, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	for _, pv := range []struct{ pending, stmts []Statement }{
		{[]Statement{st("INSERT INTO t VALUES (1)")}, []Statement{st("SELECT 1")}},
		{nil, []Statement{st("SELECT 1"), st("INSERT INTO t VALUES (1)")}},
	} {
		_, _, err = f.Preview(ctx, pv.pending, pv.stmts, t0)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Preview(%v, %v) = %v, want DeadlineExceeded", pv.pending, pv.stmts, err)
		}
	}
	f.wmu.Unlock()
	rs, _, err = f.Preview(context.Background(), nil, []Statement{st("INSERT INTO t VALUES (1)"), st("SELECT count(*) FROM t")}, t0)
	if err != nil || len(rs) != 2 || fmt.Sprint(rs[1].Rows) != "[[1]]" {
		t.Fatalf("after: %+v %v", rs, err)
	}
}

// TestOptimisticTransaction: the way the server uses Preview and
// ReadVersion — an interactive transaction that read a row another
// session then changed fails at COMMIT with CodeConflict; retried from
// the start, it commits.
func TestOptimisticTransaction(t *testing.T) {
	ctx := context.Background()
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER)"), st("INSERT INTO acct VALUES (1, 100), (2, 0)")))
	txn := func() ([]Statement, uint64) {
		// BEGIN; SELECT bal ...; UPDATE ...; UPDATE ...; (each previewed)
		rs, v1, err := f.Preview(ctx, nil, []Statement{st("SELECT bal FROM acct WHERE id = 1")}, t0)
		if err != nil || rs[0].Err != nil {
			t.Fatal(err, rs)
		}
		bal := rs[0].Rows[0][0].(int64)
		pending := []Statement{st("UPDATE acct SET bal = $1 WHERE id = 1", bal-10)}
		rs, v2, err := f.Preview(ctx, pending, []Statement{st("UPDATE acct SET bal = bal + 10 WHERE id = 2")}, t0)
		if err != nil || rs[0].Err != nil {
			t.Fatal(err, rs)
		}
		return append(pending, st("UPDATE acct SET bal = bal + 10 WHERE id = 2")), min(v1, v2)
	}
	stmts, version := txn()
	applyOne(t, f, 2, cmd(2, 1, st("UPDATE acct SET bal = bal + 1000 WHERE id = 1"))) // a concurrent write
	rs := applyOne(t, f, 3, occCmd(3, 1, version, stmts...))
	if len(rs) != 1 || rs[0].Err == nil || rs[0].Err.Code != CodeConflict {
		t.Fatalf("stale COMMIT: %+v", rs)
	}
	stmts, version = txn()
	if version != 3 {
		t.Fatalf("version %d, want 3", version)
	}
	rs = applyOne(t, f, 4, occCmd(3, 2, version, stmts...))
	if rs[0].Err != nil || rs[1].Err != nil {
		t.Fatalf("retried COMMIT: %+v", rs)
	}
	if got := fmt.Sprint(query(t, f, "SELECT bal FROM acct ORDER BY id").Rows); got != "[[1090] [10]]" {
		t.Fatalf("balances %s (a lost update?)", got)
	}
}

// TestPreviewClockAndRandom: a preview sees its transaction's clock, and
// random() differs between previews of the same transaction.
func TestPreviewClockAndRandom(t *testing.T) {
	f := openT(t, t.TempDir())
	ctx := context.Background()
	var seen []any
	for range 2 {
		rs, _, err := f.Preview(ctx, nil, []Statement{st("SELECT CURRENT_TIMESTAMP, random()")}, t0)
		if err != nil || rs[0].Err != nil {
			t.Fatal(err, rs)
		}
		if rs[0].Rows[0][0] != "2026-01-02 03:04:05" {
			t.Errorf("clock %v", rs[0].Rows[0][0])
		}
		seen = append(seen, rs[0].Rows[0][1])
	}
	if seen[0] == seen[1] {
		t.Errorf("random() gave %v in both previews", seen[0])
	}
}

// TestPreviewReadOnlyPath: a preview that only reads gives the results the
// writer's path gives (errors and refusals included).
func TestPreviewReadOnlyPath(t *testing.T) {
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE t(x INTEGER, d TEXT DEFAULT CURRENT_DATE)"), st("INSERT INTO t(x) VALUES (1), (2)")))
	ctx := context.Background()
	for _, stmts := range [][]Statement{
		{st("SELECT x, d, CURRENT_TIME FROM t ORDER BY x"), st("SELECT count(*) FROM t WHERE x > $1", int64(1))},
		{st("SELECT * FROM nosuch"), st("SELECT 1")},
		{st("PRAGMA table_info(t)")},
		{st("SELECT 1"), st("SELECT 1; SELECT 2")},
	} {
		fast, v1, err1 := f.Preview(ctx, nil, stmts, t0)
		slow, v2, err2 := f.Preview(ctx, []Statement{st("SELECT 0")}, stmts, t0) // a pending statement forces the writer's path
		if err1 != nil || err2 != nil || v1 != v2 || !reflect.DeepEqual(fast, slow) {
			t.Errorf("%v:\nread path   %+v %d %v\nwriter path %+v %d %v", stmts, fast, v1, err1, slow, v2, err2)
		}
		if len(fast) == 0 {
			t.Errorf("%v: no results", stmts)
		}
	}
}
