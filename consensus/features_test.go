package consensus

import (
	"errors"
	"fmt"
	"testing"
)

// addJoiner adds a node with empty storage and no configuration: it waits
// for a leader to contact it.
func (nw *testNet) addJoiner(id string, opts ...nodeOpt) *testNode {
	st := NewMemoryStorage()
	rn, err := NewRawNode(testConfig(id, st, 42, opts...))
	if err != nil {
		nw.t.Fatal(err)
	}
	n := &testNode{id: id, rn: rn, st: st}
	nw.nodes[id] = n
	nw.order = append(nw.order, id)
	return n
}

func (nw *testNet) confChange(id string, cc ConfChange) error {
	err := nw.nodes[id].rn.ProposeConfChange(cc)
	nw.stabilize()
	return err
}

// §6.4: many concurrent read-index requests share one heartbeat round, and
// are answered with the commit index once a quorum acknowledged it.
func TestReadIndex_6_4_ManyReadsShareOneHeartbeatRound(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.campaign("n1")
	n := nw.node("n1")
	commit := n.rn.r.log.committed
	for i := range 50 {
		n.rn.ReadIndex(fmt.Appendf(nil, "read-%d", i))
	}
	rd := n.rn.Ready()
	if hb := len(only(rd.MessagesBeforePersist, MsgHeartbeat)); hb != 2 {
		t.Fatalf("%d heartbeats for 50 reads, want 2 (one round)", hb)
	}
	if len(rd.ReadStates) != 0 {
		t.Fatal("answered before a quorum confirmed leadership")
	}
	_ = n.st.Save(rd.HardState, rd.Entries, rd.Snapshot)
	n.rn.Advance(rd)
	nw.deliver(rd.MessagesBeforePersist)
	if len(n.reads) != 50 {
		t.Fatalf("%d reads answered, want 50", len(n.reads))
	}
	for i, rs := range n.reads {
		if rs.Index != commit || string(rs.RequestCtx) != fmt.Sprintf("read-%d", i) {
			t.Fatalf("read %d: %+v (commit %d)", i, rs, commit)
		}
	}
}

// §6.4: a new leader answers reads only after committing an entry of its
// own term (its commit index may lag what was committed before).
func TestReadIndex_6_4_WaitsForCommitInLeadersTerm(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.filter = func(m *Message) bool { return m.Type != MsgApp && m.Type != MsgAppResp }
	nw.campaign("n1")
	n := nw.node("n1")
	if n.rn.r.committedInTerm() {
		t.Fatal("setup: no-op already committed")
	}
	n.rn.ReadIndex([]byte("r"))
	nw.stabilize()
	nw.tickAll(3)
	if len(n.reads) != 0 {
		t.Fatalf("answered %+v before committing in its term", n.reads)
	}
	nw.filter = nil
	nw.tickAll(3)
	if len(n.reads) != 1 || n.reads[0].Index != n.rn.r.log.committed {
		t.Fatalf("reads %+v, commit %d", n.reads, n.rn.r.log.committed)
	}
}

// §6.4: followers forward read-index requests to the leader.
func TestReadIndex_6_4_FollowerRead(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.campaign("n1")
	_ = nw.propose("n1", "x")
	f := nw.node("n2")
	f.rn.ReadIndex([]byte("f"))
	nw.stabilize()
	if len(f.reads) != 1 || f.reads[0].Index != nw.node("n1").rn.r.log.committed || string(f.reads[0].RequestCtx) != "f" {
		t.Fatalf("follower reads %+v", f.reads)
	}
}

// §6.4: a single-voter cluster answers at once (after its first commit).
func TestReadIndex_6_4_SingleVoter(t *testing.T) {
	nw := newTestNet(t, 1)
	nw.campaign("n1")
	n := nw.node("n1")
	n.rn.ReadIndex([]byte("solo"))
	rd := n.rn.Ready()
	if len(rd.ReadStates) != 1 || rd.ReadStates[0].Index != n.rn.r.log.committed {
		t.Fatalf("read states %+v", rd.ReadStates)
	}
	n.rn.Advance(rd)
}

// §6.4: a leader cut off from the quorum never confirms a read.
func TestReadIndex_6_4_DeposedLeaderDoesNotAnswer(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.campaign("n1")
	nw.isolate("n1")
	nw.campaign("n2")
	n := nw.node("n1")
	n.rn.ReadIndex([]byte("stale"))
	nw.stabilize()
	nw.heal()
	nw.tick("n1", 3)
	if len(n.reads) != 0 {
		t.Fatalf("deposed leader answered %+v", n.reads)
	}
}

// §6.4.1: the lease starts when the newest quorum-acknowledged heartbeat
// round was sent; it exists only with check-quorum, on the leader, and
// not during a leadership transfer.
func TestLease_6_4_1_LeaseStartTick(t *testing.T) {
	plain := newTestNet(t, 3)
	plain.campaign("n1")
	plain.tickAll(2)
	if _, ok := plain.node("n1").rn.LeaseStartTick(); ok {
		t.Fatal("lease without check-quorum")
	}

	nw := newTestNet(t, 3, withCheckQuorum)
	nw.campaign("n1")
	n := nw.node("n1")
	if _, ok := n.rn.LeaseStartTick(); ok {
		t.Fatal("lease before any heartbeat round was acknowledged")
	}
	for range 5 {
		n.rn.Tick()
	}
	sentAt := n.rn.CurrentTick()
	nw.stabilize() // the heartbeat of tick 5 goes out and is acknowledged
	tick, ok := n.rn.LeaseStartTick()
	if !ok || tick != sentAt {
		t.Fatalf("lease start %d %v, want %d", tick, ok, sentAt)
	}
	// Acks of later rounds move it; a round acked by nobody does not.
	nw.cut[[2]string{"n2", "n1"}] = true
	nw.cut[[2]string{"n3", "n1"}] = true
	nw.tick("n1", 3)
	if tick2, _ := n.rn.LeaseStartTick(); tick2 != sentAt {
		t.Fatalf("lease moved to %d without acks", tick2)
	}
	nw.heal()
	nw.tick("n1", 1)
	if tick3, _ := n.rn.LeaseStartTick(); tick3 != n.rn.CurrentTick() {
		t.Fatalf("lease %d, want %d", tick3, n.rn.CurrentTick())
	}
	if _, ok := nw.node("n2").rn.LeaseStartTick(); ok {
		t.Fatal("follower holds a lease")
	}
	// From the moment a transfer starts, no lease.
	nw.cut[[2]string{"n1", "n2"}] = true
	n.rn.TransferLeadership("n2")
	if _, ok := n.rn.LeaseStartTick(); ok {
		t.Fatal("lease during leadership transfer")
	}
}

// §3.10 (thesis): leadership transfer brings the target up to date, sends
// MsgTimeoutNow, and the target wins at once even against check-quorum.
func TestLeadershipTransfer_3_10(t *testing.T) {
	nw := newTestNet(t, 3, withCheckQuorum, withPreVote)
	nw.campaign("n1")
	// n3 lags behind: the transfer must bring it up to date first.
	nw.isolate("n3")
	for i := range 5 {
		_ = nw.propose("n1", fmt.Sprintf("x%d", i))
	}
	nw.heal()
	nw.node("n1").rn.TransferLeadership("n3")
	nw.stabilize()
	if nw.leader() != "n3" {
		t.Fatalf("leader %q after transfer to n3", nw.leader())
	}
	mustEqualLogs(t, nw)
}

// §3.10: proposals are refused during a transfer, and a transfer to an
// unreachable target is abandoned after an election timeout.
func TestLeadershipTransfer_3_10_DropsProposalsAndAborts(t *testing.T) {
	nw := newTestNet(t, 3, withCheckQuorum)
	nw.campaign("n1")
	nw.isolate("n3")
	n := nw.node("n1")
	n.rn.TransferLeadership("n3")
	nw.stabilize()
	if n.rn.Status().LeadTransferee != "n3" {
		t.Fatal("transfer not started")
	}
	if err := n.rn.Propose([]byte("during")); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("proposal during transfer: %v", err)
	}
	for range n.rn.r.electionTimeout {
		n.rn.Tick()
	}
	nw.stabilize()
	if n.rn.Status().LeadTransferee != "" || n.rn.r.role != RoleLeader {
		t.Fatalf("transfer not aborted: %+v", n.rn.Status())
	}
	if err := n.rn.Propose([]byte("after")); err != nil {
		t.Fatalf("proposal after abort: %v", err)
	}
	// A transfer requested on a follower is forwarded to the leader.
	nw.heal()
	nw.tickAll(2)
	nw.node("n2").rn.TransferLeadership("n2")
	nw.stabilize()
	if nw.leader() != "n2" {
		t.Fatalf("forwarded transfer: leader %q", nw.leader())
	}
}

// §4.2.1 (thesis): learners replicate but never vote, campaign or count
// toward a quorum; promotion via ConfAddVoter makes them count.
func TestMembership_4_2_1_LearnerReplicatesThenPromoted(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.campaign("n1")
	j := nw.addJoiner("n4")
	for range 30 {
		j.rn.Tick() // a node without configuration never campaigns
	}
	if j.rn.r.role != RoleFollower || j.rn.r.term != 0 {
		t.Fatalf("joiner campaigned: %+v", j.rn.Status())
	}
	if err := nw.confChange("n1", ConfChange{Type: ConfAddLearner, ID: "n4", Addr: "addr-n4"}); err != nil {
		t.Fatal(err)
	}
	nw.tickAll(2)
	_ = nw.propose("n1", "to-learner")
	mustEqualLogs(t, nw)
	if st := j.rn.Status(); st.Role != RoleLearner {
		t.Fatalf("n4 role %s, want learner", st.Role)
	}
	for range 100 {
		j.rn.Tick()
	}
	nw.stabilize()
	if j.rn.r.role != RoleFollower || nw.leader() != "n1" {
		t.Fatal("learner campaigned")
	}
	// A learner does not count: with n2 and n3 cut off, nothing commits.
	nw.isolate("n2")
	nw.isolate("n3")
	n := nw.node("n1")
	before := n.rn.r.log.committed
	_ = nw.propose("n1", "needs-voters")
	if n.rn.r.log.committed != before {
		t.Fatal("learner counted toward the quorum")
	}
	// A learner's vote is not requested.
	nw.heal()
	nw.tickAll(2)
	if err := nw.confChange("n1", ConfChange{Type: ConfAddVoter, ID: "n4"}); err != nil {
		t.Fatal(err)
	}
	nw.tickAll(2)
	if !n.rn.r.conf.isVoter("n4") || !j.rn.r.conf.isVoter("n4") {
		t.Fatal("n4 not promoted")
	}
	// Now n4 counts: with n2, n3 cut, 2 of 4 is not a quorum; with n2 back, 3 of 4 is.
	nw.isolate("n3")
	before = n.rn.r.log.committed
	_ = nw.propose("n1", "with-n4")
	if n.rn.r.log.committed == before {
		t.Fatal("promoted voter n4 not counted")
	}
}

// §4.1: one change at a time, and only after the leader committed an entry
// of its term.
func TestMembership_4_1_OneChangeAtATime(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.filter = func(m *Message) bool { return m.Type != MsgAppResp }
	nw.campaign("n1")
	n := nw.node("n1")
	if err := n.rn.ProposeConfChange(ConfChange{Type: ConfAddLearner, ID: "n4"}); !errors.Is(err, ErrConfChangeInProgress) {
		t.Fatalf("before the no-op commits: %v", err)
	}
	nw.filter = nil
	nw.tickAll(2)
	nw.filter = func(m *Message) bool { return m.Type != MsgAppResp }
	if err := n.rn.ProposeConfChange(ConfChange{Type: ConfAddLearner, ID: "n4"}); err != nil {
		t.Fatal(err)
	}
	if err := n.rn.ProposeConfChange(ConfChange{Type: ConfAddLearner, ID: "n5"}); !errors.Is(err, ErrConfChangeInProgress) {
		t.Fatalf("second change while the first is pending: %v", err)
	}
	nw.filter = nil
	nw.tickAll(2)
	if err := n.rn.ProposeConfChange(ConfChange{Type: ConfAddLearner, ID: "n5"}); err != nil {
		t.Fatalf("after the first committed: %v", err)
	}
	if err := nw.node("n2").rn.ProposeConfChange(ConfChange{Type: ConfAddLearner, ID: "n6"}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("on a follower: %v", err)
	}
	nw.tickAll(2)
	if err := n.rn.ProposeConfChange(ConfChange{Type: ConfRemove, ID: "nobody"}); !errors.Is(err, ErrInvalidConfChange) {
		t.Fatalf("removing a non-member: %v", err)
	}
}

// §4.1: a configuration takes effect when its entry is appended (before it
// commits) and reverts when the entry is truncated.
func TestMembership_4_1_EffectiveOnAppendRevertedOnTruncate(t *testing.T) {
	nw := newTestNet(t, 5)
	nw.campaign("n1")
	nw.tickAll(2)
	// The entry reaches n2 only, and is not committed.
	for _, id := range []string{"n3", "n4", "n5"} {
		nw.cut[[2]string{"n1", id}] = true
	}
	nw.filter = func(m *Message) bool { return m.Type != MsgAppResp }
	if err := nw.confChange("n1", ConfChange{Type: ConfAddLearner, ID: "n6"}); err != nil {
		t.Fatal(err)
	}
	f := nw.node("n2")
	if _, ok := f.rn.r.conf.find("n6"); !ok {
		t.Fatal("configuration not in effect on append")
	}
	if f.rn.r.log.committed >= f.rn.r.log.lastIndex() {
		t.Fatal("setup: entry committed")
	}
	// n3 becomes leader without it and overwrites n2's entry.
	nw.filter = nil
	nw.heal()
	nw.isolate("n1")
	nw.restart("n1")
	nw.campaign("n3")
	if nw.node("n3").rn.r.role != RoleLeader {
		nw.campaign("n3")
	}
	if nw.leader() != "n3" {
		for _, id := range nw.order {
			t.Logf("%+v", nw.node(id).rn.Status())
		}
		t.Fatalf("leader %q", nw.leader())
	}
	nw.tickAll(2)
	if _, ok := f.rn.r.conf.find("n6"); ok {
		t.Fatalf("configuration not reverted after truncation: %s", f.rn.r.conf)
	}
}

// §4.2.2: a removed node stops campaigning; a leader that removes itself
// steps down once the removal commits.
func TestMembership_4_2_2_RemovedNodesStopDisrupting(t *testing.T) {
	nw := newTestNet(t, 4, withPreVote)
	nw.campaign("n1")
	nw.tickAll(2)
	if err := nw.confChange("n1", ConfChange{Type: ConfRemove, ID: "n4"}); err != nil {
		t.Fatal(err)
	}
	nw.tickAll(2)
	removed := nw.node("n4")
	term := removed.rn.r.term
	for range 100 {
		removed.rn.Tick()
	}
	nw.stabilize()
	if removed.rn.r.term != term || removed.rn.r.role != RoleFollower {
		t.Fatalf("removed node campaigned: %+v", removed.rn.Status())
	}
	if err := nw.confChange("n1", ConfChange{Type: ConfRemove, ID: "n1"}); err != nil {
		t.Fatal(err)
	}
	nw.tickAll(2)
	if nw.node("n1").rn.r.role == RoleLeader {
		t.Fatal("leader still leads after its removal committed")
	}
	nw.tickAll(40)
	l := nw.leader()
	if l == "" || l == "n1" || l == "n4" {
		t.Fatalf("leader after removing n1: %q", l)
	}
}

// §7: a follower that needs compacted entries gets a snapshot; it surfaces
// in Ready.Snapshot, and ReportSnapshot resumes replication.
func TestSnapshot_7_InstallOnLaggingFollower(t *testing.T) {
	nw, idx := snapshotToIsolatedFollower(t)
	l, f := nw.node("n1"), nw.node("n3")
	var sawSnap *SnapshotMeta
	nw.filter = func(m *Message) bool {
		if m.Type == MsgSnap {
			sawSnap = m.Snapshot
			nw.node(m.From).rn.ReportSnapshot(m.To, true)
		}
		return true
	}
	nw.tickAll(3)
	if sawSnap == nil || sawSnap.Index != idx || len(sawSnap.Conf.Members) != 3 {
		t.Fatalf("snapshot sent: %+v", sawSnap)
	}
	if fs, _ := f.st.Snapshot(); fs.Index != idx {
		t.Fatalf("follower stored snapshot %+v", fs)
	}
	_ = nw.propose("n1", "after-snapshot")
	nw.tickAll(2)
	if f.rn.r.log.committed != l.rn.r.log.committed || f.rn.r.log.applied != l.rn.r.log.committed {
		t.Fatalf("follower %+v leader %+v", f.rn.Status(), l.rn.Status())
	}
	if got := dataOf(f.applied); len(got) != 1 || got[0] != "after-snapshot" {
		t.Fatalf("follower applied after the snapshot: %v", got)
	}
}

// §7: a snapshot not newer than the follower's commit is ignored; one
// whose last entry the follower holds only advances commit.
func TestSnapshot_7_OldSnapshotIgnored(t *testing.T) {
	rn, st := newNodeWithLog(t, "n2", ids(3), []uint64{1, 1, 2, 2}, 2)
	rn.r.log.committed = 3
	snap := SnapshotMeta{Index: 2, Term: 1, Conf: ConfState{Members: members(ids(3)...)}}
	_ = rn.Step(Message{Type: MsgSnap, From: "n1", To: "n2", Term: 2, Snapshot: &snap})
	_, _, rd := persist(t, rn, st)
	if rd.Snapshot != nil || rn.r.log.lastIndex() != 4 {
		t.Fatalf("old snapshot installed: %+v", rd.Snapshot)
	}
	snap = SnapshotMeta{Index: 4, Term: 2, Conf: snap.Conf}
	_ = rn.Step(Message{Type: MsgSnap, From: "n1", To: "n2", Term: 2, Snapshot: &snap})
	_, _, rd = persist(t, rn, st)
	if rd.Snapshot != nil || rn.r.log.committed != 4 || rn.r.log.lastIndex() != 4 {
		t.Fatalf("matching snapshot: snap %+v commit %d last %d", rd.Snapshot, rn.r.log.committed, rn.r.log.lastIndex())
	}
}

// snapshotToIsolatedFollower builds a 3-node cluster led by n1 whose n3
// missed 10 entries that n1 then compacted: the next heartbeat round makes
// n1 send n3 a snapshot. Returns the snapshot's index.
func snapshotToIsolatedFollower(t *testing.T) (*testNet, uint64) {
	t.Helper()
	nw := newTestNet(t, 3)
	nw.campaign("n1")
	nw.isolate("n3")
	for i := range 10 {
		_ = nw.propose("n1", fmt.Sprintf("v%d", i))
	}
	l := nw.node("n1")
	idx := l.rn.r.log.applied
	if err := l.st.Compact(idx); err != nil {
		t.Fatal(err)
	}
	meta, _ := l.st.Snapshot()
	l.rn.Compact(meta)
	nw.heal()
	return nw, idx
}

// sentSince returns the messages of type typ from -> to delivered after
// the first n messages of nw.sent.
func sentSince(nw *testNet, n int, typ MessageType, from, to string) []Message {
	var out []Message
	for _, m := range nw.sent[n:] {
		if m.Type == typ && m.From == from && m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// §7: a follower installs the snapshot but both the transfer's verdict
// (MsgSnapStatus) and its reply to the MsgSnap are lost. The leader must
// not wait for the transport to give up: after one heartbeat round it
// knows the follower is past the snapshot and replicates to it again. A
// late verdict then changes nothing.
func TestSnapshot_7_InstalledButRepliesLost(t *testing.T) {
	nw, idx := snapshotToIsolatedFollower(t)
	l, f := nw.node("n1"), nw.node("n3")
	snaps, dropReply := 0, false
	nw.filter = func(m *Message) bool {
		switch {
		case m.Type == MsgSnap && m.To == "n3":
			snaps++
			dropReply = true // delivered; no ReportSnapshot (the ack is lost)
		case m.Type == MsgAppResp && m.From == "n3" && dropReply:
			dropReply = false // the follower's reply to the MsgSnap is lost
			return false
		}
		return true
	}
	nw.tick("n1", 1)
	if snaps != 1 {
		t.Fatalf("%d snapshots sent, want 1", snaps)
	}
	if fs, _ := f.st.Snapshot(); fs.Index != idx {
		t.Fatalf("follower stored snapshot %+v, want index %d", fs, idx)
	}
	pr := l.rn.r.prs["n3"]
	if pr.state != stateSnapshot || pr.pendingSnapshot != idx {
		t.Fatalf("before the heartbeat round: progress %s pending %d, want snapshot pending %d", pr, pr.pendingSnapshot, idx)
	}
	nw.tick("n1", 1) // one heartbeat round
	if pr.state != stateReplicate || pr.match < idx {
		t.Fatalf("after a heartbeat round the leader still waits for the transfer's verdict: %s", pr)
	}
	mark := len(nw.sent)
	if err := nw.propose("n1", "after-snapshot"); err != nil {
		t.Fatal(err)
	}
	var withEntries int
	for _, m := range sentSince(nw, mark, MsgApp, "n1", "n3") {
		if len(m.Entries) > 0 {
			withEntries++
		}
	}
	if withEntries == 0 {
		t.Fatal("leader sent the follower no MsgApp with the new entry")
	}
	if got := dataOf(f.applied); f.rn.r.log.committed != l.rn.r.log.committed || len(got) == 0 || got[len(got)-1] != "after-snapshot" {
		t.Fatalf("follower commit %d (leader %d), applied %v", f.rn.r.log.committed, l.rn.r.log.committed, got)
	}
	// The transport gives up on the transfer a minute later.
	l.rn.ReportSnapshot("n3", false)
	nw.stabilize()
	nw.tick("n1", 3)
	if snaps != 1 || pr.state != stateReplicate {
		t.Fatalf("a late verdict sent %d snapshots in all, progress %s", snaps, pr)
	}
}

// §7: while a snapshot transfer runs (not yet installed, no verdict), the
// heartbeat-triggered probes are rejected harmlessly: the peer stays in
// snapshot state and no second transfer starts. A failed verdict then
// sends a new snapshot.
func TestSnapshot_7_ProbeDuringTransferIsHarmless(t *testing.T) {
	nw, idx := snapshotToIsolatedFollower(t)
	l, f := nw.node("n1"), nw.node("n3")
	snaps, inFlight := 0, true
	nw.filter = func(m *Message) bool {
		if m.Type == MsgSnap && m.To == "n3" {
			snaps++
			return !inFlight // the first transfer is still running
		}
		return true
	}
	nw.tick("n1", 1)
	fLast := f.rn.r.log.lastIndex()
	mark := len(nw.sent)
	nw.tick("n1", 5)
	pr := l.rn.r.prs["n3"]
	if snaps != 1 || pr.state != stateSnapshot || pr.pendingSnapshot != idx {
		t.Fatalf("during the transfer: %d snapshots sent, progress %s pending %d", snaps, pr, pr.pendingSnapshot)
	}
	probes := sentSince(nw, mark, MsgApp, "n1", "n3")
	if len(probes) == 0 {
		t.Fatal("no probe sent during the transfer")
	}
	for _, m := range probes {
		if m.Index < idx || len(m.Entries) != 0 {
			t.Fatalf("probe %+v: want an empty MsgApp at or past the snapshot %d", m, idx)
		}
	}
	for _, m := range sentSince(nw, mark, MsgAppResp, "n3", "n1") {
		if !m.Reject {
			t.Fatalf("follower without the snapshot accepted a probe: %+v", m)
		}
	}
	if f.rn.r.log.lastIndex() != fLast {
		t.Fatalf("probes changed the follower's log: last %d -> %d", fLast, f.rn.r.log.lastIndex())
	}
	// The transport reports the transfer failed: a new one starts.
	inFlight = false
	l.rn.ReportSnapshot("n3", false)
	nw.stabilize()
	nw.tick("n1", 2)
	if snaps != 2 {
		t.Fatalf("%d snapshots sent after the failed verdict, want 2", snaps)
	}
	l.rn.ReportSnapshot("n3", true)
	nw.stabilize()
	if err := nw.propose("n1", "after-snapshot"); err != nil {
		t.Fatal(err)
	}
	nw.tick("n1", 1)
	if f.rn.r.log.committed != l.rn.r.log.committed || pr.state != stateReplicate {
		t.Fatalf("follower commit %d leader commit %d progress %s", f.rn.r.log.committed, l.rn.r.log.committed, pr)
	}
}

// Restart: commit is max(persisted commit, Config.Applied), since the
// store may not persist every commit change.
func TestRestart_CommitIsMaxOfPersistedAndApplied(t *testing.T) {
	st := NewMemoryStorage()
	st.snap.Conf = ConfState{Members: members(ids(3)...)}
	for i := 1; i <= 5; i++ {
		st.ents = append(st.ents, Entry{Index: uint64(i), Term: 1})
	}
	st.hs = HardState{Term: 1, Commit: 2}
	cfg := testConfig("n1", st, 1)
	cfg.Applied = 4
	rn, err := NewRawNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := rn.Status(); s.Commit != 4 || s.Applied != 4 {
		t.Fatalf("status %+v", s)
	}
	if rd := rn.Ready(); len(rd.CommittedEntries) != 0 {
		t.Fatalf("re-applies %+v", rd.CommittedEntries)
	}
	cfg.Applied = 9
	if _, err := NewRawNode(cfg); err == nil {
		t.Fatal("Applied past the log accepted")
	}
}

// Bootstrap writes the same committed configuration log on every member;
// it refuses non-empty storage.
func TestBootstrap_SameLogEverywhere(t *testing.T) {
	nw := newTestNet(t, 3)
	for _, id := range nw.order {
		n := nw.node(id)
		if len(n.applied) != 3 || n.applied[0].Type != EntryConfChange {
			t.Fatalf("%s applied %+v", id, n.applied)
		}
		if err := n.rn.Bootstrap(members("x")); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("second bootstrap: %v", err)
		}
		// Restarted from storage it knows the configuration.
		rn, err := NewRawNode(testConfig(id, n.st, 5))
		if err != nil {
			t.Fatal(err)
		}
		if len(rn.Status().Conf.Members) != 3 || rn.Status().Commit != 3 {
			t.Fatalf("restart: %+v", rn.Status())
		}
	}
	mustEqualLogs(t, nw)
	// Member order does not matter.
	st := NewMemoryStorage()
	rn, _ := NewRawNode(testConfig("n3", st, 1))
	_ = rn.Bootstrap([]Member{members("n3")[0], members("n1")[0], members("n2")[0]})
	got := logOf(t, rn)
	want := logOf(t, nw.node("n1").rn)
	for i := range want {
		if string(got[i].Data) != string(want[i].Data) {
			t.Fatalf("bootstrap log depends on member order")
		}
	}
}

// Bad input from the network is refused and changes nothing.
func TestStep_RejectsMalformedMessages(t *testing.T) {
	rn, _ := newNodeWithLog(t, "n1", ids(3), []uint64{1, 1}, 1)
	before := rn.Status()
	bad := []Message{
		{Type: MessageType(200), From: "n2", Term: 1},
		{Type: MsgHup, From: "n2", Term: 1},
		{Type: MsgSnapStatus, From: "n2", Term: 1},
		{Type: MsgApp, From: "", Term: 2},
		{Type: MsgVote, From: "n1", Term: 5, Index: 9, LogTerm: 5},
		{Type: MsgApp, From: "n2", To: "n9", Term: 2},
		{Type: MsgApp, From: "n2", Term: 0},
		{Type: MsgApp, From: "n2", Term: 2, Index: 2, LogTerm: 1, Entries: []Entry{{Index: 5, Term: 2}}},
		{Type: MsgApp, From: "n2", Term: 2, Index: 2, LogTerm: 1, Entries: []Entry{{Index: 3, Term: 7}}},
		{Type: MsgApp, From: "n2", Term: 2, Index: 2, LogTerm: 3},
		{Type: MsgSnap, From: "n2", Term: 2},
		{Type: MsgSnap, From: "n2", Term: 2, Snapshot: &SnapshotMeta{Index: 9, Term: 2}},
		{Type: MsgProp, From: "n2", Term: 0},
		{Type: MsgProp, From: "n2", Term: 3, Entries: []Entry{{}}},
	}
	for i, m := range bad {
		if err := rn.Step(m); !errors.Is(err, ErrBadMessage) {
			t.Errorf("message %d (%s): err %v", i, m.Type, err)
		}
	}
	if after := rn.Status(); after.Term != before.Term || after.LastIndex != before.LastIndex || after.Commit != before.Commit {
		t.Fatalf("state changed: %+v -> %+v", before, after)
	}
	if rn.HasReady() {
		t.Fatalf("bad messages produced work: %+v", rn.Ready())
	}
}

func TestConfChangeCodec(t *testing.T) {
	for _, cc := range []ConfChange{
		{Type: ConfAddLearner, ID: "n4", Addr: "10.0.0.4:7000"},
		{Type: ConfAddVoter, ID: "node-with-a-long-name"},
		{Type: ConfRemove, ID: "x"},
	} {
		got, err := DecodeConfChange(EncodeConfChange(cc))
		if err != nil || got != cc {
			t.Fatalf("round trip %+v: %+v %v", cc, got, err)
		}
	}
	for _, b := range [][]byte{nil, {1}, {2, 0, 1, 'a', 0}, {1, 9, 1, 'a', 0}, {1, 0, 0, 0}, {1, 0, 5, 'a'}, {1, 0, 1, 'a', 0, 0}} {
		if _, err := DecodeConfChange(b); !errors.Is(err, ErrBadConfChange) {
			t.Fatalf("decode %v: %v", b, err)
		}
	}
}

func FuzzDecodeConfChange(f *testing.F) {
	f.Add(EncodeConfChange(ConfChange{Type: ConfAddVoter, ID: "n1", Addr: "a:1"}))
	f.Add([]byte{1, 2, 1, 'x', 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		cc, err := DecodeConfChange(b)
		if err != nil {
			if !errors.Is(err, ErrBadConfChange) {
				t.Fatalf("error not wrapping ErrBadConfChange: %v", err)
			}
			return
		}
		again, err := DecodeConfChange(EncodeConfChange(cc))
		if err != nil || again != cc {
			t.Fatalf("re-encode of %+v: %+v %v", cc, again, err)
		}
	})
}

func TestMemoryStorage(t *testing.T) {
	s := NewMemoryStorage()
	if f, _ := s.FirstIndex(); f != 1 {
		t.Fatalf("first %d", f)
	}
	ents := func(lo, hi, term uint64) []Entry {
		var out []Entry
		for i := lo; i <= hi; i++ {
			out = append(out, Entry{Index: i, Term: term, Data: []byte{byte(i)}})
		}
		return out
	}
	if err := s.Save(HardState{Term: 1, Vote: "a", Commit: 0}, ents(1, 5, 1), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(HardState{}, ents(4, 6, 2), nil); err != nil { // replaces 4, 5
		t.Fatal(err)
	}
	if tm, _ := s.Term(5); tm != 2 {
		t.Fatalf("term(5) = %d", tm)
	}
	if l, _ := s.LastIndex(); l != 6 {
		t.Fatalf("last %d", l)
	}
	if hs := s.HardState(); hs.Vote != "a" {
		t.Fatal("empty HardState overwrote the stored one")
	}
	if err := s.Save(HardState{}, ents(9, 9, 2), nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("gap: %v", err)
	}
	got, _ := s.Entries(2, 7, 2)
	if len(got) != 2 {
		t.Fatalf("size limit: %d entries", len(got))
	}
	if err := s.Compact(3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Entries(3, 4, 100); !errors.Is(err, ErrCompacted) {
		t.Fatalf("compacted read: %v", err)
	}
	if tm, _ := s.Term(3); tm != 1 {
		t.Fatalf("snapshot term %d", tm)
	}
	if err := s.Compact(2); !errors.Is(err, ErrCompacted) {
		t.Fatal(err)
	}
	snap := SnapshotMeta{Index: 10, Term: 3, Conf: ConfState{Members: members("a")}}
	if err := s.Save(HardState{}, nil, &snap); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.FirstIndex(); f != 11 {
		t.Fatalf("first after snapshot %d", f)
	}
	_, cs, _ := s.InitialState()
	if len(cs.Members) != 1 {
		t.Fatalf("conf %+v", cs)
	}
	_ = s.Close()
	if err := s.Save(HardState{Term: 9}, nil, nil); err == nil {
		t.Fatal("save after close")
	}
}

// §6.4.1: a follower that restarts (losing the memory of the leader it
// acknowledged) still ignores vote requests for an election timeout, so a
// lease that counted its acknowledgement stays safe.
func TestLease_6_4_1_RestartedFollowerHonoursLease(t *testing.T) {
	nw := newTestNet(t, 3, withCheckQuorum)
	nw.campaign("n1")
	nw.tickAll(1)
	if _, ok := nw.node("n1").rn.LeaseStartTick(); !ok {
		t.Fatal("no lease")
	}
	nw.restart("n2", withCheckQuorum)
	nw.isolate("n1")
	nw.campaign("n3")
	if nw.node("n3").rn.r.role == RoleLeader {
		t.Fatal("restarted follower voted during the lease it acknowledged")
	}
	// After an election timeout it votes again.
	for range nw.node("n2").rn.r.electionTimeout {
		nw.node("n2").rn.Tick()
	}
	nw.campaign("n3")
	if nw.node("n3").rn.r.role != RoleLeader {
		t.Fatalf("n3 not elected after the quiet period: %+v", nw.node("n3").rn.Status())
	}
}

// §6.4.1 with §3.10: a MsgTimeoutNow of an abandoned transfer may still
// arrive and force an election; the lease comes back only once the no-op
// appended at the abort is committed, and a target whose log moved past
// the MsgTimeoutNow ignores it.
func TestLease_6_4_1_LeaseAfterAbandonedTransfer(t *testing.T) {
	nw := newTestNet(t, 3, withCheckQuorum)
	nw.campaign("n1")
	nw.tickAll(1)
	n := nw.node("n1")
	var late []Message
	nw.filter = func(m *Message) bool {
		if m.Type == MsgTimeoutNow {
			late = append(late, *m) // delayed in the network
			return false
		}
		return true
	}
	n.rn.TransferLeadership("n2")
	nw.stabilize()
	if len(late) != 1 {
		t.Fatalf("MsgTimeoutNow not sent: %v", late)
	}
	barrierCut := true
	nw.filter = func(m *Message) bool { return !barrierCut || m.Type != MsgApp }
	for range n.rn.r.electionTimeout {
		n.rn.Tick()
	}
	nw.stabilize()
	if n.rn.Status().LeadTransferee != "" || n.rn.r.role != RoleLeader {
		t.Fatalf("transfer not abandoned: %+v", n.rn.Status())
	}
	nw.tickAll(2)
	if _, ok := n.rn.LeaseStartTick(); ok {
		t.Fatal("lease before the abort's no-op committed")
	}
	barrierCut = false
	nw.tickAll(2)
	if _, ok := n.rn.LeaseStartTick(); !ok {
		t.Fatal("no lease after the abort's no-op committed")
	}
	// The late MsgTimeoutNow arrives now: n2's log moved past it.
	nw.deliver(late)
	if nw.leader() != "n1" || nw.node("n2").rn.r.role != RoleFollower {
		t.Fatalf("stale MsgTimeoutNow forced an election: leader %q", nw.leader())
	}
}
