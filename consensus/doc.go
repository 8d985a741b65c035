// Package consensus is raftsql's own Raft: a deterministic core (RawNode)
// that a driver (package consensus/node) runs, persists and connects to a
// transport (package consensus/transport).
//
// # The core
//
// RawNode is a pure state machine in the style of etcd's raft. Every input
// enters through Step (messages), Tick (time, counted in ticks), Propose,
// ReadIndex and friends; every output leaves through Ready: entries and
// HardState to persist, messages to send, committed entries to apply, a
// snapshot to install, read states to answer. There are no goroutines, no
// I/O, no clock and no randomness but Config.Rand, so a test drives many
// nodes through any schedule of faults reproducibly by seed (sim_test.go).
//
// Inside, raft.Step checks terms and then calls the role's handler
// (stepLeader, stepCandidate, stepFollower), swapped by the become*
// functions. raftLog keeps decided-but-not-durable entries (unstable) above
// Storage; progress tracks each follower (probe, pipelined replicate with an
// inflight window, snapshot).
//
// # Lifecycle
//
//	rn, _ := consensus.NewRawNode(cfg)  // from cfg.Storage's persisted state
//	rn.Bootstrap(members)               // only for a brand-new cluster
//	loop:
//	    rn.Tick() every tick; rn.Step(m) for every message received
//	    for rn.HasReady() {
//	        rd := rn.Ready()
//	        send rd.MessagesBeforePersist       // leader: parallel with fsync
//	        persist rd.HardState, rd.Entries, rd.Snapshot (one fsync)
//	        send rd.Messages; apply rd.CommittedEntries; answer rd.ReadStates
//	        rn.Advance(rd)
//	    }
//
// The leader counts itself toward a commit quorum only for entries reported
// durable by Advance (Raft thesis §10.2.1). A vote is only ever sent in
// Messages, after the HardState that records it is durable.
//
// A configuration change (EntryConfChange, EncodeConfChange) takes effect
// when appended and reverts if truncated; one may be pending at a time.
// MemoryStorage is the in-memory Storage used by tests and the simulation.
//
// # Reads and leases
//
// ReadIndex is answered (Ready.ReadStates, or MsgReadIndexResp to a
// follower) with the commit index once the leader has committed an entry
// of its term and a quorum acknowledged a heartbeat round sent after the
// request; all requests that arrive before the next Ready share one round.
// LeaseStartTick is the tick at which the newest quorum-acknowledged round
// was sent. Every voter ignores vote requests for an election timeout after
// hearing from the leader (and after it starts), so the lease may last the
// SMALLEST ElectionTick of any voter, minus a drift bound, from that tick.
// A leadership transfer ends the lease; after an abandoned one whose
// MsgTimeoutNow went out, the lease returns once the no-op appended at the
// abort is committed.
//
// Use PreVote and CheckQuorum together in production: pre-vote keeps a
// node that was partitioned or removed from raising terms, check-quorum
// makes an isolated leader step down and is required for leases.
//
// # Debugging
//
// Config.Logger receives role changes, configuration changes, snapshots and
// refused messages (Debug for elections). Status gives term, commit, the
// configuration and, on the leader, each follower's match index. A failing
// simulation prints its seed: rerun it with
//
//	go test ./consensus/ -run TestSimulation -sim.seed=N -v
//
// which logs every step of that one schedule.
package consensus
