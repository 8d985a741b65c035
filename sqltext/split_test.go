package sqltext

import (
	"errors"
	"strings"
	"testing"
)

func TestLexTokens(t *testing.T) {
	type tk struct {
		k    TokenKind
		text string
	}
	tests := []struct {
		in   string
		want []tk
	}{
		{"select 1", []tk{{TokIdent, "select"}, {TokSpace, " "}, {TokNumber, "1"}}},
		{`"a""b"`, []tk{{TokQuotedIdent, `"a""b"`}}},
		{"'it''s'", []tk{{TokString, "'it''s'"}}},
		{`E'a\'b'`, []tk{{TokEString, `E'a\'b'`}}},
		{`e'\\'`, []tk{{TokEString, `e'\\'`}}},
		{"$$a;b$$", []tk{{TokDollarString, "$$a;b$$"}}},
		{"$fn$ $$ ' $fn$", []tk{{TokDollarString, "$fn$ $$ ' $fn$"}}},
		{"$1::int", []tk{{TokParam, "$1"}, {TokOp, "::"}, {TokIdent, "int"}}},
		{"?", []tk{{TokParam, "?"}}},
		{"?12", []tk{{TokParam, "?12"}}},
		{"$name", []tk{{TokParam, "$name"}}},
		{"x'ff'", []tk{{TokBitString, "x'ff'"}}},
		{"B'01'", []tk{{TokBitString, "B'01'"}}},
		{"N'x'", []tk{{TokString, "N'x'"}}},
		{"1.5e-3", []tk{{TokNumber, "1.5e-3"}}},
		{".5", []tk{{TokNumber, ".5"}}},
		{"0xFF", []tk{{TokNumber, "0xFF"}}},
		{"1_000", []tk{{TokNumber, "1_000"}}},
		{"a--c\nb", []tk{{TokIdent, "a"}, {TokComment, "--c"}, {TokSpace, "\n"}, {TokIdent, "b"}}},
		{"/* a /* b */ c */x", []tk{{TokComment, "/* a /* b */ c */"}, {TokIdent, "x"}}},
		{"a<>b", []tk{{TokIdent, "a"}, {TokOp, "<>"}, {TokIdent, "b"}}},
		{"a=-1", []tk{{TokIdent, "a"}, {TokOp, "="}, {TokOp, "-"}, {TokNumber, "1"}}},
		{"a!~b", []tk{{TokIdent, "a"}, {TokOp, "!~"}, {TokIdent, "b"}}},
		{"a||b", []tk{{TokIdent, "a"}, {TokOp, "||"}, {TokIdent, "b"}}},
		{"a->>'k'", []tk{{TokIdent, "a"}, {TokOp, "->>"}, {TokString, "'k'"}}},
		{"a*-- c", []tk{{TokIdent, "a"}, {TokOp, "*"}, {TokComment, "-- c"}}},
		{"t.c", []tk{{TokIdent, "t"}, {TokPunct, "."}, {TokIdent, "c"}}},
		{"a[1:2]", []tk{{TokIdent, "a"}, {TokPunct, "["}, {TokNumber, "1"}, {TokPunct, ":"}, {TokNumber, "2"}, {TokPunct, "]"}}},
		{"café", []tk{{TokIdent, "café"}}},
		{"foo$bar", []tk{{TokIdent, "foo$bar"}}},
		{"`a`", []tk{{TokQuotedIdent, "`a`"}}},
	}
	for _, tt := range tests {
		toks, err := Lex(tt.in)
		if err != nil {
			t.Errorf("Lex(%q): %v", tt.in, err)
			continue
		}
		var got []tk
		for _, x := range toks {
			got = append(got, tk{x.Kind, x.Text})
		}
		if len(got) != len(tt.want) {
			t.Errorf("Lex(%q) = %v, want %v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("Lex(%q)[%d] = %v, want %v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

func TestLexErrors(t *testing.T) {
	tests := []struct {
		in  string
		off int
	}{
		{"select 'abc", 7},
		{`select "abc`, 7},
		{`select E'abc\'`, 8},
		{"select $$abc", 7},
		{"select $x$abc$y$", 7},
		{"x /* a /* b */", 2},
		{"`a", 0},
	}
	for _, tt := range tests {
		_, err := Lex(tt.in)
		var se *SyntaxError
		if !errors.Is(err, ErrSyntax) || !errors.As(err, &se) {
			t.Errorf("Lex(%q) err = %v, want a SyntaxError", tt.in, err)
			continue
		}
		if se.Offset != tt.off {
			t.Errorf("Lex(%q) offset = %d, want %d", tt.in, se.Offset, tt.off)
		}
		if _, err := Split(tt.in); !errors.Is(err, ErrSyntax) {
			t.Errorf("Split(%q) err = %v, want ErrSyntax", tt.in, err)
		}
	}
}

func TestLexRoundTrip(t *testing.T) {
	in := "select E'\\n', $a$x$a$, \"q\"\"\", 'it''s' /* c /* d */ */ -- e\n; x::int"
	toks, err := Lex(in)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, tk := range toks {
		if tk.Pos != b.Len() {
			t.Fatalf("token %v at %d, want %d", tk, tk.Pos, b.Len())
		}
		b.WriteString(tk.Text)
	}
	if b.String() != in {
		t.Fatalf("round trip %q != %q", b.String(), in)
	}
}

func TestSplit(t *testing.T) {
	type st struct {
		text string
		kind Kind
		verb string
		off  int
	}
	tests := []struct {
		in   string
		want []st
	}{
		{"", []st{{"", KindEmpty, "", 0}}},
		{"  ", []st{{"", KindEmpty, "", 0}}},
		{"-- ping", []st{{"", KindEmpty, "", 0}}},
		{"/* a */ ; ;", []st{{"", KindEmpty, "", 0}}},
		{"select 1", []st{{"select 1", KindRead, "SELECT", 0}}},
		{"select 1;", []st{{"select 1", KindRead, "SELECT", 0}}},
		{"select 1; select 2", []st{{"select 1", KindRead, "SELECT", 0}, {"select 2", KindRead, "SELECT", 10}}},
		{" -- c\n insert into t values (1) -- x\n; commit",
			[]st{{"insert into t values (1)", KindWrite, "INSERT", 7}, {"commit", KindCommit, "COMMIT", 39}}},
		{"select ';' ; select $$;$$; select E'\\';'", []st{
			{"select ';'", KindRead, "SELECT", 0},
			{"select $$;$$", KindRead, "SELECT", 13},
			{"select E'\\';'", KindRead, "SELECT", 27},
		}},
		{`select ";" from t`, []st{{`select ";" from t`, KindRead, "SELECT", 0}}},
		{"select /* ; */ 1", []st{{"select /* ; */ 1", KindRead, "SELECT", 0}}},
		{"create trigger tr after insert on t begin insert into u values (1); update u set a = case when 1 then 2 end; end; select 1",
			[]st{
				{"create trigger tr after insert on t begin insert into u values (1); update u set a = case when 1 then 2 end; end", KindWrite, "CREATE TRIGGER", 0},
				{"select 1", KindRead, "SELECT", 114},
			}},
		{"create function f() returns int language sql begin atomic select 1; select 2; end; select 3",
			[]st{
				{"create function f() returns int language sql begin atomic select 1; select 2; end", KindWrite, "CREATE FUNCTION", 0},
				{"select 3", KindRead, "SELECT", 83},
			}},
		{"create table begin (a int); select 1", []st{
			{"create table begin (a int)", KindWrite, "CREATE TABLE", 0},
			{"select 1", KindRead, "SELECT", 28},
		}},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		if err != nil {
			t.Errorf("Split(%q): %v", tt.in, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("Split(%q) = %+v, want %+v", tt.in, got, tt.want)
			continue
		}
		for i, g := range got {
			w := tt.want[i]
			if g.Text != w.text || g.Kind != w.kind || g.Verb != w.verb || g.Offset != w.off {
				t.Errorf("Split(%q)[%d] = %+v, want %+v", tt.in, i, g, w)
			}
			if g.Text != tt.in[g.Offset:g.Offset+len(g.Text)] {
				t.Errorf("Split(%q)[%d]: Text is not at Offset", tt.in, i)
			}
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		in   string
		kind Kind
		verb string
	}{
		{"SELECT 1", KindRead, "SELECT"},
		{"values (1)", KindRead, "SELECT"},
		{"TABLE t", KindRead, "SELECT"},
		{"(select 1) union (select 2)", KindRead, "SELECT"},
		{"explain select 1", KindRead, "EXPLAIN"},
		{"explain query plan select 1", KindRead, "EXPLAIN"},
		{"with x as (select 1) select * from x", KindRead, "SELECT"},
		{"with recursive x(n) as (select 1 union all select n+1 from x where n < 3) select * from x", KindRead, "SELECT"},
		{"with x as (select 1) insert into t select * from x", KindWrite, "INSERT"},
		{"with x as (select 1), y as not materialized (select 2) update t set a = (select * from y)", KindWrite, "UPDATE"},
		{"with x as (select 1) delete from t where a in (select * from x)", KindWrite, "DELETE"},
		{"with d as (delete from t returning *) select * from d", KindWrite, "SELECT"},
		{"with x as materialized (insert into t values (1) returning a) select a from x", KindWrite, "SELECT"},
		{"with x as (select 1) (select * from x)", KindRead, "SELECT"},
		{"insert into t values (1)", KindWrite, "INSERT"},
		{"replace into t values (1)", KindWrite, "INSERT"},
		{"update t set a = 1", KindWrite, "UPDATE"},
		{"delete from t", KindWrite, "DELETE"},
		{"truncate t", KindWrite, "TRUNCATE TABLE"},
		{"create table t (a int)", KindWrite, "CREATE TABLE"},
		{"CREATE TABLE IF NOT EXISTS t (a int)", KindWrite, "CREATE TABLE"},
		{"create temp table t (a int)", KindWrite, "CREATE TABLE"},
		{"create virtual table t using fts5(a)", KindWrite, "CREATE TABLE"},
		{"create table t as select 1", KindWrite, "SELECT"},
		{"create table t (a generated always as (1) stored)", KindWrite, "CREATE TABLE"},
		{"create unique index i on t(a)", KindWrite, "CREATE INDEX"},
		{"create or replace view v as select 1", KindWrite, "CREATE VIEW"},
		{"create materialized view v as select 1", KindWrite, "CREATE MATERIALIZED VIEW"},
		{"drop table t", KindWrite, "DROP TABLE"},
		{"drop index if exists i", KindWrite, "DROP INDEX"},
		{"alter table t add column b int", KindWrite, "ALTER TABLE"},
		{"analyze", KindWrite, "ANALYZE"},
		{"begin", KindBegin, "BEGIN"},
		{"BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY", KindBegin, "BEGIN"},
		{"begin immediate", KindBegin, "BEGIN"},
		{"start transaction read write", KindBegin, "START TRANSACTION"},
		{"start transaction isolation level repeatable read", KindBegin, "START TRANSACTION"},
		{"commit", KindCommit, "COMMIT"},
		{"commit work", KindCommit, "COMMIT"},
		{"end", KindCommit, "COMMIT"},
		{"end transaction", KindCommit, "COMMIT"},
		{"commit prepared 'x'", KindOther, "COMMIT PREPARED"},
		{"rollback", KindRollback, "ROLLBACK"},
		{"abort", KindRollback, "ROLLBACK"},
		{"rollback transaction", KindRollback, "ROLLBACK"},
		{"rollback to savepoint s", KindOther, "ROLLBACK"},
		{"rollback to s", KindOther, "ROLLBACK"},
		{"savepoint s", KindOther, "SAVEPOINT"},
		{"release savepoint s", KindOther, "RELEASE"},
		{"set x = 1", KindSet, "SET"},
		{"set session characteristics as transaction read only", KindSet, "SET"},
		{"set constraints all deferred", KindOther, "SET CONSTRAINTS"},
		{"show server_version", KindShow, "SHOW"},
		{"reset all", KindOther, "RESET"},
		{"discard all", KindOther, "DISCARD ALL"},
		{"deallocate all", KindOther, "DEALLOCATE ALL"},
		{"deallocate s1", KindOther, "DEALLOCATE"},
		{"listen x", KindOther, "LISTEN"},
		{`copy "t" ( "name", "v" ) from stdin binary`, KindOther, "COPY"},
		{"vacuum", KindOther, "VACUUM"},
		{"pragma table_info(t)", KindRead, "PRAGMA"},
		{"pragma main.user_version", KindRead, "PRAGMA"},
		{"pragma user_version = 3", KindWrite, "PRAGMA"},
		{"pragma foreign_keys(1)", KindWrite, "PRAGMA"},
		{"pragma optimize", KindWrite, "PRAGMA"},
		{"pragma integrity_check(10)", KindRead, "PRAGMA"},
		{"'x'", KindOther, ""},
		{"frobnicate", KindOther, "FROBNICATE"},
	}
	for _, tt := range tests {
		k, v, err := Classify(tt.in)
		if err != nil || k != tt.kind || v != tt.verb {
			t.Errorf("Classify(%q) = %v, %q, %v; want %v, %q", tt.in, k, v, err, tt.kind, tt.verb)
		}
	}
}
