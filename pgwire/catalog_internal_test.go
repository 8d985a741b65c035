package pgwire

import (
	"reflect"
	"testing"
)

// TestSelectList checks that the select list ends at the first top-level
// FROM and splits only on top-level commas: a FROM or comma inside quotes
// or parentheses belongs to its item.
func TestSelectList(t *testing.T) {
	cases := []struct {
		query string
		want  []string
	}{
		{"SELECT a, b FROM t", []string{"a", " b"}},
		{"SELECT 1", []string{"1"}},
		{"(SELECT f(a, b) AS x, 'p, from q' AS y FROM t)", []string{"f(a, b) AS x", " 'p, from q' AS y"}},
		{`SELECT (SELECT c FROM u) AS "a,b", d FROM t`, []string{`(SELECT c FROM u) AS "a,b"`, " d"}},
		{"INSERT INTO t VALUES (1)", nil},
	}
	for _, c := range cases {
		if got := selectList(c.query); !reflect.DeepEqual(got, c.want) {
			t.Errorf("selectList(%q) = %q, want %q", c.query, got, c.want)
		}
	}
}
