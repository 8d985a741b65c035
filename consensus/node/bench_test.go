package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
	"github.com/raftsql/raftsql/store"
)

// benchFSM wakes the proposer waiting for each entry (keyed by the first 8
// bytes of its data) when the entry is applied.
type benchFSM struct {
	mu      sync.Mutex
	applied uint64
	waiters map[uint64]chan struct{}
}

func (f *benchFSM) Apply(ctx context.Context, ents []consensus.Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range ents {
		f.applied = e.Index
		if e.Type != consensus.EntryNormal || len(e.Data) < 8 {
			continue
		}
		k := binary.BigEndian.Uint64(e.Data)
		if ch, ok := f.waiters[k]; ok {
			close(ch)
			delete(f.waiters, k)
		}
	}
	return nil
}

func (f *benchFSM) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

func (f *benchFSM) wait(k uint64) chan struct{} {
	ch := make(chan struct{})
	f.mu.Lock()
	f.waiters[k] = ch
	f.mu.Unlock()
	return ch
}

// BenchmarkReplicate measures committed (applied on the leader) entries per
// second and entries per leader fsync with 3 in-process nodes on real bolt
// stores, for 1, 16 and 256 concurrent proposers of 200-byte entries. Each
// proposer proposes on the leader and waits until its entry is applied
// there before proposing the next.
//
//	go test -run '^$' -bench BenchmarkReplicate -benchtime 3s ./consensus/node/
func BenchmarkReplicate(b *testing.B) {
	ids := []string{"n1", "n2", "n3"}
	net := transport.NewNetwork(transport.NetworkConfig{Seed: 1})
	var peers []consensus.Member
	for _, id := range ids {
		peers = append(peers, consensus.Member{ID: id, Addr: "mem:" + id, Voter: true})
	}
	dir := b.TempDir()
	ctx := context.Background()
	nodes := map[string]*Node{}
	stores := map[string]*store.Store{}
	fsms := map[string]*benchFSM{}
	for i, id := range ids {
		st, err := store.Open(ctx, filepath.Join(dir, id), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		fsms[id] = &benchFSM{waiters: map[uint64]chan struct{}{}}
		n, err := Start(ctx, Config{
			ID: id, Peers: peers, Store: st, Transport: net.Transport(transport.MemConfig{ID: id, Addr: "mem:" + id}),
			StateMachine: fsms[id], RandSeed: uint64(i + 1),
		})
		if err != nil {
			b.Fatal(err)
		}
		nodes[id], stores[id] = n, st
	}
	defer func() {
		for _, n := range nodes {
			_ = n.Stop(ctx)
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	leadID, err := nodes["n1"].WaitLeader(wctx)
	if err != nil {
		b.Fatal(err)
	}
	lead := nodes[leadID]
	for lead.Status().Role != consensus.RoleLeader {
		select {
		case <-lead.LeaderChanged():
		case <-wctx.Done():
			b.Fatal("leader never took office")
		}
	}
	var key atomic.Uint64
	for _, p := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("proposers=%d", p), func(b *testing.B) {
			benchProposers(b, lead, fsms[lead.ID()], stores[lead.ID()], p, &key)
		})
	}
}

func benchProposers(b *testing.B, lead *Node, fsm *benchFSM, st *store.Store, proposers int, key *atomic.Uint64) {
	ctx := context.Background()
	var left atomic.Int64
	left.Store(int64(b.N))
	before := st.Stats()
	start := time.Now()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range proposers {
		wg.Go(func() {
			data := make([]byte, 200)
			for left.Add(-1) >= 0 {
				k := key.Add(1)
				d := append([]byte(nil), data...)
				binary.BigEndian.PutUint64(d, k)
				done := fsm.wait(k)
				if err := lead.Propose(ctx, d); err != nil {
					b.Error(err)
					return
				}
				<-done
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	elapsed := time.Since(start)
	after := st.Stats()
	fsyncs := after.Commits - before.Commits
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
	if fsyncs > 0 {
		b.ReportMetric(float64(b.N)/float64(fsyncs), "entries/fsync")
		b.ReportMetric(float64((after.SyncTime-before.SyncTime).Microseconds())/float64(fsyncs), "µs/fsync")
	}
}
