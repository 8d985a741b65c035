package fsm

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

func txCmd(session, seq, readVersion uint64, tables []string, stmts ...Statement) Command {
	c := occCmd(session, seq, readVersion, stmts...)
	c.ReadTables = tables
	return c
}

func isConflict(rs []Result) bool {
	return len(rs) == 1 && rs[0].Err != nil && rs[0].Err.Code == CodeConflict
}

// TestPreviewTxTables: a preview reports the tables its statements read
// or wrote, through views, triggers and foreign keys, pending ones
// included (a view's own name too), the same from the cache as freshly prepared, and the
// statements that did not run left out.
func TestPreviewTxTables(t *testing.T) {
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1,
		st("CREATE TABLE Parent(id INTEGER PRIMARY KEY)"),
		st("CREATE TABLE child(id INTEGER PRIMARY KEY, p INTEGER REFERENCES Parent(id))"),
		st("CREATE TABLE audit(n INTEGER)"),
		st("CREATE TABLE other(x)"),
		st("CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID"),
		st("CREATE VIEW pv AS SELECT id FROM parent"),
		st("CREATE TRIGGER child_audit AFTER INSERT ON child BEGIN INSERT INTO audit VALUES (new.id); END"),
		st("INSERT INTO parent VALUES (1)"),
	))
	ctx := context.Background()
	tests := []struct {
		name    string
		pending []Statement
		stmts   []Statement
		want    []string
	}{
		{"view", nil, []Statement{st("SELECT * FROM pv")}, []string{"parent", "pv"}}, // the view's own name is harmless: it is never written
		{"count", nil, []Statement{st("SELECT count(*) FROM other")}, []string{"other"}},
		{"no columns", nil, []Statement{st("SELECT 1 FROM kv")}, []string{"kv"}},
		{"none", nil, []Statement{st("SELECT 1")}, nil},
		{"update reads its table", nil, []Statement{st("UPDATE other SET x = 1 WHERE x = 2")}, []string{"other"}},
		{"trigger and foreign key", nil, []Statement{st("INSERT INTO child VALUES (1, 1)")}, []string{"audit", "child", "parent"}},
		{"pending", []Statement{st("INSERT INTO kv VALUES ('a', 1)")}, []Statement{st("SELECT 1")}, []string{"kv"}},
		{"after a failure", nil, []Statement{st("INSERT INTO parent VALUES (1)"), st("SELECT * FROM other")}, []string{"parent"}},
	}
	for _, tc := range tests {
		for round := range 2 { // prepared, then from the statement cache
			_, _, got, err := f.PreviewTx(ctx, tc.pending, tc.stmts, t0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s (round %d): tables %q, want %q", tc.name, round, got, tc.want)
			}
		}
	}
	// A view redefined after its statement was cached: the re-prepared
	// statement's tables count.
	if _, _, got, _ := f.PreviewTx(ctx, nil, []Statement{st("SELECT * FROM pv")}, t0); !reflect.DeepEqual(got, []string{"parent", "pv"}) {
		t.Fatalf("view: %q", got)
	}
	applyOne(t, f, 2, cmd(1, 2, st("DROP VIEW pv"), st("CREATE VIEW pv AS SELECT x AS id FROM other")))
	for range 2 {
		if _, _, got, _ := f.PreviewTx(ctx, nil, []Statement{st("SELECT * FROM pv")}, t0); !reflect.DeepEqual(got, []string{"other", "pv"}) {
			t.Fatalf("redefined view: %q", got)
		}
	}
}

// tableWorkload is a bank-like log: transactions with read sets that
// commit or conflict table by table.
func tableWorkload() ([]consensus.Entry, map[uint64]bool) {
	es := []consensus.Entry{
		ent(1, cmd(1, 1, st("CREATE TABLE a(k INTEGER PRIMARY KEY, v INTEGER)"), st("CREATE TABLE b(k INTEGER PRIMARY KEY, v INTEGER)"),
			st("CREATE TABLE c(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID"),
			st("CREATE TABLE log(n INTEGER)"),
			st("CREATE TRIGGER b_log AFTER UPDATE ON b BEGIN INSERT INTO log VALUES (new.v); END"))),
		ent(2, txCmd(1, 2, 1, []string{"zz"}, st("INSERT INTO a VALUES (1, 100)"), st("INSERT INTO b VALUES (1, 100)"), st("INSERT INTO c VALUES ('x', 1)"))),
		// Two transactions read at 2, on different tables: both commit.
		ent(3, txCmd(2, 1, 2, []string{"a"}, st("UPDATE a SET v = v - 10 WHERE k = 1"))),
		ent(4, txCmd(3, 1, 2, []string{"b"}, st("UPDATE b SET v = v + 10 WHERE k = 1"))),
		// On the same table: the second conflicts (a changed at 3).
		ent(5, txCmd(4, 1, 2, []string{"a"}, st("UPDATE a SET v = v + 1 WHERE k = 1"))),
		// Read a, write c: conflicts since a changed after 2.
		ent(6, txCmd(5, 1, 2, []string{"a", "c"}, st("UPDATE c SET v = 7 WHERE k = 'x'"))),
		// log changed through b's trigger at 4: a reader of log at 3 conflicts.
		ent(7, txCmd(6, 1, 3, []string{"log"}, st("INSERT INTO c VALUES ('y', 2)"))),
		// c (WITHOUT ROWID) changed at... nothing yet: reading it at 2 is fine.
		ent(8, txCmd(7, 1, 2, []string{"C"}, st("UPDATE c SET v = v + 1"))),
		// b changed at 4, after 3: conflict; then the global check without tables.
		ent(9, txCmd(8, 1, 3, []string{"b"}, st("DELETE FROM b WHERE k = 99"))), // b changed at 4 > 3
		ent(10, occCmd(9, 1, 8, st("INSERT INTO a VALUES (2, 0)"))),             // 8 is the last change: fine
		ent(11, occCmd(9, 2, 9, st("INSERT INTO a VALUES (3, 0)"))),             // 10 changed a: global conflict
		ent(12, txCmd(9, 3, 9, []string{"b", "c"}, st("INSERT INTO b VALUES (3, 0)"))),
		// DDL conflicts with everything read before it.
		ent(13, cmd(1, 3, st("CREATE TABLE unrelated(x)"))),
		ent(14, txCmd(10, 1, 12, []string{"c"}, st("DELETE FROM c"))),
		ent(15, txCmd(10, 2, 13, []string{"c"}, st("DELETE FROM c"))),
		// That DELETE without WHERE of a WITHOUT ROWID table changed c.
		ent(16, txCmd(10, 3, 14, []string{"c"}, st("INSERT INTO a VALUES (4, 0)"))),
		// Likewise of a rowid table.
		ent(17, cmd(1, 4, st("DELETE FROM log"))),
		ent(18, txCmd(10, 4, 16, []string{"log"}, st("INSERT INTO a VALUES (5, 0)"))),
	}
	conflicts := map[uint64]bool{5: true, 6: true, 7: true, 9: true, 11: true, 14: true, 16: true, 18: true}
	return es, conflicts
}

// TestTableConflicts: conflicts are per table, DDL conflicts with
// everything, and replicas stay byte-identical however entries are
// batched.
func TestTableConflicts(t *testing.T) {
	es, conflicts := tableWorkload()
	a := openT(t, t.TempDir())
	for _, e := range es {
		c, _ := DecodeCommand(e.Data)
		rs := applyOne(t, a, e.Index, c)
		if got := isConflict(rs); got != conflicts[e.Index] {
			t.Fatalf("entry %d: conflict %v, want %v: %+v", e.Index, got, conflicts[e.Index], rs)
		}
		if !conflicts[e.Index] && rs[len(rs)-1].Err != nil {
			t.Fatalf("entry %d: %+v", e.Index, rs)
		}
	}
	if got := fmt.Sprint(query(t, a, "SELECT (SELECT group_concat(v) FROM a), (SELECT group_concat(v) FROM b), (SELECT count(*) FROM c), (SELECT count(*) FROM log)").Rows); got != "[[90,0 110,0 0 0]]" {
		t.Fatalf("state %s", got)
	}
	if a.LastWriteIndex() != 17 {
		t.Fatalf("LastWriteIndex %d", a.LastWriteIndex())
	}
	b := openT(t, t.TempDir())
	mustApply(t, b, es...) // one batch
	assertSameDB(t, a, b)
	c := openT(t, t.TempDir())
	for i := 0; i < len(es); i += 3 {
		mustApply(t, c, es[i:min(i+3, len(es))]...)
	}
	assertSameDB(t, a, c)
	// The tracking survives a restart.
	dir := b.Dir()
	b.Close()
	b = openT(t, dir)
	if rs := applyOne(t, b, 19, txCmd(11, 1, 13, []string{"a"}, st("UPDATE a SET v = 0"))); isConflict(rs) {
		t.Fatalf("after restart: %+v", rs)
	}
	if rs := applyOne(t, b, 20, txCmd(11, 2, 17, []string{"a"}, st("UPDATE a SET v = 1"))); !isConflict(rs) {
		t.Fatalf("after restart: %+v", rs)
	}
}

// TestTableConflictsFromPreview: the tables PreviewTx reports make the
// commit conflict exactly when a table the transaction read changed.
func TestTableConflictsFromPreview(t *testing.T) {
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER)"), st("CREATE TABLE hist(n INTEGER)"),
		st("INSERT INTO acct VALUES (1, 10)")))
	applyOne(t, f, 2, cmd(5, 1, st("SELECT 1")))
	ctx := context.Background()
	// T1 reads acct and writes hist; T2 writes hist only.
	_, v1, t1, err := f.PreviewTx(ctx, nil, []Statement{st("SELECT bal FROM acct WHERE id = 1")}, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, t1b, err := f.PreviewTx(ctx, nil, []Statement{st("INSERT INTO hist VALUES (10)")}, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, v2, t2, err := f.PreviewTx(ctx, nil, []Statement{st("INSERT INTO hist VALUES (1)")}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(t2, []string{"hist"}) {
		t.Fatalf("T2 tables %q", t2)
	}
	ts := tableSet{}
	ts.addAll(t1)
	ts.addAll(t1b)
	// A write to acct by someone else, then both commit attempts.
	applyOne(t, f, 3, cmd(2, 1, st("UPDATE acct SET bal = 0")))
	if rs := applyOne(t, f, 4, txCmd(3, 1, v2, t2, st("INSERT INTO hist VALUES (1)"))); rs[0].Err != nil {
		t.Fatalf("T2: %+v", rs)
	}
	if rs := applyOne(t, f, 5, txCmd(4, 1, v1, ts.sorted(), st("INSERT INTO hist VALUES (10)"))); !isConflict(rs) {
		t.Fatalf("T1 read acct, which changed: %+v", rs)
	}
}

// TestRestoreResetsTableWrites: a restore conflicts with everything read
// before it, and the restored file's own table indexes are dropped.
func TestRestoreResetsTableWrites(t *testing.T) {
	src := openT(t, t.TempDir())
	for i := uint64(1); i <= 20; i++ {
		applyOne(t, src, i, cmd(1, i, st("CREATE TABLE IF NOT EXISTS r(x)"), st("INSERT INTO r VALUES (1)")))
	}
	file := snapshotBytes(t, src)
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE t(x)")))
	applyOne(t, f, 2, Command{SessionID: 2, Seq: 1, UnixMicro: t0, Restore: file})
	if rs := applyOne(t, f, 3, txCmd(3, 1, 1, []string{"r"}, st("INSERT INTO r VALUES (2)"))); !isConflict(rs) {
		t.Fatalf("read before the restore: %+v", rs)
	}
	// r was written at 20 in the source's log: that index means nothing here.
	if rs := applyOne(t, f, 4, txCmd(3, 2, 3, []string{"r"}, st("INSERT INTO r VALUES (3)"))); rs[0].Err != nil {
		t.Fatalf("read after the restore: %+v", rs)
	}
}

// TestVirtualTableConflictsWithAnything: a transaction that used a
// virtual table (whose writes the preupdate hook does not see) conflicts
// with any change after its version, however often it ran.
func TestVirtualTableConflictsWithAnything(t *testing.T) {
	f := openT(t, t.TempDir())
	applyOne(t, f, 1, cmd(1, 1, st("CREATE VIRTUAL TABLE ft USING fts5(body)"), st("CREATE TABLE n(x)"), st("INSERT INTO ft(body) VALUES ('hello world')")))
	ctx := context.Background()
	var tables []string
	for range 3 { // fresh, then cached statements
		rs, _, ts, err := f.PreviewTx(ctx, nil, []Statement{st("SELECT count(*) FROM ft WHERE ft MATCH 'hello'")}, t0)
		if err != nil || rs[0].Err != nil {
			t.Fatal(err, rs)
		}
		if !slices.Contains(ts, "ft") || !slices.Contains(ts, allTables) {
			t.Fatalf("tables %q", ts)
		}
		tables = ts
	}
	applyOne(t, f, 2, cmd(2, 1, st("INSERT INTO ft(body) VALUES ('hello again')")))
	if rs := applyOne(t, f, 3, txCmd(3, 1, 1, tables, st("INSERT INTO n VALUES (1)"))); !isConflict(rs) {
		t.Fatalf("fts5 table changed: %+v", rs)
	}
	if rs := applyOne(t, f, 4, txCmd(3, 2, 2, tables, st("INSERT INTO n VALUES (1)"))); rs[0].Err != nil {
		t.Fatalf("nothing changed since 2: %+v", rs)
	}
}

// TestTablesSinceAfterUpgrade: in a database an older fsm wrote (no
// tables_since, no table writes recorded), the per-table checks start at
// the first entry with ReadTables; a transaction read before it gets the
// global check. A database created empty tracks from index 1.
func TestTablesSinceAfterUpgrade(t *testing.T) {
	f := openT(t, t.TempDir())
	if got, _ := readMeta(f.w, "tables_since"); got != 1 {
		t.Fatalf("fresh tables_since = %d", got)
	}
	applyOne(t, f, 1, cmd(1, 1, st("CREATE TABLE a(x)"), st("CREATE TABLE b(x)")))
	applyOne(t, f, 2, cmd(1, 2, st("INSERT INTO a VALUES (1)")))
	// What an older fsm left: no tables_since, no table writes.
	if err := f.w.exec("DELETE FROM _raftsql_meta WHERE key = 'tables_since'; DELETE FROM _raftsql_table_writes"); err != nil {
		t.Fatal(err)
	}
	dir := f.Dir()
	f.Close()
	f = openT(t, dir)
	if got, _ := readMeta(f.w, "tables_since"); got != 0 {
		t.Fatalf("upgraded tables_since = %d", got)
	}
	// The first entry with ReadTables (read at 1; a changed at 2, b never):
	// the global check.
	if rs := applyOne(t, f, 3, txCmd(2, 1, 1, []string{"b"}, st("INSERT INTO b VALUES (1)"))); !isConflict(rs) {
		t.Fatalf("first entry with tables: %+v", rs)
	}
	if got, _ := readMeta(f.w, "tables_since"); got != 3 {
		t.Fatalf("tables_since = %d, want 3", got)
	}
	applyOne(t, f, 4, cmd(1, 3, st("INSERT INTO a VALUES (2)")))
	if rs := applyOne(t, f, 5, txCmd(2, 2, 2, []string{"b"}, st("INSERT INTO b VALUES (2)"))); !isConflict(rs) {
		t.Fatalf("read before tables_since: %+v", rs)
	}
	if rs := applyOne(t, f, 6, txCmd(2, 3, 3, []string{"b"}, st("INSERT INTO b VALUES (3)"))); rs[0].Err != nil {
		t.Fatalf("read at tables_since, b unchanged: %+v", rs)
	}
}
