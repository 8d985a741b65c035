package pgwiretest

import (
	"context"
	"testing"

	"github.com/raftsql/raftsql/fsm"
)

// TestRecord: calls are recorded (and Calls forgets them once returned)
// unless NoRecord is set.
func TestRecord(t *testing.T) {
	ctx := context.Background()
	for _, noRecord := range []bool{false, true} {
		e, err := New()
		if err != nil {
			t.Fatal(err)
		}
		e.NoRecord = noRecord
		s := e.NewSession()
		if _, err := s.Write(ctx, []fsm.Statement{{SQL: "CREATE TABLE t (a INTEGER)"}}); err != nil {
			t.Fatal(err)
		}
		want := 1
		if noRecord {
			want = 0
		}
		if calls := e.Calls(); len(calls) != want {
			t.Errorf("NoRecord=%v: %d calls recorded, want %d", noRecord, len(calls), want)
		}
		if calls := e.Calls(); len(calls) != 0 {
			t.Errorf("NoRecord=%v: Calls returned %d calls again", noRecord, len(calls))
		}
		s.Close()
		e.Close()
	}
}
