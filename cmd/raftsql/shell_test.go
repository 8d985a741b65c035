package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// fakeConn is an in-process sqlConn: handle answers each Exec and every
// query sent is recorded.
type fakeConn struct {
	handle func(sql string) ([]result, error)
	sent   []string
	closed bool
}

func (f *fakeConn) Exec(_ context.Context, sql string) ([]result, error) {
	f.sent = append(f.sent, sql)
	return f.handle(sql)
}
func (f *fakeConn) Param(name string) string {
	if name == "server_version" {
		return "15.0"
	}
	return ""
}
func (f *fakeConn) Database() string            { return "db" }
func (f *fakeConn) Close(context.Context) error { f.closed = true; return nil }

func rowsResult(cols []column, rows ...[]string) result {
	r := result{Columns: cols, HasRows: true, Tag: "SELECT"}
	for _, row := range rows {
		var vals [][]byte
		for _, v := range row {
			if v == "<null>" {
				vals = append(vals, nil)
			} else {
				vals = append(vals, []byte(v))
			}
		}
		r.Rows = append(r.Rows, vals)
	}
	return r
}

// sqlFake answers a tiny fixed set of statements the way PostgreSQL would.
func sqlFake(sql string) ([]result, error) {
	var out []result
	for _, stmt := range strings.Split(sql, ";") {
		stmt = strings.TrimSpace(stmt)
		switch {
		case stmt == "":
		case strings.HasPrefix(stmt, "select 1"):
			out = append(out, rowsResult([]column{{"?column?", 23}}, []string{"1"}))
		case strings.HasPrefix(stmt, "select name"):
			out = append(out, rowsResult([]column{{"name", 25}}, []string{"a"}, []string{"<null>"}))
		case strings.HasPrefix(stmt, "insert"):
			out = append(out, result{Tag: "INSERT 0 1"})
		case strings.HasPrefix(stmt, "begin"):
			out = append(out, result{Tag: "BEGIN"})
		case strings.HasPrefix(stmt, "commit"):
			out = append(out, result{Tag: "COMMIT"})
		default:
			return out, &pgconn.PgError{Severity: "ERROR", Code: "42601", Message: "syntax error at or near \"" + strings.Fields(stmt)[0] + "\"", Position: 1}
		}
	}
	return out, nil
}

// stepClock advances by step on every call, so \timing prints a known value.
// It is safe for concurrent use.
func stepClock(step time.Duration) func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(step)
		return t
	}
}

func newTestShell(handle func(string) ([]result, error)) (*shell, *fakeConn, *strings.Builder, *strings.Builder) {
	fc := &fakeConn{handle: handle}
	var out, errOut strings.Builder
	return &shell{conn: fc, out: &out, errOut: &errOut, now: stepClock(1500 * time.Microsecond)}, fc, &out, &errOut
}

func TestShellScript(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		sent    []string
		out     string
		errOut  string
		wantErr bool
	}{
		{
			name:   "statements across lines",
			script: "select 1\n;insert into t values (1);\nselect name from t;",
			sent:   []string{"select 1\n;", "insert into t values (1);", "select name from t;"},
			out:    " ?column? \n----------\n        1\n(1 row)\n\nINSERT 0 1\n name \n------\n a\n \n(2 rows)\n\n",
		},
		{
			name:   "text without final semicolon is sent at the end",
			script: "insert into t values (1)",
			sent:   []string{"insert into t values (1)"},
			out:    "INSERT 0 1\n",
		},
		{
			name:    "stops at the first error",
			script:  "insert into t values (1);\nbogus;\ninsert into t values (2);",
			sent:    []string{"insert into t values (1);", "bogus;"},
			out:     "INSERT 0 1\n",
			errOut:  "ERROR:  syntax error at or near \"bogus\"\nLINE 1: bogus;\n        ^\n",
			wantErr: true,
		},
		{
			name:   "timing",
			script: "\\timing on\ninsert into t values (1);\n\\timing\ninsert into t values (1);",
			sent:   []string{"insert into t values (1);", "insert into t values (1);"},
			out:    "Timing is on.\nINSERT 0 1\nTime: 1.500 ms\nTiming is off.\nINSERT 0 1\n",
		},
		{
			name:    "bad timing value",
			script:  "\\timing maybe",
			errOut:  "unrecognized value \"maybe\" for \"\\timing\": Boolean expected\n",
			wantErr: true,
		},
		{
			name:   "quit stops the script",
			script: "insert into t values (1);\n\\q\ninsert into t values (2);",
			sent:   []string{"insert into t values (1);"},
			out:    "INSERT 0 1\n",
		},
		{
			name:    "unknown command",
			script:  "\\frob",
			errOut:  "invalid command \\frob. Try \\? for help.\n",
			wantErr: true,
		},
		{
			name:   "backslash inside a string is SQL",
			script: "select 1 as 'a\n\\q';",
			sent:   []string{"select 1 as 'a\n\\q';"},
			out:    " ?column? \n----------\n        1\n(1 row)\n\n",
		},
		{
			name:   "reset buffer",
			script: "insert into t\n\\r\nselect 1;",
			sent:   []string{"select 1;"},
			out:    "Query buffer reset (cleared).\n ?column? \n----------\n        1\n(1 row)\n\n",
		},
		{
			name:   "expanded display",
			script: "\\x\nselect 1;\n\\x off\nselect 1;",
			sent:   []string{"select 1;", "select 1;"},
			out:    "Expanded display is on.\n-[ RECORD 1 ]\n?column? | 1\n\nExpanded display is off.\n ?column? \n----------\n        1\n(1 row)\n\n",
		},
		{
			name:   "\\g sends the buffer",
			script: "insert into t\n values (1)\n\\g\n\\g",
			sent:   []string{"insert into t\n values (1)"},
			out:    "INSERT 0 1\n",
		},
		{
			name:    "\\i without a file",
			script:  "\\i",
			errOut:  "\\i: missing required argument\n",
			wantErr: true,
		},
		{
			name:    "the rest of a line is skipped after an error",
			script:  "bogus; insert into t values (1);",
			sent:    []string{"bogus;"},
			errOut:  "ERROR:  syntax error at or near \"bogus\"\nLINE 1: bogus;\n        ^\n",
			wantErr: true,
		},
		{
			name:    "VERBOSITY verbose",
			script:  "\\set VERBOSITY verbose\nbogus;",
			sent:    []string{"bogus;"},
			errOut:  "ERROR:  42601: syntax error at or near \"bogus\"\nLINE 1: bogus;\n        ^\n",
			wantErr: true,
		},
		{
			name:    "VERBOSITY terse",
			script:  "\\set VERBOSITY terse\nbogus;",
			sent:    []string{"bogus;"},
			errOut:  "ERROR:  syntax error at or near \"bogus\"\n",
			wantErr: true,
		},
		{
			name:    "bad VERBOSITY",
			script:  "\\set VERBOSITY loud",
			errOut:  "unrecognized value \"loud\" for \"VERBOSITY\"\nAvailable values are: default, verbose, terse.\n",
			wantErr: true,
		},
		{
			name:    "ON_ERROR_STOP off runs on and still fails",
			script:  "\\set ON_ERROR_STOP off\nbogus;\ninsert into t values (2);\n\\set\n\\unset ON_ERROR_STOP\nbogus;\ninsert into t values (3);",
			sent:    []string{"bogus;", "insert into t values (2);", "bogus;"},
			out:     "INSERT 0 1\nON_ERROR_STOP = 'off'\n",
			errOut:  strings.Repeat("ERROR:  syntax error at or near \"bogus\"\nLINE 1: bogus;\n        ^\n", 2),
			wantErr: true,
		},
		{
			name:    "errverbose shows the SQLSTATE",
			script:  "\\errverbose\nbogus;",
			sent:    []string{"bogus;"},
			out:     "There is no previous error.\n",
			errOut:  "ERROR:  syntax error at or near \"bogus\"\nLINE 1: bogus;\n        ^\n",
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh, fc, out, errOut := newTestShell(sqlFake)
			err := sh.runScript(context.Background(), strings.NewReader(tt.script))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrStatementFailed) {
				t.Errorf("err %v does not wrap ErrStatementFailed", err)
			}
			if strings.Join(fc.sent, "|") != strings.Join(tt.sent, "|") {
				t.Errorf("sent %q, want %q", fc.sent, tt.sent)
			}
			if out.String() != tt.out {
				t.Errorf("stdout:\n%q\nwant:\n%q", out.String(), tt.out)
			}
			if errOut.String() != tt.errOut {
				t.Errorf("stderr:\n%q\nwant:\n%q", errOut.String(), tt.errOut)
			}
		})
	}
}

func TestShellErrVerbose(t *testing.T) {
	sh, _, out, _ := newTestShell(sqlFake)
	_ = sh.runScript(context.Background(), strings.NewReader("bogus;"))
	out.Reset()
	if err := sh.meta(context.Background(), `\errverbose`); err != nil {
		t.Fatal(err)
	}
	if want := "ERROR:  42601: syntax error at or near \"bogus\"\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestShellCommandIsOneQuery(t *testing.T) {
	sh, fc, out, _ := newTestShell(sqlFake)
	if err := sh.runCommand(context.Background(), "begin; insert into t values (1); commit"); err != nil {
		t.Fatal(err)
	}
	if len(fc.sent) != 1 {
		t.Fatalf("sent %d queries, want 1: %q", len(fc.sent), fc.sent)
	}
	if want := "BEGIN\nINSERT 0 1\nCOMMIT\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// catalogFake answers the \dt and \d catalog queries with what
// PostgreSQL 15 returned for `t(id int primary key, name text not null)`.
func catalogFake(sql string) ([]result, error) {
	switch {
	case strings.Contains(sql, `as "Schema"`):
		if strings.Contains(sql, "'^(nomatch)$'") {
			return []result{rowsResult([]column{{"Schema", 19}, {"Name", 19}, {"Type", 25}, {"Owner", 19}})}, nil
		}
		return []result{rowsResult([]column{{"Schema", 19}, {"Name", 19}, {"Type", 25}, {"Owner", 19}}, []string{"public", "t", "table", "postgres"})}, nil
	case strings.Contains(sql, "'^(t)$'"):
		return []result{rowsResult([]column{{"oid", 26}, {"nspname", 19}, {"relname", 19}}, []string{"16385", "public", "t"})}, nil
	case strings.Contains(sql, "OPERATOR(pg_catalog.~)"):
		return []result{rowsResult([]column{{"oid", 26}, {"nspname", 19}, {"relname", 19}})}, nil
	case strings.Contains(sql, "pg_catalog.pg_attribute a") && strings.Contains(sql, "'16385'"):
		return []result{rowsResult(nil,
			[]string{"id", "integer", "<null>", "t", "<null>", "", ""},
			[]string{"name", "text", "'x'::text", "f", "<null>", "", ""},
			[]string{"n", "bigint", "<null>", "t", "<null>", "a", ""})}, nil
	case strings.Contains(sql, "pg_catalog.pg_index i") && strings.Contains(sql, "'16385'"):
		return []result{rowsResult(nil,
			[]string{"t_pkey", "t", "t", "f", "t", "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)", "PRIMARY KEY (id)", "p", "f", "f", "f", "0"},
			[]string{"t_name", "f", "t", "f", "t", "CREATE UNIQUE INDEX t_name ON public.t USING btree (name)", "<null>", "<null>", "f", "f", "f", "0"},
			[]string{"t_bad", "f", "f", "f", "f", "CREATE INDEX t_bad ON t(n)", "<null>", "<null>", "f", "f", "f", "0"})}, nil
	}
	return nil, &pgconn.PgError{Severity: "ERROR", Code: "42P01", Message: "unexpected query"}
}

func TestShellCatalogCommands(t *testing.T) {
	tests := []struct {
		cmd    string
		out    string
		errOut string
		fails  bool
	}{
		{
			cmd: `\dt`,
			out: "        List of relations\n Schema | Name | Type  |  Owner   \n--------+------+-------+----------\n public | t    | table | postgres\n(1 row)\n\n",
		},
		{cmd: `\dt nomatch`, errOut: "Did not find any relation named \"nomatch\".\n"},
		{
			cmd: `\d T`,
			out: "                            Table \"public.t\"\n" +
				" Column |  Type   | Collation | Nullable |           Default            \n" +
				"--------+---------+-----------+----------+------------------------------\n" +
				" id     | integer |           | not null | \n" +
				" name   | text    |           |          | 'x'::text\n" +
				" n      | bigint  |           | not null | generated always as identity\n" +
				"Indexes:\n" +
				"    \"t_pkey\" PRIMARY KEY, btree (id)\n" +
				"    \"t_name\" UNIQUE, btree (name)\n" +
				"    \"t_bad\" CREATE INDEX t_bad ON t(n) INVALID\n\n",
		},
		{cmd: `\d nosuch`, errOut: "Did not find any relation named \"nosuch\".\n", fails: true},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			sh, _, out, errOut := newTestShell(catalogFake)
			err := sh.runCommand(context.Background(), tt.cmd)
			if (err != nil) != tt.fails {
				t.Fatalf("err = %v, want failure %v", err, tt.fails)
			}
			if out.String() != tt.out {
				t.Errorf("stdout:\n%s\nwant:\n%s\n%q", out.String(), tt.out, out.String())
			}
			if errOut.String() != tt.errOut {
				t.Errorf("stderr %q, want %q", errOut.String(), tt.errOut)
			}
		})
	}
}

func TestPatternRegex(t *testing.T) {
	tests := map[string]string{
		"t":        "^(t)$",
		"T":        "^(t)$",
		`"T"`:      "^(T)$",
		"public.t": "^(t)$",
		"bench_*":  "^(bench_.*)$",
		"a?c":      "^(a.c)$",
		`"a.b"`:    `^(a\.b)$`,
		"a+b":      `^(a\+b)$`,
		`"x""y"`:   `^(x"y)$`,
		"o'brien":  "^(o'brien)$",
	}
	for in, want := range tests {
		if got := patternRegex(in); got != want {
			t.Errorf("patternRegex(%q) = %q, want %q", in, got, want)
		}
	}
	// The pattern lands in a correctly quoted literal.
	if q := findRelationQuery("o'brien"); !strings.Contains(q, "'^(o''brien)$'") {
		t.Errorf("quote not doubled: %s", q)
	}
}

func TestShellStatus(t *testing.T) {
	sh, _, out, _ := newTestShell(sqlFake)
	sh.status = func(context.Context) ([]statusRow, error) {
		st := nodeStatus{ID: "1", Role: "leader", Term: 3, Leader: "1", CommitIndex: 10, AppliedIndex: 9}
		return []statusRow{{member: member{ID: "1", RaftAddr: "127.0.0.1:7000", Voter: true}, st: &st, leader: true}}, nil
	}
	if err := sh.runCommand(context.Background(), `\status`); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Cluster status", "leader", "127.0.0.1:7000", "(1 row)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("\\status output lacks %q:\n%s", want, out.String())
		}
	}
	sh.status = nil
	if err := sh.runCommand(context.Background(), `\status`); err == nil {
		t.Error("\\status without --http succeeded")
	}
}

// testEnv is an env whose connection is a fakeConn and whose stdin is
// never a terminal.
func testEnv(fc *fakeConn, gotConnString *string) env {
	e := defaultEnv()
	e.dial = func(_ context.Context, cs string, _ func(*pgconn.Notice)) (sqlConn, error) {
		if gotConnString != nil {
			*gotConnString = cs
		}
		return fc, nil
	}
	e.isTerminal = func(io.Reader) bool { return false }
	e.now = stepClock(time.Millisecond)
	return e
}

func TestRunShellModes(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.sql")
	if err := os.WriteFile(script, []byte("insert into t values (1);\nselect 1;\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.sql")
	if err := os.WriteFile(bad, []byte("bogus;\nselect 1;\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		stdin    string
		conn     string
		sent     []string
		exitCode int
	}{
		{name: "flags", args: []string{"-h", "10.0.0.1", "-p", "6000", "-U", "bob", "-d", "app", "-c", "select 1"},
			conn: "host=10.0.0.1 port=6000 user=bob dbname=app", sent: []string{"select 1"}},
		{name: "defaults and positional db after -c", args: []string{"-c", "select 1", "app"},
			conn: "host=127.0.0.1 port=5433 dbname=app", sent: []string{"select 1"}},
		{name: "url", args: []string{"postgres://u@h:1/x?sslmode=disable", "-c", "select 1"},
			conn: "postgres://u@h:1/x?sslmode=disable", sent: []string{"select 1"}},
		{name: "url with port override", args: []string{"-p", "7", "postgres://u@h:1/x", "-c", "select 1"},
			conn: "postgres://u@h:7/x", sent: []string{"select 1"}},
		{name: "-c repeated, comma kept", args: []string{"-c", "insert into t values (1, 2)", "-c", "select 1"},
			conn: "host=127.0.0.1 port=5433", sent: []string{"insert into t values (1, 2)", "select 1"}},
		{name: "-c stops at error", args: []string{"-c", "bogus", "-c", "select 1"},
			conn: "host=127.0.0.1 port=5433", sent: []string{"bogus"}, exitCode: 1},
		{name: "-f", args: []string{"-f", script}, conn: "host=127.0.0.1 port=5433",
			sent: []string{"insert into t values (1);", "select 1;"}},
		{name: "-f error", args: []string{"-f", bad}, conn: "host=127.0.0.1 port=5433",
			sent: []string{"bogus;"}, exitCode: 1},
		{name: "-f missing", args: []string{"-f", filepath.Join(dir, "none.sql")}, conn: "host=127.0.0.1 port=5433", exitCode: 1},
		{name: "piped stdin", args: nil, stdin: "select 1;\n", conn: "host=127.0.0.1 port=5433", sent: []string{"select 1;"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeConn{handle: sqlFake}
			var cs string
			var out, errOut strings.Builder
			err := testEnv(fc, &cs).run(context.Background(), append([]string{"raftsql"}, tt.args...), strings.NewReader(tt.stdin), &out, &errOut)
			if got := exitCode(err); got != tt.exitCode {
				t.Fatalf("exit %d (err %v), want %d; stderr %s", got, err, tt.exitCode, errOut.String())
			}
			if cs != tt.conn {
				t.Errorf("connection string %q, want %q", cs, tt.conn)
			}
			if strings.Join(fc.sent, "|") != strings.Join(tt.sent, "|") {
				t.Errorf("sent %q, want %q", fc.sent, tt.sent)
			}
			if !fc.closed {
				t.Error("connection not closed")
			}
		})
	}
}

func TestRunConnectFailureExits2(t *testing.T) {
	e := testEnv(nil, nil)
	e.dial = func(context.Context, string, func(*pgconn.Notice)) (sqlConn, error) {
		return nil, errors.Join(ErrConnect, errors.New("refused"))
	}
	var errOut strings.Builder
	err := e.run(context.Background(), []string{"raftsql", "-c", "select 1"}, strings.NewReader(""), io.Discard, &errOut)
	if exitCode(err) != 2 || !strings.Contains(errOut.String(), "refused") {
		t.Fatalf("exit %d, stderr %q", exitCode(err), errOut.String())
	}
}

func TestRunShellStatusUsesHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"1","role":"leader","term":2,"leader":"1","commit_index":5,"applied_index":5,"configuration":[{"id":"1","raft_addr":"127.0.0.1:7000","voter":true}]}`)
	}))
	defer srv.Close()
	fc := &fakeConn{handle: sqlFake}
	var out strings.Builder
	err := testEnv(fc, nil).run(context.Background(), []string{"raftsql", "--http", srv.Listener.Addr().String(), "-c", `\status`}, strings.NewReader(""), &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "127.0.0.1:7000") || !strings.Contains(out.String(), "leader") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestShellResetAfterLostConnection(t *testing.T) {
	lost := &fakeConn{handle: func(string) ([]result, error) {
		return nil, fmt.Errorf("%w: unexpected EOF", ErrConnLost)
	}}
	fresh := &fakeConn{handle: sqlFake}
	var out, errOut strings.Builder
	sh := &shell{conn: lost, out: &out, errOut: &errOut, now: stepClock(time.Millisecond)}
	dials := 0
	sh.reconnect = func(context.Context) (sqlConn, error) {
		dials++
		return fresh, nil
	}
	err := sh.feedLine(context.Background(), "select 1;")
	if !errors.Is(err, ErrConnLost) {
		t.Fatalf("err %v, want ErrConnLost", err)
	}
	if err := sh.reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if dials != 1 || !lost.closed || sh.conn != fresh {
		t.Fatalf("dials %d, old closed %v", dials, lost.closed)
	}
	if err := sh.feedLine(context.Background(), "select 1;"); err != nil {
		t.Fatal(err)
	}
	if want := "error: connection lost: unexpected EOF\nThe connection to the server was lost. Attempting reset: Succeeded.\n"; errOut.String() != want {
		t.Errorf("stderr %q, want %q", errOut.String(), want)
	}
	sh.reconnect = func(context.Context) (sqlConn, error) { return nil, ErrConnect }
	if err := sh.reset(context.Background()); !errors.Is(err, ErrConnect) {
		t.Errorf("failed reset: %v", err)
	}
}

func TestShellInclude(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc.sql")
	os.WriteFile(inc, []byte("insert into t values (1);\ninsert into t values (2)"), 0o600)
	sh, fc, _, errOut := newTestShell(sqlFake)
	script := "select 1\n\\i " + inc + "\n;\n\\i " + filepath.Join(dir, "none.sql") + "\n"
	err := sh.runScript(context.Background(), strings.NewReader(script))
	// The file's statements run, its unterminated last one at its end; the
	// caller's open statement continues after \i; a missing file fails.
	want := []string{"insert into t values (1);", "insert into t values (2)", "select 1\n;"}
	if strings.Join(fc.sent, "|") != strings.Join(want, "|") {
		t.Errorf("sent %q, want %q", fc.sent, want)
	}
	if err == nil || !strings.Contains(errOut.String(), "none.sql") {
		t.Errorf("missing file: err %v, stderr %q", err, errOut.String())
	}
}

func TestShellListDatabasesAndSchemas(t *testing.T) {
	sh, fc, out, _ := newTestShell(func(sql string) ([]result, error) {
		if strings.Contains(sql, "pg_database") {
			return []result{rowsResult([]column{{"Name", 19}, {"Owner", 19}}, []string{"raftsql", "raftsql"})}, nil
		}
		return []result{rowsResult([]column{{"Name", 19}, {"Owner", 19}}, []string{"public", "pg_database_owner"})}, nil
	})
	if err := sh.runCommand(context.Background(), `\l`); err != nil {
		t.Fatal(err)
	}
	if err := sh.runCommand(context.Background(), `\dn`); err != nil {
		t.Fatal(err)
	}
	want := " List of databases\n  Name   |  Owner  \n---------+---------\n raftsql | raftsql\n(1 row)\n\n" +
		"      List of schemas\n  Name  |       Owner       \n--------+-------------------\n public | pg_database_owner\n(1 row)\n\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	if fc.sent[0] != listDatabasesSQL || fc.sent[1] != listSchemasSQL {
		t.Errorf("sent %q", fc.sent)
	}
}

func TestRunSetFlag(t *testing.T) {
	fc := &fakeConn{handle: sqlFake}
	var errOut strings.Builder
	err := testEnv(fc, nil).run(context.Background(), []string{"raftsql", "-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose",
		"-c", "bogus", "-c", "select 1"}, strings.NewReader(""), io.Discard, &errOut)
	if exitCode(err) != 1 {
		t.Errorf("exit %d, want 1 after a failed -c", exitCode(err))
	}
	if strings.Join(fc.sent, "|") != "bogus|select 1" || !strings.HasPrefix(errOut.String(), "ERROR:  42601: ") {
		t.Errorf("sent %q stderr %q", fc.sent, errOut.String())
	}
	err = testEnv(&fakeConn{handle: sqlFake}, nil).run(context.Background(), []string{"raftsql", "-v", "VERBOSITY=x", "-c", "select 1"}, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil {
		t.Error("bad -v value accepted")
	}
}

func TestShellInteractiveRunsOnAfterErrors(t *testing.T) {
	sh, fc, out, _ := newTestShell(sqlFake)
	sh.isInteractive = true
	if err := sh.feedLine(context.Background(), "bogus; insert into t values (1);"); err == nil {
		t.Error("the error was not returned")
	}
	if len(fc.sent) != 2 || out.String() != "INSERT 0 1\n" {
		t.Errorf("sent %q out %q: at the prompt psql runs the rest of the line", fc.sent, out.String())
	}
}
