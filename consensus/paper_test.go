package consensus

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Tests named after the section of the Raft paper (or thesis) they prove.

// newNodeWithLog builds a RawNode whose storage holds entries with the
// given terms at indices 1..len(terms), the HardState term hsTerm, and the
// configuration voters (as a snapshot at index 0).
func newNodeWithLog(t testing.TB, id string, voters []string, terms []uint64, hsTerm uint64, opts ...nodeOpt) (*RawNode, *MemoryStorage) {
	t.Helper()
	st := NewMemoryStorage()
	st.snap.Conf = ConfState{Members: members(voters...)}
	for i, term := range terms {
		st.ents = append(st.ents, Entry{Index: uint64(i + 1), Term: term, Data: fmt.Appendf(nil, "%d-%d", i+1, term)})
	}
	st.hs = HardState{Term: hsTerm}
	rn, err := NewRawNode(testConfig(id, st, 1, opts...))
	if err != nil {
		t.Fatal(err)
	}
	return rn, st
}

// persist handles rn's Ready (persisting to st) and returns the messages
// split by the ordering contract.
func persist(t testing.TB, rn *RawNode, st *MemoryStorage) (before, after []Message, rd Ready) {
	t.Helper()
	rd = rn.Ready()
	if err := st.Save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
		t.Fatal(err)
	}
	rn.Advance(rd)
	return rd.MessagesBeforePersist, rd.Messages, rd
}

func only(msgs []Message, typ MessageType) []Message {
	var out []Message
	for _, m := range msgs {
		if m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

// §5.1: a node that sees a higher term adopts it and becomes a follower.
func TestServerBasics_5_1_HigherTermMakesFollower(t *testing.T) {
	for _, role := range []Role{RoleFollower, RoleCandidate, RoleLeader} {
		t.Run(role.String(), func(t *testing.T) {
			nw := newTestNet(t, 3)
			n := nw.node("n1")
			switch role {
			case RoleCandidate:
				nw.isolate("n1")
				nw.campaign("n1")
			case RoleLeader:
				nw.campaign("n1")
			}
			if n.rn.r.role != role {
				t.Fatalf("role = %s, want %s", n.rn.r.role, role)
			}
			term := n.rn.r.term
			if err := n.rn.Step(Message{Type: MsgApp, From: "n2", To: "n1", Term: term + 5, Index: 0, LogTerm: 0}); err != nil {
				t.Fatal(err)
			}
			if n.rn.r.role != RoleFollower || n.rn.r.term != term+5 || n.rn.r.lead != "n2" {
				t.Fatalf("after higher-term MsgApp: role %s term %d lead %q", n.rn.r.role, n.rn.r.term, n.rn.r.lead)
			}
		})
	}
}

// §5.1: a request with a stale term is rejected and changes nothing.
func TestServerBasics_5_1_StaleTermIgnored(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.campaign("n1")
	nw.campaign("n2") // term 3
	n := nw.node("n1")
	before := n.rn.Status()
	if err := n.rn.Step(Message{Type: MsgVote, From: "n3", To: "n1", Term: 1, Index: 100, LogTerm: 100}); err != nil {
		t.Fatal(err)
	}
	if err := n.rn.Step(Message{Type: MsgApp, From: "n3", To: "n1", Term: 1, Index: 0, Entries: []Entry{{Index: 1, Term: 1}}}); err != nil {
		t.Fatal(err)
	}
	_, after, _ := persist(t, n.rn, n.st)
	if after := n.rn.Status(); after.Term != before.Term || after.Vote != before.Vote || after.LastIndex != before.LastIndex {
		t.Fatalf("stale messages changed state: %+v -> %+v", before, after)
	}
	if len(only(after, MsgVoteResp)) != 0 {
		t.Fatalf("answered a stale vote: %+v", after)
	}
}

// §5.2: a follower that hears nothing for its election timeout starts an
// election: term+1, votes for itself, asks every voter.
func TestLeaderElection_5_2_FollowerTimesOutAndCampaigns(t *testing.T) {
	rn, st := newNodeWithLog(t, "n1", []string{"n1", "n2", "n3"}, []uint64{1}, 1)
	for range 2 * rn.r.electionTimeout {
		rn.Tick()
	}
	if rn.r.role != RoleCandidate || rn.r.term != 2 || rn.r.vote != "n1" {
		t.Fatalf("role %s term %d vote %q", rn.r.role, rn.r.term, rn.r.vote)
	}
	before, after, rd := persist(t, rn, st)
	if rd.HardState.Term != 2 || rd.HardState.Vote != "n1" || !rd.MustSync {
		t.Fatalf("HardState %+v MustSync %v", rd.HardState, rd.MustSync)
	}
	if len(only(before, MsgVote)) != 0 {
		t.Fatal("MsgVote sent before the vote for itself is durable")
	}
	votes := only(after, MsgVote)
	if len(votes) != 2 || votes[0].Term != 2 || votes[0].Index != 1 || votes[0].LogTerm != 1 {
		t.Fatalf("votes: %+v", votes)
	}
}

// §5.2: the election timeout is drawn from [ElectionTick, 2*ElectionTick)
// with Config.Rand, and differs between draws.
func TestLeaderElection_5_2_RandomizedTimeout(t *testing.T) {
	rn, _ := newNodeWithLog(t, "n1", []string{"n1", "n2", "n3"}, nil, 0)
	seen := map[int]bool{}
	for range 200 {
		rn.r.reset(rn.r.term)
		to := rn.r.randomizedElectionTimeout
		if to < rn.r.electionTimeout || to >= 2*rn.r.electionTimeout {
			t.Fatalf("timeout %d outside [%d, %d)", to, rn.r.electionTimeout, 2*rn.r.electionTimeout)
		}
		seen[to] = true
	}
	if len(seen) < rn.r.electionTimeout/2 {
		t.Fatalf("timeouts not randomized: %v", seen)
	}
}

// §5.2: a candidate becomes leader with votes from a majority, stays a
// candidate without one, and steps down when a majority rejects it.
func TestLeaderElection_5_2_MajorityWins(t *testing.T) {
	cases := []struct {
		size     int
		votes    map[string]bool
		wantRole Role
	}{
		{3, map[string]bool{"n2": true}, RoleLeader},
		{3, map[string]bool{}, RoleCandidate},
		{3, map[string]bool{"n2": false, "n3": false}, RoleFollower},
		{5, map[string]bool{"n2": true}, RoleCandidate},
		{5, map[string]bool{"n2": true, "n3": true}, RoleLeader},
		{5, map[string]bool{"n2": false, "n3": false}, RoleCandidate},
		{5, map[string]bool{"n2": false, "n3": false, "n4": false}, RoleFollower},
	}
	for i, c := range cases {
		rn, _ := newNodeWithLog(t, "n1", ids(c.size), nil, 0)
		if err := rn.Campaign(); err != nil {
			t.Fatal(err)
		}
		for _, id := range slices.Sorted(func(yield func(string) bool) {
			for k := range c.votes {
				if !yield(k) {
					return
				}
			}
		}) {
			_ = rn.Step(Message{Type: MsgVoteResp, From: id, To: "n1", Term: 1, Reject: !c.votes[id]})
		}
		if rn.r.role != c.wantRole {
			t.Errorf("case %d: role %s, want %s", i, rn.r.role, c.wantRole)
		}
	}
}

// §5.2: each node votes for at most one candidate per term, and the vote
// reaches the candidate only after the HardState recording it is durable.
func TestLeaderElection_5_2_OneVotePerTermPersistedBeforeReply(t *testing.T) {
	rn, st := newNodeWithLog(t, "n1", ids(3), []uint64{1}, 1)
	if err := rn.Step(Message{Type: MsgVote, From: "n2", To: "n1", Term: 2, Index: 1, LogTerm: 1}); err != nil {
		t.Fatal(err)
	}
	rd := rn.Ready()
	if rd.HardState.Vote != "n2" || rd.HardState.Term != 2 || !rd.MustSync {
		t.Fatalf("HardState %+v MustSync %v", rd.HardState, rd.MustSync)
	}
	if len(only(rd.MessagesBeforePersist, MsgVoteResp)) != 0 {
		t.Fatal("vote reply may not be sent before persistence")
	}
	resp := only(rd.Messages, MsgVoteResp)
	if len(resp) != 1 || resp[0].Reject {
		t.Fatalf("vote reply: %+v", resp)
	}
	_ = st.Save(rd.HardState, rd.Entries, rd.Snapshot)
	rn.Advance(rd)

	// Another candidate in the same term is refused, even after a restart.
	rn2, err := NewRawNode(testConfig("n1", st, 2))
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []*RawNode{rn, rn2} {
		_ = node.Step(Message{Type: MsgVote, From: "n3", To: "n1", Term: 2, Index: 5, LogTerm: 2})
		resp := only(node.Ready().Messages, MsgVoteResp)
		if len(resp) != 1 || !resp[0].Reject {
			t.Fatalf("second vote in term 2: %+v", resp)
		}
		// The same candidate asking again gets the vote again.
		_ = node.Step(Message{Type: MsgVote, From: "n2", To: "n1", Term: 2, Index: 1, LogTerm: 1})
		resp = only(node.Ready().Messages, MsgVoteResp)
		if len(resp) != 1 || resp[0].Reject {
			t.Fatalf("repeated vote for n2: %+v", resp)
		}
	}
}

// §5.2: a candidate that hears from a leader of its term steps down.
func TestLeaderElection_5_2_CandidateStepsDownForLeader(t *testing.T) {
	rn, _ := newNodeWithLog(t, "n1", ids(3), nil, 0)
	_ = rn.Campaign()
	_ = rn.Step(Message{Type: MsgHeartbeat, From: "n2", To: "n1", Term: 1})
	if rn.r.role != RoleFollower || rn.r.lead != "n2" {
		t.Fatalf("role %s lead %q", rn.r.role, rn.r.lead)
	}
}

// §5.2: a leader sends heartbeats every HeartbeatTick, before persisting.
func TestLeaderElection_5_2_LeaderHeartbeats(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.campaign("n1")
	n := nw.node("n1")
	n.rn.Tick()
	rd := n.rn.Ready()
	if got := len(only(rd.MessagesBeforePersist, MsgHeartbeat)); got != 2 {
		t.Fatalf("heartbeats before persist: %d (%+v)", got, rd)
	}
	if len(only(rd.Messages, MsgHeartbeat)) != 0 {
		t.Fatal("heartbeats in Messages")
	}
}

// §5.2 with randomized timeouts: a cluster elects exactly one leader.
func TestLeaderElection_5_2_ElectsOneLeader(t *testing.T) {
	for seed := range 20 {
		nw := newTestNet(t, 5)
		for i, id := range nw.order {
			nw.node(id).rn.r.rand = rand.New(rand.NewPCG(uint64(seed), uint64(i)))
		}
		for range 40 {
			nw.tickAll(1)
			if nw.leader() != "" {
				break
			}
		}
		if nw.leader() == "" {
			t.Fatalf("seed %d: no leader", seed)
		}
	}
}

// §5.3: the leader appends a proposal and replicates it; it starts each
// term with a no-op entry.
func TestLogReplication_5_3_LeaderAppendsNoOpAndProposals(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.campaign("n1")
	l := logOf(t, nw.node("n1").rn)
	last := l[len(l)-1]
	if last.Term != 2 || last.Type != EntryNormal || len(last.Data) != 0 {
		t.Fatalf("no no-op at the start of term 2: %+v", last)
	}
	n := nw.node("n1")
	if err := n.rn.Propose([]byte("x")); err != nil {
		t.Fatal(err)
	}
	rd := n.rn.Ready()
	apps := only(rd.MessagesBeforePersist, MsgApp)
	if len(apps) != 2 || len(apps[0].Entries) != 1 || string(apps[0].Entries[0].Data) != "x" {
		t.Fatalf("MsgApps: %+v", apps)
	}
	if len(rd.Entries) != 1 || rd.Entries[0].Index != last.Index+1 || !rd.MustSync {
		t.Fatalf("entries to persist: %+v", rd.Entries)
	}
}

// §5.3 and thesis §10.2.1: the leader sends AppendEntries before its own
// write is durable but counts itself toward the quorum only after Advance.
func TestLogReplication_5_3_LeaderCountsItselfOnlyWhenDurable(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.campaign("n1")
	n := nw.node("n1")
	_ = n.rn.Propose([]byte("x"))
	idx := n.rn.r.log.lastIndex()
	rd := n.rn.Ready()
	// One follower acknowledges; with the leader not yet durable, 1 of 3.
	nw.cut[[2]string{"n1", "n3"}] = true
	for _, m := range rd.MessagesBeforePersist {
		if m.To == "n2" {
			_ = nw.node("n2").rn.Step(m)
		}
	}
	for _, m := range nw.process(nw.node("n2")) {
		_ = n.rn.Step(m)
	}
	if n.rn.r.log.committed >= idx {
		t.Fatalf("committed %d before the leader's own write was durable", idx)
	}
	_ = n.st.Save(rd.HardState, rd.Entries, rd.Snapshot)
	n.rn.Advance(rd)
	if n.rn.r.log.committed != idx {
		t.Fatalf("commit %d after Advance, want %d", n.rn.r.log.committed, idx)
	}
}

// §5.3: the consistency check rejects entries whose predecessor does not
// match, and the rejection carries the follower's conflict term and the
// first index it holds of that term.
func TestLogReplication_5_3_ConsistencyCheckWithConflictHint(t *testing.T) {
	rn, st := newNodeWithLog(t, "n2", ids(3), []uint64{1, 1, 2, 2, 2, 3, 3}, 3)
	cases := []struct {
		prev, prevTerm      uint64
		reject              bool
		hintIndex, hintTerm uint64
	}{
		{7, 3, false, 0, 0},
		{7, 4, true, 6, 3},   // term 3 starts at 6
		{5, 3, true, 3, 2},   // term 2 starts at 3
		{9, 4, true, 8, 0},   // log too short: last index + 1
		{2, 1, false, 0, 0},  // matches
		{4, 1, true, 3, 2},   // conflict inside term 2
		{6, 3, false, 0, 0},  // stale but matching: no truncation
		{1, 1, false, 0, 0},  // matches
		{0, 0, false, 0, 0},  // the empty prefix always matches
		{3, 9, true, 3, 2},   // first index of term 2
		{7, 9, true, 6, 3},   // first index of term 3
		{2, 9, true, 1, 1},   // first index of term 1
		{1, 9, true, 1, 1},   // conflict at the first entry
		{8, 3, true, 8, 0},   // past the end
		{7, 2, true, 6, 3},   // older term than ours
		{6, 2, true, 6, 3},   // within term 3
		{3, 1, true, 3, 2},   // within term 2
		{5, 2, false, 0, 0},  // matches
		{4, 2, false, 0, 0},  // matches
		{3, 2, false, 0, 0},  // matches
		{7, 3, false, 0, 0},  // matches again
		{10, 3, true, 8, 0},  // past the end
		{100, 5, true, 8, 0}, // far past the end
	}
	for i, c := range cases {
		_ = rn.Step(Message{Type: MsgApp, From: "n1", To: "n2", Term: 10, Index: c.prev, LogTerm: c.prevTerm})
		_, after, _ := persist(t, rn, st)
		resp := only(after, MsgAppResp)
		if len(resp) != 1 {
			t.Fatalf("case %d: responses %+v", i, after)
		}
		r := resp[0]
		if r.Reject != c.reject || (c.reject && (r.RejectHint != c.hintIndex || r.LogTerm != c.hintTerm || r.Index != c.prev)) {
			t.Errorf("case %d (%d,%d): got reject=%v hint=(%d,%d) index=%d, want reject=%v hint=(%d,%d)",
				i, c.prev, c.prevTerm, r.Reject, r.RejectHint, r.LogTerm, r.Index, c.reject, c.hintIndex, c.hintTerm)
		}
		if !c.reject && r.Index != c.prev {
			t.Errorf("case %d: ack index %d, want %d (the last new entry, not our last index)", i, r.Index, c.prev)
		}
	}
	if rn.r.log.lastIndex() != 7 {
		t.Fatalf("log changed by empty MsgApps: last %d", rn.r.log.lastIndex())
	}
}

// §5.3: a follower truncates only at a real conflict; a stale or reordered
// AppendEntries (a prefix of what it has) never removes entries.
func TestLogReplication_5_3_TruncateOnlyOnConflict(t *testing.T) {
	rn, st := newNodeWithLog(t, "n2", ids(3), []uint64{1, 1, 2}, 2)
	app := func(prev, prevTerm uint64, terms ...uint64) {
		var ents []Entry
		for i, tm := range terms {
			ents = append(ents, Entry{Index: prev + 1 + uint64(i), Term: tm, Data: []byte(fmt.Sprintf("L%d-%d", prev+1+uint64(i), tm))})
		}
		if err := rn.Step(Message{Type: MsgApp, From: "n1", To: "n2", Term: 3, Index: prev, LogTerm: prevTerm, Entries: ents}); err != nil {
			t.Fatal(err)
		}
		persist(t, rn, st)
	}
	app(3, 2, 3, 3, 3) // 4,5,6 at term 3
	app(3, 2, 3)       // stale (reordered) MsgApp carrying only entry 4
	if got := rn.r.log.lastIndex(); got != 6 {
		t.Fatalf("stale MsgApp truncated the log to %d", got)
	}
	app(4, 3, 3) // duplicate of entry 5
	if got := rn.r.log.lastIndex(); got != 6 {
		t.Fatalf("duplicate MsgApp truncated the log to %d", got)
	}
	app(2, 1, 3, 3) // real conflict at 3 (term 2 -> 3): truncate after
	l := logOf(t, rn)
	if len(l) != 4 || l[2].Term != 3 || l[3].Term != 3 {
		t.Fatalf("after conflict: %+v", l)
	}
	stored, _ := st.Entries(1, 5, 1<<30)
	if len(stored) != 4 || stored[2].Term != 3 {
		t.Fatalf("storage after conflict: %+v", stored)
	}
}

// §5.3: a follower sets commit = min(leaderCommit, index of last new entry).
func TestLogReplication_5_3_FollowerCommitIsMinOfLeaderCommitAndLastNew(t *testing.T) {
	rn, st := newNodeWithLog(t, "n2", ids(3), []uint64{1, 1, 1, 1, 1}, 1)
	// Entries 4 and 5 diverge from the leader's (term 2 vs 1) but the
	// MsgApp only covers up to 3: leaderCommit 5 must not commit 4, 5.
	_ = rn.Step(Message{Type: MsgApp, From: "n1", To: "n2", Term: 2, Index: 2, LogTerm: 1,
		Entries: []Entry{{Index: 3, Term: 1, Data: []byte("n2-3-1")}}, Commit: 5})
	persist(t, rn, st)
	if c := rn.r.log.committed; c != 3 {
		t.Fatalf("commit %d, want 3", c)
	}
	_ = rn.Step(Message{Type: MsgApp, From: "n1", To: "n2", Term: 2, Index: 3, LogTerm: 1, Commit: 2})
	if c := rn.r.log.committed; c != 3 {
		t.Fatalf("commit went backwards to %d", c)
	}
}

// §5.3 (fast backtracking, thesis §5.3 optimisation): a follower with 1,000
// divergent entries over 10 terms is repaired in a number of AppendEntries
// round trips that grows with the terms, not the entries.
func TestLogReplication_5_3_FastBacktracking1000EntriesOver10Terms(t *testing.T) {
	common := slices.Repeat([]uint64{1}, 10)
	var follower []uint64
	for term := uint64(2); term <= 11; term++ {
		follower = append(follower, slices.Repeat([]uint64{term}, 100)...)
	}
	leaderLog := append(slices.Clone(common), slices.Repeat([]uint64{12}, 1000)...)
	followerLog := append(slices.Clone(common), follower...)

	nw := &testNet{t: t, nodes: map[string]*testNode{}, cut: map[[2]string]bool{}}
	for _, c := range []struct {
		id    string
		terms []uint64
	}{{"n1", leaderLog}, {"n2", followerLog}, {"n3", leaderLog}} {
		rn, st := newNodeWithLog(t, c.id, ids(3), c.terms, 12)
		rn.r.log.committed = 10
		nw.nodes[c.id] = &testNode{id: c.id, rn: rn, st: st}
		nw.order = append(nw.order, c.id)
	}
	nw.campaign("n1")
	if nw.leader() != "n1" {
		t.Fatal("n1 did not win")
	}
	rejects, apps := 0, 0
	for _, m := range nw.sent {
		if m.Type == MsgAppResp && m.From == "n2" && m.Reject {
			rejects++
		}
		if m.Type == MsgApp && m.To == "n2" {
			apps++
		}
	}
	// One rejection per divergent term at most, plus one for the leader's
	// own (new) term entry.
	if rejects > 11 {
		t.Fatalf("%d rejected AppendEntries to repair 1000 entries over 10 terms; want <= 11", rejects)
	}
	if rejects < 2 {
		t.Fatalf("only %d rejections: the scenario does not exercise backtracking", rejects)
	}
	t.Logf("repaired with %d rejections, %d MsgApps in total", rejects, apps)
	mustEqualLogs(t, nw)
}

// §5.3: replication is pipelined with at most MaxInflightMsgs unacked
// MsgApps, each at most MaxSizePerMsg of data (but at least one entry).
func TestLogReplication_5_3_InflightWindowAndSizeCap(t *testing.T) {
	nw := newTestNet(t, 3, func(c *Config) { c.MaxInflightMsgs = 3; c.MaxSizePerMsg = 10 })
	nw.campaign("n1")
	n := nw.node("n1")
	nw.isolate("n2")
	nw.isolate("n3")
	for i := range 20 {
		_ = n.rn.Propose(fmt.Appendf(nil, "entry-%02d", i)) // 8 bytes each
		persist(t, n.rn, n.st)
	}
	// Collect everything the leader sent towards n2 while cut off.
	var sent []Message
	n.rn.Tick()
	for n.rn.HasReady() {
		b, a, _ := persist(t, n.rn, n.st)
		sent = append(sent, b...)
		sent = append(sent, a...)
	}
	_ = sent
	pr := n.rn.r.prs["n2"]
	if pr.state != stateReplicate || len(pr.inflights.last) > 3 {
		t.Fatalf("progress %s", pr)
	}
	if !pr.isPaused() {
		t.Fatalf("window of 3 not full after 20 proposals: %s", pr)
	}
	for _, m := range nw.sent {
		var size int
		for _, e := range m.Entries {
			size += len(e.Data)
		}
		if m.Type == MsgApp && len(m.Entries) > 1 && size > 10 {
			t.Fatalf("MsgApp of %d bytes over the cap", size)
		}
	}
	nw.heal()
	nw.tickAll(3)
	mustEqualLogs(t, nw)
}

// §5.4.1: the election restriction: a voter grants its vote only to a
// candidate whose log is at least as up-to-date as its own.
func TestSafety_5_4_1_ElectionRestriction(t *testing.T) {
	// The voter's log ends at (index 3, term 2).
	cases := []struct {
		index, term uint64
		grant       bool
	}{
		{3, 2, true}, {4, 2, true}, {1, 3, true},
		{2, 2, false}, {9, 1, false}, {0, 0, false},
	}
	for i, c := range cases {
		rn, _ := newNodeWithLog(t, "n1", ids(3), []uint64{1, 2, 2}, 2)
		_ = rn.Step(Message{Type: MsgVote, From: "n2", To: "n1", Term: 3, Index: c.index, LogTerm: c.term})
		resp := only(rn.Ready().Messages, MsgVoteResp)
		if len(resp) != 1 || resp[0].Reject == c.grant {
			t.Errorf("case %d (%d,%d): %+v, want grant=%v", i, c.index, c.term, resp, c.grant)
		}
	}
}

// Figure 7: whatever the followers' logs (a)-(f), the leader of term 8
// brings each of them to its own log.
func TestSafety_5_4_Figure7(t *testing.T) {
	leader := []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6}
	followers := map[string][]uint64{
		"a": {1, 1, 1, 4, 4, 5, 5, 6, 6},
		"b": {1, 1, 1, 4},
		"c": {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},
		"d": {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},
		"e": {1, 1, 1, 4, 4, 4, 4},
		"f": {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},
	}
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		t.Run(name, func(t *testing.T) {
			nw := &testNet{t: t, nodes: map[string]*testNode{}, cut: map[[2]string]bool{}}
			for _, c := range []struct {
				id    string
				terms []uint64
			}{{"n1", leader}, {"n2", followers[name]}, {"n3", leader[:3]}} {
				rn, st := newNodeWithLog(t, c.id, ids(3), c.terms, 7)
				nw.nodes[c.id] = &testNode{id: c.id, rn: rn, st: st}
				nw.order = append(nw.order, c.id)
			}
			nw.campaign("n1")
			if nw.leader() != "n1" || nw.node("n1").rn.r.term != 8 {
				t.Fatalf("leader %q term %d", nw.leader(), nw.node("n1").rn.r.term)
			}
			nw.tickAll(2)
			mustEqualLogs(t, nw)
			if got := nw.node("n2").rn.r.log.committed; got != 11 {
				t.Fatalf("follower commit %d, want 11 (the term-8 no-op)", got)
			}
		})
	}
}

// Figure 8: a leader must not commit an entry of an earlier term by
// counting replicas (c); such an entry may be overwritten (d); once an
// entry of the leader's own term is committed on top of it, it is safe (e).
func TestSafety_5_4_2_Figure8(t *testing.T) {
	setup := func(t *testing.T) (*testNet, uint64) {
		nw := newTestNet(t, 5)
		nw.campaign("n1") // term 2, no-op at 6
		// (a) S1 replicates index 7 (term 2) to S2 only.
		for _, id := range []string{"n3", "n4", "n5"} {
			nw.cut[[2]string{"n1", id}] = true
		}
		if err := nw.propose("n1", "S1-term2"); err != nil {
			t.Fatal(err)
		}
		idx := nw.node("n1").rn.r.log.lastIndex()
		if nw.node("n2").rn.r.log.lastIndex() != idx {
			t.Fatal("S2 did not get the entry")
		}
		// (b) S1 crashes; S5 wins term 3 with S3, S4 and appends its own
		// entry at the same index, which it cannot replicate.
		nw.heal()
		nw.isolate("n1")
		nw.filter = func(m *Message) bool { return !(m.From == "n5" && m.Type == MsgApp) }
		nw.campaign("n5")
		if nw.node("n5").rn.r.role != RoleLeader || nw.node("n5").rn.r.term != 3 {
			t.Fatalf("S5: %+v", nw.node("n5").rn.Status())
		}
		if tm := nw.node("n5").rn.r.log.termOrZero(idx); tm != 3 {
			t.Fatalf("S5 entry at %d has term %d", idx, tm)
		}
		// (c) S5 crashes; S1 restarts and wins term 4.
		nw.heal()
		nw.isolate("n5")
		nw.filter = nil
		nw.restart("n1")
		nw.campaign("n1")
		if nw.node("n1").rn.r.role != RoleLeader {
			nw.campaign("n1")
		}
		if nw.node("n1").rn.r.role != RoleLeader || nw.node("n1").rn.r.term != 4 {
			t.Fatalf("S1: %+v", nw.node("n1").rn.Status())
		}
		return nw, idx
	}

	t.Run("c_strict", func(t *testing.T) {
		// Redo (c) with S1's term-4 no-op held back: the term-2 entry is on
		// S1, S2, S3 (a majority) and still not committed.
		nw := newTestNet(t, 5)
		nw.campaign("n1")
		for _, id := range []string{"n3", "n4", "n5"} {
			nw.cut[[2]string{"n1", id}] = true
		}
		_ = nw.propose("n1", "S1-term2")
		idx := nw.node("n1").rn.r.log.lastIndex()
		nw.heal()
		nw.isolate("n1")
		nw.filter = func(m *Message) bool { return !(m.From == "n5" && m.Type == MsgApp) }
		nw.campaign("n5")
		nw.heal()
		nw.isolate("n5")
		nw.restart("n1")
		// S1's AppendEntries carry nothing past idx: its no-op stays local.
		nw.filter = func(m *Message) bool {
			if m.From == "n1" && m.Type == MsgApp {
				for i, e := range m.Entries {
					if e.Index > idx {
						m.Entries = m.Entries[:i]
						break
					}
				}
			}
			return true
		}
		for range 3 {
			if nw.node("n1").rn.r.role == RoleLeader {
				break
			}
			nw.campaign("n1")
		}
		if nw.node("n1").rn.r.role != RoleLeader {
			t.Fatal("S1 not leader")
		}
		nw.tickAll(3)
		for _, id := range []string{"n1", "n2", "n3"} {
			if tm := nw.node(id).rn.r.log.termOrZero(idx); tm != 2 {
				t.Fatalf("%s holds term %d at %d", id, tm, idx)
			}
		}
		for _, id := range nw.order {
			if c := nw.node(id).rn.r.log.committed; c >= idx {
				t.Fatalf("%s committed %d: the term-2 entry on a majority must not be committed by counting replicas", id, c)
			}
		}
		// (d) S1 crashes; S5 is elected by S2, S3, S4 and overwrites it.
		nw.filter = nil
		nw.heal()
		nw.isolate("n1")
		nw.restart("n5")
		for range 3 {
			if nw.node("n5").rn.r.role == RoleLeader {
				break
			}
			nw.campaign("n5")
		}
		if nw.node("n5").rn.r.role != RoleLeader {
			t.Fatalf("S5 not elected: %+v", nw.node("n5").rn.Status())
		}
		nw.tickAll(2)
		for _, id := range []string{"n2", "n3", "n4", "n5"} {
			if tm := nw.node(id).rn.r.log.termOrZero(idx); tm != 3 {
				t.Fatalf("%s holds term %d at %d, want S5's term-3 entry", id, tm, idx)
			}
			if c := nw.node(id).rn.r.log.committed; c < idx {
				t.Fatalf("%s did not commit S5's entries", id)
			}
		}
	})

	t.Run("e_committed_with_own_term_entry", func(t *testing.T) {
		nw, idx := setup(t)
		nw.tickAll(2)
		// S1 replicated its term-4 no-op to S2, S3, S4: committed with it.
		if c := nw.node("n1").rn.r.log.committed; c <= idx {
			t.Fatalf("S1 commit %d", c)
		}
		// S1 crashes; S5 cannot win any more.
		nw.heal()
		nw.isolate("n1")
		nw.restart("n5")
		for range 3 {
			nw.campaign("n5")
			if nw.node("n5").rn.r.role == RoleLeader {
				t.Fatal("S5 elected over a committed entry")
			}
		}
		for _, id := range []string{"n2", "n3", "n4"} {
			if tm := nw.node(id).rn.r.log.termOrZero(idx); tm != 2 {
				t.Fatalf("%s lost the committed entry", id)
			}
		}
	})
}

// §5.4.2: a leader never commits an entry of an earlier term by counting
// replicas, only through an entry of its own term.
func TestSafety_5_4_2_CommitOnlyCurrentTermByCounting(t *testing.T) {
	rn, st := newNodeWithLog(t, "n1", ids(3), []uint64{1, 2}, 2)
	_ = rn.Campaign()
	_ = rn.Step(Message{Type: MsgVoteResp, From: "n2", To: "n1", Term: 3})
	if rn.r.role != RoleLeader {
		t.Fatal("not leader")
	}
	persist(t, rn, st) // the no-op (3, term 3) is durable
	_ = rn.Step(Message{Type: MsgAppResp, From: "n2", To: "n1", Term: 3, Index: 2})
	if rn.r.log.committed >= 2 {
		t.Fatalf("committed the term-2 entry by counting: commit %d", rn.r.log.committed)
	}
	_ = rn.Step(Message{Type: MsgAppResp, From: "n2", To: "n1", Term: 3, Index: 3})
	if rn.r.log.committed != 3 {
		t.Fatalf("commit %d, want 3", rn.r.log.committed)
	}
}

// §9.6 (pre-vote): a node partitioned away does not raise its term, and
// when it comes back it does not depose the leader.
func TestPreVote_9_6_PartitionedNodeDoesNotDisrupt(t *testing.T) {
	nw := newTestNet(t, 3, withPreVote)
	nw.campaign("n1")
	term := nw.node("n1").rn.r.term
	nw.isolate("n3")
	for range 100 {
		nw.node("n3").rn.Tick()
		nw.stabilize()
	}
	if got := nw.node("n3").rn.r.term; got != term {
		t.Fatalf("isolated node raised its term to %d", got)
	}
	if nw.node("n3").rn.r.role != RolePreCandidate {
		t.Fatalf("isolated node role %s", nw.node("n3").rn.r.role)
	}
	_ = nw.propose("n1", "while-partitioned")
	nw.heal()
	nw.tickAll(30)
	if nw.leader() != "n1" || nw.node("n1").rn.r.term != term {
		t.Fatalf("leader %q term %d after the node came back", nw.leader(), nw.node("n1").rn.r.term)
	}
	mustEqualLogs(t, nw)
}

// §9.6: a pre-vote is granted only to an up-to-date log and changes no
// term or vote.
func TestPreVote_9_6_GrantChangesNothing(t *testing.T) {
	rn, _ := newNodeWithLog(t, "n1", ids(3), []uint64{1, 2}, 2, withPreVote)
	_ = rn.Step(Message{Type: MsgPreVote, From: "n2", To: "n1", Term: 3, Index: 2, LogTerm: 2})
	resp := only(rn.Ready().Messages, MsgPreVoteResp)
	if len(resp) != 1 || resp[0].Reject || resp[0].Term != 3 {
		t.Fatalf("pre-vote: %+v", resp)
	}
	if rn.r.term != 2 || rn.r.vote != "" {
		t.Fatalf("pre-vote changed term/vote: %d %q", rn.r.term, rn.r.vote)
	}
	_ = rn.Step(Message{Type: MsgPreVote, From: "n3", To: "n1", Term: 3, Index: 1, LogTerm: 1})
	resp = only(rn.Ready().Messages, MsgPreVoteResp)
	if len(resp) != 1 || !resp[0].Reject {
		t.Fatalf("stale pre-vote granted: %+v", resp)
	}
}

// §6 (check-quorum): a leader that does not hear from a quorum for an
// election timeout steps down.
func TestCheckQuorum_6_LeaderStepsDownWithoutQuorum(t *testing.T) {
	nw := newTestNet(t, 3, withCheckQuorum)
	nw.campaign("n1")
	nw.isolate("n1")
	n := nw.node("n1")
	// The first check may still count the replies of the last period.
	for range 2*n.rn.r.electionTimeout + 1 {
		n.rn.Tick()
		nw.stabilize()
	}
	if n.rn.r.role == RoleLeader {
		t.Fatal("leader kept leading without a quorum")
	}
	if _, ok := n.rn.LeaseStartTick(); ok {
		t.Fatal("lease held after stepping down")
	}
}

// §6 (check-quorum): followers that heard from a live leader within the
// election timeout ignore vote requests, so a node returning with a higher
// term cannot depose a healthy leader.
func TestCheckQuorum_6_FollowersIgnoreVotesWhileLeaderLive(t *testing.T) {
	nw := newTestNet(t, 3, withCheckQuorum)
	nw.campaign("n1")
	term := nw.node("n1").rn.r.term
	nw.isolate("n3")
	for range 5 {
		nw.campaign("n3") // raises n3's term with no pre-vote
	}
	nw.heal()
	nw.campaign("n3")
	if nw.leader() != "n1" {
		t.Fatalf("leader %q: a vote request during the leader's lease deposed it", nw.leader())
	}
	if nw.node("n2").rn.r.vote != "n1" || nw.node("n2").rn.r.term != term {
		t.Fatalf("n2 voted: term %d vote %q", nw.node("n2").rn.r.term, nw.node("n2").rn.r.vote)
	}
	// The cluster converges: n3 learns it is behind or the leader steps up.
	nw.tickAll(40)
	if nw.leader() == "" {
		t.Fatal("no leader after healing")
	}
	_ = nw.propose(nw.leader(), "after")
	nw.tickAll(2)
	mustEqualLogs(t, nw)
}

// Guard: with CheckQuorum and a lower term message from a stale leader, a
// node replies with its term so that the stale leader steps down.
func TestCheckQuorum_6_StaleLeaderLearnsNewTerm(t *testing.T) {
	nw := newTestNet(t, 3, withCheckQuorum, withPreVote)
	nw.campaign("n1")
	nw.isolate("n1")
	for range 40 {
		nw.node("n2").rn.Tick()
		nw.node("n3").rn.Tick()
		nw.stabilize()
	}
	newLead := ""
	for _, id := range []string{"n2", "n3"} {
		if nw.node(id).rn.r.role == RoleLeader {
			newLead = id
		}
	}
	if newLead == "" {
		t.Fatal("the majority side elected no leader")
	}
	if nw.node("n1").rn.r.role != RoleLeader {
		t.Fatal("test needs n1 to still believe it leads")
	}
	nw.heal()
	nw.node("n1").rn.Tick() // heartbeat at the stale term
	nw.stabilize()
	if nw.node("n1").rn.r.role == RoleLeader {
		t.Fatal("stale leader did not step down")
	}
	nw.tickAll(3)
	if nw.leader() != newLead {
		t.Fatalf("leader %q, want %q", nw.leader(), newLead)
	}
}

// Thesis §10.2.1 and the Ready contract: the leader's AppendEntries and
// heartbeats may leave before its own fsync; a follower's acknowledgement
// (and every other reply) only after the follower's write is durable.
func TestPersistence_10_2_1_ReadyOrderingContract(t *testing.T) {
	nw := newTestNet(t, 3)
	nw.campaign("n1")
	l, f := nw.node("n1"), nw.node("n2")
	_ = l.rn.Propose([]byte("x"))
	rd := l.rn.Ready()
	if len(rd.Entries) != 1 || len(only(rd.MessagesBeforePersist, MsgApp)) != 2 || len(rd.Messages) != 0 {
		t.Fatalf("leader Ready: entries %d, before %+v, after %+v", len(rd.Entries), rd.MessagesBeforePersist, rd.Messages)
	}
	for _, m := range only(rd.MessagesBeforePersist, MsgApp) {
		if m.To == "n2" {
			_ = f.rn.Step(m)
		}
	}
	frd := f.rn.Ready()
	if len(frd.Entries) != 1 || len(frd.MessagesBeforePersist) != 0 || len(only(frd.Messages, MsgAppResp)) != 1 || !frd.MustSync {
		t.Fatalf("follower Ready: entries %d, before %+v, after %+v", len(frd.Entries), frd.MessagesBeforePersist, frd.Messages)
	}
	// A crash before persisting loses the entry and the ack together.
	if last, _ := f.st.LastIndex(); last != l.rn.r.log.lastIndex()-1 {
		t.Fatalf("follower stored %d before Advance", last)
	}
}

// §5.2: a candidate that neither wins nor loses (split vote) times out and
// starts a new election with a higher term.
func TestLeaderElection_5_2_SplitVoteStartsNewElection(t *testing.T) {
	rn, _ := newNodeWithLog(t, "n1", ids(3), nil, 0)
	_ = rn.Campaign()
	term := rn.r.term
	for range 2 * rn.r.electionTimeout {
		rn.Tick()
	}
	if rn.r.role != RoleCandidate || rn.r.term <= term {
		t.Fatalf("role %s term %d (was %d)", rn.r.role, rn.r.term, term)
	}
}

// §5.5: AppendEntries is idempotent: a follower that receives the same
// request twice (a retry after a crash) acknowledges it twice, unchanged.
func TestFollowerCrash_5_5_AppendEntriesIdempotent(t *testing.T) {
	rn, st := newNodeWithLog(t, "n2", ids(3), []uint64{1}, 1)
	m := Message{Type: MsgApp, From: "n1", To: "n2", Term: 2, Index: 1, LogTerm: 1, Commit: 1,
		Entries: []Entry{{Index: 2, Term: 2, Data: []byte("a")}, {Index: 3, Term: 2, Data: []byte("b")}}}
	for i := range 2 {
		_ = rn.Step(m)
		_, after, _ := persist(t, rn, st)
		acks := only(after, MsgAppResp)
		if len(acks) != 1 || acks[0].Reject || acks[0].Index != 3 {
			t.Fatalf("delivery %d: %+v", i, acks)
		}
	}
	if l := logOf(t, rn); len(l) != 3 {
		t.Fatalf("log %+v", l)
	}
}

// §5.2: only a leader's message or a granted vote resets the election
// timer. Candidates that cannot win (shorter logs) must not keep a node
// with a longer timeout and the best log from ever campaigning.
func TestLeaderElection_5_2_RejectedCandidatesDoNotResetTimer(t *testing.T) {
	nw := &testNet{t: t, nodes: map[string]*testNode{}, cut: map[[2]string]bool{}}
	for _, c := range []struct {
		id    string
		terms []uint64
		et    int
	}{{"n1", []uint64{1, 1, 2}, 20}, {"n2", []uint64{1, 1}, 10}, {"n3", []uint64{1, 1}, 10}, {"n4", []uint64{1, 1}, 10}} {
		rn, st := newNodeWithLog(t, c.id, ids(4), c.terms, 2, func(cfg *Config) { cfg.ElectionTick = c.et })
		nw.nodes[c.id] = &testNode{id: c.id, rn: rn, st: st}
		nw.order = append(nw.order, c.id)
	}
	nw.isolate("n4") // n2 and n3 alone are not a quorum of 4
	for range 200 {
		nw.tickAll(1)
		if nw.leader() != "" {
			break
		}
	}
	if nw.leader() != "n1" {
		t.Fatalf("leader %q after 200 ticks (n1 has the best log)", nw.leader())
	}
}

// §5.4.3 (leader completeness): an entry committed in a term is in the log
// of every leader of a later term: a node without it cannot be elected.
func TestSafety_5_4_3_LeaderCompleteness(t *testing.T) {
	nw := newTestNet(t, 5)
	nw.campaign("n1")
	nw.isolate("n4")
	nw.isolate("n5")
	_ = nw.propose("n1", "committed")
	idx := nw.node("n1").rn.r.log.lastIndex()
	if nw.node("n1").rn.r.log.committed < idx {
		t.Fatal("setup: not committed")
	}
	nw.heal()
	nw.isolate("n1")
	for range 3 {
		nw.campaign("n4")
		nw.campaign("n5")
	}
	for _, id := range []string{"n4", "n5"} {
		if nw.node(id).rn.r.role == RoleLeader {
			t.Fatalf("%s, lacking committed entry %d, was elected", id, idx)
		}
	}
	nw.campaign("n2")
	if nw.leader() != "n2" {
		nw.campaign("n2")
	}
	nw.tickAll(2)
	for _, id := range []string{"n2", "n3", "n4", "n5"} {
		if got := dataOf(logOf(t, nw.node(id).rn)); len(got) != 1 || got[0] != "committed" {
			t.Fatalf("%s log data %v", id, got)
		}
	}
}
