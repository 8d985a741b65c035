package consensus

// RawNode is the deterministic Raft core: a single-threaded state machine
// with no goroutines, no I/O, no clock and no randomness but Config.Rand.
// All methods must be called from one goroutine.
//
// STUB: signatures are the agreed API; the consensus-core work fills in the
// bodies. Callers (the driver) may compile against it now.
type RawNode struct {
	r *raft
}

type raft struct{}

// NewRawNode creates a node from cfg.Storage's persisted state (a fresh node
// with empty storage and no configuration waits to be contacted by a leader,
// which is how a joining node starts).
func NewRawNode(cfg *Config) (*RawNode, error) { panic("not implemented") }

// Bootstrap writes the initial configuration of a brand-new cluster into the
// log (the same entries on every initial member, so logs match). It fails
// if the storage is not empty. The next Ready carries the entries to persist.
func (rn *RawNode) Bootstrap(members []Member) error { panic("not implemented") }

// Tick advances the logical clock by one tick.
func (rn *RawNode) Tick() { panic("not implemented") }

// Step feeds a message received from a peer (or a local message) into the core.
func (rn *RawNode) Step(m Message) error { panic("not implemented") }

// Campaign makes this node start an election now (skipping pre-vote).
func (rn *RawNode) Campaign() error { panic("not implemented") }

// Propose appends data to the log on the leader, or forwards it to the
// leader from a follower. ErrProposalDropped when there is no leader or a
// transfer is in progress.
func (rn *RawNode) Propose(data []byte) error { panic("not implemented") }

// ProposeConfChange proposes a single-server membership change (leader only).
func (rn *RawNode) ProposeConfChange(cc ConfChange) error { panic("not implemented") }

// ReadIndex requests a read index; the answer arrives as a ReadState with
// the same rctx in a later Ready. Works on followers (forwarded to the leader).
func (rn *RawNode) ReadIndex(rctx []byte) { panic("not implemented") }

// TransferLeadership starts transferring leadership to the given voter.
func (rn *RawNode) TransferLeadership(to string) { panic("not implemented") }

// ReportUnreachable tells the core that a message to id could not be sent.
func (rn *RawNode) ReportUnreachable(id string) { panic("not implemented") }

// ReportSnapshot tells the core whether sending a snapshot to id succeeded.
func (rn *RawNode) ReportSnapshot(id string, ok bool) { panic("not implemented") }

// HasReady reports whether Ready would return any work.
func (rn *RawNode) HasReady() bool { panic("not implemented") }

// Ready returns the pending work. The caller must call Advance(rd) after
// following the Ready ordering contract.
func (rn *RawNode) Ready() Ready { panic("not implemented") }

// Advance tells the core that rd was persisted and handed off.
func (rn *RawNode) Advance(rd Ready) { panic("not implemented") }

// Compact tells the core that a snapshot at meta.Index exists and the log
// before it may be discarded from Storage.
func (rn *RawNode) Compact(meta SnapshotMeta) { panic("not implemented") }

// LeaseStartTick reports, on a leader with CheckQuorum, the tick at which
// the newest heartbeat round acknowledged by a quorum was sent. The driver
// maps that tick to its monotonic time to decide whether the lease holds.
// ok is false when not leader, CheckQuorum is off, or a leadership
// transfer is in progress.
func (rn *RawNode) LeaseStartTick() (tick uint64, ok bool) { panic("not implemented") }

// Status returns a picture of the node.
func (rn *RawNode) Status() Status { panic("not implemented") }
