package node

import (
	"context"

	"github.com/raftsql/raftsql/consensus"
)

// LogStore is the durable Raft log and stable state the driver persists
// into. The core reads it through consensus.Storage; the driver writes it.
//
// Concurrency: every method is called from the driver's loop goroutine
// (the core's reads included), except Close, which is called once after the
// loop has exited. Implementations: store.Store (bolt) and
// consensus.MemoryStorage (tests).
type LogStore interface {
	consensus.Storage
	// Save makes hs (unless empty), entries and snap (unless nil) durable
	// in one write with one fsync. Entries may overwrite a suffix of the
	// log (a conflict resolved by the leader): entries at and after
	// entries[0].Index are replaced. It returns only once the write is on
	// disk; the driver sends nothing that depends on it before that.
	Save(hs consensus.HardState, entries []consensus.Entry, snap *consensus.SnapshotMeta) error
	// Compact discards the log before index (a snapshot covers it).
	Compact(index uint64) error
	// Close releases the store. Called by Node.Stop.
	Close() error
}

// StateMachine receives committed entries.
//
// Concurrency: Apply is called from one applier goroutine, never
// concurrently with itself, with entries in log order, without gaps, and
// never with an entry at or below the AppliedIndex it reported when the node
// started (so a restart re-applies nothing). It runs concurrently with the
// driver's loop: a slow Apply never delays elections or replication.
// AppliedIndex is called once at start, before the loop runs.
//
// The batch may contain EntryNormal entries with empty Data (a leader's
// no-op) and EntryConfChange entries (the core has already acted on them;
// the state machine only records their index). Apply must apply the whole
// batch atomically and record the last index durably in the same
// transaction; an error from Apply is fatal for the node (it stops, see
// Node.Err), because the replicas would otherwise diverge.
//
// Snapshots: a StateMachine that also implements Snapshotter, with
// Config.Snapshots set, gets snapshots taken every Config.SnapshotEntries
// entries and installs the ones the leader streams to it. Without them a
// Ready that carries a snapshot to install stops the node with
// ErrSnapshotUnsupported.
type StateMachine interface {
	Apply(ctx context.Context, entries []consensus.Entry) error
	AppliedIndex() uint64
}
