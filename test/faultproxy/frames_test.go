package faultproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
)

// recvHandler records what a transport delivers.
type recvHandler struct {
	mu    sync.Mutex
	msgs  []consensus.Message
	snaps []bool // ReportSnapshot outcomes
}

func (h *recvHandler) Receive(m consensus.Message) {
	h.mu.Lock()
	h.msgs = append(h.msgs, m)
	h.mu.Unlock()
}
func (h *recvHandler) ReportUnreachable(string) {}
func (h *recvHandler) ReportSnapshot(_ string, ok bool) {
	h.mu.Lock()
	h.snaps = append(h.snaps, ok)
	h.mu.Unlock()
}

func (h *recvHandler) received() []consensus.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]consensus.Message(nil), h.msgs...)
}

func (h *recvHandler) outcomes() []bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bool(nil), h.snaps...)
}

// snapStore is a SnapshotSource serving one byte slice and a
// SnapshotSink keeping what was committed.
type snapStore struct {
	data []byte

	mu        sync.Mutex
	committed [][]byte
	aborted   int
}

func (s *snapStore) Open(context.Context, string, consensus.SnapshotMeta) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(s.data)), nil
}

func (s *snapStore) Create(context.Context, string, consensus.SnapshotMeta) (transport.SnapshotWriter, error) {
	return &snapWriter{s: s}, nil
}

type snapWriter struct {
	s   *snapStore
	buf bytes.Buffer
}

func (w *snapWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *snapWriter) Commit() error {
	w.s.mu.Lock()
	w.s.committed = append(w.s.committed, w.buf.Bytes())
	w.s.mu.Unlock()
	return nil
}
func (w *snapWriter) Abort() error {
	w.s.mu.Lock()
	w.s.aborted++
	w.s.mu.Unlock()
	return nil
}

// transportPair starts real TCP transports a and b; a reaches b through
// the proxy's front door of b (every connection there comes from a).
func transportPair(t *testing.T, snaps *snapStore) (n *Network, a, b *transport.TCP, ha, hb *recvHandler) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n = New(log, func(net.Conn) (string, error) { return "a", nil }, 7)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	mk := func(id string) (*transport.TCP, *recvHandler) {
		cfg := transport.TCPConfig{ID: id, ListenAddr: "127.0.0.1:0", Logger: log, BackoffMax: 50 * time.Millisecond}
		if snaps != nil {
			cfg.Snapshots = &transport.SnapshotConfig{Source: snaps, Sink: snaps, ChunkSize: 16 << 10, AckTimeout: 2 * time.Second}
		}
		tr, err := transport.NewTCP(cfg)
		if err != nil {
			t.Fatal(err)
		}
		h := &recvHandler{}
		if err := tr.Start(context.Background(), h); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr, h
	}
	a, ha = mk("a")
	b, hb = mk("b")
	front, err := n.Listen("b", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	a.AddPeer("b", front)
	return n, a, b, ha, hb
}

// sendAndMark sends k messages a→b numbered from base (one Send each,
// paced so most travel in frames of their own), heals the link, and
// waits until a marker sent after them arrives. It returns the
// indexes b received in order, marker excluded.
func sendAndMark(t *testing.T, n *Network, a *transport.TCP, hb *recvHandler, base, k int) []uint64 {
	t.Helper()
	for i := 0; i < k; i++ {
		a.Send([]consensus.Message{{Type: consensus.MsgHeartbeat, From: "a", To: "b", Term: 1, Commit: uint64(base + i)}})
		time.Sleep(200 * time.Microsecond)
	}
	// Let the frames of this round leave before healing.
	time.Sleep(100 * time.Millisecond)
	n.SetRule(Link{"a", "b"}, Rule{})
	marker := uint64(1 << 40)
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.Send([]consensus.Message{{Type: consensus.MsgHeartbeat, From: "a", To: "b", Term: 1, Commit: marker}})
		time.Sleep(20 * time.Millisecond)
		var got []uint64
		seen := false
		for _, m := range hb.received() {
			if m.Commit == marker {
				seen = true
			} else if m.Commit >= uint64(base) && m.Commit < uint64(base+k) {
				got = append(got, m.Commit)
			}
		}
		if seen {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the marker never arrived (received %d messages)", len(hb.received()))
		}
	}
}

// TestFrameFaultsOnRealTransport runs two real TCP transports through
// the proxy: dropped frames lose messages, duplicated frames deliver
// them twice, held-back frames arrive out of order, and the receiver
// never sees a malformed stream.
func TestFrameFaultsOnRealTransport(t *testing.T) {
	n, a, b, _, hb := transportPair(t, nil)
	const k = 400

	n.SetRule(Link{"a", "b"}, Rule{Drop: 0.3})
	got := sendAndMark(t, n, a, hb, 0, k)
	fs := n.Stats().Frames[Link{"a", "b"}]
	if fs.Dropped == 0 || len(got) >= k {
		t.Fatalf("drop 0.3: %d frames dropped, %d of %d messages arrived", fs.Dropped, len(got), k)
	}
	if len(got) < k/2 {
		t.Fatalf("drop 0.3: only %d of %d messages arrived", len(got), k)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("drop alone reordered or duplicated: %d after %d", got[i], got[i-1])
		}
	}

	n.SetRule(Link{"a", "b"}, Rule{Duplicate: 0.3})
	got = sendAndMark(t, n, a, hb, k, k)
	count := map[uint64]int{}
	for _, c := range got {
		count[c]++
	}
	twice := 0
	for _, c := range count {
		if c > 2 {
			t.Fatalf("a message arrived %d times under duplicate 0.3", c)
		}
		if c == 2 {
			twice++
		}
	}
	if fs := n.Stats().Frames[Link{"a", "b"}]; fs.Duplicated == 0 || twice == 0 || len(count) != k {
		t.Fatalf("duplicate 0.3: %d frames duplicated, %d messages twice, %d of %d distinct", fs.Duplicated, twice, len(count), k)
	}

	n.SetRule(Link{"a", "b"}, Rule{Reorder: 0.3})
	got = sendAndMark(t, n, a, hb, 2*k, k)
	inversions := 0
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			inversions++
		}
	}
	if fs := n.Stats().Frames[Link{"a", "b"}]; fs.Reordered == 0 || inversions == 0 || len(got) != k {
		t.Fatalf("reorder 0.3: %d frames held back, %d inversions, %d of %d arrived", fs.Reordered, inversions, len(got), k)
	}
	if bad := b.Stats().BadPeers; bad != 0 {
		t.Fatalf("the receiver closed %d connections as malformed: the proxy broke the stream", bad)
	}
}

// TestFrameFaultsBreakSnapshotStreams: a snapshot stream that loses or
// repeats a frame fails (the sender hears so) and installs nothing; the
// same transfer over a healthy link installs exactly the data.
func TestFrameFaultsBreakSnapshotStreams(t *testing.T) {
	data := make([]byte, 600<<10) // ~38 frames of 16 KiB
	for i := range data {
		data[i] = byte(i * 7)
	}
	snaps := &snapStore{data: data}
	n, a, _, ha, hb := transportPair(t, snaps)
	snap := func(index uint64) {
		a.Send([]consensus.Message{{Type: consensus.MsgSnap, From: "a", To: "b", Term: 1,
			Snapshot: &consensus.SnapshotMeta{Index: index, Term: 1, Conf: consensus.ConfState{Members: []consensus.Member{{ID: "a", Addr: "x:1", Voter: true}}}}}})
	}
	waitOutcomes := func(k int) []bool {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for len(ha.outcomes()) < k {
			if time.Now().After(deadline) {
				t.Fatalf("no verdict for snapshot transfer %d", k)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return ha.outcomes()
	}
	for i, r := range []Rule{{Drop: 0.2}, {Duplicate: 0.2}} {
		n.SetRule(Link{"a", "b"}, r)
		snap(uint64(10 + i))
		if out := waitOutcomes(i + 1); out[i] {
			t.Fatalf("%v: the snapshot transfer succeeded (frames %+v)", r, n.Stats().Frames[Link{"a", "b"}])
		}
	}
	fs := n.Stats().Frames[Link{"a", "b"}]
	if fs.SnapshotDropped == 0 || fs.SnapshotDuplicated == 0 {
		t.Fatalf("no snapshot frame was dropped or duplicated: %+v", fs)
	}
	snaps.mu.Lock()
	if len(snaps.committed) != 0 {
		t.Fatalf("a broken stream committed %d snapshots", len(snaps.committed))
	}
	snaps.mu.Unlock()
	for _, m := range hb.received() {
		if m.Type == consensus.MsgSnap {
			t.Fatalf("a broken stream delivered MsgSnap %d", m.Snapshot.Index)
		}
	}

	n.SetRule(Link{"a", "b"}, Rule{})
	snap(20)
	if out := waitOutcomes(3); !out[2] {
		t.Fatalf("the transfer over a healed link failed")
	}
	snaps.mu.Lock()
	defer snaps.mu.Unlock()
	if len(snaps.committed) != 1 || !bytes.Equal(snaps.committed[0], data) {
		t.Fatalf("committed %d snapshots; want exactly the data once", len(snaps.committed))
	}
	var got []string
	for _, m := range hb.received() {
		if m.Type == consensus.MsgSnap {
			got = append(got, fmt.Sprint(m.Snapshot.Index))
		}
	}
	if len(got) != 1 || got[0] != "20" {
		t.Fatalf("MsgSnap delivered for %v, want [20]", got)
	}
}
