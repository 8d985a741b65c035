package pgwire_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/raftsql/raftsql/pgwire"
	"github.com/raftsql/raftsql/pgwire/pgwiretest"
)

var fuzzQueries = []string{
	"select 1", "select $1", "create table if not exists f(a integer primary key, b text, c boolean)",
	"insert into f(a, b) values($1, $2)", "insert into f(b) values('x')", "select * from f where a = $1",
	"update f set b = $2 where a = $1", "delete from f where a = $1", "begin", "commit", "rollback",
	"set raftsql.read_consistency = stale", "set raftsql.read_consistency = nope", "show all", "show server_version",
	"select count(*) from f", "", "-- c", "selec", "select 'unterminated", "SELECT version()", "savepoint x",
	"select c.relname from pg_catalog.pg_class c where c.relkind IN ('r')", "select 1; select 2",
	"insert into f(a) values (1); select * from f", "discard all", "deallocate all", "select $1::int + $2",
	"copy f from stdin", "select * from nosuch", "begin read only", "reset all", "select b from f limit $1",
}

// fuzzMessages turns fuzz input into a sequence of client messages that
// mostly make sense, with some garbage mixed in.
func fuzzMessages(data []byte) [][]byte {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	names := []string{"", "a", "b"}
	var out [][]byte
	for len(data) > 0 && len(out) < 200 {
		var m pgproto3.FrontendMessage
		switch op := next(); op % 12 {
		case 0:
			var oids []uint32
			for i := 0; i < int(next()%3); i++ {
				oids = append(oids, []uint32{0, 16, 20, 23, 25, 17, 701, 1184, 2950, 1700, 999}[next()%11])
			}
			m = &pgproto3.Parse{Name: names[next()%3], Query: fuzzQueries[int(next())%len(fuzzQueries)], ParameterOIDs: oids}
		case 1:
			b := &pgproto3.Bind{DestinationPortal: names[next()%3], PreparedStatement: names[next()%3]}
			for i := 0; i < int(next()%4); i++ {
				n := int(next() % 10)
				if n == 9 {
					b.Parameters = append(b.Parameters, nil)
					continue
				}
				p := make([]byte, 0, n)
				for j := 0; j < n; j++ {
					p = append(p, next())
				}
				b.Parameters = append(b.Parameters, p)
			}
			for i := 0; i < int(next()%3); i++ {
				b.ParameterFormatCodes = append(b.ParameterFormatCodes, int16(next()%3))
			}
			for i := 0; i < int(next()%3); i++ {
				b.ResultFormatCodes = append(b.ResultFormatCodes, int16(next()%2))
			}
			m = b
		case 2:
			m = &pgproto3.Describe{ObjectType: []byte{'S', 'P', 'x'}[next()%3], Name: names[next()%3]}
		case 3:
			m = &pgproto3.Execute{Portal: names[next()%3], MaxRows: uint32(next() % 4)}
		case 4, 5:
			m = &pgproto3.Sync{}
		case 6:
			m = &pgproto3.Flush{}
		case 7:
			m = &pgproto3.Query{String: fuzzQueries[int(next())%len(fuzzQueries)]}
		case 8:
			m = &pgproto3.Close{ObjectType: []byte{'S', 'P', 'x'}[next()%3], Name: names[next()%3]}
		case 9:
			m = &pgproto3.CopyData{Data: []byte{next()}}
		case 10:
			if next()%4 != 0 {
				continue
			}
			// Garbage: a message type and body of the fuzzer's choosing.
			typ, n := next(), int(next()%16)
			raw := []byte{typ, 0, 0, 0, 0}
			binary.BigEndian.PutUint32(raw[1:], uint32(4+n))
			for i := 0; i < n; i++ {
				raw = append(raw, next())
			}
			out = append(out, raw)
			continue
		case 11:
			n := min(int(next()%24), len(data))
			m = &pgproto3.Query{String: string(data[:n])}
			data = data[n:]
		}
		raw, err := m.Encode(nil)
		if err != nil {
			continue
		}
		out = append(out, raw)
	}
	return out
}

// FuzzSession drives the session state machine with random message
// sequences: the server must never panic or hang, and every reply must be
// a well-formed backend message.
func FuzzSession(f *testing.F) {
	eng, err := pgwiretest.New()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { eng.Close() })
	srv, err := pgwire.NewServer(pgwire.Config{Engine: eng, MaxMessageSize: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	pgwire.DisableRecover(srv)
	f.Add([]byte{0, 0, 2, 1, 0, 0, 3, 0, 4})
	f.Add([]byte{7, 2, 7, 8, 0, 0, 3, 1, 0, 0, 1, 2, 3, 4, 5, 0, 3, 0, 0, 4, 7, 9, 7, 10})
	f.Add([]byte{0, 1, 1, 4, 1, 1, 1, 2, 4, 0, 0, 0, 1, 0, 0, 1, 1, 2, 2, 1, 2, 3, 1, 0, 4})
	f.Add([]byte{10, 0, 'Q', 3, 1, 2, 3})
	f.Add([]byte{7, 7, 0, 0, 3, 1, 0, 0, 0, 0, 0, 3, 0, 0, 6, 7, 9})
	f.Fuzz(func(t *testing.T, data []byte) { runSession(t, srv, data) })
}

func runSession(t *testing.T, srv *pgwire.Server, data []byte) {
	{
		client, server := net.Pipe()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConn(ctx, server)
		}()
		var wg sync.WaitGroup
		wg.Add(1)
		var readErr error
		go func() {
			defer wg.Done()
			fe := pgproto3.NewFrontend(client, io.Discard)
			for {
				if _, err := fe.Receive(); err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.ErrClosedPipe) {
						readErr = err
					}
					return
				}
			}
		}()
		start, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "f"}}).Encode(nil)
		msgs := append([][]byte{start}, fuzzMessages(data)...)
		term, _ := (&pgproto3.Terminate{}).Encode(nil)
		msgs = append(msgs, term)
		_ = client.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for _, m := range msgs {
			if _, err := client.Write(m); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("server stopped reading: %v", err)
				}
				break // the server closed the connection
			}
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("session did not end")
		}
		client.Close()
		wg.Wait()
		if readErr != nil {
			t.Fatalf("malformed reply: %v", readErr)
		}
	}
}
