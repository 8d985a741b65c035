package store_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/store"
	"github.com/raftsql/raftsql/store/storetest"
)

func openDir(t *testing.T, dir string, opts store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.RunLogStoreTests(t, func(t *testing.T) storetest.LogStore {
		s := openDir(t, t.TempDir(), store.Options{})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestContractSmallCache(t *testing.T) {
	// A cache of one entry forces reads through bolt.
	storetest.RunLogStoreTests(t, func(t *testing.T) storetest.LogStore {
		s := openDir(t, t.TempDir(), store.Options{CacheEntries: 1})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestContractDurable(t *testing.T) {
	storetest.RunDurableLogStoreTests(t, func(t *testing.T, dir string) storetest.LogStore {
		return openDir(t, dir, store.Options{CacheEntries: 2})
	}, func(s storetest.LogStore) error { return s.(*store.Store).Close() })
}

func entries(lo, hi, term uint64) []consensus.Entry {
	var out []consensus.Entry
	for i := lo; i < hi; i++ {
		out = append(out, consensus.Entry{Index: i, Term: term, Data: []byte("payload-" + string(rune('a'+i%26)) + "-xyzzy")})
	}
	return out
}

func TestGroupCommitOneTransactionPerSave(t *testing.T) {
	s := openDir(t, t.TempDir(), store.Options{})
	defer s.Close()
	if err := s.Save(consensus.HardState{Term: 1, Vote: "a"}, entries(1, 257, 1), nil); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Commits != 1 || st.Entries != 256 || st.CleanupCommits != 0 {
		t.Fatalf("after one Save of 256 entries + hard state: %+v, want 1 commit, 256 entries", st)
	}
	// A commit-index change alone costs no I/O.
	if err := s.Save(consensus.HardState{Term: 1, Vote: "a", Commit: 200}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Commits != 1 {
		t.Fatalf("commit-only Save wrote: %+v", st)
	}
	hs, _, _ := s.InitialState()
	if hs.Commit != 200 {
		t.Fatalf("commit not visible in memory: %+v", hs)
	}
	// A conflict costs the write plus one cleanup transaction.
	if err := s.Save(consensus.HardState{Term: 2}, entries(100, 101, 2), nil); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Commits != 2 || st.CleanupCommits != 1 {
		t.Fatalf("after a truncating Save: %+v, want 2 commits, 1 cleanup", st)
	}
	if st := s.Stats(); st.SyncTime <= 0 || st.MaxSync <= 0 {
		t.Fatalf("sync time not measured: %+v", st)
	}
}

// confDecoder is a test ApplyConfChange: Data "+id" adds a voter, "-id"
// removes it.
func confDecoder(cs consensus.ConfState, e consensus.Entry) (consensus.ConfState, error) {
	id := string(e.Data[1:])
	var out consensus.ConfState
	for _, m := range cs.Members {
		if m.ID != id {
			out.Members = append(out.Members, m)
		}
	}
	if e.Data[0] == '+' {
		out.Members = append(out.Members, consensus.Member{ID: id, Addr: id + ":7000", Voter: true})
	}
	return out, nil
}

func TestConfiguration(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, store.Options{ApplyConfChange: confDecoder})
	cc := func(i uint64, d string) consensus.Entry {
		return consensus.Entry{Index: i, Term: 1, Type: consensus.EntryConfChange, Data: []byte(d)}
	}
	es := []consensus.Entry{cc(1, "+a"), cc(2, "+b"), cc(3, "+c"), {Index: 4, Term: 1, Data: []byte("x")}, cc(5, "-b")}
	if err := s.Save(consensus.HardState{Term: 1}, es, nil); err != nil {
		t.Fatal(err)
	}
	ids := func(cs consensus.ConfState) (out []string) {
		for _, m := range cs.Members {
			out = append(out, m.ID)
		}
		return out
	}
	_, cs, err := s.InitialState()
	if err != nil || !reflect.DeepEqual(ids(cs), []string{"a", "c"}) {
		t.Fatalf("InitialState conf = %v, %v; want [a c]", ids(cs), err)
	}
	// Truncating the removal brings b back.
	if err := s.Save(consensus.HardState{Term: 2}, []consensus.Entry{{Index: 5, Term: 2}}, nil); err != nil {
		t.Fatal(err)
	}
	_, cs, _ = s.InitialState()
	if !reflect.DeepEqual(ids(cs), []string{"a", "b", "c"}) {
		t.Fatalf("after truncation conf = %v; want [a b c]", ids(cs))
	}
	if err := s.Compact(2); err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Snapshot()
	if !reflect.DeepEqual(ids(snap.Conf), []string{"a", "b"}) {
		t.Fatalf("snapshot conf at 2 = %v; want [a b]", ids(snap.Conf))
	}
	s.Close()
	s = openDir(t, dir, store.Options{ApplyConfChange: confDecoder})
	_, cs, _ = s.InitialState()
	if !reflect.DeepEqual(ids(cs), []string{"a", "b", "c"}) {
		t.Fatalf("after reopen conf = %v; want [a b c]", ids(cs))
	}
	s.Close()
}

// The default decoder follows the core's rules on entries the core encodes.
func TestConfigurationCoreRules(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, store.Options{})
	cc := func(i uint64, typ consensus.ConfChangeType, id string) consensus.Entry {
		return consensus.Entry{Index: i, Term: 1, Type: consensus.EntryConfChange, Data: consensus.EncodeConfChange(consensus.ConfChange{Type: typ, ID: id, Addr: id + ":7000"})}
	}
	es := []consensus.Entry{
		cc(1, consensus.ConfAddVoter, "n1"), cc(2, consensus.ConfAddVoter, "n3"), cc(3, consensus.ConfAddLearner, "n2"),
		cc(4, consensus.ConfRemove, "nobody"), // does not apply: skipped, as by the core
		cc(5, consensus.ConfAddVoter, "n2"), cc(6, consensus.ConfRemove, "n3"),
	}
	if err := s.Save(consensus.HardState{Term: 1}, es, nil); err != nil {
		t.Fatal(err)
	}
	want := consensus.ConfState{Members: []consensus.Member{{ID: "n1", Addr: "n1:7000", Voter: true}, {ID: "n2", Addr: "n2:7000", Voter: true}}}
	if _, cs, err := s.InitialState(); err != nil || !reflect.DeepEqual(cs, want) {
		t.Fatalf("InitialState conf = %+v, %v; want %+v", cs, err, want)
	}
	if err := s.Compact(3); err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Snapshot()
	if len(snap.Conf.Members) != 3 || snap.Conf.Members[1].Voter {
		t.Fatalf("snapshot conf at 3 = %+v; want n1, n2 (learner), n3", snap.Conf)
	}
	s.Close()
	s = openDir(t, dir, store.Options{})
	defer s.Close()
	if _, cs, err := s.InitialState(); err != nil || !reflect.DeepEqual(cs, want) {
		t.Fatalf("after reopen: %+v, %v", cs, err)
	}
	// Bytes that do not decode are an error, not a silent skip.
	if err := s.Save(consensus.HardState{}, []consensus.Entry{{Index: 7, Term: 1, Type: consensus.EntryConfChange, Data: []byte{9, 9}}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.InitialState(); err == nil {
		t.Fatalf("InitialState accepted an undecodable configuration entry")
	}
}

// newStoreFile creates a store with some entries in dir and closes it.
func newStoreFile(t *testing.T, dir string) string {
	t.Helper()
	s := openDir(t, dir, store.Options{})
	if err := s.Save(consensus.HardState{Term: 1, Vote: "n1"}, entries(1, 21, 1), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, store.FileName)
}

func expectCorrupt(t *testing.T, dir string, want error) {
	t.Helper()
	s, err := store.Open(context.Background(), dir, store.Options{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatalf("Open succeeded on a bad data directory")
	}
	if !errors.Is(err, want) {
		t.Fatalf("Open error %v does not wrap %v", err, want)
	}
	t.Logf("Open: %v", err)
}

func TestOpenRejectsBadDirectories(t *testing.T) {
	t.Run("NotBolt", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, store.FileName), bytes.Repeat([]byte("not a database "), 4096), 0o600)
		expectCorrupt(t, dir, store.ErrCorrupt)
	})
	t.Run("EmptyFile", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, store.FileName), nil, 0o600)
		expectCorrupt(t, dir, store.ErrCorrupt)
	})
	t.Run("Directory", func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, store.FileName), 0o700)
		expectCorrupt(t, dir, store.ErrCorrupt)
	})
	t.Run("Truncated", func(t *testing.T) {
		dir := t.TempDir()
		path := newStoreFile(t, dir)
		fi, _ := os.Stat(path)
		before, _ := os.ReadFile(path)
		if err := os.Truncate(path, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
		expectCorrupt(t, dir, store.ErrCorrupt)
		after, _ := os.ReadFile(path)
		if !bytes.Equal(after, before[:len(after)]) {
			t.Fatalf("Open modified the damaged file")
		}
	})
	t.Run("TornMetaPages", func(t *testing.T) {
		dir := t.TempDir()
		path := newStoreFile(t, dir)
		f, _ := os.OpenFile(path, os.O_RDWR, 0)
		f.WriteAt(bytes.Repeat([]byte{0xff}, 64), 16)
		f.WriteAt(bytes.Repeat([]byte{0xff}, 64), 4096+16)
		f.Close()
		expectCorrupt(t, dir, store.ErrCorrupt)
	})
	t.Run("OneTornMetaPageIsTolerated", func(t *testing.T) {
		// bbolt alternates two meta pages; a torn commit leaves the other.
		dir := t.TempDir()
		path := newStoreFile(t, dir)
		f, _ := os.OpenFile(path, os.O_RDWR, 0)
		f.WriteAt(bytes.Repeat([]byte{0xff}, 64), 16)
		f.Close()
		s := openDir(t, dir, store.Options{})
		defer s.Close()
		if _, _, err := s.InitialState(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("DamagedEntry", func(t *testing.T) {
		dir := t.TempDir()
		path := newStoreFile(t, dir)
		b, _ := os.ReadFile(path)
		i := bytes.Index(b, []byte("payload-h-xyzzy"))
		if i < 0 {
			t.Fatal("entry payload not found in the file")
		}
		b[i+8] = 'Z'
		os.WriteFile(path, b, 0o600)
		expectCorrupt(t, dir, store.ErrCorrupt)
	})
	t.Run("ForeignRaftBoltDB", func(t *testing.T) {
		dir := t.TempDir()
		b, err := raftboltdb.NewBoltStore(filepath.Join(dir, store.FileName))
		if err != nil {
			t.Fatal(err)
		}
		b.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Data: []byte("hashicorp")}})
		b.Close()
		expectCorrupt(t, dir, store.ErrCorrupt)
	})
	t.Run("ForeignBolt", func(t *testing.T) {
		dir := t.TempDir()
		db, err := bbolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Update(func(tx *bbolt.Tx) error {
			b, _ := tx.CreateBucket([]byte("users"))
			return b.Put([]byte("k"), []byte("v"))
		})
		db.Close()
		expectCorrupt(t, dir, store.ErrCorrupt)
	})
	t.Run("FutureVersion", func(t *testing.T) {
		dir := t.TempDir()
		path := newStoreFile(t, dir)
		b, err := raftboltdb.NewBoltStore(path)
		if err != nil {
			t.Fatal(err)
		}
		b.Set([]byte("raftsql/store-format"), []byte("raftsql-store/9"))
		b.Close()
		expectCorrupt(t, dir, store.ErrVersion)
	})
	t.Run("HoleInLog", func(t *testing.T) {
		dir := t.TempDir()
		path := newStoreFile(t, dir)
		b, err := raftboltdb.NewBoltStore(path)
		if err != nil {
			t.Fatal(err)
		}
		b.DeleteRange(7, 7)
		b.Close()
		expectCorrupt(t, dir, store.ErrCorrupt)
	})
	t.Run("Locked", func(t *testing.T) {
		dir := t.TempDir()
		s := openDir(t, dir, store.Options{})
		defer s.Close()
		expectCorrupt(t, dir, store.ErrLocked)
	})
}

// Random damage anywhere past the meta pages: Open either reports
// ErrCorrupt or (damage in free pages) opens a store whose every entry
// verifies; it never panics or faults.
func TestOpenSurvivesDamagedPages(t *testing.T) {
	src := t.TempDir()
	s := openDir(t, src, store.Options{})
	for i := uint64(0); i < 40; i++ {
		es := entries(1+i*50, 51+i*50, 1)
		for j := range es {
			es[j].Data = bytes.Repeat(es[j].Data, 8)
		}
		if err := s.Save(consensus.HardState{Term: 1}, es, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(500); err != nil {
		t.Fatal(err)
	}
	s.Close()
	orig, err := os.ReadFile(filepath.Join(src, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	corrupt, opened := 0, 0
	for round := range 60 {
		b := append([]byte(nil), orig...)
		const page = 4096
		off := 2*page + rng.IntN(len(b)-2*page)
		n := 1 + rng.IntN(64)
		if round%3 == 0 {
			n = page // a whole page of garbage
			off -= off % page
		}
		for i := off; i < min(off+n, len(b)); i++ {
			b[i] = byte(rng.Uint32())
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, store.FileName), b, 0o600)
		s, err := store.Open(context.Background(), dir, store.Options{})
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("round %d: Open error %v does not wrap ErrCorrupt", round, err)
			}
			t.Logf("round %d: %v", round, err)
			corrupt++
			continue
		}
		opened++
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if _, err := s.Entries(first, last+1, ^uint64(0)); err != nil {
			t.Fatalf("round %d: opened, then Entries failed: %v", round, err)
		}
		s.Close()
	}
	t.Logf("damaged files: %d refused with ErrCorrupt, %d opened (damage in unused space)", corrupt, opened)
	if corrupt == 0 {
		t.Fatalf("no damage was detected in 60 rounds")
	}
}

func TestOpenFinishesInterruptedCleanup(t *testing.T) {
	dir := t.TempDir()
	path := newStoreFile(t, dir)
	// Entries past the log end as left by a crash between a truncating
	// Save and its cleanup: written by an older Save, marked garbage by
	// the control record. Simulate by planting raw entries after 20.
	b, err := raftboltdb.NewBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	b.StoreLogs([]*raft.Log{{Index: 21, Term: 1, Data: []byte("stale")}, {Index: 22, Term: 1, Data: []byte("stale")}})
	b.Close()
	s := openDir(t, dir, store.Options{})
	if last, _ := s.LastIndex(); last != 20 {
		t.Fatalf("LastIndex = %d, want 20", last)
	}
	// Appending after reopen works and the stale entries are gone for good.
	if err := s.Save(consensus.HardState{}, entries(21, 22, 2), nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openDir(t, dir, store.Options{})
	defer s.Close()
	if last, _ := s.LastIndex(); last != 21 {
		t.Fatalf("LastIndex after reopen = %d, want 21", last)
	}
	if tm, _ := s.Term(21); tm != 2 {
		t.Fatalf("Term(21) = %d, want 2", tm)
	}
}

func TestSaveValidates(t *testing.T) {
	s := openDir(t, t.TempDir(), store.Options{})
	defer s.Close()
	if err := s.Save(consensus.HardState{Term: 2, Vote: "n1"}, entries(1, 4, 2), nil); err != nil {
		t.Fatal(err)
	}
	bad := map[string]struct {
		hs consensus.HardState
		es []consensus.Entry
	}{
		"gap":            {es: entries(5, 6, 2)},
		"not contiguous": {es: []consensus.Entry{entries(4, 5, 2)[0], entries(6, 7, 2)[0]}},
		"term decreases": {es: entries(4, 5, 1)},
		"unknown type":   {es: []consensus.Entry{{Index: 4, Term: 2, Type: 7}}},
		"term goes back": {hs: consensus.HardState{Term: 1}},
		"second vote":    {hs: consensus.HardState{Term: 2, Vote: "n9"}},
	}
	for name, c := range bad {
		if err := s.Save(c.hs, c.es, nil); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("%s: Save = %v, want ErrInvalidArgument", name, err)
		}
	}
	if last, _ := s.LastIndex(); last != 3 {
		t.Fatalf("a rejected Save changed the log: last %d", last)
	}
	if st := s.Stats(); st.Commits != 1 {
		t.Fatalf("rejected Saves wrote: %+v", st)
	}
}

func TestOpenFinishesInterruptedCompaction(t *testing.T) {
	dir := t.TempDir()
	path := newStoreFile(t, dir)
	s := openDir(t, dir, store.Options{})
	if err := s.Compact(10); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Entries at or below the snapshot, as a crash between the control
	// record and the deletion would leave them.
	b, err := raftboltdb.NewBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	b.StoreLogs([]*raft.Log{{Index: 9, Term: 1, Data: []byte("old")}, {Index: 10, Term: 1, Data: []byte("old")}})
	b.Close()
	s = openDir(t, dir, store.Options{})
	if first, _ := s.FirstIndex(); first != 11 {
		t.Fatalf("FirstIndex = %d, want 11", first)
	}
	s.Close()
	b, err = raftboltdb.NewBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var l raft.Log
	if err := b.GetLog(9, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("compacted entry 9 still in the file: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s := openDir(t, t.TempDir(), store.Options{})
	s.Close()
	if _, err := s.LastIndex(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("LastIndex after Close: %v", err)
	}
	if err := s.Save(consensus.HardState{Term: 1}, nil, nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Save after Close: %v", err)
	}
}

func TestOpenHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := store.Open(ctx, t.TempDir(), store.Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a cancelled context: %v", err)
	}
}
