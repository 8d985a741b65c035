package node

import (
	"errors"

	"github.com/raftsql/raftsql/consensus"
)

// Errors returned by Node. The core's errors are re-exported (the same
// values), so errors.Is works against either name.
var (
	// ErrStopped: the node was stopped, or stopped itself after a fatal
	// error (see Node.Err); the call did not take effect.
	ErrStopped = errors.New("node: stopped")
	// ErrNoLeader: no leader is known, so a proposal could not be
	// forwarded. Errors carrying it also match ErrProposalDropped.
	ErrNoLeader = errors.New("node: no leader")
	// ErrProposalDropped is consensus.ErrProposalDropped: the core did not
	// accept the proposal (no leader, a leadership transfer in progress, or
	// this node was removed). The caller may retry.
	ErrProposalDropped = consensus.ErrProposalDropped
	// ErrConfChangeInProgress is consensus.ErrConfChangeInProgress.
	ErrConfChangeInProgress = consensus.ErrConfChangeInProgress
	// ErrNotLeader is consensus.ErrNotLeader.
	ErrNotLeader = consensus.ErrNotLeader
	// ErrProposalTooLarge: the proposal is bigger than Config.MaxProposalBytes.
	ErrProposalTooLarge = errors.New("node: proposal too large")
	// ErrTransferFailed: a leadership transfer was refused or aborted
	// (unknown or non-voting target, target did not catch up in time, or
	// another node won the election).
	ErrTransferFailed = errors.New("node: leadership transfer failed")
	// ErrInvalidConfig: Config is unusable; the message says why.
	ErrInvalidConfig = errors.New("node: invalid config")
	// ErrSnapshotUnsupported: the core asked to install a snapshot, but the
	// node has no Config.Snapshots (or its StateMachine is no Snapshotter).
	ErrSnapshotUnsupported = errors.New("node: snapshots are not configured")
)
