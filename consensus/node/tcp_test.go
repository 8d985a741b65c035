package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
	"github.com/raftsql/raftsql/store"
)

// The driver over the real TCP transport on loopback: election, a write
// forwarded from a follower, a read index on a follower.
func TestTCPCluster(t *testing.T) {
	ids := []string{"n1", "n2", "n3"}
	lns := map[string]net.Listener{}
	var peers []consensus.Member
	for _, id := range ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id] = ln
		peers = append(peers, consensus.Member{ID: id, Addr: ln.Addr().String(), Voter: true})
	}
	ctx := ctxT(t)
	dir := t.TempDir()
	nodes := map[string]*Node{}
	fsms := map[string]*testFSM{}
	for i, id := range ids {
		nodes[id], fsms[id], _ = startTCPNode(t, ctx, dir, i, id, lns[id], peers)
	}
	lead, err := nodes["n1"].WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var follower *Node
	for id, n := range nodes {
		if id != lead {
			follower = n
		}
	}
	for i := range 5 {
		propose(t, follower, fmt.Sprintf("tcp%d", i))
	}
	for id, f := range fsms {
		eventually(t, id+" applies the writes", func() bool { return len(f.values()) == 5 })
	}
	idx, err := follower.ReadIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := nodes[lead].AppliedIndex(); idx < want {
		t.Fatalf("follower read index %d < leader applied %d", idx, want)
	}
	for id, f := range fsms {
		if got, want := f.values(), fsms[lead].values(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s applied %q, leader %q", id, got, want)
		}
	}
}

// forward listens on a new loopback address and relays every connection
// to target: the stand-in for a proxy in front of a node, whose address
// is what the configuration names (not the node's listen address).
func forward(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.Close() }()
				io.Copy(c, u)
			}()
		}
	}()
	return ln.Addr().String()
}

// Over TCP, with every node reached through a relay whose address is the
// one in the configuration: a node that joins without knowing any member
// learns the leader's relay address from the preface (the leader
// advertises its configured address, not its listen address) and answers
// through it.
func TestTCPJoinerLearnsAdvertisedAddress(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	ids := []string{"n1", "n2", "n3", "n4"}
	lns := map[string]net.Listener{}
	front := map[string]string{}
	for _, id := range ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id] = ln
		front[id] = forward(t, ln.Addr().String())
	}
	var peers []consensus.Member
	for _, id := range ids[:3] {
		peers = append(peers, consensus.Member{ID: id, Addr: front[id], Voter: true})
	}
	nodes := map[string]*Node{}
	fsms := map[string]*testFSM{}
	trs := map[string]*transport.TCP{}
	for i, id := range ids {
		var p []consensus.Member
		if id != "n4" {
			p = peers // n4 joins: no Peers, no Contacts
		}
		nodes[id], fsms[id], trs[id] = startTCPNode(t, ctx, dir, i, id, lns[id], p)
	}
	for _, id := range ids[:3] {
		if got := trs[id].AdvertiseAddr(); got != front[id] {
			t.Fatalf("%s advertises %q, want its configured address %q", id, got, front[id])
		}
	}
	lead, err := nodes["n1"].WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := nodes[lead]
	propose(t, l, "before")
	eventually(t, "n4 added as a learner", func() bool {
		err := l.ProposeConfChange(ctx, consensus.ConfChange{Type: consensus.ConfAddLearner, ID: "n4", Addr: front["n4"]})
		return err == nil
	})
	propose(t, l, "after")
	eventually(t, "n4 applies both writes", func() bool { return len(fsms["n4"].values()) == 2 })
	if got := trs["n4"].AdvertiseAddr(); got != front["n4"] {
		t.Fatalf("n4 advertises %q once in the configuration, want %q", got, front["n4"])
	}
}

// startTCPNode starts node id (the i-th, for its seed) on a bolt store
// under dir and a TCP transport on ln, stopped at the end of the test.
func startTCPNode(t *testing.T, ctx context.Context, dir string, i int, id string, ln net.Listener, peers []consensus.Member) (*Node, *testFSM, *transport.TCP) {
	t.Helper()
	st, err := store.Open(ctx, filepath.Join(dir, id), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.NewTCP(transport.TCPConfig{ID: id, Listener: ln, Logger: testLogger(t, id)})
	if err != nil {
		t.Fatal(err)
	}
	fsm := newTestFSM(t)
	n, err := Start(ctx, Config{
		ID: id, Peers: peers, ElectionTimeout: testElection, HeartbeatInterval: testHeartbeat,
		Store: st, Transport: tr, StateMachine: fsm, Logger: testLogger(t, id), RandSeed: uint64(i + 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return n, fsm, tr
}
