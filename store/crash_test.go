package store_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/store"
	"github.com/raftsql/raftsql/store/storetest"
)

// crashOp applies the i-th operation of a deterministic workload (appends,
// conflict truncations with a new term and vote, compactions) to s, using
// model (an identical store) to decide what to do.
func crashOp(i int, model storetest.LogStore, stores ...storetest.LogStore) error {
	first, _ := model.FirstIndex()
	last, _ := model.LastIndex()
	hs, _, _ := model.InitialState()
	var do func(s storetest.LogStore) error
	switch {
	case i%17 == 0 && last >= first+2:
		do = func(s storetest.LogStore) error { return s.Compact(last - 2) }
	case i%7 == 0:
		term := hs.Term + 1
		from := max(first, last-2, 1)
		var es []consensus.Entry
		for j := range uint64(3) {
			es = append(es, consensus.Entry{Index: from + j, Term: term, Data: []byte(fmt.Sprintf("op %d entry %d", i, j))})
		}
		nhs := consensus.HardState{Term: term, Vote: fmt.Sprintf("n%d", i%3)}
		do = func(s storetest.LogStore) error { return s.Save(nhs, es, nil) }
	default:
		term := max(hs.Term, 1)
		var es []consensus.Entry
		for j := range uint64(i%4 + 1) {
			es = append(es, consensus.Entry{Index: last + 1 + j, Term: term, Data: []byte(fmt.Sprintf("op %d entry %d", i, j))})
		}
		do = func(s storetest.LogStore) error {
			return s.Save(consensus.HardState{Term: term, Vote: hs.Vote}, es, nil)
		}
	}
	for _, s := range append([]storetest.LogStore{model}, stores...) {
		if err := do(s); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
	}
	return nil
}

// TestCrashChild is the child process of TestKillDuringWrites: it runs the
// workload on a real store forever, printing "ack N" after op N returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("RAFTSQL_STORE_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process for TestKillDuringWrites")
	}
	s, err := store.Open(context.Background(), dir, store.Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	model := consensus.NewMemoryStorage()
	w := bufio.NewWriter(os.Stdout)
	for i := 1; ; i++ {
		if err := crashOp(i, model, s); err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Fprintf(w, "ack %d\n", i)
		w.Flush()
	}
}

type logState struct {
	first, last uint64
	terms       []uint64
	data        []string
	term        uint64
	vote        string
}

func stateOf(t *testing.T, s storetest.LogStore) logState {
	t.Helper()
	var st logState
	st.first, _ = s.FirstIndex()
	st.last, _ = s.LastIndex()
	for i := st.first - 1; i <= st.last; i++ {
		tm, err := s.Term(i)
		if err != nil {
			t.Fatalf("Term(%d): %v", i, err)
		}
		st.terms = append(st.terms, tm)
	}
	if st.last >= st.first {
		es, err := s.Entries(st.first, st.last+1, ^uint64(0))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			st.data = append(st.data, string(e.Data))
		}
	}
	hs, _, err := s.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	st.term, st.vote = hs.Term, hs.Vote
	return st
}

// TestKillDuringWrites kills (SIGKILL) a process in the middle of a stream
// of Saves, truncations and compactions, then checks that the store holds
// exactly the state after the last acknowledged operation or after the one
// in flight — never a mix, never less.
func TestKillDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	for round, target := range []int{60, 150, 241} {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), "RAFTSQL_STORE_CRASH_DIR="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		acked := 0
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "ack "); ok {
				acked, _ = strconv.Atoi(n)
				if acked >= target {
					cmd.Process.Kill()
				}
			} else if strings.HasPrefix(line, "error") || strings.HasPrefix(line, "open") {
				t.Fatalf("child: %s", line)
			}
		}
		cmd.Wait()
		if acked < target {
			t.Fatalf("round %d: child stopped after %d ops", round, acked)
		}
		s, err := store.Open(context.Background(), dir, store.Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		got := stateOf(t, s)
		s.Close()
		model := consensus.NewMemoryStorage()
		for i := 1; i <= acked; i++ {
			if err := crashOp(i, model); err != nil {
				t.Fatal(err)
			}
		}
		atAck := stateOf(t, model)
		if err := crashOp(acked+1, model); err != nil {
			t.Fatal(err)
		}
		inFlight := stateOf(t, model)
		if fmt.Sprint(got) != fmt.Sprint(atAck) && fmt.Sprint(got) != fmt.Sprint(inFlight) {
			t.Fatalf("round %d: after kill at op %d the store holds\n%+v\nwant the state after op %d\n%+v\nor after op %d\n%+v", round, acked, got, acked, atAck, acked+1, inFlight)
		}
		t.Logf("round %d: killed after %d acknowledged ops; store matches", round, acked)
	}
}
