package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
	"github.com/raftsql/raftsql/store"
)

// testFSM is a state machine that keeps what it applied in memory. It
// outlives a Node (a restarted node gets the same testFSM), standing in for
// a durable state machine, and counts every application of an index.
type testFSM struct {
	t        testing.TB
	mu       sync.Mutex
	applied  uint64
	data     [][]byte          // Data of applied non-empty normal entries, in order
	index    map[string]uint64 // first index at which each Data was applied
	count    map[uint64]int    // applications per index
	restores int
}

func newTestFSM(t testing.TB) *testFSM {
	return &testFSM{t: t, count: map[uint64]int{}, index: map[string]uint64{}}
}

func (f *testFSM) Apply(ctx context.Context, ents []consensus.Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range ents {
		f.count[e.Index]++
		if f.count[e.Index] > 1 {
			f.t.Errorf("index %d applied %d times", e.Index, f.count[e.Index])
		}
		if e.Index != f.applied+1 {
			f.t.Errorf("applied %d after %d", e.Index, f.applied)
		}
		f.applied = e.Index
		if e.Type == consensus.EntryNormal && len(e.Data) > 0 {
			f.data = append(f.data, e.Data)
			if _, ok := f.index[string(e.Data)]; !ok {
				f.index[string(e.Data)] = e.Index
			}
		}
	}
	return nil
}

func (f *testFSM) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

type testSnap struct {
	Applied uint64
	Data    [][]byte
	Index   map[string]uint64
}

// SnapshotFile and Restore make testFSM a Snapshotter.
func (f *testFSM) SnapshotFile(ctx context.Context, path string) (uint64, error) {
	f.mu.Lock()
	b, err := json.Marshal(testSnap{Applied: f.applied, Data: f.data, Index: f.index})
	applied := f.applied
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return applied, os.WriteFile(path, b, 0o644)
}

func (f *testFSM) Restore(ctx context.Context, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var s testSnap
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied, f.data, f.index = s.Applied, s.Data, s.Index
	f.restores++
	return nil
}

func (f *testFSM) restoreCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores
}

func (f *testFSM) values() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.data))
	for i, d := range f.data {
		out[i] = string(d)
	}
	return out
}

func (f *testFSM) has(v string) bool { _, ok := f.indexOf(v); return ok }

func (f *testFSM) indexOf(v string) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.index[v]
	return i, ok
}

type cluster struct {
	t     testing.TB
	net   *transport.Network
	ids   []string
	dir   string
	fsms  map[string]*testFSM
	nodes map[string]*Node
	clock func() time.Time
	et    time.Duration
	// wrap, if set, wraps each node's store (fault injection).
	wrap func(id string, st LogStore) LogStore
	// snapEvery > 0 turns snapshots on (Config.SnapshotEntries).
	snapEvery uint64
	// memcfg, if set, adjusts each node's in-process transport config.
	memcfg func(id string, mc *transport.MemConfig)
	// cfg, if set, adjusts each node's Config before Start.
	cfg    func(id string, c *Config)
	stores map[string]*store.Store
}

const (
	testElection  = 400 * time.Millisecond
	testHeartbeat = 40 * time.Millisecond
	waitFor       = 20 * time.Second // deadline for any one condition; generous for a loaded machine
)

func newCluster(t testing.TB, size int) *cluster {
	c := &cluster{
		t: t, net: transport.NewNetwork(transport.NetworkConfig{Seed: 1}), dir: t.TempDir(),
		fsms: map[string]*testFSM{}, nodes: map[string]*Node{}, et: testElection,
		stores: map[string]*store.Store{},
	}
	for i := range size {
		c.ids = append(c.ids, fmt.Sprintf("n%d", i+1))
	}
	for _, id := range c.ids {
		c.fsms[id] = newTestFSM(t)
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *cluster) peers() []consensus.Member {
	var ms []consensus.Member
	for _, id := range c.ids {
		ms = append(ms, consensus.Member{ID: id, Addr: "mem:" + id, Voter: true})
	}
	return ms
}

func testLogger(t testing.TB, id string) *slog.Logger {
	if os.Getenv("NODE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name(), "id", id)
}

func (c *cluster) start(id string) *Node {
	c.t.Helper()
	return c.startWith(id, c.peers(), nil)
}

func (c *cluster) startWith(id string, peers, contacts []consensus.Member) *Node {
	c.t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(c.dir, id), store.Options{})
	if err != nil {
		c.t.Fatalf("open store %s: %v", id, err)
	}
	var ls LogStore = st
	if c.wrap != nil {
		ls = c.wrap(id, st)
	}
	c.stores[id] = st
	mc := transport.MemConfig{ID: id, Addr: "mem:" + id}
	var snaps *Snapshots
	if c.snapEvery > 0 {
		snaps, err = OpenSnapshots(filepath.Join(c.dir, id+"-snaps"), nil)
		if err != nil {
			c.t.Fatal(err)
		}
		mc.Snapshots = &transport.SnapshotConfig{Source: snaps, Sink: snaps}
	}
	if c.memcfg != nil {
		c.memcfg(id, &mc)
	}
	seed := uint64(1)
	for _, b := range []byte(id) {
		seed = seed*31 + uint64(b)
	}
	cfg := Config{
		ID:                id,
		Peers:             peers,
		Contacts:          contacts,
		ElectionTimeout:   c.et,
		HeartbeatInterval: testHeartbeat,
		Store:             ls,
		Transport:         c.net.Transport(mc),
		Snapshots:         snaps,
		SnapshotEntries:   c.snapEvery,
		StateMachine:      c.fsms[id],
		Logger:            testLogger(c.t, id),
		Clock:             c.clock,
		RandSeed:          seed,
	}
	if c.cfg != nil {
		c.cfg(id, &cfg)
	}
	n, err := Start(ctx, cfg)
	if err != nil {
		_ = st.Close()
		c.t.Fatalf("start %s: %v", id, err)
	}
	c.nodes[id] = n
	return n
}

func (c *cluster) startAll() {
	for _, id := range c.ids {
		c.start(id)
	}
}

func (c *cluster) stop(id string) {
	c.t.Helper()
	n := c.nodes[id]
	if n == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		c.t.Errorf("stop %s: %v", id, err)
	}
	if err := n.Err(); err != nil {
		c.t.Errorf("node %s failed: %v", id, err)
	}
	delete(c.nodes, id)
}

func (c *cluster) stopAll() {
	for _, id := range slices.Sorted(mapKeys(c.nodes)) {
		c.stop(id)
	}
}

func mapKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tk := time.NewTicker(5 * time.Millisecond)
	defer tk.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tk.C
	}
}

// leader waits until the running nodes agree on one leader among them
// (and that leader says it leads) and returns it.
func (c *cluster) leader() *Node {
	c.t.Helper()
	var l *Node
	eventually(c.t, "a leader all running nodes agree on", func() bool {
		lead := ""
		for _, n := range c.nodes {
			s := n.Status()
			if s.Lead == "" || (lead != "" && s.Lead != lead) {
				return false
			}
			lead = s.Lead
		}
		ln := c.nodes[lead]
		if ln == nil || ln.Status().Role != consensus.RoleLeader {
			return false
		}
		l = ln
		return true
	})
	return l
}

func (c *cluster) followers(lead *Node) []*Node {
	var fs []*Node
	for _, id := range slices.Sorted(mapKeys(c.nodes)) {
		if id != lead.ID() {
			fs = append(fs, c.nodes[id])
		}
	}
	return fs
}

// propose retries until the node accepts the proposal (a follower drops
// it while it does not know the leader yet).
func propose(t testing.TB, n *Node, v string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	tk := time.NewTicker(5 * time.Millisecond)
	defer tk.Stop()
	for {
		err := n.Propose(ctx, []byte(v))
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("propose %q on %s: %v", v, n.ID(), err)
		}
		<-tk.C
	}
}

// waitValues waits until every running node applied want (in order).
func (c *cluster) waitValues(want []string) {
	c.t.Helper()
	for id := range c.nodes {
		f := c.fsms[id]
		eventually(c.t, fmt.Sprintf("%s to apply %d values", id, len(want)), func() bool {
			return len(f.values()) >= len(want)
		})
		if got := f.values(); !slices.Equal(got, want) {
			c.t.Fatalf("%s applied %q, want %q", id, got, want)
		}
	}
}
