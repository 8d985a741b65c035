package fsm

import (
	"context"
	"reflect"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

const runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "

// TestStepLimit: a statement that would run forever fails alike on every
// node once it used the entry's step budget; the rest of the batch is
// applied and replicas stay identical however they batch.
func TestStepLimit(t *testing.T) {
	es := []consensus.Entry{
		ent(1, cmd(1, 1, st("CREATE TABLE t(x INTEGER)"))),
		ent(2, cmd(1, 2, st("INSERT INTO t VALUES (2)"))),
		// A runaway write: SQLite rolls back the whole transaction.
		ent(3, cmd(2, 1, st("INSERT INTO t VALUES (3)"), st(runaway+"INSERT INTO t SELECT x FROM c"))),
		ent(4, cmd(1, 3, st("INSERT INTO t VALUES (4)"))),
		// A runaway read inside a write: only the entry fails.
		ent(5, cmd(3, 1, st("INSERT INTO t VALUES (5)"), st(runaway+"SELECT count(*) FROM c"))),
		ent(6, cmd(1, 4, st(runaway+"INSERT INTO t SELECT x FROM c LIMIT 1000"))),
		// The retry of the runaway write returns its stored result.
		ent(7, cmd(2, 1, st("INSERT INTO t VALUES (3)"), st(runaway+"INSERT INTO t SELECT x FROM c"))),
	}
	open := func() *FSM {
		f := openT(t, t.TempDir())
		f.maxSteps = 300_000
		return f
	}
	a, b, c := open(), open(), open()
	w5, w7 := a.Expect(3, 1), a.Expect(2, 1)
	mustApply(t, a, es...)
	for _, e := range es {
		mustApply(t, b, e)
	}
	mustApply(t, c, es[:4]...)
	mustApply(t, c, es[4:]...)

	ctx := context.Background()
	r5, err := w5.Wait(ctx)
	if err != nil || len(r5) != 2 || r5[0].Err != nil || r5[1].Err == nil || r5[1].Err.Code != CodeStepLimit {
		t.Fatalf("runaway read: %+v %v", r5, err)
	}
	r7, err := w7.Wait(ctx)
	if err != nil || len(r7) != 2 || r7[1].Err == nil || r7[1].Err.Code != CodeStepLimit {
		t.Fatalf("runaway write (retried): %+v %v", r7, err)
	}
	got := query(t, a, "SELECT x FROM t WHERE x < 10 ORDER BY x").Rows
	// 2 and 4 from entries 2 and 4, 1..1000 from entry 6; nothing of 3 and 5.
	if want := [][]any{{int64(1)}, {int64(2)}, {int64(2)}, {int64(3)}, {int64(4)}, {int64(4)}, {int64(5)}, {int64(6)}, {int64(7)}, {int64(8)}, {int64(9)}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	if n := count(t, a, "t"); n != 1002 {
		t.Fatalf("rows = %d, want 1002 (2, 4 and 1000 from entry 6)", n)
	}
	if a.AppliedIndex() != 7 {
		t.Fatalf("AppliedIndex = %d", a.AppliedIndex())
	}
	assertSameDB(t, a, b)
	assertSameDB(t, a, c)
}
