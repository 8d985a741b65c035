package consensus

import (
	"fmt"
	"slices"
)

// progressState is how the leader is currently replicating to a peer.
type progressState uint8

const (
	// stateProbe: the leader does not know where the peer's log matches
	// its own; it sends one MsgApp at a time and waits for the reply (or a
	// heartbeat reply) before sending the next.
	stateProbe progressState = iota
	// stateReplicate: the logs match up to match; MsgApps are pipelined,
	// at most maxInflight unacknowledged at a time.
	stateReplicate
	// stateSnapshot: the peer needs a snapshot; replication waits until
	// the driver reports the transfer's outcome (ReportSnapshot), or the
	// peer acknowledges an index at or past the snapshot (each heartbeat
	// reply makes the leader ask with an empty MsgApp: probeSnapshot).
	stateSnapshot
)

func (s progressState) String() string {
	switch s {
	case stateProbe:
		return "probe"
	case stateReplicate:
		return "replicate"
	case stateSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("progressState(%d)", uint8(s))
}

// inflights is the window of MsgApps sent to a peer and not yet
// acknowledged, recorded by the last index each carried (ascending).
type inflights struct {
	last []uint64
	size int
}

func (in *inflights) full() bool { return len(in.last) >= in.size }

func (in *inflights) add(last uint64) { in.last = append(in.last, last) }

// freeLE acknowledges every MsgApp whose last index is <= to.
func (in *inflights) freeLE(to uint64) {
	n := 0
	for n < len(in.last) && in.last[n] <= to {
		n++
	}
	if n == 0 {
		return
	}
	in.last = append(in.last[:0], in.last[n:]...)
}

func (in *inflights) reset() { in.last = in.last[:0] }

// progress is the leader's view of one member (itself included).
//
// Invariant: match < next.
type progress struct {
	match, next uint64
	state       progressState
	// pendingSnapshot is the index of the snapshot being sent (stateSnapshot).
	pendingSnapshot uint64
	// recentActive: the peer was heard from during the current check-quorum
	// period.
	recentActive bool
	// probeSent: in stateProbe, a MsgApp is outstanding.
	probeSent bool
	inflights inflights
	learner   bool
	// ackedRound is the newest heartbeat round (this term) the peer acked.
	ackedRound uint64
}

func newProgress(next uint64, maxInflight int, learner bool) *progress {
	return &progress{next: next, inflights: inflights{size: maxInflight}, learner: learner}
}

func (pr *progress) String() string {
	return fmt.Sprintf("%s match=%d next=%d inflight=%d", pr.state, pr.match, pr.next, len(pr.inflights.last))
}

func (pr *progress) resetState(s progressState) {
	pr.probeSent = false
	pr.pendingSnapshot = 0
	pr.state = s
	pr.inflights.reset()
}

func (pr *progress) becomeProbe() {
	if pr.state == stateSnapshot {
		pending := pr.pendingSnapshot
		pr.resetState(stateProbe)
		pr.next = max(pr.match+1, pending+1)
		return
	}
	pr.resetState(stateProbe)
	pr.next = pr.match + 1
}

func (pr *progress) becomeReplicate() {
	pr.resetState(stateReplicate)
	pr.next = pr.match + 1
}

func (pr *progress) becomeSnapshot(i uint64) {
	pr.resetState(stateSnapshot)
	pr.pendingSnapshot = i
}

// maybeUpdate records an acknowledgement of everything up to n.
func (pr *progress) maybeUpdate(n uint64) bool {
	updated := false
	if pr.match < n {
		pr.match = n
		updated = true
		pr.probeSent = false
	}
	pr.next = max(pr.next, n+1)
	return updated
}

// maybeDecrTo handles a rejection of the MsgApp whose previous index was
// rejected; next is the leader's best guess (from the peer's hints) of
// where to probe. A stale rejection (of a MsgApp the leader has already
// moved past) returns false and changes nothing.
func (pr *progress) maybeDecrTo(rejected, next uint64) bool {
	if pr.state == stateReplicate {
		if rejected <= pr.match {
			return false
		}
		pr.next = pr.match + 1
		return true
	}
	if pr.next-1 != rejected {
		return false
	}
	pr.next = max(min(rejected, next), pr.match+1, 1)
	pr.probeSent = false
	return true
}

func (pr *progress) isPaused() bool {
	switch pr.state {
	case stateProbe:
		return pr.probeSent
	case stateReplicate:
		return pr.inflights.full()
	default:
		return true
	}
}

// quorumIndex returns the highest value v such that a majority of the
// voters have a value >= v (0 with no voters).
func quorumIndex(vals []uint64) uint64 {
	if len(vals) == 0 {
		return 0
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	// ascending: the majority-th largest is at len - (len/2+1).
	return s[len(s)-(len(s)/2+1)]
}
