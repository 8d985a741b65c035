// Package faultproxy is a TCP proxy that sits on every Raft link of a test
// cluster and injects network faults under the control of a test.
//
// # Model
//
// Each node of the cluster gets one proxy listener ("the front door" of that
// node); every node's --peers lists the front doors, so the configuration is
// the same on every node, survives snapshots and membership changes, and all
// Raft traffic passes through the proxy. When a connection arrives, the
// proxy asks an injected Identify function which node opened it (the cluster
// harness looks the socket's owner up in /proc), so it knows the directed
// link: bytes the dialer sends travel on link From→To, bytes flowing back on
// the same connection travel on To→From. Rules are kept per directed link,
// so a fault can be one way.
//
// A Rule can
//   - cut a link. In Refuse mode the proxy closes the link's connections and
//     closes new ones at once (the transport sees resets and reconnects with
//     backoff); in Blackhole mode connections stay open but the bytes vanish
//     (the transport sees a silent peer, the hard case for timeouts). A
//     connection that lost bytes in a blackhole is closed when the link heals,
//     because its byte stream is no longer whole.
//   - delay a link by a fixed time plus jitter (order is kept: TCP does not
//     reorder).
//   - drop, duplicate or reorder whole transport frames with a
//     probability each (Rule.Drop, Duplicate, Reorder). The proxy reads
//     the dialer's preface with consensus/transport's ReadPreface and then
//     forwards whole frames (ReadRawFrame) both ways, so the stream stays
//     well formed: a frame is a batch of messages, or one piece of a
//     snapshot stream (which the transport must then fail and retry,
//     never install). A connection that does not speak the framing (TLS,
//     anything else) passes as raw bytes. See frames.go.
//
// Reset closes the connections of a link once (a transient failure).
//
// # Lifecycle
//
// New, then Listen once per destination node, then any number of SetRule /
// Partition / Heal calls from any goroutine, then Close, which closes every
// listener and connection and waits for the goroutines.
//
// # Debugging
//
// Every connection, rule change and refused connection is logged through the
// *slog.Logger given to New, with the link it belongs to. Counters of bytes
// forwarded and dropped per link, and of frames dropped, duplicated and
// reordered (snapshot frames apart), are returned by Stats.
package faultproxy
