package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/raftsql/raftsql/pgwire"
)

// scrape reads /metrics and parses the Prometheus text format strictly:
// every sample belongs to a family declared by # TYPE before it, no
// sample appears twice, every value is a number. It returns the samples
// by their full name with labels, as printed.
func scrape(t *testing.T, httpAddr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	out := map[string]float64{}
	types := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			f := strings.Fields(rest)
			if len(f) != 2 {
				t.Fatalf("bad TYPE line %q", line)
			}
			if _, dup := types[f[0]]; dup {
				t.Fatalf("family %s declared twice", f[0])
			}
			types[f[0]] = f[1]
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad sample line %q", line)
		}
		series, val := line[:i], line[i+1:]
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("bad value in %q", line)
		}
		name, _, _ := strings.Cut(series, "{")
		family := name
		if types[name] == "" {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suf); ok && types[base] == "histogram" {
					family = base
				}
			}
		}
		if types[family] == "" {
			t.Fatalf("sample %q has no # TYPE before it", line)
		}
		if _, dup := out[series]; dup {
			t.Fatalf("sample %s twice", series)
		}
		out[series] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetricsSeries: after queries and errors through pgx, /metrics shows
// them (connections, queries and latency by kind, errors by SQLSTATE), and
// the Raft series are there (snapshots taken, fsync histogram, lag).
func TestMetricsSeries(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *Config) { cfg.SnapshotEntries = 20 })
	c.waitLeader()
	addr := c.servers[0].HTTPAddr()
	before := scrape(t, addr)
	for _, series := range []string{
		"raftsql_term", `raftsql_role{role="leader"}`, "raftsql_commit_index", "raftsql_applied_index",
		"raftsql_apply_lag_entries", "raftsql_leader_changes_total", "raftsql_write_duration_seconds_count",
		"raftsql_raft_save_duration_seconds_count", "raftsql_snapshots_total", "raftsql_snapshot_seconds_total",
		"raftsql_pg_connections", "raftsql_pg_connections_total",
	} {
		if _, ok := before[series]; !ok {
			t.Errorf("no series %s", series)
		}
	}
	for _, k := range pgwire.QueryKinds {
		if _, ok := before[fmt.Sprintf("raftsql_queries_total{kind=%q}", k)]; !ok {
			t.Errorf("no queries_total series for kind %s before any query", k)
		}
	}
	if before[`raftsql_role{role="leader"}`] != 1 || before["raftsql_raft_save_duration_seconds_count"] < 1 {
		t.Errorf("leader role %v, log saves %v", before[`raftsql_role{role="leader"}`], before["raftsql_raft_save_duration_seconds_count"])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://u@%s/db?sslmode=disable", c.servers[0].PGAddr()))
	if err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) error {
		_, err := conn.Exec(ctx, sql, args...)
		return err
	}
	if err := exec("CREATE TABLE m (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	const inserts = 30 // > SnapshotEntries: at least one snapshot follows
	for i := range inserts {
		if err := exec("INSERT INTO m VALUES ($1, 'x')", i); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM m").Scan(&n); err != nil || n != inserts {
		t.Fatalf("count %d %v", n, err)
	}
	if err := exec("UPDATE m SET v = 'y' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := exec("DELETE FROM m WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	codeOf := func(err error) string {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return pe.Code
		}
		return fmt.Sprint(err)
	}
	if code := codeOf(exec("INSERT INTO m VALUES (1, 'dup')")); code != "23505" {
		t.Fatalf("duplicate key: %s", code)
	}
	if code := codeOf(exec("SELECT * FROM nosuchtable")); code != "42P01" {
		t.Fatalf("unknown table: %s", code)
	}

	after := scrape(t, addr)
	delta := func(series string) float64 { return after[series] - before[series] }
	for series, want := range map[string]float64{
		"raftsql_pg_connections":                                         1,
		"raftsql_pg_connections_total":                                   1,
		`raftsql_queries_total{kind="ddl"}`:                              1,
		`raftsql_queries_total{kind="insert"}`:                           inserts + 1, // and the duplicate
		`raftsql_queries_total{kind="select"}`:                           2,           // and the one that failed (simple protocol)
		`raftsql_queries_total{kind="update"}`:                           1,
		`raftsql_queries_total{kind="delete"}`:                           1,
		`raftsql_queries_total{kind="tx"}`:                               2,
		`raftsql_query_duration_seconds_count{kind="insert"}`:            inserts + 1,
		`raftsql_query_duration_seconds_bucket{kind="insert",le="+Inf"}`: inserts + 1,
		`raftsql_errors_total{sqlstate="23505"}`:                         1,
		`raftsql_errors_total{sqlstate="42P01"}`:                         1,
	} {
		if got := delta(series); got != want {
			t.Errorf("%s went up by %v, want %v", series, got, want)
		}
	}
	if after[`raftsql_query_duration_seconds_sum{kind="insert"}`] <= before[`raftsql_query_duration_seconds_sum{kind="insert"}`] {
		t.Error("insert latency sum did not grow")
	}
	if delta("raftsql_write_duration_seconds_count") < inserts || delta("raftsql_raft_save_duration_seconds_count") < inserts {
		t.Errorf("proposals %v, log saves %v: want at least %d each", delta("raftsql_write_duration_seconds_count"), delta("raftsql_raft_save_duration_seconds_count"), inserts)
	}
	if after["raftsql_applied_index"] < before["raftsql_applied_index"]+inserts {
		t.Errorf("applied index %v -> %v", before["raftsql_applied_index"], after["raftsql_applied_index"])
	}

	// Snapshots run beside the applier: poll for one. Closing the session
	// takes the connection gauge back down.
	conn.Close(ctx)
	for deadline := time.Now().Add(30 * time.Second); ; {
		m := scrape(t, addr)
		if m["raftsql_snapshots_total"] >= 1 && m["raftsql_snapshot_seconds_total"] > 0 && m["raftsql_pg_connections"] == before["raftsql_pg_connections"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshots %v (%v s), connections %v", m["raftsql_snapshots_total"], m["raftsql_snapshot_seconds_total"], m["raftsql_pg_connections"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetricsLabelsBounded: SQLSTATE labels are well-formed and capped.
func TestMetricsLabelsBounded(t *testing.T) {
	m := newMetrics()
	m.Error("42P01")
	m.Error("garbage\n{}")
	m.Error("")
	for i := range 3 * maxSQLStates {
		m.Error(fmt.Sprintf("X%04d", i))
	}
	m.Query(pgwire.QueryKind("nonsense"), time.Millisecond)
	if len(m.sqlErrors) > maxSQLStates+1 {
		t.Errorf("%d sqlstate labels", len(m.sqlErrors))
	}
	if m.sqlErrors["XX000"] != 2 || m.sqlErrors["42P01"] != 1 || m.sqlErrors["other"] == 0 {
		t.Errorf("labels %v", m.sqlErrors)
	}
	if m.queryHist[pgwire.QueryOther].count != 1 || len(m.queryHist) != len(pgwire.QueryKinds) {
		t.Errorf("an unknown kind made a new series or was lost")
	}
}
