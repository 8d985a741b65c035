package consensus

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// testNode is one RawNode with its MemoryStorage and applied entries.
type testNode struct {
	id      string
	rn      *RawNode
	st      *MemoryStorage
	applied []Entry
	reads   []ReadState
}

type nodeOpt func(*Config)

func withPreVote(c *Config)     { c.PreVote = true }
func withCheckQuorum(c *Config) { c.CheckQuorum = true }

func testConfig(id string, st Storage, seed uint64, opts ...nodeOpt) *Config {
	c := &Config{
		ID:              id,
		ElectionTick:    10,
		HeartbeatTick:   1,
		Storage:         st,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		Rand:            rand.New(rand.NewPCG(seed, 7)),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("n%d", i+1)
	}
	return out
}

func members(idl ...string) []Member {
	out := make([]Member, len(idl))
	for i, id := range idl {
		out[i] = Member{ID: id, Addr: "addr-" + id, Voter: true}
	}
	return out
}

// testNet delivers messages between testNodes synchronously.
type testNet struct {
	t     testing.TB
	nodes map[string]*testNode
	order []string
	// cut[from][to]: messages from -> to are dropped.
	cut map[[2]string]bool
	// filter, if set, may drop (false) or alter messages.
	filter func(m *Message) bool
	// appRoundTrips counts MsgApp rejections delivered (for tests).
	sent []Message
}

func newTestNet(t testing.TB, n int, opts ...nodeOpt) *testNet {
	t.Helper()
	nw := &testNet{t: t, nodes: map[string]*testNode{}, cut: map[[2]string]bool{}}
	all := ids(n)
	for i, id := range all {
		st := NewMemoryStorage()
		rn, err := NewRawNode(testConfig(id, st, uint64(i+1), opts...))
		if err != nil {
			t.Fatal(err)
		}
		if err := rn.Bootstrap(members(all...)); err != nil {
			t.Fatal(err)
		}
		// As if started long ago: out of the start-up quiet period in
		// which a check-quorum node ignores votes.
		rn.r.tick = uint64(rn.r.electionTimeout)
		nw.nodes[id] = &testNode{id: id, rn: rn, st: st}
		nw.order = append(nw.order, id)
	}
	nw.processAll()
	return nw
}

func (nw *testNet) node(id string) *testNode { return nw.nodes[id] }

// process handles one node's Ready fully and returns the messages to send.
func (nw *testNet) process(n *testNode) []Message {
	var out []Message
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		out = append(out, rd.MessagesBeforePersist...)
		if err := n.st.Save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
			nw.t.Fatal(err)
		}
		out = append(out, rd.Messages...)
		if rd.Snapshot != nil {
			n.applied = n.applied[:0]
		}
		n.applied = append(n.applied, rd.CommittedEntries...)
		n.reads = append(n.reads, rd.ReadStates...)
		n.rn.Advance(rd)
	}
	return out
}

func (nw *testNet) processAll() []Message {
	var out []Message
	for _, id := range nw.order {
		out = append(out, nw.process(nw.nodes[id])...)
	}
	return out
}

// deliver sends msgs and everything they cause until the network is quiet.
func (nw *testNet) deliver(msgs []Message) {
	for round := 0; len(msgs) > 0; round++ {
		if round > 10000 {
			nw.t.Fatal("network does not quiesce")
		}
		var next []Message
		for _, m := range msgs {
			if nw.cut[[2]string{m.From, m.To}] {
				continue
			}
			if nw.filter != nil && !nw.filter(&m) {
				continue
			}
			to := nw.nodes[m.To]
			if to == nil {
				continue
			}
			nw.sent = append(nw.sent, m)
			_ = to.rn.Step(m)
			next = append(next, nw.process(to)...)
		}
		msgs = append(next, nw.processAll()...)
	}
}

func (nw *testNet) stabilize() { nw.deliver(nw.processAll()) }

// isolate cuts id off from every other node in both directions.
func (nw *testNet) isolate(id string) {
	for _, o := range nw.order {
		if o != id {
			nw.cut[[2]string{id, o}] = true
			nw.cut[[2]string{o, id}] = true
		}
	}
}

// restart recreates id's RawNode from its storage (a crash after which
// nothing is lost: the test network persists every Ready at once).
func (nw *testNet) restart(id string, opts ...nodeOpt) {
	n := nw.nodes[id]
	rn, err := NewRawNode(testConfig(id, n.st, uint64(len(n.applied))+99, opts...))
	if err != nil {
		nw.t.Fatal(err)
	}
	n.rn = rn
	n.applied = nil
}

func (nw *testNet) heal() { nw.cut = map[[2]string]bool{} }

func (nw *testNet) campaign(id string) {
	nw.t.Helper()
	if err := nw.nodes[id].rn.Campaign(); err != nil {
		nw.t.Fatal(err)
	}
	nw.stabilize()
}

func (nw *testNet) tick(id string, n int) {
	for range n {
		nw.nodes[id].rn.Tick()
	}
	nw.stabilize()
}

func (nw *testNet) tickAll(n int) {
	for range n {
		for _, id := range nw.order {
			nw.nodes[id].rn.Tick()
		}
		nw.stabilize()
	}
}

func (nw *testNet) propose(id string, data string) error {
	err := nw.nodes[id].rn.Propose([]byte(data))
	nw.stabilize()
	return err
}

func (nw *testNet) leader() string {
	lead := ""
	for _, id := range nw.order {
		if nw.nodes[id].rn.r.role == RoleLeader {
			if lead != "" && nw.nodes[lead].rn.r.term == nw.nodes[id].rn.r.term {
				nw.t.Fatalf("two leaders in term %d", nw.nodes[id].rn.r.term)
			}
			if lead == "" || nw.nodes[id].rn.r.term > nw.nodes[lead].rn.r.term {
				lead = id
			}
		}
	}
	return lead
}

// logOf returns the whole log of a node (storage and unstable).
func logOf(t testing.TB, rn *RawNode) []Entry {
	t.Helper()
	l := rn.r.log
	ents, err := l.slice(l.firstIndex(), l.lastIndex()+1, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	return ents
}

func dataOf(ents []Entry) []string {
	var out []string
	for _, e := range ents {
		if e.Type == EntryNormal && len(e.Data) > 0 {
			out = append(out, string(e.Data))
		}
	}
	return out
}

func mustEqualLogs(t testing.TB, nw *testNet) {
	t.Helper()
	var ref []Entry
	for i, id := range nw.order {
		l := logOf(t, nw.nodes[id].rn)
		if i == 0 {
			ref = l
			continue
		}
		if !slices.EqualFunc(ref, l, func(a, b Entry) bool {
			return a.Index == b.Index && a.Term == b.Term && string(a.Data) == string(b.Data)
		}) {
			t.Fatalf("logs differ:\n%s: %s\n%s: %s", nw.order[0], fmtLog(ref), id, fmtLog(l))
		}
	}
}

func TestBasicElectionAndReplication(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.campaign("n1")
	if got := nw.leader(); got != "n1" {
		t.Fatalf("leader = %q, want n1", got)
	}
	for i := range 10 {
		if err := nw.propose("n1", fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nw.propose("n2", "via-follower"); err != nil {
		t.Fatal(err)
	}
	nw.tickAll(2)
	mustEqualLogs(t, nw)
	for _, id := range nw.order {
		n := nw.node(id)
		if got := dataOf(n.applied); len(got) != 11 {
			t.Fatalf("%s applied %v", id, got)
		}
		if n.rn.Status().Commit != n.rn.Status().LastIndex {
			t.Fatalf("%s: %+v", id, n.rn.Status())
		}
	}
}

func fmtLog(ents []Entry) string {
	var sb []byte
	for i, e := range ents {
		if i > 40 && i < len(ents)-5 {
			if i == 41 {
				sb = append(sb, "... "...)
			}
			continue
		}
		sb = fmt.Appendf(sb, "%d/%d:%q ", e.Index, e.Term, e.Data)
	}
	return string(sb)
}
