package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
)

// transferContext marks MsgVote sent because of MsgTimeoutNow (a
// leadership transfer): followers with a live leader do not ignore it.
var transferContext = []byte("raftsql-transfer")

// campaignType is why a node starts an election.
type campaignType uint8

const (
	campaignPreElection campaignType = iota
	campaignElection
	campaignTransfer
)

type stepFunc func(r *raft, m Message) error

// confAt is the configuration that takes effect at a log index.
type confAt struct {
	index uint64
	conf  ConfState
}

// readReq is a read-index request waiting for leadership confirmation.
type readReq struct {
	index uint64 // commit index when the request arrived
	round uint64 // heartbeat round whose quorum ack confirms it
	from  string // r.id for local requests
	ctx   []byte
}

// roundTick records when a heartbeat round was sent.
type roundTick struct {
	round, tick uint64
}

const maxRoundTicks = 1024

// raft is the protocol state machine. All of it runs on the caller's
// goroutine; it performs no I/O.
type raft struct {
	id     string
	term   uint64
	vote   string
	lead   string
	role   Role
	log    *raftLog
	logger *slog.Logger
	rand   *rand.Rand

	// conf is the configuration of the last conf entry in the log (it takes
	// effect on append). confHist[0] is a configuration at or below commit;
	// later elements are conf entries above it, so a truncation can revert.
	conf     ConfState
	confHist []confAt

	prs   map[string]*progress // leader only; includes itself if a member
	votes map[string]bool

	msgs       []Message // sent after the Ready is persisted
	msgsBefore []Message // leader's MsgApp/MsgHeartbeat: sent at once

	electionElapsed           int
	heartbeatElapsed          int
	electionTimeout           int
	heartbeatTimeout          int
	randomizedElectionTimeout int
	checkQuorum               bool
	preVote                   bool
	maxMsgSize                uint64
	maxInflight               int

	// pendingConfIndex: a conf change may be proposed only once commit has
	// reached it (the leader's no-op, then each conf entry).
	pendingConfIndex uint64
	leadTransferee   string

	readStates   []ReadState
	pendingReads []Message // leader: waiting for the first commit of its term
	readQueue    []readReq
	readRound    uint64 // last heartbeat round broadcast
	termRound    uint64 // first round of the current leadership
	roundUnsent  bool   // the round readRound is still in r.msgsBefore
	roundTicks   []roundTick
	leaseRound   uint64 // newest round acked by a quorum this term
	leaseTick    uint64
	hasLease     bool
	// bcastPending: new entries or a new commit index await a broadcast
	// (deferred to the next Ready so that one MsgApp carries a batch).
	bcastPending bool
	// timeoutNowSent: a MsgTimeoutNow went out in the current transfer.
	timeoutNowSent bool
	// leaseBarrier: no lease until commit reaches it (see abortTransfer).
	leaseBarrier uint64

	tick    uint64 // ticks since creation
	snapKey SnapshotMeta

	step   stepFunc
	tickFn func()
}

func newRaft(c *Config) (*raft, error) {
	if c.ID == "" {
		return nil, errors.New("consensus: Config.ID is empty")
	}
	if c.HeartbeatTick <= 0 {
		return nil, errors.New("consensus: Config.HeartbeatTick must be > 0")
	}
	if c.ElectionTick <= c.HeartbeatTick {
		return nil, errors.New("consensus: Config.ElectionTick must be > HeartbeatTick")
	}
	if c.Storage == nil {
		return nil, errors.New("consensus: Config.Storage is nil")
	}
	maxMsg := c.MaxSizePerMsg
	if maxMsg == 0 {
		maxMsg = 1 << 20
	}
	inflight := c.MaxInflightMsgs
	if inflight <= 0 {
		inflight = 256
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rnd := c.Rand
	if rnd == nil {
		// Deterministic per ID; a driver should pass its own source.
		var seed uint64 = 14695981039346656037
		for i := 0; i < len(c.ID); i++ {
			seed = (seed ^ uint64(c.ID[i])) * 1099511628211
		}
		rnd = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	}
	lg, err := newRaftLog(c.Storage, max(maxMsg, 16<<20))
	if err != nil {
		return nil, err
	}
	hs, _, err := c.Storage.InitialState()
	if err != nil {
		return nil, fmt.Errorf("consensus: storage initial state: %w", err)
	}
	r := &raft{
		id:               c.ID,
		log:              lg,
		logger:           logger.With("raft", c.ID),
		rand:             rnd,
		electionTimeout:  c.ElectionTick,
		heartbeatTimeout: c.HeartbeatTick,
		checkQuorum:      c.CheckQuorum,
		preVote:          c.PreVote,
		maxMsgSize:       maxMsg,
		maxInflight:      inflight,
	}
	last := lg.lastIndex()
	if hs.Commit > last {
		return nil, fmt.Errorf("consensus: persisted commit %d is past last index %d", hs.Commit, last)
	}
	if c.Applied > last {
		return nil, fmt.Errorf("consensus: Config.Applied %d is past last index %d", c.Applied, last)
	}
	// The store may lag on Commit; whatever was applied was committed.
	lg.committed = max(lg.committed, hs.Commit, c.Applied)
	if c.Applied > lg.applied {
		lg.applied, lg.applying = c.Applied, c.Applied
	}
	if err := r.loadConf(); err != nil {
		return nil, err
	}
	r.becomeFollower(hs.Term, "")
	r.vote = hs.Vote
	r.logger.Debug("raft created", "term", r.term, "vote", r.vote, "commit", lg.committed,
		"applied", lg.applied, "last", last, "conf", r.conf.String())
	return r, nil
}

// loadConf rebuilds the configuration history from the snapshot and the
// conf entries of the log.
func (r *raft) loadConf() error {
	snap, err := r.log.storage.Snapshot()
	if err != nil {
		return fmt.Errorf("consensus: storage snapshot: %w", err)
	}
	r.snapKey = snap
	cs := snap.Conf.clone()
	hist := []confAt{{index: snap.Index, conf: cs}}
	first, last := r.log.firstIndex(), r.log.lastIndex()
	for lo := first; lo <= last; {
		ents, err := r.log.slice(lo, last+1, 4<<20)
		if err != nil {
			return fmt.Errorf("consensus: reading log for configuration: %w", err)
		}
		for _, e := range ents {
			if e.Type != EntryConfChange {
				continue
			}
			next, err := applyConfEntries(cs, []Entry{e})
			if err != nil {
				return fmt.Errorf("consensus: log holds a bad configuration entry: %w", err)
			}
			cs = next
			hist = append(hist, confAt{index: e.Index, conf: cs})
		}
		lo = ents[len(ents)-1].Index + 1
	}
	r.confHist = hist
	r.conf = cs
	r.pruneConfHist()
	return nil
}

func (r *raft) pruneConfHist() {
	n := 0
	for n+1 < len(r.confHist) && r.confHist[n+1].index <= r.log.committed {
		n++
	}
	if n > 0 {
		r.confHist = slices.Delete(r.confHist, 0, n)
	}
}

func (r *raft) hardState() HardState {
	return HardState{Term: r.term, Vote: r.vote, Commit: r.log.committed}
}

func (r *raft) softState() SoftState { return SoftState{Lead: r.lead, Role: r.role} }

// promotable reports whether this node may campaign: it is a voter.
func (r *raft) promotable() bool { return r.conf.isVoter(r.id) }

func (r *raft) isSingleVoter() bool {
	v := r.conf.voters()
	return len(v) == 1 && v[0] == r.id
}

// ---- sending ----

func (r *raft) send(m Message) {
	if m.From == "" {
		m.From = r.id
	}
	switch m.Type {
	case MsgVote, MsgVoteResp, MsgPreVote, MsgPreVoteResp:
		if m.Term == 0 {
			panic(fmt.Sprintf("consensus: %s sent without term", m.Type))
		}
	case MsgProp, MsgReadIndex, MsgTransferLeader:
		// Forwarded requests carry no term.
	default:
		m.Term = r.term
	}
	if m.Type == MsgApp || m.Type == MsgHeartbeat {
		r.msgsBefore = append(r.msgsBefore, m)
		return
	}
	r.msgs = append(r.msgs, m)
}

// sendAppend sends what pr needs; with sendIfEmpty it sends a MsgApp
// without entries (to carry commit) too. Returns whether it sent.
func (r *raft) sendAppend(to string, sendIfEmpty bool) bool {
	pr := r.prs[to]
	if pr == nil || pr.isPaused() {
		return false
	}
	prevIndex := pr.next - 1
	prevTerm, errT := r.log.term(prevIndex)
	var ents []Entry
	var errE error
	if last := r.log.lastIndex(); pr.next <= last {
		ents, errE = r.log.slice(pr.next, last+1, r.maxMsgSize)
	}
	if len(ents) == 0 && errE == nil && errT == nil && !sendIfEmpty {
		return false
	}
	if errT != nil || errE != nil {
		if !errors.Is(errT, ErrCompacted) && !errors.Is(errE, ErrCompacted) {
			r.logger.Error("cannot read log for replication", "to", to, "next", pr.next, "err", errors.Join(errT, errE))
			return false
		}
		return r.sendSnapshot(to, pr)
	}
	r.send(Message{Type: MsgApp, To: to, Index: prevIndex, LogTerm: prevTerm, Entries: ents, Commit: r.log.committed})
	switch pr.state {
	case stateReplicate:
		if n := len(ents); n > 0 {
			last := ents[n-1].Index
			pr.next = last + 1
			pr.inflights.add(last)
		}
	case stateProbe:
		pr.probeSent = true
	}
	return true
}

func (r *raft) sendSnapshot(to string, pr *progress) bool {
	if !pr.recentActive {
		return false
	}
	snap, err := r.log.storage.Snapshot()
	if err != nil {
		r.logger.Error("cannot read snapshot", "err", err)
		return false
	}
	if r.snapKey.Index > snap.Index && r.snapKey.Index <= r.log.committed {
		snap = r.snapKey
	}
	if snap.Index == 0 || snap.Index+1 < r.log.firstIndex() {
		r.logger.Warn("peer needs a snapshot but none is available", "to", to, "next", pr.next)
		return false
	}
	s := snap
	s.Conf = snap.Conf.clone()
	r.send(Message{Type: MsgSnap, To: to, Snapshot: &s})
	pr.becomeSnapshot(s.Index)
	r.logger.Info("sending snapshot", "to", to, "index", s.Index, "term", s.Term)
	return true
}

// probeSnapshot sends a peer in stateSnapshot an empty MsgApp at the
// pending snapshot's index (or at the leader's first index - 1 if it has
// compacted past it, so that the peer could continue from the log). A
// peer that installed the snapshot, or is past it, accepts it (handleAppend
// answers at least its commit index), and handleAppResp moves it to
// replicate without waiting for the transfer's verdict, which may come
// only when the transport gives up. A peer without the snapshot rejects
// it, and a rejection in stateSnapshot changes nothing.
func (r *raft) probeSnapshot(to string, pr *progress) {
	i := max(pr.pendingSnapshot, r.log.firstIndex()-1)
	t, err := r.log.term(i)
	if err != nil {
		return
	}
	r.send(Message{Type: MsgApp, To: to, Index: i, LogTerm: t, Commit: r.log.committed})
}

func (r *raft) forEachPeer(f func(id string, pr *progress)) {
	// Deterministic order: members are sorted by ID.
	for _, m := range r.conf.Members {
		if m.ID == r.id {
			continue
		}
		if pr := r.prs[m.ID]; pr != nil {
			f(m.ID, pr)
		}
	}
}

// flushAppends sends the MsgApps deferred by bcastPending: all proposals
// and commit advances of one driver iteration go out as one MsgApp per
// follower (called when the driver asks for a Ready).
func (r *raft) flushAppends() {
	if r.bcastPending {
		r.bcastPending = false
		if r.role == RoleLeader {
			r.bcastAppend()
		}
	}
}

func (r *raft) bcastAppend() {
	r.forEachPeer(func(id string, _ *progress) { r.sendAppend(id, true) })
}

// bcastHeartbeat starts a new heartbeat round.
func (r *raft) bcastHeartbeat() {
	r.readRound++
	r.roundUnsent = true
	r.roundTicks = append(r.roundTicks, roundTick{round: r.readRound, tick: r.tick})
	if len(r.roundTicks) > maxRoundTicks {
		r.roundTicks = slices.Delete(r.roundTicks, 0, len(r.roundTicks)-maxRoundTicks)
	}
	ctx := binary.BigEndian.AppendUint64(nil, r.readRound)
	r.forEachPeer(func(id string, pr *progress) {
		r.send(Message{Type: MsgHeartbeat, To: id, Commit: min(pr.match, r.log.committed), Context: ctx})
	})
	// A single voter confirms its own rounds.
	r.advanceLease()
}

// ---- role changes ----

func (r *raft) reset(term uint64) {
	if r.term != term {
		r.term = term
		r.vote = ""
	}
	r.lead = ""
	r.electionElapsed = 0
	r.heartbeatElapsed = 0
	r.randomizedElectionTimeout = r.electionTimeout + r.rand.IntN(r.electionTimeout)
	r.leadTransferee = ""
	r.votes = map[string]bool{}
	r.prs = nil
	r.pendingConfIndex = 0
	r.pendingReads = nil
	r.readQueue = nil
	r.hasLease = false
	r.leaseRound = 0
	r.timeoutNowSent = false
	r.leaseBarrier = 0
}

func (r *raft) becomeFollower(term uint64, lead string) {
	r.step = stepFollower
	r.tickFn = r.tickElection
	r.reset(term)
	r.lead = lead
	r.role = RoleFollower
	r.logger.Debug("became follower", "term", term, "lead", lead)
}

func (r *raft) becomeCandidate() {
	if r.role == RoleLeader {
		panic("consensus: leader cannot become candidate")
	}
	r.step = stepCandidate
	r.tickFn = r.tickElection
	r.reset(r.term + 1)
	r.vote = r.id
	r.role = RoleCandidate
	r.logger.Debug("became candidate", "term", r.term)
}

func (r *raft) becomePreCandidate() {
	if r.role == RoleLeader {
		panic("consensus: leader cannot become pre-candidate")
	}
	// Pre-candidacy changes neither the term nor the vote.
	r.step = stepCandidate
	r.tickFn = r.tickElection
	r.votes = map[string]bool{}
	r.lead = ""
	r.role = RolePreCandidate
	r.logger.Debug("became pre-candidate", "term", r.term)
}

func (r *raft) becomeLeader() {
	if r.role == RoleFollower {
		panic("consensus: follower cannot become leader")
	}
	r.step = stepLeader
	r.tickFn = r.tickHeartbeat
	r.reset(r.term)
	r.lead = r.id
	r.role = RoleLeader
	r.prs = map[string]*progress{}
	last := r.log.lastIndex()
	for _, m := range r.conf.Members {
		pr := newProgress(last+1, r.maxInflight, !m.Voter)
		if m.ID == r.id {
			pr.match = r.log.durableIndex()
			pr.next = last + 1
			pr.becomeReplicateKeep()
			pr.recentActive = true
		}
		r.prs[m.ID] = pr
	}
	r.termRound = r.readRound + 1
	r.roundTicks = r.roundTicks[:0]
	// The no-op of the new term; no conf change until it commits.
	r.appendEntries([]Entry{{Type: EntryNormal}})
	r.pendingConfIndex = r.log.lastIndex()
	r.logger.Info("became leader", "term", r.term, "last", r.log.lastIndex())
}

// becomeReplicateKeep puts the leader's own progress in replicate state
// without touching next.
func (pr *progress) becomeReplicateKeep() {
	n := pr.next
	pr.resetState(stateReplicate)
	pr.next = n
}

// ---- ticking ----

func (r *raft) tickElection() {
	r.electionElapsed++
	if r.promotable() && r.electionElapsed >= r.randomizedElectionTimeout {
		r.electionElapsed = 0
		_ = r.Step(Message{Type: MsgHup, From: r.id})
	}
}

func (r *raft) tickHeartbeat() {
	r.heartbeatElapsed++
	r.electionElapsed++
	if r.electionElapsed >= r.electionTimeout {
		r.electionElapsed = 0
		if r.checkQuorum && !r.quorumActive() {
			r.logger.Warn("leader lost contact with a quorum; stepping down", "term", r.term)
			r.becomeFollower(r.term, "")
			return
		}
		if r.leadTransferee != "" {
			r.logger.Info("leadership transfer timed out", "to", r.leadTransferee)
			r.abortTransfer()
		}
	}
	if r.role != RoleLeader {
		return
	}
	if r.heartbeatElapsed >= r.heartbeatTimeout {
		r.heartbeatElapsed = 0
		r.bcastHeartbeat()
	}
}

// quorumActive reports whether a quorum of voters was heard from during
// the last period, and starts a new period.
func (r *raft) quorumActive() bool {
	active, voters := 0, 0
	for _, m := range r.conf.Members {
		pr := r.prs[m.ID]
		if pr == nil {
			continue
		}
		if m.Voter {
			voters++
			if m.ID == r.id || pr.recentActive {
				active++
			}
		}
		if m.ID != r.id {
			pr.recentActive = false
		}
	}
	return voters > 0 && active >= voters/2+1
}

// ---- elections ----

func (r *raft) hup(t campaignType) {
	if r.role == RoleLeader {
		return
	}
	if !r.promotable() {
		r.logger.Debug("not a voter; not campaigning")
		return
	}
	r.campaign(t)
}

func (r *raft) campaign(t campaignType) {
	var term uint64
	var voteMsg MessageType
	if t == campaignPreElection {
		r.becomePreCandidate()
		voteMsg = MsgPreVote
		term = r.term + 1
	} else {
		r.becomeCandidate()
		voteMsg = MsgVote
		term = r.term
	}
	if won, _ := r.poll(r.id, true); won {
		if t == campaignPreElection {
			r.campaign(campaignElection)
		} else {
			r.becomeLeader()
		}
		return
	}
	var ctx []byte
	if t == campaignTransfer {
		ctx = transferContext
	}
	for _, id := range r.conf.voters() {
		if id == r.id {
			continue
		}
		r.send(Message{Type: voteMsg, To: id, Term: term, Index: r.log.lastIndex(), LogTerm: r.log.lastTerm(), Context: ctx})
	}
}

// poll records a vote and reports whether the election is won or lost.
func (r *raft) poll(id string, granted bool) (won, lost bool) {
	if _, ok := r.votes[id]; !ok {
		r.votes[id] = granted
	}
	yes, no := 0, 0
	voters := r.conf.voters()
	for _, v := range voters {
		g, ok := r.votes[v]
		if !ok {
			continue
		}
		if g {
			yes++
		} else {
			no++
		}
	}
	q := len(voters)/2 + 1
	return yes >= q, no > len(voters)-q
}

func voteRespType(t MessageType) MessageType {
	if t == MsgPreVote {
		return MsgPreVoteResp
	}
	return MsgVoteResp
}

// ---- Step ----

// Step is the single entry point of every input.
func (r *raft) Step(m Message) error {
	switch {
	case m.Term == 0:
		// local or forwarded message
	case m.Term > r.term:
		if m.Type == MsgVote || m.Type == MsgPreVote {
			force := string(m.Context) == string(transferContext)
			// A node that just started may have acknowledged a leader's
			// heartbeat before it restarted: it honours that leader's lease
			// for its first election timeout too.
			justStarted := r.tick < uint64(r.electionTimeout)
			inLease := r.checkQuorum && r.electionElapsed < r.electionTimeout && (r.lead != "" || justStarted)
			if !force && inLease {
				r.logger.Debug("ignoring vote request: a leader is live", "type", m.Type, "from", m.From, "term", m.Term)
				return nil
			}
		}
		switch {
		case m.Type == MsgPreVote:
			// Never change term on a pre-vote request.
		case m.Type == MsgPreVoteResp && !m.Reject:
			// The term advances only when the pre-election is won.
		default:
			if m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap {
				r.becomeFollower(m.Term, m.From)
			} else {
				// Only a leader's message or a granted vote resets the
				// election timer (§5.2): otherwise candidates that cannot
				// win keep a node with a longer timeout (and the best
				// log) from ever campaigning.
				elapsed, wasLeader := r.electionElapsed, r.role == RoleLeader
				r.becomeFollower(m.Term, "")
				if !wasLeader {
					r.electionElapsed = elapsed
				}
			}
		}
	case m.Term < r.term:
		if (r.checkQuorum || r.preVote) && (m.Type == MsgHeartbeat || m.Type == MsgApp) {
			// A stale leader (or we advanced our term while partitioned):
			// tell it our term so that it steps down.
			r.send(Message{Type: MsgAppResp, To: m.From})
		} else if m.Type == MsgPreVote {
			r.send(Message{Type: MsgPreVoteResp, To: m.From, Term: r.term, Reject: true})
		}
		return nil
	}

	switch m.Type {
	case MsgHup:
		if r.preVote {
			r.hup(campaignPreElection)
		} else {
			r.hup(campaignElection)
		}
		return nil
	case MsgVote, MsgPreVote:
		canVote := r.vote == m.From ||
			(r.vote == "" && r.lead == "") ||
			(m.Type == MsgPreVote && m.Term > r.term)
		if canVote && r.log.isUpToDate(m.Index, m.LogTerm) {
			r.send(Message{Type: voteRespType(m.Type), To: m.From, Term: m.Term})
			if m.Type == MsgVote {
				r.electionElapsed = 0
				r.vote = m.From
			}
		} else {
			r.send(Message{Type: voteRespType(m.Type), To: m.From, Term: r.term, Reject: true})
		}
		return nil
	}
	return r.step(r, m)
}

// ---- leader ----

func stepLeader(r *raft, m Message) error {
	switch m.Type {
	case MsgBeat:
		r.bcastHeartbeat()
		return nil
	case MsgProp:
		return r.handlePropose(m)
	case MsgReadIndex:
		r.handleReadIndex(m)
		return nil
	case MsgTransferLeader:
		r.handleTransfer(transferTarget(m))
		return nil
	}
	pr := r.prs[m.From]
	if pr == nil || m.From == r.id {
		return nil
	}
	switch m.Type {
	case MsgAppResp:
		pr.recentActive = true
		r.handleAppResp(m, pr)
	case MsgHeartbeatResp:
		pr.recentActive = true
		pr.probeSent = false
		// The MsgApps that filled the window may all have been lost: free
		// one slot so that replication can find out.
		if pr.state == stateReplicate && pr.inflights.full() {
			pr.inflights.last = slices.Delete(pr.inflights.last, 0, 1)
		}
		if pr.state == stateSnapshot {
			// The transfer's verdict and the peer's reply may both have
			// been lost although it installed the snapshot: ask.
			r.probeSnapshot(m.From, pr)
		} else if pr.match < r.log.lastIndex() {
			// Even with nothing new to send: the MsgApps in flight may
			// have been lost, and an empty one finds that out.
			r.sendAppend(m.From, true)
		}
		if len(m.Context) == 8 {
			round := binary.BigEndian.Uint64(m.Context)
			if round >= r.termRound && round <= r.readRound && round > pr.ackedRound {
				pr.ackedRound = round
				r.advanceLease()
			}
		}
	case MsgSnapStatus:
		if pr.state != stateSnapshot {
			return nil
		}
		if m.Reject {
			pr.pendingSnapshot = 0
		}
		pr.becomeProbe()
		// Wait for a heartbeat reply before probing again.
		pr.probeSent = true
	case MsgUnreachable:
		if pr.state == stateReplicate {
			pr.becomeProbe()
		}
	}
	return nil
}

func transferTarget(m Message) string {
	if len(m.Context) > 0 {
		return string(m.Context)
	}
	return m.From
}

func (r *raft) handleAppResp(m Message, pr *progress) {
	if m.Reject && pr.state == stateSnapshot {
		// The peer does not hold the pending snapshot (yet), or this is
		// the reply to a MsgApp sent before it: the transfer goes on, and
		// only its verdict (MsgSnapStatus) may start another.
		return
	}
	if m.Reject {
		next := r.nextFromHint(m)
		if pr.maybeDecrTo(m.Index, next) {
			if pr.state == stateReplicate {
				pr.becomeProbe()
			}
			r.sendAppend(m.From, false)
		}
		return
	}
	if m.Index > r.log.lastIndex() {
		r.logger.Error("peer acknowledged entries we do not have", "from", m.From, "index", m.Index)
		return
	}
	oldPaused := pr.isPaused()
	if !pr.maybeUpdate(m.Index) {
		if oldPaused && !pr.isPaused() {
			r.sendAppend(m.From, false)
		}
		return
	}
	switch pr.state {
	case stateProbe:
		pr.becomeReplicate()
	case stateSnapshot:
		if pr.match >= pr.pendingSnapshot {
			pr.becomeProbe()
			pr.becomeReplicate()
		}
	case stateReplicate:
		pr.inflights.freeLE(m.Index)
	}
	if r.maybeCommit() {
		r.bcastPending = true
	}
	if r.role != RoleLeader {
		return
	}
	// Fill the pipeline.
	for r.sendAppend(m.From, false) {
	}
	if m.From == r.leadTransferee && pr.match == r.log.lastIndex() {
		r.sendTimeoutNow(m.From)
	}
}

// nextFromHint turns a rejection's hints (the follower's conflict term and
// the first index it holds of that term) into the next index to probe.
func (r *raft) nextFromHint(m Message) uint64 {
	if m.LogTerm == 0 {
		// The follower's log is shorter: RejectHint is its last index + 1.
		return max(m.RejectHint, 1)
	}
	// Find our last entry of the conflict term (terms ascend, so binary
	// search the prefix up to the rejected index).
	lo, hi := r.log.firstIndex()-1, min(m.Index, r.log.lastIndex())
	if lo > hi {
		return max(m.RejectHint, 1)
	}
	t, err := r.log.term(lo)
	if err != nil || t > m.LogTerm {
		return max(m.RejectHint, 1)
	}
	// invariant: term(lo) <= LogTerm; find the largest such index.
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		mt, err := r.log.term(mid)
		if err != nil {
			return max(m.RejectHint, 1)
		}
		if mt <= m.LogTerm {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if r.log.termOrZero(lo) == m.LogTerm {
		return lo + 1
	}
	return max(m.RejectHint, 1)
}

// sendTimeoutNow tells the transfer target to campaign now. Index is our
// last index: the target only acts on it while its log ends there.
func (r *raft) sendTimeoutNow(to string) {
	r.send(Message{Type: MsgTimeoutNow, To: to, Index: r.log.lastIndex()})
	r.timeoutNowSent = true
}

// abortTransfer gives up a leadership transfer. A MsgTimeoutNow already
// sent may still arrive, however late, and force an election that ignores
// leases. So the leader appends a no-op: a target holding it ignores the
// stale MsgTimeoutNow (its log moved past Index), and a target without it
// cannot win once it is committed (election restriction). The lease
// resumes only when that no-op is committed, with rounds sent after now.
func (r *raft) abortTransfer() {
	r.leadTransferee = ""
	r.termRound = r.readRound + 1
	if r.timeoutNowSent {
		r.timeoutNowSent = false
		r.appendEntries([]Entry{{Type: EntryNormal}})
		r.leaseBarrier = r.log.lastIndex()
		r.bcastPending = true
	}
}

func (r *raft) handleTransfer(target string) {
	pr := r.prs[target]
	if target == r.id || pr == nil || pr.learner {
		r.logger.Info("ignoring leadership transfer", "to", target)
		return
	}
	if r.leadTransferee == target {
		return
	}
	r.leadTransferee = target
	r.electionElapsed = 0
	r.hasLease = false
	r.logger.Info("transferring leadership", "to", target, "match", pr.match)
	if pr.match == r.log.lastIndex() {
		r.sendTimeoutNow(target)
	} else {
		r.sendAppend(target, true)
	}
}

func (r *raft) handlePropose(m Message) error {
	if len(m.Entries) == 0 {
		return fmt.Errorf("%w: empty proposal", ErrProposalDropped)
	}
	if r.prs[r.id] == nil {
		return fmt.Errorf("%w: leader is not a member", ErrProposalDropped)
	}
	if r.leadTransferee != "" {
		return fmt.Errorf("%w: leadership transfer to %s in progress", ErrProposalDropped, r.leadTransferee)
	}
	ents := make([]Entry, len(m.Entries))
	seenConf := false
	for i, e := range m.Entries {
		ents[i] = Entry{Type: e.Type, Data: e.Data}
		if e.Type != EntryConfChange {
			continue
		}
		// One change at a time, and only once the leader has committed an
		// entry of its term (pendingConfIndex starts at its no-op).
		if seenConf || r.pendingConfIndex > r.log.committed {
			return ErrConfChangeInProgress
		}
		seenConf = true
		cc, err := DecodeConfChange(e.Data)
		if err != nil {
			return err
		}
		if _, err := applyConfChange(r.conf, cc); err != nil {
			return err
		}
	}
	r.appendEntries(ents)
	r.bcastPending = true
	return nil
}

// appendEntries assigns term and index to ents and appends them (leader).
func (r *raft) appendEntries(ents []Entry) {
	last := r.log.lastIndex()
	for i := range ents {
		ents[i].Term = r.term
		ents[i].Index = last + 1 + uint64(i)
	}
	r.appendToLog(ents)
	// The leader's own progress advances only when the write is durable
	// (Advance). A single voter may still commit what is already durable.
	if r.maybeCommit() {
		r.bcastPending = true
	}
}

// appendToLog writes ents into the log and applies the configuration
// entries among them (a conf change takes effect when appended; a
// truncation reverts it).
func (r *raft) appendToLog(ents []Entry) {
	from := ents[0].Index
	reverted := false
	for len(r.confHist) > 1 && r.confHist[len(r.confHist)-1].index >= from {
		r.confHist = r.confHist[:len(r.confHist)-1]
		reverted = true
	}
	r.log.append(ents)
	cs := r.confHist[len(r.confHist)-1].conf
	changed := reverted
	for _, e := range ents {
		if e.Type != EntryConfChange {
			continue
		}
		cc, err := DecodeConfChange(e.Data)
		if err != nil {
			r.logger.Error("skipping undecodable configuration entry", "index", e.Index, "err", err)
			continue
		}
		next, err := applyConfChange(cs, cc)
		if err != nil {
			r.logger.Warn("skipping configuration entry that does not apply", "index", e.Index, "err", err)
			continue
		}
		cs = next
		r.confHist = append(r.confHist, confAt{index: e.Index, conf: cs})
		changed = true
		if r.role == RoleLeader {
			r.pendingConfIndex = e.Index
		}
	}
	if changed {
		r.setConf(cs)
	}
}

// setConf switches to configuration cs.
func (r *raft) setConf(cs ConfState) {
	r.logger.Info("configuration changed", "conf", cs.String())
	r.conf = cs
	if r.role != RoleLeader {
		if (r.role == RoleCandidate || r.role == RolePreCandidate) && !r.promotable() {
			r.becomeFollower(r.term, "")
		}
		return
	}
	last := r.log.lastIndex()
	prs := map[string]*progress{}
	for _, m := range cs.Members {
		pr := r.prs[m.ID]
		if pr == nil {
			pr = newProgress(last+1, r.maxInflight, !m.Voter)
			if m.ID == r.id {
				pr.match = r.log.durableIndex()
				pr.becomeReplicateKeep()
			}
			pr.recentActive = true
		}
		pr.learner = !m.Voter
		prs[m.ID] = pr
	}
	r.prs = prs
	if r.leadTransferee != "" && !cs.isVoter(r.leadTransferee) {
		r.abortTransfer()
	}
	// The quorum may have shrunk.
	if r.maybeCommit() {
		r.bcastPending = true
	}
	r.advanceLease()
}

// maybeCommit advances commit to the highest index stored on a quorum of
// voters, counting only entries of the current term (§5.4.2, Figure 8).
func (r *raft) maybeCommit() bool {
	if r.role != RoleLeader {
		return false
	}
	voters := r.conf.voters()
	matches := make([]uint64, 0, len(voters))
	for _, id := range voters {
		if pr := r.prs[id]; pr != nil {
			matches = append(matches, pr.match)
		} else {
			matches = append(matches, 0)
		}
	}
	idx := quorumIndex(matches)
	if idx <= r.log.committed {
		return false
	}
	if t, err := r.log.term(idx); err != nil || t != r.term {
		return false
	}
	hadTermCommit := r.committedInTerm()
	r.log.commitTo(idx)
	r.pruneConfHist()
	if !hadTermCommit && len(r.pendingReads) > 0 {
		reads := r.pendingReads
		r.pendingReads = nil
		for _, m := range reads {
			r.handleReadIndex(m)
		}
	}
	if !r.memberOrLearner() {
		// Our own removal is committed: stop leading.
		r.logger.Info("removed from the configuration; stepping down", "term", r.term)
		r.becomeFollower(r.term, "")
	}
	return true
}

func (r *raft) memberOrLearner() bool {
	_, ok := r.confHist[0].conf.find(r.id)
	return ok
}

func (r *raft) committedInTerm() bool {
	return r.log.termOrZero(r.log.committed) == r.term
}

// ---- read index and lease ----

func (r *raft) handleReadIndex(m Message) {
	if !r.committedInTerm() {
		r.pendingReads = append(r.pendingReads, m)
		return
	}
	req := readReq{index: r.log.committed, from: m.From, ctx: m.Context}
	if r.isSingleVoter() {
		r.answerRead(req)
		return
	}
	if !r.roundUnsent {
		r.bcastHeartbeat()
	}
	req.round = r.readRound
	r.readQueue = append(r.readQueue, req)
}

func (r *raft) answerRead(req readReq) {
	if req.from == r.id || req.from == "" {
		r.readStates = append(r.readStates, ReadState{Index: req.index, RequestCtx: req.ctx})
		return
	}
	r.send(Message{Type: MsgReadIndexResp, To: req.from, Index: req.index, Context: req.ctx})
}

// advanceLease recomputes the newest round acknowledged by a quorum and
// answers the reads it confirms.
func (r *raft) advanceLease() {
	if r.role != RoleLeader {
		return
	}
	voters := r.conf.voters()
	acks := make([]uint64, 0, len(voters))
	for _, id := range voters {
		switch pr := r.prs[id]; {
		case id == r.id:
			acks = append(acks, r.readRound)
		case pr != nil:
			acks = append(acks, pr.ackedRound)
		default:
			acks = append(acks, 0)
		}
	}
	q := quorumIndex(acks)
	if q < r.termRound || q <= r.leaseRound && r.hasLease {
		return
	}
	r.leaseRound = q
	r.hasLease = r.leadTransferee == ""
	// The send tick of the newest recorded round <= q (a lower bound).
	r.leaseTick = 0
	for i := len(r.roundTicks) - 1; i >= 0; i-- {
		if r.roundTicks[i].round <= q {
			r.leaseTick = r.roundTicks[i].tick
			break
		}
	}
	n := 0
	for n < len(r.readQueue) && r.readQueue[n].round <= q {
		r.answerRead(r.readQueue[n])
		n++
	}
	r.readQueue = slices.Delete(r.readQueue, 0, n)
}

func (r *raft) leaseStart() (uint64, bool) {
	if r.role != RoleLeader || !r.checkQuorum || r.leadTransferee != "" || r.timeoutNowSent ||
		r.log.committed < r.leaseBarrier {
		return 0, false
	}
	if r.isSingleVoter() {
		return r.tick, true
	}
	if !r.hasLease || r.leaseRound < r.termRound {
		return 0, false
	}
	return r.leaseTick, true
}

// ---- candidate ----

func stepCandidate(r *raft, m Message) error {
	myResp := MsgVoteResp
	if r.role == RolePreCandidate {
		myResp = MsgPreVoteResp
	}
	switch m.Type {
	case MsgProp:
		return fmt.Errorf("%w: no leader", ErrProposalDropped)
	case MsgApp:
		r.becomeFollower(m.Term, m.From)
		r.handleAppend(m)
	case MsgHeartbeat:
		r.becomeFollower(m.Term, m.From)
		r.handleHeartbeat(m)
	case MsgSnap:
		r.becomeFollower(m.Term, m.From)
		r.handleSnapshot(m)
	case myResp:
		won, lost := r.poll(m.From, !m.Reject)
		switch {
		case won:
			if r.role == RolePreCandidate {
				r.campaign(campaignElection)
			} else {
				r.becomeLeader()
				r.bcastAppend()
			}
		case lost:
			r.becomeFollower(r.term, "")
		}
	}
	return nil
}

// ---- follower ----

func stepFollower(r *raft, m Message) error {
	switch m.Type {
	case MsgProp:
		if r.lead == "" {
			return fmt.Errorf("%w: no leader", ErrProposalDropped)
		}
		m.To = r.lead
		m.From = r.id
		r.send(m)
	case MsgApp:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleAppend(m)
	case MsgHeartbeat:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleHeartbeat(m)
	case MsgSnap:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleSnapshot(m)
	case MsgTransferLeader:
		if r.lead == "" {
			r.logger.Info("no leader; dropping leadership transfer")
			return nil
		}
		r.send(Message{Type: MsgTransferLeader, To: r.lead, Context: []byte(transferTarget(m))})
	case MsgTimeoutNow:
		if r.log.lastIndex() != m.Index {
			// Stale: the leader appended after sending it (an abandoned
			// transfer), or our log is not the leader's.
			r.logger.Info("ignoring stale MsgTimeoutNow", "index", m.Index, "last", r.log.lastIndex())
			return nil
		}
		r.logger.Info("leadership transfer: campaigning now", "term", r.term)
		r.hup(campaignTransfer)
	case MsgReadIndex:
		if r.lead == "" {
			r.logger.Debug("no leader; dropping read index")
			return nil
		}
		r.send(Message{Type: MsgReadIndex, To: r.lead, Context: m.Context})
	case MsgReadIndexResp:
		r.readStates = append(r.readStates, ReadState{Index: m.Index, RequestCtx: m.Context})
	}
	return nil
}

func (r *raft) handleAppend(m Message) {
	if m.Index < r.log.committed {
		r.send(Message{Type: MsgAppResp, To: m.From, Index: r.log.committed})
		return
	}
	if !r.log.matchTerm(m.Index, m.LogTerm) {
		hintIndex, hintTerm := r.conflictHint(m.Index)
		r.send(Message{Type: MsgAppResp, To: m.From, Index: m.Index, Reject: true, RejectHint: hintIndex, LogTerm: hintTerm})
		return
	}
	lastNew := m.Index + uint64(len(m.Entries))
	if ci := r.log.findConflict(m.Entries); ci != 0 {
		if ci <= r.log.committed {
			r.logger.Error("leader sent a conflicting entry at or below commit; ignoring message",
				"index", ci, "commit", r.log.committed, "from", m.From)
			return
		}
		r.appendToLog(m.Entries[ci-(m.Index+1):])
	}
	r.log.commitTo(min(m.Commit, lastNew))
	r.pruneConfHist()
	r.send(Message{Type: MsgAppResp, To: m.From, Index: lastNew})
}

// conflictHint returns, for a rejected prevIndex, the follower's term there
// and the first index it holds of that term; or (lastIndex+1, 0) when the
// log is shorter.
func (r *raft) conflictHint(prev uint64) (uint64, uint64) {
	last := r.log.lastIndex()
	if prev > last {
		return last + 1, 0
	}
	t, err := r.log.term(prev)
	if err != nil {
		return r.log.committed + 1, 0
	}
	// Smallest index in (committed, prev] with term t; terms ascend.
	lo, hi := r.log.committed+1, prev
	for lo < hi {
		mid := lo + (hi-lo)/2
		if mt, err := r.log.term(mid); err == nil && mt >= t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, t
}

func (r *raft) handleHeartbeat(m Message) {
	if m.Commit > r.log.lastIndex() {
		r.logger.Error("heartbeat commit past our last index", "commit", m.Commit, "last", r.log.lastIndex())
	} else {
		r.log.commitTo(m.Commit)
		r.pruneConfHist()
	}
	r.send(Message{Type: MsgHeartbeatResp, To: m.From, Context: m.Context})
}

func (r *raft) handleSnapshot(m Message) {
	s := *m.Snapshot
	if s.Index <= r.log.committed {
		r.send(Message{Type: MsgAppResp, To: m.From, Index: r.log.committed})
		return
	}
	if r.log.matchTerm(s.Index, s.Term) {
		// We hold the snapshot's last entry: keep the log, just commit.
		r.log.commitTo(s.Index)
		r.pruneConfHist()
		r.send(Message{Type: MsgAppResp, To: m.From, Index: s.Index})
		return
	}
	r.logger.Info("installing snapshot", "index", s.Index, "term", s.Term)
	s.Conf = s.Conf.clone()
	r.log.restore(s)
	r.confHist = []confAt{{index: s.Index, conf: s.Conf}}
	r.setConf(s.Conf)
	r.send(Message{Type: MsgAppResp, To: m.From, Index: s.Index})
}

// onDurable is called when the driver reports entries durable.
func (r *raft) onDurable() {
	if r.role != RoleLeader {
		return
	}
	if pr := r.prs[r.id]; pr != nil && pr.maybeUpdate(r.log.durableIndex()) {
		if r.maybeCommit() {
			r.bcastPending = true
		}
	}
}
