package test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/raftsql/raftsql/test/cluster"
)

// waitMember polls the leader's configuration (for up to 30 s) until id is
// in it with the given voter flag (present) or absent (!present); it
// reports whether that happened.
func waitMember(ctx context.Context, t *testing.T, c *cluster.Cluster, id string, present, voter bool) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := retry(ctx, func() error {
		_, st, err := c.Leader(ctx)
		if err != nil {
			return err
		}
		for _, m := range st.Configuration {
			if m.ID == id {
				if !present {
					return fmt.Errorf("%s still in the configuration %+v", id, st.Configuration)
				}
				if m.Voter != voter {
					return fmt.Errorf("%s has voter=%v, want %v", id, m.Voter, voter)
				}
				return nil
			}
		}
		if present {
			return fmt.Errorf("%s not in the configuration %+v", id, st.Configuration)
		}
		return nil
	})
	if err != nil {
		t.Log(err)
		return false
	}
	return true
}

// countRows reads count(*) of table on node n at level.
func countRows(ctx context.Context, t *testing.T, n *cluster.Node, level, table string) int {
	t.Helper()
	conn := connect(ctx, t, n, level)
	defer conn.Close(ctx)
	var k int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&k); err != nil {
		t.Fatalf("count on %s (%s): %v", n.ID, level, err)
	}
	return k
}

// TestMembership adds a voter and a learner to a running cluster with
// --join, removes a voter, and checks that the removed node, still
// running, does not disturb the cluster.
func TestMembership(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader, followers := leaderAndFollowers(ctx, t, c)
	conn := connect(ctx, t, leader, "")
	mustExec(ctx, t, conn, "CREATE TABLE members_t (id INTEGER PRIMARY KEY)")
	for i := 0; i < 20; i++ {
		mustExec(ctx, t, conn, "INSERT INTO members_t (id) VALUES ($1)", i)
	}

	// A voter joins through a follower (any member will do).
	n4, err := c.AddNode(ctx, followers[0], false)
	if err != nil {
		t.Fatal(err)
	}
	jctx, jcancel := context.WithTimeout(ctx, 30*time.Second)
	err = n4.WaitReady(jctx)
	jcancel()
	if err != nil {
		t.Errorf("--join through follower %s: %v (see %s)", followers[0].ID, err, n4.LogPath)
		// Go on through the leader to test the rest.
		if err := n4.Kill(); err != nil {
			t.Fatal(err)
		}
		n4.SetJoin(leader)
		if err := n4.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n4.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !waitMember(ctx, t, c, n4.ID, true, true) {
		t.Errorf("%s joined as a voter-to-be but was not promoted (see the leader's log)", n4.ID)
	}
	if k := countRows(ctx, t, n4, "linearizable", "members_t"); k != 20 {
		t.Errorf("the new voter %s sees %d rows, want 20", n4.ID, k)
	}
	w4 := connect(ctx, t, n4, "")
	mustExec(ctx, t, w4, "INSERT INTO members_t (id) VALUES (20)")

	// A learner joins through the leader and stays a non-voter.
	n5, err := c.AddNode(ctx, leader, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := n5.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if !waitMember(ctx, t, c, n5.ID, true, false) {
		t.Fatalf("learner %s not in the configuration", n5.ID)
	}
	if k := countRows(ctx, t, n5, "linearizable", "members_t"); k != 21 {
		t.Errorf("the learner %s sees %d rows, want 21", n5.ID, k)
	}
	if s, err := n5.Status(ctx); err != nil || s.Role != "learner" {
		t.Errorf("learner status: %+v, %v; want role learner", s, err)
	}

	// Remove n4 through a follower: the request is forwarded to the
	// leader (DESIGN.md's contract).
	via := followers[1]
	if _, err := via.Do(ctx, http.MethodPost, "/remove", map[string]string{"id": n4.ID}, nil); err != nil {
		t.Errorf("POST /remove on follower %s was not forwarded to the leader: %v", via.ID, err)
		l, lerr := c.WaitLeader(ctx)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if _, err := l.Do(ctx, http.MethodPost, "/remove", map[string]string{"id": n4.ID}, nil); err != nil {
			t.Fatalf("POST /remove on the leader: %v", err)
		}
	}
	if !waitMember(ctx, t, c, n4.ID, false, false) {
		t.Fatalf("%s still a member after POST /remove", n4.ID)
	}

	// The removed node is still running; the cluster carries on without
	// a new election while it takes writes.
	_, before, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 21; i < 61; i++ {
		mustExec(ctx, t, conn, "INSERT INTO members_t (id) VALUES ($1)", i)
	}
	_, after, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Term != before.Term || after.ID != before.ID {
		t.Errorf("leadership changed while the removed node ran: %s term %d → %s term %d", before.ID, before.Term, after.ID, after.Term)
	}
	if err := n4.Kill(); err != nil {
		t.Fatal(err)
	}
	q := "SELECT count(*), CAST(sum(id) AS INTEGER) FROM members_t"
	got := compareReplicas(ctx, t, c, q)[q]
	if fmt.Sprint(got) != "[[61 1830]]" {
		t.Errorf("members_t: %v, want 61 rows", got)
	}
}
