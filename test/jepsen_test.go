package test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftsql/raftsql/test/cluster"
	"github.com/raftsql/raftsql/test/faultproxy"
	"github.com/raftsql/raftsql/test/jepsen"
)

// jepsenCluster adapts test/cluster to what test/jepsen needs.
type jepsenCluster struct{ c *cluster.Cluster }

func (j jepsenCluster) IDs() []string               { return j.c.IDs() }
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
	for _, n := range j.c.Nodes() {
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
	res, err := jepsen.Run(ctx, jepsen.Config{
		Cluster:  jepsenCluster{c},
		Duration: dur,
		Seed:     sd,
		Logger:   slog.New(slog.NewTextHandler(logf, nil)),
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
	if len(res.Register.Ops()) == 0 || len(res.Set.Ops()) == 0 {
		t.Errorf("no operations ran")
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
	t.Logf("fault proxy: %d bytes blackholed, %d connections refused", dropped, refused)
}
