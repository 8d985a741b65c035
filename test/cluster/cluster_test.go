package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/raftsql/raftsql/test/faultproxy"
)

// buildFakenode builds the fakenode binary into a temporary directory
// and returns its path.
func buildFakenode(ctx context.Context, t *testing.T) string {
	t.Helper()
	root, err := ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "fakenode")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./test/cluster/internal/fakenode")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fakenode: %v\n%s", err, out)
	}
	return bin
}

// startFake starts a cluster of fakenode processes.
func startFake(t *testing.T, nodes int) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := buildFakenode(ctx, t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	c, err := Start(ctx, Options{Binary: bin, Nodes: nodes, Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

type fakeStatus struct {
	HeardFrom []string `json:"heard_from"`
}

// waitHeard polls node id until the set of peers it hears from is want.
func waitHeard(t *testing.T, c *Cluster, id string, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := poll(ctx, id+" hearing "+fmt.Sprint(want), func() error {
		var s fakeStatus
		if _, err := c.Node(id).Do(ctx, http.MethodGet, "/status", nil, &s); err != nil {
			return err
		}
		if !slices.Equal(s.HeardFrom, want) {
			return fmt.Errorf("%s hears %v", id, s.HeardFrom)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHarnessLifecycleAndFaults(t *testing.T) {
	c := startFake(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	l, _, err := c.Leader(ctx)
	if err != nil || l.ID != "n1" {
		t.Fatalf("Leader = %v, %v; want n1", l, err)
	}
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	// Every link passes through the proxy and the dialer is identified
	// from /proc.
	waitHeard(t, c, "n1", "n2", "n3")
	waitHeard(t, c, "n2", "n1", "n3")
	waitHeard(t, c, "n3", "n1", "n2")

	c.Net.Partition(faultproxy.Refuse, []string{"n1"}, []string{"n2", "n3"})
	waitHeard(t, c, "n1")
	waitHeard(t, c, "n2", "n3")
	c.Net.Heal()
	waitHeard(t, c, "n1", "n2", "n3")

	// One way, as a blackhole: n3 stops hearing n2, n2 still hears n3.
	c.Net.Cut("n2", "n3", faultproxy.Blackhole)
	waitHeard(t, c, "n3", "n1")
	waitHeard(t, c, "n2", "n1", "n3")
	c.Net.Heal()
	waitHeard(t, c, "n3", "n1", "n2")

	// kill -9 and restart keep the addresses.
	n3 := c.Node("n3")
	pid := n3.Pid()
	if err := n3.Kill(); err != nil {
		t.Fatal(err)
	}
	if n3.Running() {
		t.Fatal("n3 running after Kill")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("pid %d still exists after Kill: %v", pid, err)
	}
	if err := n3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Start(ctx); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Start: %v, want ErrRunning", err)
	}
	if err := n3.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitHeard(t, c, "n1", "n2", "n3")

	// A paused node does not answer; the others carry on.
	n2 := c.Node("n2")
	if err := n2.Pause(); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	if _, err := n2.Status(short); err == nil {
		t.Fatal("a SIGSTOPped node answered /status")
	}
	cancelShort()
	if st := c.Statuses(ctx); len(st) != 2 {
		t.Fatalf("Statuses with n2 paused: %v", st)
	}
	waitHeard(t, c, "n1", "n3")
	if err := n2.Resume(); err != nil {
		t.Fatal(err)
	}
	waitHeard(t, c, "n1", "n2", "n3")

	if err := c.TransferLeadership(ctx, "n2"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("TransferLeadership on fakenode: %v, want ErrUnsupported", err)
	}
	if err := n2.Stop(ctx); err == nil {
		// fakenode dies of SIGTERM without a clean exit status.
		t.Log("fakenode exited cleanly on SIGTERM")
	}

	pids := c.Pids()
	paused := c.Node("n1")
	if err := paused.Pause(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for p := range pids {
		if err := syscall.Kill(p, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("pid %d survives Close: %v", p, err)
		}
	}
	if _, err := os.Stat(c.Node("n1").LogPath); err != nil {
		t.Fatal(err)
	}
}

func TestLeaderNeedsMajority(t *testing.T) {
	c := &Cluster{nodes: []*Node{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}}}
	for _, n := range c.nodes {
		n.c = c
	}
	cases := []struct {
		name string
		st   map[string]Status
		want string
	}{
		{"agreed", map[string]Status{
			"n1": {Role: "leader", Term: 2, Leader: "n1"},
			"n2": {Role: "follower", Term: 2, Leader: "n1"},
		}, "n1"},
		{"stale leader alone", map[string]Status{
			"n1": {Role: "leader", Term: 2, Leader: "n1"},
			"n2": {Role: "follower", Term: 3, Leader: ""},
			"n3": {Role: "candidate", Term: 3, Leader: ""},
		}, ""},
		{"two claims, one majority", map[string]Status{
			"n1": {Role: "leader", Term: 2, Leader: "n1"},
			"n2": {Role: "leader", Term: 3, Leader: "n2"},
			"n3": {Role: "follower", Term: 3, Leader: "n2"},
		}, "n2"},
		{"followers agree but leader silent", map[string]Status{
			"n2": {Role: "follower", Term: 3, Leader: "n1"},
			"n3": {Role: "follower", Term: 3, Leader: "n1"},
		}, ""},
	}
	for _, tc := range cases {
		l, _, err := c.leaderOf(tc.st)
		got := ""
		if err == nil {
			got = l.ID
		} else if !errors.Is(err, ErrNoLeader) {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: leader %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestStartMovesANodeWhosePortWasTaken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := New(Options{Binary: buildFakenode(ctx, t), Nodes: 3, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Someone else binds n2's Raft port before n2 starts.
	n2 := c.Node("n2")
	squatter, err := net.Listen("tcp", n2.RaftAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	old := n2.RaftAddr
	for _, n := range c.Nodes() {
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitStarted(ctx); err != nil {
		t.Fatal(err)
	}
	if n2.RaftAddr == old {
		t.Fatal("n2 kept the taken port")
	}
	waitHeard(t, c, "n1", "n2", "n3") // its front door follows it
}
