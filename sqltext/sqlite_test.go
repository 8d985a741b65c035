package sqltext

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"regexp"
	"testing"

	"modernc.org/sqlite"
)

type memConnector struct{ d *sqlite.Driver }

func (c memConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(":memory:") }
func (c memConnector) Driver() driver.Driver                        { return c.d }

// openSQLite opens a private in-memory SQLite with the regexp function
// the front end is expected to register (see RegexpFunc).
func openSQLite(t *testing.T) *sql.DB {
	t.Helper()
	d := &sqlite.Driver{}
	err := d.RegisterDeterministicScalarFunction(RegexpFunc, 2, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		pat, ok1 := args[0].(string)
		s, ok2 := args[1].(string)
		if !ok1 || !ok2 {
			return nil, nil
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			return nil, err
		}
		return re.MatchString(s), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(memConnector{d})
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestTranslateRunsOnSQLite runs translated PostgreSQL on SQLite and
// checks that it means what it meant in PostgreSQL.
func TestTranslateRunsOnSQLite(t *testing.T) {
	db := openSQLite(t)
	steps := []struct {
		pg   string
		args []any
		want string // fmt of the first row's columns, "" for Exec
	}{
		{"select $1::int + 1", []any{"41"}, "[42]"},
		{"select $2::text || '-' || $1::text", []any{1, "a"}, "[a-1]"},
		{"select  'it''s' ::text || 'z'", nil, "[it'sz]"},
		{"select 't'::bool, 'off'::boolean, 1::bool, 'TRUE'::bool, NULL::bool", nil, "[1 0 1 1 <nil>]"},
		{"select '3.25'::float8 * 2, '7'::numeric + 0, 12::text || ''", nil, "[6.5 7 12]"},
		{"select E'a\\tb', $$x'y$$", nil, "[a\tb x'y]"},
		{"select 'abc' ~ '^a', 'ABC' ~* '^a', 'abc' !~ 'z', 'abc' OPERATOR(pg_catalog.~) '^(abc)$' COLLATE pg_catalog.default", nil, "[1 1 1 1]"},
		{"select 'ABC' ilike 'a%', 'ABC' ~~* 'a%', 'abc' !~~ 'b%'", nil, "[1 1 1]"},
		{"select date '2024-01-02', x'41' = cast('A' as blob), true, false", nil, "[2024-01-02 1 1 0]"},
		{"create table public.t (id bigserial primary key, name text not null, v double precision, created timestamptz default now())", nil, ""},
		{"insert into t(name, v) values ($1, $2) returning id", []any{"a", 1.5}, "[1]"},
		{"insert into pg_catalog.t(name) values ($1) returning id", []any{"b"}, "[2]"},
		{"delete from t where id = 2", nil, ""},
		{"insert into t(name) values ('c') returning id", nil, "[3]"}, // AUTOINCREMENT: ids are not reused
		{"select name from t where id = $1 for update", []any{3}, "[c]"},
		{"select created ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}\\+00:00$' from t where id = 1", nil, "[1]"},
		{"select now() ~ '^[0-9-]{10} [0-9:]{8}\\.[0-9]{3}\\+00:00$', localtimestamp ~ '[0-9]$', current_time ~ '^[0-9:]{8}\\.[0-9]{3}\\+00:00$'", nil, "[1 1 1]"},
		{"insert into t(name) values ('d') on conflict (id) do nothing", nil, ""},
		{"truncate table t restart identity", nil, ""},
		{"select count(*)::int from t limit all", nil, "[0]"},
		{"create table u (id serial, name varchar(20), primary key (id))", nil, ""},
		{"insert into u(name) values ('x'), ('y') returning id", nil, "[1]"},
		{"create table w (id int generated always as identity primary key, v int)", nil, ""},
		{"insert into w(v) values (5) returning id, v::text", nil, "[1 5]"},
		{"with x as (select 2 as n) select n::int8 * 2 from x", nil, "[4]"},
		{"select '\\xdeadbeef'::bytea = x'DEADBEEF', hex('\\x41'::bytea), case when 1 then 'a' end::text", nil, "[1 41 a]"},
		{"create table d (a text default 'x'::text, b int, c text default 'it''s'::character varying)", nil, ""},
		{"insert into d(b) values (1) returning a, c", nil, "[x it's]"},
		{"select datetime(now()) = datetime('now'), julianday(now()) > 2460000", nil, "[1 1]"},
		{"select '2024-01-31 10:00:00+00:00'::timestamptz + interval '1 day 2 hours', '2024-03-01'::date - interval '1 month'", nil, "[2024-02-01 12:00:00.000+00:00 2024-02-01 00:00:00.000+00:00]"},
		{"select now() - interval '1 hour' < now()", nil, "[1]"},
		{"select x from (select 1 as x union all select 2 union all select 3) order by x offset 1 rows fetch first 1 row only", nil, "[2]"},
		{"select now()::date = current_date, '2024-01-02 03:04:05+00'::date, '2024-01-02'::date", nil, "[1 2024-01-02 2024-01-02]"},
		{"select 1 is distinct from 2, null is not distinct from null", nil, "[1 1]"},
	}
	for _, s := range steps {
		q, err := Translate(s.pg)
		if err != nil {
			t.Fatalf("Translate(%q): %v", s.pg, err)
		}
		if s.want == "" {
			if _, err := db.Exec(q, s.args...); err != nil {
				t.Fatalf("exec %q (from %q): %v", q, s.pg, err)
			}
			continue
		}
		rows, err := db.Query(q, s.args...)
		if err != nil {
			t.Fatalf("query %q (from %q): %v", q, s.pg, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if !rows.Next() {
			t.Fatalf("query %q: no rows (%v)", q, rows.Err())
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		for i, v := range vals {
			switch x := v.(type) {
			case []byte:
				vals[i] = string(x)
			case bool:
				if x {
					vals[i] = 1
				} else {
					vals[i] = 0
				}
			}
		}
		if got := fmt.Sprint(vals); got != s.want {
			t.Errorf("%q → %q = %s, want %s", s.pg, q, got, s.want)
		}
	}
}
