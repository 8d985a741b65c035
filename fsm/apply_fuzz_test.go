package fsm

import (
	"context"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

// FuzzApplyCorruptEntry: whatever bytes a committed entry holds, Apply
// neither fails nor panics; a payload that does not decode is applied as
// an error result and the index moves on.
func FuzzApplyCorruptEntry(f *testing.F) {
	good := EncodeCommand(cmd(1, 1, st("INSERT INTO t VALUES ($1)", int64(1))))
	f.Add(good[:len(good)-2])
	f.Add([]byte{1, 1, 1})
	f.Add([]byte{0xff})
	fsm, err := Open(context.Background(), f.TempDir(), Options{ReadConns: 1})
	if err != nil {
		f.Fatal(err)
	}
	defer fsm.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := DecodeCommand(b); err == nil {
			t.Skip("decodes: arbitrary SQL is not what this target tests")
		}
		next := fsm.AppliedIndex() + 1
		c, _ := DecodeCommand(b)
		w := fsm.Expect(c.SessionID, c.Seq)
		defer w.Cancel()
		if err := fsm.Apply(context.Background(), []consensus.Entry{{Term: 1, Index: next, Data: b}}); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if fsm.AppliedIndex() != next {
			t.Fatalf("applied %d, want %d", fsm.AppliedIndex(), next)
		}
		if c.SessionID != 0 {
			rs, err := w.Wait(context.Background())
			if err != nil || len(rs) != 1 || rs[0].Err == nil {
				t.Fatalf("session %d got %+v, %v; want an error result", c.SessionID, rs, err)
			}
		}
	})
}
