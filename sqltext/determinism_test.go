package sqltext

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 27, 6, 7, 8, 123456789, time.FixedZone("X", 3600)) // 05:07:08.123 UTC

func testRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func TestMakeDeterministic(t *testing.T) {
	tests := []struct{ in, want string }{
		{"select 1", "select 1"},
		{"insert into t values (CURRENT_TIMESTAMP, current_date, Current_Time)",
			"insert into t values ('2026-11-27 05:07:08', '2026-11-27', '05:07:08')"},
		{"insert into t values (datetime('now'), date('NOW'), time('now', '+1 hour'), julianday('now'), unixepoch('now'), strftime('%s', 'now'))",
			"insert into t values (datetime('2026-11-27 05:07:08.123'), date('2026-11-27 05:07:08.123'), time('2026-11-27 05:07:08.123', '+1 hour'), julianday('2026-11-27 05:07:08.123'), unixepoch('2026-11-27 05:07:08.123'), strftime('%s', '2026-11-27 05:07:08.123'))"},
		{"insert into t values (date(), datetime( ), unixepoch())",
			"insert into t values (date('2026-11-27 05:07:08.123'), datetime('2026-11-27 05:07:08.123'), unixepoch('2026-11-27 05:07:08.123'))"},
		{"insert into t values (strftime('%s'), strftime(lower('%S')), strftime('%s', x))",
			"insert into t values (strftime('%s', '2026-11-27 05:07:08.123'), strftime(lower('%S'), '2026-11-27 05:07:08.123'), strftime('%s', x))"},
		{"update t set a = " + sqlNowTZ, "update t set a = (strftime('%Y-%m-%d %H:%M:%f+00:00','2026-11-27 05:07:08.123'))"},
		{"insert into t values ('now', upper('now'), date(x), datetime(coalesce(a, 'now')))", "insert into t values ('now', upper('now'), date(x), datetime(coalesce(a, 'now')))"},
		{"insert into t values (t.current_timestamp, x.random())", "insert into t values (t.current_timestamp, x.random())"},
		{"insert into t values (changes(), last_insert_rowid(), sqlite_version())", "insert into t values (changes(), last_insert_rowid(), sqlite_version())"},
		{"create table t2 as select datetime('now') as d", "create table t2 as select datetime('2026-11-27 05:07:08.123') as d"},
		{"create view v as select random(), datetime('now')", "create view v as select random(), datetime('now')"},
		{"create index i on t(a) where b > random()", "create index i on t(a) where b > random()"},
		{"create table t (a int, b text default 'now', c int default 3)", "create table t (a int, b text default 'now', c int default 3)"},
		{"-- x", "-- x"},
	}
	for _, tt := range tests {
		got, err := MakeDeterministic(tt.in, testNow, testRand())
		if err != nil || got != tt.want {
			t.Errorf("MakeDeterministic(%q)\n got %q, %v\nwant %q", tt.in, got, err, tt.want)
		}
	}
}

func TestMakeDeterministicRandom(t *testing.T) {
	got, err := MakeDeterministic("insert into t values (random(), 1-random(), randomblob(3), randomblob(0), randomblob(0x10), randomblob( 20 ))", testNow, testRand())
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^insert into t values \(\(-?\d+\), 1-\(-?\d+\), X'[0-9A-F]{6}', X'[0-9A-F]{2}', X'[0-9A-F]{32}', X'[0-9A-F]{40}'\)$`)
	if !re.MatchString(got) {
		t.Fatalf("got %q", got)
	}
	again, _ := MakeDeterministic("insert into t values (random(), 1-random(), randomblob(3), randomblob(0), randomblob(0x10), randomblob( 20 ))", testNow, testRand())
	if again != got {
		t.Fatalf("same seed gave %q and %q", got, again)
	}
	other, _ := MakeDeterministic("insert into t values (random(), 1-random(), randomblob(3), randomblob(0), randomblob(0x10), randomblob( 20 ))", testNow, rand.New(rand.NewPCG(3, 4)))
	if other == got {
		t.Fatalf("different seeds gave the same %q", got)
	}
	if strings.Contains(got, "random") {
		t.Fatalf("random left in %q", got)
	}
}

func TestMakeDeterministicRefuses(t *testing.T) {
	tests := []struct{ in, name string }{
		{"insert into t values (randomblob(n))", "randomblob"},
		{"insert into t values (randomblob(1+1))", "randomblob"},
		{"insert into t values (randomblob(1.5))", "randomblob"},
		{"insert into t values (randomblob(2000000))", "randomblob"},
		{"insert into t values (datetime('now', 'localtime'))", "localtime"},
		{"insert into t values (datetime(x, 'utc'))", "utc"},
		{"insert into t values (total_changes())", "total_changes"},
		{"create table t (a int default (random()))", "random()"},
		{"alter table t add column a text default (datetime())", "datetime()"},
		{"create trigger tr after insert on t begin update t set a = random(); end", "random()"},
		{"create table t (a int check (a < random()))", "random()"},
		{"create table t (a int default 1 check (a < julianday('now')))", "julianday('now')"},
		{"create table t (a int default (1), b text check (b < current_date))", "CURRENT_DATE"},
		{"create table t (a text default (datetime('now', 'localtime')))", "localtime"},
		{"create table t (a text default (hex(randomblob(16))))", "randomblob()"},
		{"create trigger tr after insert on t begin update t set a = current_timestamp; end", "CURRENT_TIMESTAMP"},
		{"alter table t add column a text default current_timestamp", "CURRENT_TIMESTAMP"},
	}
	for _, tt := range tests {
		got, err := MakeDeterministic(tt.in, testNow, testRand())
		if !errors.Is(err, ErrNonDeterministic) || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("MakeDeterministic(%q) = %q, %v; want ErrNonDeterministic naming %s", tt.in, got, err, tt.name)
		}
	}
	if _, err := MakeDeterministic("select random()", testNow, nil); !errors.Is(err, ErrNonDeterministic) {
		t.Errorf("nil rnd: %v", err)
	}
	if _, err := MakeDeterministic("select 'x", testNow, testRand()); !errors.Is(err, ErrSyntax) {
		t.Errorf("bad text: %v", err)
	}
}

// TestMakeDeterministicDefaultClock: the clock in a column DEFAULT of
// CREATE TABLE is kept as CURRENT_TIMESTAMP (the fsm evaluates it with the
// inserting entry's clock) instead of being refused.
func TestMakeDeterministicDefaultClock(t *testing.T) {
	tests := []struct{ in, want string }{
		{"create table t (a text default current_timestamp, b text default CURRENT_DATE, c text default current_time)",
			"create table t (a text default current_timestamp, b text default CURRENT_DATE, c text default current_time)"},
		{"create table t (a timestamptz default " + sqlNowTZ + ", b int default -1)",
			"create table t (a timestamptz default (strftime('%Y-%m-%d %H:%M:%f+00:00',CURRENT_TIMESTAMP)), b int default -1)"},
		{"create table t (a text default (datetime('now')) not null, b text default (date()), c int default (strftime('%s')))",
			"create table t (a text default (datetime(CURRENT_TIMESTAMP)) not null, b text default (date(CURRENT_TIMESTAMP)), c int default (strftime('%s', CURRENT_TIMESTAMP)))"},
		{"create table t (a text default (datetime(current_timestamp, '+1 day')), b text default 'now')",
			"create table t (a text default (datetime(current_timestamp, '+1 day')), b text default 'now')"},
	}
	for _, tt := range tests {
		got, err := MakeDeterministic(tt.in, testNow, testRand())
		if err != nil || got != tt.want {
			t.Errorf("MakeDeterministic(%q)\n got %q, %v\nwant %q", tt.in, got, err, tt.want)
		}
	}
	// Through Translate, as the server does it.
	tq, err := Translate("CREATE TABLE ev (id serial primary key, at timestamptz NOT NULL DEFAULT now(), d date DEFAULT CURRENT_DATE)")
	if err != nil {
		t.Fatal(err)
	}
	got, err := MakeDeterministic(tq, testNow, testRand())
	if err != nil || strings.Contains(got, "'now'") || !strings.Contains(got, "CURRENT_TIMESTAMP") {
		t.Errorf("MakeDeterministic(%q) = %q, %v", tq, got, err)
	}
}

// TestMakeDeterministicOnSQLite: two "nodes" applying the leader's
// rewritten statements at different times end up with identical rows.
func TestMakeDeterministicOnSQLite(t *testing.T) {
	pg := []string{
		"create table t (id bigserial primary key, r int, b bytea, d text, n text, j real, dt text, ct text)",
		"insert into t(r, b, d, n, j, dt, ct) values (random(), randomblob(8), datetime('now'), now(), julianday('now'), date(), current_timestamp) returning id",
		"update t set r = r + abs(random() % 10) where id = 1",
	}
	var leader []string
	rnd := testRand()
	for _, q := range pg {
		tq, err := Translate(q)
		if err != nil {
			t.Fatal(err)
		}
		dq, err := MakeDeterministic(tq, testNow, rnd)
		if err != nil {
			t.Fatalf("MakeDeterministic(%q): %v", tq, err)
		}
		leader = append(leader, dq)
	}
	var dumps []string
	for node := 0; node < 2; node++ {
		db := openSQLite(t)
		for _, q := range leader {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("node %d: %q: %v", node, q, err)
			}
		}
		var dump string
		err := db.QueryRow("select quote(r)||quote(b)||quote(d)||quote(n)||quote(j)||quote(dt)||quote(ct) from t").Scan(&dump)
		if err != nil {
			t.Fatal(err)
		}
		dumps = append(dumps, dump)
	}
	if dumps[0] != dumps[1] {
		t.Fatalf("replicas differ:\n%s\n%s", dumps[0], dumps[1])
	}
	for _, want := range []string{"'2026-11-27 05:07:08'", "'2026-11-27 05:07:08.123+00:00'", "'2026-11-27'"} {
		if !strings.Contains(dumps[0], want) {
			t.Errorf("row %s lacks %s", dumps[0], want)
		}
	}
}
