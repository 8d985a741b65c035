package node

import (
	"time"

	"github.com/raftsql/raftsql/consensus"
)

// Snapshot guards: a leader that sends a follower a snapshot at index s
// keeps its log from s+1 on until that follower has caught up, so that once
// the snapshot is installed the follower continues from the log. Without
// it, under a write load that takes new snapshots faster than one
// transfer (a large database, a small SnapshotEntries), the leader
// compacts past s during the transfer and the follower, having installed
// s, needs another snapshot, and so on.
//
// A guard is set when a MsgSnap leaves (handleReady) and ends when
//   - the transfer fails (ReportSnapshot(false)): the core sends a new
//     snapshot, with a new guard;
//   - the follower's match reaches the newest snapshot this node has taken
//     (any compaction from then on is behind it);
//   - after the transfer succeeded, the follower's match has not advanced
//     for SnapshotGuardTimeout (it died after installing);
//   - the log has grown by SnapshotGuardBytes of entry data since the
//     snapshot was sent (a follower that accepts data but never finishes
//     cannot hold the log for ever; while a transfer is in flight the
//     transport's own write and ack timeouts end a dead one);
//   - the transfer has been in flight for guardTransferFactor ×
//     SnapshotGuardTimeout (5 minutes by default; a large snapshot may
//     take minutes, and a transport that never reports is not trusted);
//   - this node stops leading, or the follower leaves the configuration.
//
// While any guard holds, compactTo compacts at most to the lowest guarded
// index and remembers the compaction it wanted; it runs as soon as the
// guards allow. Snapshot files at or above the compaction point are kept,
// so the file being sent stays too.

// guardTransferFactor × SnapshotGuardTimeout bounds a guard whose transfer
// has not been reported yet.
const guardTransferFactor = 10

// snapGuard holds back compaction for one follower.
type snapGuard struct {
	index      uint64    // the snapshot sent: compaction stops here
	startBytes uint64    // n.appendedBytes when it was sent
	sent       time.Time // when the MsgSnap left
	acked      bool      // the transport delivered it
	match      uint64    // the follower's match when it last advanced
	progress   time.Time // when match last advanced (or the ack came)
}

// guardSnapshots sets a guard for every MsgSnap in msgs (loop goroutine).
func (n *Node) guardSnapshots(msgs []consensus.Message) {
	if n.snapper == nil {
		return
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Type != consensus.MsgSnap || m.Snapshot == nil || m.To == n.id {
			continue
		}
		now := n.clock()
		n.guards[m.To] = &snapGuard{index: m.Snapshot.Index, startBytes: n.appendedBytes, sent: now, progress: now}
		n.log.Info("holding the log from the snapshot sent to a follower until it catches up",
			"peer", m.To, "index", m.Snapshot.Index, "max_bytes", n.cfg.SnapshotGuardBytes, "timeout", n.cfg.SnapshotGuardTimeout)
	}
}

// snapshotReported updates id's guard with the transfer's outcome.
func (n *Node) snapshotReported(id string, ok bool) {
	g := n.guards[id]
	if g == nil {
		return
	}
	if !ok {
		n.endGuard(id, "the snapshot transfer failed")
		return
	}
	g.acked = true
	g.progress = n.clock()
}

// checkGuards ends the guards whose follower caught up or that ran past
// their bounds (loop goroutine, after each iteration).
func (n *Node) checkGuards(st consensus.Status) {
	if len(n.guards) == 0 {
		return
	}
	if st.Role != consensus.RoleLeader {
		for id := range n.guards {
			n.endGuard(id, "this node no longer leads")
		}
		return
	}
	now := n.clock()
	newest := n.lastSnap.Load()
	for id, g := range n.guards {
		member := false
		for _, m := range st.Conf.Members {
			member = member || m.ID == id
		}
		match := st.Match[id]
		switch {
		case !member:
			n.endGuard(id, "the follower left the configuration")
		case match >= g.index && match >= newest:
			n.endGuard(id, "the follower caught up")
		case n.appendedBytes-g.startBytes > n.cfg.SnapshotGuardBytes:
			n.endGuard(id, "the log grew past the bound")
		case g.acked && match > g.match:
			g.match, g.progress = match, now
		case g.acked && now.Sub(g.progress) > n.cfg.SnapshotGuardTimeout:
			n.endGuard(id, "the follower made no progress after installing the snapshot")
		case !g.acked && now.Sub(g.sent) > guardTransferFactor*n.cfg.SnapshotGuardTimeout:
			n.endGuard(id, "the snapshot transfer is taking too long")
		}
	}
}

// endGuard drops id's guard and runs the compaction it held back, as far
// as the remaining guards allow.
func (n *Node) endGuard(id, why string) {
	g := n.guards[id]
	if g == nil {
		return
	}
	delete(n.guards, id)
	n.log.Info("no longer holding the log for a follower", "peer", id, "index", g.index, "why", why,
		"held_for", n.clock().Sub(g.sent), "log_growth_bytes", n.appendedBytes-g.startBytes)
	if p := n.pendingCompact; p > 0 {
		n.pendingCompact = 0
		if err := n.compactTo(p); err != nil {
			n.log.Warn("compacting log failed", "index", p, "err", err)
		}
	}
}

// guardFloor is the highest index compaction may reach (ok false: no
// guard).
func (n *Node) guardFloor() (floor uint64, ok bool) {
	for _, g := range n.guards {
		if !ok || g.index < floor {
			floor, ok = g.index, true
		}
	}
	return floor, ok
}
