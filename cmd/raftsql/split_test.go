package main

import (
	"reflect"
	"strings"
	"testing"
)

// splitLines feeds lines to a splitter and returns the statements and the
// unfinished rest.
func splitLines(lines ...string) ([]string, string) {
	var s splitter
	var out []string
	for _, l := range lines {
		out = append(out, s.Feed(l)...)
	}
	return out, s.Rest()
}

func TestSplitter(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string
		rest  string
	}{
		{"one", []string{"select 1;"}, []string{"select 1;"}, ""},
		{"two on a line", []string{"select 1; select 2;"}, []string{"select 1;", "select 2;"}, ""},
		{"multi-line", []string{"select", "  1", ";"}, []string{"select\n  1\n;"}, ""},
		{"unfinished", []string{"select 1"}, nil, "select 1"},
		{"rest after last", []string{"select 1; select"}, []string{"select 1;"}, "select"},
		{"empty statements dropped", []string{";;  ; select 1;"}, []string{"select 1;"}, ""},
		{"quote", []string{"select 'a;b';"}, []string{"select 'a;b';"}, ""},
		{"doubled quote", []string{"select 'it''s;';"}, []string{"select 'it''s;';"}, ""},
		{"quote over lines", []string{"select 'a", ";b';"}, []string{"select 'a\n;b';"}, ""},
		{"identifier", []string{`select 1 as "a;b";`}, []string{`select 1 as "a;b";`}, ""},
		{"E string escape", []string{`select E'a\';b';`}, []string{`select E'a\';b';`}, ""},
		{"plain backslash", []string{`select 'a\'; select 2;`}, []string{`select 'a\';`, "select 2;"}, ""},
		{"line comment", []string{"select 1 -- a; b", ";"}, []string{"select 1 -- a; b\n;"}, ""},
		{"block comment", []string{"select /* ; */ 1;"}, []string{"select /* ; */ 1;"}, ""},
		{"nested block comment", []string{"select /* /* ; */ ; */ 1;"}, []string{"select /* /* ; */ ; */ 1;"}, ""},
		{"block comment over lines", []string{"/* a", "; */ select 1;"}, []string{"/* a\n; */ select 1;"}, ""},
		{"dollar quote", []string{"select $$a;b$$;"}, []string{"select $$a;b$$;"}, ""},
		{"tagged dollar quote", []string{"select $x$a;$$;b$x$;"}, []string{"select $x$a;$$;b$x$;"}, ""},
		{"dollar over lines", []string{"select $f$", ";", "$f$;"}, []string{"select $f$\n;\n$f$;"}, ""},
		{"parameter is not a quote", []string{"select $1; select 2;"}, []string{"select $1;", "select 2;"}, ""},
		{"identifier with dollar", []string{"select a$b; select 2;"}, []string{"select a$b;", "select 2;"}, ""},
		{"semicolon after dash", []string{"select 1-1;"}, []string{"select 1-1;"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rest := splitLines(tt.lines...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("statements = %q, want %q", got, tt.want)
			}
			if rest != tt.rest {
				t.Errorf("rest = %q, want %q", rest, tt.rest)
			}
		})
	}
}

func TestSplitterInString(t *testing.T) {
	tests := []struct {
		line string
		want byte
	}{
		{"select 'a", '\''},
		{`select "a`, '"'},
		{"select $$a", '$'},
		{"select /* a", '*'},
		{"select 1", 0},
		{"select 'a' -- '", 0},
	}
	for _, tt := range tests {
		var s splitter
		s.Feed(tt.line)
		if got := s.InString(); got != tt.want {
			t.Errorf("after %q InString() = %q, want %q", tt.line, got, tt.want)
		}
		if !s.Pending() {
			t.Errorf("after %q Pending() = false", tt.line)
		}
	}
}

// FuzzSplitter checks that any input is split without a panic and that
// the statements and the rest keep every non-space byte, in order.
func FuzzSplitter(f *testing.F) {
	for _, s := range []string{"select 1; select 2", "select 'a;", "$a$;$a$;", "/* /* */ ;", "E'\\';';", "-- ;\n;", "\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		stmts, rest := splitLines(strings.Split(in, "\n")...)
		squash := func(s string) string { return strings.Join(strings.Fields(s), "") }
		got := squash(strings.Join(stmts, "") + rest)
		want := squash(in)
		// Statements made only of ';' and space are dropped.
		if strings.ReplaceAll(got, ";", "") != strings.ReplaceAll(want, ";", "") {
			t.Fatalf("split lost text: %q -> %q + %q", in, stmts, rest)
		}
		for _, s := range stmts {
			if !strings.HasSuffix(s, ";") {
				t.Fatalf("statement %q does not end with ';'", s)
			}
		}
	})
}
