package transport

import (
	"context"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

func memPair(t *testing.T, n *Network) (a, b started) {
	a = start(t, n.Transport(MemConfig{ID: "a"}))
	b = start(t, n.Transport(MemConfig{ID: "b"}))
	a.tr.AddPeer("b", "b")
	b.tr.AddPeer("a", "a")
	return a, b
}

func TestMemCutOneWay(t *testing.T) {
	n := NewNetwork(NetworkConfig{Seed: 1})
	a, b := memPair(t, n)
	n.Cut("a", "b")
	a.tr.Send([]consensus.Message{testMsg("a", "b", 1)})
	b.tr.Send([]consensus.Message{testMsg("b", "a", 2)})
	waitFor(t, "b→a still works", func() bool { return len(a.h.received()) == 1 })
	n.Restore("a", "b")
	a.tr.Send([]consensus.Message{testMsg("a", "b", 3)})
	waitFor(t, "a→b after restore", func() bool { return len(b.h.received()) >= 1 })
	if got := b.h.received(); len(got) != 1 || got[0].Index != 3 {
		t.Fatalf("b received %d messages (first index %d); the one sent over the cut link must be lost", len(got), got[0].Index)
	}
	if st := a.tr.(*Mem).Stats(); st.MessagesDropped != 1 {
		t.Fatalf("dropped = %d, want 1", st.MessagesDropped)
	}
}

func TestMemCutBothAndHeal(t *testing.T) {
	n := NewNetwork(NetworkConfig{Seed: 1})
	a, b := memPair(t, n)
	c := start(t, n.Transport(MemConfig{ID: "c"}))
	c.tr.AddPeer("a", "a")
	c.tr.AddPeer("b", "b")
	n.Isolate("a", "a", "b", "c")
	a.tr.Send([]consensus.Message{testMsg("a", "b", 1)})
	b.tr.Send([]consensus.Message{testMsg("b", "a", 1)})
	c.tr.Send([]consensus.Message{testMsg("c", "b", 7)})
	waitFor(t, "c→b unaffected", func() bool { return len(b.h.received()) == 1 })
	n.Heal()
	a.tr.Send([]consensus.Message{testMsg("a", "b", 2)})
	b.tr.Send([]consensus.Message{testMsg("b", "a", 2)})
	waitFor(t, "both directions after heal", func() bool { return len(a.h.received()) == 1 && len(b.h.received()) == 2 })
	if a.h.received()[0].Index != 2 || b.h.received()[1].Index != 2 {
		t.Fatalf("a message sent across the partition was delivered")
	}
}

func TestMemDropRateIsSeeded(t *testing.T) {
	run := func() []uint64 {
		n := NewNetwork(NetworkConfig{Seed: 42})
		a, b := memPair(t, n)
		n.SetDropRate(0.5)
		for i := range 200 {
			a.tr.Send([]consensus.Message{testMsg("a", "b", i)})
		}
		n.SetDropRate(0)
		a.tr.Send([]consensus.Message{testMsg("a", "b", 1000)}) // marker
		waitFor(t, "marker", func() bool {
			got := b.h.received()
			return len(got) > 0 && got[len(got)-1].Index == 1000
		})
		var idx []uint64
		for _, m := range b.h.received() {
			idx = append(idx, m.Index)
		}
		return idx
	}
	first, second := run(), run()
	if len(first) < 50 || len(first) > 150 {
		t.Fatalf("drop rate 0.5 delivered %d of 200", len(first)-1)
	}
	if len(first) != len(second) {
		t.Fatalf("same seed, different drops: %d vs %d delivered", len(first), len(second))
	}
	for i := range first {
		if first[i] != second[i] {
			t.Fatalf("same seed, different drops at %d", i)
		}
	}
}

func TestMemDelayAndCloseInterruptsIt(t *testing.T) {
	n := NewNetwork(NetworkConfig{Seed: 1})
	a, b := memPair(t, n)
	n.SetLinkDelay("a", "b", time.Hour)
	a.tr.Send([]consensus.Message{testMsg("a", "b", 1)})
	b.tr.Send([]consensus.Message{testMsg("b", "a", 1)})
	waitFor(t, "undelayed direction", func() bool { return len(a.h.received()) == 1 })
	if len(b.h.received()) != 0 {
		t.Fatalf("delayed message arrived early")
	}
	done := make(chan struct{})
	go func() { a.tr.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked behind a delayed delivery")
	}
}

func TestMemAddrInUse(t *testing.T) {
	n := NewNetwork(NetworkConfig{})
	start(t, n.Transport(MemConfig{ID: "a"}))
	if err := n.Transport(MemConfig{ID: "a2", Addr: "a"}).Start(context.Background(), newRecorder()); err == nil {
		t.Fatal("two transports listen on one address")
	}
}

func TestMemDuplicatesAndReordering(t *testing.T) {
	n := NewNetwork(NetworkConfig{Seed: 3})
	a, b := memPair(t, n)
	n.SetDuplicateRate(0.3)
	n.SetReorderRate(0.3)
	for i := range 100 {
		a.tr.Send([]consensus.Message{testMsg("a", "b", i)})
	}
	n.Heal()
	a.tr.Send([]consensus.Message{testMsg("a", "b", 1000)}) // flushes what is held back
	waitFor(t, "marker", func() bool {
		for _, m := range b.h.received() {
			if m.Index == 1000 {
				return true
			}
		}
		return false
	})
	seen := map[uint64]int{}
	reordered := false
	var prev uint64
	for i, m := range b.h.received() {
		seen[m.Index]++
		if i > 0 && m.Index < prev {
			reordered = true
		}
		prev = m.Index
	}
	dups := 0
	for i := range uint64(100) {
		if seen[i] == 0 {
			t.Fatalf("message %d lost without a drop rate", i)
		}
		if seen[i] > 1 {
			dups++
		}
	}
	if dups == 0 || !reordered {
		t.Fatalf("duplicates %d, reordered %v; want both", dups, reordered)
	}
}
