package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/raftsql/raftsql/test/cluster"
	"github.com/raftsql/raftsql/test/faultproxy"
)

// This file proves issue 4 on real processes: snapshots, log compaction
// and membership changes (join, promote, learner, remove, leadership
// transfer, a wiped node rejoining), the HTTP API's refusals, and a disk
// footprint that does not grow with the number of entries.
//
//	go test ./test/ -run 'TestSnapshot|TestMembership[A-Z]|TestWipedNode' -v          # ~1 min
//	go test ./test/ -run 'TestSnapshot|TestMembership[A-Z]|TestWipedNode' -v -short   # 20,000 entries
//	go test ./test/ -run TestSnapshotBoundedDisk -v -args -entries=100000            # any count >= 8000
//
// TestWipedNodeRejoins is the procedure the README gives for a node whose
// data directory is lost: stop it, POST /remove its id, wipe the
// directory, start it with --join (never --peers) under the same id.

var flagEntries = flag.Int("entries", 0, "entries TestSnapshotBoundedDisk writes with --snapshot-entries 1000 (0: 100000, or 20000 with -short)")

// apiAnswer is one raw answer of a node's HTTP API.
type apiAnswer struct {
	Code        int
	ContentType string
	Body        string
	Error       string // the "error" field of a JSON error body
}

// callAPI sends body (sent as is, so that it may be malformed) to the
// node's HTTP API and returns the answer whatever its status.
func callAPI(ctx context.Context, n *cluster.Node, method, path, body string) (apiAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.HTTPAddr+path, strings.NewReader(body))
	if err != nil {
		return apiAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return apiAnswer{}, fmt.Errorf("%s %s on %s: %w", method, path, n.ID, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return apiAnswer{}, fmt.Errorf("%s %s on %s: %w", method, path, n.ID, err)
	}
	a := apiAnswer{Code: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: string(bytes.TrimSpace(raw))}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil {
		a.Error = e.Error
	}
	return a, nil
}

// jsonBody marshals v for callAPI.
func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// memberOf finds id in a configuration.
func memberOf(st cluster.Status, id string) (cluster.Member, bool) {
	for _, m := range st.Configuration {
		if m.ID == id {
			return m, true
		}
	}
	return cluster.Member{}, false
}

// waitConf polls the agreed leader's configuration until check accepts it
// or d passes; it returns the last leader status and the last complaint.
func waitConf(ctx context.Context, c *cluster.Cluster, d time.Duration, check func(cluster.Status) error) (cluster.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last cluster.Status
	err := retry(ctx, func() error {
		_, st, err := c.Leader(ctx)
		if err != nil {
			return err
		}
		last = st
		return check(st)
	})
	return last, err
}

// isMember is a waitConf check: id present as a voter or a learner.
func isMember(id string, voter bool) func(cluster.Status) error {
	return func(st cluster.Status) error {
		m, ok := memberOf(st, id)
		if !ok {
			return fmt.Errorf("%s not in the configuration %+v", id, st.Configuration)
		}
		if m.Voter != voter {
			return fmt.Errorf("%s has voter=%v, want %v (configuration %+v)", id, m.Voter, voter, st.Configuration)
		}
		return nil
	}
}

// notMember is a waitConf check: id absent.
func notMember(id string) func(cluster.Status) error {
	return func(st cluster.Status) error {
		if _, ok := memberOf(st, id); ok {
			return fmt.Errorf("%s still in the configuration %+v", id, st.Configuration)
		}
		return nil
	}
}

// logValues scans a node's log for records with msg="<msg>" and returns
// the integer values of key in them, oldest first.
func logValues(path, msg, key string) ([]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := "msg=" + strconv.Quote(msg)
	re := regexp.MustCompile(`\b` + regexp.QuoteMeta(key) + `=(\d+)`)
	var out []uint64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, want) {
			continue
		}
		if m := re.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			out = append(out, v)
		}
	}
	return out, sc.Err()
}

// maxOf returns the largest value (0 for none).
func maxOf(vs []uint64) uint64 {
	var m uint64
	for _, v := range vs {
		m = max(m, v)
	}
	return m
}

// newTable creates table (id INTEGER PRIMARY KEY, v TEXT NOT NULL) through
// the leader and fills it with rows id in [0, rows) by insertRange.
func newTable(ctx context.Context, t *testing.T, c *cluster.Cluster, leader *cluster.Node, table string, rows int) {
	t.Helper()
	conn := connect(ctx, t, leader, "")
	mustExec(ctx, t, conn, "CREATE TABLE "+table+" (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
	conn.Close(ctx)
	insertRange(ctx, t, c, table, 0, rows)
}

// insertRange inserts rows id in [from, to) into table (id INTEGER PRIMARY
// KEY, v TEXT) with a few concurrent connections to the current leader.
// An attempt that fails (a leader change, a killed node) is retried on a
// new connection; ON CONFLICT DO NOTHING makes the retry harmless if the
// first attempt was applied after all.
func insertRange(ctx context.Context, t *testing.T, c *cluster.Cluster, table string, from, to int) {
	t.Helper()
	const workers = 4
	var next atomic.Int64
	next.Store(int64(from))
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn *pgx.Conn
			defer func() {
				if conn != nil {
					conn.Close(context.Background())
				}
			}()
			for {
				id := int(next.Add(1) - 1)
				if id >= to {
					return
				}
				err := retry(ctx, func() error {
					if conn == nil {
						l, err := c.WaitLeader(ctx)
						if err != nil {
							return err
						}
						cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
						conn, err = pgx.Connect(cctx, l.DSN(""))
						cancel()
						if err != nil {
							conn = nil
							return err
						}
					}
					_, err := conn.Exec(ctx, "INSERT INTO "+table+" (id, v) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", id, fmt.Sprintf("row-%06d", id))
					if err != nil {
						conn.Close(context.Background())
						conn = nil
					}
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("insert %d into %s: %w", id, table, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// rowsOn returns count(*) and sum(id) of table read on node n at level,
// retrying read errors (not answers) for up to 30 s; the errors are logged.
func rowsOn(ctx context.Context, t *testing.T, n *cluster.Node, level, table string) (count, sum int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := retry(ctx, func() error {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		conn, err := pgx.Connect(cctx, n.DSN(level))
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		err = conn.QueryRow(cctx, "SELECT count(*), coalesce(sum(id), 0) FROM "+table).Scan(&count, &sum)
		if err != nil {
			t.Logf("%s read of %s on %s: %v (retrying)", level, table, n.ID, err)
		}
		return err
	})
	if err != nil {
		t.Fatalf("%s read of %s on %s: %v", level, table, n.ID, err)
	}
	return count, sum
}

// countOnce reads count(*) of table on node n at level, once, within d.
func countOnce(ctx context.Context, n *cluster.Node, level, table string, d time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.DSN(level))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var k int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&k)
	return k, err
}

// sumTo is sum(id) of the ids [0, n).
func sumTo(n int) int64 { return int64(n) * int64(n-1) / 2 }

// waitRole polls node n's /status until it reports role.
func waitRole(ctx context.Context, n *cluster.Node, role string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := retry(ctx, func() error {
		s, err := n.Status(ctx)
		if err == nil && s.Role != role {
			err = fmt.Errorf("role %q (applied %d)", s.Role, s.AppliedIndex)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s /status: %w; want role %s", n.ID, err, role)
	}
	return nil
}

// waitApplied polls node n until it has applied index.
func waitApplied(ctx context.Context, n *cluster.Node, index uint64, d time.Duration) (cluster.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var st cluster.Status
	err := retry(ctx, func() error {
		var err error
		st, err = n.Status(ctx)
		if err != nil {
			return err
		}
		if st.AppliedIndex < index {
			return fmt.Errorf("%s applied %d < %d", n.ID, st.AppliedIndex, index)
		}
		return nil
	})
	return st, err
}

// leaderWatch records every sighting of a given node as leader, by itself
// or by any other node, while it runs.
type leaderWatch struct {
	stop     context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	sighting []string
}

func watchNeverLeader(ctx context.Context, c *cluster.Cluster, id string) *leaderWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &leaderWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for sid, st := range c.Statuses(ctx) {
				if (sid == id && st.Role == "leader") || st.Leader == id {
					w.mu.Lock()
					if len(w.sighting) < 10 {
						w.sighting = append(w.sighting, fmt.Sprintf("%s says role=%s leader=%s term=%d", sid, st.Role, st.Leader, st.Term))
					}
					w.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// Stop ends the watch and returns the sightings.
func (w *leaderWatch) Stop() []string {
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sighting
}

// TestSnapshotJoinPromoteRemoveTransfer walks a cluster through the
// membership life of issue 4 with --snapshot-entries 50: a node joins
// after the leader compacted its log and catches up by snapshot, and is
// promoted; a learner joins and never becomes a voter or leader; a voter
// is removed; leadership is transferred to the snapshot-fed node, which is
// then killed, and a voter (not the learner) takes over; the killed node
// restarts from its data directory and catches up.
func TestSnapshotJoinPromoteRemoveTransfer(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3, SnapshotEntries: 50})
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	leader, _ := leaderAndFollowers(ctx, t, c)
	newTable(ctx, t, c, leader, "snapjoin", 300)
	total := 300

	// The leader has compacted its log: index 1, which a new node needs,
	// is gone, so the new node can only be caught up by a snapshot.
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var compacted uint64
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	err = retry(cctx, func() error {
		v, err := logValues(leader.LogPath, "snapshot taken", "compact_to")
		if err != nil {
			return err
		}
		if compacted = maxOf(v); compacted == 0 {
			return fmt.Errorf("the leader %s has not compacted its log after %d writes with --snapshot-entries 50", leader.ID, total)
		}
		return nil
	})
	ccancel()
	if err != nil {
		t.Fatalf("%v (see %s)", err, leader.LogPath)
	}
	lst, err := leader.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %s: commit %d, log compacted up to %d, snapshots %v", leader.ID, lst.CommitIndex, compacted, snapIndexes(leader))

	// A fourth node joins through the leader and catches up by snapshot.
	joinStart := time.Now()
	n4, err := c.AddNode(ctx, leader, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := n4.WaitReady(ctx); err != nil {
		t.Fatalf("%s did not get ready after --join: %v", n4.ID, err)
	}
	if _, err := waitApplied(ctx, n4, lst.CommitIndex, 60*time.Second); err != nil {
		t.Fatalf("%s did not catch up: %v", n4.ID, err)
	}
	catchUp := time.Since(joinStart)
	installed, err := logValues(n4.LogPath, "installed snapshot from leader", "index")
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case len(installed) == 0:
		t.Errorf("%s caught up without installing a snapshot, although the leader's log starts after %d (see %s)", n4.ID, compacted, n4.LogPath)
	case installed[0] < compacted:
		t.Errorf("%s installed snapshot %d, older than the leader's compaction point %d", n4.ID, installed[0], compacted)
	}
	t.Logf("%s caught up to commit %d in %v (start to applied), installing snapshots %v; its snapshot directory holds %v",
		n4.ID, lst.CommitIndex, catchUp.Round(time.Millisecond), installed, snapIndexes(n4))
	if _, err := waitConf(ctx, c, 30*time.Second, isMember(n4.ID, true)); err != nil {
		t.Errorf("%s was not promoted to voter after catching up: %v", n4.ID, err)
	}
	if k, s := rowsOn(ctx, t, n4, "linearizable", "snapjoin"); k != int64(total) || s != sumTo(total) {
		t.Errorf("linearizable read on %s: %d rows (sum %d), want %d (sum %d)", n4.ID, k, s, total, sumTo(total))
	}

	// A learner joins through a follower (DESIGN.md: POST /join works "on
	// any member; forwarded to the leader") and stays a non-voter that
	// serves reads.
	via := othersThan(c, leader)[0]
	n5, err := c.AddNode(ctx, via, true)
	if err != nil {
		t.Fatal(err)
	}
	watch := watchNeverLeader(ctx, c, n5.ID)
	jctx, jcancel := context.WithTimeout(ctx, 30*time.Second)
	err = n5.WaitReady(jctx)
	jcancel()
	if err != nil {
		t.Errorf("learner %s did not join through the follower %s: %v (see %s)", n5.ID, via.ID, err, n5.LogPath)
		// Through the leader, to test the rest.
		if err := n5.Kill(); err != nil {
			t.Fatal(err)
		}
		n5.SetJoin(leader)
		if err := n5.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n5.WaitReady(ctx); err != nil {
			t.Fatalf("learner %s did not join through the leader %s either: %v", n5.ID, leader.ID, err)
		}
	}
	if _, err := waitConf(ctx, c, 30*time.Second, isMember(n5.ID, false)); err != nil {
		t.Fatalf("learner %s: %v", n5.ID, err)
	}
	// Its own /status says learner once it has applied its addition (it
	// is ready as soon as it knows the leader, possibly before).
	if err := waitRole(ctx, n5, "learner", 15*time.Second); err != nil {
		t.Error(err)
	}
	if k, _ := rowsOn(ctx, t, n5, "linearizable", "snapjoin"); k != int64(total) {
		t.Errorf("linearizable read on learner %s: %d rows, want %d", n5.ID, k, total)
	}

	// A voter is removed; the cluster keeps writing without it.
	leader, err = c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var victim *cluster.Node
	for _, n := range c.Nodes() {
		if n != leader && n != n4 && n != n5 {
			victim = n
			break
		}
	}
	// Sent to the learner: any member takes it (issue 4).
	postAnyMember(ctx, t, n5, leader, "/remove", map[string]string{"id": victim.ID})
	if _, err := waitConf(ctx, c, 30*time.Second, notMember(victim.ID)); err != nil {
		t.Fatalf("after POST /remove: %v", err)
	}
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	insertRange(ctx, t, c, "snapjoin", total, total+50)
	total += 50
	st, err := waitConf(ctx, c, 30*time.Second, func(st cluster.Status) error {
		var voters []string
		for _, m := range st.Configuration {
			if m.Voter {
				voters = append(voters, m.ID)
			}
		}
		if len(voters) != 3 {
			return fmt.Errorf("voters %v, want 3 after removing %s", voters, victim.ID)
		}
		return isMember(n5.ID, false)(st)
	})
	if err != nil {
		t.Errorf("configuration after the removal: %v", err)
	}
	t.Logf("configuration after removing %s: %+v", victim.ID, st.Configuration)

	// Leadership goes to the node that joined by snapshot.
	leader, err = c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if leader == n4 {
		t.Fatalf("%s already leads; the test wants to transfer to it", n4.ID)
	}
	// Sent to the third voter, a follower: any member takes it (issue 4).
	for _, n := range c.Nodes() {
		if n != leader && n != n4 && n != n5 && n != victim {
			via = n
		}
	}
	postAnyMember(ctx, t, via, leader, "/transfer-leadership", map[string]string{"id": n4.ID})
	tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
	err = retry(tctx, func() error {
		l, _, err := c.Leader(tctx)
		if err != nil {
			return err
		}
		if l != n4 {
			return fmt.Errorf("leader is %s, want %s", l.ID, n4.ID)
		}
		s, err := n4.Status(tctx)
		if err != nil {
			return err
		}
		if s.Role != "leader" {
			return fmt.Errorf("%s /status role %q", n4.ID, s.Role)
		}
		return nil
	})
	tcancel()
	if err != nil {
		t.Fatalf("after the transfer to %s: %v", n4.ID, err)
	}
	insertRange(ctx, t, c, "snapjoin", total, total+25)
	total += 25

	// The new leader dies; a voter, never the learner, takes over.
	if err := n4.Kill(); err != nil {
		t.Fatal(err)
	}
	failStart := time.Now()
	nl, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatalf("no leader after killing %s: %v", n4.ID, err)
	}
	t.Logf("%s took over %v after %s was killed", nl.ID, time.Since(failStart).Round(time.Millisecond), n4.ID)
	if nl == n5 || nl == n4 {
		t.Errorf("%s leads after %s was killed; want one of the remaining voters", nl.ID, n4.ID)
	}
	insertRange(ctx, t, c, "snapjoin", total, total+25)
	total += 25

	// The killed node restarts from its data directory and catches up.
	if err := n4.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n4.WaitReady(ctx); err != nil {
		t.Fatalf("%s after restart: %v", n4.ID, err)
	}
	if k, s := rowsOn(ctx, t, n4, "linearizable", "snapjoin"); k != int64(total) || s != sumTo(total) {
		t.Errorf("linearizable read on %s after its restart: %d rows (sum %d), want %d (sum %d)", n4.ID, k, s, total, sumTo(total))
	}
	if _, err := waitConf(ctx, c, 30*time.Second, isMember(n4.ID, true)); err != nil {
		t.Errorf("%s after its restart: %v", n4.ID, err)
	}
	if sightings := watch.Stop(); len(sightings) > 0 {
		t.Errorf("learner %s was seen as leader: %v", n5.ID, sightings)
	}
	if _, err := waitConf(ctx, c, 10*time.Second, isMember(n5.ID, false)); err != nil {
		t.Errorf("learner %s at the end: %v", n5.ID, err)
	}
	checkRows(t, "snapjoin", sameOnRunningNodes(ctx, t, c, "SELECT id, v FROM snapjoin ORDER BY id"), total)
}

// sameOnRunningNodes waits for the running nodes to converge, reads query
// on each (stale: its own state) and requires the same answer everywhere;
// it returns that answer. Unlike compareReplicas it does not assume that
// the first node is running.
func sameOnRunningNodes(ctx context.Context, t *testing.T, c *cluster.Cluster, query string) []string {
	t.Helper()
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	var ref []string
	refID := ""
	for _, n := range c.Nodes() {
		if !n.Running() {
			continue
		}
		conn := connect(ctx, t, n, "stale")
		got, err := dump(ctx, conn, query)
		conn.Close(ctx)
		if err != nil {
			t.Fatalf("%s on %s: %v", query, n.ID, err)
		}
		if refID == "" {
			ref, refID = got, n.ID
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(ref) {
			t.Errorf("replicas differ for %q: %s has %v, %s has %v", query, refID, ref, n.ID, got)
		}
	}
	return ref
}

// checkRows requires the dump of insertRange's rows to be ids 0..total-1.
func checkRows(t *testing.T, table string, got []string, total int) {
	t.Helper()
	if len(got) != total {
		t.Errorf("%s holds %d rows on every replica, want %d", table, len(got), total)
	}
	for i, line := range got {
		if want := fmt.Sprintf("[%d row-%06d]", i, i); line != want {
			t.Errorf("%s row %d is %s, want %s", table, i, line, want)
			return
		}
	}
}

// postAnyMember sends a membership request to via, which need not be the
// leader: issue 4 says each request works when sent to any member. A
// refusal for not being the leader is an error of the test, and the
// request then goes to the leader so that the rest can be tested.
func postAnyMember(ctx context.Context, t *testing.T, via, leader *cluster.Node, path string, req any) {
	t.Helper()
	a, err := callAPI(ctx, via, http.MethodPost, path, jsonBody(req))
	if err != nil {
		t.Fatal(err)
	}
	if a.Code/100 == 2 {
		t.Logf("POST %s %s on %s: %d %s", path, jsonBody(req), via.ID, a.Code, a.Body)
		return
	}
	if via == leader || a.Code != http.StatusServiceUnavailable {
		t.Fatalf("POST %s %s on %s: %d %s", path, jsonBody(req), via.ID, a.Code, a.Body)
	}
	t.Errorf("POST %s on %s (not the leader) answered %d %s; issue 4: each request works when sent to any member", path, via.ID, a.Code, a.Body)
	if !strings.Contains(a.Error, leader.ID) {
		t.Errorf("the refusal %q does not name the leader %s", a.Error, leader.ID)
	}
	postAnyMember(ctx, t, leader, leader, path, req)
}

// othersThan returns every node but n.
func othersThan(c *cluster.Cluster, n *cluster.Node) []*cluster.Node {
	var out []*cluster.Node
	for _, m := range c.Nodes() {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

// snapIndexes lists the snapshot files in a node's data directory.
func snapIndexes(n *cluster.Node) []string {
	names, _ := filepath.Glob(filepath.Join(n.DataDir, "snapshots", "snap-*.db"))
	for i, p := range names {
		names[i] = strings.TrimLeft(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "snap-"), ".db"), "0")
	}
	return names
}

// TestMembershipRequestErrors sends the HTTP API requests that cannot be
// honoured and requires a 4xx with a JSON error naming the problem, and
// that nothing changed.
func TestMembershipRequestErrors(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n1 := c.Nodes()[0]
	n2, err := c.AddNode(ctx, n1, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitReady(ctx); err != nil {
		t.Fatalf("learner %s: %v", n2.ID, err)
	}
	before, err := waitConf(ctx, c, 30*time.Second, isMember(n2.ID, false))
	if err != nil {
		t.Fatal(err)
	}
	own, _ := memberOf(before, n1.ID)
	cases := []struct {
		name, path, body string
		code             int    // 0: any 4xx
		want             string // in the error message, case-insensitively
	}{
		{"remove an unknown id", "/remove", `{"id":"nosuchnode"}`, http.StatusNotFound, "nosuchnode"},
		{"remove the last voter", "/remove", jsonBody(map[string]string{"id": n1.ID}), 0, "last voter"},
		{"remove: malformed JSON", "/remove", `{"id":`, http.StatusBadRequest, "json"},
		{"remove: no id", "/remove", `{}`, http.StatusBadRequest, "id"},
		{"remove: wrong type", "/remove", `{"id":7}`, http.StatusBadRequest, "json"},
		{"join: malformed JSON", "/join", `{"id":"x","raft_addr":`, http.StatusBadRequest, "json"},
		{"join: not an object", "/join", `[1,2]`, http.StatusBadRequest, "json"},
		{"join: unknown field", "/join", `{"id":"x","raft_addr":"127.0.0.1:1","vote":true}`, http.StatusBadRequest, "vote"},
		{"join: no raft_addr", "/join", `{"id":"x"}`, http.StatusBadRequest, "raft_addr"},
		{"join: an existing id at another address", "/join", jsonBody(map[string]any{"id": n1.ID, "raft_addr": "127.0.0.1:1", "voter": true}), 0, n1.ID},
		{"transfer: malformed JSON", "/transfer-leadership", `not json`, http.StatusBadRequest, "json"},
		{"transfer to a learner", "/transfer-leadership", jsonBody(map[string]string{"id": n2.ID}), 0, "voter"},
		{"transfer to an unknown id", "/transfer-leadership", `{"id":"nosuchnode"}`, 0, "nosuchnode"},
	}
	for _, tc := range cases {
		a, err := callAPI(ctx, n1, http.MethodPost, tc.path, tc.body)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		switch {
		case tc.code != 0 && a.Code != tc.code:
			t.Errorf("%s: POST %s %s answered %d %s, want %d", tc.name, tc.path, tc.body, a.Code, a.Body, tc.code)
		case a.Code < 400 || a.Code > 499:
			t.Errorf("%s: POST %s %s answered %d %s, want a 4xx", tc.name, tc.path, tc.body, a.Code, a.Body)
		}
		if !strings.HasPrefix(a.ContentType, "application/json") || a.Error == "" {
			t.Errorf("%s: the answer is not a JSON error: %s %q", tc.name, a.ContentType, a.Body)
		}
		if !strings.Contains(strings.ToLower(a.Error), strings.ToLower(tc.want)) {
			t.Errorf("%s: error %q does not mention %q", tc.name, a.Error, tc.want)
		}
		t.Logf("%s: %d %s", tc.name, a.Code, a.Error)
	}

	// Nothing changed: the same configuration, the same leader, and the
	// cluster still takes writes.
	after, err := waitConf(ctx, c, 30*time.Second, func(st cluster.Status) error {
		if len(st.Configuration) != 2 {
			return fmt.Errorf("configuration %+v, want %s and the learner %s", st.Configuration, n1.ID, n2.ID)
		}
		if m, ok := memberOf(st, n1.ID); !ok || m != own {
			return fmt.Errorf("%s is now %+v, was %+v", n1.ID, m, own)
		}
		return isMember(n2.ID, false)(st)
	})
	if err != nil {
		t.Errorf("after the refused requests: %v", err)
	}
	if after.ID != n1.ID || after.Term != before.Term {
		t.Errorf("leadership moved: %s term %d → %s term %d", before.ID, before.Term, after.ID, after.Term)
	}
	conn := connect(ctx, t, n1, "")
	mustExec(ctx, t, conn, "CREATE TABLE refused (id INTEGER PRIMARY KEY)")
	mustExec(ctx, t, conn, "INSERT INTO refused (id) VALUES (1)")
	conn.Close(ctx)

	// A learner never campaigns: with the only voter dead it stays a
	// learner with no leader, for well past its election timeout
	// (randomized up to 2 × 1.5 s). First it must know it is a learner
	// (it is ready, knowing the leader, before it applies its addition).
	if err := waitRole(ctx, n2, "learner", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n1.Kill(); err != nil {
		t.Fatal(err)
	}
	watchEnd := time.Now().Add(6 * time.Second)
	for time.Now().Before(watchEnd) {
		s, err := n2.Status(ctx)
		if err != nil {
			t.Fatalf("learner %s: %v", n2.ID, err)
		}
		if s.Role != "learner" || s.Leader == n2.ID {
			t.Fatalf("learner %s with the only voter dead: role %s, leader %q, term %d", n2.ID, s.Role, s.Leader, s.Term)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestWipedNodeRejoins is the documented procedure for a node whose data
// directory is lost: stop it, POST /remove its id, wipe the directory,
// start it with --join under the same id and address. It rejoins as a
// learner, catches up by snapshot and is promoted to voter.
func TestWipedNodeRejoins(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3, SnapshotEntries: 50})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	leader, followers := leaderAndFollowers(ctx, t, c)
	newTable(ctx, t, c, leader, "wiped", 150)
	total := 150

	f := followers[0]
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	err := f.Stop(sctx)
	scancel()
	if err != nil {
		t.Fatal(err)
	}
	leader, err = c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Skipping the removal is refused: a voter that joins again has lost
	// its data, and must not vote with an empty log.
	lst, err := leader.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := memberOf(lst, f.ID)
	a, err := callAPI(ctx, leader, http.MethodPost, "/join", jsonBody(map[string]any{"id": f.ID, "raft_addr": m.RaftAddr, "voter": true}))
	if err != nil {
		t.Fatal(err)
	}
	if a.Code != http.StatusConflict || !strings.Contains(a.Error, "remove") {
		t.Errorf("POST /join of the voter %s without removing it first: %d %s; want 409 saying to remove it first", f.ID, a.Code, a.Body)
	}
	// The same with the process: wiped and started with --join, it is
	// refused. It must say so and must not claim to be ready (it has no
	// data and is no working member; a load balancer that trusts /readyz
	// would send it clients).
	if err := os.RemoveAll(f.DataDir); err != nil {
		t.Fatal(err)
	}
	f.SetJoin(leader)
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	refusedSeen := func() bool {
		b, _ := os.ReadFile(f.LogPath)
		return bytes.Contains(b, []byte("refused"))
	}
	obs, ocancel := context.WithTimeout(ctx, 20*time.Second)
	for obs.Err() == nil && f.Running() && !refusedSeen() {
		time.Sleep(50 * time.Millisecond) // waiting for the join attempt
	}
	quiet := time.Now().Add(3 * time.Second) // then watch /readyz a while
	for obs.Err() == nil && f.Running() && time.Now().Before(quiet) {
		if f.Ready(obs) == nil {
			t.Errorf("%s, wiped and refused at --join (see %s), answers /readyz 200 with no data", f.ID, f.LogPath)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	ocancel()
	if !refusedSeen() {
		t.Errorf("wiped %s started with --join without being removed: no refusal in its log %s", f.ID, f.LogPath)
	}
	_, exitErr := f.Exited()
	t.Logf("wiped %s with --join before its removal: running %v, exit %v", f.ID, f.Running(), exitErr)
	if f.Running() {
		if err := f.Kill(); err != nil {
			t.Fatal(err)
		}
	}

	// The procedure: remove, wipe, start with --join.
	if _, err := leader.Do(ctx, http.MethodPost, "/remove", map[string]string{"id": f.ID}, nil); err != nil {
		t.Fatalf("POST /remove %s: %v", f.ID, err)
	}
	if _, err := waitConf(ctx, c, 30*time.Second, notMember(f.ID)); err != nil {
		t.Fatal(err)
	}
	// Writes go on while it is away (the cluster is two voters now).
	insertRange(ctx, t, c, "wiped", total, total+50)
	total += 50
	if err := os.RemoveAll(f.DataDir); err != nil {
		t.Fatal(err)
	}
	if lst, err = leader.Status(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitReady(ctx); err != nil {
		t.Fatalf("wiped %s did not get ready with --join: %v", f.ID, err)
	}
	if _, err := waitApplied(ctx, f, lst.CommitIndex, 60*time.Second); err != nil {
		t.Fatalf("wiped %s did not catch up: %v", f.ID, err)
	}
	installed, _ := logValues(f.LogPath, "installed snapshot from leader", "index")
	t.Logf("wiped %s caught up to %d in %v, installing snapshots %v", f.ID, lst.CommitIndex, time.Since(start).Round(time.Millisecond), installed)
	if len(installed) == 0 {
		t.Errorf("wiped %s caught up without a snapshot (see %s)", f.ID, f.LogPath)
	}
	if _, err := waitConf(ctx, c, 30*time.Second, isMember(f.ID, true)); err != nil {
		t.Errorf("wiped %s was not promoted back to voter: %v", f.ID, err)
	}
	if k, s := rowsOn(ctx, t, f, "linearizable", "wiped"); k != int64(total) || s != sumTo(total) {
		t.Errorf("linearizable read on the rejoined %s: %d rows (sum %d), want %d", f.ID, k, s, total)
	}
	insertRange(ctx, t, c, "wiped", total, total+20)
	total += 20
	checkRows(t, "wiped", sameOnRunningNodes(ctx, t, c, "SELECT id, v FROM wiped ORDER BY id"), total)
}

// diskUse is what a node's data directory holds at one point.
type diskUse struct {
	Entries   int    // acknowledged writes so far
	Commit    uint64 // the node's commit index
	RaftBytes int64  // DATA/raft (the bolt log)
	SnapBytes int64  // DATA/snapshots
	SnapFiles int
	SQLBytes  int64 // DATA/sqlite
	RSS       int64 // the process's resident memory (VmRSS)
}

func (d diskUse) String() string {
	return fmt.Sprintf("%d writes (commit %d): raft log %s, snapshots %s in %d files, sqlite %s, RSS %s",
		d.Entries, d.Commit, mib(d.RaftBytes), mib(d.SnapBytes), d.SnapFiles, mib(d.SQLBytes), mib(d.RSS))
}

func mib(b int64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }

// dirUsage sums the sizes of the files under dir and counts them.
func dirUsage(dir string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // a file renamed or removed under us
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		bytes += info.Size()
		files++
		return nil
	})
	return bytes, files, err
}

// rss is the resident memory of pid in bytes (0 if unknown).
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func measureDisk(ctx context.Context, t *testing.T, n *cluster.Node, entries int) diskUse {
	t.Helper()
	d := diskUse{Entries: entries}
	var err error
	if d.RaftBytes, _, err = dirUsage(filepath.Join(n.DataDir, "raft")); err != nil {
		t.Fatal(err)
	}
	if d.SnapBytes, d.SnapFiles, err = dirUsage(filepath.Join(n.DataDir, "snapshots")); err != nil {
		t.Fatal(err)
	}
	if d.SQLBytes, _, err = dirUsage(filepath.Join(n.DataDir, "sqlite")); err != nil {
		t.Fatal(err)
	}
	if st, err := n.Status(ctx); err == nil {
		d.Commit = st.CommitIndex
	}
	d.RSS = rss(n.Pid())
	t.Logf("disk after %v", d)
	return d
}

// TestSnapshotBoundedDisk writes -entries entries (default 100,000 as
// issue 4 asks, 20,000 with -short) with --snapshot-entries 1000 to a
// single node, each an UPDATE of one of 100 rows so that the database
// itself stays the same size, and requires the raft log and the snapshot
// directory to stay under a bound that does not grow with the number of
// entries. At the end the node is killed and restarted: the newest
// snapshot plus the log after it give every update exactly once.
func TestSnapshotBoundedDisk(t *testing.T) {
	total := *flagEntries
	if total == 0 {
		total = 100000
		if testing.Short() {
			total = 20000
		}
	}
	if total < 8000 {
		t.Fatalf("-entries=%d: need at least 8000 (8 snapshots of 1000) to say anything", total)
	}
	c := startCluster(t, cluster.Options{Nodes: 1, SnapshotEntries: 1000})
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(total/200+120)*time.Second)
	defer cancel()
	n := c.Nodes()[0]
	conn := connect(ctx, t, n, "")
	mustExec(ctx, t, conn, "CREATE TABLE disk (k INTEGER PRIMARY KEY, n INTEGER NOT NULL, v TEXT NOT NULL)")
	var vals []string
	for k := 0; k < 100; k++ {
		vals = append(vals, fmt.Sprintf("(%d, 0, '')", k))
	}
	mustExec(ctx, t, conn, "INSERT INTO disk (k, n, v) VALUES "+strings.Join(vals, ", "))
	conn.Close(ctx)

	// Writers: each entry is one UPDATE from one of several connections
	// (the node group-commits their proposals).
	const workers = 16
	payload := strings.Repeat("x", 100)
	var done atomic.Int64
	write := func(upto int) {
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				conn, err := pgx.Connect(cctx, n.DSN(""))
				cancel()
				if err != nil {
					errs <- err
					return
				}
				defer conn.Close(context.Background())
				for {
					i := done.Add(1)
					if i > int64(upto) {
						done.Add(-1)
						return
					}
					if _, err := conn.Exec(ctx, "UPDATE disk SET n = n + 1, v = $1 WHERE k = $2", payload, i%100); err != nil {
						done.Add(-1)
						errs <- fmt.Errorf("update %d: %w", i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	start := time.Now()
	write(total / 4)
	quarter := measureDisk(ctx, t, n, total/4)
	write(total / 2)
	half := measureDisk(ctx, t, n, total/2)
	write(total)
	end := measureDisk(ctx, t, n, total)
	elapsed := time.Since(start)
	t.Logf("%d writes in %v (%.0f/s)", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())

	// The log keeps between 1000 and 2000 entries (compaction to the
	// previous snapshot) plus what is in flight; a kept entry costs a few
	// hundred bytes. Unbounded, the log would grow by ~200 bytes per
	// write; bounded, it stops growing after the first snapshots (bolt
	// files only grow, but reuse their freed pages).
	const raftBound = 8 << 20
	for _, d := range []diskUse{quarter, half, end} {
		if d.RaftBytes > raftBound {
			t.Errorf("raft log is %s after %d writes; bound %s", mib(d.RaftBytes), d.Entries, mib(raftBound))
		}
		if d.SnapFiles > 3 {
			t.Errorf("%d files in the snapshot directory after %d writes; want at most 3 (the previous, the newest and one being taken)", d.SnapFiles, d.Entries)
		}
		if bound := 3*max(d.SQLBytes, 1<<20) + 1<<20; d.SnapBytes > bound {
			t.Errorf("snapshot directory is %s after %d writes; the database is %s, bound %s", mib(d.SnapBytes), d.Entries, mib(d.SQLBytes), mib(bound))
		}
	}
	// Growth rate over the last three quarters: at most 16 bytes per
	// entry plus 4 MiB (bolt grows its file in doubling steps), far below
	// what keeping the entries costs (~800 bytes per entry measured with
	// --snapshot-entries 0: 16 MiB after 20,000).
	if grow, allowed := end.RaftBytes-quarter.RaftBytes, int64(end.Entries-quarter.Entries)*16+4<<20; grow > allowed {
		t.Errorf("raft log grew by %s between %d and %d writes (%.1f bytes/write): it is not compacted", mib(grow), quarter.Entries, end.Entries, float64(grow)/float64(end.Entries-quarter.Entries))
	}
	// Memory too: a core or driver that kept every entry in memory would
	// grow by ~300 bytes per entry (~22 MiB over the last 75,000 of
	// 100,000); measured, the RSS stays flat (~25 MiB).
	if grow := end.RSS - quarter.RSS; quarter.RSS > 0 && grow > 16<<20 {
		t.Errorf("resident memory grew by %s between %d and %d writes (%s → %s)", mib(grow), quarter.Entries, end.Entries, mib(quarter.RSS), mib(end.RSS))
	}
	if grow := end.SnapBytes - half.SnapBytes; grow > 2<<20 {
		t.Errorf("snapshot directory grew by %s between %d and %d writes", mib(grow), half.Entries, end.Entries)
	}

	// Restart = newest snapshot + the log after it, nothing applied twice.
	check := func(when string) {
		t.Helper()
		conn := connect(ctx, t, n, "linearizable")
		defer conn.Close(ctx)
		var sum, rows int64
		if err := conn.QueryRow(ctx, "SELECT coalesce(sum(n), 0), count(*) FROM disk").Scan(&sum, &rows); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if sum != int64(total) || rows != 100 {
			t.Errorf("%s: %d updates over %d rows, want %d over 100", when, sum, rows, total)
		}
	}
	check("before the restart")
	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted and ready in %v", time.Since(restart).Round(time.Millisecond))
	check("after kill -9 and restart")
}

// TestSnapshotLaggingFollower: a follower that is down (killed), or up
// but cut off by the network, while the leader compacts its log past the
// follower's last entry is caught up by a snapshot when it comes back, and
// ends with every row. (SIGSTOP would not do for the second case: the
// kernel keeps buffering what the leader sends, and the thawed node reads
// every entry from its socket.)
func TestSnapshotLaggingFollower(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3, SnapshotEntries: 50})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	leader, followers := leaderAndFollowers(ctx, t, c)
	newTable(ctx, t, c, leader, "lagging", 60)
	total := 60
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	dead, cutoff := followers[0], followers[1]

	// The dead node misses 300 writes and several compactions.
	if err := dead.Kill(); err != nil {
		t.Fatal(err)
	}
	insertRange(ctx, t, c, "lagging", total, total+300)
	total += 300
	catchUpBySnapshot(ctx, t, c, dead, func() {
		if err := dead.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := dead.WaitReady(ctx); err != nil {
			t.Fatalf("%s after restart: %v", dead.ID, err)
		}
	})
	if k, s := rowsOn(ctx, t, dead, "linearizable", "lagging"); k != int64(total) || s != sumTo(total) {
		t.Errorf("restarted %s: %d rows (sum %d), want %d", dead.ID, k, s, total)
	}

	// A running node cut off from the others misses 300 writes.
	var others []string
	for _, n := range c.Nodes() {
		if n != cutoff {
			others = append(others, n.ID)
		}
	}
	c.Net.Partition(faultproxy.Refuse, []string{cutoff.ID}, others)
	insertRange(ctx, t, c, "lagging", total, total+300)
	total += 300
	catchUpBySnapshot(ctx, t, c, cutoff, func() { c.Net.Heal() })
	if k, s := rowsOn(ctx, t, cutoff, "linearizable", "lagging"); k != int64(total) || s != sumTo(total) {
		t.Errorf("reconnected %s: %d rows (sum %d), want %d", cutoff.ID, k, s, total)
	}
	checkRows(t, "lagging", sameOnRunningNodes(ctx, t, c, "SELECT id, v FROM lagging ORDER BY id"), total)
}

// catchUpBySnapshot runs bringBack for node n, which missed entries the
// leader has compacted away, then requires n to apply the leader's commit
// index and to have installed a snapshot to get there.
func catchUpBySnapshot(ctx context.Context, t *testing.T, c *cluster.Cluster, n *cluster.Node, bringBack func()) {
	t.Helper()
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lst, err := leader.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	compacted, _ := logValues(leader.LogPath, "snapshot taken", "compact_to")
	where := "down"
	if st, err := n.Status(ctx); err == nil {
		where = fmt.Sprintf("at applied %d", st.AppliedIndex)
	}
	t.Logf("%s %s; leader %s at commit %d, log compacted up to %d", n.ID, where, leader.ID, lst.CommitIndex, maxOf(compacted))
	before, _ := logValues(n.LogPath, "installed snapshot from leader", "index")
	start := time.Now()
	bringBack()
	if _, err := waitApplied(ctx, n, lst.CommitIndex, 60*time.Second); err != nil {
		t.Fatalf("%s did not catch up: %v", n.ID, err)
	}
	after, _ := logValues(n.LogPath, "installed snapshot from leader", "index")
	t.Logf("%s caught up to %d in %v; snapshots installed: %v", n.ID, lst.CommitIndex, time.Since(start).Round(time.Millisecond), after[len(before):])
	if len(after) == len(before) {
		t.Errorf("%s caught up without a snapshot although the leader compacted up to %d (see %s)", n.ID, maxOf(compacted), n.LogPath)
	}
}

// TestMembershipRemoveLeader removes the leader itself: it hands over
// leadership once the change commits, leaves the configuration, and the
// others go on writing.
func TestMembershipRemoveLeader(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	leader, _ := leaderAndFollowers(ctx, t, c)
	newTable(ctx, t, c, leader, "rmleader", 20)
	start := time.Now()
	ans, err := callAPI(ctx, leader, http.MethodPost, "/remove", jsonBody(map[string]string{"id": leader.ID}))
	if err != nil {
		t.Fatalf("POST /remove of the leader %s on itself: %v", leader.ID, err)
	}
	t.Logf("POST /remove %s on itself: %d %s after %v", leader.ID, ans.Code, ans.Body, time.Since(start).Round(time.Millisecond))
	if ans.Code != http.StatusOK {
		t.Errorf("POST /remove of the leader %s on itself: %d %s, want 200", leader.ID, ans.Code, ans.Body)
	}
	st, err := waitConf(ctx, c, 30*time.Second, func(st cluster.Status) error {
		if st.ID == leader.ID {
			return fmt.Errorf("%s still leads", leader.ID)
		}
		return notMember(leader.ID)(st)
	})
	if err != nil {
		t.Fatalf("after removing the leader: %v", err)
	}
	t.Logf("%s leads after the old leader %s removed itself: %+v", st.ID, leader.ID, st.Configuration)
	// The removed node stops serving as a member: it is no leader, and
	// writes go on without it.
	if s, err := leader.Status(ctx); err == nil && s.Role == "leader" {
		t.Errorf("the removed %s still says it leads (term %d)", leader.ID, s.Term)
	}
	insertRange(ctx, t, c, "rmleader", 20, 40)
	// A read on the removed node that claims to be linearizable (or
	// lease-based) must not miss the writes made after its removal: it
	// either fails or sees them. (Today it hangs until the client gives
	// up: no answer is a safe answer, if not a helpful one.)
	for _, level := range []string{"linearizable", "lease"} {
		k, err := countOnce(ctx, leader, level, "rmleader", 3*time.Second)
		t.Logf("%s read on the removed %s: %d rows, err %v", level, leader.ID, k, err)
		if err == nil && k != 40 {
			t.Errorf("%s read on the removed %s answered %d rows; 40 were acknowledged by the cluster before the read", level, leader.ID, k)
		}
	}
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	checkRows(t, "rmleader", sameOnRunningNodes(ctx, t, c, "SELECT id, v FROM rmleader ORDER BY id"), 40)
}

// TestMembershipChangeNotLostOnceAcknowledged: a membership change that
// the API answers with 2xx must survive the leader's crash, like any
// acknowledged write (DESIGN.md invariant 3); while it is pending, a
// second change gets 409. The leader is cut off by the network so that
// the change cannot commit, then killed; the others elect a leader and the
// old one restarts.
func TestMembershipChangeNotLostOnceAcknowledged(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	leader, followers := leaderAndFollowers(ctx, t, c)
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	target := followers[1]
	c.Net.Partition(faultproxy.Refuse, []string{leader.ID}, []string{followers[0].ID, followers[1].ID})
	first := make(chan apiAnswer, 1)
	go func() {
		a, err := callAPI(ctx, leader, http.MethodPost, "/remove", jsonBody(map[string]string{"id": target.ID}))
		if err != nil {
			a = apiAnswer{Error: err.Error()}
		}
		first <- a
	}()
	// A second change while the first cannot commit.
	var second apiAnswer
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	err := retry(rctx, func() error {
		st, err := leader.Status(rctx)
		if err != nil {
			return err
		}
		if _, ok := memberOf(st, target.ID); ok {
			return fmt.Errorf("the removal of %s is not appended yet", target.ID)
		}
		second, err = callAPI(rctx, leader, http.MethodPost, "/join", jsonBody(map[string]any{"id": "extra", "raft_addr": "127.0.0.1:9", "voter": false}))
		return err
	})
	rcancel()
	if err != nil {
		t.Errorf("second change: %v", err)
	} else if second.Code != http.StatusConflict || !strings.Contains(second.Error, "in progress") {
		t.Errorf("a second change while one is pending: %d %s; want 409 naming the change in progress", second.Code, second.Body)
	}
	var a apiAnswer
	select {
	case a = <-first:
	case <-time.After(15 * time.Second):
		t.Log("POST /remove has not answered after 15 s with the leader cut off")
	}
	t.Logf("POST /remove %s on the cut-off leader %s: %d %s", target.ID, leader.ID, a.Code, a.Body)
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	c.Net.Heal()
	nl, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatalf("no leader among the others: %v", err)
	}
	// The hard case for the restarted old leader: the new leader is the
	// node that its unconfirmed removal entry takes out.
	if nl != target {
		if err := c.TransferLeadership(ctx, target.ID); err != nil {
			t.Fatalf("transfer to %s: %v", target.ID, err)
		}
		tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
		err := retry(tctx, func() error {
			l, _, err := c.Leader(tctx)
			if err == nil && l != target {
				err = fmt.Errorf("%s leads", l.ID)
			}
			return err
		})
		tcancel()
		if err != nil {
			t.Fatalf("after the transfer to %s: %v", target.ID, err)
		}
	}
	if err := leader.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	err = c.WaitConverged(wctx)
	wcancel()
	if err != nil {
		t.Errorf("the old leader %s, restarted with the unconfirmed removal of %s in its log, does not catch up with the new leader: %v (see %s)", leader.ID, target.ID, err, leader.LogPath)
	}
	_, st, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, still := memberOf(st, target.ID)
	if _, ok := memberOf(st, "extra"); ok {
		t.Errorf("the refused join of \"extra\" is in the configuration %+v", st.Configuration)
	}
	if a.Code/100 == 2 && still {
		t.Errorf("POST /remove %s answered %d %s before the change committed; after the leader's crash %s is a member again: %+v",
			target.ID, a.Code, a.Body, target.ID, st.Configuration)
	}
}

// bulkyCluster starts 3 nodes with --snapshot-entries 20 and ~20 MB of
// data, so that a new node needs a snapshot of several MB.
func bulkyCluster(t *testing.T, ctx context.Context) (*cluster.Cluster, *cluster.Node, int) {
	t.Helper()
	c := startCluster(t, cluster.Options{Nodes: 3, SnapshotEntries: 20})
	leader, _ := leaderAndFollowers(ctx, t, c)
	conn := connect(ctx, t, leader, "")
	mustExec(ctx, t, conn, "CREATE TABLE bulky (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
	blob := strings.Repeat("0123456789abcdef", 32<<10) // 512 KiB
	const rows = 40
	for i := 0; i < rows; i++ {
		mustExec(ctx, t, conn, "INSERT INTO bulky (id, v) VALUES ($1, $2)", i, blob)
	}
	conn.Close(ctx)
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	return c, leader, rows
}

// freezeWhen polls (every few ms: the window is a catch-up) until cond
// holds, then freezes node n with SIGSTOP. It skips the test when the new
// node n4 became a voter first: the race was lost, nothing is proven.
func freezeWhen(ctx context.Context, t *testing.T, n, n4 *cluster.Node, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("%s never happened (see %s)", what, n4.LogPath)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := n.Pause(); err != nil {
		t.Fatal(err)
	}
	if st, err := n4.Status(ctx); err == nil {
		for _, m := range st.Configuration {
			if m.ID == n4.ID && m.Voter {
				t.Skipf("inconclusive: %s was promoted before %s could be frozen", n4.ID, n.ID)
			}
		}
		t.Logf("froze %s once %s; %s at applied %d", n.ID, what, n4.ID, st.AppliedIndex)
	}
}

// newLeaderPromotes waits for a leader other than the frozen one, then
// requires n4 to catch up from it and be promoted to voter.
func newLeaderPromotes(ctx context.Context, t *testing.T, c *cluster.Cluster, frozen, n4 *cluster.Node, rows int) {
	t.Helper()
	nl, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatalf("no new leader with %s frozen: %v", frozen.ID, err)
	}
	nst, err := nl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitApplied(ctx, n4, nst.CommitIndex, 30*time.Second); err != nil {
		t.Fatalf("%s did not catch up from the new leader %s while %s, which it joined through, is frozen: %v (see %s)", n4.ID, nl.ID, frozen.ID, err, n4.LogPath)
	}
	if _, err := waitConf(ctx, c, 10*time.Second, isMember(n4.ID, true)); err != nil {
		t.Errorf("%s caught up from the new leader %s but was never promoted (%s, which accepted the join, is frozen): %v", n4.ID, nl.ID, frozen.ID, err)
		// The operator's way out: ask the current leader again.
		m, _ := memberOf(nst, n4.ID)
		if _, err := nl.Do(ctx, http.MethodPost, "/join", map[string]any{"id": n4.ID, "raft_addr": m.RaftAddr, "voter": true}, nil); err != nil {
			t.Fatalf("POST /join %s again on the new leader %s: %v", n4.ID, nl.ID, err)
		}
		if _, err := waitConf(ctx, c, 20*time.Second, isMember(n4.ID, true)); err != nil {
			t.Errorf("%s not promoted even after POST /join again on the leader %s: %v", n4.ID, nl.ID, err)
		} else {
			t.Logf("workaround: POST /join {id, raft_addr, voter: true} again on the current leader promoted %s", n4.ID)
		}
	}
	if err := frozen.Resume(); err != nil {
		t.Fatal(err)
	}
	if k, _ := rowsOn(ctx, t, n4, "linearizable", "bulky"); k != int64(rows) {
		t.Errorf("%s: %d rows, want %d", n4.ID, k, rows)
	}
}

// TestMembershipJoinSurvivesLeaderLoss: the leader that a new node joins
// through is frozen right after it appended the new learner, before its
// answer reaches the node. The node must still be caught up (by the new
// leader, with a snapshot of several MB) and promoted. It was never told
// the members' Raft addresses: it answers the new leader at the address
// the leader advertises in its connection preface (its front door).
func TestMembershipJoinSurvivesLeaderLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	c, leader, rows := bulkyCluster(t, ctx)
	n4, err := c.AddNode(ctx, leader, false)
	if err != nil {
		t.Fatal(err)
	}
	freezeWhen(ctx, t, leader, n4, "the leader listed the learner", func() bool {
		st, err := leader.Status(ctx)
		_, ok := memberOf(st, n4.ID)
		return err == nil && ok
	})
	newLeaderPromotes(ctx, t, c, leader, n4, rows)
}

// TestMembershipPromotionSurvivesLeaderChange: a node that joins as a
// voter-to-be must be promoted once it has caught up even if the leader
// that accepted its join loses leadership meanwhile (issue 4: "promotes
// it to voter once it is within a small number of entries of the
// leader"). The leader is frozen right after the node got its answer.
func TestMembershipPromotionSurvivesLeaderChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	c, leader, rows := bulkyCluster(t, ctx)
	n4, err := c.AddNode(ctx, leader, false)
	if err != nil {
		t.Fatal(err)
	}
	freezeWhen(ctx, t, leader, n4, "the new node was answered", func() bool {
		b, _ := os.ReadFile(n4.LogPath)
		return bytes.Contains(b, []byte(`msg="joined the cluster"`))
	})
	newLeaderPromotes(ctx, t, c, leader, n4, rows)
}

// TestMembershipTransferToDeadNodeAborts: a transfer to a voter that is
// down cannot complete; the leader aborts it after an election timeout,
// answers with an error, and goes on leading and taking writes.
func TestMembershipTransferToDeadNodeAborts(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	leader, followers := leaderAndFollowers(ctx, t, c)
	conn := connect(ctx, t, leader, "")
	mustExec(ctx, t, conn, "CREATE TABLE aborted (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
	conn.Close(ctx)
	_, before, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dead := followers[0]
	if err := dead.Kill(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a, err := callAPI(ctx, leader, http.MethodPost, "/transfer-leadership", jsonBody(map[string]string{"id": dead.ID}))
	if err != nil {
		t.Fatalf("POST /transfer-leadership to the dead %s: %v", dead.ID, err)
	}
	t.Logf("POST /transfer-leadership to the dead %s: %d %s after %v", dead.ID, a.Code, a.Body, time.Since(start).Round(time.Millisecond))
	if a.Code/100 == 2 || a.Error == "" {
		t.Errorf("a transfer to a dead node answered %d %s; want an error", a.Code, a.Body)
	}
	l, after, err := c.Leader(ctx)
	if err != nil {
		t.Fatalf("after the aborted transfer: %v", err)
	}
	if l != leader || after.Term != before.Term {
		t.Errorf("leadership moved on an aborted transfer: %s term %d → %s term %d", before.ID, before.Term, after.ID, after.Term)
	}
	insertRange(ctx, t, c, "aborted", 0, 20)
	if k, _ := rowsOn(ctx, t, leader, "linearizable", "aborted"); k != 20 {
		t.Errorf("%d rows after the aborted transfer, want 20", k)
	}
}
