package node

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

// leaderStallStore slows only the current leader's Saves.
type leaderStallStore struct {
	LogStore
	id     string
	leader *atomic.Value // string
	stall  time.Duration
}

func (s leaderStallStore) Save(hs consensus.HardState, ents []consensus.Entry, snap *consensus.SnapshotMeta) error {
	if l, _ := s.leader.Load().(string); l == s.id && len(ents) > 0 {
		time.Sleep(s.stall) // the simulated slow disk, not a synchronisation
	}
	return s.LogStore.Save(hs, ents, snap)
}

// Regression test for stale lease reads (found by test/ TestJepsen): the
// leader sends a new commit index to its followers together with new
// entries, before its own slow fsync of those entries, and publishes its
// Status only after it. A follower may therefore apply — and acknowledge —
// a write while the leader's published commit index is still older; a
// lease read must use LeaseReadIndex, which reads the core's commit index
// inside the loop and so covers whatever any follower has applied.
func TestLeaseReadIndexCoversWhatFollowersApplied(t *testing.T) {
	c := newCluster(t, 3)
	var leader atomic.Value
	leader.Store("")
	c.wrap = func(id string, st LogStore) LogStore {
		return leaderStallStore{LogStore: st, id: id, leader: &leader, stall: c.et / 8}
	}
	c.startAll()
	l := c.leader()
	f := c.followers(l)[0]
	propose(t, l, "warm")
	c.waitValues([]string{"warm"})
	leader.Store(l.ID())

	// Keep the leader busy so that every Ready that advances its commit
	// index also carries entries to save (slowly).
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			_ = l.Propose(ctx, []byte(fmt.Sprintf("bg%d", i)))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	checked, published := 0, 0
	deadline := time.Now().Add(waitFor)
	for i := 0; checked < 40 && time.Now().Before(deadline); i++ {
		applied := f.AppliedIndex()
		pub := l.Status().Commit // what lease reads used before the fix
		idx, ok, err := l.LeaseReadIndex(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		checked++
		if idx < applied {
			t.Fatalf("lease read index %d is behind follower %s's applied index %d: a lease read would miss an acknowledged write", idx, f.ID(), applied)
		}
		if pub < applied {
			published++ // the published index alone would have been stale
		}
		time.Sleep(3 * time.Millisecond)
	}
	if checked == 0 {
		t.Fatal("the leader never held a lease")
	}
	t.Logf("%d lease read indexes checked; the published commit index was behind the follower %d times", checked, published)
}
