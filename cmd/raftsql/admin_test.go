package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeNode is an httptest server speaking the agreed HTTP API. It records
// every request and answers from its fields.
type fakeNode struct {
	srv     *httptest.Server
	mu      sync.Mutex
	status  string // body of GET /status
	backup  []byte // body of GET /backup
	fail    int    // when non-zero, every request gets this status …
	failMsg string // … and this body
	reqs    []recorded
}

type recorded struct {
	Method, Path, Query, User, Pass string
	Body                            []byte
}

func newFakeNode(t *testing.T) *fakeNode {
	n := &fakeNode{}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *fakeNode) addr() string { return n.srv.Listener.Addr().String() }

func (n *fakeNode) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	user, pass, _ := r.BasicAuth()
	n.mu.Lock()
	n.reqs = append(n.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, user, pass, body})
	fail, failMsg, status, backup := n.fail, n.failMsg, n.status, n.backup
	n.mu.Unlock()
	if fail != 0 {
		w.WriteHeader(fail)
		io.WriteString(w, failMsg)
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /status":
		io.WriteString(w, status)
	case "GET /backup":
		w.Write(backup)
	case "POST /restore", "POST /join", "POST /remove", "POST /transfer-leadership":
		io.WriteString(w, "{}")
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error": "no such endpoint"}`)
	}
}

func (n *fakeNode) requests() []recorded {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]recorded(nil), n.reqs...)
}

// runCLI runs the command with the default env (real HTTP client).
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut strings.Builder
	e := defaultEnv()
	e.isTerminal = func(io.Reader) bool { return false }
	err := e.run(context.Background(), append([]string{"raftsql"}, args...), strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

func statusJSON(id, role string, term uint64, leader string, commit, applied uint64, members ...member) string {
	b, _ := json.Marshal(map[string]any{"id": id, "role": role, "term": term, "leader": leader,
		"commit_index": commit, "applied_index": applied, "configuration": members})
	return string(b)
}

func TestStatusOneNodeView(t *testing.T) {
	n := newFakeNode(t)
	n.status = statusJSON("2", "follower", 7, "1", 100, 98,
		member{ID: "1", RaftAddr: "127.0.0.1:7000", Voter: true},
		member{ID: "2", RaftAddr: "127.0.0.1:7001", Voter: true},
		member{ID: "3", RaftAddr: "127.0.0.1:7002", Voter: false})
	out, errOut, err := runCLI(t, "status", "--http", n.addr())
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	a := n.addr()
	w := len(a) // wider than the "http_addr" header
	h := strings.Repeat(" ", (w-9)/2) + "http_addr" + strings.Repeat(" ", w-9-(w-9)/2)
	want := " id |   raft_addr    | " + h + " |  voter  |   role   | term | commit_index | applied_index | lag | leader \n" +
		"----+----------------+-" + strings.Repeat("-", w) + "-+---------+----------+------+--------------+---------------+-----+--------\n" +
		" 1  | 127.0.0.1:7000 | " + pad("", w) + " | voter   | ?        |      |              |               |     | *\n" +
		" 2  | 127.0.0.1:7001 | " + a + " | voter   | follower |    7 |          100 |            98 |   2 | \n" +
		" 3  | 127.0.0.1:7002 | " + pad("", w) + " | learner | ?        |      |              |               |     | \n" +
		"(3 rows)\n\n"
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	for _, s := range []string{"follower", "learner", "*", "(3 rows)"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func pad(s string, n int) string {
	for len(s) < n {
		s += " "
	}
	return s
}

func TestStatusAsksEveryMember(t *testing.T) {
	leader, follower, dead := newFakeNode(t), newFakeNode(t), newFakeNode(t)
	members := []member{
		{ID: "1", RaftAddr: "r1", Voter: true, HTTPAddr: leader.addr()},
		{ID: "2", RaftAddr: "r2", Voter: true, HTTPAddr: follower.addr()},
		{ID: "3", RaftAddr: "r3", Voter: true, HTTPAddr: dead.addr()},
	}
	leader.status = statusJSON("1", "leader", 4, "1", 50, 50, members...)
	follower.status = statusJSON("2", "follower", 4, "1", 48, 45, members...)
	dead.fail, dead.failMsg = http.StatusServiceUnavailable, `{"error": "shutting down"}`

	rows, err := clusterStatus(context.Background(), []string{follower.addr()}, func(a string) *adminClient {
		return newAdminClient(a, http.DefaultClient, "", "")
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3: %+v", len(rows), rows)
	}
	if !rows[0].leader || rows[0].st == nil || rows[0].st.Role != "leader" {
		t.Errorf("row 1 = %+v, want the answering leader", rows[0])
	}
	if rows[1].st == nil || rows[1].st.AppliedIndex != 45 {
		t.Errorf("row 2 = %+v", rows[1])
	}
	if rows[2].st != nil || rows[2].err == nil || !errors.Is(rows[2].err, ErrAPI) {
		t.Errorf("row 3 = %+v, want unreachable with an API error", rows[2])
	}
	tab := statusTable(rows)
	// Lag is measured against the leader's commit index: 50 - 45.
	if got := *tab.Rows[1][8]; got != "5" {
		t.Errorf("lag of node 2 = %s, want 5", got)
	}
	if got := *tab.Rows[2][4]; !strings.Contains(got, "shutting down") {
		t.Errorf("role of node 3 = %q, want the error", got)
	}
	if len(dead.requests()) != 1 || len(leader.requests()) != 1 {
		t.Errorf("requests: leader %d, dead %d; want 1 each", len(leader.requests()), len(dead.requests()))
	}
}

func TestStatusListOfAddresses(t *testing.T) {
	a, b := newFakeNode(t), newFakeNode(t)
	members := []member{{ID: "1", RaftAddr: "r1", Voter: true}, {ID: "2", RaftAddr: "r2", Voter: true}}
	// Numeric ids are accepted too.
	a.status = `{"id":1,"role":"leader","term":3,"leader":1,"commit_index":9,"applied_index":9,"configuration":[{"id":1,"raft_addr":"r1","voter":true},{"id":2,"raft_addr":"r2","voter":true}]}`
	b.status = statusJSON("2", "follower", 3, "1", 9, 7, members...)
	out, errOut, err := runCLI(t, "status", "--http", a.addr()+","+b.addr())
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	if strings.Contains(out, "?") || !strings.Contains(out, "leader") || !strings.Contains(out, "follower") {
		t.Errorf("both nodes should be shown with their own view:\n%s", out)
	}
}

func TestStatusErrors(t *testing.T) {
	n := newFakeNode(t)
	n.fail, n.failMsg = http.StatusInternalServerError, `{"error": "raft not started"}`
	_, errOut, err := runCLI(t, "status", "--http", n.addr())
	if exitCode(err) != 1 || !strings.Contains(errOut, "500 Internal Server Error: raft not started") {
		t.Errorf("exit %d, stderr %q", exitCode(err), errOut)
	}
	n.fail, n.failMsg = 0, ""
	n.status = "{not json"
	_, errOut, err = runCLI(t, "status", "--http", n.addr())
	if !errors.Is(err, ErrBadResponse) {
		t.Errorf("err %v, stderr %q; want ErrBadResponse", err, errOut)
	}
}

func TestAdminPosts(t *testing.T) {
	tests := []struct {
		args []string
		path string
		body string
		out  string
	}{
		{[]string{"join", "4", "127.0.0.1:7003"}, "/join", `{"id":"4","raft_addr":"127.0.0.1:7003","voter":true}`, "join: node 4 (raft 127.0.0.1:7003) added as voter\n"},
		{[]string{"join", "4", "127.0.0.1:7003", "--learner"}, "/join", `{"id":"4","raft_addr":"127.0.0.1:7003","voter":false}`, "join: node 4 (raft 127.0.0.1:7003) added as learner\n"},
		{[]string{"remove", "3"}, "/remove", `{"id":"3"}`, "remove: node 3 removed\n"},
		{[]string{"transfer-leadership", "2"}, "/transfer-leadership", `{"id":"2"}`, "transfer-leadership: the cluster accepted the transfer to node 2\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			n := newFakeNode(t)
			args := append(append([]string{}, tt.args...), "--http", n.addr(), "--user", "admin", "--password", "pw")
			out, errOut, err := runCLI(t, args...)
			if err != nil {
				t.Fatalf("%v: %s", err, errOut)
			}
			if out != tt.out {
				t.Errorf("stdout %q, want %q", out, tt.out)
			}
			reqs := n.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != "POST" || r.Path != tt.path || string(r.Body) != tt.body || r.User != "admin" || r.Pass != "pw" {
				t.Errorf("request %+v (body %s), want POST %s %s with basic auth", r, r.Body, tt.path, tt.body)
			}
		})
	}
}

func TestAdminUsageAndErrors(t *testing.T) {
	n := newFakeNode(t)
	for _, args := range [][]string{{"join", "4"}, {"remove"}, {"transfer-leadership", "1", "2"}, {"backup"}, {"restore"}, {"backup", "--consistency", "weird", "f"}} {
		_, _, err := runCLI(t, append(args, "--http", n.addr())...)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%v: err %v, want ErrUsage", args, err)
		}
	}
	if len(n.requests()) != 0 {
		t.Errorf("usage errors sent %d requests", len(n.requests()))
	}
	n.fail, n.failMsg = http.StatusConflict, `{"error": "node 4 already exists"}`
	_, errOut, err := runCLI(t, "join", "4", "127.0.0.1:7003", "--http", n.addr())
	if exitCode(err) != 1 || !strings.Contains(errOut, "409 Conflict: node 4 already exists") {
		t.Errorf("exit %d, stderr %q", exitCode(err), errOut)
	}
	n.fail, n.failMsg = http.StatusBadGateway, "upstream down"
	_, errOut, _ = runCLI(t, "remove", "4", "--http", n.addr())
	if !strings.Contains(errOut, "502 Bad Gateway: upstream down") {
		t.Errorf("plain-text error body: stderr %q", errOut)
	}
	_, errOut, err = runCLI(t, "remove", "4", "--http", "127.0.0.1:1")
	if err == nil || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("unreachable node: err %v, stderr %q", err, errOut)
	}
}

func sqliteBytes(n int) []byte {
	b := make([]byte, n)
	copy(b, sqliteHeader)
	for i := len(sqliteHeader); i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

// dirEntries lists dir, to check that no temporary file stays behind.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestBackup(t *testing.T) {
	n := newFakeNode(t)
	n.backup = sqliteBytes(100000)
	dir := t.TempDir()
	file := filepath.Join(dir, "db.sqlite")
	out, errOut, err := runCLI(t, "backup", file, "--http", n.addr(), "--consistency", "stale")
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	got, err := os.ReadFile(file)
	if err != nil || !bytes.Equal(got, n.backup) {
		t.Fatalf("backup file differs (err %v, %d bytes)", err, len(got))
	}
	if out != "backup: wrote 100000 bytes to "+file+"\n" {
		t.Errorf("stdout %q", out)
	}
	if r := n.requests()[0]; r.Path != "/backup" || r.Query != "consistency=stale" {
		t.Errorf("request %+v", r)
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v", names)
	}

	// Not a SQLite file, or an error reply: the old file stays, no temp file.
	n.backup = []byte("<html>oops</html>")
	_, errOut, err = runCLI(t, "backup", file, "--http", n.addr())
	if !errors.Is(err, ErrNotSQLite) {
		t.Errorf("err %v (stderr %q), want ErrNotSQLite", err, errOut)
	}
	n.fail, n.failMsg = http.StatusServiceUnavailable, `{"error": "no leader"}`
	_, errOut, err = runCLI(t, "backup", file, "--http", n.addr())
	if !errors.Is(err, ErrAPI) || !strings.Contains(errOut, "no leader") {
		t.Errorf("err %v, stderr %q", err, errOut)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, sqliteBytes(100000)) {
		t.Error("a failed backup changed the existing file")
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v after failures", names)
	}
}

func TestBackupCutShort(t *testing.T) {
	// The server promises more bytes than it sends, then closes.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write(sqliteBytes(1000))
		if h, ok := w.(http.Hijacker); ok {
			c, _, _ := h.Hijack()
			c.Close()
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	_, _, err := runCLI(t, "backup", filepath.Join(dir, "x.db"), "--http", srv.Listener.Addr().String())
	if err == nil {
		t.Fatal("a cut-short backup succeeded")
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("directory holds %v", names)
	}
}

func TestRestore(t *testing.T) {
	n := newFakeNode(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	os.WriteFile(good, sqliteBytes(5000), 0o600)
	out, errOut, err := runCLI(t, "restore", "--http", n.addr(), good)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	if !strings.Contains(out, "sent 5000 bytes") {
		t.Errorf("stdout %q", out)
	}
	r := n.requests()[0]
	if r.Method != "POST" || r.Path != "/restore" || !bytes.Equal(r.Body, sqliteBytes(5000)) {
		t.Errorf("request %s %s with %d bytes", r.Method, r.Path, len(r.Body))
	}

	bad := filepath.Join(dir, "bad.db")
	os.WriteFile(bad, []byte("not sqlite at all, just text"), 0o600)
	_, _, err = runCLI(t, "restore", bad, "--http", n.addr())
	if !errors.Is(err, ErrNotSQLite) {
		t.Errorf("err %v, want ErrNotSQLite", err)
	}
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if _, _, err = runCLI(t, "restore", empty, "--http", n.addr()); !errors.Is(err, ErrNotSQLite) {
		t.Errorf("empty file: err %v, want ErrNotSQLite", err)
	}
	if _, _, err = runCLI(t, "restore", filepath.Join(dir, "none.db"), "--http", n.addr()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err %v", err)
	}
	if len(n.requests()) != 1 {
		t.Errorf("refused restores sent requests: %d", len(n.requests()))
	}
	n.fail, n.failMsg = http.StatusBadRequest, `{"error": "integrity check failed"}`
	_, errOut, err = runCLI(t, "restore", good, "--http", n.addr())
	if exitCode(err) != 1 || !strings.Contains(errOut, "400 Bad Request: integrity check failed") {
		t.Errorf("exit %d, stderr %q", exitCode(err), errOut)
	}
}

func TestReorderArgs(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"4", "addr", "--learner"}, []string{"--learner", "4", "addr"}},
		{[]string{"f", "--http", "h:1", "--consistency=stale"}, []string{"--http", "h:1", "--consistency=stale", "f"}},
		{[]string{"--", "-x"}, []string{"--", "-x"}},
		{[]string{"-c", "-- comment", "db"}, []string{"-c", "-- comment", "db"}},
	}
	for _, tt := range tests {
		vf := adminValueFlags
		if tt.in[0] == "-c" {
			vf = shellValueFlags
		}
		if got := reorderArgs(tt.in, vf); strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("reorderArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzStatusDecode feeds arbitrary /status bodies through the client: an
// error or a value, never a panic.
func FuzzStatusDecode(f *testing.F) {
	f.Add(statusJSON("1", "leader", 1, "1", 2, 2, member{ID: "1", RaftAddr: "a", Voter: true}))
	f.Add(`{"id":1,"leader":null}`)
	f.Add(`{"id":[1]}`)
	f.Fuzz(func(t *testing.T, body string) {
		var st nodeStatus
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			return
		}
		rows := []statusRow{{member: member{ID: st.ID}, st: &st, leader: st.ID == st.Leader}}
		for _, m := range st.Configuration {
			rows = append(rows, statusRow{member: m})
		}
		writeTable(io.Discard, statusTable(rows))
	})
}

func TestAdminPostTriesEachAddress(t *testing.T) {
	follower, leader, other := newFakeNode(t), newFakeNode(t), newFakeNode(t)
	follower.fail, follower.failMsg = http.StatusServiceUnavailable, `{"error": "this node is not the leader"}`
	list := "127.0.0.1:1," + follower.addr() + "," + leader.addr() + "," + other.addr()
	out, errOut, err := runCLI(t, "transfer-leadership", "2", "--http", list)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	if out != "transfer-leadership: the cluster accepted the transfer to node 2\n" || len(follower.requests()) != 1 || len(leader.requests()) != 1 || len(other.requests()) != 0 {
		t.Errorf("out %q; requests follower %d leader %d other %d", out, len(follower.requests()), len(leader.requests()), len(other.requests()))
	}
	// A refusal that is not about leadership stops at once.
	leader.fail, leader.failMsg = http.StatusNotFound, `{"error": "node \"9\" is not a member"}`
	_, errOut, err = runCLI(t, "remove", "9", "--http", follower.addr()+","+leader.addr()+","+other.addr())
	if !errors.Is(err, ErrAPI) || !strings.Contains(errOut, `404 Not Found: node "9" is not a member`) || len(other.requests()) != 0 {
		t.Errorf("err %v stderr %q other %d", err, errOut, len(other.requests()))
	}
	// All refuse: the last error is shown.
	_, errOut, err = runCLI(t, "join", "5", "r5", "--http", follower.addr())
	if !errors.Is(err, ErrAPI) || !strings.Contains(errOut, "503 Service Unavailable: this node is not the leader") {
		t.Errorf("err %v stderr %q", err, errOut)
	}
}

func TestStatusUnknownUnreachableAddress(t *testing.T) {
	n := newFakeNode(t)
	n.status = statusJSON("1", "leader", 1, "1", 3, 3, member{ID: "1", RaftAddr: "r1", Voter: true})
	out, errOut, err := runCLI(t, "status", "--http", n.addr()+",127.0.0.1:1")
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[3], " ?  |") || !strings.Contains(lines[3], "127.0.0.1:1 ") || !strings.Contains(lines[3], "unreachable: ") {
		t.Errorf("the dead address should be a row of its own:\n%s", out)
	}
	if _, _, err := runCLI(t, "status", "--http", "127.0.0.1:1"); err == nil {
		t.Error("status with no node answering succeeded")
	}
}

func TestStatusJSON(t *testing.T) {
	leader, follower := newFakeNode(t), newFakeNode(t)
	members := []member{{ID: "1", RaftAddr: "r1", Voter: true, HTTPAddr: leader.addr()}, {ID: "2", RaftAddr: "r2", Voter: false, HTTPAddr: follower.addr()}, {ID: "3", RaftAddr: "r3", Voter: true}}
	leader.status = statusJSON("1", "leader", 5, "1", 20, 20, members...)
	follower.status = statusJSON("2", "learner", 5, "1", 20, 17, members...)
	out, errOut, err := runCLI(t, "status", "--json", "--http", leader.addr())
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	var rows []statusJSONRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rows) != 3 || !rows[0].Leader || rows[1].Role != "learner" || rows[1].Voter || *rows[1].Lag != 3 || rows[2].Role != "" || rows[2].Lag != nil {
		t.Errorf("rows %s", out)
	}
}
