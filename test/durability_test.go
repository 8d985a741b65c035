package test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/raftsql/raftsql/test/cluster"
)

func TestRestartKeepsData(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conn := connect(ctx, t, c.Nodes()[1], "")
	mustExec(ctx, t, conn, "CREATE TABLE kept (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
	for i := 0; i < 30; i++ {
		mustExec(ctx, t, conn, "INSERT INTO kept (id, v) VALUES ($1, $2)", i, fmt.Sprintf("value-%d", i))
	}
	conn.Close(ctx)
	q := "SELECT id, v FROM kept ORDER BY id"
	before := compareReplicas(ctx, t, c, q)[q]
	if len(before) != 30 {
		t.Fatalf("kept holds %d rows before the restart", len(before))
	}

	check := func(how string) {
		t.Helper()
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("after %s: %v", how, err)
		}
		for _, n := range c.Nodes() {
			conn := connect(ctx, t, n, "linearizable")
			got, err := dump(ctx, conn, q)
			conn.Close(ctx)
			if err != nil {
				t.Fatalf("after %s, read on %s: %v", how, n.ID, err)
			}
			if !slices.Equal(got, before) {
				t.Errorf("after %s, %s holds %d rows, want the %d written before", how, n.ID, len(got), len(before))
			}
		}
	}

	// A clean stop (SIGTERM) of every node, then a start.
	for _, n := range c.Nodes() {
		sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
		if err := n.Stop(sctx); err != nil {
			t.Errorf("SIGTERM: %v", err)
		}
		scancel()
	}
	for _, n := range c.Nodes() {
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check("a clean restart of every node")

	// kill -9 of every node at once, then a start.
	for _, n := range c.Nodes() {
		if err := n.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes() {
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check("kill -9 of every node")

	// Writes keep working after the restarts.
	conn = connect(ctx, t, c.Nodes()[0], "")
	mustExec(ctx, t, conn, "INSERT INTO kept (id, v) VALUES (1000, 'after')")
	compareReplicas(ctx, t, c, q)
}

// TestKillLeaderLosesNoAckedWrite writes continuously from clients spread
// over every node while the leader is killed with SIGKILL, paused with
// SIGSTOP, and killed again; every acknowledged insert must be on every
// node at the end, once.
func TestKillLeaderLosesNoAckedWrite(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	setup := connect(ctx, t, c.Nodes()[0], "")
	mustExec(ctx, t, setup, "CREATE TABLE acked (id INTEGER NOT NULL, writer INTEGER NOT NULL)")
	setup.Close(ctx)
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}

	_, st0, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var (
		mu      sync.Mutex
		acked   = map[int64]bool{}
		ackedAt []time.Duration
		next    atomic.Int64
	)
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var conn *pgx.Conn
			defer func() {
				if conn != nil {
					conn.Close(context.Background())
				}
			}()
			idx := w
			for wctx.Err() == nil {
				if conn == nil {
					n := c.Nodes()[idx%len(c.Nodes())]
					cctx, cancel := context.WithTimeout(wctx, 3*time.Second)
					var err error
					conn, err = pgx.Connect(cctx, n.DSN(""))
					cancel()
					if err != nil {
						conn = nil
						idx++
						time.Sleep(100 * time.Millisecond)
						continue
					}
				}
				id := next.Add(1)
				octx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := conn.Exec(octx, "INSERT INTO acked (id, writer) VALUES ($1, $2)", id, w)
				cancel()
				if err != nil {
					conn.Close(context.Background())
					conn = nil
					idx++
					continue
				}
				mu.Lock()
				acked[id] = true
				ackedAt = append(ackedAt, time.Since(start))
				mu.Unlock()
			}
		}(w)
	}

	waitAcks := func(n int) {
		t.Helper()
		err := retry(ctx, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(acked) < n {
				return fmt.Errorf("%d acknowledged writes, waiting for %d", len(acked), n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	type fault struct {
		kind, leader string
		at           time.Duration
	}
	var faults []fault
	for _, kind := range []string{"kill -9", "SIGSTOP", "kill -9"} {
		mu.Lock()
		have := len(acked)
		mu.Unlock()
		waitAcks(have + 20)
		leader, err := c.WaitLeader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		faults = append(faults, fault{kind, leader.ID, time.Since(start)})
		if kind == "SIGSTOP" {
			err = leader.Pause()
		} else {
			err = leader.Kill()
		}
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		have = len(acked)
		mu.Unlock()
		// The two survivors must elect a leader and take writes.
		waitAcks(have + 20)
		if kind == "SIGSTOP" {
			err = leader.Resume()
		} else {
			err = leader.Start(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := leader.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	have := len(acked)
	mu.Unlock()
	waitAcks(have + 10)
	stopWriters()
	wg.Wait()

	mu.Lock()
	sort.Slice(ackedAt, func(i, j int) bool { return ackedAt[i] < ackedAt[j] })
	for i, f := range faults {
		// The longest gap without an acknowledged write that began after
		// the fault and before the next one.
		until := time.Duration(1 << 62)
		if i+1 < len(faults) {
			until = faults[i+1].at
		}
		var worst time.Duration
		prev := f.at
		for _, a := range ackedAt {
			if a < f.at {
				prev = a
				continue
			}
			if prev >= until {
				break
			}
			worst = max(worst, a-prev)
			prev = a
		}
		t.Logf("availability: %s of leader %s at %.2fs; longest time without an acknowledged write %v", f.kind, f.leader, f.at.Seconds(), worst.Round(time.Millisecond))
	}
	total := len(acked)
	mu.Unlock()

	q := "SELECT id, count(*) FROM acked GROUP BY id ORDER BY id"
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	// A write may be proposed again after a leader change, but each
	// client write should cost a few log entries at most, not a storm of
	// re-proposals.
	_, st1, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	attempted := next.Load()
	entries := int64(st1.CommitIndex - st0.CommitIndex)
	t.Logf("%d writes attempted, %d log entries committed (%.1f per write)", attempted, entries, float64(entries)/float64(max(attempted, 1)))
	if entries > 4*attempted+50 {
		t.Errorf("%d log entries committed for %d attempted writes: writes are re-proposed in a storm", entries, attempted)
	}
	for _, n := range c.Nodes() {
		conn := connect(ctx, t, n, "stale")
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		present := map[int64]int64{}
		for rows.Next() {
			var id, k int64
			if err := rows.Scan(&id, &k); err != nil {
				t.Fatal(err)
			}
			present[id] = k
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		lost, dup := 0, 0
		for id := range acked {
			if present[id] == 0 {
				lost++
				if lost <= 5 {
					t.Errorf("acknowledged insert %d lost on %s", id, n.ID)
				}
			}
		}
		for id, k := range present {
			if k > 1 {
				dup++
				if dup <= 5 {
					t.Errorf("insert %d applied %d times on %s", id, k, n.ID)
				}
			}
		}
		t.Logf("%s: %d acknowledged inserts, %d lost, %d rows present, %d duplicated", n.ID, total, lost, len(present), dup)
	}
	compareReplicas(ctx, t, c, "SELECT id, writer FROM acked ORDER BY id, writer")
}
