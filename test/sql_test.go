package test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/raftsql/raftsql/test/cluster"
)

// TestSQL runs the functional checks of the SQL path on one three-node
// cluster: every subtest uses its own tables.
func TestSQL(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3})
	t.Run("DDLAndWritesThroughFollowers", func(t *testing.T) { testWritesThroughFollowers(t, c) })
	t.Run("ReadLevelsOnEveryNode", func(t *testing.T) { testReadLevels(t, c) })
	t.Run("ReadAfterWriteAcrossNodes", func(t *testing.T) { testReadAfterWrite(t, c) })
	t.Run("ErrorCodesKeepSessionUsable", func(t *testing.T) { testErrorCodes(t, c) })
	t.Run("Transactions", func(t *testing.T) { testTransactions(t, c) })
	t.Run("NonDeterministicFunctions", func(t *testing.T) { testNonDeterminism(t, c) })
	t.Run("DatabaseSQL", func(t *testing.T) { testDatabaseSQL(t, c) })
	t.Run("Psql", func(t *testing.T) { testPsql(t, c) })
	t.Run("Pgbench", func(t *testing.T) { testPgbench(t, c) })
	t.Run("NodePostgres", func(t *testing.T) { testNodePostgres(t, c) })
}

func testWritesThroughFollowers(t *testing.T, c *cluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, followers := leaderAndFollowers(ctx, t, c)
	f := connect(ctx, t, followers[0], "")
	mustExec(ctx, t, f, "CREATE TABLE via_follower (id INTEGER PRIMARY KEY, who TEXT NOT NULL)")
	for i, n := range c.Nodes() {
		conn := connect(ctx, t, n, "")
		tag := mustExec(ctx, t, conn, "INSERT INTO via_follower (id, who) VALUES ($1, $2)", i, n.ID)
		if tag.String() != "INSERT 0 1" {
			t.Errorf("insert via %s: tag %q, want INSERT 0 1", n.ID, tag)
		}
		tag = mustExec(ctx, t, conn, "UPDATE via_follower SET who = who || '!' WHERE id = $1", i)
		if tag.String() != "UPDATE 1" {
			t.Errorf("update via %s: tag %q, want UPDATE 1", n.ID, tag)
		}
	}
	tag := mustExec(ctx, t, f, "DELETE FROM via_follower WHERE id = 0")
	if tag.String() != "DELETE 1" {
		t.Errorf("delete: tag %q, want DELETE 1", tag)
	}
	// A linearizable read on every node sees every acknowledged write.
	for _, n := range c.Nodes() {
		conn := connect(ctx, t, n, "linearizable")
		got, err := dump(ctx, conn, "SELECT id, who FROM via_follower ORDER BY id")
		if err != nil {
			t.Fatalf("read on %s: %v", n.ID, err)
		}
		var want []string
		for i, w := range c.Nodes()[1:] {
			want = append(want, fmt.Sprintf("[%d %s!]", i+1, w.ID))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s sees %v, want %v", n.ID, got, want)
		}
	}
}

func testReadLevels(t *testing.T, c *cluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader, _ := leaderAndFollowers(ctx, t, c)
	w := connect(ctx, t, leader, "")
	mustExec(ctx, t, w, "CREATE TABLE levels (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
	mustExec(ctx, t, w, "INSERT INTO levels (k, v) VALUES (1, 0)")
	for round, n := range c.Nodes() {
		// Write through a different node each round, then read on every
		// node at every level, set both ways.
		writer := connect(ctx, t, n, "")
		mustExec(ctx, t, writer, "UPDATE levels SET v = $1 WHERE k = 1", round+1)
		for _, r := range c.Nodes() {
			for _, level := range levels {
				for _, how := range []string{"startup", "SET"} {
					var conn *pgx.Conn
					if how == "startup" {
						conn = connect(ctx, t, r, level)
					} else {
						conn = connect(ctx, t, r, "")
						mustExec(ctx, t, conn, "SET raftsql.read_consistency = "+level)
					}
					var v int
					err := conn.QueryRow(ctx, "SELECT v FROM levels WHERE k = 1").Scan(&v)
					switch {
					case err != nil:
						t.Errorf("%s read on %s (%s): %v", level, r.ID, how, err)
					case level != "stale" && v != round+1:
						// linearizable anywhere; lease on the leader, and
						// read-index elsewhere: both must see the write.
						t.Errorf("%s read on %s (%s) saw %d after write %d was acknowledged", level, r.ID, how, v, round+1)
					case level == "stale":
						// A stale read may lag but catches up.
						err := retry(ctx, func() error {
							if err := conn.QueryRow(ctx, "SELECT v FROM levels WHERE k = 1").Scan(&v); err != nil {
								return err
							}
							if v != round+1 {
								return fmt.Errorf("stale read on %s still sees %d", r.ID, v)
							}
							return nil
						})
						if err != nil {
							t.Error(err)
						}
					}
					conn.Close(ctx)
				}
			}
		}
	}
	// A bad level is refused and the session stays usable.
	conn := connect(ctx, t, leader, "")
	if _, err := conn.Exec(ctx, "SET raftsql.read_consistency = sometimes"); err == nil {
		t.Error("SET raftsql.read_consistency = sometimes was accepted")
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("session unusable after a bad SET: %v", err)
	}
}

func testErrorCodes(t *testing.T, c *cluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader, followers := leaderAndFollowers(ctx, t, c)
	setup := connect(ctx, t, leader, "")
	mustExec(ctx, t, setup, "CREATE TABLE err_parent (id INTEGER PRIMARY KEY)")
	mustExec(ctx, t, setup, `CREATE TABLE err_t (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
		n INTEGER CHECK (n >= 0), parent INTEGER REFERENCES err_parent(id))`)
	mustExec(ctx, t, setup, "INSERT INTO err_parent (id) VALUES (1)")
	mustExec(ctx, t, setup, "INSERT INTO err_t (id, name, n, parent) VALUES (1, 'one', 1, 1)")
	cases := []struct {
		code, sql string
	}{
		{"23505", "INSERT INTO err_t (id, name) VALUES (1, 'dup')"},
		{"23502", "INSERT INTO err_t (id, name) VALUES (2, NULL)"},
		{"23514", "INSERT INTO err_t (id, name, n) VALUES (3, 'neg', -1)"},
		{"23503", "INSERT INTO err_t (id, name, parent) VALUES (4, 'orphan', 999)"},
		{"42601", "SELEC 1"},
		{"42P01", "SELECT * FROM no_such_table"},
		{"42703", "SELECT no_such_column FROM err_t"},
		{"42P07", "CREATE TABLE err_t (id INTEGER)"},
	}
	for _, n := range []*cluster.Node{leader, followers[0]} {
		conn := connect(ctx, t, n, "")
		for _, tc := range cases {
			_, err := conn.Exec(ctx, tc.sql)
			if got := sqlstate(err); got != tc.code {
				t.Errorf("on %s %q: SQLSTATE %q (%v), want %s", n.ID, tc.sql, got, err, tc.code)
			}
			var one int
			if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
				t.Fatalf("on %s the session is unusable after %s: %v", n.ID, tc.code, err)
			}
		}
		// In a failed transaction every statement gets 25P02 until
		// ROLLBACK.
		mustExec(ctx, t, conn, "BEGIN")
		if _, err := conn.Exec(ctx, "SELEC 1"); sqlstate(err) != "42601" {
			t.Errorf("on %s syntax error in a transaction: %v, want 42601", n.ID, err)
		}
		for _, q := range []string{"INSERT INTO err_t (id, name) VALUES (50, 'after error')", "SELECT 1"} {
			if _, err := conn.Exec(ctx, q); sqlstate(err) != "25P02" {
				t.Errorf("on %s %q in a failed transaction: %v, want 25P02", n.ID, q, err)
			}
		}
		if tag, err := conn.Exec(ctx, "COMMIT"); err == nil && tag.String() != "ROLLBACK" {
			t.Errorf("on %s COMMIT of a failed transaction: tag %q, want ROLLBACK", n.ID, tag)
		}
		// A constraint violation inside a transaction fails the statement
		// at once or, when writes are deferred to COMMIT, the COMMIT;
		// either way nothing is applied and the session goes on.
		mustExec(ctx, t, conn, "BEGIN")
		mustExec(ctx, t, conn, "INSERT INTO err_t (id, name) VALUES (60, 'doomed')")
		_, err := conn.Exec(ctx, "INSERT INTO err_t (id, name) VALUES (1, 'dup')")
		if err == nil {
			_, err = conn.Exec(ctx, "COMMIT")
			if sqlstate(err) != "23505" {
				t.Errorf("on %s COMMIT of a transaction with a duplicate: %v, want 23505", n.ID, err)
			}
		} else {
			if sqlstate(err) != "23505" {
				t.Errorf("on %s duplicate in a transaction: %v, want 23505", n.ID, err)
			}
			mustExec(ctx, t, conn, "ROLLBACK")
		}
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("on %s the session is unusable after ROLLBACK: %v", n.ID, err)
		}
		usable := func(after string) {
			t.Helper()
			if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
				t.Fatalf("on %s the session is unusable after %s: %v", n.ID, after, err)
			}
		}
		// 25006: a write in a READ ONLY transaction.
		mustExec(ctx, t, conn, "BEGIN READ ONLY")
		if _, err := conn.Exec(ctx, "INSERT INTO err_t (id, name) VALUES (70, 'ro')"); sqlstate(err) != "25006" {
			t.Errorf("on %s write in a read-only transaction: %v, want 25006", n.ID, err)
		}
		conn.Exec(ctx, "ROLLBACK")
		usable("25006")
		// 26000: a prepared statement that does not exist.
		rr := conn.PgConn().ExecPrepared(ctx, "no_such_statement", nil, nil, nil).Read()
		if sqlstate(rr.Err) != "26000" {
			t.Errorf("on %s unknown prepared statement: %v, want 26000", n.ID, rr.Err)
		}
		usable("26000")
		// 57014: a long query cancelled with a CancelRequest.
		longQ := "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000000) SELECT count(*) FROM c"
		done := make(chan error, 1)
		go func() {
			var k int64
			done <- conn.QueryRow(ctx, longQ).Scan(&k)
		}()
		var cerr error
	cancelLoop:
		for {
			select {
			case cerr = <-done:
				break cancelLoop
			case <-time.After(200 * time.Millisecond):
				if err := conn.PgConn().CancelRequest(ctx); err != nil {
					t.Errorf("on %s CancelRequest: %v", n.ID, err)
				}
			}
		}
		if sqlstate(cerr) != "57014" {
			t.Errorf("on %s cancelled query: %v, want 57014", n.ID, cerr)
		}
		usable("57014")
	}
	// Nothing of the failed statements was applied anywhere.
	dumps := compareReplicas(ctx, t, c, "SELECT id, name, n, parent FROM err_t ORDER BY id")
	if d := dumps["SELECT id, name, n, parent FROM err_t ORDER BY id"]; len(d) != 1 {
		t.Errorf("err_t holds %v, want only row 1", d)
	}
}

func testTransactions(t *testing.T, c *cluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, followers := leaderAndFollowers(ctx, t, c)
	conn := connect(ctx, t, followers[len(followers)-1], "")
	mustExec(ctx, t, conn, "CREATE TABLE txn (id INTEGER PRIMARY KEY, note TEXT)")

	mustExec(ctx, t, conn, "BEGIN")
	mustExec(ctx, t, conn, "INSERT INTO txn (id, note) VALUES (1, 'committed')")
	mustExec(ctx, t, conn, "INSERT INTO txn (id, note) VALUES (2, 'committed')")
	if tag := mustExec(ctx, t, conn, "COMMIT"); tag.String() != "COMMIT" {
		t.Errorf("COMMIT tag %q", tag)
	}

	mustExec(ctx, t, conn, "BEGIN")
	mustExec(ctx, t, conn, "INSERT INTO txn (id, note) VALUES (3, 'rolled back')")
	if tag := mustExec(ctx, t, conn, "ROLLBACK"); tag.String() != "ROLLBACK" {
		t.Errorf("ROLLBACK tag %q", tag)
	}

	// A failing statement makes COMMIT roll everything back (the error
	// comes at the statement, or at COMMIT when writes are deferred).
	mustExec(ctx, t, conn, "BEGIN")
	mustExec(ctx, t, conn, "INSERT INTO txn (id, note) VALUES (4, 'doomed')")
	_, dupErr := conn.Exec(ctx, "INSERT INTO txn (id, note) VALUES (1, 'dup')")
	tag, commitErr := conn.Exec(ctx, "COMMIT")
	switch {
	case dupErr != nil && sqlstate(dupErr) != "23505":
		t.Errorf("duplicate inside a transaction: %v, want 23505", dupErr)
	case dupErr == nil && sqlstate(commitErr) != "23505":
		t.Errorf("COMMIT with a duplicate inside: %v, want 23505", commitErr)
	case commitErr == nil && tag.String() != "ROLLBACK":
		t.Errorf("COMMIT of a failed transaction: tag %q, want ROLLBACK", tag)
	}

	// A pgx batch is one pipeline under one Sync: atomic.
	b := &pgx.Batch{}
	b.Queue("INSERT INTO txn (id, note) VALUES (5, 'batch')")
	b.Queue("INSERT INTO txn (id, note) VALUES (6, 'batch')")
	b.Queue("INSERT INTO txn (id, note) VALUES (1, 'batch dup')")
	if err := conn.SendBatch(ctx, b).Close(); sqlstate(err) != "23505" {
		t.Errorf("failing batch: %v, want 23505", err)
	}
	b = &pgx.Batch{}
	b.Queue("INSERT INTO txn (id, note) VALUES (7, 'batch')")
	b.Queue("INSERT INTO txn (id, note) VALUES (8, 'batch')")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		t.Errorf("batch: %v", err)
	}

	// pgx's transaction helper.
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO txn (id, note) VALUES ($1, $2)", 9, "BeginFunc")
		return err
	})
	if err != nil {
		t.Errorf("BeginFunc: %v", err)
	}
	sentinel := errors.New("abort")
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO txn (id, note) VALUES ($1, $2)", 10, "aborted"); err != nil {
			return err
		}
		return sentinel
	})
	if !errors.Is(err, sentinel) {
		t.Errorf("aborted BeginFunc: %v", err)
	}

	// Reading one's own writes inside a transaction: supported or refused
	// with a clear error, never a wrong answer.
	mustExec(ctx, t, conn, "BEGIN")
	mustExec(ctx, t, conn, "INSERT INTO txn (id, note) VALUES (11, 'own write')")
	var note string
	err = conn.QueryRow(ctx, "SELECT note FROM txn WHERE id = 11").Scan(&note)
	switch {
	case err == nil && note != "own write":
		t.Errorf("read inside a transaction saw %q, not its own write", note)
	case err == nil:
		t.Log("reads inside a write transaction see its own writes")
	case sqlstate(err) == "":
		t.Errorf("read inside a transaction failed without a SQLSTATE: %v", err)
	default:
		t.Logf("read inside a write transaction refused: %v", shortErr(err))
	}
	conn.Exec(ctx, "ROLLBACK")
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("session unusable after the transactions: %v", err)
	}

	q := "SELECT id, note FROM txn ORDER BY id"
	got := compareReplicas(ctx, t, c, q)[q]
	want := []string{"[1 committed]", "[2 committed]", "[7 batch]", "[8 batch]", "[9 BeginFunc]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("txn holds %v, want %v", got, want)
	}
}

func testNonDeterminism(t *testing.T, c *cluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := connect(ctx, t, c.Nodes()[0], "")
	mustExec(ctx, t, conn, "CREATE TABLE nd (id INTEGER PRIMARY KEY, r INTEGER, b BLOB, t TEXT, ts TEXT, h TEXT, j TEXT)")
	for i, n := range c.Nodes() {
		w := connect(ctx, t, n, "")
		mustExec(ctx, t, w, `INSERT INTO nd (id, r, b, t, ts, h, j) VALUES ($1, random(), randomblob(16),
			datetime('now'), CURRENT_TIMESTAMP, hex(randomblob(4)), strftime('%f', 'now'))`, i)
		mustExec(ctx, t, w, "UPDATE nd SET r = abs(random()) % 1000000, h = h || hex(randomblob(2)) WHERE id = $1", i)
	}
	// now() is PostgreSQL's; the translation layer should accept it.
	if _, err := conn.Exec(ctx, "INSERT INTO nd (id, ts) VALUES (100, now())"); err != nil {
		t.Logf("now() not accepted: %v", shortErr(err))
	}
	q := "SELECT id, r, hex(b), t, ts, h, j FROM nd ORDER BY id"
	got := compareReplicas(ctx, t, c, q)[q]
	if len(got) < len(c.Nodes()) {
		t.Errorf("nd holds %v", got)
	}
}

func testDatabaseSQL(t *testing.T, c *cluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, followers := leaderAndFollowers(ctx, t, c)
	db, err := sql.Open("pgx", followers[0].DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE dbsql (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		res, err := db.ExecContext(ctx, "INSERT INTO dbsql (id, name, score) VALUES ($1, $2, $3)", i, fmt.Sprintf("item-%d", i), float64(i)/2)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Errorf("insert affected %d rows", n)
		}
	}
	res, err := db.ExecContext(ctx, "UPDATE dbsql SET name = name || '-x' WHERE id > $1", 3)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 2 {
		t.Errorf("update affected %d rows, want 2", n)
	}
	if _, err := db.ExecContext(ctx, "DELETE FROM dbsql WHERE id = $1", 1); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO dbsql (id, name) VALUES ($1, $2)", 6, "rolled back"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, "SELECT id, name, score FROM dbsql ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id int64
		var name string
		var score sql.NullFloat64
		if err := rows.Scan(&id, &name, &score); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s:%v", id, name, score.Float64))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := "[2:item-2:1 3:item-3:1.5 4:item-4-x:2 5:item-5-x:2.5]"
	if fmt.Sprint(got) != want {
		t.Errorf("database/sql read %v, want %s", got, want)
	}
	var name string
	err = db.QueryRowContext(ctx, "SELECT name FROM dbsql WHERE id = $1", 42).Scan(&name)
	if !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("missing row: %v, want sql.ErrNoRows", err)
	}
}

// testReadAfterWrite writes through each follower in turn and, once the
// write is acknowledged, reads it back at once on every node at every
// level that promises it: linearizable everywhere, lease on the leader
// (and read-index elsewhere). A read that misses an acknowledged write is
// stale.
func testReadAfterWrite(t *testing.T, c *cluster.Cluster) { readAfterWrite(t, c, 150) }

// TestReadAfterWriteUnderLoad is testReadAfterWrite on a cluster that
// takes a snapshot every 50 entries while other clients write as fast as
// they can, so that reads race with snapshots, large batches and slow
// fsyncs (a leader whose own fsync lags its followers' acknowledgements).
func TestReadAfterWriteUnderLoad(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3, SnapshotEntries: 50})
	ctx, cancel := context.WithCancel(context.Background())
	setup := connect(ctx, t, c.Nodes()[0], "")
	mustExec(ctx, t, setup, "CREATE TABLE load (id INTEGER PRIMARY KEY AUTOINCREMENT, pad TEXT)")
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		conn := connect(ctx, t, c.Nodes()[i%3], "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				conn.Exec(ctx, "INSERT INTO load (pad) VALUES (hex(randomblob(512)))")
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	readAfterWrite(t, c, 60)
}

func readAfterWrite(t *testing.T, c *cluster.Cluster, writes int) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	leader, followers := leaderAndFollowers(ctx, t, c)
	setup := connect(ctx, t, leader, "")
	mustExec(ctx, t, setup, "CREATE TABLE raw (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
	mustExec(ctx, t, setup, "INSERT INTO raw (k, v) VALUES (1, 0)")
	writers := map[string]*pgx.Conn{}
	for _, f := range followers {
		writers[f.ID] = connect(ctx, t, f, "")
	}
	type reader struct {
		node, level string
		conn        *pgx.Conn
	}
	var readers []reader
	for _, n := range c.Nodes() {
		for _, level := range []string{"linearizable", "lease"} {
			readers = append(readers, reader{n.ID, level, connect(ctx, t, n, level)})
		}
	}
	stale := 0
	for i := 1; i <= writes; i++ {
		via := followers[i%len(followers)]
		mustExec(ctx, t, writers[via.ID], "UPDATE raw SET v = $1 WHERE k = 1", i)
		for _, r := range readers {
			var v int
			if err := r.conn.QueryRow(ctx, "SELECT v FROM raw WHERE k = 1").Scan(&v); err != nil {
				t.Fatalf("%s read on %s: %v", r.level, r.node, err)
			}
			if v != i {
				stale++
				if stale <= 10 {
					t.Errorf("%s read on %s saw %d right after write %d through %s was acknowledged", r.level, r.node, v, i, via.ID)
				}
			}
		}
	}
	if stale > 0 {
		t.Errorf("%d stale reads of acknowledged writes (leader %s)", stale, leader.ID)
	}
}
