package sqltext

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var fuzzSeeds = []string{
	"select 1; select 2",
	"-- ping",
	"select $1::int + 1",
	"select  'it''s' ::text || 'z'",
	"insert into t(name, v) values ($1, $2) returning id",
	"create table t (id bigserial primary key, name text not null, created timestamptz default now())",
	"select E'\\n', $a$;$a$, \"q\"\"\" /* /* */ */",
	"create trigger tr after insert on t begin select 1; end; select 2",
	"select c.oid::pg_catalog.regclass::pg_catalog.text from pg_catalog.pg_class c where c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default",
	"select random(), randomblob(4), datetime('now'), current_timestamp",
	"set search_path to public, \"$user\"",
	"with x as (delete from t returning *) select * from x",
	"select x::text::int, (a+b)::numeric(10,2), f(x)::bool, arr[1]::int4",
	"select '",
	"/*",
	"set x to 'a', b, -1; show x; set time zone local",
}

// FuzzSplit: Split never panics; statements lie where Offset says; and
// splitting the statements joined again gives the same statements.
func FuzzSplit(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		sts, err := Split(q)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Split error %v does not wrap ErrSyntax", err)
			}
			return
		}
		if len(sts) == 0 {
			t.Fatal("Split returned no statements")
		}
		var texts []string
		for _, s := range sts {
			if s.Offset < 0 || s.Offset+len(s.Text) > len(q) || q[s.Offset:s.Offset+len(s.Text)] != s.Text {
				t.Fatalf("statement %+v is not at its offset in %q", s, q)
			}
			if s.Kind == KindEmpty {
				if len(sts) != 1 || s.Text != "" {
					t.Fatalf("bad empty statement in %+v", sts)
				}
				return
			}
			texts = append(texts, s.Text)
			switch s.Kind { // the helpers must not panic either
			case KindSet:
				if _, err := ParseSetStmt(s.Text); err != nil && !errors.Is(err, ErrSyntax) {
					t.Fatalf("ParseSetStmt(%q): %v does not wrap ErrSyntax", s.Text, err)
				}
			case KindShow:
				ParseShow(s.Text)
			}
		}
		again, err := Split(strings.Join(texts, "\n;\n"))
		if err != nil {
			t.Fatalf("re-split of %q: %v", texts, err)
		}
		if len(again) != len(sts) {
			t.Fatalf("re-split gave %d statements, want %d: %q", len(again), len(sts), texts)
		}
		for i := range again {
			if again[i].Text != sts[i].Text || again[i].Kind != sts[i].Kind || again[i].Verb != sts[i].Verb {
				t.Fatalf("re-split statement %d = %+v, want %+v", i, again[i], sts[i])
			}
		}
	})
}

// FuzzTranslate: Translate never panics; errors wrap ErrSyntax or
// ErrUnsupported; its output lexes, splits into no more statements than
// the input, and translating it again changes nothing.
func FuzzTranslate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out, err := Translate(q)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Translate(%q) error %v wraps neither ErrSyntax nor ErrUnsupported", q, err)
			}
			return
		}
		in, err := Split(q)
		if err != nil {
			t.Fatalf("Translate accepted %q that Split rejects: %v", q, err)
		}
		got, err := Split(out)
		if err != nil {
			t.Fatalf("Translate(%q) = %q which does not split: %v", q, out, err)
		}
		if len(got) > len(in) {
			t.Fatalf("Translate(%q) = %q: %d statements from %d", q, out, len(got), len(in))
		}
		again, err := Translate(out)
		if err != nil {
			t.Fatalf("Translate(Translate(%q) = %q): %v", q, out, err)
		}
		if again != out {
			t.Fatalf("Translate not idempotent:\n in  %q\n out %q\n again %q", q, out, again)
		}
	})
}

// FuzzMakeDeterministic: never panics; errors wrap ErrSyntax or
// ErrNonDeterministic; the same seed gives the same text; the output
// splits into as many statements as the input and has nothing left to fix
// (a second pass returns it unchanged).
func FuzzMakeDeterministic(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, uint64(1))
	}
	f.Add("insert into t values (random(), randomblob(4), date(), strftime('%s','now'), current_time)", uint64(7))
	f.Add("create table t (a text default (datetime('now')), b text default current_date, c int default (strftime('%s')), d text default (date()) check (d > '2000'))", uint64(3))
	f.Fuzz(func(t *testing.T, q string, seed uint64) {
		now := time.Unix(int64(seed%4_000_000_000), 0)
		out, err := MakeDeterministic(q, now, rand.New(rand.NewPCG(seed, 1)))
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrNonDeterministic) {
				t.Fatalf("MakeDeterministic(%q): %v wraps neither ErrSyntax nor ErrNonDeterministic", q, err)
			}
			return
		}
		out2, err := MakeDeterministic(q, now, rand.New(rand.NewPCG(seed, 1)))
		if err != nil || out2 != out {
			t.Fatalf("same seed, different results: %q / %q, %v", out, out2, err)
		}
		in, err1 := Split(q)
		got, err2 := Split(out)
		if err1 != nil || err2 != nil || len(in) != len(got) {
			t.Fatalf("MakeDeterministic(%q) = %q: statements %d → %d (%v, %v)", q, out, len(in), len(got), err1, err2)
		}
		again, err := MakeDeterministic(out, now.Add(time.Hour), rand.New(rand.NewPCG(seed+1, 2)))
		if err != nil || again != out {
			t.Fatalf("second pass changed %q to %q (%v)", out, again, err)
		}
	})
}
