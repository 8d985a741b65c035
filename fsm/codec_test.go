package fsm

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCommandRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Command
		want Command // zero: same as in
	}{
		{"empty", Command{}, Command{}},
		{"header", Command{SessionID: math.MaxUint64, Seq: 1 << 40, UnixMicro: -5}, Command{}},
		{"values", Command{SessionID: 1, Seq: 2, UnixMicro: 3, Stmts: []Statement{
			{SQL: "INSERT INTO t VALUES ($1, $2, $3, $4, $5)", Args: []any{nil, int64(math.MinInt64), math.Inf(-1), "héllo\x00", []byte{0, 255}}},
			{SQL: ""},
			{SQL: "SELECT 1", Args: []any{[]byte{}}},
		}}, Command{}},
		{"restore", Command{SessionID: 9, Seq: 8, UnixMicro: 7, Restore: []byte{1, 2, 3}}, Command{}},
		{"read version", Command{SessionID: 1, Seq: 2, UnixMicro: 3, ReadVersion: 1 << 50, Stmts: []Statement{{SQL: "UPDATE t SET a = $1", Args: []any{int64(1)}}}}, Command{}},
		{"read tables", Command{SessionID: 1, Seq: 2, UnixMicro: 3, ReadVersion: 9, ReadTables: []string{"a", "bé"}, Stmts: []Statement{{SQL: "UPDATE t SET a = 1"}}}, Command{}},
		{"tables without version", Command{ReadTables: []string{"a"}, Stmts: []Statement{{SQL: "x"}}}, Command{Stmts: []Statement{{SQL: "x"}}}},
		{"normalized", Command{Stmts: []Statement{{SQL: "x", Args: []any{1, int32(-2), uint16(3), true, false, float32(0.5), []byte(nil)}}}},
			Command{Stmts: []Statement{{SQL: "x", Args: []any{int64(1), int64(-2), int64(3), int64(1), int64(0), 0.5, nil}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if reflect.DeepEqual(want, Command{}) {
				want = tc.in
			}
			got, err := DecodeCommand(EncodeCommand(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	good := EncodeCommand(Command{SessionID: 300, Seq: 7, UnixMicro: 9, Stmts: []Statement{{SQL: "SELECT $1", Args: []any{"abc"}}}})
	tests := []struct {
		name       string
		in         []byte
		keepHeader bool
	}{
		{"empty", nil, false},
		{"version", append([]byte{2}, good[1:]...), false},
		{"truncated header", good[:2], false},
		{"truncated body", good[:len(good)-1], true},
		{"trailing", append(append([]byte{}, good...), 0), true},
		{"huge count", []byte{1, 1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}, true},
		{"bad tag", []byte{1, 1, 1, 1, 1, 0, 1, 9}, true},
		{"read version 0", []byte{3, 1, 1, 1, 0, 0}, true},
		{"truncated read version", []byte{3, 1, 1, 1, 0x80}, true},
		{"unsupported type", EncodeCommand(Command{SessionID: 1, Seq: 1, Stmts: []Statement{{SQL: "x", Args: []any{time.Now()}}}}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCommand(tc.in)
			if !errors.Is(err, ErrCorruptCommand) {
				t.Fatalf("err = %v, want ErrCorruptCommand", err)
			}
			if tc.keepHeader && c.SessionID == 0 {
				t.Errorf("header lost: %+v", c)
			}
			if c.Stmts != nil {
				t.Errorf("statements returned with an error: %+v", c.Stmts)
			}
		})
	}
}

// TestCommandVersions: a command without ReadVersion keeps the version 1
// bytes; with it, version 3.
func TestCommandVersions(t *testing.T) {
	c := Command{SessionID: 1, Seq: 2, UnixMicro: 3, Stmts: []Statement{{SQL: "SELECT 1"}}}
	v1 := EncodeCommand(c)
	if want := []byte{1, 1, 2, 6, 1, 8}; string(v1[:len(want)]) != string(want) {
		t.Fatalf("version 1 bytes changed: %v", v1)
	}
	c.ReadVersion = 42
	v3 := EncodeCommand(c)
	if v3[0] != 3 || len(v3) != len(v1)+1 {
		t.Fatalf("version 3: %v", v3)
	}
	c.ReadTables = []string{"ab"}
	v5 := EncodeCommand(c)
	if v5[0] != 5 || len(v5) != len(v3)+4 {
		t.Fatalf("version 5: %v", v5)
	}
	// Version 5 without tables is refused; versions 1 and 3 still decode.
	bad := append([]byte{5}, v3[1:5]...)
	bad = append(bad, 0)
	if _, err := DecodeCommand(append(bad, v3[5:]...)); !errors.Is(err, ErrCorruptCommand) {
		t.Fatalf("version 5 without tables: %v", err)
	}
	for _, b := range [][]byte{v1, v3} {
		if got, err := DecodeCommand(b); err != nil || got.ReadTables != nil {
			t.Fatalf("old version: %+v, %v", got, err)
		}
	}
}

func TestNormalizeArg(t *testing.T) {
	if _, err := NormalizeArg(uint64(math.MaxUint64)); err == nil {
		t.Error("uint64 overflow accepted")
	}
	if _, err := NormalizeArg(time.Time{}); err == nil {
		t.Error("time.Time accepted")
	}
	if _, err := NormalizeArg(struct{}{}); err == nil {
		t.Error("struct accepted")
	}
}

func TestResultsRoundTrip(t *testing.T) {
	in := []Result{
		{Columns: []Column{{"a", "INTEGER"}, {"b", ""}}, Rows: [][]any{{int64(1), "x"}, {nil, []byte{}}, {2.5, []byte{1}}}, RowsAffected: 2, LastInsertID: -1},
		{},
		{RowsAffected: 1, Err: &SQLError{Code: 2067, Message: "UNIQUE constraint failed: t.a"}},
	}
	got, err := decodeResults(encodeResults(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("got %#v, want %#v", got, in)
	}
	if _, err := decodeResults([]byte{1, 5}); !errors.Is(err, ErrCorruptResults) {
		t.Fatalf("corrupt: %v", err)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(EncodeCommand(Command{SessionID: 1, Seq: 2, UnixMicro: 3, Stmts: []Statement{{SQL: "SELECT $1, $2", Args: []any{int64(1), "x"}}}}))
	f.Add(EncodeCommand(Command{Stmts: []Statement{{SQL: "x", Args: []any{nil, 1.5, []byte{1}}}}}))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add(EncodeCommand(Command{SessionID: 1, ReadVersion: 77, Stmts: []Statement{{SQL: "x"}}}))
	f.Add(EncodeCommand(Command{SessionID: 1, ReadVersion: 77, ReadTables: []string{"t", "u"}, Stmts: []Statement{{SQL: "x"}}}))
	f.Add(EncodeCommand(Command{SessionID: 1, Node: &NodeInfo{ID: "n1", HTTPAddr: "h:1", PGAddr: "p:1"}}))
	f.Add(EncodeCommand(Command{SessionID: 5, Seq: 6, Restore: []byte("SQLite format 3\x00")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptCommand) || c.Stmts != nil {
				t.Fatalf("error %v with %+v", err, c)
			}
			return
		}
		again, err := DecodeCommand(EncodeCommand(c))
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalizeForCompare(c), normalizeForCompare(again)) {
			t.Fatalf("round trip changed %#v into %#v", c, again)
		}
	})
}

// normalizeForCompare maps NaNs to a string so DeepEqual can compare them.
func normalizeForCompare(c Command) Command {
	for i := range c.Stmts {
		for j, a := range c.Stmts[i].Args {
			if f, ok := a.(float64); ok && math.IsNaN(f) {
				c.Stmts[i].Args[j] = "NaN"
			}
		}
	}
	return c
}

func FuzzDecodeResults(f *testing.F) {
	f.Add(encodeResults([]Result{{Columns: []Column{{"a", "b"}}, Rows: [][]any{{int64(1)}}, Err: &SQLError{Code: 1, Message: "m"}}}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := decodeResults(b)
		if err != nil {
			return
		}
		if _, err := decodeResults(encodeResults(rs)); err != nil {
			t.Fatalf("re-encoded results do not decode: %v", err)
		}
	})
}

// FuzzCheckStatement: the classifier never panics, and what it refuses
// in reads it also refuses in writes (writes are stricter).
func FuzzCheckStatement(f *testing.F) {
	for _, s := range []string{"BEGIN", "SELECT 'x''y' -- c", "/* unterminated", `"quoted""id"`, "[br", "x'00'", "PRAGMA main.table_info(t)", "CREATE TEMP TABLE x(a)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		r := checkStatement(sql, false)
		w := checkStatement(sql, true)
		first := ""
		if toks := lex(sql); len(toks) > 0 {
			first = toks[0].text
		}
		if r != nil && w == nil && !strings.EqualFold(first, "PRAGMA") {
			t.Fatalf("%q refused in reads (%v) but allowed in writes", sql, r)
		}
	})
}
