package node

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
)

// A node that joins knowing nobody (no Peers, no Contacts: the member it
// joined through failed before answering) learns the leader's address
// from the leader's connection and catches up. The initial members'
// transports advertise a wrong address until the driver sets the one the
// configuration gives them, so this also checks that it does.
func TestJoinerLearnsLeaderAddress(t *testing.T) {
	c := newCluster(t, 3)
	c.memcfg = func(id string, mc *transport.MemConfig) { mc.AdvertiseAddr = "stale:" + id }
	c.startAll()
	l := c.leader()
	propose(t, l, "before")
	c.waitValues([]string{"before"})

	c.ids = append(c.ids, "n4")
	c.fsms["n4"] = newTestFSM(t)
	n4 := c.startWith("n4", nil, nil)
	confChange(t, l, consensus.ConfChange{Type: consensus.ConfAddLearner, ID: "n4", Addr: "mem:n4"})
	propose(t, l, "after")
	c.waitValues([]string{"before", "after"})
	eventually(t, "n4 knows the configuration", func() bool { return len(n4.Status().Conf.Members) == 4 })
}

// fakeTransport records AddPeer and SetAdvertiseAddr calls.
type fakeTransport struct {
	transport.Transport
	mu        sync.Mutex
	added     []string // "id=addr"
	advertise []string
}

func (f *fakeTransport) AddPeer(id, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, id+"="+addr)
}

func (f *fakeTransport) SetAdvertiseAddr(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advertise = append(f.advertise, addr)
}

func (f *fakeTransport) take() (added, advertise []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	added, advertise = f.added, f.advertise
	f.added, f.advertise = nil, nil
	return added, advertise
}

// The configuration's address wins over one a peer advertises; a learnt
// address is used only for a peer the node has none for, may be replaced
// by a newer learnt one, and is replaced by the configuration's.
func TestLearnPeerConfigurationWins(t *testing.T) {
	tr := &fakeTransport{}
	n := &Node{id: "me", cfg: Config{Transport: tr}, log: slog.New(slog.DiscardHandler), peers: map[string]string{}, learnt: map[string]bool{}}
	check := func(step string, wantAdded, wantAdvertise []string) {
		t.Helper()
		added, adv := tr.take()
		slices.Sort(added)
		if !slices.Equal(added, wantAdded) || !slices.Equal(adv, wantAdvertise) {
			t.Fatalf("%s: AddPeer %q, SetAdvertiseAddr %q; want %q, %q", step, added, adv, wantAdded, wantAdvertise)
		}
	}
	n.syncPeers([]consensus.Member{{ID: "me", Addr: "front:me", Voter: true}, {ID: "a", Addr: "front:a", Voter: true}})
	check("configuration", []string{"a=front:a"}, []string{"front:me"})

	n.learnPeer("a", "direct:a")
	check("a configured peer advertises another address", nil, nil)
	n.learnPeer("me", "x:1")
	n.learnPeer("b", "")
	check("itself, or no address", nil, nil)

	n.learnPeer("b", "direct:b")
	check("unknown peer", []string{"b=direct:b"}, nil)
	n.learnPeer("b", "direct:b")
	check("same address again", nil, nil)
	n.learnPeer("b", "moved:b")
	check("learnt peer moved", []string{"b=moved:b"}, nil)

	n.syncPeers([]consensus.Member{{ID: "me", Addr: "front:me", Voter: true}, {ID: "a", Addr: "front:a", Voter: true}, {ID: "b", Addr: "front:b"}})
	check("b enters the configuration", []string{"b=front:b"}, nil)
	n.learnPeer("b", "direct:b")
	check("b is configured now", nil, nil)
	if got := fmt.Sprint(n.peers); got != "map[a:front:a b:front:b]" {
		t.Fatalf("peers %s", got)
	}

	// Made-up ids cannot grow the transport's peers without bound.
	for i := range maxLearntPeers + 10 {
		n.learnPeer(fmt.Sprintf("x%d", i), fmt.Sprintf("x:%d", i))
	}
	if added, _ := tr.take(); len(added) != maxLearntPeers {
		t.Fatalf("%d peers learnt from prefaces, want the cap %d", len(added), maxLearntPeers)
	}
	n.learnPeer("x0", "x:moved")
	if added, _ := tr.take(); len(added) != 1 {
		t.Fatalf("a learnt peer at the cap could not move: %q", added)
	}
}
