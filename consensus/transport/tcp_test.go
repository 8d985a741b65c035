package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

func newTCP(t *testing.T, cfg TCPConfig) started {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	cfg.Logger = testLogger(t)
	tr, err := NewTCP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return start(t, tr)
}

func TestTCPDisconnectsGarbagePeers(t *testing.T) {
	b := newTCP(t, TCPConfig{ID: "b", HandshakeTimeout: time.Second})
	pre := appendPreface(nil, preface{From: "a", To: "b"})
	msgFrame := func(m consensus.Message) []byte {
		return appendFrame(nil, appendMessagesPayload(nil, []consensus.Message{m}))
	}
	good := msgFrame(consensus.Message{Type: consensus.MsgHeartbeat, From: "a", To: "b", Term: 1})
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0xff
	oversized := binary.LittleEndian.AppendUint32(nil, 1<<31)
	oversized = append(oversized, 0, 0, 0, 0)
	v3 := append([]byte(nil), pre...)
	v3[8] = 3
	cases := map[string][]byte{
		"http request":          []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"wrong version":         v3,
		"bad advertised addr":   appendPreface(nil, preface{From: "a", To: "b", Addr: "no port here"}),
		"wildcard advertised":   appendPreface(nil, preface{From: "a", To: "b", Addr: "0.0.0.0:7000"}),
		"meant for other node":  appendPreface(nil, preface{From: "a", To: "zz"}),
		"bad checksum":          append(append([]byte(nil), pre...), badCRC...),
		"oversized frame":       append(append([]byte(nil), pre...), oversized...),
		"unknown frame kind":    append(append([]byte(nil), pre...), appendFrame(nil, []byte{9, 1, 2})...),
		"spoofed sender":        append(append([]byte(nil), pre...), msgFrame(consensus.Message{Type: consensus.MsgVote, From: "c", To: "b", Term: 9})...),
		"wrong recipient":       append(append([]byte(nil), pre...), msgFrame(consensus.Message{Type: consensus.MsgVote, From: "a", To: "c", Term: 9})...),
		"unknown msg type":      append(append([]byte(nil), pre...), appendFrame(nil, []byte{frameMessages, 1, 5, 77, 0, 1, 'b', 1, 'a', 0, 0})...),
		"snapshot without sink": append(append([]byte(nil), pre...), appendFrame(nil, []byte{frameSnapshot, snapData, 1})...),
	}
	bad := uint64(0)
	for name, stream := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", b.tr.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(stream)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatalf("server did not close the connection: %v", err)
			}
			bad++
			waitFor(t, "bad peer counted", func() bool { return b.tr.(*TCP).Stats().BadPeers == bad })
		})
	}
	if n := len(b.h.received()); n != 0 {
		t.Fatalf("garbage delivered %d messages", n)
	}
	if got := b.h.observed("a"); len(got) != 0 {
		t.Fatalf("garbage taught b addresses for a: %q", got)
	}
	// The node still works for well-behaved peers.
	a := newTCP(t, TCPConfig{ID: "a"})
	a.tr.AddPeer("b", b.tr.Addr())
	a.tr.Send([]consensus.Message{{Type: consensus.MsgHeartbeat, From: "a", To: "b", Term: 1}})
	waitFor(t, "delivery after garbage", func() bool { return len(b.h.received()) == 1 })
}

// TestTCPVersion1Preface: a dialer that speaks the previous wire version
// (its preface has no address) is served; nothing is learnt about its
// address.
func TestTCPVersion1Preface(t *testing.T) {
	b := newTCP(t, TCPConfig{ID: "b"})
	c, err := net.Dial("tcp", b.tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(appendPreface(nil, preface{Version: 1, From: "a", To: "b"}))
	c.Write(appendFrame(nil, appendMessagesPayload(nil, []consensus.Message{{Type: consensus.MsgHeartbeat, From: "a", To: "b", Term: 4}})))
	waitFor(t, "the version-1 peer's message", func() bool { return len(b.h.received()) == 1 })
	if got := b.h.observed("a"); len(got) != 0 {
		t.Fatalf("a version-1 preface reported addresses %q", got)
	}
	if st := b.tr.(*TCP).Stats(); st.BadPeers != 0 {
		t.Fatalf("a version-1 peer counted as bad: %+v", st)
	}
}

// TestTCPAdvertiseAddr: the preface carries AdvertiseAddr when set (the
// address peers dial, e.g. a proxy's, not the listener's), nothing for a
// wildcard listener without it, and SetAdvertiseAddr refuses junk.
func TestTCPAdvertiseAddr(t *testing.T) {
	b := newTCP(t, TCPConfig{ID: "b"})
	a := newTCP(t, TCPConfig{ID: "a", AdvertiseAddr: "127.0.0.1:17000"})
	a.tr.AddPeer("b", b.tr.Addr())
	a.tr.Send([]consensus.Message{{Type: consensus.MsgHeartbeat, From: "a", To: "b", Term: 1}})
	waitFor(t, "a's address at b", func() bool { return len(b.h.observed("a")) == 1 })
	if got := b.h.observed("a")[0]; got != "127.0.0.1:17000" {
		t.Fatalf("b observed a at %q, want the advertised 127.0.0.1:17000", got)
	}
	a.tr.(*TCP).SetAdvertiseAddr("not an address")
	if got := a.tr.(*TCP).AdvertiseAddr(); got != "127.0.0.1:17000" {
		t.Fatalf("SetAdvertiseAddr took junk: %q", got)
	}
	for _, bad := range []string{"nonsense", ":7000", "0.0.0.0:7000", "[::]:7000"} {
		if _, err := NewTCP(TCPConfig{ID: "x", AdvertiseAddr: bad}); err == nil {
			t.Fatalf("NewTCP accepted AdvertiseAddr %q", bad)
		}
	}
	w := newTCP(t, TCPConfig{ID: "w", ListenAddr: "0.0.0.0:0"})
	if got := w.tr.(*TCP).AdvertiseAddr(); got != "" {
		t.Fatalf("a wildcard listener advertises %q; want nothing until told", got)
	}
	w.tr.AddPeer("b", b.tr.Addr())
	w.tr.Send([]consensus.Message{{Type: consensus.MsgHeartbeat, From: "w", To: "b", Term: 1}})
	waitFor(t, "w's message at b", func() bool { return len(b.h.received()) == 2 })
	if got := b.h.observed("w"); len(got) != 0 {
		t.Fatalf("b observed w at %q; want nothing", got)
	}
}

func TestTCPSplitsLargeBatches(t *testing.T) {
	b := newTCP(t, TCPConfig{ID: "b", MaxFrameSize: 4096})
	a := newTCP(t, TCPConfig{ID: "a", MaxBatchBytes: 1000, MaxFrameSize: 4096})
	a.tr.AddPeer("b", b.tr.Addr())
	var msgs []consensus.Message
	for i := range 50 {
		msgs = append(msgs, consensus.Message{Type: consensus.MsgApp, From: "a", To: "b", Index: uint64(i), Entries: []consensus.Entry{{Data: make([]byte, 100)}}})
	}
	// One message too large for any frame: dropped and reported, the
	// others still go.
	msgs = append(msgs, consensus.Message{Type: consensus.MsgApp, From: "a", To: "b", Index: 99, Entries: []consensus.Entry{{Data: make([]byte, 5000)}}})
	a.tr.Send(msgs)
	waitFor(t, "50 messages", func() bool { return len(b.h.received()) == 50 })
	for i, m := range b.h.received() {
		if m.Index != uint64(i) {
			t.Fatalf("message %d has index %d: out of order", i, m.Index)
		}
	}
	st := a.tr.(*TCP).Stats()
	if st.Batches < 6 {
		t.Fatalf("50 × ~115-byte messages in frames of 1000 bytes took %d frames", st.Batches)
	}
	if a.h.unreachableCount("b") != 1 || st.MessagesDropped != 1 {
		t.Fatalf("oversized message: unreachable %d, dropped %d; want 1, 1", a.h.unreachableCount("b"), st.MessagesDropped)
	}
}

func TestTCPConfig(t *testing.T) {
	if _, err := NewTCP(TCPConfig{}); err == nil {
		t.Fatal("NewTCP accepted an empty ID")
	}
	tr, err := NewTCP(TCPConfig{ID: "a", ListenAddr: "256.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(context.Background(), newRecorder()); err == nil {
		t.Fatal("Start on a bad address succeeded")
	}
	tr.Close()
}

// FuzzServe feeds arbitrary bytes after a valid preface to an inbound
// connection, with snapshot transfer enabled: the node must not panic and
// must deliver nothing whose sender is not the connection's.
func FuzzServe(f *testing.F) {
	msg := consensus.Message{Type: consensus.MsgApp, From: "a", To: "b", Term: 2, Entries: []consensus.Entry{{Term: 2, Index: 1, Data: []byte("x")}}}
	snap := consensus.Message{Type: consensus.MsgSnap, From: "a", To: "b", Term: 2, Snapshot: &consensus.SnapshotMeta{Index: 5, Term: 2}}
	f.Add(appendFrame(nil, appendMessagesPayload(nil, []consensus.Message{msg})))
	var s []byte
	s = appendFrame(s, AppendMessage([]byte{frameSnapshot, snapBegin}, &snap))
	s = appendFrame(s, []byte{frameSnapshot, snapData, 'h', 'i'})
	end := []byte{frameSnapshot, snapEnd}
	end = binary.LittleEndian.AppendUint64(end, 2)
	end = binary.LittleEndian.AppendUint32(end, 0)
	f.Add(appendFrame(s, end))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := NewTCP(TCPConfig{ID: "b", MaxFrameSize: 1 << 16, Snapshots: &SnapshotConfig{Sink: &memSink{}}})
		if err != nil {
			t.Fatal(err)
		}
		h := newRecorder()
		tr.h.Store(&handlerBox{h})
		client, server := net.Pipe()
		tr.mu.Lock()
		tr.inbound[server] = struct{}{}
		tr.wg.Add(1)
		tr.mu.Unlock()
		go tr.serve(server)
		go io.Copy(io.Discard, client)
		client.Write(appendPreface(nil, preface{From: "a", To: "b", Addr: "127.0.0.1:7000"}))
		client.Write(in)
		client.Close()
		tr.Close()
		for _, m := range h.received() {
			if m.From != "a" || m.To != "b" {
				t.Fatalf("delivered a message from %q to %q", m.From, m.To)
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for id, addrs := range h.addrs {
			if id != "a" || len(addrs) != 1 || addrs[0] != "127.0.0.1:7000" {
				t.Fatalf("observed %q at %q; want only the preface's a at 127.0.0.1:7000", id, addrs)
			}
		}
	})
}

// TestTCPSnapshotIdleTimeout: a sender that goes silent inside a snapshot
// transfer (its end frame lost) gets the transfer aborted and the
// connection closed after SnapshotConfig.IdleTimeout, not after the
// sender's ack timeout; nothing is delivered or committed.
func TestTCPSnapshotIdleTimeout(t *testing.T) {
	sink := &memSink{}
	b := newTCP(t, TCPConfig{ID: "b", Snapshots: &SnapshotConfig{Sink: sink, IdleTimeout: 200 * time.Millisecond}})
	c, err := net.Dial("tcp", b.tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	snap := consensus.Message{Type: consensus.MsgSnap, From: "a", To: "b", Term: 2, Snapshot: &consensus.SnapshotMeta{Index: 5, Term: 2}}
	var s []byte
	s = appendPreface(s, preface{From: "a", To: "b"})
	s = appendFrame(s, AppendMessage([]byte{frameSnapshot, snapBegin}, &snap))
	s = appendFrame(s, []byte{frameSnapshot, snapData, 'h', 'i'})
	if _, err := c.Write(s); err != nil {
		t.Fatal(err)
	}
	// No end frame: the receiver must give up on its own.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("the receiver did not close the stalled transfer's connection: %v", err)
	}
	waitFor(t, "the stalled transfer aborted", func() bool { return sink.abortCount() == 1 })
	if _, committed := sink.result(); committed {
		t.Fatal("a partial snapshot was committed")
	}
	if n := len(b.h.received()); n != 0 {
		t.Fatalf("delivered %d messages", n)
	}
	// Between transfers a quiet connection is not cut.
	c2, err := net.Dial("tcp", b.tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write(appendPreface(nil, preface{From: "a", To: "b"}))
	c2.SetReadDeadline(time.Now().Add(600 * time.Millisecond))
	if _, err := c2.Read(make([]byte, 1)); err == nil || !isTimeout(err) {
		t.Fatalf("an idle connection outside a transfer was closed: %v", err)
	}
	c2.Write(appendFrame(nil, appendMessagesPayload(nil, []consensus.Message{{Type: consensus.MsgHeartbeat, From: "a", To: "b", Term: 2}})))
	waitFor(t, "a message after a quiet spell", func() bool { return len(b.h.received()) == 1 })
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
