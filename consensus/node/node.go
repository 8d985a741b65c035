package node

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
)

// Queue sizes. recvQueue absorbs a burst of inbound messages while the loop
// is in an fsync; when it is full further messages are dropped (Raft
// tolerates loss; the leader retries) rather than blocking the transport.
const (
	recvQueue     = 4096
	proposeQueue  = 1024
	maxDrain      = 4096 // events handled per loop iteration before a Ready
	maxApplyBatch = 4096 // entries per StateMachine.Apply call
)

// Node drives one consensus.RawNode: it owns the loop goroutine, the
// ticker, the store writes, the transport and the applier goroutine. All
// exported methods are safe for concurrent use.
type Node struct {
	id    string
	cfg   Config
	t     timing
	log   *slog.Logger
	clock func() time.Time
	base  time.Time // clock() at Start; lease times are offsets from it

	// Loop-owned state (only the run goroutine touches these).
	rn          *consensus.RawNode
	tickN       uint64
	ticks       tickClock
	reads       readBatcher
	hs          consensus.HardState // newest HardState from the core
	hsDirty     bool                // hs not yet written (commit-only changes wait for the next fsync)
	durableLast uint64              // last log index written by Save (or found at Start)
	peers       map[string]string   // id -> addr given to the transport
	learnt      map[string]bool     // peers whose address came from their own preface, not the configuration
	advertised  string              // own address last given to the transport's Advertiser
	confKey     string              // configuration the peers were synced from
	transfers   []*transferWaiter
	lastLead    string
	// Snapshot guards (snapguard.go).
	guards         map[string]*snapGuard
	pendingCompact uint64 // compaction held back by a guard (0: none)
	appendedBytes  uint64 // entry data bytes this node has written to its log

	propc   chan *proposal
	readc   chan *readReq
	recvc   chan consensus.Message
	reportc chan report
	ctrlc   chan func()

	stopOnce sync.Once
	stopc    chan struct{} // closed when the node starts stopping
	done     chan struct{} // closed when loop, applier, transport and store are down
	dropped  atomic.Uint64 // inbound messages dropped on a full queue
	metrics  metrics

	// Applier.
	applyMu      sync.Mutex
	applyQueue   []applyTask
	applyKick    chan struct{}
	applyCancel  context.CancelFunc
	applyDone    chan struct{}
	startApplied uint64 // the state machine's index at Start; nothing at or below is applied again

	// Snapshots (nil snapper: off).
	snapper  Snapshotter
	snapKick chan struct{}
	snapDone chan struct{}
	lastSnap atomic.Uint64 // index of the newest snapshot file
	// snapNow asks snapLoop for a snapshot whatever SnapshotEntries says
	// (RequestSnapshot).
	snapNow atomic.Bool

	// Published state, readable from any goroutine.
	leaseExp  atomic.Int64 // lease end as an offset from base in ns; 0 = no lease
	applied   atomic.Uint64
	mu        sync.Mutex
	status    consensus.Status
	leader    string
	leaderCh  chan struct{} // closed and replaced when leader changes
	appliedCh chan struct{} // closed and replaced when applied advances
	err       error         // the fatal error that stopped the node
}

type proposal struct {
	data []byte
	cc   *consensus.ConfChange
	errc chan error
}

type reportKind uint8

const (
	reportUnreachable reportKind = iota
	reportSnapshot
	reportAddr
)

type report struct {
	kind reportKind
	id   string
	ok   bool
	addr string // reportAddr
}

type transferWaiter struct {
	ctx       context.Context
	to        string
	startLead string
	errc      chan error
}

// Start opens a node on cfg.Store. A brand-new (empty) store with
// cfg.Peers is bootstrapped as a new cluster; an empty store without Peers
// waits to be contacted by a leader (joining); otherwise the node restarts
// from the store and the state machine's AppliedIndex. ctx bounds start-up
// only; the node runs until Stop or a fatal error (Done, Err). The Node
// owns Store and Transport from then on (Stop closes them); if Start
// fails, the caller still owns them and must close them.
func Start(ctx context.Context, c Config) (*Node, error) {
	cfg, t, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st := cfg.Store
	hs, cs, err := st.InitialState()
	if err != nil {
		return nil, fmt.Errorf("node: read initial state: %w", err)
	}
	last, err := st.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("node: read last index: %w", err)
	}
	snap, err := st.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("node: read snapshot: %w", err)
	}
	fresh := hs.IsEmpty() && last == 0 && snap.Index == 0
	snapper, _ := cfg.StateMachine.(Snapshotter)
	if cfg.Snapshots == nil {
		snapper = nil
	}
	applied := cfg.StateMachine.AppliedIndex()
	if applied < snap.Index {
		// The log starts after a snapshot the state machine does not
		// have (it lost its data, or a crash came between installing a
		// received snapshot in the store and in the state machine).
		if snapper == nil {
			return nil, fmt.Errorf("node: state machine at index %d is behind the log's snapshot at %d and snapshots are not configured", applied, snap.Index)
		}
		path := cfg.Snapshots.Path(snap.Index)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("node: state machine at index %d is behind the log's snapshot at %d: %w: %w", applied, snap.Index, errNoSnapshotFile, err)
		}
		if err := snapper.Restore(ctx, path); err != nil {
			return nil, fmt.Errorf("node: restore snapshot %d at start: %w", snap.Index, err)
		}
		applied = cfg.StateMachine.AppliedIndex()
		cfg.Logger.Info("restored state machine from snapshot at start", "node", cfg.ID, "index", snap.Index, "applied", applied)
	}
	if applied > last {
		return nil, fmt.Errorf("node: state machine has applied index %d but the log ends at %d (wrong data directory?)", applied, last)
	}
	// The commit index is written lazily (with the next fsync), so after a
	// crash it may lag what the state machine applied; the core raises it
	// to Applied (those entries are committed and durable in our log).
	coreApplied := applied

	seeds := [2]uint64{cfg.RandSeed, cfg.RandSeed ^ 0x9e3779b97f4a7c15}
	rn, err := consensus.NewRawNode(&consensus.Config{
		ID:              cfg.ID,
		ElectionTick:    t.electionTick,
		HeartbeatTick:   t.heartbeatTick,
		Storage:         st,
		Applied:         coreApplied,
		MaxSizePerMsg:   cfg.MaxSizePerMsg,
		MaxInflightMsgs: cfg.MaxInflight,
		CheckQuorum:     true,
		PreVote:         true,
		Rand:            rand.New(rand.NewPCG(seeds[0], seeds[1])),
		Logger:          cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("node: create core: %w", err)
	}
	members := cs.Members
	if fresh && len(cfg.Peers) > 0 {
		if err := rn.Bootstrap(cfg.Peers); err != nil {
			return nil, fmt.Errorf("node: bootstrap: %w", err)
		}
		members = cfg.Peers
	}

	n := &Node{
		id:           cfg.ID,
		cfg:          cfg,
		t:            t,
		log:          cfg.Logger.With("node", cfg.ID),
		clock:        cfg.Clock,
		rn:           rn,
		hs:           hs,
		durableLast:  last,
		peers:        map[string]string{},
		learnt:       map[string]bool{},
		guards:       map[string]*snapGuard{},
		propc:        make(chan *proposal, proposeQueue),
		readc:        make(chan *readReq, proposeQueue),
		recvc:        make(chan consensus.Message, recvQueue),
		reportc:      make(chan report, 256),
		ctrlc:        make(chan func()),
		stopc:        make(chan struct{}),
		done:         make(chan struct{}),
		applyKick:    make(chan struct{}, 1),
		applyDone:    make(chan struct{}),
		startApplied: applied,
		snapper:      snapper,
		snapKick:     make(chan struct{}, 1),
		snapDone:     make(chan struct{}),
		leaderCh:     make(chan struct{}),
		appliedCh:    make(chan struct{}),
	}
	n.base = n.clock()
	n.ticks = newTickClock(4*t.electionTick+16, n.base)
	var nonce [8]byte
	_, _ = crand.Read(nonce[:])
	n.reads = newReadBatcher(nonce)
	n.applied.Store(applied)
	n.status = consensus.Status{ID: cfg.ID, Term: hs.Term, Vote: hs.Vote, Commit: hs.Commit, LastIndex: last, Conf: cs}

	if err := cfg.Transport.Start(context.WithoutCancel(ctx), handler{n}); err != nil {
		return nil, fmt.Errorf("node: start transport: %w", err)
	}
	n.syncPeers(members)

	if snapper != nil {
		if idx := cfg.Snapshots.Indexes(); len(idx) > 0 {
			n.lastSnap.Store(idx[len(idx)-1])
		}
	}
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.applyCancel = cancel
	go n.applyLoop(actx)
	go n.snapLoop(actx)
	go n.run()
	n.log.Info("node started", "fresh", fresh, "bootstrap", fresh && len(cfg.Peers) > 0,
		"term", hs.Term, "commit", hs.Commit, "last_index", last, "applied", applied,
		"tick", t.tick, "election_tick", t.electionTick, "heartbeat_tick", t.heartbeatTick, "lease", t.lease)
	return n, nil
}

// ID returns this node's id.
func (n *Node) ID() string { return n.id }

// Propose submits data as a normal log entry. It returns nil once the local
// core has accepted it (appended on the leader, or forwarded by a
// follower): that is not a commit. Commit and apply are observed through
// the StateMachine. A dropped proposal returns an error matching
// ErrProposalDropped (and ErrNoLeader when no leader is known).
func (n *Node) Propose(ctx context.Context, data []byte) error {
	if len(data) > n.cfg.MaxProposalBytes {
		return fmt.Errorf("%w: %d bytes > %d", ErrProposalTooLarge, len(data), n.cfg.MaxProposalBytes)
	}
	return n.propose(ctx, &proposal{data: data, errc: make(chan error, 1)})
}

// ProposeConfChange proposes a single-server membership change. Like
// Propose it returns once the core accepted it; the change is in effect
// when Status().Conf shows it. The core accepts it on the leader only.
func (n *Node) ProposeConfChange(ctx context.Context, cc consensus.ConfChange) error {
	return n.propose(ctx, &proposal{cc: &cc, errc: make(chan error, 1)})
}

func (n *Node) propose(ctx context.Context, p *proposal) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case n.propc <- p:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopc:
		return n.stoppedErr()
	}
	select {
	case err := <-p.errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopc:
		return n.stoppedErr()
	}
}

// ReadIndex returns a commit index that is safe for a linearizable read:
// once the local state machine has applied it, a read of local state
// reflects every write acknowledged before ReadIndex was called. It works
// on followers (the leader confirms its leadership with a quorum and
// answers); concurrent callers share one request per loop iteration and one
// heartbeat round. While no leader is known the request is retried until
// ctx ends.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := &readReq{ctx: ctx, resc: make(chan uint64, 1)}
	select {
	case n.readc <- r:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.stopc:
		return 0, n.stoppedErr()
	}
	select {
	case idx := <-r.resc:
		return idx, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.stopc:
		return 0, n.stoppedErr()
	}
}

// Campaign makes this node start an election now (no pre-vote).
func (n *Node) Campaign(ctx context.Context) error {
	return n.do(ctx, func() error { return n.rn.Campaign() })
}

// TransferLeadership asks the leader to hand leadership to the voter to
// and waits until to is the leader (nil), the transfer failed
// (ErrTransferFailed), or ctx ends. On the leader the lease ends at once.
// Called on a follower, the request is forwarded to the leader.
func (n *Node) TransferLeadership(ctx context.Context, to string) error {
	w := &transferWaiter{ctx: ctx, to: to, errc: make(chan error, 1)}
	err := n.do(ctx, func() error {
		st := n.rn.Status()
		if st.Lead == to {
			w.errc <- nil
			return nil
		}
		w.startLead = st.Lead
		n.leaseExp.Store(0)
		n.rn.TransferLeadership(to)
		if st.Role == consensus.RoleLeader {
			if st2 := n.rn.Status(); st2.LeadTransferee != to {
				w.errc <- fmt.Errorf("%w: leader refused transfer to %q", ErrTransferFailed, to)
				return nil
			}
		}
		n.transfers = append(n.transfers, w)
		return nil
	})
	if err != nil {
		return err
	}
	select {
	case err := <-w.errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopc:
		return n.stoppedErr()
	}
}

// do runs f on the loop goroutine and returns its error.
func (n *Node) do(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	errc := make(chan error, 1)
	select {
	case n.ctrlc <- func() { errc <- f() }:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopc:
		return n.stoppedErr()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopc:
		return n.stoppedErr()
	}
}

// LeaseValid reports whether this node is the leader and may serve a read
// from local state without a read-index round. It is true only if the
// core reports a lease (leader, check-quorum on, no leadership transfer in
// progress, and none recently abandoned after sending MsgTimeoutNow; see
// RawNode.LeaseStartTick) and now is before
//
//	time(tick of the newest quorum-acknowledged heartbeat round)
//	  + MinClusterElectionTimeout - tick interval - LeaseDriftBound
//
// where time(tick) is this node's clock when that tick began (no later
// than the heartbeats' send time). Why that is safe: a follower that
// acknowledged the round refuses to vote for ElectionTick of its own ticks
// after it received it (check-quorum), which is at least its election
// timeout minus one tick; any new leader needs one of those votes. The
// drift bound (default a tenth of the election timeout) covers followers
// whose clocks run faster than ours.
func (n *Node) LeaseValid() bool {
	exp := n.leaseExp.Load()
	return exp > 0 && int64(n.clock().Sub(n.base)) < exp
}

// LeaseReadIndex returns, on a leader whose lease holds, the commit index
// as the core knows it at this moment (read inside the loop). Every write
// acknowledged anywhere is at or below it — a follower learns a commit
// index only from the leader — so a read that waits until it is applied is
// linearizable while the lease lasts. The published Status().Commit is not
// enough: the leader sends a new commit index to followers before it
// publishes it. ok is false without a valid lease.
func (n *Node) LeaseReadIndex(ctx context.Context) (index uint64, ok bool, err error) {
	err = n.do(ctx, func() error {
		if n.LeaseValid() {
			index, ok = n.rn.Status().Commit, true
		}
		return nil
	})
	return index, ok, err
}

// LeaseDuration is the lease measured from a heartbeat round's send time
// (0: this configuration never grants a lease).
func (n *Node) LeaseDuration() time.Duration { return n.t.lease }

// Status returns a copy of the node's state as of the loop's last
// iteration. Applied is what the applier has finished; Role is
// RequestSnapshot asks for a snapshot of the state machine as soon as
// possible, whatever Config.SnapshotEntries says, and for the log to be
// compacted up to it (not one snapshot behind, as the periodic ones are:
// a follower that is behind gets this snapshot). It returns at once; the
// snapshot is taken on the snapshot goroutine. Without Config.Snapshots
// it does nothing. The server calls it after a restore replaced the
// database, whose chunks would otherwise stay in the log.
func (n *Node) RequestSnapshot() {
	if n.snapper == nil {
		return
	}
	n.snapNow.Store(true)
	select {
	case n.snapKick <- struct{}{}:
	default:
	}
}

// RoleLearner for a non-voting member.
func (n *Node) Status() consensus.Status {
	n.mu.Lock()
	st := n.status
	n.mu.Unlock()
	st.Match = maps.Clone(st.Match)
	st.Conf.Members = slices.Clone(st.Conf.Members)
	st.Applied = n.applied.Load()
	if st.Role == consensus.RoleFollower {
		for _, m := range st.Conf.Members {
			if m.ID == n.id && !m.Voter {
				st.Role = consensus.RoleLearner
			}
		}
	}
	return st
}

// Leader returns the id of the leader this node knows, "" if none.
func (n *Node) Leader() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader
}

// LeaderChanged returns a channel that is closed the next time the known
// leader changes (including to ""). Take a new one after it fires.
func (n *Node) LeaderChanged() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaderCh
}

// WaitLeader waits until a leader is known and returns its id.
func (n *Node) WaitLeader(ctx context.Context) (string, error) {
	for {
		ch := n.LeaderChanged()
		if l := n.Leader(); l != "" {
			return l, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", ctx.Err()
		case <-n.stopc:
			return "", n.stoppedErr()
		}
	}
}

// AppliedIndex is the index of the last entry the state machine's Apply
// returned for (or its AppliedIndex at Start).
func (n *Node) AppliedIndex() uint64 { return n.applied.Load() }

// WaitApplied waits until AppliedIndex() >= index.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	for {
		n.mu.Lock()
		ch := n.appliedCh
		n.mu.Unlock()
		if n.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopc:
			return n.stoppedErr()
		}
	}
}

// Done is closed once the node has stopped completely (after Stop or a
// fatal error).
func (n *Node) Done() <-chan struct{} { return n.done }

// Err returns the fatal error that stopped the node, nil if none.
func (n *Node) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// Stop stops the loop, the applier (an Apply in progress sees its ctx
// canceled), the transport and the store, and waits for them or ctx. It
// returns nil on a clean stop, ctx's error if it gave up waiting; the
// error that stopped a failed node is Err's.
func (n *Node) Stop(ctx context.Context) error {
	n.quit(nil)
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// quit starts stopping the node; err != nil records why (fatal).
func (n *Node) quit(err error) {
	if err != nil {
		n.mu.Lock()
		if n.err == nil {
			n.err = err
		}
		n.mu.Unlock()
		n.log.Error("node stopping on fatal error", "err", err)
	}
	n.stopOnce.Do(func() { close(n.stopc) })
}

func (n *Node) stoppedErr() error {
	if err := n.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrStopped, err)
	}
	return ErrStopped
}

// wrapProposeErr adds the driver's view to an error from the core.
func (n *Node) wrapProposeErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, consensus.ErrProposalDropped) && n.lastLead == "" {
		return fmt.Errorf("node %s: %w: %w", n.id, ErrNoLeader, err)
	}
	return fmt.Errorf("node %s: propose: %w", n.id, err)
}

// handler is what the transport calls; it only queues into the loop.
type handler struct{ n *Node }

func (h handler) Receive(m consensus.Message) {
	select {
	case h.n.recvc <- m:
	default:
		if d := h.n.dropped.Add(1); d&(d-1) == 0 { // log at powers of two
			h.n.log.Warn("inbound queue full, dropping messages", "dropped_total", d, "type", m.Type, "from", m.From)
		}
	}
}

func (h handler) ReportUnreachable(id string) {
	select {
	case h.n.reportc <- report{kind: reportUnreachable, id: id}:
	default:
	}
}

// ReportSnapshot is rare and the core waits for it, so it is never dropped.
func (h handler) ReportSnapshot(id string, ok bool) {
	select {
	case h.n.reportc <- report{kind: reportSnapshot, id: id, ok: ok}:
	case <-h.n.stopc:
	}
}

// ObservePeerAddr queues the address a connecting peer advertises; the
// loop uses it only for a peer it has no address for (see learnPeer). It
// comes once per connection, so it is not dropped on a full queue.
func (h handler) ObservePeerAddr(id, addr string) {
	select {
	case h.n.reportc <- report{kind: reportAddr, id: id, addr: addr}:
	case <-h.n.stopc:
	}
}

var (
	_ transport.Handler      = handler{}
	_ transport.AddrObserver = handler{}
)
