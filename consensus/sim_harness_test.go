package consensus

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
)

// The simulation drives RawNodes over MemoryStorage through a simulated
// network with partitions, drops, duplicates, reordering and delays, and
// crashes that lose everything not yet persisted. After every step it
// checks the safety properties of Raft (see sim.check).

// simParams shape one schedule.
type simParams struct {
	nodes       int
	steps       int
	dropP       float64 // chance a message is lost
	dupP        float64 // chance a message is delivered twice
	maxDelay    int     // steps a message may wait
	crashP      float64 // per step: crash a random node
	midCrashP   float64 // per Ready: crash after sending MessagesBeforePersist
	restartP    float64 // per step: restart a random crashed node
	partP       float64 // per step: change partitions
	propP       float64 // per step: propose
	readP       float64 // per step: read index
	compactP    float64 // per step: a node snapshots and compacts its log
	confP       float64 // per step: propose a membership change
	transferP   float64 // per step: start a leadership transfer
	lazyCommit  bool    // the store may skip persisting HardState.Commit
	preVote     bool
	checkQuorum bool
	slowNode    bool // n1 has twice the election timeout (a far region)
	// leaseCheck: nodes tick together (no clock drift) and the checker
	// verifies that no leader of a newer term exists while a leader
	// holds a lease (lease = minimum election timeout - 1 tick).
	leaseCheck bool
	// snapAckLossP: chance that a delivered MsgSnap's verdict is lost
	// (the sender's transport reports the transfer failed only
	// simAckTimeout steps later) and the follower's reply to it is lost
	// too. The leader must not need the verdict to go on replicating.
	snapAckLossP float64
}

// simAckTimeout is how many steps (or healing rounds) after the transfer a
// lost verdict is reported: the transport's acknowledgement timeout.
const simAckTimeout = 300

// simSnapStallRounds bounds how many healing rounds a leader may keep a
// follower in snapshot state although the follower could continue from
// the leader's log (its commit is past the pending snapshot and the
// leader's first index - 1): well under simAckTimeout.
const simSnapStallRounds = 8

func randomParams(rng *rand.Rand, steps int) simParams {
	p := simParams{
		nodes:       3 + 2*rng.IntN(2),
		steps:       steps,
		dropP:       []float64{0, 0.02, 0.1}[rng.IntN(3)],
		dupP:        []float64{0, 0.02, 0.1}[rng.IntN(3)],
		maxDelay:    []int{0, 5, 30}[rng.IntN(3)],
		crashP:      []float64{0, 0.002, 0.01}[rng.IntN(3)],
		midCrashP:   []float64{0, 0.01, 0.05}[rng.IntN(3)],
		restartP:    0.02,
		partP:       []float64{0, 0.003, 0.01}[rng.IntN(3)],
		propP:       0.04,
		readP:       0.02,
		compactP:    []float64{0, 0.002, 0.01}[rng.IntN(3)],
		confP:       []float64{0, 0.002, 0.005}[rng.IntN(3)],
		transferP:   []float64{0, 0.001, 0.004}[rng.IntN(3)],
		lazyCommit:  rng.IntN(2) == 0,
		preVote:     rng.IntN(4) != 0,
		checkQuorum: rng.IntN(4) != 0,
		slowNode:    rng.IntN(3) == 0,
		leaseCheck:  rng.IntN(3) == 0,
		// Drawn last: the other parameters of a seed stay as they were.
		snapAckLossP: []float64{0, 0, 0.5, 1}[rng.IntN(4)],
	}
	if p.leaseCheck {
		p.checkQuorum = true
	}
	return p
}

type simSnap struct {
	index uint64
	state uint64
}

type simMsg struct {
	m    Message
	at   int
	snap *simSnap // data travelling with a MsgSnap
}

type simNode struct {
	id string
	rn *RawNode // nil while crashed
	st *MemoryStorage
	// Durable application state (like SQLite with its applied index).
	appliedIndex uint64
	state        uint64
	snap         simSnap            // latest local snapshot's data
	incoming     map[uint64]simSnap // snapshot data received, by index
	// Checker state about this node's log.
	ph         []uint64 // ph[i]: hash of the log prefix ending at index i
	recheck    uint64   // recompute ph from here (after restart)
	lastCommit uint64
	seed       uint64
	restarts   int
	joiner     bool // added later with empty storage: never bootstraps
}

type entryKey struct{ index, term uint64 }

// simVerdict is a transfer verdict the sender's transport reports late.
type simVerdict struct {
	from, to string
	rn       *RawNode // the sender's instance: a crash ends its transport
	at       int      // s.step at which it is reported
}

type sim struct {
	p     simParams
	seed  uint64
	rng   *rand.Rand
	nodes []*simNode
	byID  map[string]*simNode
	now   int
	step  int
	net   []simMsg
	cut   map[[2]string]bool
	logf  func(format string, args ...any)

	leaders      map[uint64]string
	seen         map[entryKey]uint64 // (index, term) -> prefix hash
	committed    map[uint64]uint64   // index -> prefix hash of the committed entry
	committedMax uint64
	stateAt      map[uint64]uint64 // index -> state machine hash after applying it
	readNeed     map[string]uint64 // read ctx -> max committed index when issued
	nextProp     int
	nextRead     int
	verdicts     []simVerdict
	dropReply    map[[2]string]bool // drop the next MsgAppResp from -> to
	snapStall    map[string]int     // healing rounds a follower waited in snapshot state
	stats        simStats
	err          error
}

type simStats struct {
	proposed, applied, reads, readsAnswered, elections, crashes, snapshots, confChanges, transfers, joins int
	// acksLost: delivered snapshots whose verdict and reply were lost;
	// stalls: after the heal, a leader held a follower that could continue
	// from its log in snapshot state (it must recover within
	// simSnapStallRounds).
	acksLost, stalls int
}

func newSim(seed uint64, p simParams, logf func(string, ...any)) *sim {
	s := &sim{
		p:         p,
		seed:      seed,
		rng:       rand.New(rand.NewPCG(seed, 0xdecafbad)),
		byID:      map[string]*simNode{},
		cut:       map[[2]string]bool{},
		logf:      logf,
		leaders:   map[uint64]string{},
		seen:      map[entryKey]uint64{},
		committed: map[uint64]uint64{},
		stateAt:   map[uint64]uint64{},
		readNeed:  map[string]uint64{},
		dropReply: map[[2]string]bool{},
		snapStall: map[string]int{},
	}
	all := ids(p.nodes)
	for i, id := range all {
		n := &simNode{id: id, st: NewMemoryStorage(), incoming: map[uint64]simSnap{}, seed: seed*31 + uint64(i)}
		s.nodes = append(s.nodes, n)
		s.byID[id] = n
		if err := s.start(n); err != nil {
			s.fail("start %s: %v", id, err)
			return s
		}
	}
	return s
}

func (s *sim) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("seed %d step %d: %s", s.seed, s.step, fmt.Sprintf(format, args...))
	}
}

func (s *sim) start(n *simNode) error {
	n.restarts++
	electionTick := 8
	if s.p.slowNode && n.id == "n1" {
		electionTick = 16
	}
	cfg := &Config{
		ID:              n.id,
		ElectionTick:    electionTick,
		HeartbeatTick:   2,
		Storage:         n.st,
		Applied:         n.appliedIndex,
		MaxSizePerMsg:   64,
		MaxInflightMsgs: 4,
		CheckQuorum:     s.p.checkQuorum,
		PreVote:         s.p.preVote,
		Rand:            rand.New(rand.NewPCG(n.seed, uint64(n.restarts))),
	}
	rn, err := NewRawNode(cfg)
	if err != nil {
		return err
	}
	if last, _ := n.st.LastIndex(); last == 0 && n.st.HardState().IsEmpty() && !n.joiner {
		// As a driver does: a node of the initial configuration whose
		// storage is empty (it never persisted the bootstrap) bootstraps.
		if err := rn.Bootstrap(members(ids(s.p.nodes)...)); err != nil {
			return err
		}
	}
	n.rn = rn
	n.recheck = 1
	n.lastCommit = 0
	n.incoming = map[uint64]simSnap{}
	return nil
}

func (s *sim) up() []*simNode {
	var out []*simNode
	for _, n := range s.nodes {
		if n.rn != nil {
			out = append(out, n)
		}
	}
	return out
}

func (s *sim) pick(ns []*simNode) *simNode {
	if len(ns) == 0 {
		return nil
	}
	return ns[s.rng.IntN(len(ns))]
}

func (s *sim) leader() *simNode {
	var best *simNode
	for _, n := range s.up() {
		if n.rn.r.role == RoleLeader && (best == nil || n.rn.r.term > best.rn.r.term) {
			best = n
		}
	}
	return best
}

// send puts msgs on the network, subject to partitions, drops and
// duplicates.
func (s *sim) send(from *simNode, msgs []Message) {
	for _, m := range msgs {
		if m.Type == MsgAppResp && s.dropReply[[2]string{m.From, m.To}] {
			delete(s.dropReply, [2]string{m.From, m.To})
			s.logf("drop %s %s->%s i%d (reply to a snapshot whose verdict is lost)", m.Type, m.From, m.To, m.Index)
			continue
		}
		sm := simMsg{m: m}
		if m.Type == MsgSnap {
			if from.snap.index == m.Snapshot.Index {
				d := from.snap
				sm.snap = &d
			}
		}
		if s.cut[[2]string{m.From, m.To}] || s.rng.Float64() < s.p.dropP {
			s.lost(sm)
			continue
		}
		copies := 1
		if s.rng.Float64() < s.p.dupP {
			copies = 2
		}
		for range copies {
			sm.at = s.now
			if s.p.maxDelay > 0 {
				sm.at += s.rng.IntN(s.p.maxDelay + 1)
			}
			s.net = append(s.net, sm)
		}
	}
}

// lost handles a message that will never arrive.
func (s *sim) lost(sm simMsg) {
	if sm.m.Type == MsgSnap {
		if from := s.byID[sm.m.From]; from != nil && from.rn != nil {
			from.rn.ReportSnapshot(sm.m.To, false)
		}
	}
}

func (s *sim) deliverOne() bool {
	var due []int
	for i, sm := range s.net {
		if sm.at <= s.now {
			due = append(due, i)
		}
	}
	if len(due) == 0 {
		return false
	}
	i := due[s.rng.IntN(len(due))]
	sm := s.net[i]
	s.net = slices.Delete(s.net, i, i+1)
	s.deliver(sm)
	return true
}

func (s *sim) deliver(sm simMsg) {
	to := s.byID[sm.m.To]
	if to == nil || to.rn == nil || s.cut[[2]string{sm.m.From, sm.m.To}] {
		s.lost(sm)
		return
	}
	if sm.m.Type == MsgSnap {
		if sm.snap == nil {
			s.lost(sm)
			return
		}
		to.incoming[sm.snap.index] = *sm.snap
	}
	s.logf("deliver %s %s->%s t%d i%d lt%d c%d n%d rej=%v hint=%d", sm.m.Type, sm.m.From, sm.m.To, sm.m.Term, sm.m.Index, sm.m.LogTerm, sm.m.Commit, len(sm.m.Entries), sm.m.Reject, sm.m.RejectHint)
	if err := to.rn.Step(sm.m); err != nil && !strings.Contains(err.Error(), "dropped") {
		s.fail("%s step %s: %v", to.id, sm.m.Type, err)
	}
	if sm.m.Type == MsgSnap {
		if from := s.byID[sm.m.From]; from != nil && from.rn != nil {
			if s.p.snapAckLossP > 0 && s.rng.Float64() < s.p.snapAckLossP {
				s.logf("verdict of snapshot %d %s->%s lost: reported failed at step %d", sm.m.Snapshot.Index, sm.m.From, sm.m.To, s.step+simAckTimeout)
				s.verdicts = append(s.verdicts, simVerdict{from: from.id, to: sm.m.To, rn: from.rn, at: s.step + simAckTimeout})
				s.dropReply[[2]string{sm.m.To, sm.m.From}] = true
				s.stats.acksLost++
			} else {
				from.rn.ReportSnapshot(sm.m.To, true)
			}
		}
	}
}

// reportDue reports the late verdicts that are due: the transport timed
// out waiting for the receiver's acknowledgement.
func (s *sim) reportDue() {
	n := 0
	for _, v := range s.verdicts {
		if v.at > s.step {
			s.verdicts[n] = v
			n++
			continue
		}
		if from := s.byID[v.from]; from.rn != nil && from.rn == v.rn {
			s.logf("late verdict: snapshot %s->%s failed", v.from, v.to)
			from.rn.ReportSnapshot(v.to, false)
		}
	}
	s.verdicts = s.verdicts[:n]
}

// checkSnapStall: after the heal, a leader does not keep a follower in
// snapshot state for more than simSnapStallRounds once the follower could
// continue from the leader's log, whether or not the transfer's verdict
// has come.
func (s *sim) checkSnapStall() {
	l := s.leader()
	if l == nil {
		return
	}
	r := l.rn.r
	r.forEachPeer(func(id string, pr *progress) {
		key := fmt.Sprintf("%s->%s@%d", l.id, id, r.term)
		f := s.byID[id]
		if pr.state != stateSnapshot || f == nil || f.rn == nil ||
			f.rn.r.log.committed < max(pr.pendingSnapshot, r.log.firstIndex()-1) {
			delete(s.snapStall, key)
			return
		}
		if s.snapStall[key] == 0 {
			s.stats.stalls++
		}
		s.snapStall[key]++
		if s.snapStall[key] > simSnapStallRounds {
			s.fail("liveness: leader %s keeps %s in snapshot state (pending %d, leader first index %d) for %d rounds after the heal although %s committed %d",
				l.id, id, pr.pendingSnapshot, r.log.firstIndex(), s.snapStall[key], id, f.rn.r.log.committed)
		}
	})
}

func entryHash(h uint64, e Entry) uint64 {
	f := fnv.New64a()
	var b [25]byte
	putU64 := func(off int, v uint64) {
		for i := range 8 {
			b[off+i] = byte(v >> (8 * i))
		}
	}
	putU64(0, h)
	putU64(8, e.Index)
	putU64(16, e.Term)
	b[24] = byte(e.Type)
	f.Write(b[:])
	f.Write(e.Data)
	return f.Sum64()
}

// processReady handles one Ready of n, following the ordering contract;
// the node may crash after sending MessagesBeforePersist.
func (s *sim) processReady(n *simNode) {
	rd := n.rn.Ready()
	s.send(n, rd.MessagesBeforePersist)
	if s.rng.Float64() < s.p.midCrashP && (len(rd.Entries) > 0 || !rd.HardState.IsEmpty()) {
		s.logf("%s crashes before persisting a Ready", n.id)
		s.crash(n)
		return
	}
	hs := rd.HardState
	if s.p.lazyCommit && !hs.IsEmpty() && s.rng.IntN(2) == 0 {
		// The store does not persist every Commit change.
		hs.Commit = n.st.HardState().Commit
	}
	if err := n.st.Save(hs, rd.Entries, rd.Snapshot); err != nil {
		s.fail("%s save: %v", n.id, err)
		return
	}
	if rd.Snapshot != nil {
		d, ok := n.incoming[rd.Snapshot.Index]
		if !ok {
			s.fail("%s must install snapshot %d but has no data for it", n.id, rd.Snapshot.Index)
			return
		}
		if want, ok := s.stateAt[d.index]; ok && want != d.state {
			s.fail("%s snapshot %d state differs", n.id, d.index)
		}
		n.appliedIndex, n.state = d.index, d.state
		n.snap = d
		s.stats.snapshots++
	}
	s.send(n, rd.Messages)
	for _, e := range rd.CommittedEntries {
		if e.Index != n.appliedIndex+1 {
			s.fail("%s applies %d after %d", n.id, e.Index, n.appliedIndex)
			return
		}
		n.state = entryHash(n.state, e)
		n.appliedIndex = e.Index
		if want, ok := s.stateAt[e.Index]; ok && want != n.state {
			s.fail("state machine safety: %s state at %d differs", n.id, e.Index)
		} else if !ok {
			s.stateAt[e.Index] = n.state
			s.stats.applied++
		}
	}
	for _, rs := range rd.ReadStates {
		need, ok := s.readNeed[string(rs.RequestCtx)]
		if !ok {
			s.fail("%s: read state for unknown request %q", n.id, rs.RequestCtx)
			continue
		}
		if rs.Index < need {
			s.fail("read %q at %s answered with index %d < %d committed before the request", rs.RequestCtx, n.id, rs.Index, need)
		}
		s.stats.readsAnswered++
	}
	n.rn.Advance(rd)
}

func (s *sim) crash(n *simNode) {
	n.rn = nil
	s.stats.crashes++
}

// addFresh starts a new node with a new ID and empty storage.
func (s *sim) addFresh() *simNode {
	id := fmt.Sprintf("n%d", len(s.nodes)+1)
	n := &simNode{id: id, st: NewMemoryStorage(), incoming: map[uint64]simSnap{}, seed: s.seed*31 + uint64(len(s.nodes)), joiner: true}
	s.nodes = append(s.nodes, n)
	s.byID[id] = n
	s.logf("new node %s with empty storage", id)
	if err := s.start(n); err != nil {
		s.fail("start %s: %v", id, err)
	}
	s.stats.joins++
	return n
}

func (s *sim) restart(n *simNode) {
	s.logf("restart %s (applied %d)", n.id, n.appliedIndex)
	if err := s.start(n); err != nil {
		s.fail("restart %s: %v", n.id, err)
	}
}

// ---- the checker ----

func (s *sim) check() {
	for _, n := range s.up() {
		r := n.rn.r
		if r.role == RoleLeader {
			if prev, ok := s.leaders[r.term]; !ok {
				s.leaders[r.term] = n.id
				s.stats.elections++
				s.checkLog(n)
				s.checkLeaderCompleteness(n)
			} else if prev != n.id {
				s.fail("election safety: %s and %s both lead term %d", prev, n.id, r.term)
			}
		}
		s.checkLog(n)
		s.checkCommit(n)
	}
	if s.p.leaseCheck {
		s.checkLeases()
	}
}

// simMinElectionTick is the smallest ElectionTick of any node: a lease may
// last no longer than that (minus the drift bound, here one tick).
const simMinElectionTick = 8

// checkLeases: while a leader's lease holds, no newer leader exists.
func (s *sim) checkLeases() {
	for _, l := range s.up() {
		start, ok := l.rn.LeaseStartTick()
		if !ok || l.rn.CurrentTick()+1 >= start+simMinElectionTick {
			continue
		}
		for _, o := range s.up() {
			if o != l && o.rn.r.role == RoleLeader && o.rn.r.term > l.rn.r.term {
				s.fail("lease: %s (term %d) holds a lease from tick %d at tick %d while %s leads term %d",
					l.id, l.rn.r.term, start, l.rn.CurrentTick(), o.id, o.rn.r.term)
			}
		}
	}
}

// checkLog recomputes the prefix hashes of n's changed log suffix; two
// entries with the same index and term must have the same prefix hash (log
// matching).
func (s *sim) checkLog(n *simNode) {
	l := n.rn.r.log
	from := l.changedFrom
	l.changedFrom = 0
	if n.recheck != 0 && (from == 0 || n.recheck < from) {
		from = n.recheck
	}
	n.recheck = 0
	if from == 0 {
		return
	}
	first, last := l.firstIndex(), l.lastIndex()
	from = max(from, first)
	if uint64(len(n.ph)) < last+1 {
		n.ph = append(n.ph, make([]uint64, last+1-uint64(len(n.ph)))...)
	}
	n.ph = n.ph[:last+1]
	base := from - 1
	if base > 0 && base == first-1 {
		t, err := l.term(base)
		if err != nil {
			s.fail("%s term(%d): %v", n.id, base, err)
			return
		}
		h, ok := s.seen[entryKey{base, t}]
		if !ok {
			s.fail("%s log starts after a snapshot at (%d,%d) that no log ever held", n.id, base, t)
			return
		}
		n.ph[base] = h
	}
	if from > last {
		return
	}
	ents, err := l.slice(from, last+1, 1<<62)
	if err != nil {
		s.fail("%s slice: %v", n.id, err)
		return
	}
	h := uint64(0)
	if base > 0 {
		h = n.ph[base]
	}
	for _, e := range ents {
		h = entryHash(h, e)
		n.ph[e.Index] = h
		k := entryKey{e.Index, e.Term}
		if prev, ok := s.seen[k]; ok && prev != h {
			s.fail("log matching: %s holds (%d,%d) with a different prefix", n.id, e.Index, e.Term)
			return
		}
		s.seen[k] = h
	}
}

// checkCommit records n's newly committed entries; no two nodes may commit
// different entries at one index.
func (s *sim) checkCommit(n *simNode) {
	l := n.rn.r.log
	c := l.committed
	if c <= n.lastCommit {
		return
	}
	lo := max(n.lastCommit+1, l.firstIndex())
	n.lastCommit = c
	for i := lo; i <= c; i++ {
		h := n.ph[i]
		if prev, ok := s.committed[i]; ok && prev != h {
			s.fail("state machine safety: %s commits a different entry at %d", n.id, i)
			return
		}
		s.committed[i] = h
		s.committedMax = max(s.committedMax, i)
	}
}

// checkLeaderCompleteness: a new leader holds every committed entry.
func (s *sim) checkLeaderCompleteness(n *simNode) {
	cm := s.committedMax
	if cm == 0 {
		return
	}
	l := n.rn.r.log
	if cm < l.firstIndex() {
		return // covered by its snapshot, which holds only committed entries
	}
	if cm > l.lastIndex() || n.ph[cm] != s.committed[cm] {
		s.fail("leader completeness: %s leads term %d without committed entry %d", n.id, n.rn.r.term, cm)
	}
}

// ---- the schedule ----

func (s *sim) run() error {
	for s.step = 0; s.step < s.p.steps && s.err == nil; s.step++ {
		s.now++
		s.reportDue()
		s.randomStep()
		s.check()
	}
	if s.err == nil {
		s.converge()
	}
	return s.err
}

func (s *sim) randomStep() {
	x := s.rng.Float64()
	p := s.p
	switch {
	case x < p.crashP:
		if n := s.pick(s.up()); n != nil && len(s.up()) > 1 {
			s.logf("crash %s", n.id)
			s.crash(n)
		}
	case x < p.crashP+p.restartP:
		var down []*simNode
		for _, n := range s.nodes {
			if n.rn == nil {
				down = append(down, n)
			}
		}
		if n := s.pick(down); n != nil {
			s.restart(n)
		}
	case x < p.crashP+p.restartP+p.partP:
		s.repartition()
	case x < p.crashP+p.restartP+p.partP+p.propP:
		if n := s.pick(s.up()); n != nil {
			s.nextProp++
			data := fmt.Sprintf("p%d", s.nextProp)
			err := n.rn.Propose([]byte(data))
			s.logf("propose %s at %s: %v", data, n.id, err)
			s.stats.proposed++
		}
	case x < p.crashP+p.restartP+p.partP+p.propP+p.readP:
		if n := s.pick(s.up()); n != nil {
			s.nextRead++
			ctx := fmt.Sprintf("r%d", s.nextRead)
			s.readNeed[ctx] = s.committedMax
			n.rn.ReadIndex([]byte(ctx))
			s.stats.reads++
		}
	case x < p.crashP+p.restartP+p.partP+p.propP+p.readP+p.compactP:
		s.compact()
	case x < p.crashP+p.restartP+p.partP+p.propP+p.readP+p.compactP+p.confP:
		s.confChange()
	case x < p.crashP+p.restartP+p.partP+p.propP+p.readP+p.compactP+p.confP+p.transferP:
		if l := s.leader(); l != nil {
			voters := l.rn.r.conf.voters()
			to := voters[s.rng.IntN(len(voters))]
			s.logf("transfer leadership %s -> %s", l.id, to)
			l.rn.TransferLeadership(to)
			s.stats.transfers++
		}
	default:
		y := s.rng.IntN(100)
		switch {
		case y < 20:
			s.tick()
		case y < 60:
			var ready []*simNode
			for _, n := range s.up() {
				if n.rn.HasReady() {
					ready = append(ready, n)
				}
			}
			if n := s.pick(ready); n != nil {
				s.processReady(n)
				return
			}
			s.deliverOne()
		default:
			if !s.deliverOne() {
				s.tick()
			}
		}
	}
}

// tick advances time: one random node, or (lease checking) every node
// together, as often per node.
func (s *sim) tick() {
	up := s.up()
	if len(up) == 0 {
		return
	}
	if !s.p.leaseCheck {
		s.pick(up).rn.Tick()
		return
	}
	if s.rng.IntN(len(s.nodes)) == 0 {
		for _, n := range up {
			n.rn.Tick()
		}
	}
}

func (s *sim) repartition() {
	s.cut = map[[2]string]bool{}
	switch s.rng.IntN(4) {
	case 0:
		s.logf("heal")
	case 1, 2: // symmetric split
		var a, b []string
		for _, n := range s.nodes {
			if s.rng.IntN(2) == 0 {
				a = append(a, n.id)
			} else {
				b = append(b, n.id)
			}
		}
		for _, x := range a {
			for _, y := range b {
				s.cut[[2]string{x, y}] = true
				s.cut[[2]string{y, x}] = true
			}
		}
		s.logf("partition %v | %v", a, b)
	case 3: // one-way cuts
		for range 1 + s.rng.IntN(3) {
			x, y := s.pick(s.nodes).id, s.pick(s.nodes).id
			if x != y {
				s.cut[[2]string{x, y}] = true
				s.logf("one-way cut %s -> %s", x, y)
			}
		}
	}
}

func (s *sim) compact() {
	n := s.pick(s.up())
	if n == nil {
		return
	}
	first, _ := n.st.FirstIndex()
	if n.appliedIndex < first+2 {
		return
	}
	// Keep a few entries so that most followers catch up from the log.
	k := n.appliedIndex - uint64(s.rng.IntN(3))
	if err := n.st.Compact(k); err != nil {
		s.fail("%s compact %d: %v", n.id, k, err)
		return
	}
	// The application's snapshot at k: its state after applying k.
	st, ok := s.stateAt[k]
	if !ok {
		s.fail("no state recorded at %d", k)
		return
	}
	n.snap = simSnap{index: k, state: st}
	meta, _ := n.st.Snapshot()
	n.rn.Compact(meta)
	s.logf("%s compacts to %d", n.id, k)
}

func (s *sim) confChange() {
	l := s.leader()
	if l == nil {
		return
	}
	cs := l.rn.r.conf
	voters := cs.voters()
	var cc ConfChange
	switch {
	case len(cs.Members) > len(voters):
		// Promote a learner.
		for _, m := range cs.Members {
			if !m.Voter {
				cc = ConfChange{Type: ConfAddVoter, ID: m.ID}
			}
		}
	case len(voters) > 3:
		// Remove a voter (not below 3), maybe the leader itself.
		cc = ConfChange{Type: ConfRemove, ID: voters[s.rng.IntN(len(voters))]}
	default:
		// Re-add a removed node (with its storage) as a learner, or add
		// a brand-new node with empty storage: it waits to be contacted,
		// then catches up from the log or a snapshot. (A removed node's ID
		// is never reused with empty storage: it would have forgotten its
		// votes, and stale members could win elections with them.)
		for _, n := range s.nodes {
			if _, ok := cs.find(n.id); !ok {
				cc = ConfChange{Type: ConfAddLearner, ID: n.id, Addr: "addr-" + n.id}
			}
		}
		if len(s.nodes) < 8 && s.rng.IntN(2) == 0 {
			n := s.addFresh()
			cc = ConfChange{Type: ConfAddLearner, ID: n.id, Addr: "addr-" + n.id}
		}
	}
	if cc.ID == "" {
		return
	}
	err := l.rn.ProposeConfChange(cc)
	s.logf("conf change %v %s at %s: %v", cc.Type, cc.ID, l.id, err)
	if err == nil {
		s.stats.confChanges++
	}
}

// converge heals everything and requires progress: a leader is elected and
// a new entry is applied by every member.
func (s *sim) converge() {
	s.cut = map[[2]string]bool{}
	s.p.dropP, s.p.dupP, s.p.midCrashP = 0, 0, 0
	for _, n := range s.nodes {
		if n.rn == nil {
			s.restart(n)
		}
	}
	for _, sm := range s.net {
		s.lost(sm)
	}
	s.net = nil
	proposed := false
	var want uint64
	for round := 0; round < 400 && s.err == nil; round++ {
		s.step++
		s.now += s.p.maxDelay + 1
		s.reportDue()
		for _, n := range s.nodes {
			n.rn.Tick()
		}
		for i := 0; i < 100 && s.err == nil; i++ {
			busy := false
			for _, n := range s.nodes {
				if n.rn.HasReady() {
					s.processReady(n)
					busy = true
				}
			}
			for len(s.net) > 0 {
				sm := s.net[0]
				s.net = s.net[1:]
				s.deliver(sm)
				busy = true
			}
			s.check()
			if !busy {
				break
			}
		}
		s.checkSnapStall()
		l := s.leader()
		if l == nil {
			continue
		}
		if !proposed {
			if l.rn.Propose([]byte("final")) == nil {
				proposed = true
				want = l.rn.r.log.lastIndex()
			}
			continue
		}
		done := true
		for _, n := range s.nodes {
			if _, member := l.rn.r.conf.find(n.id); member && n.appliedIndex < want {
				done = false
			}
		}
		if done && s.stateAt[want] != 0 {
			return
		}
		if l.rn.r.log.termOrZero(want) != l.rn.r.term {
			proposed = false // lost with a leadership change; propose again
		}
	}
	if s.err == nil {
		var st []string
		for _, n := range s.nodes {
			st = append(st, fmt.Sprintf("%s:%+v applied=%d first=%d", n.id, n.rn.Status(), n.appliedIndex, n.rn.r.log.firstIndex()))
			for id, pr := range n.rn.r.prs {
				st = append(st, fmt.Sprintf("  %s->%s %s active=%v probeSent=%v pending=%d", n.id, id, pr, pr.recentActive, pr.probeSent, pr.pendingSnapshot))
			}
		}
		s.fail("no progress after healing: %s", strings.Join(st, "; "))
	}
}
