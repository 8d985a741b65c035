// Package node is the driver of raftsql's Raft: it runs a deterministic
// consensus.RawNode with real time, a durable log (LogStore), a network
// (transport.Transport) and a state machine (StateMachine).
//
// # Lifecycle
//
// Start reads the store. An empty store with Config.Peers bootstraps a new
// cluster; an empty store without Peers waits for a leader to contact it
// (joining; Config.Contacts give the transport the members' addresses
// until the log does); otherwise the node restarts from the store, and the
// state machine's AppliedIndex says where applying resumes. Stop (or a
// fatal error: a failed Save or Apply) stops the loop, the transport, the
// applier and the store, in that order; Done and Err report it.
//
// # Goroutines
//
//   - The loop (run) is the only goroutine that touches the RawNode. It
//     selects on the ticker (Tick), inbound messages (Step), proposals
//     (Propose), read-index callers, transport reports and control calls
//     (Campaign, TransferLeadership), then drains everything else that is
//     queued before it asks the core for a Ready. For each Ready it:
//     queues for the applier the CommittedEntries that are already durable
//     in the log (so applying overlaps the next fsync); sends
//     MessagesBeforePersist (the leader's AppendEntries and heartbeats, in
//     parallel with its own fsync, Raft thesis §10.2.1); Saves HardState
//     and Entries in one call (one fsync; every proposal that arrived
//     during the previous fsync is in it: group commit); sends Messages;
//     queues the remaining CommittedEntries; calls Advance. After each
//     iteration it publishes Status, the leader and the lease.
//   - The applier (applyLoop) calls StateMachine.Apply in log order, in
//     batches, off the loop, so a slow SQLite transaction never delays a
//     heartbeat. It skips entries at or below the AppliedIndex the state
//     machine reported at Start.
//   - The transport's goroutines call the handler, which only queues into
//     the loop (a full inbound queue drops messages; Raft retries).
//
// # Time
//
// The driver ticks every HeartbeatInterval/2; ElectionTick and
// HeartbeatTick are derived from ElectionTimeout and HeartbeatInterval.
// Defaults (1.5 s, 150 ms) ride through slow-disk spells: a node whose
// fsync stalls does not tick meanwhile (the ticker drops missed ticks, so a
// stall never turns into a burst of ticks and an election of its own), and
// a stalled leader's followers wait at least 1.5 s, several stalls' worth,
// before pre-voting. Pre-vote and check-quorum are always on.
//
// The lease (LeaseValid) maps the core's LeaseStartTick back to the clock
// time the tick began and adds MinClusterElectionTimeout − one tick −
// LeaseDriftBound (default: a tenth of the election timeout); see
// LeaseValid for the argument.
//
// # Reads
//
// ReadIndex batches every caller of one loop iteration into one core
// request with a per-incarnation request context; unanswered batches are
// asked again after max(2 heartbeats, ElectionTimeout/4) or at once when
// the leader changes. Waiting until that index is applied is the state
// machine's business (Node.WaitApplied helps).
//
// # Snapshots
//
// With Config.Snapshots (a directory of snap-<index>.db files, which is
// also the transport's snapshot Source and Sink) and a StateMachine that
// is a Snapshotter: every SnapshotEntries applied entries a goroutine
// (snapLoop) takes a snapshot concurrently with Apply, then the loop
// compacts the log up to the previous snapshot (so the log keeps at least
// SnapshotEntries entries for briefly lagging followers, and the store's
// snapshot meta always names a file that exists). A follower too far
// behind gets MsgSnap; the transport stores the file before it delivers
// the message; the Ready's Snapshot is saved with the log, then the applier
// restores the state machine before any later entry. If the node crashes
// in between, Start restores it from the file (the state machine is behind
// the log's snapshot).
//
// A leader that sends a snapshot at index s to a follower compacts no
// further than s until that follower has caught up (snapguard.go), so a
// follower that installs a snapshot while the leader keeps writing and
// taking snapshots continues from the log instead of needing a newer
// snapshot. The hold is bounded: a failed transfer, SnapshotGuardBytes
// (1 GiB) of log growth, SnapshotGuardTimeout (30 s) without progress
// after the transfer, 10 × that for a transfer in flight, or a leadership
// change ends it, and the held-back compaction then runs.
//
// # Durability shortcut
//
// A Ready whose HardState only moves Commit (MustSync false) is not given
// an fsync of its own: the HardState rides with the next Save, and at Stop.
// After a crash the commit index read back may be lower than the state
// machine's applied index; the core raises it to Config.Applied (those
// entries are committed and durable in the log), and the applier never
// hands the state machine an index it already has.
//
// # Peer addresses
//
// The transport is given the addresses of the latest configuration's
// members (peers that leave it stay known), before that the Contacts, and
// this node's own configured address as the one to advertise in its
// connection prefaces (behind a proxy it differs from the listen
// address). A peer that connects and advertises an address is added with
// it only when the node has no address for it: a joining node that was
// never told the members (the member it joined through failed before
// answering) can thus answer whichever leader contacts it. A configured
// address always wins over an advertised one.
//
// # Debugging
//
// Pass a Logger (slog): start-up parameters, leader changes, peer changes,
// slow log writes (> 100 ms), dropped inbound messages (at powers of two)
// and fatal errors are logged at Info/Warn/Error; refused messages and core
// step errors at Debug. Status() is a consistent copy of the core's view
// (with Applied from the applier) and is safe from any goroutine; Metrics()
// counts saves (fsyncs), entries per save, slow saves, apply batches,
// read-index requests versus callers, and dropped inbound messages.
//
// Tests run clusters on the transport's in-process Network (messages go
// through the wire codec) with bolt stores in a temp dir; NODE_TEST_LOG=1
// prints every node's debug log. BenchmarkReplicate measures entries/s and
// entries per leader fsync with 1, 16 and 256 proposers.
package node
