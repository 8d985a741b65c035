package main

import (
	"strings"
	"testing"
)

func sp(s string) *string { return &s }

func TestWriteTable(t *testing.T) {
	// The expected outputs were printed by psql 15 for the same results.
	tests := []struct {
		name string
		tab  table
		want string
	}{
		{
			name: "numbers right, NULL, multi-line cell",
			tab: table{
				Columns: []string{"a", "bb", "c", "d", "n"},
				Right:   []bool{true, false, false, false, true},
				Rows: [][]*string{
					{sp("1"), sp("x"), nil, sp("l1\nline2"), sp("12.5")},
					{sp("100"), sp("yyyy"), sp("z"), sp("q"), sp("3")},
				},
			},
			want: "  a  |  bb  | c |   d   |  n   \n" +
				"-----+------+---+-------+------\n" +
				"   1 | x    |   | l1   +| 12.5\n" +
				"     |      |   | line2 | \n" +
				" 100 | yyyy | z | q     |    3\n" +
				"(2 rows)\n\n",
		},
		{
			name: "no rows",
			tab:  table{Columns: []string{"name"}},
			want: " name \n------\n(0 rows)\n\n",
		},
		{
			name: "last column continues",
			tab:  table{Columns: []string{"a", "b"}, Right: []bool{true, false}, Rows: [][]*string{{sp("1"), sp("x\ny")}}},
			want: " a | b \n---+---\n 1 | x+\n   | y\n(1 row)\n\n",
		},
		{
			name: "right-aligned NULL in last column is padded",
			tab:  table{Columns: []string{"a", "n"}, Right: []bool{true, true}, Rows: [][]*string{{sp("1"), nil}, {sp("2"), sp("33")}}},
			want: " a | n  \n---+----\n 1 |   \n 2 | 33\n(2 rows)\n\n",
		},
		{
			name: "header wider than values",
			tab:  table{Columns: []string{"x", "yyyyyy"}, Right: []bool{false, true}, Rows: [][]*string{{sp("ab"), sp("1")}}},
			want: " x  | yyyyyy \n----+--------\n ab |      1\n(1 row)\n\n",
		},
		{
			name: "zero columns",
			tab:  table{Rows: [][]*string{{}}},
			want: "--\n(1 row)\n\n",
		},
		{
			name: "title, no footer, extra lines",
			tab: table{Title: "List", Columns: []string{"Schema", "Name"}, NoFooter: true,
				Rows: [][]*string{{sp("public"), sp("t")}}, Footers: []string{"Indexes:", `    "t_pkey" PRIMARY KEY, btree (id)`}},
			want: "     List\n Schema | Name \n--------+------\n public | t\nIndexes:\n    \"t_pkey\" PRIMARY KEY, btree (id)\n\n",
		},
		{
			name: "unicode counts runes",
			tab:  table{Columns: []string{"v"}, Rows: [][]*string{{sp("héllo")}, {sp("x")}}},
			want: "   v   \n-------\n héllo\n x\n(2 rows)\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeTable(&b, tt.tab); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s\n(got %q)", got, tt.want, got)
			}
		})
	}
}

func TestRowsFooter(t *testing.T) {
	for n, want := range map[int]string{0: "(0 rows)", 1: "(1 row)", 2: "(2 rows)", 1000: "(1000 rows)"} {
		if got := rowsFooter(n); got != want {
			t.Errorf("rowsFooter(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPositionMarker(t *testing.T) {
	tests := []struct {
		q    string
		pos  int
		want string
	}{
		{"select * from nosuch", 15, "LINE 1: select * from nosuch\n                      ^\n"},
		{"select 1,\n  nosuch", 13, "LINE 2:   nosuch\n          ^\n"},
		{"select", 0, ""},
		{"select", 99, ""},
	}
	for _, tt := range tests {
		if got := positionMarker(tt.q, tt.pos); got != tt.want {
			t.Errorf("positionMarker(%q, %d) = %q, want %q", tt.q, tt.pos, got, tt.want)
		}
	}
}

func TestWriteExpanded(t *testing.T) {
	// Expected outputs printed by psql 15 -x.
	tests := []struct {
		name string
		tab  table
		want string
	}{
		{
			name: "two records, multi-line value",
			tab: table{Columns: []string{"a", "bbb"}, Right: []bool{true, false},
				Rows: [][]*string{{sp("1"), sp("hello world")}, {sp("22"), sp("x\ny")}}},
			want: "-[ RECORD 1 ]----\na   | 1\nbbb | hello world\n-[ RECORD 2 ]----\na   | 22\nbbb | x          +\n    | y\n\n",
		},
		{name: "no rows", tab: table{Columns: []string{"a"}}, want: "(0 rows)\n\n"},
		{
			name: "long names get the column mark",
			tab:  table{Columns: []string{"aaaaaaaaaaaaaaaaaaaaa", "c"}, Rows: [][]*string{{sp("1"), sp("b")}}},
			want: "-[ RECORD 1 ]---------+--\naaaaaaaaaaaaaaaaaaaaa | 1\nc                     | b\n\n",
		},
		{
			name: "NULL and label longer than the block",
			tab:  table{Columns: []string{"n"}, Rows: [][]*string{{nil}}},
			want: "-[ RECORD 1 ]\nn | \n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeExpanded(&b, tt.tab); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s\n%q", b.String(), tt.want, b.String())
			}
		})
	}
}
