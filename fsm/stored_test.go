package fsm

import (
	"strings"
	"testing"
)

// TestStoredResultBounded: a write whose results exceed MaxStoredResult is
// delivered whole, but its stored copy (what a retry returns) keeps the
// row count without the rows; a small result is stored whole.
func TestStoredResultBounded(t *testing.T) {
	a, b := openT(t, t.TempDir()), openT(t, t.TempDir())
	big := strings.Repeat("x", 1000)
	es := []Command{
		cmd(1, 1, st("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")),
		cmd(1, 2, st("INSERT INTO t(v) SELECT $1 FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100) SELECT x FROM c) RETURNING id, v", big)),
		cmd(2, 1, st("INSERT INTO t(v) VALUES ('small') RETURNING id")),
	}
	var first [][]Result
	for i, c := range es {
		first = append(first, applyOne(t, a, uint64(i+1), c))
		applyOne(t, b, uint64(i+1), c)
	}
	if r := first[1][0]; len(r.Rows) != 100 || r.RowsAffected != 100 {
		t.Fatalf("first delivery: %d rows, %d affected", len(r.Rows), r.RowsAffected)
	}
	retry := applyOne(t, a, 4, es[1])
	if r := retry[0]; r.Rows != nil || r.RowsAffected != 100 || r.LastInsertID != 100 || len(r.Columns) != 2 || r.Err != nil {
		t.Fatalf("retry of the big write: %+v", r)
	}
	applyOne(t, b, 4, es[1])
	retry = applyOne(t, a, 5, es[2])
	if r := retry[0]; len(r.Rows) != 1 || r.Rows[0][0] != int64(101) {
		t.Fatalf("retry of the small write: %+v", r)
	}
	applyOne(t, b, 5, es[2])
	assertSameDB(t, a, b)
	if n := len(storedResults(first[1])); n > MaxStoredResult {
		t.Fatalf("stored %d bytes", n)
	}
}
