package jepsen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/jackc/pgx/v5/pgconn"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func rd(client, key, v int, call, ret int, level string) RegOp {
	return RegOp{Client: client, Kind: RegRead, Key: key, Value: v, Level: level, Status: OK, Call: ms(call), Return: ms(ret), Node: "n1"}
}

func wr(client, key, v int, call, ret int, st Status) RegOp {
	return RegOp{Client: client, Kind: RegWrite, Key: key, Value: v, Matched: st == OK, Status: st, Call: ms(call), Return: ms(ret), Node: "n1"}
}

func cas(client, key, old, v int, matched bool, call, ret int, st Status) RegOp {
	return RegOp{Client: client, Kind: RegCAS, Key: key, Old: old, Value: v, Matched: matched, Status: st, Call: ms(call), Return: ms(ret), Node: "n1"}
}

func TestRegisterModel(t *testing.T) {
	cases := []struct {
		name string
		ops  []RegOp
		want porcupine.CheckResult
	}{
		{"sequential", []RegOp{
			rd(0, 1, 0, 0, 1, "linearizable"),
			wr(0, 1, 3, 2, 3, OK),
			rd(0, 1, 3, 4, 5, "linearizable"),
			cas(0, 1, 3, 4, true, 6, 7, OK),
			cas(0, 1, 3, 5, false, 8, 9, OK),
			rd(0, 1, 4, 10, 11, "linearizable"),
		}, porcupine.Ok},
		{"stale read after acknowledged write", []RegOp{
			wr(0, 1, 3, 0, 1, OK),
			rd(1, 1, 0, 2, 3, "linearizable"),
		}, porcupine.Illegal},
		{"concurrent read may see either", []RegOp{
			wr(0, 1, 3, 0, 10, OK),
			rd(1, 1, 0, 2, 3, "linearizable"),
			rd(2, 1, 3, 4, 5, "linearizable"),
		}, porcupine.Ok},
		{"read goes back in time", []RegOp{
			wr(0, 1, 3, 0, 10, OK),
			rd(1, 1, 3, 2, 3, "linearizable"),
			rd(2, 1, 0, 4, 5, "linearizable"),
		}, porcupine.Illegal},
		{"unknown write may apply late", []RegOp{
			wr(0, 1, 3, 0, 1, Unknown),
			rd(1, 1, 0, 2, 3, "linearizable"),
			rd(1, 1, 3, 4, 5, "linearizable"),
		}, porcupine.Ok},
		{"unknown write may never apply", []RegOp{
			wr(0, 1, 3, 0, 1, Unknown),
			rd(1, 1, 0, 20, 30, "linearizable"),
		}, porcupine.Ok},
		{"failed write never applies", []RegOp{
			wr(0, 1, 3, 0, 1, Fail),
			rd(1, 1, 3, 2, 3, "linearizable"),
		}, porcupine.Illegal},
		{"cas that failed although it matched", []RegOp{
			cas(0, 1, 0, 2, false, 0, 1, OK),
		}, porcupine.Illegal},
		{"cas that matched a wrong value", []RegOp{
			cas(0, 1, 2, 3, true, 0, 1, OK),
		}, porcupine.Illegal},
		{"write that matched no row", []RegOp{
			wr(0, 1, 3, 0, 1, OK), // Matched is set from the status below
		}, porcupine.Illegal},
		{"keys are independent", []RegOp{
			wr(0, 1, 3, 0, 1, OK),
			rd(1, 2, 0, 2, 3, "linearizable"),
			rd(1, 1, 3, 4, 5, "linearizable"),
		}, porcupine.Ok},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "write that matched no row" {
				tc.ops[0].Matched = false
			}
			lc := CheckRegister(tc.ops, 10*time.Second, "linearizable")
			if lc.Result != tc.want {
				t.Fatalf("result %s, want %s", lc.Result, tc.want)
			}
			if (lc.Err() == nil) != (tc.want == porcupine.Ok) {
				t.Fatalf("Err() = %v for %s", lc.Err(), lc.Result)
			}
		})
	}
}

func TestRegisterLevelsCheckedSeparately(t *testing.T) {
	ops := []RegOp{
		wr(0, 1, 3, 0, 1, OK),
		rd(1, 1, 3, 2, 3, "linearizable"),
		rd(2, 1, 0, 4, 5, "stale"), // stale reads are exempt
		rd(3, 1, 0, 6, 7, "lease"), // a stale lease read is a violation
	}
	if lc := CheckRegister(ops, 10*time.Second, "linearizable"); lc.Result != porcupine.Ok {
		t.Fatalf("linearizable reads: %s", lc.Result)
	}
	lc := CheckRegister(ops, 10*time.Second, "lease")
	if lc.Result != porcupine.Illegal {
		t.Fatalf("lease reads: %s, want Illegal", lc.Result)
	}
	var html bytes.Buffer
	faults := []Fault{{Kind: PauseLeader, Targets: []string{"n1"}, Start: ms(1), End: ms(6), Leader: "n1"}}
	if err := lc.Visualize(&html, faults); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), "pause-leader n1") || !strings.Contains(html.String(), "<html") {
		t.Fatal("visualization lacks the page or the nemesis annotation")
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want Status
	}{
		{nil, OK},
		{&pgconn.PgError{Code: "23505"}, Fail},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "42P01"}), Fail},
		{&pgconn.PgError{Code: "40001"}, Unknown},
		{&pgconn.PgError{Code: "57014"}, Unknown},
		{&pgconn.PgError{Code: "08006"}, Unknown},
		{context.DeadlineExceeded, Unknown},
		{errors.New("unexpected EOF"), Unknown},
	}
	for _, tc := range cases {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestBankReads(t *testing.T) {
	b := &Bank{Accounts: 3, Initial: 10}
	ops := []BankOp{
		{Kind: "read", Status: OK, Bals: []int64{10, 10, 10}, Level: "linearizable"},
		{Kind: "read", Status: OK, Bals: []int64{5, 15, 10}, Level: "stale"},
		{Kind: "read", Status: OK, Bals: []int64{-5, 25, 10}, Level: "lease"}, // negative is fine (txn variant)
		{Kind: "read", Status: OK, Bals: []int64{5, 10, 10}, Level: "stale"},  // a torn transfer
		{Kind: "read", Status: OK, Bals: []int64{15, 15}, Level: "lease"},     // a lost row
		{Kind: "read", Status: Fail, Bals: nil},
		{Kind: "transfer", Status: OK},
	}
	probs := b.CheckReads(ops)
	if len(probs) != 2 {
		t.Fatalf("problems %q, want the torn transfer and the lost row", probs)
	}
}

func TestSetFinal(t *testing.T) {
	s := &Set{}
	ops := []SetOp{
		{Value: 1, Status: OK},
		{Value: 2, Status: OK},
		{Value: 3, Status: Unknown},
		{Value: 4, Status: Unknown},
		{Value: 5, Status: Fail, Err: "23505"},
	}
	c, probs := s.CheckFinal("n1", ops, []int64{1, 2, 3})
	if len(probs) != 0 {
		t.Fatalf("clean state reported %q", probs)
	}
	if c != (SetCounts{Acked: 2, AckedFound: 2, Unknown: 2, UnknownFound: 1, Failed: 1}) {
		t.Fatalf("counts %+v", c)
	}
	_, probs = s.CheckFinal("n2", ops, []int64{1, 1, 3, 5, 99})
	want := []string{"insert 2", "value 1 present 2 times", "insert 5 failed", "value 99 was never inserted"}
	joined := strings.Join(probs, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("problems lack %q:\n%s", w, joined)
		}
	}
}

func TestAvailability(t *testing.T) {
	acks := []time.Duration{ms(100), ms(200), ms(300), ms(2300), ms(2400), ms(5000), ms(5100)}
	faults := []Fault{
		{Kind: KillLeader, Start: ms(250), End: ms(1000)},
		{Kind: KillAny, Targets: []string{"n2"}, Leader: "n1", Start: ms(2350), End: ms(2390)}, // not the leader: ignored
		{Kind: KillAny, Targets: []string{"n1"}, Leader: "n1", Start: ms(2500), End: ms(3000)},
		// Began while the outage of the fault above was on: not its own.
		{Kind: PauseLeader, Targets: []string{"n1"}, Leader: "n1", Start: ms(4000), End: ms(4500)},
	}
	got := ComputeAvailability(faults, acks, ms(6000))
	if len(got) != 3 {
		t.Fatalf("availability %+v", got)
	}
	if got[0].Kind != KillAny || got[0].Worst != ms(2600) || got[0].At != ms(2400) {
		t.Errorf("kill: %+v, want a 2.6s gap from 2.4s", got[0])
	}
	if got[1].Kind != KillLeader || got[1].Worst != ms(2000) || got[1].At != ms(300) {
		t.Errorf("kill-leader: %+v, want a 2s gap from 300ms", got[1])
	}
	if got[2].Kind != PauseLeader || got[2].Worst != 0 {
		t.Errorf("pause-leader: %+v, want no gap of its own", got[2])
	}
}
