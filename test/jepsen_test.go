package test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/raftsql/raftsql/test/cluster"
	"github.com/raftsql/raftsql/test/faultproxy"
	"github.com/raftsql/raftsql/test/jepsen"
)

// jepsenCluster adapts test/cluster to what test/jepsen needs.
type jepsenCluster struct{ c *cluster.Cluster }

// IDs are the members: a node removed by a membership nemesis leaves
// them when its removal starts, a spare enters them when it joins.
func (j jepsenCluster) IDs() []string               { return j.c.MemberIDs() }
func (j jepsenCluster) DSN(id, level string) string { return j.c.Node(id).DSN(level) }

func (j jepsenCluster) Leader(ctx context.Context) (string, error) {
	l, _, err := j.c.Leader(ctx)
	if err != nil {
		return "", err
	}
	return l.ID, nil
}

func (j jepsenCluster) Kill(id string) error                         { return j.c.Node(id).Kill() }
func (j jepsenCluster) Restart(ctx context.Context, id string) error { return j.c.Node(id).Start(ctx) }
func (j jepsenCluster) Pause(id string) error                        { return j.c.Node(id).Pause() }
func (j jepsenCluster) Resume(id string) error                       { return j.c.Node(id).Resume() }

func mode(blackhole bool) faultproxy.CutMode {
	if blackhole {
		return faultproxy.Blackhole
	}
	return faultproxy.Refuse
}

func (j jepsenCluster) Partition(blackhole bool, groups ...[]string) {
	j.c.Net.Partition(mode(blackhole), groups...)
}

func (j jepsenCluster) Cut(from, to string, blackhole bool) { j.c.Net.Cut(from, to, mode(blackhole)) }
func (j jepsenCluster) Heal()                               { j.c.Net.Heal() }

func (j jepsenCluster) Delay(from, to string, d, jitter time.Duration) {
	j.c.Net.SetRule(faultproxy.Link{From: from, To: to}, faultproxy.Rule{Delay: d, Jitter: jitter})
}

func (j jepsenCluster) TransferLeadership(ctx context.Context, id string) error {
	err := j.c.TransferLeadership(ctx, id)
	if errors.Is(err, cluster.ErrUnsupported) {
		return fmt.Errorf("%w: %w", jepsen.ErrUnsupported, err)
	}
	return err
}

func (j jepsenCluster) HealAll(ctx context.Context) error {
	j.c.Net.Heal()
	for _, n := range j.c.Members() {
		if n.Paused() {
			if err := n.Resume(); err != nil {
				return err
			}
		}
		if !n.Running() {
			if err := n.Start(ctx); err != nil {
				return err
			}
		}
	}
	return j.c.WaitReady(ctx)
}

func (j jepsenCluster) WaitConverged(ctx context.Context) error { return j.c.WaitConverged(ctx) }

func (j jepsenCluster) RemoveMember(ctx context.Context, id string) error {
	return j.c.RemoveMember(ctx, id)
}

func (j jepsenCluster) Rejoin(ctx context.Context, id string, learner bool) error {
	return j.c.Rejoin(ctx, id, learner)
}

func (j jepsenCluster) Spare() (string, error) {
	n, err := j.c.SpareNode()
	if err != nil {
		return "", err
	}
	return n.ID, nil
}

func (j jepsenCluster) Retire(id string) error {
	n := j.c.Node(id)
	if n == nil || !n.Running() {
		return nil
	}
	return n.Kill()
}

func (j jepsenCluster) MessageFaults(from, to string, drop, dup, reorder float64) {
	j.c.Net.SetRule(faultproxy.Link{From: from, To: to}, faultproxy.Rule{Drop: drop, Duplicate: dup, Reorder: reorder})
}

func (j jepsenCluster) CommitIndex(ctx context.Context) (uint64, error) {
	_, st, err := j.c.Leader(ctx)
	return st.CommitIndex, err
}

// TestJepsen runs the register, bank and set workloads on a three-node
// cluster under a seeded mix of faults and checks the history. The default
// is a short run for CI; -duration (or $DURATION) and -seed (or $SEED) set
// a long or reproducible one:
//
//	go test ./test/ -run TestJepsen -v -timeout 60m -args -duration=10m -seed=42 [-nodes=5]
func TestJepsen(t *testing.T) {
	sd := seed(t)
	dur := duration(t, 45*time.Second)
	t.Logf("TestJepsen: seed %d, duration %v (reproduce the fault schedule with -args -seed=%d -duration=%v)", sd, dur, sd, dur)
	c := startCluster(t, cluster.Options{Nodes: *flagNodes, Seed: sd, SnapshotEntries: 1000})
	dir := c.Nodes()[0].Dir
	dir = filepath.Dir(dir)
	logf, err := os.Create(filepath.Join(dir, "jepsen.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), dur+10*time.Minute)
	defer cancel()
	var nem jepsen.NemesisConfig
	if dur < 2*time.Minute {
		// The short (CI) run starts with message faults and one
		// membership change (which one follows the seed); the rest of
		// it is the seeded mix.
		nem.First = []string{jepsen.MessageFaults, jepsen.MembershipNemeses[sd%uint64(len(jepsen.MembershipNemeses))]}
		t.Logf("short run: first faults %v", nem.First)
	}
	res, err := jepsen.Run(ctx, jepsen.Config{
		Cluster:  jepsenCluster{c},
		Duration: dur,
		Seed:     sd,
		Logger:   slog.New(slog.NewTextHandler(logf, nil)),
		Nemesis:  nem,
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, tails(dir, *flagNodes))
	}
	if werr := res.WriteArtifacts(dir); werr != nil {
		t.Errorf("writing artifacts: %v", werr)
	}
	t.Logf("TestJepsen summary:\n%s", res.Summary())
	for _, p := range res.Problems {
		t.Errorf("%s", p)
	}
	// jepsenCluster supports every nemesis: one switched off means a
	// fault the run was meant to inject never happened.
	for k, why := range res.Disabled {
		t.Errorf("nemesis %s switched off: %s", k, why)
	}
	if len(res.Register.Ops()) == 0 || len(res.Set.Ops()) == 0 {
		t.Errorf("no operations ran")
	}
	// A node removed and not back (its rejoin failed) is not compared.
	for _, n := range c.Nodes() {
		if n.Retired() && n.Running() {
			n.Kill()
		}
	}
	compareBackups(ctx, t, c)
	st := c.Net.Stats()
	var dropped, refused int64
	for _, v := range st.Dropped {
		dropped += v
	}
	for _, v := range st.Refused {
		refused += v
	}
	var fr faultproxy.FrameStats
	for _, v := range st.Frames {
		fr.Forwarded += v.Forwarded
		fr.Dropped += v.Dropped
		fr.Duplicated += v.Duplicated
		fr.Reordered += v.Reordered
		fr.SnapshotDropped += v.SnapshotDropped
		fr.SnapshotDuplicated += v.SnapshotDuplicated
	}
	t.Logf("fault proxy: %d bytes dropped (blackholes and dropped frames), %d connections refused; frames: %d forwarded, %d dropped, %d duplicated, %d reordered (snapshot frames: %d dropped, %d duplicated)",
		dropped, refused, fr.Forwarded, fr.Dropped, fr.Duplicated, fr.Reordered, fr.SnapshotDropped, fr.SnapshotDuplicated)
}

// TestMembershipNemesisHarness checks the harness side of the membership
// nemeses on real processes: a removed follower comes back wiped through
// --join and advertises its proxy front door (cutting it in the proxy
// really cuts it off), and a spare joins as a learner and is removed.
func TestMembershipNemesisHarness(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3, SnapshotEntries: 50})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader, followers := leaderAndFollowers(ctx, t, c)
	conn := connect(ctx, t, leader, "")
	defer conn.Close(ctx)
	mustExec(ctx, t, conn, "CREATE TABLE mh (id INTEGER PRIMARY KEY)")
	for i := 0; i < 120; i++ {
		mustExec(ctx, t, conn, "INSERT INTO mh (id) VALUES ($1)", i)
	}

	f := followers[0]
	if err := c.RemoveMember(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if !f.Retired() || slices.Contains(c.MemberIDs(), f.ID) {
		t.Fatalf("%s removed but still listed as a member: %v", f.ID, c.MemberIDs())
	}
	if err := c.Rejoin(ctx, f.ID, false); err != nil {
		t.Fatalf("rejoin %s: %v (see %s)", f.ID, err, f.LogPath)
	}
	conf, err := c.Configuration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range conf {
		if m.ID == f.ID && (m.RaftAddr != f.FrontDoor || !m.Voter) {
			t.Fatalf("rejoined %s is %+v; want a voter at its front door %s", f.ID, m, f.FrontDoor)
		}
	}
	if k := countRows(ctx, t, f, "linearizable", "mh"); k != 120 {
		t.Fatalf("the rejoined %s sees %d rows, want 120", f.ID, k)
	}

	// Cut off in the proxy, the rejoined node gets nothing new: its
	// links go through its front door.
	var others []string
	for _, id := range c.MemberIDs() {
		if id != f.ID {
			others = append(others, id)
		}
	}
	c.Net.Partition(faultproxy.Refuse, []string{f.ID}, others)
	l, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lc := connect(ctx, t, l, "")
	defer lc.Close(ctx)
	for i := 120; i < 140; i++ {
		mustExec(ctx, t, lc, "INSERT INTO mh (id) VALUES ($1)", i)
	}
	_, ls, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := f.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fs.AppliedIndex >= ls.CommitIndex {
		t.Fatalf("%s applied %d ≥ leader commit %d while cut off in the proxy: its links bypass the proxy", f.ID, fs.AppliedIndex, ls.CommitIndex)
	}
	c.Net.Heal()
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}

	// A spare joins as a learner and leaves again.
	spare, err := c.SpareNode()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Rejoin(ctx, spare.ID, true); err != nil {
		t.Fatalf("spare %s: %v (see %s)", spare.ID, err, spare.LogPath)
	}
	if k := countRows(ctx, t, spare, "linearizable", "mh"); k != 140 {
		t.Fatalf("the learner %s sees %d rows, want 140", spare.ID, k)
	}
	// Rejoin again while it is a member (a repair after a join that
	// did not complete): removed, wiped and joined once more.
	if err := c.Rejoin(ctx, spare.ID, true); err != nil {
		t.Fatalf("rejoin of the member %s: %v (see %s)", spare.ID, err, spare.LogPath)
	}
	if k := countRows(ctx, t, spare, "linearizable", "mh"); k != 140 {
		t.Fatalf("the learner %s sees %d rows after its second join, want 140", spare.ID, k)
	}
	if err := c.RemoveMember(ctx, spare.ID); err != nil {
		t.Fatal(err)
	}
	if err := spare.Kill(); err != nil {
		t.Fatal(err)
	}
	if again, err := c.SpareNode(); err != nil || again != spare {
		t.Fatalf("SpareNode = %v, %v; want the retired %s again", again, err, spare.ID)
	}
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	compareBackups(ctx, t, c)
}
