package node

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
)

// gatedSink holds the Commit of every snapshot a node receives until the
// test opens the gate, so that the leader goes on writing (and taking
// snapshots) while the transfer is in flight.
type gatedSink struct {
	inner   transport.SnapshotSink
	gate    chan struct{}
	started chan uint64 // the index of each snapshot whose transfer began
}

func (s *gatedSink) Create(ctx context.Context, from string, meta consensus.SnapshotMeta) (transport.SnapshotWriter, error) {
	w, err := s.inner.Create(ctx, from, meta)
	if err != nil {
		return nil, err
	}
	select {
	case s.started <- meta.Index:
	default:
	}
	return &gatedWriter{SnapshotWriter: w, gate: s.gate}, nil
}

type gatedWriter struct {
	transport.SnapshotWriter
	gate chan struct{}
}

func (w *gatedWriter) Commit() error {
	select {
	case <-w.gate:
	case <-time.After(2 * waitFor):
	}
	return w.SnapshotWriter.Commit()
}

// snapGuardSetup starts a 3-node cluster taking a snapshot every 10
// entries, stops a follower until the leader has compacted past it, and
// restarts it with a gated snapshot sink. It returns the leader, the
// follower, its sink and the index of the snapshot being sent.
type snapGuardRun struct {
	c       *cluster
	l       *Node
	lagger  string
	sink    *gatedSink
	openMu  sync.Once
	snap    uint64
	written []string
}

func newSnapGuardRun(t *testing.T, cfg func(c *Config)) *snapGuardRun {
	r := &snapGuardRun{c: newCluster(t, 3)}
	c := r.c
	c.snapEvery = 10
	if cfg != nil {
		c.cfg = func(id string, cc *Config) { cfg(cc) }
	}
	c.startAll()
	r.l = c.leader()
	r.lagger = c.followers(r.l)[0].ID()
	c.stop(r.lagger)
	lagLast, _ := c.stores[r.lagger].LastIndex()
	r.write(t, 40)
	eventually(t, "leader compacts past the stopped follower", func() bool {
		first, err := c.stores[r.l.ID()].FirstIndex()
		return err == nil && first > lagLast+1
	})
	r.sink = &gatedSink{gate: make(chan struct{}), started: make(chan uint64, 16)}
	c.memcfg = func(id string, mc *transport.MemConfig) {
		if id == r.lagger {
			r.sink.inner = mc.Snapshots.Sink
			mc.Snapshots = &transport.SnapshotConfig{Source: mc.Snapshots.Source, Sink: r.sink}
		}
	}
	c.start(r.lagger)
	select {
	case r.snap = <-r.sink.started:
	case <-time.After(waitFor):
		t.Fatal("the leader never sent the restarted follower a snapshot")
	}
	t.Cleanup(r.open)
	return r
}

func (r *snapGuardRun) open() { r.openMu.Do(func() { close(r.sink.gate) }) }

// write proposes k more values on the leader and waits until it applied them.
func (r *snapGuardRun) write(t *testing.T, k int) {
	t.Helper()
	for range k {
		v := fmt.Sprintf("v%d", len(r.written))
		r.written = append(r.written, v)
		propose(t, r.l, v)
	}
	f := r.c.fsms[r.l.ID()]
	eventually(t, "the leader applies its writes", func() bool { return len(f.values()) == len(r.written) })
}

// leaderFirst is the first index of the leader's log.
func (r *snapGuardRun) leaderFirst(t *testing.T) uint64 {
	first, err := r.c.stores[r.l.ID()].FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	return first
}

// A follower being sent a snapshot while the leader keeps writing and
// taking snapshots (every 10 entries) installs exactly one: the leader does
// not compact past the snapshot in flight, so after installing it the
// follower continues from the log. Once it has caught up, compaction
// resumes.
func TestSnapshotSendHoldsCompaction(t *testing.T) {
	r := newSnapGuardRun(t, nil)
	// Three more snapshots on the leader while the transfer is held: it
	// would compact to at least r.snap+20 without the guard.
	for r.l.lastSnap.Load() < r.snap+30 {
		r.write(t, 5)
	}
	if first := r.leaderFirst(t); first > r.snap+1 {
		t.Fatalf("the leader compacted its log to %d, past the snapshot at %d it is sending", first-1, r.snap)
	}
	r.open()
	r.c.waitValues(r.written)
	if n := r.c.fsms[r.lagger].restoreCount(); n != 1 {
		t.Fatalf("%s installed %d snapshots, want exactly 1", r.lagger, n)
	}
	// The guard ended with the catch-up: compaction goes on.
	r.write(t, 25)
	eventually(t, "the leader compacts past the snapshot once the follower caught up", func() bool {
		return r.leaderFirst(t) > r.snap+20
	})
	r.c.waitValues(r.written)
}

// The guard is bounded: by the log growth since the snapshot was sent
// (while the transfer is still in flight), and by the time without
// progress after the transfer succeeded (the follower cannot answer).
func TestSnapshotGuardBounds(t *testing.T) {
	t.Run("LogGrowth", func(t *testing.T) {
		r := newSnapGuardRun(t, func(c *Config) { c.SnapshotGuardBytes = 64 })
		// ~3-byte values: 64 bytes are passed after ~25 writes.
		for r.leaderFirst(t) <= r.snap+1 {
			if len(r.written) > 400 {
				t.Fatalf("the leader still holds its log at the snapshot %d after %d writes with SnapshotGuardBytes 64", r.snap, len(r.written))
			}
			r.write(t, 5)
		}
		r.open()
		r.c.waitValues(r.written)
	})
	t.Run("NoProgress", func(t *testing.T) {
		r := newSnapGuardRun(t, func(c *Config) { c.SnapshotGuardTimeout = 200 * time.Millisecond })
		// The follower installs the snapshot but none of its answers
		// reach the leader.
		r.c.net.Cut(r.lagger, r.l.ID())
		r.open()
		for r.leaderFirst(t) <= r.snap+1 {
			if len(r.written) > 2000 {
				t.Fatalf("the leader still holds its log at the snapshot %d for a follower that cannot answer", r.snap)
			}
			r.write(t, 5)
		}
		r.c.net.Heal()
		r.c.waitValues(r.written)
	})
}

// The guard's other bounds, on the loop's bookkeeping alone: a transfer
// never reported ends after guardTransferFactor × SnapshotGuardTimeout, and
// every guard ends when the follower leaves the configuration or this node
// stops leading; a guard within its bounds is kept.
func TestSnapshotGuardEnds(t *testing.T) {
	start := time.Unix(1000, 0)
	now := start
	newNode := func() *Node {
		return &Node{
			id: "n1", log: slog.New(slog.DiscardHandler), clock: func() time.Time { return now },
			cfg:    Config{SnapshotGuardTimeout: time.Second, SnapshotGuardBytes: 1 << 20},
			guards: map[string]*snapGuard{},
		}
	}
	leader := consensus.Status{Role: consensus.RoleLeader, Match: map[string]uint64{"n2": 3, "n3": 3},
		Conf: consensus.ConfState{Members: []consensus.Member{{ID: "n1", Voter: true}, {ID: "n2", Voter: true}, {ID: "n3", Voter: true}}}}
	guard := func() *snapGuard { return &snapGuard{index: 10, sent: start, progress: start} }
	held := func(n *Node) []string { return slices.Sorted(maps.Keys(n.guards)) }

	n := newNode()
	n.guards["n2"], n.guards["n3"] = guard(), guard()
	n.guards["n3"].acked, n.guards["n3"].match = true, 3
	now = start.Add(guardTransferFactor*time.Second - time.Millisecond)
	n.checkGuards(leader)
	if got := held(n); !slices.Equal(got, []string{"n2"}) {
		t.Fatalf("just under the in-flight bound (n3 acknowledged, no progress for longer than the timeout): guards %q, want [n2]", got)
	}
	now = start.Add(guardTransferFactor*time.Second + time.Millisecond)
	n.checkGuards(leader)
	if got := held(n); len(got) != 0 {
		t.Fatalf("a transfer in flight past the bound still holds the log: guards %q", got)
	}

	n = newNode()
	now = start
	n.guards["n2"], n.guards["n3"] = guard(), guard()
	left := leader
	left.Conf.Members = left.Conf.Members[:2]
	n.checkGuards(left)
	if got := held(n); !slices.Equal(got, []string{"n2"}) {
		t.Fatalf("n3 left the configuration: guards %q, want [n2]", got)
	}
	follower := leader
	follower.Role = consensus.RoleFollower
	n.checkGuards(follower)
	if got := held(n); len(got) != 0 {
		t.Fatalf("this node no longer leads: guards %q", got)
	}
}
