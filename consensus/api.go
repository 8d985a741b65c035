package consensus

import (
	"errors"
	"log/slog"
	"math/rand/v2"
)

// Errors returned by the core and by Storage implementations.
var (
	// ErrProposalDropped: the proposal was not accepted (no known leader, a
	// leadership transfer is in progress, or this node was removed). The
	// caller may retry.
	ErrProposalDropped = errors.New("consensus: proposal dropped")
	// ErrCompacted: the requested index is below the first index kept in
	// the log because it was compacted into a snapshot.
	ErrCompacted = errors.New("consensus: requested index is compacted")
	// ErrUnavailable: the requested index is past the last index of the log.
	ErrUnavailable = errors.New("consensus: requested entry is unavailable")
	// ErrConfChangeInProgress: a membership change is already pending.
	ErrConfChangeInProgress = errors.New("consensus: a configuration change is already in progress")
	// ErrNotLeader: the operation needs the leader.
	ErrNotLeader = errors.New("consensus: not the leader")
)

// Storage is the core's read view of the durable log. The driver keeps it
// current: it persists a Ready's Entries, HardState and Snapshot into the
// storage before calling Advance with that Ready. The core calls Storage only
// from the goroutine that calls RawNode's methods.
type Storage interface {
	// InitialState returns the persisted HardState and the configuration
	// as of the last persisted entry or snapshot.
	InitialState() (HardState, ConfState, error)
	// Entries returns the entries in [lo, hi), at most maxBytes of Data in
	// total but always at least one entry if any is in range.
	Entries(lo, hi, maxBytes uint64) ([]Entry, error)
	// Term returns the term of entry i, which must be in
	// [FirstIndex()-1, LastIndex()] (FirstIndex()-1 is the snapshot's index).
	Term(i uint64) (uint64, error)
	// FirstIndex is the index of the first entry kept (snapshot index + 1).
	FirstIndex() (uint64, error)
	// LastIndex is the index of the last entry (the snapshot's index when
	// the log is empty after it).
	LastIndex() (uint64, error)
	// Snapshot returns the meta of the newest snapshot (zero if none).
	Snapshot() (SnapshotMeta, error)
}

// Config configures one RawNode. Time is counted in ticks: the driver calls
// Tick at a fixed interval.
type Config struct {
	ID string
	// ElectionTick is the base election timeout; a follower's timeout is
	// drawn from [ElectionTick, 2*ElectionTick) using Rand.
	ElectionTick int
	// HeartbeatTick is the leader's heartbeat interval; < ElectionTick.
	HeartbeatTick int
	Storage       Storage
	// Applied is the last index the state machine has applied (on restart).
	Applied uint64
	// MaxSizePerMsg caps the Data bytes of one MsgApp (at least one entry is
	// always sent).
	MaxSizePerMsg uint64
	// MaxInflightMsgs bounds the pipelined MsgApps in flight per follower.
	MaxInflightMsgs int
	CheckQuorum     bool
	PreVote         bool
	// Rand is the only source of randomness of the core (seeded in tests).
	Rand   *rand.Rand
	Logger *slog.Logger
}

// Ready is a batch of work for the driver. The ordering contract:
//  1. Persist HardState, Entries and Snapshot in one durable write (one
//     fsync), then
//  2. send Messages, and hand CommittedEntries to the state machine (in
//     order; they may be applied asynchronously),
//  3. call Advance(rd).
//
// MessagesBeforePersist holds only what the leader may send before its own
// write is durable (AppendEntries, heartbeats): the driver sends them at
// once, in parallel with the fsync (Raft thesis §10.2.1). The leader counts
// itself toward a quorum only after Advance reports the write durable.
type Ready struct {
	SoftState             *SoftState // nil if unchanged
	HardState             HardState  // empty if unchanged
	Entries               []Entry
	Snapshot              *SnapshotMeta // a snapshot to install; nil if none
	CommittedEntries      []Entry
	MessagesBeforePersist []Message
	Messages              []Message
	ReadStates            []ReadState
	// MustSync is true when HardState or Entries must be fsynced.
	MustSync bool
}

// Status is a read-only picture of a node for reporting.
type Status struct {
	ID        string
	Term      uint64
	Vote      string
	Commit    uint64
	Applied   uint64
	LastIndex uint64
	Lead      string
	Role      Role
	Conf      ConfState
	// Progress of each follower (leader only): the highest index known to
	// be replicated on it.
	Match map[string]uint64
	// LeadTransferee is the target of a leadership transfer in progress.
	LeadTransferee string
}
