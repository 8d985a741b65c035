// Package storetest is the contract test suite for Raft log stores: every
// implementation of LogStore (the bolt store in store/, the in-memory
// consensus.MemoryStorage) runs RunLogStoreTests, and durable ones also run
// RunDurableLogStoreTests, so they agree on every edge case the core relies
// on.
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

// LogStore is what the suite exercises: the core's read view plus the
// driver's write side.
type LogStore interface {
	consensus.Storage
	// Save persists hs (when Term or Vote changed), an optional snapshot
	// to install (which discards the whole existing log) and entries
	// (replacing any entries at >= entries[0].Index), atomically.
	Save(hs consensus.HardState, entries []consensus.Entry, snap *consensus.SnapshotMeta) error
	// Compact drops the entries <= index, recording a snapshot meta for
	// index.
	Compact(index uint64) error
}

// ents builds entries lo..hi-1 with the given term and 100-byte data.
func ents(lo, hi, term uint64) []consensus.Entry {
	var out []consensus.Entry
	for i := lo; i < hi; i++ {
		d := make([]byte, 100)
		copy(d, fmt.Sprintf("entry %d term %d", i, term))
		out = append(out, consensus.Entry{Index: i, Term: term, Data: d})
	}
	return out
}

func mustSave(t *testing.T, s LogStore, hs consensus.HardState, e []consensus.Entry, snap *consensus.SnapshotMeta) {
	t.Helper()
	if err := s.Save(hs, e, snap); err != nil {
		t.Fatalf("Save(%+v, %d entries, %+v): %v", hs, len(e), snap, err)
	}
}

func checkRange(t *testing.T, s LogStore, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil || f != first {
		t.Fatalf("FirstIndex() = %d, %v; want %d", f, err, first)
	}
	l, err := s.LastIndex()
	if err != nil || l != last {
		t.Fatalf("LastIndex() = %d, %v; want %d", l, err, last)
	}
}

func checkEntries(t *testing.T, s LogStore, lo, hi uint64, want []consensus.Entry) {
	t.Helper()
	got, err := s.Entries(lo, hi, ^uint64(0))
	if err != nil {
		t.Fatalf("Entries(%d, %d): %v", lo, hi, err)
	}
	if len(got) != len(want) {
		t.Fatalf("Entries(%d, %d) returned %d entries, want %d", lo, hi, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Index != w.Index || g.Term != w.Term || g.Type != w.Type || string(g.Data) != string(w.Data) {
			t.Fatalf("Entries(%d, %d)[%d] = {%d %d %v %q}, want {%d %d %v %q}", lo, hi, i, g.Index, g.Term, g.Type, g.Data, w.Index, w.Term, w.Type, w.Data)
		}
	}
}

func checkTerm(t *testing.T, s LogStore, i, want uint64, wantErr error) {
	t.Helper()
	got, err := s.Term(i)
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("Term(%d) = %d, %v; want error %v", i, got, err, wantErr)
		}
		return
	}
	if err != nil || got != want {
		t.Fatalf("Term(%d) = %d, %v; want %d", i, got, err, want)
	}
}

// RunLogStoreTests runs the contract suite. open must return a new, empty
// store for each call; the suite does not close it (use t.Cleanup).
func RunLogStoreTests(t *testing.T, open func(t *testing.T) LogStore) {
	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		checkRange(t, s, 1, 0)
		checkTerm(t, s, 0, 0, nil)
		checkTerm(t, s, 1, 0, consensus.ErrUnavailable)
		hs, cs, err := s.InitialState()
		if err != nil || !hs.IsEmpty() || len(cs.Members) != 0 {
			t.Fatalf("InitialState() = %+v, %+v, %v; want empty", hs, cs, err)
		}
		snap, err := s.Snapshot()
		if err != nil || snap.Index != 0 || snap.Term != 0 {
			t.Fatalf("Snapshot() = %+v, %v; want zero", snap, err)
		}
		if e, err := s.Entries(1, 1, 100); err != nil || len(e) != 0 {
			t.Fatalf("Entries(1,1) = %v, %v; want none", e, err)
		}
		if _, err := s.Entries(1, 2, 100); !errors.Is(err, consensus.ErrUnavailable) {
			t.Fatalf("Entries(1,2) on empty log: err %v, want ErrUnavailable", err)
		}
	})
	t.Run("AppendAndRead", func(t *testing.T) {
		s := open(t)
		e := ents(1, 6, 1)
		e[2].Type = consensus.EntryNormal
		e[3].Data = nil // a no-op entry
		mustSave(t, s, consensus.HardState{Term: 1}, e, nil)
		checkRange(t, s, 1, 5)
		checkEntries(t, s, 1, 6, e)
		checkEntries(t, s, 2, 4, e[1:3])
		for i := uint64(1); i <= 5; i++ {
			checkTerm(t, s, i, 1, nil)
		}
		checkTerm(t, s, 6, 0, consensus.ErrUnavailable)
		if _, err := s.Entries(1, 7, 1000); !errors.Is(err, consensus.ErrUnavailable) {
			t.Fatalf("Entries past last: err %v, want ErrUnavailable", err)
		}
		if _, err := s.Entries(0, 3, 1000); !errors.Is(err, consensus.ErrCompacted) {
			t.Fatalf("Entries(0, …): err %v, want ErrCompacted", err)
		}
		// Append more in a second Save.
		mustSave(t, s, consensus.HardState{}, ents(6, 9, 2), nil)
		checkRange(t, s, 1, 8)
		checkTerm(t, s, 8, 2, nil)
		checkEntries(t, s, 5, 9, append(e[4:5:5], ents(6, 9, 2)...))
	})
	t.Run("MaxBytes", func(t *testing.T) {
		s := open(t)
		mustSave(t, s, consensus.HardState{}, ents(1, 11, 1), nil)
		for _, tc := range []struct{ max, want uint64 }{{0, 1}, {99, 1}, {100, 1}, {250, 2}, {300, 3}, {1 << 20, 10}} {
			got, err := s.Entries(1, 11, tc.max)
			if err != nil || uint64(len(got)) != tc.want {
				t.Fatalf("Entries(1, 11, %d) = %d entries, %v; want %d", tc.max, len(got), err, tc.want)
			}
		}
	})
	t.Run("ConflictTruncates", func(t *testing.T) {
		s := open(t)
		mustSave(t, s, consensus.HardState{Term: 1}, ents(1, 11, 1), nil)
		repl := ents(4, 7, 2)
		mustSave(t, s, consensus.HardState{Term: 2}, repl, nil)
		checkRange(t, s, 1, 6)
		checkTerm(t, s, 3, 1, nil)
		checkTerm(t, s, 4, 2, nil)
		checkTerm(t, s, 7, 0, consensus.ErrUnavailable)
		checkEntries(t, s, 1, 7, append(ents(1, 4, 1), repl...))
		// Replacing the whole log from index 1.
		mustSave(t, s, consensus.HardState{Term: 3}, ents(1, 3, 3), nil)
		checkRange(t, s, 1, 2)
		checkEntries(t, s, 1, 3, ents(1, 3, 3))
		// Then growing again past the old end.
		mustSave(t, s, consensus.HardState{}, ents(3, 12, 3), nil)
		checkEntries(t, s, 1, 12, ents(1, 12, 3))
	})
	t.Run("RejectsBadAppends", func(t *testing.T) {
		s := open(t)
		mustSave(t, s, consensus.HardState{Term: 2}, ents(1, 4, 2), nil)
		if err := s.Save(consensus.HardState{}, ents(5, 6, 2), nil); err == nil {
			t.Fatalf("Save accepted entries that leave a gap")
		}
		checkRange(t, s, 1, 3)
		checkEntries(t, s, 1, 4, ents(1, 4, 2))
	})
	t.Run("HardState", func(t *testing.T) {
		s := open(t)
		mustSave(t, s, consensus.HardState{Term: 3, Vote: "n2"}, nil, nil)
		hs, _, err := s.InitialState()
		if err != nil || hs.Term != 3 || hs.Vote != "n2" {
			t.Fatalf("InitialState() = %+v, %v; want term 3 vote n2", hs, err)
		}
		mustSave(t, s, consensus.HardState{Term: 4, Vote: "", Commit: 0}, ents(1, 3, 4), nil)
		mustSave(t, s, consensus.HardState{Term: 4, Vote: "", Commit: 2}, nil, nil)
		hs, _, err = s.InitialState()
		if err != nil || hs.Term != 4 || hs.Vote != "" {
			t.Fatalf("InitialState() = %+v, %v; want term 4, no vote", hs, err)
		}
		if hs.Commit > 2 {
			t.Fatalf("commit %d past anything saved", hs.Commit)
		}
	})
	t.Run("Compact", func(t *testing.T) {
		s := open(t)
		mustSave(t, s, consensus.HardState{Term: 2}, append(ents(1, 6, 1), ents(6, 11, 2)...), nil)
		if err := s.Compact(7); err != nil {
			t.Fatalf("Compact(7): %v", err)
		}
		checkRange(t, s, 8, 10)
		checkTerm(t, s, 7, 2, nil)
		checkTerm(t, s, 6, 0, consensus.ErrCompacted)
		checkTerm(t, s, 11, 0, consensus.ErrUnavailable)
		if _, err := s.Entries(7, 9, 1000); !errors.Is(err, consensus.ErrCompacted) {
			t.Fatalf("Entries(7, 9) after Compact(7): err %v, want ErrCompacted", err)
		}
		checkEntries(t, s, 8, 11, ents(8, 11, 2))
		snap, err := s.Snapshot()
		if err != nil || snap.Index != 7 || snap.Term != 2 {
			t.Fatalf("Snapshot() = %+v, %v; want index 7 term 2", snap, err)
		}
		if err := s.Compact(5); !errors.Is(err, consensus.ErrCompacted) {
			t.Fatalf("Compact below the snapshot: %v, want ErrCompacted", err)
		}
		checkRange(t, s, 8, 10)
		if err := s.Compact(11); err == nil {
			t.Fatalf("Compact past the last index succeeded")
		}
		// Compact everything; the log is then empty after the snapshot.
		if err := s.Compact(10); err != nil {
			t.Fatalf("Compact(10): %v", err)
		}
		checkRange(t, s, 11, 10)
		checkTerm(t, s, 10, 2, nil)
		mustSave(t, s, consensus.HardState{}, ents(11, 13, 2), nil)
		checkRange(t, s, 11, 12)
		// Entries at or below the snapshot are skipped.
		mustSave(t, s, consensus.HardState{}, ents(9, 13, 2), nil)
		checkRange(t, s, 11, 12)
		checkTerm(t, s, 10, 2, nil)
	})
	t.Run("InstallSnapshot", func(t *testing.T) {
		s := open(t)
		mustSave(t, s, consensus.HardState{Term: 1}, ents(1, 11, 1), nil)
		meta := &consensus.SnapshotMeta{Index: 20, Term: 4, Conf: consensus.ConfState{Members: []consensus.Member{
			{ID: "n1", Addr: "a1", Voter: true}, {ID: "n2", Addr: "a2", Voter: true}, {ID: "n4", Addr: "a4"},
		}}}
		mustSave(t, s, consensus.HardState{Term: 4, Commit: 20}, nil, meta)
		checkRange(t, s, 21, 20)
		checkTerm(t, s, 20, 4, nil)
		checkTerm(t, s, 10, 0, consensus.ErrCompacted)
		snap, err := s.Snapshot()
		if err != nil || !reflect.DeepEqual(snap, *meta) {
			t.Fatalf("Snapshot() = %+v, %v; want %+v", snap, err, *meta)
		}
		hs, cs, err := s.InitialState()
		if err != nil || hs.Term != 4 || !reflect.DeepEqual(cs, meta.Conf) {
			t.Fatalf("InitialState() = %+v, %+v, %v; want term 4 and the snapshot's configuration", hs, cs, err)
		}
		mustSave(t, s, consensus.HardState{}, ents(21, 23, 4), nil)
		checkRange(t, s, 21, 22)
		// A snapshot whose (index, term) the log holds keeps the entries
		// after it (Raft §7).
		mustSave(t, s, consensus.HardState{}, ents(23, 26, 4), nil)
		meta2 := &consensus.SnapshotMeta{Index: 23, Term: 4, Conf: meta.Conf}
		mustSave(t, s, consensus.HardState{}, nil, meta2)
		checkRange(t, s, 24, 25)
		checkEntries(t, s, 24, 26, ents(24, 26, 4))
		// One that does not match discards the whole log; entries after it
		// in the same Save continue it.
		meta3 := &consensus.SnapshotMeta{Index: 24, Term: 5, Conf: meta.Conf}
		mustSave(t, s, consensus.HardState{Term: 5}, ents(25, 26, 5), meta3)
		checkRange(t, s, 25, 25)
		checkTerm(t, s, 24, 5, nil)
		checkTerm(t, s, 25, 5, nil)
		// An older snapshot is ignored.
		mustSave(t, s, consensus.HardState{}, nil, &consensus.SnapshotMeta{Index: 15, Term: 4})
		if snap, _ := s.Snapshot(); snap.Index != 24 {
			t.Fatalf("an older snapshot replaced the newer one: %+v", snap)
		}
		checkRange(t, s, 25, 25)
	})
}

// RunDurableLogStoreTests checks that everything a Save or Compact returned
// from survives closing and reopening. open opens the store kept in dir
// (creating it when empty); closeFn closes it.
func RunDurableLogStoreTests(t *testing.T, open func(t *testing.T, dir string) LogStore, closeFn func(LogStore) error) {
	reopen := func(t *testing.T, s LogStore, dir string) LogStore {
		t.Helper()
		if err := closeFn(s); err != nil {
			t.Fatalf("close: %v", err)
		}
		return open(t, dir)
	}
	t.Run("SurvivesReopen", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		mustSave(t, s, consensus.HardState{Term: 2, Vote: "n3", Commit: 4}, append(ents(1, 6, 1), ents(6, 11, 2)...), nil)
		mustSave(t, s, consensus.HardState{Term: 3, Vote: "n1", Commit: 4}, ents(9, 10, 3), nil)
		if err := s.Compact(4); err != nil {
			t.Fatal(err)
		}
		s = reopen(t, s, dir)
		checkRange(t, s, 5, 9)
		checkTerm(t, s, 4, 1, nil)
		checkTerm(t, s, 9, 3, nil)
		checkEntries(t, s, 5, 10, append(append(ents(5, 6, 1), ents(6, 9, 2)...), ents(9, 10, 3)...))
		hs, _, err := s.InitialState()
		if err != nil || hs.Term != 3 || hs.Vote != "n1" || hs.Commit > 4 {
			t.Fatalf("InitialState() after reopen = %+v, %v", hs, err)
		}
		meta := &consensus.SnapshotMeta{Index: 30, Term: 5, Conf: consensus.ConfState{Members: []consensus.Member{{ID: "n1", Addr: "x:1", Voter: true}}}}
		mustSave(t, s, consensus.HardState{Term: 5}, ents(31, 33, 5), meta)
		s = reopen(t, s, dir)
		checkRange(t, s, 31, 32)
		checkTerm(t, s, 30, 5, nil)
		checkEntries(t, s, 31, 33, ents(31, 33, 5))
		snap, err := s.Snapshot()
		if err != nil || !reflect.DeepEqual(snap, *meta) {
			t.Fatalf("Snapshot() after reopen = %+v, %v; want %+v", snap, err, *meta)
		}
		// A snapshot that keeps the log's suffix, then a conflict.
		mustSave(t, s, consensus.HardState{}, ents(33, 36, 5), nil)
		mustSave(t, s, consensus.HardState{}, nil, &consensus.SnapshotMeta{Index: 33, Term: 5})
		mustSave(t, s, consensus.HardState{Term: 6}, ents(35, 36, 6), nil)
		s = reopen(t, s, dir)
		checkRange(t, s, 34, 35)
		checkTerm(t, s, 33, 5, nil)
		checkEntries(t, s, 34, 36, append(ents(34, 35, 5), ents(35, 36, 6)...))
		if err := closeFn(s); err != nil {
			t.Fatal(err)
		}
	})
}
