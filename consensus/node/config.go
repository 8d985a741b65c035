package node

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
)

// Defaults, chosen to ride through this machine's slow disk spells (fsync
// 5–7× slower for minutes, single stalls of ~400 ms): a stall of the
// leader's fsync blocks its loop, so no heartbeat leaves for that long; an
// election timeout of 1.5 s (randomized up to 3 s by the core) leaves
// followers well clear of that, and a stalled node itself does not tick
// while stalled (see Node's doc), so it never times out because of its own
// disk.
const (
	DefaultElectionTimeout   = 1500 * time.Millisecond
	DefaultHeartbeatInterval = 150 * time.Millisecond
	DefaultMaxInflight       = 256
	DefaultMaxSizePerMsg     = 1 << 20
	DefaultMaxProposalBytes  = 8 << 20
	// A follower sent a snapshot holds back the leader's log compaction
	// for at most this long without progress after the transfer, and for
	// at most this much log growth (Config.SnapshotGuardTimeout, Bytes).
	DefaultSnapshotGuardTimeout = 30 * time.Second
	DefaultSnapshotGuardBytes   = 1 << 30
	// ticksPerHeartbeat: the driver ticks twice per heartbeat interval so
	// that the lease (measured in ticks mapped to time) and the randomized
	// election timeout have a useful resolution.
	ticksPerHeartbeat = 2
)

// Config configures a Node. ID, Store, Transport and StateMachine are
// required; zero values of the rest mean the defaults above.
type Config struct {
	// ID is this node's id, unique and stable in the cluster.
	ID string
	// Peers are the voters of a brand-new cluster, this node included,
	// the same list on every initial member. Used only when Store is empty;
	// leave empty when joining an existing cluster.
	Peers []consensus.Member
	// Contacts are members the transport should know before the log has
	// told this node the configuration: a joining node lists the members it
	// learned from the /join call, so it can answer the leader's first
	// messages. Optional; the configuration in the log takes over.
	Contacts []consensus.Member

	// ElectionTimeout is this node's base election timeout (a far region
	// gets a longer one); the core randomizes it in [T, 2T).
	ElectionTimeout time.Duration
	// HeartbeatInterval is the leader's heartbeat period; at most
	// ElectionTimeout/3. The driver ticks every HeartbeatInterval/2.
	HeartbeatInterval time.Duration
	// MinClusterElectionTimeout is the shortest ElectionTimeout of any
	// voter in the cluster; the lease is derived from it. Zero means this
	// node's ElectionTimeout, which is right when all voters use the same
	// timeouts or this node has the shortest ones. Precisely: a voter v
	// refuses votes for ElectionTimeout(v) - HeartbeatInterval(v)/2 after
	// a heartbeat; the lease is MinClusterElectionTimeout - our
	// HeartbeatInterval/2 - LeaseDriftBound, so if some voter has a longer
	// HeartbeatInterval than ours, lower this value by the difference.
	MinClusterElectionTimeout time.Duration
	// LeaseDriftBound is how much faster than ours another node's clock may
	// run over one election timeout, as a duration. Zero means
	// MinClusterElectionTimeout/10. See LeaseValid.
	LeaseDriftBound time.Duration

	Store        LogStore
	Transport    transport.Transport
	StateMachine StateMachine
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Clock returns the current time; only its monotonic reading is used
	// (differences between its results). Nil means time.Now. Tests inject
	// a fake one to test the lease.
	Clock func() time.Time
	// RandSeed seeds the core's randomness (election timeouts). Zero means
	// a random seed; tests pass a fixed one per node.
	RandSeed uint64

	// Snapshots is the node's snapshot directory (OpenSnapshots), also
	// given to the transport as its SnapshotConfig Source and Sink. Nil:
	// no snapshots (a Ready that installs one stops the node with
	// ErrSnapshotUnsupported). Needs a StateMachine that implements
	// Snapshotter.
	Snapshots *Snapshots
	// SnapshotEntries: take a snapshot after this many entries were
	// applied since the last one, and compact the log up to the one
	// before. Zero: never take one (received ones are still installed).
	SnapshotEntries uint64

	// SnapshotGuardTimeout and SnapshotGuardBytes bound how long a leader
	// keeps its log, instead of compacting it, for a follower it sent a
	// snapshot to (so that the follower continues from the log after
	// installing it; see snapguard.go): until that follower's match has not
	// advanced for SnapshotGuardTimeout after the transfer succeeded
	// (default 30 s), or the log has grown by SnapshotGuardBytes of entry
	// data since the snapshot was sent (default 1 GiB), or the transfer
	// has not been reported for 10 × SnapshotGuardTimeout, whichever comes
	// first. A failed transfer ends the guard at once.
	SnapshotGuardTimeout time.Duration
	SnapshotGuardBytes   uint64

	// MaxInflight bounds the pipelined AppendEntries in flight per follower.
	MaxInflight int
	// MaxSizePerMsg caps the entry bytes of one AppendEntries.
	MaxSizePerMsg uint64
	// MaxProposalBytes caps one proposal's data (ErrProposalTooLarge).
	MaxProposalBytes int
}

// timing is what the driver derives from the Config's durations.
type timing struct {
	tick          time.Duration // ticker period
	electionTick  int
	heartbeatTick int
	// lease is how long after the send time of a quorum-acknowledged
	// heartbeat round the leader may serve local reads; 0: never.
	lease time.Duration
	// readRetryTicks: a read-index batch unanswered for this long is
	// asked again (the core drops requests while there is no leader).
	readRetryTicks uint64
}

func (c *Config) withDefaults() (Config, timing, error) {
	cfg := *c
	if cfg.ID == "" {
		return cfg, timing{}, fmt.Errorf("%w: empty ID", ErrInvalidConfig)
	}
	if cfg.Store == nil || cfg.Transport == nil || cfg.StateMachine == nil {
		return cfg, timing{}, fmt.Errorf("%w: Store, Transport and StateMachine are required", ErrInvalidConfig)
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = DefaultElectionTimeout
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.HeartbeatInterval < 2*time.Millisecond || cfg.ElectionTimeout < 3*cfg.HeartbeatInterval {
		return cfg, timing{}, fmt.Errorf("%w: need HeartbeatInterval >= 2ms and ElectionTimeout >= 3*HeartbeatInterval (have %v, %v)",
			ErrInvalidConfig, cfg.HeartbeatInterval, cfg.ElectionTimeout)
	}
	if cfg.MinClusterElectionTimeout == 0 {
		cfg.MinClusterElectionTimeout = cfg.ElectionTimeout
	}
	if cfg.LeaseDriftBound == 0 {
		cfg.LeaseDriftBound = cfg.MinClusterElectionTimeout / 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.RandSeed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
		cfg.RandSeed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	if cfg.SnapshotGuardTimeout <= 0 {
		cfg.SnapshotGuardTimeout = DefaultSnapshotGuardTimeout
	}
	if cfg.SnapshotGuardBytes == 0 {
		cfg.SnapshotGuardBytes = DefaultSnapshotGuardBytes
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.MaxSizePerMsg == 0 {
		cfg.MaxSizePerMsg = DefaultMaxSizePerMsg
	}
	if cfg.MaxProposalBytes <= 0 {
		cfg.MaxProposalBytes = DefaultMaxProposalBytes
	}
	if cfg.Snapshots != nil {
		if _, ok := cfg.StateMachine.(Snapshotter); !ok {
			return cfg, timing{}, fmt.Errorf("%w: Snapshots set but the StateMachine is not a Snapshotter", ErrInvalidConfig)
		}
	} else if cfg.SnapshotEntries > 0 {
		return cfg, timing{}, fmt.Errorf("%w: SnapshotEntries needs Snapshots", ErrInvalidConfig)
	}
	seen := map[string]bool{}
	for _, m := range cfg.Peers {
		if m.ID == "" || seen[m.ID] {
			return cfg, timing{}, fmt.Errorf("%w: peer ids must be non-empty and unique (%q)", ErrInvalidConfig, m.ID)
		}
		seen[m.ID] = true
		if m.ID == cfg.ID && !m.Voter {
			return cfg, timing{}, fmt.Errorf("%w: this node must be a voter of the cluster it bootstraps", ErrInvalidConfig)
		}
	}
	if len(cfg.Peers) > 0 && !seen[cfg.ID] {
		return cfg, timing{}, fmt.Errorf("%w: Peers must include this node (%s)", ErrInvalidConfig, cfg.ID)
	}

	var t timing
	t.tick = cfg.HeartbeatInterval / ticksPerHeartbeat
	t.heartbeatTick = ticksPerHeartbeat
	t.electionTick = int((cfg.ElectionTimeout + t.tick - 1) / t.tick)
	// A follower that heard the leader's heartbeat refuses votes until
	// ElectionTick of its own ticks have passed; its first tick may come
	// right after the heartbeat, so it is protected for (ElectionTick-1)
	// ticks, which is at least MinClusterElectionTimeout - tick. Take the
	// drift bound off that.
	t.lease = max(cfg.MinClusterElectionTimeout-t.tick-cfg.LeaseDriftBound, 0)
	t.readRetryTicks = uint64(max(2*t.heartbeatTick, t.electionTick/4))
	return cfg, t, nil
}
