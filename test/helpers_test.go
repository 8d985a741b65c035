package test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/raftsql/raftsql/test/cluster"
)

var levels = []string{"linearizable", "lease", "stale"}

// connect opens a pgx connection to node n with the given startup read
// consistency ("" for the default); it is closed when the test ends.
func connect(ctx context.Context, t *testing.T, n *cluster.Node, level string) *pgx.Conn {
	t.Helper()
	var conn *pgx.Conn
	err := retry(ctx, func() error {
		var err error
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err = pgx.Connect(cctx, n.DSN(level))
		return err
	})
	if err != nil {
		t.Fatalf("connect to %s (%s): %v", n.ID, level, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// retry calls f until it succeeds or ctx ends, polling every 100 ms. The
// error names the last failure that was not caused by ctx ending.
func retry(ctx context.Context, f func() error) error {
	var last error
	for {
		err := f()
		if err == nil {
			return nil
		}
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// mustExec runs a statement that must succeed.
func mustExec(ctx context.Context, t *testing.T, conn *pgx.Conn, sql string, args ...any) pgconn.CommandTag {
	t.Helper()
	tag, err := conn.Exec(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return tag
}

// dump renders every row of query as text lines, for comparing replicas.
func dump(ctx context.Context, conn *pgx.Conn, query string) ([]string, error) {
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%v", vals))
	}
	return out, rows.Err()
}

// compareReplicas waits for the replicas to converge, then dumps each
// query on every node (stale reads: the node's own state) and requires the
// dumps to be identical. It also compares /backup files when the nodes
// serve them. It returns the dumps of the first node.
func compareReplicas(ctx context.Context, t *testing.T, c *cluster.Cluster, queries ...string) map[string][]string {
	t.Helper()
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	first := map[string][]string{}
	for i, n := range c.Nodes() {
		if !n.Running() {
			continue
		}
		conn := connect(ctx, t, n, "stale")
		for _, q := range queries {
			d, err := dump(ctx, conn, q)
			if err != nil {
				t.Fatalf("%s on %s: %v", q, n.ID, err)
			}
			if i == 0 {
				first[q] = d
				continue
			}
			if !slices.Equal(first[q], d) {
				t.Errorf("replicas differ for %q:\n%s: %v\n%s: %v", q, c.Nodes()[0].ID, first[q], n.ID, d)
			}
		}
		conn.Close(ctx)
	}
	compareBackups(ctx, t, c)
	return first
}

// maskHeaderCounters returns a copy of a SQLite file with the two header
// fields that count local commits zeroed: the file change counter (bytes
// 24–27) and the version-valid-for number (92–95). A node that restarted
// and replayed its log committed a different number of times; the pages
// themselves must still be identical.
func maskHeaderCounters(b []byte) []byte {
	out := append([]byte(nil), b...)
	if len(out) >= 100 && string(out[:16]) == "SQLite format 3\x00" {
		copy(out[24:28], []byte{0, 0, 0, 0})
		copy(out[92:96], []byte{0, 0, 0, 0})
	}
	return out
}

// compareBackups requires GET /backup to give the same bytes on every node
// once quiet (invariant 5), if the endpoint exists; only the header's
// commit counters may differ (see maskHeaderCounters).
func compareBackups(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	t.Helper()
	sums := map[string]string{}
	files := map[string][]byte{}
	for _, n := range c.Nodes() {
		if !n.Running() {
			continue
		}
		b, err := n.Backup(ctx)
		if errors.Is(err, cluster.ErrUnsupported) {
			t.Logf("GET /backup not served (%v); replicas compared by query dumps only", err)
			return
		}
		if err != nil {
			t.Errorf("GET /backup on %s: %v", n.ID, err)
			return
		}
		files[n.ID] = b
		sums[n.ID] = fmt.Sprintf("%x (%d bytes)", sha256.Sum256(maskHeaderCounters(b)), len(b))
	}
	var ref string
	for _, n := range c.Nodes() {
		s, ok := sums[n.ID]
		if !ok {
			continue
		}
		if ref == "" {
			ref = s
		} else if s != ref {
			// Keep the files to compare (sqlite3 x.db .dump, or cmp -l).
			dir := filepath.Dir(c.Nodes()[0].Dir)
			for id, b := range files {
				os.WriteFile(filepath.Join(dir, "backup-"+id+".db"), b, 0o644)
			}
			t.Errorf("/backup differs between replicas once quiet: %v (files kept as backup-<node>.db)", sums)
			return
		}
	}
	t.Logf("/backup identical on every node: %s", ref)
}

// leaderAndFollowers returns the agreed leader and the other nodes.
func leaderAndFollowers(ctx context.Context, t *testing.T, c *cluster.Cluster) (*cluster.Node, []*cluster.Node) {
	t.Helper()
	l, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var fs []*cluster.Node
	for _, n := range c.Nodes() {
		if n != l {
			fs = append(fs, n)
		}
	}
	return l, fs
}

func shortErr(err error) string {
	s := fmt.Sprint(err)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		s = s[:i]
	}
	return s
}
