package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/raftsql/raftsql/consensus"
)

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func testLogger(t *testing.T, id string) *slog.Logger {
	if os.Getenv("RAFTSQL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type testCluster struct {
	t       *testing.T
	cfgs    []Config
	servers []*Server
}

// startCluster starts n in-process nodes that talk over loopback TCP.
func startCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return startClusterWith(t, n, nil)
}

// startClusterWith is startCluster with a hook to adjust every node's config.
func startClusterWith(t *testing.T, n int, adjust func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	var peers []consensus.Member
	for i := range n {
		id := strconv.Itoa(i + 1)
		cfg := Config{
			ID: id, DataDir: t.TempDir(),
			PGAddr: freeAddr(t), RaftAddr: freeAddr(t), HTTPAddr: freeAddr(t),
			ElectionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond,
			Logger: testLogger(t, id),
		}
		if adjust != nil {
			adjust(&cfg)
		}
		peers = append(peers, consensus.Member{ID: id, Addr: cfg.RaftAddr, Voter: true})
		c.cfgs = append(c.cfgs, cfg)
	}
	c.servers = make([]*Server, n)
	for i := range c.cfgs {
		c.cfgs[i].Peers = peers
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.servers {
			c.stop(i)
		}
	})
	return c
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	s, err := Start(context.Background(), c.cfgs[i])
	if err != nil {
		c.t.Fatalf("start node %d: %v", i+1, err)
	}
	c.servers[i] = s
}

func (c *testCluster) stop(i int) {
	if c.servers[i] == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.servers[i].Close(ctx); err != nil {
		c.t.Logf("close node %d: %v", i+1, err)
	}
	c.servers[i] = nil
}

// waitLeader polls until every running node agrees on one leader.
func (c *testCluster) waitLeader() int {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		lead, agree := "", true
		for _, s := range c.servers {
			if s == nil {
				continue
			}
			st := s.node.Status()
			if st.Lead == "" || (lead != "" && st.Lead != lead) {
				agree = false
				break
			}
			lead = st.Lead
		}
		if agree && lead != "" {
			for i, s := range c.servers {
				if s != nil && s.cfg.ID == lead {
					return i
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader agreed on within 30s")
	return -1
}

func (c *testCluster) connect(i int, consistency string) *pgx.Conn {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dsn := fmt.Sprintf("postgres://test@%s/test?sslmode=disable", c.servers[i].PGAddr())
	if consistency != "" {
		dsn += "&options=-c%20raftsql.read_consistency%3D" + consistency
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		c.t.Fatalf("connect to node %d: %v", i+1, err)
	}
	c.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestClusterWritesThroughFollowerReadEverywhere(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.waitLeader()
	follower := (lead + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	fc := c.connect(follower, "")
	if _, err := fc.Exec(ctx, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"); err != nil {
		t.Fatalf("create table through follower: %v", err)
	}
	for i := range 20 {
		tag, err := fc.Exec(ctx, "INSERT INTO kv (k, v) VALUES ($1, $2)", i, fmt.Sprintf("v%d", i))
		if err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		if tag.String() != "INSERT 0 1" {
			t.Fatalf("insert tag = %q", tag.String())
		}
	}
	// A duplicate key is an error result that leaves the session usable.
	if _, err := fc.Exec(ctx, "INSERT INTO kv (k, v) VALUES (1, 'dup')"); err == nil {
		t.Fatal("duplicate insert succeeded")
	}
	// Every node, every consistency level: linearizable reads see every
	// acknowledged write at once.
	for i := range 3 {
		for _, level := range []string{"linearizable", "lease"} {
			conn := c.connect(i, level)
			var n int64
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM kv").Scan(&n); err != nil {
				t.Fatalf("node %d %s read: %v", i+1, level, err)
			}
			if n != 20 {
				t.Fatalf("node %d %s read: count = %d, want 20", i+1, level, n)
			}
		}
	}
}

func TestClusterLeaderStopLosesNoAcknowledgedWrite(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.waitLeader()
	other := (lead + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn := c.connect(other, "")
	if _, err := conn.Exec(ctx, "CREATE TABLE acked (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := conn.Exec(ctx, "INSERT INTO acked VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
	}
	c.stop(lead)
	for i := 10; i < 20; i++ {
		if _, err := conn.Exec(ctx, "INSERT INTO acked VALUES ($1)", i); err != nil {
			var se interface{ SQLState() string }
			if errors.As(err, &se) {
				t.Logf("insert %d after leader stop: %v (SQLSTATE %s)", i, err, se.SQLState())
			}
			t.Fatalf("insert %d after leader stop: %v", i, err)
		}
	}
	c.start(lead)
	c.waitLeader()
	back := c.connect(lead, "")
	var n int64
	if err := back.QueryRow(ctx, "SELECT count(*) FROM acked").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Fatalf("restarted node sees %d rows, want 20", n)
	}
}

func TestClusterLaggingNodeCatchesUpBySnapshot(t *testing.T) {
	c := startClusterWith(t, 3, func(cfg *Config) { cfg.SnapshotEntries = 50 })
	lead := c.waitLeader()
	lagging := (lead + 2) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	conn := c.connect(lead, "")
	if _, err := conn.Exec(ctx, "CREATE TABLE s (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	c.stop(lagging)
	for i := range 300 {
		if _, err := conn.Exec(ctx, "INSERT INTO s VALUES ($1, $2)", i, fmt.Sprintf("row %d", i)); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	// The leader's log no longer holds the early entries.
	deadline := time.Now().Add(30 * time.Second)
	for {
		first, err := c.servers[lead].store.FirstIndex()
		if err != nil {
			t.Fatal(err)
		}
		if first > 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader log not compacted: first index %d", first)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.start(lagging)
	back := c.connect(lagging, "")
	var n int64
	if err := back.QueryRow(ctx, "SELECT count(*) FROM s").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 300 {
		t.Fatalf("restarted node sees %d rows, want 300", n)
	}
}

func TestJoinAsLearnerThenPromoted(t *testing.T) {
	c := startClusterWith(t, 3, func(cfg *Config) { cfg.SnapshotEntries = 50 })
	lead := c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	conn := c.connect(lead, "")
	if _, err := conn.Exec(ctx, "CREATE TABLE j (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for i := range 120 {
		if _, err := conn.Exec(ctx, "INSERT INTO j VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		ID: "4", DataDir: t.TempDir(),
		PGAddr: freeAddr(t), RaftAddr: freeAddr(t), HTTPAddr: freeAddr(t),
		Join:   c.servers[(lead+1)%3].HTTPAddr(), // a follower: forwarded to the leader
		Logger: testLogger(t, "4"),
	}
	c.cfgs = append(c.cfgs, cfg)
	c.servers = append(c.servers, nil)
	c.start(3)
	deadline := time.Now().Add(60 * time.Second)
	for !isVoter(c.servers[lead].node.Status().Conf, "4") {
		if time.Now().After(deadline) {
			t.Fatalf("node 4 not promoted: %+v", c.servers[lead].node.Status().Conf)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n4 := c.connect(3, "")
	var n int64
	if err := n4.QueryRow(ctx, "SELECT count(*) FROM j").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 120 {
		t.Fatalf("joined node sees %d rows, want 120", n)
	}
}

func TestCloseOnLeaderHandsLeadershipOver(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.waitLeader()
	term := c.servers[lead].node.Status().Term
	c.stop(lead)
	// The transfer completed before Close returned: a remaining node is
	// already leader, in the next term. Without the hand-off no node could
	// be leader yet, since followers wait out an election timeout (>= 1s)
	// of the leader's silence first.
	leaders := 0
	for _, s := range c.servers {
		if s == nil {
			continue
		}
		if st := s.node.Status(); st.Role == consensus.RoleLeader {
			leaders++
			if st.Term <= term {
				t.Fatalf("new leader %s in term %d, want a term after %d", st.ID, st.Term, term)
			}
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders right after the old leader stopped, want 1 (leadership was not handed over)", leaders)
	}
}

func TestStatusListsEveryMembersAddresses(t *testing.T) {
	c := startCluster(t, 3)
	c.waitLeader()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := httpDo(t, "GET", "http://"+c.servers[0].HTTPAddr()+"/status", nil)
		var st StatusJSON
		if code != 200 || json.Unmarshal(body, &st) != nil {
			t.Fatalf("status: %d %s", code, body)
		}
		complete := len(st.Configuration) == 3
		for _, m := range st.Configuration {
			i, _ := strconv.Atoi(m.ID)
			if m.HTTPAddr != c.servers[i-1].HTTPAddr() || m.PGAddr != c.servers[i-1].PGAddr() {
				complete = false
			}
		}
		if complete {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("directory incomplete: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestJoinRefusesAVoterThatLostItsData(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.waitLeader()
	other := c.cfgs[(lead+1)%3]
	body := fmt.Sprintf(`{"id":%q,"raft_addr":%q,"voter":true}`, other.ID, other.RaftAddr)
	code, resp := httpDo(t, "POST", "http://"+c.servers[lead].HTTPAddr()+"/join", []byte(body))
	if code != 409 || !strings.Contains(string(resp), "remove it first") {
		t.Fatalf("join of an existing voter: %d %s, want 409 telling to remove it first", code, resp)
	}
	code, resp = httpDo(t, "POST", "http://"+c.servers[lead].HTTPAddr()+"/join", []byte(`{"id":"9"`))
	if code != 400 {
		t.Fatalf("malformed join: %d %s, want 400", code, resp)
	}
	code, resp = httpDo(t, "POST", "http://"+c.servers[lead].HTTPAddr()+"/remove", []byte(`{"id":"nope"}`))
	if code != 404 {
		t.Fatalf("remove of an unknown id: %d %s, want 404", code, resp)
	}
}

func TestLeaderRemovesItself(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.waitLeader()
	// Wait for the directory, which the hand-over forwarding needs.
	deadline := time.Now().Add(30 * time.Second)
	for {
		nodes, err := c.servers[lead].fsm.Nodes(context.Background())
		if err == nil && len(nodes) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("directory incomplete: %v %v", nodes, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	id := c.cfgs[lead].ID
	// 503 means "no leader right now, retry" (an election on a loaded
	// machine); anything else is the answer.
	var code int
	var body []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		code, body = httpDo(t, "POST", "http://"+c.servers[lead].HTTPAddr()+"/remove", []byte(fmt.Sprintf(`{"id":%q}`, id)))
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("leader removing itself: %d %s", code, body)
	}
	other := (lead + 1) % 3
	st := c.servers[other].node.Status()
	for deadline := time.Now().Add(10 * time.Second); (st.Lead == id || st.Lead == "") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		st = c.servers[other].node.Status()
	}
	if st.Lead == id || st.Lead == "" {
		t.Fatalf("after removing the old leader, node %d follows %q", other+1, st.Lead)
	}
	for _, m := range st.Conf.Members {
		if m.ID == id {
			t.Fatalf("old leader %s still in the configuration %+v", id, st.Conf)
		}
	}
}

func TestMetricsExposition(t *testing.T) {
	c := startCluster(t, 1)
	c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := c.connect(0, "")
	if _, err := conn.Exec(ctx, "CREATE TABLE m (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	code, body := httpDo(t, "GET", "http://"+c.servers[0].HTTPAddr()+"/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"raftsql_term ", `raftsql_role{role="leader"} 1`, "raftsql_commit_index ", "raftsql_applied_index ",
		"raftsql_apply_lag_entries ", "raftsql_log_fsyncs_total ", "raftsql_write_duration_seconds_count 1",
		"# TYPE raftsql_write_duration_seconds histogram", "raftsql_leader_changes_total ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestLogLinesCarryNodeAndTerm(t *testing.T) {
	var buf syncBuffer
	c := startClusterWith(t, 1, func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil)) // the server adds node=ID
	})
	c.waitLeader()
	c.stop(0)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("only %d log lines", len(lines))
	}
	sawTerm := false
	for _, l := range lines {
		if strings.Count(l, "node=1") != 1 || strings.Count(l, "term=") != 1 {
			t.Fatalf("log line without exactly one node and one term: %s", l)
		}
		if !strings.Contains(l, "term=0") {
			sawTerm = true
		}
	}
	if !sawTerm {
		t.Fatal("no log line carries the elected term")
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
