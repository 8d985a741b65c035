package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/raftsql/raftsql/test/cluster"
	"github.com/raftsql/raftsql/test/faultproxy"
)

// TestFailover drives leadership through the faults of the nemesis one at
// a time, without clients: after each fault the survivors elect a new
// leader, a deposed leader steps down, and once healed the cluster agrees
// again with every node ready.
func TestFailover(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// newLeader waits for a leader other than old, agreed by a majority.
	newLeader := func(what string, old *cluster.Node) *cluster.Node {
		t.Helper()
		start := time.Now()
		var l *cluster.Node
		err := retry(ctx, func() error {
			var err error
			l, _, err = c.Leader(ctx)
			if err != nil {
				return err
			}
			if l == old {
				return fmt.Errorf("%s still leads", old.ID)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: no new leader: %v", what, err)
		}
		t.Logf("%s: %s leads after %v", what, l.ID, time.Since(start).Round(time.Millisecond))
		return l
	}
	// stepsDown waits until n no longer claims to lead.
	stepsDown := func(what string, n *cluster.Node) {
		t.Helper()
		err := retry(ctx, func() error {
			s, err := n.Status(ctx)
			if err != nil {
				return err
			}
			if s.Role == "leader" {
				return fmt.Errorf("%s still claims leadership in term %d", n.ID, s.Term)
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	healed := func(what string) {
		t.Helper()
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("after %s: %v", what, err)
		}
		if err := c.WaitConverged(ctx); err != nil {
			t.Fatalf("after %s: %v", what, err)
		}
	}

	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, blackhole := range []bool{false, true} {
		mode := map[bool]faultproxy.CutMode{false: faultproxy.Refuse, true: faultproxy.Blackhole}[blackhole]
		what := "leader isolated (" + mode.String() + ")"
		var others []string
		for _, n := range c.Nodes() {
			if n != leader {
				others = append(others, n.ID)
			}
		}
		c.Net.Partition(mode, []string{leader.ID}, others)
		next := newLeader(what, leader)
		// Check-quorum: the isolated leader steps down on its own.
		stepsDown(what, leader)
		c.Net.Heal()
		healed(what)
		// Pre-vote: the old leader rejoining does not depose the new one.
		if l, _, err := c.Leader(ctx); err != nil || l != next {
			t.Errorf("%s: after healing the leader is %v (%v), want %s to keep it", what, l, err, next.ID)
		}
		leader = next
	}

	// One way: nobody reaches the leader; it still sends.
	for _, n := range c.Nodes() {
		if n != leader {
			c.Net.Cut(n.ID, leader.ID, faultproxy.Refuse)
		}
	}
	next := newLeader("leader deaf", leader)
	stepsDown("leader deaf", leader)
	c.Net.Heal()
	healed("leader deaf")
	leader = next

	// kill -9 of the leader, restart.
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	next = newLeader("leader killed", leader)
	if err := leader.Start(ctx); err != nil {
		t.Fatal(err)
	}
	healed("leader killed and restarted")
	leader = next

	// SIGSTOP of the leader: the others take over; the paused node
	// wakes up as a follower.
	if err := leader.Pause(); err != nil {
		t.Fatal(err)
	}
	next = newLeader("leader paused", leader)
	if err := leader.Resume(); err != nil {
		t.Fatal(err)
	}
	stepsDown("leader paused and resumed", leader)
	healed("leader paused and resumed")
	leader = next

	// Leadership transfer, when the node serves it.
	var target *cluster.Node
	for _, n := range c.Nodes() {
		if n != leader {
			target = n
			break
		}
	}
	if err := c.TransferLeadership(ctx, target.ID); err != nil {
		t.Logf("leadership transfer: %v", err)
	} else {
		err := retry(ctx, func() error {
			l, _, err := c.Leader(ctx)
			if err != nil {
				return err
			}
			if l != target {
				return fmt.Errorf("leader is %s, not %s", l.ID, target.ID)
			}
			return nil
		})
		if err != nil {
			t.Errorf("transfer to %s: %v", target.ID, err)
		}
	}
}
