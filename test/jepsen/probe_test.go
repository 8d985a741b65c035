package jepsen

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestNodeReadsJudgesOneNodesReads: a stale lease read served by n3 makes
// n3's sub-history illegal and leaves n1's (same writes, its own reads)
// linearizable.
func TestNodeReadsJudgesOneNodesReads(t *testing.T) {
	stale := rd(2, 1, 0, 4, 5, "lease")
	stale.Node = "n3"
	w := wr(0, 1, 3, 0, 1, OK)
	w.Node = "n2" // writes count whichever node took them
	ops := []RegOp{
		w,
		rd(1, 1, 3, 2, 3, "lease"),
		stale,
		rd(3, 1, 3, 6, 7, "linearizable"),
	}
	n1 := NodeReads(ops, "n1")
	if len(n1) != 3 {
		t.Fatalf("NodeReads(n1) kept %d ops, want the write and n1's two reads: %v", len(n1), n1)
	}
	if got := CheckRegister(n1, 10*time.Second, "lease").Result; got != porcupine.Ok {
		t.Errorf("n1's lease reads: %v, want Ok", got)
	}
	n3 := NodeReads(ops, "n3")
	if len(n3) != 2 {
		t.Fatalf("NodeReads(n3) kept %d ops, want the write and n3's read: %v", len(n3), n3)
	}
	if got := CheckRegister(n3, 10*time.Second, "lease").Result; got != porcupine.Illegal {
		t.Errorf("n3's stale lease read: %v, want Illegal", got)
	}
	if got := CheckRegister(ops, 10*time.Second, "linearizable").Result; got != porcupine.Ok {
		t.Errorf("linearizable reads: %v, want Ok", got)
	}
}
