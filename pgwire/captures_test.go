package pgwire_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The captures in testdata/captures (copied from shared/pgwire-captures)
// are real clients talking to PostgreSQL 15. TestCaptures replays each
// client's messages against this server and checks that the replies have
// the same shape: the same message types in the same order, the same
// error codes and the same command verbs. Row values, counts and type
// OIDs are not compared (the data differs).

var captureLine = regexp.MustCompile(`^\[(\d+)\] (C->S|S->C) (\S+) (.*)$`)

type captureMsg struct {
	fromClient bool
	typ        string // e.g. "Parse"
	json       string
}

// captureDivergences stop the replay of a connection at the first client
// message containing the text: what follows differs from PostgreSQL on
// purpose (and is tested elsewhere).
var captureDivergences = map[string]string{
	"1/0":   "SQLite's 1/0 is NULL, not error 22012",
	"copy ": "COPY is not supported (0A000)",
}

// bufferedDivergences apply only to an Engine without
// InteractiveSession, whose transactions buffer writes until COMMIT.
var bufferedDivergences = map[string]string{
	// pgx_default.log: the duplicate key error comes at COMMIT.
	"insert into t(id, name) values": "writes inside BEGIN are applied at COMMIT",
	// py.log (psycopg starts a transaction for every statement).
	"values ($1) returning id": "RETURNING inside BEGIN is refused (0A000): writes are applied at COMMIT",
}

// ignoredReplies are not compared: their number depends on the data
// (DataRow) or they are informational (NoticeResponse).
var ignoredReplies = map[string]bool{"ParameterStatus": true, "DataRow": true, "NoticeResponse": true}

func readCapture(t *testing.T, path string) (order []string, conns map[string][]captureMsg) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	conns = map[string][]captureMsg{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := captureLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		id := m[1]
		if _, ok := conns[id]; !ok {
			order = append(order, id)
		}
		conns[id] = append(conns[id], captureMsg{fromClient: m[2] == "C->S", typ: strings.TrimPrefix(m[3], "*pgproto3."), json: m[4]})
	}
	return order, conns
}

func decodeFrontend(typ, js string) (pgproto3.FrontendMessage, error) {
	var m pgproto3.FrontendMessage
	switch typ {
	case "StartupMessage":
		m = &pgproto3.StartupMessage{}
	case "SSLRequest":
		m = &pgproto3.SSLRequest{}
	case "Query":
		m = &pgproto3.Query{}
	case "Parse":
		m = &pgproto3.Parse{}
	case "Bind":
		m = &pgproto3.Bind{}
	case "Describe":
		m = &pgproto3.Describe{}
	case "Execute":
		m = &pgproto3.Execute{}
	case "Sync":
		m = &pgproto3.Sync{}
	case "Close":
		m = &pgproto3.Close{}
	case "Flush":
		m = &pgproto3.Flush{}
	case "Terminate":
		m = &pgproto3.Terminate{}
	case "CopyData":
		m = &pgproto3.CopyData{}
	case "CopyDone":
		m = &pgproto3.CopyDone{}
	default:
		return nil, fmt.Errorf("unknown client message %s", typ)
	}
	if err := json.Unmarshal([]byte(js), m); err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	return m, nil
}

// shape is what is compared of a server message.
func shape(typ, js string) string {
	switch typ {
	case "ErrorResponse":
		var e struct{ Code string }
		_ = json.Unmarshal([]byte(js), &e)
		return "ErrorResponse:" + e.Code
	case "CommandComplete":
		var c struct{ CommandTag string }
		_ = json.Unmarshal([]byte(js), &c)
		return "CommandComplete:" + strings.Fields(c.CommandTag + " x")[0]
	case "ReadyForQuery":
		var r struct{ TxStatus string }
		_ = json.Unmarshal([]byte(js), &r)
		return "ReadyForQuery:" + r.TxStatus
	}
	return typ
}

func shapeOf(m pgproto3.BackendMessage) string {
	js, _ := json.Marshal(m)
	return shape(strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."), string(js))
}

func TestCaptures(t *testing.T) {
	files, _ := filepath.Glob("testdata/captures/*.log")
	if len(files) == 0 {
		t.Fatal("no captures")
	}
	for _, interactive := range []bool{false, true} {
		for _, file := range files {
			name := filepath.Base(file)
			if interactive {
				name += "/interactive"
			}
			t.Run(name, func(t *testing.T) { replayCapture(t, file, interactive) })
		}
	}
}

func replayCapture(t *testing.T, file string, interactive bool) {
	s := startServer(t, nil)
	s.eng.Interactive = interactive
	setup := connect(t, s, "")
	for _, q := range []string{
		"create table t (id serial primary key, name text not null, v double precision, b boolean default true, created timestamptz)",
		"create index t_name on t(name)",
		"insert into t(name, v, created) values ('x', 1.5, '2026-11-27 04:24:12.252229+00')",
	} {
		if _, err := setup.Exec(ctxT(t), q); err != nil {
			t.Fatal(err)
		}
	}
	order, conns := readCapture(t, file)
	stops := map[string]string{}
	for k, v := range captureDivergences {
		stops[k] = v
	}
	if !interactive {
		for k, v := range bufferedDivergences {
			stops[k] = v
		}
	}
	for _, id := range order {
		replayConn(t, s, id, conns[id], stops)
	}
}

func replayConn(t *testing.T, s *testServer, id string, msgs []captureMsg, stops map[string]string) {
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	fe := pgproto3.NewFrontend(nc, nc)
	for i := 0; i < len(msgs); {
		// Send the client's messages up to the server's next reply.
		for ; i < len(msgs) && msgs[i].fromClient; i++ {
			for text, why := range stops {
				if strings.Contains(msgs[i].json, text) {
					t.Logf("[%s] stop before %s: %s", id, msgs[i].typ, why)
					return
				}
			}
			m, err := decodeFrontend(msgs[i].typ, msgs[i].json)
			if err != nil {
				t.Fatalf("[%s] %v", id, err)
			}
			fe.Send(m)
			if err := fe.Flush(); err != nil {
				t.Fatalf("[%s] send: %v", id, err)
			}
			if msgs[i].typ == "Terminate" {
				return
			}
		}
		var want []string
		for ; i < len(msgs) && !msgs[i].fromClient; i++ {
			if ignoredReplies[msgs[i].typ] {
				continue
			}
			want = append(want, shape(msgs[i].typ, msgs[i].json))
		}
		var got []string
		for len(got) < len(want) {
			if want[len(got)] == "string" { // the 'N' answer to SSLRequest
				b := make([]byte, 1)
				if _, err := nc.Read(b); err != nil || b[0] != 'N' {
					t.Fatalf("[%s] SSLRequest answer %q %v", id, b, err)
				}
				got = append(got, "string")
				continue
			}
			m, err := fe.Receive()
			if err != nil {
				t.Fatalf("[%s] receive after %v (want %v): %v", id, got, want, err)
			}
			if ignoredReplies[strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3.")] {
				continue
			}
			got = append(got, shapeOf(m))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("[%s] replies differ from PostgreSQL's\n got: %v\nwant: %v", id, got, want)
		}
	}
}
