package transport

import (
	"context"

	"github.com/raftsql/raftsql/consensus"
)

// Transport moves Raft messages between nodes. Two implementations satisfy
// it: TCP (production) and an in-process network (tests), checked by one
// contract test suite.
//
// Send never blocks on the network: messages are queued per peer (bounded;
// when a peer's queue is full the message is dropped and the Handler is told
// the peer is unreachable) and written in batches on one connection per
// peer, reconnecting with backoff.
type Transport interface {
	// Start begins accepting connections and delivering received messages
	// to h. It returns once the listener is ready (TCP) or at once.
	Start(ctx context.Context, h Handler) error
	// Send queues msgs for their To peers. Messages to unknown peers are
	// dropped and reported unreachable.
	Send(msgs []consensus.Message)
	// AddPeer tells the transport how to reach id (idempotent; a new addr
	// replaces the old one). RemovePeer forgets id and closes its connection.
	AddPeer(id, addr string)
	RemovePeer(id string)
	// Addr is the address this transport listens on.
	Addr() string
	// Close stops the transport and waits for its goroutines.
	Close() error
}

// Handler receives what the transport delivers. Its methods are called
// from transport goroutines and must not block for long: the driver queues
// them into its loop.
type Handler interface {
	Receive(m consensus.Message)
	ReportUnreachable(id string)
	// ReportSnapshot reports the outcome of sending a MsgSnap to id.
	ReportSnapshot(id string, ok bool)
}

// AddrObserver is an optional interface of a Handler: the transport calls
// ObservePeerAddr(id, addr) when a peer that connects to this node
// advertises the Raft address it is reached at (TCP: in the preface of
// each connection it dials; in-process: with its first delivery and after
// a change). The handler decides whether to use it: the driver adds it to
// the transport only for a peer it has no address for, because the
// configuration's address wins. Called from transport goroutines before
// any message of that connection is delivered; it must only queue.
type AddrObserver interface {
	ObservePeerAddr(id, addr string)
}

// Advertiser is implemented by transports that send this node's own Raft
// address to the peers they dial (TCP and Mem). The driver sets it to the
// address the configuration gives this node.
type Advertiser interface {
	SetAdvertiseAddr(addr string)
}

var (
	_ Advertiser = (*TCP)(nil)
	_ Advertiser = (*Mem)(nil)
)
