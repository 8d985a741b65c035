package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// Proposals made on the leader and on followers (forwarded by the core)
// are applied in one order on every node.
func TestReplicateSameOrderOnAllNodes(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.leader()

	const per = 15
	var wg sync.WaitGroup
	var want []string
	for _, n := range c.nodes {
		for i := range per {
			want = append(want, fmt.Sprintf("%s-%d", n.ID(), i))
		}
		wg.Go(func() {
			for i := range per {
				propose(t, n, fmt.Sprintf("%s-%d", n.ID(), i))
			}
		})
	}
	wg.Wait()
	lf := c.fsms[l.ID()]
	eventually(t, "leader to apply all proposals", func() bool { return len(lf.values()) >= len(want) })
	got := lf.values()
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("leader applied %q, want the set %q", got, want)
	}
	// Each proposer's own values stay in its order.
	for id := range c.nodes {
		var mine []string
		for _, v := range got {
			if len(v) > len(id) && v[:len(id)+1] == id+"-" {
				mine = append(mine, v)
			}
		}
		for i, v := range mine {
			if v != fmt.Sprintf("%s-%d", id, i) {
				t.Fatalf("values of %s out of order: %q", id, mine)
			}
		}
	}
	c.waitValues(got)
	for id, n := range c.nodes {
		st := n.Status()
		if st.Applied != c.fsms[id].AppliedIndex() || st.Applied < uint64(len(want)) {
			t.Errorf("%s: Status.Applied %d, fsm applied %d", id, st.Applied, c.fsms[id].AppliedIndex())
		}
	}
}

// ReadIndex on a follower returns an index at or past every write the
// leader acknowledged before the call; once applied, the write is visible.
func TestReadIndexOnFollowers(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.leader()
	ctx := ctxT(t)

	for round := range 3 {
		v := fmt.Sprintf("w%d", round)
		propose(t, l, v)
		eventually(t, "leader applies "+v, func() bool { return c.fsms[l.ID()].has(v) })
		acked := l.AppliedIndex()
		for _, f := range c.followers(l) {
			idx, err := f.ReadIndex(ctx)
			if err != nil {
				t.Fatalf("ReadIndex on %s: %v", f.ID(), err)
			}
			if idx < acked {
				t.Fatalf("ReadIndex on %s = %d, below acknowledged write at %d", f.ID(), idx, acked)
			}
			if err := f.WaitApplied(ctx, idx); err != nil {
				t.Fatal(err)
			}
			if !c.fsms[f.ID()].has(v) {
				t.Fatalf("%s applied %d but does not have %q", f.ID(), idx, v)
			}
		}
	}

	// Many concurrent readers on a follower and on the leader.
	acked := l.AppliedIndex()
	var wg sync.WaitGroup
	errc := make(chan error, 128)
	for i := range 64 {
		n := c.followers(l)[0]
		if i%2 == 0 {
			n = l
		}
		wg.Go(func() {
			idx, err := n.ReadIndex(ctx)
			if err == nil && idx < acked {
				err = fmt.Errorf("%s: read index %d < %d", n.ID(), idx, acked)
			}
			if err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// When the leader stops, the others elect a new one and keep committing;
// the old leader catches up when it comes back.
func TestLeaderStopElectsNewLeader(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	old := c.leader()
	propose(t, old, "a")
	c.waitValues([]string{"a"})
	oldTerm := old.Status().Term

	c.stop(old.ID())
	nl := c.leader()
	if nl.ID() == old.ID() || nl.Status().Term <= oldTerm {
		t.Fatalf("new leader %s term %d, old %s term %d", nl.ID(), nl.Status().Term, old.ID(), oldTerm)
	}
	propose(t, c.followers(nl)[0], "b") // forwarded to the new leader
	c.waitValues([]string{"a", "b"})

	c.start(old.ID())
	c.leader()
	c.waitValues([]string{"a", "b"})
}

// A restarted cluster keeps its log, and its state machines apply nothing
// twice (testFSM fails the test on a second application of an index); a
// state machine that lost everything is replayed from the log.
func TestRestartFromStore(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.leader()
	var want []string
	for i := range 10 {
		v := fmt.Sprintf("v%d", i)
		want = append(want, v)
		propose(t, l, v)
	}
	c.waitValues(want)
	last := map[string]uint64{}
	for id, n := range c.nodes {
		last[id] = n.Status().LastIndex
	}

	c.stopAll()
	c.fsms["n3"] = newTestFSM(t) // n3's state machine lost its data
	c.startAll()
	for id, n := range c.nodes {
		if got := n.Status().LastIndex; got < last[id] {
			t.Errorf("%s: last index %d after restart, %d before", id, got, last[id])
		}
	}
	l = c.leader()
	want = append(want, "after")
	propose(t, l, "after")
	c.waitValues(want)
}

// LeaseValid is false on followers, becomes true on the leader, and is
// false on an isolated leader by the time the others have elected a new
// leader.
func TestLeaseAndPartition(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.leader()
	eventually(t, "leader lease", l.LeaseValid)
	for _, f := range c.followers(l) {
		if f.LeaseValid() {
			t.Fatalf("follower %s has a lease", f.ID())
		}
	}
	term := l.Status().Term

	c.net.Isolate(l.ID(), c.ids...)
	eventually(t, "a new leader in the majority", func() bool {
		for _, f := range c.followers(l) {
			if st := f.Status(); st.Role == consensus.RoleLeader && st.Term > term {
				// The old leader's lease must be over before a new
				// leader exists (it cannot be renewed meanwhile).
				if l.LeaseValid() {
					t.Fatalf("old leader %s still has a lease while %s leads term %d", l.ID(), f.ID(), st.Term)
				}
				return true
			}
		}
		return false
	})
	eventually(t, "isolated leader steps down (check-quorum)", func() bool {
		return l.Status().Role != consensus.RoleLeader
	})
	if l.LeaseValid() {
		t.Fatal("stepped-down leader has a lease")
	}
	c.net.Heal()
	nl := c.leader()
	if nl.Status().Term <= term {
		t.Fatalf("leader term %d after heal, was %d", nl.Status().Term, term)
	}
}

// fakeClock is a manual clock for the lease arithmetic.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// The lease ends exactly LeaseDuration after the newest acknowledged
// round's tick began, by the injected clock.
func TestLeaseExpiresByClock(t *testing.T) {
	c := newCluster(t, 3)
	clk := &fakeClock{now: time.Unix(1000, 0)}
	c.clock = clk.Now
	c.et = 2 * time.Second // the isolated leader must not step down during the check
	c.startAll()
	l := c.leader()
	eventually(t, "leader lease", l.LeaseValid)
	d := l.LeaseDuration()
	if want := c.et - testHeartbeat/2 - c.et/10; d != want {
		t.Fatalf("LeaseDuration = %v, want %v", d, want)
	}
	// Every tick began at the frozen time, so the lease ends at start+d.
	c.net.Isolate(l.ID(), c.ids...)
	clk.advance(d - time.Millisecond)
	if !l.LeaseValid() {
		t.Fatal("lease ended early")
	}
	clk.advance(time.Millisecond)
	if l.LeaseValid() {
		t.Fatal("lease still valid at its end")
	}
}

// A leadership transfer ends the lease at once and hands over leadership.
func TestTransferLeadership(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.leader()
	propose(t, l, "x")
	c.waitValues([]string{"x"})
	eventually(t, "leader lease", l.LeaseValid)
	to := c.followers(l)[0].ID()
	if err := l.TransferLeadership(ctxT(t), to); err != nil {
		t.Fatalf("transfer to %s: %v", to, err)
	}
	if l.LeaseValid() {
		t.Fatal("old leader kept its lease after a transfer")
	}
	if got := c.leader().ID(); got != to {
		t.Fatalf("leader %s, want %s", got, to)
	}
	if err := c.nodes[to].TransferLeadership(ctxT(t), "nobody"); !errors.Is(err, ErrTransferFailed) {
		t.Fatalf("transfer to unknown node: %v, want ErrTransferFailed", err)
	}
}

// A node that joins with an empty store and no Peers is added as a learner
// and catches up, is promoted to voter, and a follower is removed; the
// cluster keeps committing through each change.
func TestMembershipChanges(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.leader()
	propose(t, l, "before")
	c.waitValues([]string{"before"})

	c.ids = append(c.ids, "n4")
	c.fsms["n4"] = newTestFSM(t)
	n4 := c.startWith("n4", nil, c.peers()[:3])
	confChange(t, l, consensus.ConfChange{Type: consensus.ConfAddLearner, ID: "n4", Addr: "mem:n4"})
	propose(t, l, "learner")
	c.waitValues([]string{"before", "learner"})
	eventually(t, "n4 reports itself a learner", func() bool { return n4.Status().Role == consensus.RoleLearner })

	confChange(t, l, consensus.ConfChange{Type: consensus.ConfAddVoter, ID: "n4", Addr: "mem:n4"})
	eventually(t, "n4 becomes a voter", func() bool {
		for _, m := range n4.Status().Conf.Members {
			if m.ID == "n4" {
				return m.Voter && n4.Status().Role == consensus.RoleFollower
			}
		}
		return false
	})

	gone := c.followers(l)[0].ID()
	if gone == "n4" {
		gone = c.followers(l)[1].ID()
	}
	confChange(t, l, consensus.ConfChange{Type: consensus.ConfRemove, ID: gone})
	eventually(t, gone+" leaves the leader's configuration", func() bool {
		for _, m := range l.Status().Conf.Members {
			if m.ID == gone {
				return false
			}
		}
		return len(l.Status().Conf.Members) == 3
	})
	c.stop(gone)
	propose(t, l, "after")
	c.waitValues([]string{"before", "learner", "after"})
}

// confChange proposes cc on the leader, retrying while an earlier change
// is still pending.
func confChange(t *testing.T, l *Node, cc consensus.ConfChange) {
	t.Helper()
	eventually(t, fmt.Sprintf("conf change %+v accepted", cc), func() bool {
		err := l.ProposeConfChange(ctxT(t), cc)
		if err != nil && !errors.Is(err, ErrConfChangeInProgress) {
			t.Fatalf("conf change %+v: %v", cc, err)
		}
		return err == nil
	})
}

func TestStoppedAndBadInput(t *testing.T) {
	c := newCluster(t, 1)
	c.startAll()
	n := c.leader()
	ctx := ctxT(t)
	if err := n.Propose(ctx, make([]byte, DefaultMaxProposalBytes+1)); !errors.Is(err, ErrProposalTooLarge) {
		t.Fatalf("oversized proposal: %v", err)
	}
	propose(t, n, "one")
	c.waitValues([]string{"one"})
	c.stop("n1")
	if err := n.Propose(ctx, []byte("late")); !errors.Is(err, ErrStopped) {
		t.Fatalf("Propose after Stop: %v", err)
	}
	if _, err := n.ReadIndex(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("ReadIndex after Stop: %v", err)
	}
	if n.LeaseValid() {
		t.Fatal("stopped node has a lease")
	}
	select {
	case <-n.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
}

func TestConfigTiming(t *testing.T) {
	base := Config{ID: "a", Store: nopStore{}, Transport: transport.NewNetwork(transport.NetworkConfig{}).Transport(transport.MemConfig{ID: "a"}), StateMachine: newTestFSM(t)}
	cfg, tm, err := base.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ElectionTimeout != DefaultElectionTimeout || tm.tick != 75*time.Millisecond ||
		tm.electionTick != 20 || tm.heartbeatTick != 2 || tm.lease != 1275*time.Millisecond {
		t.Fatalf("defaults: cfg %v/%v timing %+v", cfg.ElectionTimeout, cfg.HeartbeatInterval, tm)
	}
	far := base
	far.ElectionTimeout, far.MinClusterElectionTimeout = 5*time.Second, time.Second
	if _, tm, _ := far.withDefaults(); tm.lease != time.Second-75*time.Millisecond-100*time.Millisecond || tm.electionTick != 67 {
		t.Fatalf("far node timing %+v", tm)
	}
	for _, bad := range []Config{
		{ID: "", Store: base.Store, Transport: base.Transport, StateMachine: base.StateMachine},
		{ID: "a"},
		{ID: "a", Store: base.Store, Transport: base.Transport, StateMachine: base.StateMachine, ElectionTimeout: time.Second, HeartbeatInterval: 500 * time.Millisecond},
		{ID: "a", Store: base.Store, Transport: base.Transport, StateMachine: base.StateMachine, Peers: []consensus.Member{{ID: "b", Voter: true}}},
		{ID: "a", Store: base.Store, Transport: base.Transport, StateMachine: base.StateMachine, Peers: []consensus.Member{{ID: "a", Voter: true}, {ID: "a", Voter: true}}},
		{ID: "a", Store: base.Store, Transport: base.Transport, StateMachine: base.StateMachine, Peers: []consensus.Member{{ID: "a"}}},
		{ID: "a", Store: base.Store, Transport: base.Transport, StateMachine: base.StateMachine, SnapshotEntries: 5},
	} {
		if _, _, err := bad.withDefaults(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: err %v, want ErrInvalidConfig", bad, err)
		}
	}
}

type nopStore struct{ LogStore }

func TestTickClock(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := newTickClock(4, t0)
	if at, ok := c.at(0); !ok || !at.Equal(t0) {
		t.Fatalf("tick 0: %v %v", at, ok)
	}
	if _, ok := c.at(1); ok {
		t.Fatal("future tick known")
	}
	for i := uint64(1); i <= 10; i++ {
		c.record(i, t0.Add(time.Duration(i)*time.Second))
	}
	if at, ok := c.at(7); !ok || !at.Equal(t0.Add(7*time.Second)) {
		t.Fatalf("tick 7: %v %v", at, ok)
	}
	if _, ok := c.at(6); ok {
		t.Fatal("tick 6 should be forgotten")
	}
}

// All callers queued in one iteration share one core request; answers
// reach every one of them; an unanswered batch is asked again without
// forgetting its first request, and either answer serves it.
func TestReadBatcher(t *testing.T) {
	newReqs := func(n int) []*readReq {
		rs := make([]*readReq, n)
		for i := range rs {
			rs[i] = &readReq{ctx: context.Background(), resc: make(chan uint64, 1)}
		}
		return rs
	}
	expect := func(rs []*readReq, want uint64) {
		t.Helper()
		for i, r := range rs {
			select {
			case idx := <-r.resc:
				if idx != want {
					t.Fatalf("req %d got %d, want %d", i, idx, want)
				}
			default:
				t.Fatalf("req %d not answered", i)
			}
		}
	}
	b := newReadBatcher([8]byte{1})
	var asked [][]byte
	ask := func(rctx []byte) { asked = append(asked, rctx) }

	first := newReqs(5)
	for _, r := range first {
		b.add(r)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	b.add(&readReq{ctx: canceled, resc: make(chan uint64, 1)})
	b.issue(ask, 10)
	b.issue(ask, 10) // nothing new
	if len(asked) != 1 {
		t.Fatalf("%d core requests, want 1", len(asked))
	}
	b.retryStale(12, 4) // not stale yet
	b.issue(ask, 12)
	if len(asked) != 1 {
		t.Fatalf("retried too early: %d requests", len(asked))
	}
	b.retryStale(14, 4)
	b.retryStale(14, 4) // queued once only
	b.issue(ask, 14)
	if len(asked) != 2 || string(asked[0]) == string(asked[1]) {
		t.Fatalf("retry: asked %x", asked)
	}
	// The first request's answer arrives late: it still serves the batch,
	// and the retry's answer is then ignored.
	if n := b.answer([]consensus.ReadState{{Index: 7, RequestCtx: asked[0]}}); n != 5 {
		t.Fatalf("woke %d", n)
	}
	expect(first, 7)
	if n := b.answer([]consensus.ReadState{{Index: 9, RequestCtx: asked[1]}}); n != 0 {
		t.Fatalf("second answer woke %d", n)
	}

	// A leader change asks again at once; the newest answer serves.
	second := newReqs(3)
	for _, r := range second {
		b.add(r)
	}
	b.issue(ask, 20)
	b.reissueAll()
	b.issue(ask, 20)
	if len(asked) != 4 {
		t.Fatalf("%d requests after a leader change, want 4", len(asked))
	}
	b.answer([]consensus.ReadState{{Index: 11, RequestCtx: asked[3]}})
	expect(second, 11)

	// Old requests of a batch retried many times are forgotten.
	third := newReqs(1)
	b.add(third[0])
	b.issue(ask, 30)
	for i := range uint64(maxKeysPerBatch + 2) {
		b.retryStale(40+10*i, 4)
		b.issue(ask, 40+10*i)
	}
	if len(b.pending) != maxKeysPerBatch {
		t.Fatalf("%d outstanding requests for one batch, want %d", len(b.pending), maxKeysPerBatch)
	}
	b.answer([]consensus.ReadState{{Index: 1, RequestCtx: asked[4]}}) // forgotten
	if len(third[0].resc) != 0 {
		t.Fatal("answer to a forgotten request was taken")
	}
	b.answer([]consensus.ReadState{{Index: 12, RequestCtx: asked[len(asked)-1]}})
	expect(third, 12)
	if len(b.pending) != 0 || len(b.retry) != 0 {
		t.Fatalf("left over: pending %v retry %v", b.pending, b.retry)
	}
}

// stallStore makes every Save take extra time, like this machine's disk in
// one of its slow spells.
type stallStore struct {
	LogStore
	stall *atomic.Int64 // extra nanoseconds per Save
}

func (s stallStore) Save(hs consensus.HardState, ents []consensus.Entry, snap *consensus.SnapshotMeta) error {
	if d := time.Duration(s.stall.Load()); d > 0 {
		time.Sleep(d) // the simulated fault, not a synchronisation
	}
	return s.LogStore.Save(hs, ents, snap)
}

// Slow fsyncs on every node (a quarter of the election timeout each, the
// ratio of a 400 ms stall to the default 1.5 s timeout) cause no election:
// a node does not tick while it is stuck in its own write, and a stalled
// leader's followers have time to spare.
func TestSlowDiskNoElection(t *testing.T) {
	c := newCluster(t, 3)
	var stall atomic.Int64
	c.wrap = func(id string, st LogStore) LogStore { return stallStore{LogStore: st, stall: &stall} }
	c.startAll()
	l := c.leader()
	propose(t, l, "warm")
	c.waitValues([]string{"warm"})
	term := l.Status().Term

	stall.Store(int64(c.et / 4))
	want := []string{"warm"}
	for i := range 6 {
		v := fmt.Sprintf("slow%d", i)
		want = append(want, v)
		propose(t, l, v)
		eventually(t, "leader applies "+v, func() bool { return c.fsms[l.ID()].has(v) })
		// A read-index round can now take longer than the read retry
		// interval; reads must still complete.
		f := c.followers(l)[i%2]
		if idx, err := f.ReadIndex(ctxT(t)); err != nil || idx < l.AppliedIndex() {
			t.Fatalf("ReadIndex on %s during slow disk: %d, %v (leader applied %d)", f.ID(), idx, err, l.AppliedIndex())
		}
	}
	stall.Store(0)
	c.waitValues(want)
	for id, n := range c.nodes {
		if st := n.Status(); st.Term != term || st.Lead != l.ID() {
			t.Errorf("%s: term %d leader %q after slow disk, want term %d leader %q", id, st.Term, st.Lead, term, l.ID())
		}
	}
}

// Callers that queue up while the loop is busy share one core ReadIndex
// request.
func TestReadIndexBatchesCallers(t *testing.T) {
	c := newCluster(t, 1)
	c.startAll()
	n := c.leader()
	propose(t, n, "a")
	c.waitValues([]string{"a"})
	ctx := ctxT(t)
	if _, err := n.ReadIndex(ctx); err != nil { // first read of the term
		t.Fatal(err)
	}

	entered, release := make(chan struct{}), make(chan struct{})
	go func() { _ = n.do(ctx, func() error { close(entered); <-release; return nil }) }()
	<-entered // the loop is busy now
	before := n.Metrics()
	const callers = 20
	var wg sync.WaitGroup
	idxs := make([]uint64, callers)
	for i := range callers {
		wg.Go(func() {
			idx, err := n.ReadIndex(ctx)
			if err != nil {
				t.Error(err)
			}
			idxs[i] = idx
		})
	}
	eventually(t, "callers queued", func() bool { return len(n.readc) == callers })
	close(release)
	wg.Wait()
	after := n.Metrics()
	if got := after.ReadRequests - before.ReadRequests; got != 1 {
		t.Fatalf("%d core requests for %d queued callers, want 1", got, callers)
	}
	if got := after.ReadCallers - before.ReadCallers; got != callers {
		t.Fatalf("%d callers answered, want %d", got, callers)
	}
	for _, idx := range idxs {
		if idx < n.AppliedIndex() || idx != idxs[0] {
			t.Fatalf("read indexes %v, applied %d", idxs, n.AppliedIndex())
		}
	}
}

func TestDurablePrefix(t *testing.T) {
	ents := func(lo, hi uint64) []consensus.Entry {
		var es []consensus.Entry
		for i := lo; i <= hi; i++ {
			es = append(es, consensus.Entry{Index: i, Term: 1})
		}
		return es
	}
	for _, tc := range []struct {
		durable   uint64
		committed []consensus.Entry
		entries   []consensus.Entry
		want      int
	}{
		{10, ents(5, 8), nil, 4},               // all durable
		{10, ents(5, 12), nil, 6},              // 11, 12 not yet
		{10, ents(5, 12), ents(11, 15), 6},     // appended after durable
		{10, ents(5, 10), ents(9, 12), 4},      // 9, 10 being replaced: wait
		{0, ents(1, 3), ents(1, 3), 0},         // follower: entries and commit together
		{10, nil, ents(11, 11), 0},             // nothing committed
		{3, ents(1, 3), ents(4, 20), 3},        // leader: old commits before new batch
		{20, ents(15, 18), ents(21, 21), 4},    // normal leader case
		{20, ents(19, 21), ents(21, 21), 2},    // 21 only after the save
		{5, ents(6, 7), nil, 0},                // defensive: beyond durable
		{5, ents(3, 7), ents(4, 4), 1},         // truncation at 4
		{100, ents(50, 50), ents(101, 102), 1}, // single
	} {
		n := &Node{durableLast: tc.durable}
		if got := n.durablePrefix(tc.committed, tc.entries); got != tc.want {
			t.Errorf("durable %d committed %v entries %v: got %d, want %d",
				tc.durable, tc.committed, tc.entries, got, tc.want)
		}
	}
}

// write proposes v on whichever node leads until some node has applied it
// (a proposal can be lost with its leader's term), and returns the index
// at which it was applied: from then on the write is acknowledged.
func (c *cluster) write(v string) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		lead := c.leader()
		propose(c.t, lead, v)
		retry := time.Now().Add(2 * time.Second)
		for time.Now().Before(retry) {
			for _, f := range c.fsms {
				if i, ok := f.indexOf(v); ok {
					return i
				}
			}
			select {
			case <-lead.LeaderChanged():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	c.t.Fatalf("write %q never applied", v)
	return 0
}

// With 15% of messages lost, ReadIndex on every node still answers (the
// driver asks again) with an index covering every acknowledged write, and
// the replicas agree once the network heals.
func TestReadIndexUnderMessageLoss(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	c.leader()
	c.net.SetDropRate(0.15)
	ctx := ctxT(t)
	for round := range 5 {
		v := fmt.Sprintf("lossy%d", round)
		acked := c.write(v)
		for id, n := range c.nodes {
			idx, err := n.ReadIndex(ctx)
			if err != nil {
				t.Fatalf("ReadIndex on %s: %v", id, err)
			}
			if idx < acked {
				t.Fatalf("ReadIndex on %s = %d, below acknowledged write at %d", id, idx, acked)
			}
			if err := n.WaitApplied(ctx, idx); err != nil {
				t.Fatal(err)
			}
			if !c.fsms[id].has(v) {
				t.Fatalf("%s applied %d but lacks %q (at %d)", id, idx, v, acked)
			}
		}
	}
	c.net.Heal()
	l := c.leader()
	propose(t, l, "end")
	eventually(t, "leader applies end", func() bool { return c.fsms[l.ID()].has("end") })
	c.waitValues(c.fsms[l.ID()].values())
}

// With snapshots on, the leader compacts its log; a follower that was down
// past the compaction point catches up through a snapshot streamed by the
// transport, and a node whose state machine lost its data is restored
// from its snapshot file at start.
func TestSnapshotCatchUpAndRestore(t *testing.T) {
	c := newCluster(t, 3)
	c.snapEvery = 10
	c.startAll()
	l := c.leader()
	lagger := c.followers(l)[0].ID()
	c.stop(lagger)
	lagLast, _ := c.stores[lagger].LastIndex()

	var want []string
	for i := range 60 {
		v := fmt.Sprintf("s%d", i)
		want = append(want, v)
		propose(t, l, v)
	}
	eventually(t, "leader applies all", func() bool { return len(c.fsms[l.ID()].values()) == len(want) })
	eventually(t, "leader compacts past the lagging follower", func() bool {
		first, err := c.stores[l.ID()].FirstIndex()
		return err == nil && first > lagLast+1
	})

	c.start(lagger)
	c.waitValues(want)
	if c.fsms[lagger].restoreCount() == 0 {
		t.Fatalf("%s caught up without a snapshot", lagger)
	}
	if s, _ := c.stores[lagger].Snapshot(); s.Index == 0 {
		t.Fatalf("%s store has no snapshot meta", lagger)
	}

	// The state machine loses its data: Start restores the snapshot the
	// store's log begins after, and the log replays the rest.
	c.stop(lagger)
	c.fsms[lagger] = newTestFSM(t)
	c.start(lagger)
	if c.fsms[lagger].restoreCount() != 1 {
		t.Fatalf("restores at start: %d", c.fsms[lagger].restoreCount())
	}
	propose(t, c.leader(), "last")
	c.waitValues(append(want, "last"))
}

type failStore struct {
	LogStore
	fail *atomic.Bool
}

var errDiskGone = errors.New("injected: disk gone")

func (s failStore) Save(hs consensus.HardState, ents []consensus.Entry, snap *consensus.SnapshotMeta) error {
	if s.fail.Load() {
		return errDiskGone
	}
	return s.LogStore.Save(hs, ents, snap)
}

// A failed Save stops the node: nothing is sent or applied after it, Err
// says why, and calls return ErrStopped wrapping the cause.
func TestFatalSaveStopsNode(t *testing.T) {
	c := newCluster(t, 1)
	var fail atomic.Bool
	c.wrap = func(id string, st LogStore) LogStore { return failStore{LogStore: st, fail: &fail} }
	c.startAll()
	n := c.leader()
	propose(t, n, "ok")
	c.waitValues([]string{"ok"})
	applied := n.AppliedIndex()

	fail.Store(true)
	_ = n.Propose(ctxT(t), []byte("lost")) // accepted or not: its Save fails
	select {
	case <-n.Done():
	case <-time.After(waitFor):
		t.Fatal("node did not stop after a failed Save")
	}
	if !errors.Is(n.Err(), errDiskGone) {
		t.Fatalf("Err() = %v", n.Err())
	}
	if err := n.Propose(ctxT(t), []byte("x")); !errors.Is(err, ErrStopped) || !errors.Is(err, errDiskGone) {
		t.Fatalf("Propose after fatal error: %v", err)
	}
	if n.AppliedIndex() != applied || c.fsms["n1"].has("lost") {
		t.Fatal("an entry whose Save failed was applied")
	}
	delete(c.nodes, "n1") // already stopped, with an error

	// Like a crash: the commit index of "ok" was never written (it rides
	// with the next Save, which failed), yet the state machine applied it.
	// The restarted node resumes without applying anything twice.
	fail.Store(false)
	c.start("n1")
	n = c.leader()
	propose(t, n, "again")
	c.waitValues([]string{"ok", "again"})
}

// The lease ends the moment a transfer starts, even one that never
// completes; the aborted transfer reports ErrTransferFailed, and the node
// stays leader.
func TestLeaseEndsWhenTransferStarts(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.leader()
	propose(t, l, "x")
	c.waitValues([]string{"x"})
	eventually(t, "leader lease", l.LeaseValid)
	to := c.followers(l)[0].ID()
	c.net.Isolate(to, c.ids...) // the target never hears MsgTimeoutNow

	errc := make(chan error, 1)
	go func() { errc <- l.TransferLeadership(ctxT(t), to) }()
	eventually(t, "transfer in progress", func() bool { return l.Status().LeadTransferee == to })
	if l.LeaseValid() {
		t.Fatal("lease valid during a leadership transfer")
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrTransferFailed) {
			t.Fatalf("aborted transfer returned %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("transfer to an unreachable node never gave up")
	}
	if st := l.Status(); st.Role != consensus.RoleLeader {
		t.Fatalf("leader lost office after an aborted transfer: %v", st.Role)
	}
	// When the lease may return after an abandoned transfer is the core's
	// rule (MsgTimeoutNow was sent and may still arrive); reads go
	// through ReadIndex meanwhile.
	if _, err := l.ReadIndex(ctxT(t)); err != nil {
		t.Fatalf("ReadIndex after an aborted transfer: %v", err)
	}
	c.net.Heal()
}

// RequestSnapshot takes a snapshot before SnapshotEntries entries were
// applied and compacts the log up to it, not one snapshot behind; a
// follower that was down meanwhile catches up from that snapshot.
func TestRequestSnapshot(t *testing.T) {
	c := newCluster(t, 3)
	c.snapEvery = 1000 // the periodic trigger never fires here
	c.startAll()
	l := c.leader()
	lagger := c.followers(l)[0].ID()
	c.stop(lagger)
	var want []string
	for i := range 20 {
		v := fmt.Sprintf("r%d", i)
		want = append(want, v)
		propose(t, l, v)
	}
	eventually(t, "leader applies all", func() bool { return len(c.fsms[l.ID()].values()) == len(want) })
	applied := l.AppliedIndex()
	if s, _ := c.stores[l.ID()].Snapshot(); s.Index != 0 {
		t.Fatalf("a snapshot at %d before any was asked for", s.Index)
	}
	l.RequestSnapshot()
	eventually(t, "the leader's log is compacted up to the requested snapshot", func() bool {
		s, err := c.stores[l.ID()].Snapshot()
		return err == nil && s.Index >= applied
	})
	if m := l.Metrics(); m.SnapshotsTaken != 1 {
		t.Errorf("snapshots taken: %d, want 1", m.SnapshotsTaken)
	}
	c.start(lagger)
	c.waitValues(want)
	if c.fsms[lagger].restoreCount() == 0 {
		t.Fatalf("%s caught up without the snapshot", lagger)
	}
}

// A RequestSnapshot made when nothing was applied since the last snapshot
// is not lost: the next applied entry takes it (a restore requests one
// from inside Apply, before the node publishes the entry's index).
func TestRequestSnapshotPendingUntilApplied(t *testing.T) {
	c := newCluster(t, 1)
	c.snapEvery = 1000
	c.startAll()
	l := c.leader()
	propose(t, l, "a")
	eventually(t, "applied", func() bool { return len(c.fsms[l.ID()].values()) == 1 })
	l.RequestSnapshot()
	eventually(t, "first snapshot", func() bool { return l.Metrics().SnapshotsTaken == 1 })
	// Nothing new applied: the request waits; the snapshot goroutine has
	// seen its kick once the channel is empty.
	l.RequestSnapshot()
	eventually(t, "the kick consumed", func() bool { return len(l.snapKick) == 0 })
	if got := l.Metrics().SnapshotsTaken; got != 1 {
		t.Fatalf("a snapshot with nothing new applied: %d taken", got)
	}
	propose(t, l, "b")
	eventually(t, "the pending request taken after the next entry", func() bool { return l.Metrics().SnapshotsTaken == 2 })
}
