package node

import (
	"context"
	"fmt"
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
		st, err := store.Open(ctx, filepath.Join(dir, id), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := transport.NewTCP(transport.TCPConfig{ID: id, Listener: lns[id], Logger: testLogger(t, id)})
		if err != nil {
			t.Fatal(err)
		}
		fsms[id] = newTestFSM(t)
		n, err := Start(ctx, Config{
			ID: id, Peers: peers, ElectionTimeout: testElection, HeartbeatInterval: testHeartbeat,
			Store: st, Transport: tr, StateMachine: fsms[id], Logger: testLogger(t, id), RandSeed: uint64(i + 1),
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = n
		t.Cleanup(func() {
			if err := n.Stop(context.Background()); err != nil {
				t.Error(err)
			}
		})
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
