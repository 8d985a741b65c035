package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

// recorder is a Handler that records what it is given.
type recorder struct {
	mu          sync.Mutex
	msgs        []consensus.Message
	unreachable map[string]int
	snaps       map[string][]bool
	addrs       map[string][]string // ObservePeerAddr calls per peer
}

func newRecorder() *recorder {
	return &recorder{unreachable: map[string]int{}, snaps: map[string][]bool{}, addrs: map[string][]string{}}
}

func (r *recorder) ObservePeerAddr(id, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs[id] = append(r.addrs[id], addr)
}

// observed returns the addresses id advertised, in order.
func (r *recorder) observed(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.addrs[id]...)
}

func (r *recorder) Receive(m consensus.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
}

func (r *recorder) ReportUnreachable(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreachable[id]++
}

func (r *recorder) ReportSnapshot(id string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps[id] = append(r.snaps[id], ok)
}

func (r *recorder) received() []consensus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]consensus.Message(nil), r.msgs...)
}

func (r *recorder) unreachableCount(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable[id]
}

func (r *recorder) snapReports(id string) []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.snaps[id]...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// impl builds transports of one implementation for the contract suite.
type impl interface {
	// node returns a new, unstarted transport for id listening on addr
	// ("" picks a fresh address).
	node(t *testing.T, id, addr string, snaps *SnapshotConfig) Transport
	// deadAddr returns an address nobody listens on.
	deadAddr(t *testing.T) string
}

type tcpImpl struct{}

func (tcpImpl) node(t *testing.T, id, addr string, snaps *SnapshotConfig) Transport {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	tr, err := NewTCP(TCPConfig{ID: id, ListenAddr: addr, BackoffMin: time.Millisecond, BackoffMax: 20 * time.Millisecond, Snapshots: snaps, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func (tcpImpl) deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type memImpl struct{ net *Network }

func (m *memImpl) node(t *testing.T, id, addr string, snaps *SnapshotConfig) Transport {
	if addr == "" {
		addr = fmt.Sprintf("mem-%s-%d", id, rand.Uint64())
	}
	return m.net.Transport(MemConfig{ID: id, Addr: addr, Snapshots: snaps})
}

func (m *memImpl) deadAddr(t *testing.T) string { return "nobody-listens-here" }

func TestContractTCP(t *testing.T) { runContract(t, func() impl { return tcpImpl{} }) }

func TestContractMem(t *testing.T) {
	runContract(t, func() impl { return &memImpl{net: NewNetwork(NetworkConfig{Seed: 1})} })
}

type started struct {
	tr Transport
	h  *recorder
}

func start(t *testing.T, tr Transport) started {
	t.Helper()
	h := newRecorder()
	if err := tr.Start(context.Background(), h); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return started{tr, h}
}

// pair starts a and b that know each other.
func pair(t *testing.T, im impl) (a, b started) {
	a = start(t, im.node(t, "a", "", nil))
	b = start(t, im.node(t, "b", "", nil))
	a.tr.AddPeer("b", b.tr.Addr())
	b.tr.AddPeer("a", a.tr.Addr())
	return a, b
}

func testMsg(from, to string, i int) consensus.Message {
	m := consensus.Message{Type: consensus.MsgApp, From: from, To: to, Term: 7, LogTerm: 6, Index: uint64(i), Commit: uint64(i / 2)}
	if i%3 == 0 {
		m.Entries = []consensus.Entry{{Term: 7, Index: uint64(i + 1), Data: []byte(fmt.Sprintf("data %d", i))}, {Term: 7, Index: uint64(i + 2), Type: consensus.EntryConfChange}}
	}
	if i%5 == 0 {
		m.Type, m.Reject, m.RejectHint, m.Context = consensus.MsgAppResp, true, 3, []byte("ctx")
	}
	return m
}

func runContract(t *testing.T, newImpl func() impl) {
	t.Run("DeliveryInOrder", func(t *testing.T) {
		a, b := pair(t, newImpl())
		var want []consensus.Message
		for i := range 300 {
			m := testMsg("a", "b", i)
			want = append(want, m)
			a.tr.Send([]consensus.Message{m})
		}
		waitFor(t, "300 messages at b", func() bool { return len(b.h.received()) == 300 })
		if got := b.h.received(); !reflect.DeepEqual(got, want) {
			t.Fatalf("b received different messages than a sent")
		}
		b.tr.Send([]consensus.Message{testMsg("b", "a", 1)})
		waitFor(t, "reply at a", func() bool { return len(a.h.received()) == 1 })
	})
	t.Run("OneSendIsOneBatch", func(t *testing.T) {
		a, b := pair(t, newImpl())
		var msgs []consensus.Message
		for i := range 200 {
			msgs = append(msgs, testMsg("a", "b", i))
		}
		a.tr.Send(msgs)
		waitFor(t, "200 messages", func() bool { return len(b.h.received()) == 200 })
		if st := a.tr.(interface{ Stats() Stats }).Stats(); st.Batches != 1 || st.MessagesSent != 200 {
			t.Fatalf("stats after one Send of 200 messages: %+v; want 1 batch", st)
		}
	})
	t.Run("SenderAdvertisesItsAddress", func(t *testing.T) {
		// b does not know a: it learns a's address from a's connection
		// (before a's first message is delivered) and can answer.
		im := newImpl()
		a := start(t, im.node(t, "a", "", nil))
		b := start(t, im.node(t, "b", "", nil))
		a.tr.AddPeer("b", b.tr.Addr())
		a.tr.Send([]consensus.Message{testMsg("a", "b", 1)})
		waitFor(t, "message at b", func() bool { return len(b.h.received()) == 1 })
		got := b.h.observed("a")
		if len(got) == 0 || got[0] != a.tr.Addr() {
			t.Fatalf("b observed a at %q, want [%q]", got, a.tr.Addr())
		}
		b.tr.AddPeer("a", got[0])
		b.tr.Send([]consensus.Message{testMsg("b", "a", 2)})
		waitFor(t, "b's answer at a", func() bool { return len(a.h.received()) == 1 })
		// A changed advertised address is reported with the next
		// connection (TCP: after a reconnect).
		const moved = "127.0.0.1:1"
		a.tr.(Advertiser).SetAdvertiseAddr(moved)
		a.tr.RemovePeer("b")
		a.tr.AddPeer("b", b.tr.Addr())
		a.tr.Send([]consensus.Message{testMsg("a", "b", 3)})
		waitFor(t, "the new address at b", func() bool {
			got := b.h.observed("a")
			return len(got) > 0 && got[len(got)-1] == moved
		})
		if got := b.h.observed("b"); len(got) != 0 {
			t.Fatalf("a node observed itself: %q", got)
		}
	})
	t.Run("UnknownPeerIsUnreachable", func(t *testing.T) {
		a, _ := pair(t, newImpl())
		a.tr.Send([]consensus.Message{testMsg("a", "zed", 1)})
		if a.h.unreachableCount("zed") != 1 {
			t.Fatalf("no unreachable report for an unknown peer")
		}
	})
	t.Run("DeadPeerIsUnreachable", func(t *testing.T) {
		im := newImpl()
		a := start(t, im.node(t, "a", "", nil))
		a.tr.AddPeer("c", im.deadAddr(t))
		a.tr.Send([]consensus.Message{testMsg("a", "c", 1)})
		waitFor(t, "unreachable report for c", func() bool { return a.h.unreachableCount("c") > 0 })
	})
	t.Run("QueueOverflowDropsAndReports", func(t *testing.T) {
		im := newImpl()
		a := start(t, im.node(t, "a", "", nil))
		a.tr.AddPeer("c", im.deadAddr(t))
		msgs := make([]consensus.Message, 5000) // > default queue of 4096
		for i := range msgs {
			msgs[i] = testMsg("a", "c", i)
		}
		a.tr.Send(msgs)
		if a.h.unreachableCount("c") == 0 {
			t.Fatalf("overflowing Send was not reported unreachable")
		}
		if st := a.tr.(interface{ Stats() Stats }).Stats(); st.MessagesDropped < 5000 {
			t.Fatalf("dropped %d, want 5000", st.MessagesDropped)
		}
	})
	t.Run("RemoveAndAddPeer", func(t *testing.T) {
		a, b := pair(t, newImpl())
		a.tr.Send([]consensus.Message{testMsg("a", "b", 1)})
		waitFor(t, "first message", func() bool { return len(b.h.received()) == 1 })
		a.tr.RemovePeer("b")
		a.tr.Send([]consensus.Message{testMsg("a", "b", 2)})
		if a.h.unreachableCount("b") != 1 {
			t.Fatalf("send to a removed peer not reported unreachable")
		}
		a.tr.AddPeer("b", b.tr.Addr())
		a.tr.AddPeer("b", b.tr.Addr()) // idempotent
		a.tr.Send([]consensus.Message{testMsg("a", "b", 3)})
		waitFor(t, "message after re-adding", func() bool { return len(b.h.received()) == 2 })
		if got := b.h.received()[1].Index; got != 3 {
			t.Fatalf("got message %d after re-adding, want 3", got)
		}
	})
	t.Run("ReconnectAfterListenerRestart", func(t *testing.T) {
		im := newImpl()
		a, b := pair(t, im)
		a.tr.Send([]consensus.Message{testMsg("a", "b", 1)})
		waitFor(t, "first message", func() bool { return len(b.h.received()) == 1 })
		addr := b.tr.Addr()
		if err := b.tr.Close(); err != nil {
			t.Fatal(err)
		}
		b2 := start(t, im.node(t, "b", addr, nil))
		// Raft resends (heartbeats); so does this loop until delivery.
		i := 0
		waitFor(t, "delivery to the restarted listener", func() bool {
			i++
			a.tr.Send([]consensus.Message{testMsg("a", "b", i)})
			time.Sleep(5 * time.Millisecond)
			return len(b2.h.received()) > 0
		})
	})
	t.Run("PeerAddressChange", func(t *testing.T) {
		im := newImpl()
		a, b := pair(t, im)
		a.tr.Send([]consensus.Message{testMsg("a", "b", 1)})
		waitFor(t, "first message", func() bool { return len(b.h.received()) == 1 })
		b2 := start(t, im.node(t, "b", "", nil)) // b moved
		b.tr.Close()
		a.tr.AddPeer("b", b2.tr.Addr())
		i := 0
		waitFor(t, "delivery at the new address", func() bool {
			i++
			a.tr.Send([]consensus.Message{testMsg("a", "b", i)})
			time.Sleep(5 * time.Millisecond)
			return len(b2.h.received()) > 0
		})
	})
	t.Run("SnapshotTransfer", func(t *testing.T) {
		im := newImpl()
		data := make([]byte, 3<<20+12345)
		rand.NewChaCha8([32]byte{1}).Read(data)
		src := &memSource{data: data}
		sink := &memSink{}
		a := start(t, im.node(t, "a", "", &SnapshotConfig{Source: src, Sink: sink, ChunkSize: 256 << 10}))
		b := start(t, im.node(t, "b", "", &SnapshotConfig{Source: src, Sink: sink, ChunkSize: 256 << 10}))
		a.tr.AddPeer("b", b.tr.Addr())
		meta := &consensus.SnapshotMeta{Index: 100, Term: 3, Conf: consensus.ConfState{Members: []consensus.Member{{ID: "a", Addr: "x", Voter: true}}}}
		a.tr.Send([]consensus.Message{testMsg("a", "b", 1), {Type: consensus.MsgSnap, From: "a", To: "b", Term: 3, Snapshot: meta}, testMsg("a", "b", 2)})
		waitFor(t, "snapshot report", func() bool { return len(a.h.snapReports("b")) == 1 })
		if r := a.h.snapReports("b"); !r[0] {
			t.Fatalf("snapshot reported failed")
		}
		waitFor(t, "three messages", func() bool { return len(b.h.received()) == 3 })
		var snap *consensus.Message
		for _, m := range b.h.received() {
			if m.Type == consensus.MsgSnap {
				snap = &m
			}
		}
		if snap == nil || !reflect.DeepEqual(snap.Snapshot, meta) {
			t.Fatalf("MsgSnap not delivered with its meta: %+v", snap)
		}
		got, committed := sink.result()
		if !committed || !bytes.Equal(got, data) {
			t.Fatalf("sink got %d bytes (committed %v), want the %d sent", len(got), committed, len(data))
		}
		// A sink that refuses: the sender learns it failed, the receiver
		// never sees the MsgSnap.
		sink.setFail(true)
		a.tr.Send([]consensus.Message{{Type: consensus.MsgSnap, From: "a", To: "b", Term: 3, Snapshot: meta}})
		waitFor(t, "second snapshot report", func() bool { return len(a.h.snapReports("b")) == 2 })
		if r := a.h.snapReports("b"); r[1] {
			t.Fatalf("refused snapshot reported ok")
		}
		if n := len(b.h.received()); n != 3 {
			t.Fatalf("receiver got %d messages, want 3 (no MsgSnap for a refused snapshot)", n)
		}
	})
	t.Run("SnapshotSourceFailsMidway", func(t *testing.T) {
		im := newImpl()
		src := &memSource{data: make([]byte, 2<<20), failAfter: 1 << 20}
		sink := &memSink{}
		a := start(t, im.node(t, "a", "", &SnapshotConfig{Source: src, ChunkSize: 64 << 10}))
		b := start(t, im.node(t, "b", "", &SnapshotConfig{Sink: sink}))
		a.tr.AddPeer("b", b.tr.Addr())
		a.tr.Send([]consensus.Message{{Type: consensus.MsgSnap, From: "a", To: "b", Term: 3, Snapshot: &consensus.SnapshotMeta{Index: 9, Term: 3}}})
		waitFor(t, "snapshot report", func() bool { return len(a.h.snapReports("b")) == 1 })
		if a.h.snapReports("b")[0] {
			t.Fatalf("a transfer whose source failed was reported ok")
		}
		waitFor(t, "receiver to abort", func() bool { return sink.abortCount() == 1 })
		if _, committed := sink.result(); committed || len(b.h.received()) != 0 {
			t.Fatalf("a partial snapshot was committed or delivered")
		}
		// The next transfer works.
		src.setFailAfter(0)
		a.tr.Send([]consensus.Message{{Type: consensus.MsgSnap, From: "a", To: "b", Term: 3, Snapshot: &consensus.SnapshotMeta{Index: 9, Term: 3}}})
		waitFor(t, "second report", func() bool { return len(a.h.snapReports("b")) == 2 })
		if !a.h.snapReports("b")[1] || len(b.h.received()) != 1 {
			t.Fatalf("retry after a failed transfer did not succeed")
		}
	})
	t.Run("CloseLeavesNoGoroutines", func(t *testing.T) {
		before := runtime.NumGoroutine()
		im := newImpl()
		var trs []Transport
		for _, id := range []string{"a", "b", "c"} {
			tr := im.node(t, id, "", nil)
			if err := tr.Start(context.Background(), newRecorder()); err != nil {
				t.Fatal(err)
			}
			trs = append(trs, tr)
		}
		for _, x := range trs {
			for j, y := range trs {
				x.AddPeer(string(rune('a'+j)), y.Addr())
			}
			x.AddPeer("dead", im.deadAddr(t))
		}
		for i := range 50 {
			for j, x := range trs {
				x.Send([]consensus.Message{testMsg(string(rune('a'+j)), string(rune('a'+(j+1)%3)), i), testMsg(string(rune('a'+j)), "dead", i)})
			}
		}
		trs[0].RemovePeer("b")
		for _, x := range trs {
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			x.Close() // idempotent
		}
		waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
	})
}

// memSource serves data for any snapshot; with failAfter > 0 reading fails
// after that many bytes.
type memSource struct {
	mu        sync.Mutex
	data      []byte
	failAfter int
}

func (s *memSource) setFailAfter(n int) { s.mu.Lock(); s.failAfter = n; s.mu.Unlock() }

func (s *memSource) Open(ctx context.Context, to string, meta consensus.SnapshotMeta) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r io.Reader = bytes.NewReader(s.data)
	if s.failAfter > 0 {
		r = io.MultiReader(io.LimitReader(r, int64(s.failAfter)), errReader{})
	}
	return io.NopCloser(r), nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk read error") }

// memSink keeps the last committed snapshot.
type memSink struct {
	mu        sync.Mutex
	fail      bool
	got       []byte
	committed bool
	aborts    int
}

func (s *memSink) abortCount() int { s.mu.Lock(); defer s.mu.Unlock(); return s.aborts }

func (s *memSink) setFail(v bool) { s.mu.Lock(); s.fail = v; s.mu.Unlock() }

func (s *memSink) result() ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got, s.committed
}

func (s *memSink) Create(ctx context.Context, from string, meta consensus.SnapshotMeta) (SnapshotWriter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return nil, errors.New("sink refuses")
	}
	return &memSnapWriter{s: s}, nil
}

type memSnapWriter struct {
	s   *memSink
	buf bytes.Buffer
}

func (w *memSnapWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *memSnapWriter) Abort() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.aborts++
	return nil
}
func (w *memSnapWriter) Commit() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.got, w.s.committed = w.buf.Bytes(), true
	return nil
}
