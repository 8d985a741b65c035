package node

import (
	"context"
	"slices"
	"sync"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
)

// memNet is a minimal in-process network for the driver's tests: delivery
// is synchronous into the receiver's handler (which only queues), and links
// can be cut in either direction.
type memNet struct {
	mu    sync.Mutex
	nodes map[string]*memTransport // by addr
	cut   map[[2]string]bool       // {from, to} ids
}

func newMemNet() *memNet {
	return &memNet{nodes: map[string]*memTransport{}, cut: map[[2]string]bool{}}
}

// isolate cuts id from every other node, both ways; heal undoes all cuts.
func (n *memNet) isolate(id string, others ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, o := range others {
		if o != id {
			n.cut[[2]string{id, o}] = true
			n.cut[[2]string{o, id}] = true
		}
	}
}

func (n *memNet) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
}

func (n *memNet) transport(id string) *memTransport {
	return &memTransport{net: n, id: id, addr: "mem:" + id, peers: map[string]string{}}
}

type memTransport struct {
	net      *memNet
	id, addr string

	mu     sync.Mutex
	peers  map[string]string
	h      transport.Handler
	closed bool
}

var _ transport.Transport = (*memTransport)(nil)

func (t *memTransport) Start(ctx context.Context, h transport.Handler) error {
	t.mu.Lock()
	t.h = h
	t.mu.Unlock()
	t.net.mu.Lock()
	t.net.nodes[t.addr] = t
	t.net.mu.Unlock()
	return nil
}

func (t *memTransport) Send(msgs []consensus.Message) {
	for _, m := range msgs {
		t.mu.Lock()
		addr, ok := t.peers[m.To]
		h, closed := t.h, t.closed
		t.mu.Unlock()
		if closed {
			return
		}
		if !ok {
			h.ReportUnreachable(m.To)
			continue
		}
		t.net.mu.Lock()
		dst := t.net.nodes[addr]
		cut := t.net.cut[[2]string{t.id, m.To}]
		t.net.mu.Unlock()
		if dst == nil || cut {
			continue
		}
		dst.mu.Lock()
		dh, dclosed := dst.h, dst.closed
		dst.mu.Unlock()
		if dclosed || dh == nil {
			continue
		}
		m.Entries = slices.Clone(m.Entries)
		dh.Receive(m)
	}
}

func (t *memTransport) AddPeer(id, addr string) {
	t.mu.Lock()
	t.peers[id] = addr
	t.mu.Unlock()
}

func (t *memTransport) RemovePeer(id string) {
	t.mu.Lock()
	delete(t.peers, id)
	t.mu.Unlock()
}

func (t *memTransport) Addr() string { return t.addr }

func (t *memTransport) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.net.mu.Lock()
	if t.net.nodes[t.addr] == t {
		delete(t.net.nodes, t.addr)
	}
	t.net.mu.Unlock()
	return nil
}
