package pgwire_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPgxTypes round-trips the declared types through pgx in the default
// (binary, cached statements) and simple protocols.
func TestPgxTypes(t *testing.T) {
	s := startServer(t, nil)
	for _, mode := range []string{"", "default_query_exec_mode=simple_protocol", "default_query_exec_mode=exec"} {
		c := connect(t, s, mode)
		ctx := ctxT(t)
		c.Exec(ctx, "drop table if exists ty")
		if _, err := c.Exec(ctx, `create table ty (id integer primary key, i2 smallint, i8 bigint, f4 real, b boolean, ts timestamptz,
			tsn timestamp, d date, u uuid, j json, jb jsonb, num numeric(12,3), vc varchar(10), by bytea)`); err != nil {
			t.Fatal(err)
		}
		ts := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
		uuid := [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}
		var uuidArg, jArg, jbArg any = uuid, map[string]any{"a": 1.0}, map[string]any{"b": "x"}
		if mode != "" {
			// Without a Describe, pgx cannot encode these without knowing the parameter type.
			uuidArg, jArg, jbArg = "12345678-9abc-def0-0102-030405060708", `{"a":1}`, `{"b":"x"}`
		}
		_, err := c.Exec(ctx, `insert into ty (id, i2, i8, f4, b, ts, tsn, d, u, j, jb, num, vc, by) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			1, int16(-7), int64(-1)<<50, float32(2.5), false, ts, ts, ts, uuidArg, jArg, jbArg, 123.456, "héllo", []byte{0xff, 0})
		if err != nil {
			t.Fatalf("%s: insert: %v", mode, err)
		}
		var (
			i2        int16
			i8        int64
			f4        float32
			b         bool
			gts, gtsn time.Time
			gd        time.Time
			gu        [16]byte
			j, jb     map[string]any
			num       float64
			vc        string
			by        []byte
			nullI     *int64
			nullS     *string
		)
		err = c.QueryRow(ctx, `select i2, i8, f4, b, ts, tsn, d, u, j, jb, num, vc, by, null, null from ty where id = $1`, 1).
			Scan(&i2, &i8, &f4, &b, &gts, &gtsn, &gd, &gu, &j, &jb, &num, &vc, &by, &nullI, &nullS)
		if err != nil {
			t.Fatalf("%s: select: %v", mode, err)
		}
		if i2 != -7 || i8 != -1<<50 || f4 != 2.5 || b || !gts.Equal(ts) || !gtsn.Equal(ts) || gd.Format("2006-01-02") != "2024-02-29" ||
			gu != uuid || j["a"] != 1.0 || jb["b"] != "x" || num != 123.456 || vc != "héllo" || string(by) != "\xff\x00" || nullI != nil || nullS != nil {
			t.Fatalf("%s: got %v %v %v %v %v %v %v %x %v %v %v %q %x", mode, i2, i8, f4, b, gts, gtsn, gd, gu, j, jb, num, vc, by)
		}
		// Boolean filters and expression columns.
		var n int
		if err := c.QueryRow(ctx, "select count(*) from ty where b = $1", false).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: bool param: %d %v", mode, n, err)
		}
		var sum float64
		var name string
		if err := c.QueryRow(ctx, "select sum(i8) * 0 + 1.5, 'x' || vc from ty").Scan(&sum, &name); err != nil || sum != 1.5 || name != "xhéllo" {
			t.Fatalf("%s: expressions: %v %q %v", mode, sum, name, err)
		}
		rows, _ := c.Query(ctx, "select id from ty where id > $1", 100)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil || len(ids) != 0 {
			t.Fatalf("%s: empty result: %v %v", mode, ids, err)
		}
	}
}
