package consensus

import "fmt"

// EntryType tells what an Entry's Data holds.
type EntryType uint8

const (
	// EntryNormal carries application data for the state machine. An
	// EntryNormal with empty Data is the no-op a leader appends at the start
	// of its term; the state machine only records its index.
	EntryNormal EntryType = iota
	// EntryConfChange carries an encoded ConfChange (see EncodeConfChange).
	EntryConfChange
)

func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "normal"
	case EntryConfChange:
		return "confchange"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is one record of the replicated log.
type Entry struct {
	Term  uint64
	Index uint64
	Type  EntryType
	Data  []byte
}

// HardState is the state that must be durable before a node sends any
// message that depends on it: the current term, the vote cast in it, and the
// commit index. Term and Vote are always written together, atomically.
type HardState struct {
	Term   uint64
	Vote   string // "" when the node has not voted in Term
	Commit uint64
}

// IsEmpty reports whether hs is the zero HardState.
func (hs HardState) IsEmpty() bool { return hs == HardState{} }

// Member is one node of the configuration. Addr is the node's Raft address;
// the core carries it but never interprets it.
type Member struct {
	ID    string
	Addr  string
	Voter bool // false: a learner, which replicates but never votes or campaigns
}

// ConfState is a cluster configuration: every member, voters and learners.
type ConfState struct {
	Members []Member
}

// ConfChangeType is the kind of single-server membership change.
type ConfChangeType uint8

const (
	ConfAddLearner ConfChangeType = iota // add a non-voting member
	ConfAddVoter                         // add a voter, or promote a learner
	ConfRemove                           // remove a member
)

// ConfChange is a single-server membership change, carried by an
// EntryConfChange entry.
type ConfChange struct {
	Type ConfChangeType
	ID   string
	Addr string
}

// SnapshotMeta describes a snapshot: the last index and term it covers and
// the configuration as of that index. The snapshot's data (a SQLite file) is
// never held by the core; the driver and transport move it.
type SnapshotMeta struct {
	Index uint64
	Term  uint64
	Conf  ConfState
}

// MessageType is the kind of a Raft message.
type MessageType uint8

// Message types. Local messages (never sent on the wire) are marked.
const (
	MsgHup            MessageType = iota // local: start an election (pre-vote first if enabled)
	MsgBeat                              // local: leader sends heartbeats
	MsgProp                              // proposal; followers forward it to the leader
	MsgApp                               // AppendEntries
	MsgAppResp                           // AppendEntries reply
	MsgVote                              // RequestVote
	MsgVoteResp                          // RequestVote reply
	MsgPreVote                           // pre-vote request (thesis §9.6)
	MsgPreVoteResp                       // pre-vote reply
	MsgHeartbeat                         // heartbeat (carries commit and lease/read context)
	MsgHeartbeatResp                     // heartbeat reply
	MsgSnap                              // InstallSnapshot: Snapshot carries the meta, the driver moves the data
	MsgSnapStatus                        // local: result of sending a snapshot (Reject = failed)
	MsgUnreachable                       // local: the transport could not reach the peer
	MsgReadIndex                         // read-index request; followers forward it to the leader
	MsgReadIndexResp                     // read-index reply to a follower
	MsgTransferLeader                    // local or forwarded: start leadership transfer to From
	MsgTimeoutNow                        // leader tells the transfer target to campaign at once
	msgTypeCount
)

var msgTypeNames = [...]string{
	"MsgHup", "MsgBeat", "MsgProp", "MsgApp", "MsgAppResp", "MsgVote",
	"MsgVoteResp", "MsgPreVote", "MsgPreVoteResp", "MsgHeartbeat",
	"MsgHeartbeatResp", "MsgSnap", "MsgSnapStatus", "MsgUnreachable",
	"MsgReadIndex", "MsgReadIndexResp", "MsgTransferLeader", "MsgTimeoutNow",
}

func (t MessageType) String() string {
	if t < msgTypeCount {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Valid reports whether t is a known message type.
func (t MessageType) Valid() bool { return t < msgTypeCount }

// Message is the unit the nodes exchange. The fields' meaning depends on
// Type, as in the Raft paper:
//   - MsgApp: Index/LogTerm = prevLogIndex/prevLogTerm, Entries, Commit.
//   - MsgAppResp: Index = last index matched (or the rejected index when
//     Reject), RejectHint/LogTerm = conflict index/term hints for fast
//     backtracking.
//   - MsgVote/MsgPreVote: Index/LogTerm = candidate's last log index/term.
//   - MsgHeartbeat(Resp): Commit, Context (read-index and lease rounds).
//   - MsgSnap: Snapshot.
type Message struct {
	Type       MessageType
	To         string
	From       string
	Term       uint64
	LogTerm    uint64
	Index      uint64
	Entries    []Entry
	Commit     uint64
	Reject     bool
	RejectHint uint64
	Context    []byte
	Snapshot   *SnapshotMeta
}

// ReadState answers a ReadIndex request: once the local state machine has
// applied Index, a read started before the request was made is linearizable.
type ReadState struct {
	Index      uint64
	RequestCtx []byte
}

// Role is a node's part in the current term.
type Role uint8

const (
	RoleFollower Role = iota
	RoleCandidate
	RolePreCandidate
	RoleLeader
	RoleLearner // a non-voting member (reported by the driver; the core treats it as a follower that never campaigns)
)

func (r Role) String() string {
	switch r {
	case RoleFollower:
		return "follower"
	case RoleCandidate:
		return "candidate"
	case RolePreCandidate:
		return "precandidate"
	case RoleLeader:
		return "leader"
	case RoleLearner:
		return "learner"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// SoftState is volatile state that need not be persisted.
type SoftState struct {
	Lead string // "" when no leader is known
	Role Role
}
