package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftsql/raftsql/backup"
	"github.com/raftsql/raftsql/fsm"
	_ "modernc.org/sqlite"
)

// makeSQLiteFile writes a SQLite database of about mib MiB: table big
// with rows of 64 KiB random blobs, and table meta(k, v) with tag.
func makeSQLiteFile(t *testing.T, path string, mib int, tag string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts := []string{
		"CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB NOT NULL)",
		"CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT)",
		fmt.Sprintf("INSERT INTO meta VALUES ('tag', '%s')", tag),
		fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d) INSERT INTO big SELECT i, randomblob(65536) FROM n", mib*16),
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
}

// postRestore posts the file at path to node i's /restore.
func (c *testCluster) postRestore(i int, path string) (int, map[string]any) {
	c.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	code, body := httpDo(c.t, "POST", "http://"+c.servers[i].HTTPAddr()+"/restore", b)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		c.t.Fatalf("restore answer %d %q: %v", code, body, err)
	}
	return code, m
}

// waitSameState waits until every node applied what the most advanced
// one had, then requires the same checksum everywhere at the same index
// (invariant 5), retrying while entries keep coming.
func (c *testCluster) waitSameState(ctx context.Context) {
	c.t.Helper()
	for {
		var target uint64
		for _, s := range c.servers {
			if s != nil {
				target = max(target, s.fsm.AppliedIndex())
			}
		}
		sums := map[uint64][][32]byte{}
		for _, s := range c.servers {
			if s == nil {
				continue
			}
			if err := s.fsm.WaitApplied(ctx, target); err != nil {
				c.t.Fatalf("node %s did not apply %d: %v", s.cfg.ID, target, err)
			}
			i, sum, err := s.fsm.Checksum(ctx)
			if err != nil {
				c.t.Fatal(err)
			}
			sums[i] = append(sums[i], sum)
		}
		if len(sums) == 1 {
			for i, ss := range sums {
				for _, sum := range ss {
					if sum != ss[0] {
						c.t.Fatalf("replicas differ at index %d", i)
					}
				}
			}
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("replicas never at the same index: %v", sums)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestRestoreLargerThanOneEntry: a 12 MiB file (more than the 8 MiB one
// proposal may carry) restored through a follower and then through the
// leader replaces the state on every node, identically.
func TestRestoreLargerThanOneEntry(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.waitLeader()
	follower := (lead + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute) // -race is slow
	defer cancel()
	conn := c.connect(lead, "")
	if _, err := conn.Exec(ctx, "CREATE TABLE old(id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big.db")
	makeSQLiteFile(t, big, 12, "big")
	st, _ := os.Stat(big)
	if st.Size() <= 8<<20 {
		t.Fatalf("test file only %d bytes", st.Size())
	}

	for _, target := range []int{follower, lead} {
		code, m := c.postRestore(target, big)
		if code != 200 || m["status"] != "restored" || m["bytes"] != float64(st.Size()) || m["index"] == float64(0) {
			t.Fatalf("restore through node %d: %d %v", target+1, code, m)
		}
		c.waitSameState(ctx)
		for i := range 3 {
			var n, size int64
			q := c.connect(i, "")
			if err := q.QueryRow(ctx, "SELECT count(*), sum(length(v)) FROM big").Scan(&n, &size); err != nil {
				t.Fatalf("node %d: %v", i+1, err)
			}
			if n != 12*16 || size != 12*16*65536 {
				t.Fatalf("node %d has %d rows, %d bytes", i+1, n, size)
			}
			if _, err := q.Exec(ctx, "SELECT * FROM old"); err == nil {
				t.Fatalf("node %d still has the old table", i+1)
			}
			q.Close(ctx)
		}
		// No staging is left, and the temp copies are gone.
		for i, s := range c.servers {
			rs, err := s.fsm.Query(ctx, []fsm.Statement{{SQL: "SELECT count(*) FROM sqlite_schema WHERE name = '_raftsql_restore_chunks'"}})
			if err != nil || rs[0].Rows[0][0] != int64(0) {
				t.Fatalf("node %d kept the staging table: %v %v", i+1, rs, err)
			}
			left, _ := filepath.Glob(filepath.Join(backup.TempDir(c.cfgs[i].DataDir), "restore-*"))
			if len(left) != 0 {
				t.Fatalf("node %d kept %v", i+1, left)
			}
		}
		// Every node snapshots right after the restore and compacts
		// its chunks out of the log.
		commit := uint64(m["index"].(float64))
		for i, s := range c.servers {
			for {
				first, err := s.store.FirstIndex()
				if err != nil {
					t.Fatal(err)
				}
				if first > commit {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("node %d: the log still starts at %d, not past the restore at %d", i+1, first, commit)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if _, err := conn.Exec(ctx, "INSERT INTO meta VALUES ('after', 'x')"); err != nil {
			t.Fatalf("write after restore: %v", err)
		}
	}
}

// TestRestoreRefusals: bad files get a 4xx with a clear message, and the
// state stays as it was.
func TestRestoreRefusals(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := c.connect(lead, "")
	if _, err := conn.Exec(ctx, "CREATE TABLE keep(id INTEGER PRIMARY KEY); INSERT INTO keep VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	makeSQLiteFile(t, good, 1, "good")
	data, _ := os.ReadFile(good)
	trig := filepath.Join(dir, "trig.db")
	db, err := sql.Open("sqlite", trig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE x(a); CREATE TRIGGER tr AFTER INSERT ON x BEGIN SELECT RAISE(ROLLBACK, 'no'); END;"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	trigData, _ := os.ReadFile(trig)
	corrupt := append([]byte(nil), data...)
	for i := 4096 * 3; i < 4096*4; i++ {
		corrupt[i] ^= 0x5a
	}
	for name, tc := range map[string]struct {
		body []byte
		want string
	}{
		"garbage":   {[]byte("not a database at all"), "not a SQLite database"},
		"empty":     {nil, "empty"},
		"truncated": {data[:len(data)/3], "integrity"},
		"corrupt":   {corrupt, "integrity"},
		"trigger":   {trigData, "cannot be replicated"},
	} {
		code, body := httpDo(t, "POST", "http://"+c.servers[(lead+1)%3].HTTPAddr()+"/restore", tc.body)
		var m map[string]string
		_ = json.Unmarshal(body, &m)
		if code != 400 || !strings.Contains(m["error"], tc.want) {
			t.Errorf("%s: %d %s, want 400 with %q", name, code, body, tc.want)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM keep").Scan(&n); err != nil || n != 1 {
		t.Fatalf("state changed by refused restores: %d %v", n, err)
	}
}

// TestRestoreAtStart: --restore on one node of a new cluster loads the
// file on every node, once; a bad file keeps the node from starting and
// leaves its data directory fresh.
func TestRestoreAtStart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "boot.db")
	makeSQLiteFile(t, file, 2, "boot")
	bad := filepath.Join(dir, "bad.db")
	if err := os.WriteFile(bad, bytes.Repeat([]byte("x"), 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	// A bad file: the node does not start, and no marker is left.
	badCfg := Config{ID: "x", DataDir: t.TempDir(), PGAddr: freeAddr(t), RaftAddr: freeAddr(t), HTTPAddr: freeAddr(t),
		Restore: bad, Logger: testLogger(t, "x")}
	if s, err := Start(context.Background(), badCfg); err == nil || !errors.Is(err, backup.ErrNotSQLite) {
		if s != nil {
			s.Close(context.Background())
		}
		t.Fatalf("start with a bad --restore file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(badCfg.DataDir, restorePendingFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused --restore left its marker: %v", err)
	}
	c := startClusterWith(t, 3, func(cfg *Config) {
		if cfg.ID == "1" {
			cfg.Restore = file
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lead := c.waitLeader()
	waitReady := func(i int) {
		for {
			if err := c.servers[i].ready(); err == nil {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("node %d not ready: %v", i+1, c.servers[i].ready())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	waitReady(0)
	if _, err := os.Stat(filepath.Join(c.cfgs[0].DataDir, restorePendingFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker left after the restore: %v", err)
	}
	conn := c.connect(lead, "")
	var tag string
	if err := conn.QueryRow(ctx, "SELECT v FROM meta WHERE k = 'tag'").Scan(&tag); err != nil || tag != "boot" {
		t.Fatalf("restored tag %q %v", tag, err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO meta VALUES ('after', 'x')"); err != nil {
		t.Fatal(err)
	}
	c.waitSameState(ctx)
	// A restart with the flag still set restores nothing again.
	c.stop(0)
	c.start(0)
	c.waitLeader()
	waitReady(0)
	c.waitSameState(ctx)
	var n int
	q := c.connect(0, "")
	if err := q.QueryRow(ctx, "SELECT count(*) FROM meta WHERE k = 'after'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("a restart restored again: %d %v", n, err)
	}
}

// TestRestoreMarkerRetried: a --restore interrupted by a crash (the marker
// is still there) is completed at the next start; one that was applied
// before the crash is not applied again.
func TestRestoreMarkerRetried(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "boot.db")
	makeSQLiteFile(t, file, 1, "retry")
	c := startCluster(t, 1)
	c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := c.connect(0, "")
	if _, err := conn.Exec(ctx, "CREATE TABLE pre(id INTEGER)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	// restartWithMarker stops the node, leaves the marker of restore
	// 0x1234 and temp copies of a restore and a backup as a crash would,
	// starts it and waits until it is ready; the temp copies are gone.
	restartWithMarker := func() {
		t.Helper()
		c.stop(0)
		if err := writeRestoreMarker(filepath.Join(c.cfgs[0].DataDir, restorePendingFile), 0x1234, file); err != nil {
			t.Fatal(err)
		}
		tmp := backup.TempDir(c.cfgs[0].DataDir)
		stale := []string{filepath.Join(tmp, "restore-1.db"), filepath.Join(tmp, "restore-1.db-journal"), filepath.Join(tmp, "backup-1.db")}
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, p := range stale {
			if err := os.WriteFile(p, []byte("stale"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		c.start(0)
		for c.servers[0].ready() != nil {
			if ctx.Err() != nil {
				t.Fatalf("not ready: %v", c.servers[0].ready())
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, p := range stale {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("stale temp file %s left at start: %v", p, err)
			}
		}
	}
	// As if the node crashed right after writing the marker.
	restartWithMarker()
	conn = c.connect(0, "")
	var tag string
	if err := conn.QueryRow(ctx, "SELECT v FROM meta WHERE k = 'tag'").Scan(&tag); err != nil || tag != "retry" {
		t.Fatalf("the pending restore was not completed: %q %v", tag, err)
	}
	if id, err := c.servers[0].fsm.LastRestore(ctx); err != nil || id != 0x1234 {
		t.Fatalf("LastRestore %x %v", id, err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO meta VALUES ('after', 'x')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	// A crash after the commit but before the marker was removed.
	restartWithMarker()
	conn = c.connect(0, "")
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM meta WHERE k = 'after'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the applied restore ran again: %d %v", n, err)
	}
}

// TestRestoreStatus: each restore error gets its HTTP status, including
// the shapes upload builds (a body over the disk-derived limit is 507
// whether Content-Length said so or the stream ran over), and a second
// restore on a busy node is refused.
func TestRestoreStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("%w: the file has 9 bytes", errNoSpace), 507},
		{fmt.Errorf("%w: %w (3× free)", errNoSpace, backup.ErrTooLarge), 507},
		{backup.ErrTooLarge, 413},
		{errRestoreBusy, 409},
		{fmt.Errorf("%w: %w", errRestoreRefused, backup.ErrCorrupt), 400},
		{fmt.Errorf("reading the body: %w", backup.ErrEmpty), 400},
		{backup.ErrNotSQLite, 400},
		{fmt.Errorf("proposing the commit: %w", context.DeadlineExceeded), 503},
	} {
		if got := restoreStatus(tc.err); got != tc.want {
			t.Errorf("restoreStatus(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	rs := newRestorer(nil)
	if err := rs.acquire(); err != nil {
		t.Fatal(err)
	}
	if err := rs.acquire(); !errors.Is(err, errRestoreBusy) {
		t.Fatalf("second acquire: %v, want errRestoreBusy", err)
	}
	rs.release()
	if err := rs.acquire(); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}

// TestRestoreMarker: the --restore marker round-trips, and a damaged one
// is an error that says so instead of a restore of the wrong file.
func TestRestoreMarker(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, restorePendingFile)
	if err := writeRestoreMarker(path, 0xabc, "x.db"); err != nil {
		t.Fatal(err)
	}
	id, src, err := readRestoreMarker(path)
	if abs, _ := filepath.Abs("x.db"); err != nil || id != 0xabc || src != abs {
		t.Fatalf("read back %x %q %v, want abc %q", id, src, err, abs)
	}
	for _, bad := range []string{"", "abc\n", "zz\n/x.db\n", "0\n/x.db\n"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := readRestoreMarker(path); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("marker %q: %v, want damaged", bad, err)
		}
	}
}
