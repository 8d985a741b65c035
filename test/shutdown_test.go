package test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/raftsql/raftsql/test/cluster"
)

// TestStopLeaderUnderLoad: SIGTERM on a leader that clients are writing
// to. The leader hands leadership over, statements in flight finish, and
// every client either got its answer or an error that says it is safe to
// retry — 57P01 (the server is stopping), 40001, or a connection error
// before the statement was sent — never a connection cut under a
// statement whose outcome is unknown. Every acknowledged row is there
// afterwards, on every node.
func TestStopLeaderUnderLoad(t *testing.T) {
	c := startCluster(t, cluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader, _ := leaderAndFollowers(ctx, t, c)
	setup := connect(ctx, t, leader, "")
	mustExec(ctx, t, setup, "CREATE TABLE stops (id INTEGER PRIMARY KEY, writer INTEGER NOT NULL)")

	const writers = 6
	var (
		mu      sync.Mutex
		acked   []int
		bad     []string
		ended57 int
	)
	started := make(chan struct{}, writers)
	var wg sync.WaitGroup
	for w := range writers {
		conn := connect(ctx, t, leader, "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := w*1_000_000 + i
				_, err := conn.Exec(ctx, "INSERT INTO stops (id, writer) VALUES ($1, $2)", id, w)
				if i == 10 {
					started <- struct{}{}
				}
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, id)
				case sqlstate(err) == "57P01":
					ended57++
				case sqlstate(err) == "40001", pgconn.SafeToRetry(err):
				default:
					bad = append(bad, fmt.Sprintf("writer %d, row %d: %v", w, id, err))
				}
				mu.Unlock()
				if err != nil && (conn.IsClosed() || ctx.Err() != nil) {
					return
				}
			}
		}()
	}
	for range writers {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("writers did not get going")
		}
	}
	stopped := time.Now()
	if err := leader.Stop(ctx); err != nil {
		t.Fatalf("SIGTERM %s: %v", leader.ID, err)
	}
	wg.Wait()
	t.Logf("%s stopped in %v; %d rows acknowledged, %d sessions ended with 57P01",
		leader.ID, time.Since(stopped).Round(time.Millisecond), len(acked), ended57)
	for _, b := range bad {
		t.Errorf("an error that does not say it is safe to retry: %s", b)
	}
	if ended57 == 0 {
		t.Errorf("no session was told 57P01")
	}
	if logText, err := os.ReadFile(leader.LogPath); err != nil {
		t.Error(err)
	} else if strings.Contains(string(logText), "stopping without handing leadership over") {
		t.Errorf("%s stopped without handing leadership over (see %s)", leader.ID, leader.LogPath)
	}
	if err := leader.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes() {
		conn := connect(ctx, t, n, "linearizable")
		have := map[int]bool{}
		rows, err := conn.Query(ctx, "SELECT id FROM stops")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			have[id] = true
		}
		missing := 0
		for _, id := range acked {
			if !have[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d acknowledged rows missing", n.ID, missing, len(acked))
		}
	}
}
