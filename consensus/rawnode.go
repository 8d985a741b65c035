package consensus

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors of RawNode (added to the agreed API).
var (
	// ErrNotEmpty: Bootstrap was called on a node whose storage or state
	// is not empty.
	ErrNotEmpty = errors.New("consensus: storage is not empty")
	// ErrBadMessage: a message from the network is malformed or of a kind
	// that may not come from the network. The message changed nothing.
	ErrBadMessage = errors.New("consensus: malformed message")
)

// RawNode is the deterministic Raft core: a single-threaded state machine
// with no goroutines, no I/O, no clock and no randomness but Config.Rand.
// All methods must be called from one goroutine.
//
// Use: Tick at a fixed interval; Step every received message; then, while
// HasReady, take rd := Ready(), follow the Ready ordering contract, and
// call Advance(rd) before the next Ready.
type RawNode struct {
	r        *raft
	prevSoft SoftState
	prevHard HardState
}

// NewRawNode creates a node from cfg.Storage's persisted state (a fresh node
// with empty storage and no configuration waits to be contacted by a leader,
// which is how a joining node starts).
func NewRawNode(cfg *Config) (*RawNode, error) {
	r, err := newRaft(cfg)
	if err != nil {
		return nil, err
	}
	return &RawNode{r: r, prevSoft: r.softState(), prevHard: r.hardState()}, nil
}

// Bootstrap writes the initial configuration of a brand-new cluster into the
// log (the same entries on every initial member, so logs match). It fails
// if the storage is not empty. The next Ready carries the entries to persist.
//
// The log becomes one EntryConfChange per member, sorted by ID, all at term
// 1 and committed at once; the state machine sees them as committed entries.
// A node that crashes before persisting that first Ready restarts with
// empty storage and simply calls Bootstrap again.
func (rn *RawNode) Bootstrap(members []Member) error {
	r := rn.r
	if r.log.lastIndex() != 0 || r.term != 0 || r.vote != "" || len(r.conf.Members) != 0 {
		return ErrNotEmpty
	}
	if len(members) == 0 {
		return fmt.Errorf("%w: no members", ErrInvalidConfChange)
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	ents := make([]Entry, 0, len(ms))
	var cs ConfState
	for i, m := range ms {
		cc := ConfChange{Type: ConfAddVoter, ID: m.ID, Addr: m.Addr}
		if !m.Voter {
			cc.Type = ConfAddLearner
		}
		var err error
		if cs, err = applyConfChange(cs, cc); err != nil {
			return err
		}
		if i > 0 && ms[i-1].ID == m.ID {
			return fmt.Errorf("%w: duplicate member %s", ErrInvalidConfChange, m.ID)
		}
		ents = append(ents, Entry{Term: 1, Index: uint64(i + 1), Type: EntryConfChange, Data: EncodeConfChange(cc)})
	}
	if len(cs.voters()) == 0 {
		return fmt.Errorf("%w: no voters", ErrInvalidConfChange)
	}
	r.becomeFollower(1, "")
	r.appendToLog(ents)
	r.log.commitTo(uint64(len(ents)))
	r.pruneConfHist()
	return nil
}

// Tick advances the logical clock by one tick.
func (rn *RawNode) Tick() {
	rn.r.tick++
	rn.r.tickFn()
}

// Step feeds a message received from a peer into the core. Local message
// types (MsgHup, MsgBeat, MsgSnapStatus, MsgUnreachable) and malformed
// messages are refused with ErrBadMessage and change nothing.
func (rn *RawNode) Step(m Message) error {
	if err := rn.validate(m); err != nil {
		rn.r.logger.Warn("refusing message", "type", m.Type, "from", m.From, "err", err)
		return err
	}
	return rn.r.Step(m)
}

func (rn *RawNode) validate(m Message) error {
	if !m.Type.Valid() {
		return fmt.Errorf("%w: unknown type %d", ErrBadMessage, uint8(m.Type))
	}
	switch m.Type {
	case MsgHup, MsgBeat, MsgSnapStatus, MsgUnreachable:
		return fmt.Errorf("%w: %s is local", ErrBadMessage, m.Type)
	}
	if m.From == "" {
		return fmt.Errorf("%w: %s without sender", ErrBadMessage, m.Type)
	}
	if m.From == rn.r.id {
		return fmt.Errorf("%w: %s claims to come from this node", ErrBadMessage, m.Type)
	}
	if m.To != "" && m.To != rn.r.id {
		return fmt.Errorf("%w: %s addressed to %q", ErrBadMessage, m.Type, m.To)
	}
	switch m.Type {
	case MsgProp, MsgReadIndex, MsgTransferLeader:
		if m.Term != 0 {
			return fmt.Errorf("%w: forwarded %s carries term %d", ErrBadMessage, m.Type, m.Term)
		}
	default:
		if m.Term == 0 {
			return fmt.Errorf("%w: %s without term", ErrBadMessage, m.Type)
		}
	}
	switch m.Type {
	case MsgApp:
		prevTerm := m.LogTerm
		for i, e := range m.Entries {
			if e.Index != m.Index+1+uint64(i) {
				return fmt.Errorf("%w: MsgApp entry %d has index %d, want %d", ErrBadMessage, i, e.Index, m.Index+1+uint64(i))
			}
			if e.Term < prevTerm || e.Term > m.Term {
				return fmt.Errorf("%w: MsgApp entry %d has term %d (previous %d, message %d)", ErrBadMessage, e.Index, e.Term, prevTerm, m.Term)
			}
			prevTerm = e.Term
		}
		if m.LogTerm > m.Term {
			return fmt.Errorf("%w: MsgApp prev term %d above message term %d", ErrBadMessage, m.LogTerm, m.Term)
		}
	case MsgSnap:
		if m.Snapshot == nil || m.Snapshot.Index == 0 || m.Snapshot.Term > m.Term {
			return fmt.Errorf("%w: MsgSnap without a valid snapshot", ErrBadMessage)
		}
		if len(m.Snapshot.Conf.voters()) == 0 {
			return fmt.Errorf("%w: MsgSnap with an empty configuration", ErrBadMessage)
		}
	case MsgProp:
		if len(m.Entries) == 0 {
			return fmt.Errorf("%w: empty MsgProp", ErrBadMessage)
		}
	}
	return nil
}

// Campaign makes this node start an election now (skipping pre-vote).
func (rn *RawNode) Campaign() error {
	if !rn.r.promotable() {
		return fmt.Errorf("consensus: %s is not a voter", rn.r.id)
	}
	rn.r.hup(campaignElection)
	return nil
}

// Propose appends data to the log on the leader, or forwards it to the
// leader from a follower. ErrProposalDropped when there is no leader or a
// transfer is in progress.
func (rn *RawNode) Propose(data []byte) error {
	return rn.r.Step(Message{Type: MsgProp, From: rn.r.id, Entries: []Entry{{Type: EntryNormal, Data: data}}})
}

// ProposeConfChange proposes a single-server membership change (leader only).
// ErrNotLeader on a follower; ErrConfChangeInProgress while a change (or the
// leader's first entry of its term) is not yet committed;
// ErrInvalidConfChange when cc does not apply to the configuration.
func (rn *RawNode) ProposeConfChange(cc ConfChange) error {
	if rn.r.role != RoleLeader {
		return ErrNotLeader
	}
	return rn.r.Step(Message{Type: MsgProp, From: rn.r.id, Entries: []Entry{{Type: EntryConfChange, Data: EncodeConfChange(cc)}}})
}

// ReadIndex requests a read index; the answer arrives as a ReadState with
// the same rctx in a later Ready. Works on followers (forwarded to the leader).
// A request is silently dropped when no leader is known or leadership is
// lost before it is confirmed: the caller retries after a timeout.
func (rn *RawNode) ReadIndex(rctx []byte) {
	_ = rn.r.Step(Message{Type: MsgReadIndex, From: rn.r.id, Context: rctx})
}

// TransferLeadership starts transferring leadership to the given voter.
func (rn *RawNode) TransferLeadership(to string) {
	_ = rn.r.Step(Message{Type: MsgTransferLeader, From: to})
}

// ReportUnreachable tells the core that a message to id could not be sent.
func (rn *RawNode) ReportUnreachable(id string) {
	_ = rn.r.Step(Message{Type: MsgUnreachable, From: id, Term: 0})
}

// ReportSnapshot tells the core whether sending a snapshot to id succeeded.
func (rn *RawNode) ReportSnapshot(id string, ok bool) {
	_ = rn.r.Step(Message{Type: MsgSnapStatus, From: id, Reject: !ok})
}

// HasReady reports whether Ready would return any work.
func (rn *RawNode) HasReady() bool {
	r := rn.r
	r.flushAppends()
	if r.softState() != rn.prevSoft {
		return true
	}
	if hs := r.hardState(); hs != rn.prevHard {
		return true
	}
	return len(r.msgs) > 0 || len(r.msgsBefore) > 0 || len(r.readStates) > 0 ||
		r.log.nextUnstableSnapshot() != nil || len(r.log.nextUnstableEnts()) > 0 ||
		r.log.hasNextCommittedEnts()
}

// Ready returns the pending work. The caller must call Advance(rd) after
// following the Ready ordering contract, before calling Ready again.
func (rn *RawNode) Ready() Ready {
	r := rn.r
	r.flushAppends()
	rd := Ready{
		Entries:               r.log.nextUnstableEnts(),
		Snapshot:              r.log.nextUnstableSnapshot(),
		CommittedEntries:      r.log.nextCommittedEnts(),
		Messages:              r.msgs,
		MessagesBeforePersist: r.msgsBefore,
		ReadStates:            r.readStates,
	}
	if ss := r.softState(); ss != rn.prevSoft {
		rd.SoftState = &ss
		rn.prevSoft = ss
	}
	if hs := r.hardState(); hs != rn.prevHard {
		rd.HardState = hs
		rd.MustSync = hs.Term != rn.prevHard.Term || hs.Vote != rn.prevHard.Vote
		rn.prevHard = hs
	}
	rd.MustSync = rd.MustSync || len(rd.Entries) > 0 || rd.Snapshot != nil
	r.log.acceptReady(rd.Entries, rd.Snapshot, rd.CommittedEntries)
	r.msgs, r.msgsBefore, r.readStates = nil, nil, nil
	r.roundUnsent = false
	return rd
}

// Advance tells the core that rd was persisted and handed off.
func (rn *RawNode) Advance(rd Ready) {
	r := rn.r
	if rd.Snapshot != nil {
		r.log.unstable.stableSnapTo(rd.Snapshot.Index)
		r.log.applied = max(r.log.applied, rd.Snapshot.Index)
		r.log.applying = max(r.log.applying, rd.Snapshot.Index)
	}
	if n := len(rd.Entries); n > 0 {
		r.log.unstable.stableTo(rd.Entries[n-1].Index, rd.Entries[n-1].Term)
		r.onDurable()
	}
	if n := len(rd.CommittedEntries); n > 0 {
		r.log.applied = max(r.log.applied, rd.CommittedEntries[n-1].Index)
	}
}

// Compact tells the core that a snapshot at meta.Index exists and the log
// before it may be discarded from Storage. The core uses the newest such
// meta (or Storage.Snapshot, whichever is newer) when a follower needs
// entries that were compacted away.
func (rn *RawNode) Compact(meta SnapshotMeta) {
	if meta.Index > rn.r.snapKey.Index && meta.Index <= rn.r.log.committed {
		meta.Conf = meta.Conf.clone()
		rn.r.snapKey = meta
	}
}

// LeaseStartTick reports, on a leader with CheckQuorum, the tick at which
// the newest heartbeat round acknowledged by a quorum was sent. The driver
// maps that tick to its monotonic time to decide whether the lease holds.
// ok is false when not leader, CheckQuorum is off, or a leadership
// transfer is in progress (after an abandoned transfer whose MsgTimeoutNow
// went out, only once the no-op appended at the abort is committed). Ticks are
// counted from the RawNode's creation (the first Tick is tick 1).
//
// The driver's lease lasts from that tick for the SMALLEST election timeout
// of any voter (timeouts may differ per node) minus a clock-drift bound.
func (rn *RawNode) LeaseStartTick() (tick uint64, ok bool) { return rn.r.leaseStart() }

// CurrentTick returns the number of Ticks since the RawNode was created
// (the clock LeaseStartTick is measured on).
func (rn *RawNode) CurrentTick() uint64 { return rn.r.tick }

// Status returns a picture of the node.
func (rn *RawNode) Status() Status {
	r := rn.r
	st := Status{
		ID:             r.id,
		Term:           r.term,
		Vote:           r.vote,
		Commit:         r.log.committed,
		Applied:        r.log.applied,
		LastIndex:      r.log.lastIndex(),
		Lead:           r.lead,
		Role:           r.role,
		Conf:           r.conf.clone(),
		LeadTransferee: r.leadTransferee,
	}
	if st.Role == RoleFollower {
		if m, ok := r.conf.find(r.id); ok && !m.Voter {
			st.Role = RoleLearner
		}
	}
	if r.role == RoleLeader {
		st.Match = map[string]uint64{}
		for id, pr := range r.prs {
			st.Match[id] = pr.match
		}
	}
	return st
}
