package server

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestConfigClockDrivesTheLease checks that Config.Clock reaches the Raft
// lease: with the real clock a single-node leader holds a lease; with a
// clock that leaps an hour at every reading, every lease has expired by the
// time it is checked, and lease reads fall back to read-index reads.
func TestConfigClockDrivesTheLease(t *testing.T) {
	normal := startCluster(t, 1)
	normal.waitLeader()
	deadline := time.Now().Add(10 * time.Second)
	for !normal.servers[0].node.LeaseValid() {
		if time.Now().After(deadline) {
			t.Fatal("with the real clock the leader never got a lease")
		}
		time.Sleep(10 * time.Millisecond)
	}

	var mu sync.Mutex
	leap := time.Now()
	leaping := startClusterWith(t, 1, func(c *Config) {
		c.Clock = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			leap = leap.Add(time.Hour)
			return leap
		}
	})
	leaping.waitLeader()
	conn := leaping.connect(0, "lease")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v INTEGER)"); err != nil {
		t.Fatal(err)
	}
	// Over many ticks (50 ms each with these timings) the lease never holds.
	for range 30 {
		if leaping.servers[0].node.LeaseValid() {
			t.Fatal("a leader whose clock leaps an hour per reading holds a lease: Config.Clock does not reach the lease")
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("lease read without a lease (read-index fallback): %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
