package pgwire_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/pgwire"
)

// wireClient speaks raw protocol messages to the server, to check replies
// message by message (as the captures in /work/shared/pgwire-captures do).
type wireClient struct {
	t  testing.TB
	nc net.Conn
	fe *pgproto3.Frontend
}

func dialWire(t testing.TB, s *testServer) *wireClient {
	t.Helper()
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	w := &wireClient{t: t, nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
	w.send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u", "database": "d"}})
	w.until("ReadyForQuery")
	return w
}

func (w *wireClient) send(msgs ...pgproto3.FrontendMessage) {
	w.t.Helper()
	for _, m := range msgs {
		w.fe.Send(m)
	}
	if err := w.fe.Flush(); err != nil {
		w.t.Fatal(err)
	}
}

// describe renders a backend message compactly: "Type" or "Type:detail".
func describe(m pgproto3.BackendMessage) string {
	switch x := m.(type) {
	case *pgproto3.CommandComplete:
		return "CommandComplete:" + string(x.CommandTag)
	case *pgproto3.ErrorResponse:
		return "ErrorResponse:" + x.Code
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery:" + string(x.TxStatus)
	case *pgproto3.RowDescription:
		var parts []string
		for _, f := range x.Fields {
			parts = append(parts, fmt.Sprintf("%s/%d/%d", f.Name, f.DataTypeOID, f.Format))
		}
		return "RowDescription:" + strings.Join(parts, ",")
	case *pgproto3.DataRow:
		var parts []string
		for _, v := range x.Values {
			if v == nil {
				parts = append(parts, "NULL")
			} else {
				parts = append(parts, fmt.Sprintf("%x", v))
			}
		}
		return "DataRow:" + strings.Join(parts, ",")
	case *pgproto3.ParameterDescription:
		return fmt.Sprintf("ParameterDescription:%v", x.ParameterOIDs)
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3.")
}

// until reads messages up to and including one whose describe() starts
// with prefix, and returns their descriptions.
func (w *wireClient) until(prefix string) []string {
	w.t.Helper()
	var got []string
	for {
		m, err := w.fe.Receive()
		if err != nil {
			w.t.Fatalf("receive after %v: %v", got, err)
		}
		d := describe(m)
		if _, ok := m.(*pgproto3.ParameterStatus); ok {
			continue
		}
		got = append(got, d)
		if strings.HasPrefix(d, prefix) {
			return got
		}
	}
}

func expect(t testing.TB, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, " | "), strings.Join(want, " | "))
	}
}

func TestWireExtended(t *testing.T) {
	s := startServer(t, nil)
	w := dialWire(t, s)
	w.send(&pgproto3.Query{String: "create table t (id integer primary key, name text)"})
	expect(t, w.until("ReadyForQuery"), "CommandComplete:CREATE TABLE", "ReadyForQuery:I")
	w.send(&pgproto3.Query{String: "insert into t(name) values ('a'),('b'),('c')"})
	expect(t, w.until("ReadyForQuery"), "CommandComplete:INSERT 0 3", "ReadyForQuery:I")

	// Describe S: parameter types inferred from the column, result types
	// from the declared types.
	w.send(&pgproto3.Parse{Name: "s1", Query: "select id, name from t where id > $1 order by id"},
		&pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ParseComplete", "ParameterDescription:[23]", "RowDescription:id/23/0,name/25/0", "ReadyForQuery:I")

	w.send(&pgproto3.Parse{Query: "select name from t where id in ($1, $2) and id between $3 and $4 and name like $5 limit $6"},
		&pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ParseComplete", "ParameterDescription:[23 23 23 23 25 20]", "RowDescription:name/25/0", "ReadyForQuery:I")

	// A portal with a row limit: PortalSuspended, then the rest (inside a
	// transaction, as portals live until its end).
	w.send(&pgproto3.Query{String: "begin"})
	expect(t, w.until("ReadyForQuery"), "CommandComplete:BEGIN", "ReadyForQuery:T")
	w.send(&pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1", ParameterFormatCodes: []int16{1},
		Parameters: [][]byte{binary.BigEndian.AppendUint32(nil, 0)}, ResultFormatCodes: []int16{1, 0}},
		&pgproto3.Execute{Portal: "p1", MaxRows: 2}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "BindComplete", "DataRow:00000001,61", "DataRow:00000002,62", "PortalSuspended", "ReadyForQuery:T")
	w.send(&pgproto3.Execute{Portal: "p1", MaxRows: 2}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "DataRow:00000003,63", "CommandComplete:SELECT 1", "ReadyForQuery:T")
	w.send(&pgproto3.Query{String: "commit"})
	expect(t, w.until("ReadyForQuery"), "CommandComplete:COMMIT", "ReadyForQuery:I")

	// Describe P before Execute in one Sync: the types of expression
	// columns come from the values.
	w.send(&pgproto3.Parse{Query: "select count(*) as n, max(name) as m, 1.5 as f from t"},
		&pgproto3.Bind{}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ParseComplete", "BindComplete", "RowDescription:n/20/0,m/25/0,f/701/0",
		"DataRow:33,63,312e35", "CommandComplete:SELECT 1", "ReadyForQuery:I")

	// TRUE and FALSE are booleans (SQLite makes them 1 and 0).
	w.send(&pgproto3.Query{String: "select true, false"})
	expect(t, w.until("ReadyForQuery"), "RowDescription:bool/16/0,bool/16/0", "DataRow:74,66", "CommandComplete:SELECT 1", "ReadyForQuery:I")

	// Errors: unknown statement, unknown portal; the rest is skipped until
	// Sync, and the session goes on.
	w.send(&pgproto3.Bind{PreparedStatement: "nosuch"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ErrorResponse:26000", "ReadyForQuery:I")
	w.send(&pgproto3.Execute{Portal: "nosuch"}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ErrorResponse:34000", "ReadyForQuery:I")
	w.send(&pgproto3.Parse{Query: "select * from nosuch"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ErrorResponse:42P01", "ReadyForQuery:I")
	w.send(&pgproto3.Parse{Query: "selec 1"}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ErrorResponse:42601", "ReadyForQuery:I")
	w.send(&pgproto3.Parse{Query: "select 1; select 2"}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ErrorResponse:42601", "ReadyForQuery:I")
	w.send(&pgproto3.Parse{Name: "s1", Query: "select 1"}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ErrorResponse:42P05", "ReadyForQuery:I")

	// Close and Flush.
	w.send(&pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Flush{})
	expect(t, w.until("CloseComplete"), "CloseComplete")
	w.send(&pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ReadyForQuery:I")
	w.send(&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ErrorResponse:26000", "ReadyForQuery:I")

	// Flush sends queued results without waiting for Sync.
	w.send(&pgproto3.Parse{Query: "select name from t where id = $1"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("2")}},
		&pgproto3.Execute{}, &pgproto3.Flush{})
	expect(t, w.until("CommandComplete"), "ParseComplete", "BindComplete", "DataRow:62", "CommandComplete:SELECT 1")
	w.send(&pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ReadyForQuery:I")

	// Empty query, and a write with a wrong parameter count.
	w.send(&pgproto3.Query{String: " ; -- nothing"})
	expect(t, w.until("ReadyForQuery"), "EmptyQueryResponse", "ReadyForQuery:I")
	w.send(&pgproto3.Parse{Query: "insert into t(name) values($1)"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ParseComplete", "ErrorResponse:08P01", "ReadyForQuery:I")

	// Binary parameters of many types are decoded to SQLite values.
	w.send(&pgproto3.Query{String: "create table ty (b boolean, i2 smallint, f4 real, u uuid, ts timestamptz, d date, num numeric)"})
	w.until("ReadyForQuery")
	w.send(&pgproto3.Parse{Name: "ins", Query: "insert into ty values ($1, $2, $3, $4, $5, $6, $7)",
		ParameterOIDs: []uint32{16, 21, 700, 2950, 1184, 1082, 1700}},
		&pgproto3.Bind{PreparedStatement: "ins", ParameterFormatCodes: []int16{1},
			Parameters: [][]byte{{1}, {0, 7}, {0x3f, 0xc0, 0, 0}, {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0},
				{0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 1}, {0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x0d, 0x48}}},
		&pgproto3.Execute{}, &pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"), "ParseComplete", "BindComplete", "CommandComplete:INSERT 0 1", "ReadyForQuery:I")
	w.send(&pgproto3.Query{String: "select b, i2, f4, u, ts, d, num from ty"})
	got := w.until("ReadyForQuery")
	want := fmt.Sprintf("DataRow:%x,%x,%x,%x,%x,%x,%x", "t", "7", "1.5", "12345678-9abc-def0-1234-56789abcdef0", "2000-01-01 00:00:00+00", "2000-01-02", "12.34")
	if len(got) != 4 || got[1] != want {
		t.Fatalf("got %v\nwant %s", got, want)
	}
}

// TestWireBatchError: pgx_batch.log's shape: a write, a read, a failing
// statement and another under one Sync: the results before the error
// are sent, nothing after it, and the write is not applied.
func TestWireBatchError(t *testing.T) {
	s := startServer(t, nil)
	w := dialWire(t, s)
	w.send(&pgproto3.Query{String: "create table t (id integer primary key, name text unique)"})
	w.until("ReadyForQuery")
	w.send(&pgproto3.Query{String: "insert into t(name) values ('a')"})
	w.until("ReadyForQuery")
	w.send(
		&pgproto3.Parse{Query: "insert into t(name) values($1)"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("b")}}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "select count(*) from t"}, &pgproto3.Bind{ResultFormatCodes: []int16{1}}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "insert into t(name) values($1)"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("a")}}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "select 2"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Sync{})
	expect(t, w.until("ReadyForQuery"),
		"ParseComplete", "BindComplete", "NoData", "CommandComplete:INSERT 0 1",
		"ParseComplete", "BindComplete", "RowDescription:count/20/1", "DataRow:0000000000000002", "CommandComplete:SELECT 1",
		"ParseComplete", "BindComplete", "ErrorResponse:23505",
		"ReadyForQuery:I")
	w.send(&pgproto3.Query{String: "select count(*) from t"})
	expect(t, w.until("ReadyForQuery"), "RowDescription:count/20/0", "DataRow:31", "CommandComplete:SELECT 1", "ReadyForQuery:I")
}

// TestWireTerminateWithoutSync: writes queued without a Sync are not
// committed when the client terminates.
func TestWireTerminateWithoutSync(t *testing.T) {
	s := startServer(t, nil)
	w := dialWire(t, s)
	w.send(&pgproto3.Query{String: "create table t (a integer)"})
	w.until("ReadyForQuery")
	w.send(&pgproto3.Parse{Query: "insert into t values (1)"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Terminate{})
	// The server has handled Terminate once it closes the connection.
	for {
		if _, err := w.fe.Receive(); err != nil {
			break
		}
	}
	c := connect(t, s, "")
	var n int
	if err := c.QueryRow(ctxT(t), "select count(*) from t").Scan(&n); err != nil || n != 0 {
		t.Fatalf("count = %d, %v", n, err)
	}
}

func TestWireMalformed(t *testing.T) {
	s := startServer(t, func(c *pgwire.Config) { c.MaxMessageSize = 1024 })
	cases := map[string][]byte{
		"unknown type":     {'!', 0, 0, 0, 4},
		"short length":     {'Q', 0, 0, 0, 2},
		"bad bind":         {'B', 0, 0, 0, 6, 0, 0},
		"too large":        append([]byte{'Q', 0, 0, 0x10, 0}, make([]byte, 16)...),
		"describe subtype": {'D', 0, 0, 0, 6, 'X', 0, 'S', 0, 0, 0, 4},
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			w := dialWire(t, s)
			if _, err := w.nc.Write(raw); err != nil {
				t.Fatal(err)
			}
			var codes []string
			for {
				m, err := w.fe.Receive()
				if err != nil {
					break // connection closed
				}
				if e, ok := m.(*pgproto3.ErrorResponse); ok {
					codes = append(codes, e.Code)
				}
				if _, ok := m.(*pgproto3.ReadyForQuery); ok && name == "describe subtype" {
					break
				}
			}
			if len(codes) == 0 || codes[0] != "08P01" {
				t.Fatalf("codes %v, want 08P01", codes)
			}
		})
	}
	// The server still serves others.
	w := dialWire(t, s)
	w.send(&pgproto3.Query{String: "select 1"})
	expect(t, w.until("ReadyForQuery"), "RowDescription:?column?/20/0", "DataRow:31", "CommandComplete:SELECT 1", "ReadyForQuery:I")
}

func TestWireStartup(t *testing.T) {
	s := startServer(t, nil)
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(nc, nc)
	for _, m := range []pgproto3.FrontendMessage{&pgproto3.SSLRequest{}, &pgproto3.GSSEncRequest{}} {
		fe.Send(m)
		fe.Flush()
		b := make([]byte, 1)
		if _, err := nc.Read(b); err != nil || b[0] != 'N' {
			t.Fatalf("%T: %q %v", m, b, err)
		}
	}
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u", "application_name": "app"}})
	fe.Flush()
	params := map[string]string{}
	var key *pgproto3.BackendKeyData
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch x := m.(type) {
		case *pgproto3.ParameterStatus:
			params[x.Name] = x.Value
		case *pgproto3.BackendKeyData:
			key = &pgproto3.BackendKeyData{ProcessID: x.ProcessID, SecretKey: append([]byte(nil), x.SecretKey...)}
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	for k, v := range map[string]string{"client_encoding": "UTF8", "standard_conforming_strings": "on", "application_name": "app",
		"server_encoding": "UTF8", "DateStyle": "ISO, MDY", "integer_datetimes": "on", "session_authorization": "u", "IntervalStyle": "postgres"} {
		if params[k] != v {
			t.Errorf("ParameterStatus %s = %q, want %q", k, params[k], v)
		}
	}
	if !strings.HasPrefix(params["server_version"], "15.") || params["TimeZone"] == "" || params["is_superuser"] == "" {
		t.Errorf("params %v", params)
	}
	if key == nil || len(key.SecretKey) != 4 {
		t.Fatalf("BackendKeyData %+v", key)
	}
}

// TestCancel: a CancelRequest with the connection's key cancels its
// running statement with 57014; statement_timeout does the same.
func TestCancel(t *testing.T) {
	s := startServer(t, nil)
	s.eng.Hook = func(ctx context.Context, _ bool, stmts []fsm.Statement) error {
		if strings.Contains(stmts[0].SQL, "'block'") {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	c := connect(t, s, "")
	ctx := ctxT(t)
	qctx, cancel := context.WithCancel(ctx)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the query start; the cancel below is what is tested
		cancel()
	}()
	_, err := c.Exec(qctx, "select 'block'")
	if pgCode(err) != "57014" && !strings.Contains(fmt.Sprint(err), "context canceled") {
		t.Fatalf("canceled query: %v", err)
	}
	// pgx closes a connection whose context was canceled mid-query; a new
	// one checks statement_timeout.
	c = connect(t, s, "")
	if _, err := c.Exec(ctx, "SET statement_timeout = 20"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, "select 'block'")
	if pgCode(err) != "57014" {
		t.Fatalf("timeout: %v", err)
	}
	var one int
	if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil {
		t.Fatalf("after timeout: %v", err)
	}
}

// TestCancelRequestWire sends the CancelRequest itself and checks 57014.
func TestCancelRequestWire(t *testing.T) {
	s := startServer(t, nil)
	started := make(chan struct{}, 1)
	s.eng.Hook = func(ctx context.Context, _ bool, stmts []fsm.Statement) error {
		if strings.Contains(stmts[0].SQL, "'block'") {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u"}})
	fe.Flush()
	var pid uint32
	var secret []byte
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if k, ok := m.(*pgproto3.BackendKeyData); ok {
			pid, secret = k.ProcessID, append([]byte(nil), k.SecretKey...)
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	fe.Send(&pgproto3.Query{String: "select 'block'"})
	fe.Flush()
	<-started
	// A wrong key does nothing; the right one cancels.
	for _, key := range [][]byte{{0, 0, 0, 0}, secret} {
		cc, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		cfe := pgproto3.NewFrontend(cc, cc)
		cfe.Send(&pgproto3.CancelRequest{ProcessID: pid, SecretKey: key})
		cfe.Flush()
		cc.Close()
	}
	w := &wireClient{t: t, nc: nc, fe: fe}
	expect(t, w.until("ReadyForQuery"), "ErrorResponse:57014", "ReadyForQuery:I")
}

type stateErr struct{ code string }

func (e stateErr) Error() string    { return "engine says " + e.code }
func (e stateErr) SQLState() string { return e.code }

// TestEngineSQLState: an Engine error with a SQLSTATE (a leadership
// change: 40001) reaches the client with that code, the session stays
// usable and a retry succeeds.
func TestEngineSQLState(t *testing.T) {
	s := startServer(t, nil)
	fail := true
	s.eng.Hook = func(ctx context.Context, write bool, stmts []fsm.Statement) error {
		if write && fail && strings.Contains(stmts[0].SQL, "'retry'") {
			fail = false
			return fmt.Errorf("propose: %w", stateErr{"40001"})
		}
		return nil
	}
	c := connect(t, s, "")
	ctx := ctxT(t)
	if _, err := c.Exec(ctx, "create table r (a text)"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Exec(ctx, "insert into r values ('retry')")
	if pgCode(err) != "40001" {
		t.Fatalf("first try: %v", err)
	}
	if _, err := c.Exec(ctx, "insert into r values ('retry')"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, "select count(*) from r").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count = %d, %v", n, err)
	}
}

// TestLargeResult: a result bigger than the flush threshold streams out
// and arrives whole.
func TestLargeResult(t *testing.T) {
	s := startServer(t, nil)
	c := connect(t, s, "")
	ctx := ctxT(t)
	if _, err := c.Exec(ctx, "create table big (a integer primary key, b text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "with recursive n(i) as (select 1 union all select i + 1 from n where i < 3000) insert into big select i, printf('%.500c', 'x') from n"); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(ctx, "select a, b from big order by a")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var a int
		var b string
		if err := rows.Scan(&a, &b); err != nil || a != n+1 || len(b) != 500 {
			t.Fatalf("row %d: %d %d %v", n, a, len(b), err)
		}
		n++
	}
	if rows.Err() != nil || n != 3000 {
		t.Fatalf("%d rows, %v", n, rows.Err())
	}
}

// TestSCRAMMalformed: garbage in the SASL exchange gets 08P01 and a
// closed connection.
func TestSCRAMMalformed(t *testing.T) {
	s := authUsersServer(t, nil)
	for _, first := range []string{"", "garbage", "n,,n=u", "p=tls-server-end-point,,n=,r=x"} {
		nc, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		fe := pgproto3.NewFrontend(nc, nc)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u"}})
		fe.Flush()
		if m, err := fe.Receive(); err != nil {
			t.Fatal(err)
		} else if _, ok := m.(*pgproto3.AuthenticationSASL); !ok {
			t.Fatalf("got %T", m)
		}
		fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte(first)})
		fe.Flush()
		m, err := fe.Receive()
		if e, ok := m.(*pgproto3.ErrorResponse); err != nil || !ok || e.Code != "08P01" {
			t.Fatalf("%q: %#v %v", first, m, err)
		}
		nc.Close()
	}
}
