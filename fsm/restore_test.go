package fsm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

// userDump is dump without the fsm's own tables.
func userDump(t testing.TB, f *FSM) string {
	t.Helper()
	var b bytes.Buffer
	schema := query(t, f, "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE '\\_raftsql\\_%' ESCAPE '\\' AND name <> 'sqlite_sequence' ORDER BY type, name")
	for _, row := range schema.Rows {
		b.WriteString(row[1].(string) + "\n")
		if row[0] == "table" {
			r := query(t, f, `SELECT * FROM "`+row[1].(string)+`" ORDER BY 1`)
			for _, v := range r.Rows {
				fmt.Fprintf(&b, "%#v\n", v)
			}
		}
	}
	return b.String()
}

func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := f.Snapshot(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rollbackTriggerDB writes dir/trigger.db, a database with a trigger that
// raises ROLLBACK (which a restore must refuse), and returns its path.
func rollbackTriggerDB(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "trigger.db")
	c, err := openConn(path, 6, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.exec("CREATE TABLE x(a); CREATE TRIGGER tr AFTER INSERT ON x BEGIN SELECT RAISE(ROLLBACK, 'no'); END;"); err != nil {
		t.Fatal(err)
	}
	c.close()
	return path
}

// clusterLog is the log of a cluster being restored: its own two-voter
// configuration at indexes 1-2, then es shifted to follow it.
func clusterLog(es []consensus.Entry) []consensus.Entry {
	log := []consensus.Entry{confEntry(1, consensus.ConfAddVoter, "n1", "a:1"), confEntry(2, consensus.ConfAddVoter, "n2", "a:2")}
	for _, e := range es {
		e.Index += 2
		log = append(log, e)
	}
	return log
}

// assertRefused checks that rs, the result of the entry at idx, is a
// CodeBadRestore refusal that left f's data as before (a userDump).
func assertRefused(t *testing.T, f *FSM, rs []Result, idx uint64, before string) {
	t.Helper()
	if len(rs) != 1 || rs[0].Err == nil || rs[0].Err.Code != CodeBadRestore {
		t.Fatalf("result %+v, want CodeBadRestore", rs)
	}
	t.Logf("refused: %s", rs[0].Err.Message)
	if f.AppliedIndex() != idx {
		t.Fatalf("AppliedIndex = %d, want %d", f.AppliedIndex(), idx)
	}
	if userDump(t, f) != before {
		t.Fatal("a refused restore changed the data")
	}
}

// TestRestoreEntry: a restore command in the log replaces the data at its
// index on every node, keeps the cluster's configuration and sessions, is
// exactly-once, and leaves replicas identical however entries are batched.
func TestRestoreEntry(t *testing.T) {
	ctx := context.Background()
	es := workload(120)
	src := openT(t, t.TempDir())
	mustApply(t, src, es[:50]...)
	backup := snapshotBytes(t, src)

	// The log of the cluster being restored: its own configuration, some
	// writes, the restore in the middle of a batch, more writes.
	log := clusterLog(es[:80])
	restoreCmd := Command{SessionID: 77, Seq: 1, UnixMicro: t0 + 100, Restore: backup}
	log = append(log, ent(83, restoreCmd))
	log = append(log, ent(84, cmd(5, 1, st("INSERT INTO kv VALUES ('after', NULL, 1, 1)"))))
	// A retry of the restore: deduplicated, so 'after' survives.
	log = append(log, ent(85, restoreCmd))

	a, b := openT(t, t.TempDir()), openT(t, t.TempDir())
	w := a.Expect(77, 1)
	mustApply(t, a, log...)
	for i := 0; i < len(log); i += 3 {
		mustApply(t, b, log[i:min(i+3, len(log))]...)
	}
	rs, err := w.Wait(ctx)
	if err != nil || len(rs) != 1 || rs[0].Err != nil {
		t.Fatalf("restore result: %+v %v", rs, err)
	}
	if a.AppliedIndex() != 85 {
		t.Fatalf("AppliedIndex = %d", a.AppliedIndex())
	}
	assertSameDB(t, a, b)

	// The data is the backup's plus the write after it.
	ref := openT(t, t.TempDir())
	mustApply(t, ref, es[:50]...)
	mustApply(t, ref, ent(51, cmd(5, 1, st("INSERT INTO kv VALUES ('after', NULL, 1, 1)"))))
	if userDump(t, a) != userDump(t, ref) {
		t.Fatalf("restored data differs:\n%s\nwant\n%s", userDump(t, a), userDump(t, ref))
	}
	// The configuration is the cluster's, not the backup's.
	cs, err := a.ConfState(ctx)
	if err != nil || len(cs.Members) != 2 || cs.Members[0].ID != "n1" {
		t.Fatalf("configuration after restore: %+v %v", cs, err)
	}
	// Sessions of the cluster survive (exactly-once across the restore).
	pre := openT(t, t.TempDir())
	mustApply(t, pre, log[:82]...)
	sessions := "SELECT session_id, last_seq FROM _raftsql_sessions WHERE session_id NOT IN (5, 77) ORDER BY 1"
	if got, want := query(t, a, sessions).Rows, query(t, pre, sessions).Rows; !reflect.DeepEqual(got, want) || len(want) == 0 {
		t.Fatalf("sessions after restore %v, want %v", got, want)
	}
	applyOne(t, a, 86, cmd(5, 2, st("SELECT 1")))
	// A reopen keeps it all.
	a.Close()
	a2 := openT(t, a.Dir())
	if a2.AppliedIndex() != 86 {
		t.Fatalf("AppliedIndex after reopen = %d", a2.AppliedIndex())
	}
}

func TestRestoreEntryRefused(t *testing.T) {
	withTrigger, err := os.ReadFile(rollbackTriggerDB(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}

	f := openT(t, t.TempDir())
	mustApply(t, f, workload(20)...)
	good := snapshotBytes(t, f)
	tests := []struct {
		name string
		file []byte
	}{
		{"garbage", bytes.Repeat([]byte("garbage!"), 1000)},
		{"truncated", good[:len(good)/2]},
		{"rollback trigger", withTrigger},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := userDump(t, f)
			idx := uint64(21 + i)
			rs := applyOne(t, f, idx, Command{SessionID: 9, Seq: uint64(i + 1), Restore: tc.file})
			assertRefused(t, f, rs, idx, before)
		})
	}
}
