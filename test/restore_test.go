package test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/raftsql/raftsql/test/cluster"
	_ "modernc.org/sqlite"
)

// This file proves the backup/restore part of issue 6 on real processes:
//
//	go test ./test/ -run 'TestRestore' -v      # ~1 min
//
// TestRestoreBackupRestartGarbage: a backup taken during a write load is
// consistent; a garbage restore is refused with a 4xx and changes nothing;
// restoring the backup (through a follower) replaces the state on every
// node, which survives a restart of every node.
// TestRestoreInterruptedByLeaderKill: a large restore whose leader is
// killed while the chunks go through the log leaves every node with the
// old or the new state (the same on all), never a mix; a retry succeeds.
// TestRestoreKilledAfterCommit: a leader killed right after it applied a
// restore's commit leaves the new state on every node.
// TestRestoreBootstrap: raftsqld --restore on one node of a new cluster
// loads the file on every node, once.

// restoreAnswer is the JSON answer of POST /restore.
type restoreAnswer struct {
	Code   int
	Status string `json:"status"`
	Bytes  int64  `json:"bytes"`
	Index  uint64 `json:"index"`
	Error  string `json:"error"`
}

// postRestore streams the file at path to node n's POST /restore.
func postRestore(ctx context.Context, n *cluster.Node, path string) (restoreAnswer, error) {
	f, err := os.Open(path)
	if err != nil {
		return restoreAnswer{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return restoreAnswer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.HTTPAddr+"/restore", f)
	if err != nil {
		return restoreAnswer{}, err
	}
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", "application/vnd.sqlite3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return restoreAnswer{}, fmt.Errorf("POST /restore on %s: %w", n.ID, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return restoreAnswer{}, fmt.Errorf("POST /restore on %s: %w", n.ID, err)
	}
	a := restoreAnswer{Code: resp.StatusCode}
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, fmt.Errorf("POST /restore on %s: %d %q: %w", n.ID, resp.StatusCode, raw, err)
	}
	return a, nil
}

// getBackup streams node n's GET /backup (at level) into path.
func getBackup(ctx context.Context, n *cluster.Node, level, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTPAddr+"/backup?consistency="+level, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET /backup on %s: %w", n.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET /backup on %s: %d %s", n.ID, resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tableSum is a checksum of table w (id INTEGER PRIMARY KEY, v): count,
// sum of ids, total length of v, and sum of a hash-like mix of both, so
// that any mix of two states differs from each.
const tableSumSQL = "SELECT count(*), coalesce(sum(id), 0), coalesce(sum(length(v)), 0), coalesce(sum((id * 2654435761 + length(v) * 40503 + unicode(hex(substr(v, 1, 4)))) % 1000000007), 0) FROM w"

func tableSumOf(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (string, error) {
	var a, b, c, d int64
	if err := q.QueryRow(ctx, tableSumSQL).Scan(&a, &b, &c, &d); err != nil {
		return "", err
	}
	return fmt.Sprintf("rows=%d ids=%d bytes=%d mix=%d", a, b, c, d), nil
}

// fileTableSum is tableSum of the SQLite file at path.
func fileTableSum(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("%s: integrity_check %q %v", path, check, err)
	}
	var a, b, c, d int64
	if err := db.QueryRow(tableSumSQL).Scan(&a, &b, &c, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return fmt.Sprintf("rows=%d ids=%d bytes=%d mix=%d", a, b, c, d)
}

// tableSumsOnNodes waits until the cluster is converged and returns
// tableSum of w on every running node (stale reads: the node's own state).
func tableSumsOnNodes(ctx context.Context, t *testing.T, c *cluster.Cluster) map[string]string {
	t.Helper()
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range c.Nodes() {
		if !n.Running() {
			continue
		}
		err := retry(ctx, func() error {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			conn, err := pgx.Connect(cctx, n.DSN("stale"))
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			s, err := tableSumOf(cctx, conn)
			if err != nil {
				return err
			}
			out[n.ID] = s
			return nil
		})
		if err != nil {
			t.Fatalf("table sum on %s: %v", n.ID, err)
		}
	}
	return out
}

// allEqual returns the one value of m, or fails.
func allEqual(t *testing.T, what string, m map[string]string) string {
	t.Helper()
	var v string
	for id, s := range m {
		if v == "" {
			v = s
		} else if s != v {
			t.Fatalf("%s: nodes differ: %v (at %s)", what, m, id)
		}
	}
	return v
}

// makeTableFile writes a SQLite file whose table w holds rows ids
// [from, from+rows) with blobs of size bytes (about rows*size bytes).
func makeTableFile(t *testing.T, path string, from, rows, size int) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{
		"CREATE TABLE w(id INTEGER PRIMARY KEY, v BLOB)",
		"CREATE TABLE origin(name TEXT)",
		"INSERT INTO origin VALUES ('" + filepath.Base(path) + "')",
		fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i+1 FROM n WHERE i < %d) INSERT INTO w SELECT i, randomblob(%d) FROM n", from, from+rows-1, size),
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRestoreBackupRestartGarbage(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader, followers := leaderAndFollowers(ctx, t, c)
	conn := connect(ctx, t, leader, "")
	mustExec(ctx, t, conn, "CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
	insertRange(ctx, t, c, "w", 0, 200)

	// A write load goes on during the backup.
	var acked atomic.Int64
	acked.Store(200)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	wconn := connect(ctx, t, leader, "")
	go func() {
		defer wg.Done()
		for id := 200; ; id++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := wconn.Exec(ctx, "INSERT INTO w VALUES ($1, $2)", id, fmt.Sprintf("row-%06d", id)); err != nil {
				t.Errorf("write during the backup: %v", err)
				return
			}
			acked.Store(int64(id + 1))
		}
	}()
	for acked.Load() < 260 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	dir := filepath.Dir(c.Nodes()[0].Dir)
	file := filepath.Join(dir, "during-load.db")
	before := acked.Load()
	if err := getBackup(ctx, followers[0], "linearizable", file); err != nil {
		t.Fatal(err)
	}
	after := acked.Load()
	for acked.Load() < after+50 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	// The backup opens, passes integrity_check, and holds a prefix of the
	// writes: every write acknowledged before it was asked for, none that
	// was not acknowledged once it was sent, and no gap.
	want := fileTableSum(t, file)
	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	var rows, maxID int64
	if err := db.QueryRow("SELECT count(*), max(id) FROM w").Scan(&rows, &maxID); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if rows < before || rows > after || maxID != rows-1 {
		t.Fatalf("backup holds %d rows (max id %d); acknowledged before it %d, after it %d", rows, maxID, before, after)
	}
	t.Logf("backup during the load: %s (acknowledged %d before, %d after)", want, before, after)
	live := allEqual(t, "before the restores", tableSumsOnNodes(ctx, t, c))
	if live == want {
		t.Fatal("the live table equals the backup already; the test proves nothing")
	}

	// Garbage is refused with a 4xx and a message, and changes nothing.
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("this is not a database ", 5000)), 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.db")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 2; i < len(b)/2+8192 && i < len(b); i++ {
		b[i] ^= 0x77
	}
	if err := os.WriteFile(corrupt, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{garbage, corrupt} {
		a, err := postRestore(ctx, followers[1], bad)
		if err != nil {
			t.Fatal(err)
		}
		if a.Code < 400 || a.Code >= 500 || a.Error == "" {
			t.Fatalf("restore of %s: %+v, want a 4xx with an error", filepath.Base(bad), a)
		}
		t.Logf("%s refused: %d %s", filepath.Base(bad), a.Code, a.Error)
	}
	if got := allEqual(t, "after the refused restores", tableSumsOnNodes(ctx, t, c)); got != live {
		t.Fatalf("a refused restore changed the state: %s, was %s", got, live)
	}

	// The backup restored through a follower replaces the state everywhere.
	a, err := postRestore(ctx, followers[0], file)
	if err != nil || a.Code != 200 || a.Status != "restored" || a.Index == 0 {
		t.Fatalf("restore: %+v %v", a, err)
	}
	if got := allEqual(t, "after the restore", tableSumsOnNodes(ctx, t, c)); got != want {
		t.Fatalf("after the restore: %s, want the backup's %s", got, want)
	}
	compareBackups(ctx, t, c)

	// Every node restarted: the restored state is what they come back with.
	for _, n := range c.Nodes() {
		if err := n.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes() {
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := allEqual(t, "after a restart", tableSumsOnNodes(ctx, t, c)); got != want {
		t.Fatalf("after a restart: %s, want the backup's %s", got, want)
	}
}

// killScenario starts the 3-node cluster of the kill tests with table w
// of rows rows and returns it, its leader and the table's sum.
func killScenario(ctx context.Context, t *testing.T, rows int) (*cluster.Cluster, *cluster.Node, string) {
	t.Helper()
	// Backups of ~50 MiB are compared: give the harness's requests time.
	c := startCluster(t, cluster.Options{Nodes: 3, HTTPTimeout: 30 * time.Second})
	leader, _ := leaderAndFollowers(ctx, t, c)
	conn := connect(ctx, t, leader, "")
	mustExec(ctx, t, conn, "CREATE TABLE w(id INTEGER PRIMARY KEY, v BLOB)")
	insertRange(ctx, t, c, "w", 0, rows)
	return c, leader, allEqual(t, "old state", tableSumsOnNodes(ctx, t, c))
}

// restartKilled waits for a new leader, restarts the killed node and
// waits until every node is ready.
func restartKilled(ctx context.Context, t *testing.T, c *cluster.Cluster, killed *cluster.Node) {
	t.Helper()
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if err := killed.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreInterruptedByLeaderKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, leader, oldSum := killScenario(ctx, t, 300)

	dir := filepath.Dir(c.Nodes()[0].Dir)
	big := filepath.Join(dir, "big.db")
	makeTableFile(t, big, 1000, 48*16, 64<<10) // ~48 MiB: 48 chunks
	newSum := fileTableSum(t, big)

	st, err := leader.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := st.AppliedIndex
	done := make(chan restoreAnswer, 1)
	go func() {
		a, err := postRestore(ctx, leader, big)
		if err != nil {
			a.Error = err.Error()
		}
		done <- a
	}()
	// Kill the leader once the first chunks are applied.
	err = retry(ctx, func() error {
		st, err := leader.Status(ctx)
		if err != nil {
			return err
		}
		if st.AppliedIndex < start+3 {
			return fmt.Errorf("applied %d, waiting for %d", st.AppliedIndex, start+3)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("restore through the killed leader: %+v", <-done)
	restartKilled(ctx, t, c, leader)
	got := allEqual(t, "after the interrupted restore", tableSumsOnNodes(ctx, t, c))
	switch got {
	case oldSum:
		t.Logf("every node kept the old state: %s", got)
	case newSum:
		t.Logf("the restore committed before the kill; every node has the new state: %s", got)
	default:
		t.Fatalf("a mix: %s; old %s, new %s", got, oldSum, newSum)
	}
	// Whatever was staged is the same on every node too (invariant 5).
	compareBackups(ctx, t, c)

	// A retry succeeds.
	newLeader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := postRestore(ctx, newLeader, big)
	if err != nil || a.Code != 200 {
		t.Fatalf("retried restore: %+v %v", a, err)
	}
	if got := allEqual(t, "after the retry", tableSumsOnNodes(ctx, t, c)); got != newSum {
		t.Fatalf("after the retry: %s, want %s", got, newSum)
	}
	compareBackups(ctx, t, c)
}

func TestRestoreBootstrap(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "seed.db")
	makeTableFile(t, file, 1, 300, 1000)
	want := fileTableSum(t, file)
	c := startClusterWith(t, cluster.Options{Nodes: 3}, func(c *cluster.Cluster) {
		c.Node("n1").SetEnv("RAFTSQL_RESTORE=" + file)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if got := allEqual(t, "bootstrapped", tableSumsOnNodes(ctx, t, c)); got != want {
		t.Fatalf("bootstrapped from --restore: %s, want %s", got, want)
	}
	for _, n := range c.Nodes() {
		var name string
		conn := connect(ctx, t, n, "stale")
		if err := conn.QueryRow(ctx, "SELECT name FROM origin").Scan(&name); err != nil || name != "seed.db" {
			t.Fatalf("%s: origin %q %v", n.ID, name, err)
		}
		conn.Close(ctx)
	}
	if _, err := os.Stat(filepath.Join(c.Node("n1").DataDir, "restore-pending")); !os.IsNotExist(err) {
		t.Fatalf("restore-pending left on n1: %v", err)
	}
	// A write after it, then n1 restarts with --restore still set: the
	// file is not loaded again.
	l, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(ctx, t, l, "")
	mustExec(ctx, t, conn, "INSERT INTO w VALUES (100000, 'after')")
	after := allEqual(t, "after a write", tableSumsOnNodes(ctx, t, c))
	n1 := c.Node("n1")
	if err := n1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := allEqual(t, "after n1 restarted", tableSumsOnNodes(ctx, t, c)); got != after {
		t.Fatalf("after n1 restarted with --restore: %s, want %s", got, after)
	}
}

// TestRestoreKilledAfterCommit: the leader is SIGKILLed the moment it has
// applied a restore's commit — possibly before its client got the answer.
// The commit was committed, so once a new leader is elected and the old
// one restarted, every node has the new state (the other outcome of an
// interrupted restore, besides TestRestoreInterruptedByLeaderKill's).
func TestRestoreKilledAfterCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, leader, oldSum := killScenario(ctx, t, 100)

	big := filepath.Join(filepath.Dir(c.Nodes()[0].Dir), "commit.db")
	makeTableFile(t, big, 5000, 12*16, 64<<10) // ~12 MiB: 12 chunks
	newSum := fileTableSum(t, big)
	if newSum == oldSum {
		t.Fatal("the file holds the old state")
	}

	logf, err := os.Open(leader.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	if _, err := logf.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	done := make(chan restoreAnswer, 1)
	go func() {
		a, err := postRestore(ctx, leader, big)
		if err != nil {
			a.Error = err.Error()
		}
		done <- a
	}()
	// The fsm logs this line right after it swapped the file in.
	const applied = "database replaced by a restore entry"
	var seen []byte
	buf := make([]byte, 64<<10)
	for !bytes.Contains(seen, []byte(applied)) {
		n, err := logf.Read(buf)
		seen = append(seen, buf[:n]...)
		if len(seen) > 1<<20 {
			seen = seen[len(seen)-4096:]
		}
		if n == 0 || err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the leader never applied the restore: %v", ctx.Err())
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("the client of the killed leader got: %+v", <-done)
	restartKilled(ctx, t, c, leader)
	if got := allEqual(t, "after the kill", tableSumsOnNodes(ctx, t, c)); got != newSum {
		t.Fatalf("after a kill that followed the commit: %s, want the new state %s (old %s)", got, newSum, oldSum)
	}
	compareBackups(ctx, t, c)
}
