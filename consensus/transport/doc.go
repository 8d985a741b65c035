// Package transport moves Raft messages between raftsql nodes. It declares
// the Transport and Handler interfaces the driver (consensus/node) uses and
// provides two implementations that pass one contract test suite
// (contract_test.go):
//
//   - TCP (NewTCP), for production: one outgoing connection per peer, fed by
//     a bounded per-peer queue and a writer goroutine that batches what is
//     queued into frames; reconnect with capped exponential backoff; a
//     listener whose connections each get a reader goroutine.
//   - Mem (NewNetwork, Network.Transport), for tests of the driver and of
//     whole nodes: in-process, ordered per link, asynchronous, with fault
//     hooks (Cut one way, CutBoth, Isolate, and seeded per-link
//     SetDropRate, SetDuplicateRate, SetReorderRate; SetDelay,
//     SetLinkDelay; Heal). Messages go through the wire
//     codec, so nodes share no memory.
//
// # Wire format (version 2)
//
// A dialer first sends a preface: the magic "RSQL-RFT", the wire version,
// its node id, the id it means to reach, and the Raft address it
// advertises (TCPConfig.AdvertiseAddr / SetAdvertiseAddr: where its peers
// reach it, which behind a proxy is not the listen address). Then frames:
// a little-endian u32 payload length (at most MaxFrameSize), the
// payload's CRC-32C, and the
// payload, whose first byte is its kind: 1 = a batch of messages, 2 = a
// snapshot transfer frame. Messages are a compact binary encoding (type,
// flags, varints, length-prefixed bytes; see codec.go); no reflection or
// self-describing format on the hot path. Decoding is strict: bad magic or
// version, an advertised address that is not host:port, a checksum
// mismatch, an oversized, truncated or trailing-byte frame, an unknown
// frame kind or message type, a local-only message type, or a message
// whose From/To do not match the connection closes the
// connection, is logged at WARN and counted in Stats.BadPeers. No input
// makes the node panic (fuzzed: FuzzDecodeMessage, FuzzDecodeFrame,
// FuzzReadPreface, FuzzServe, FuzzReadRawFrame).
//
// Versions: this build sends version 2 and also accepts version 1 (the
// same preface without the address; nothing is learnt about the sender).
// A version-1 build refuses version 2 ("unsupported wire version"), so in
// a rolling upgrade an upgraded node cannot send to the old ones until
// they are upgraded too.
//
// # Learning a peer's address
//
// When a connection's preface carries an address and the Handler is an
// AddrObserver, the transport calls ObservePeerAddr(from, addr) before it
// delivers anything of that connection (Mem: with a sender's first
// delivery and after its address changes). The transport itself does not
// add the peer: the driver does, for a peer it has no address for (a
// node that joined and has not learnt the configuration yet must answer
// a leader it was never told about); a configured address always wins.
//
// TCPConfig.TLS runs connections over TLS (mutual TLS with ClientAuth set);
// a peer that fails the handshake is refused and counted like garbage.
//
// # Delivery semantics
//
// Send never blocks. Messages for one peer are delivered in order, at most
// once; any may be lost (Raft retries). A message is dropped, and the
// Handler told ReportUnreachable(peer), when the peer is unknown, its queue
// is full, a dial fails (the whole queue is dropped then; the next message
// dials again after the backoff), or a write fails. Messages of one Send
// call to one peer are queued atomically, so they leave in one frame when
// they fit in MaxBatchBytes.
//
// # Snapshots
//
// With SnapshotConfig set on both ends, a MsgSnap is sent on a separate
// connection, followed by the snapshot's data read from SnapshotSource in
// chunks and a trailer (size, CRC-32C). The receiver writes the data into a
// SnapshotWriter from SnapshotSink, verifies the trailer, calls Commit,
// delivers the MsgSnap to its Handler, and acknowledges; the sender then
// calls Handler.ReportSnapshot(to, ok). Heartbeats keep flowing on the
// normal connection meanwhile. One transfer per peer runs at a time. A
// transfer whose sender goes silent mid-stream is aborted by the receiver
// after SnapshotConfig.IdleTimeout (15 s) and its connection closed, so
// the sender reports the failure at once and the leader sends again.
//
// # Lifecycle
//
// New → AddPeer/Start (either order) → Send, AddPeer, RemovePeer from any
// goroutine → Close, which closes the listener and every connection and
// waits for every goroutine (tested: no goroutine outlives Close). Handler
// methods are called from transport goroutines and must only queue.
//
// # Debugging
//
// Pass a Logger: connects, disconnects and dial failures are logged at
// DEBUG, dropped garbage peers at WARN with the reason. Stats counts
// messages sent, received and dropped, frames, dials and bad peers.
package transport
