package transport

import (
	"context"
	"encoding/binary"
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
	v2 := append([]byte(nil), pre...)
	v2[8] = 2
	cases := map[string][]byte{
		"http request":          []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"wrong version":         v2,
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
	// The node still works for well-behaved peers.
	a := newTCP(t, TCPConfig{ID: "a"})
	a.tr.AddPeer("b", b.tr.Addr())
	a.tr.Send([]consensus.Message{{Type: consensus.MsgHeartbeat, From: "a", To: "b", Term: 1}})
	waitFor(t, "delivery after garbage", func() bool { return len(b.h.received()) == 1 })
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
		client.Write(appendPreface(nil, preface{From: "a", To: "b"}))
		client.Write(in)
		client.Close()
		tr.Close()
		for _, m := range h.received() {
			if m.From != "a" || m.To != "b" {
				t.Fatalf("delivered a message from %q to %q", m.From, m.To)
			}
		}
	})
}
