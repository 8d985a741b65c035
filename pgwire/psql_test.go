package pgwire_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10", "PGSSLMODE=prefer")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// TestPsql drives psql 15 over TCP: queries, transactions and the
// backslash commands that read pg_catalog.
func TestPsql(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql not installed")
	}
	s := startServer(t, nil)
	script := `CREATE TABLE t (id SERIAL PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE, v DOUBLE PRECISION, b BOOLEAN DEFAULT true);
CREATE INDEX t_v ON t(v);
BEGIN;
INSERT INTO t(name, v) VALUES ('a', 1.5), ('b', 2);
COMMIT;
SELECT id, name, v, b FROM t ORDER BY id;
\dt
\d t
\d+ t
\db
\l
\dn
\di
SHOW transaction_read_only;
SELECT pg_is_in_recovery(), current_database(), current_user;
`
	file := filepath.Join(t.TempDir(), "s.sql")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	out := runTool(t, "psql", s.url(""), "-X", "-v", "ON_ERROR_STOP=1", "-f", file)
	for _, want := range []string{
		"CREATE TABLE", "INSERT 0 2", "COMMIT",
		"  1 | a    | 1.5 | t",
		" public | t    | table | tester",
		`Table "public.t"`,
		" name   | character varying(20) |           | not null |",
		" v      | double precision      |",
		`"t_pkey" PRIMARY KEY, btree (id)`,
		`"t_name_key" UNIQUE CONSTRAINT, btree (name)`,
		`"t_v" btree (v)`,
		" testdb | tester | UTF8",
		" public | pg_database_owner",
		" public | t_v  | index | tester | t",
		"| Storage  |",
		"Access method: heap",
		"List of tablespaces",
		" transaction_read_only \n-----------------------\n off",
		" f                 | testdb           | tester",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("psql output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("psql output:\n%s", out)
	}
	// Errors keep the session usable: a failed statement, then a good one.
	out2, _ := exec.Command("psql", s.url(""), "-X", "-c", "select * from nosuch", "-c", "select 41+1 as x").CombinedOutput()
	if !strings.Contains(string(out2), `no such table`) || !strings.Contains(string(out2), " 42") {
		t.Errorf("psql errors:\n%s", out2)
	}
}

// TestPgbench runs pgbench's custom-script mode in all three protocols.
func TestPgbench(t *testing.T) {
	if _, err := exec.LookPath("pgbench"); err != nil {
		t.Skip("pgbench not installed")
	}
	s := startServer(t, nil)
	c := connect(t, s, "")
	if _, err := c.Exec(ctxT(t), "create table t (id integer primary key, name text, v double precision)"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "bench.sql")
	script := "\\set id random(1, 1000)\nselect name from t where id = :id;\ninsert into t(name, v) values ('bench', :id);\n"
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, mode := range []string{"simple", "extended", "prepared"} {
		out := runTool(t, "pgbench", "-n", "-f", file, "-M", mode, "-t", "20", "-c", "2", s.url(""))
		if !strings.Contains(out, "number of transactions actually processed: 40/40") {
			t.Fatalf("pgbench -M %s:\n%s", mode, out)
		}
		total += 40
	}
	var n int
	if err := c.QueryRow(ctxT(t), "select count(*) from t").Scan(&n); err != nil || n != total {
		t.Fatalf("rows = %d, want %d (%v)", n, total, err)
	}
}

// TestNodePostgres runs testdata/node_crud.js with node-postgres when node
// and the pg module are available (NODE_PATH or testdata/node_modules).
func TestNodePostgres(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	if err := exec.Command("node", "-e", "require('pg')").Run(); err != nil {
		if _, serr := os.Stat("testdata/node_modules/pg"); serr != nil {
			t.Skip("node module pg not installed (npm install pg in pgwire/testdata, or set NODE_PATH)")
		}
	}
	s := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "testdata/node_crud.js")
	cmd.Env = append(os.Environ(), "PGURL="+s.url(""))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "node-postgres CRUD ok") {
		t.Fatalf("node: %v\n%s", err, out)
	}
}
