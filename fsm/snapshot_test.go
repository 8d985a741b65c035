package fsm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSnapshotRestore: a snapshot taken while writes go on is the state of
// exactly one applied index; restoring it elsewhere and applying the rest
// of the log gives the same database as the original.
func TestSnapshotRestore(t *testing.T) {
	ctx := context.Background()
	es := workload(400)
	f := openT(t, t.TempDir())
	mustApply(t, f, es[:200]...)

	snap := filepath.Join(t.TempDir(), "snap.db")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 200; i < 400; i += 10 {
			if err := f.Apply(ctx, es[i:i+10]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	idx, err := f.SnapshotFile(ctx, snap)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if idx < 200 || idx > 400 {
		t.Fatalf("snapshot index %d outside [200, 400]", idx)
	}
	meta, err := ReadSnapshotMeta(snap)
	if err != nil || meta.Index != idx || meta.Term == 0 {
		t.Fatalf("ReadSnapshotMeta = %+v, %v; want index %d", meta, err, idx)
	}

	// The snapshot holds exactly the state at idx.
	ref := openT(t, t.TempDir())
	mustApply(t, ref, es[:idx]...)
	h := openT(t, t.TempDir())
	mustApply(t, h, es[:3]...) // some state of its own, to be replaced
	w := h.Expect(99, 1)
	if err := h.Restore(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Wait(ctx); !errors.Is(err, ErrRestored) {
		t.Fatalf("pending waiter after Restore: %v", err)
	}
	if h.AppliedIndex() != idx {
		t.Fatalf("AppliedIndex after Restore = %d, want %d", h.AppliedIndex(), idx)
	}
	if dump(t, h) != dump(t, ref) {
		t.Fatal("restored state differs from the state at the snapshot index")
	}
	// Then the rest of the log; replaying older entries is harmless.
	mustApply(t, h, es[idx-5:]...)
	if dump(t, h) != dump(t, f) {
		t.Fatal("restored node differs after applying the rest of the log")
	}
	assertSameDB(t, h, f)
	// It survives a reopen.
	h.Close()
	h2 := openT(t, h.Dir())
	if h2.AppliedIndex() != 400 {
		t.Fatalf("AppliedIndex after reopen = %d", h2.AppliedIndex())
	}
}

func TestSnapshotToWriterIsABackup(t *testing.T) {
	ctx := context.Background()
	f := openT(t, t.TempDir())
	mustApply(t, f, workload(50)...)
	var buf bytes.Buffer
	idx, err := f.Snapshot(ctx, &buf)
	if err != nil || idx != 50 {
		t.Fatalf("Snapshot = %d, %v", idx, err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// An ordinary single-file SQLite database that passes integrity_check.
	c, err := openConn(path, 1 /* SQLITE_OPEN_READONLY */, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	rows, err := c.query("PRAGMA integrity_check")
	if err != nil || len(rows) != 1 || rows[0][0] != "ok" {
		t.Fatalf("integrity_check: %v %v", rows, err)
	}
	// No temp files left in the data directory.
	ents, _ := os.ReadDir(f.Dir())
	for _, e := range ents {
		if n := e.Name(); n != DBFile && n != DBFile+"-wal" && n != DBFile+"-shm" {
			t.Errorf("left behind: %s", n)
		}
	}
}

func TestRestoreRejectsBadFiles(t *testing.T) {
	ctx := context.Background()
	f := openT(t, t.TempDir())
	mustApply(t, f, workload(30)...)
	before := dump(t, f)
	dir := t.TempDir()

	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 500), 0o644)

	plain := filepath.Join(dir, "plain.db")
	c, err := openConn(plain, 6 /* READWRITE|CREATE */, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.exec("CREATE TABLE x(a); INSERT INTO x VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	c.close()

	truncated := filepath.Join(dir, "truncated.db")
	if _, err := f.SnapshotFile(ctx, truncated); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(truncated)
	os.WriteFile(truncated, b[:len(b)/2], 0o644)

	for _, p := range []string{garbage, plain, truncated, filepath.Join(dir, "missing.db")} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			if err := f.Restore(ctx, p); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot", err)
			}
			if dump(t, f) != before || f.AppliedIndex() != 30 {
				t.Fatal("a refused restore changed the state")
			}
		})
	}
}

// TestRestoreWhileReading: concurrent reads see the old state or the new
// one, never a mix, and never fail.
func TestRestoreWhileReading(t *testing.T) {
	ctx := context.Background()
	es := workload(120)
	src := openT(t, t.TempDir())
	mustApply(t, src, es[:60]...)
	snap := filepath.Join(t.TempDir(), "snap.db")
	if _, err := src.SnapshotFile(ctx, snap); err != nil {
		t.Fatal(err)
	}
	f := openT(t, t.TempDir())
	mustApply(t, f, es...)
	// Two valid (applied index, row count) pairs.
	state := func(g *FSM) [2]int64 {
		rs, err := g.Query(ctx, []Statement{
			st("SELECT value FROM _raftsql_meta WHERE key = 'applied_index'"),
			st("SELECT count(*) FROM log")})
		if err != nil || rs[0].Err != nil || rs[1].Err != nil {
			t.Errorf("read: %v %+v", err, rs)
			return [2]int64{}
		}
		return [2]int64{rs[0].Rows[0][0].(int64), rs[1].Rows[0][0].(int64)}
	}
	oldState, newState := state(f), state(src)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if s := state(f); s != oldState && s != newState {
					t.Errorf("read saw %v, want %v or %v", s, oldState, newState)
					return
				}
			}
		}()
	}
	if err := f.Restore(ctx, snap); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()
	if s := state(f); s != newState {
		t.Fatalf("after restore: %v, want %v", s, newState)
	}
}

// TestBackupOpensWithSQLite3: the snapshot is an ordinary database for the
// sqlite3 command-line shell (skipped when it is not installed).
func TestBackupOpensWithSQLite3(t *testing.T) {
	bin, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("sqlite3 not installed")
	}
	f := openT(t, t.TempDir())
	mustApply(t, f, workload(40)...)
	path := filepath.Join(t.TempDir(), "backup.db")
	if _, err := f.SnapshotFile(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, path, "PRAGMA integrity_check; SELECT value FROM _raftsql_meta WHERE key = 'applied_index'; SELECT count(*) > 0 FROM kv;").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	if got := string(out); got != "ok\n40\n1\n" {
		t.Fatalf("sqlite3 said %q", got)
	}
}
