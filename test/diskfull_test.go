package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftsql/raftsql/test/cluster"
)

// TestDiskFull puts one follower's data directory on a small tmpfs and
// fills it: the majority keeps acknowledging writes, the full node fails
// cleanly (an error in its log, never a corrupt store), nothing
// acknowledged is lost, and once the space returns the node catches up.
// It needs root (mount); elsewhere it is skipped.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestDiskFull mounts a tmpfs and needs root")
	}
	const victim = "n3"
	var mountpoint string
	c := startClusterWith(t, cluster.Options{Nodes: 3}, func(c *cluster.Cluster) {
		n := c.Node(victim)
		mountpoint = n.DataDir
		if err := os.MkdirAll(mountpoint, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mountpoint).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs here (%v: %s)", err, strings.TrimSpace(string(out)))
		}
		t.Cleanup(func() {
			c.Close()
			if t.Failed() {
				// Keep what the full disk held: the tmpfs goes away.
				if err := os.CopyFS(filepath.Join(n.Dir, "data-on-tmpfs"), os.DirFS(mountpoint)); err != nil {
					t.Logf("copying %s: %v", mountpoint, err)
				}
			}
			if out, err := exec.Command("umount", "-l", mountpoint).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v %s", mountpoint, err, out)
			}
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The full node must be a follower: the test is about a minority.
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if leader.ID == victim {
		if err := c.TransferLeadership(ctx, "n1"); err != nil {
			t.Fatalf("moving leadership off %s: %v", victim, err)
		}
		err := retry(ctx, func() error {
			l, _, err := c.Leader(ctx)
			if err == nil && l.ID == victim {
				err = fmt.Errorf("%s still leads", victim)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var writer *cluster.Node
	for _, n := range c.Nodes() {
		if n.ID != victim {
			writer = n
			break
		}
	}
	conn := connect(ctx, t, writer, "")
	mustExec(ctx, t, conn, "CREATE TABLE fill (id INTEGER PRIMARY KEY, b BLOB NOT NULL)")
	const rows = 200 // about 16 KB of blob and 32 KB of log text each: ~10 MB
	acked := 0
	for i := 0; i < rows; i++ {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := conn.Exec(wctx, "INSERT INTO fill (id, b) VALUES ($1, randomblob(16384))", i)
		wcancel()
		if err != nil {
			t.Fatalf("insert %d through %s with only %s's disk full: %v", i, writer.ID, victim, err)
		}
		acked++
	}
	n3 := c.Node(victim)
	exited, _ := n3.Exited()
	select {
	case <-exited:
		_, exitErr := n3.Exited()
		t.Logf("%s exited when its disk filled: %v (see %s)", victim, exitErr, n3.LogPath)
	default:
		s, err := n3.Status(ctx)
		t.Logf("%s is still running with a full disk: status %+v, %v", victim, s, err)
	}
	logText, _ := os.ReadFile(n3.LogPath)
	if lt := strings.ToLower(string(logText)); !strings.Contains(lt, "no space") && !strings.Contains(lt, "disk is full") {
		t.Errorf("%s's log does not say that its disk is full", victim)
	}

	// Space returns.
	if out, err := exec.Command("mount", "-o", "remount,size=512m", mountpoint).CombinedOutput(); err != nil {
		t.Fatalf("growing the tmpfs: %v %s", err, out)
	}
	if !n3.Running() {
		if err := n3.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The node should recover by itself (or, if it exited, after a
	// restart) once there is space again.
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	err = n3.WaitReady(rctx)
	if err == nil {
		err = c.WaitConverged(rctx)
	}
	rcancel()
	if err != nil {
		t.Errorf("%s did not recover once the space returned: %v", victim, err)
		// Its store must still be sound: a restart catches up.
		if n3.Running() {
			if err := n3.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		if err := n3.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n3.WaitReady(ctx); err != nil {
			t.Fatalf("%s restarted after its disk was full: %v", victim, err)
		}
	}
	q := "SELECT count(*), CAST(sum(length(b)) AS INTEGER) FROM fill"
	got := compareReplicas(ctx, t, c, q, "SELECT id, hex(substr(b, 1, 8)) FROM fill ORDER BY id")[q]
	want := fmt.Sprintf("[[%d %d]]", acked, acked*16384)
	if fmt.Sprint(got) != want {
		t.Errorf("fill holds %v, want %s (every acknowledged insert)", got, want)
	}
}
