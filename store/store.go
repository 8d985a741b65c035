package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/raftsql/raftsql/consensus"
)

// FileName is the name of the bolt file inside the data directory.
const FileName = "raft.db"

// Options configures Open. The zero value is usable.
type Options struct {
	// Logger receives open/repair/cleanup events. nil discards.
	Logger *slog.Logger
	// ApplyConfChange applies the configuration entry e to cs and returns
	// the new configuration. InitialState and Compact use it to compute the
	// configuration as of an index. nil means the consensus core's own
	// rules (CoreApplyConfChange).
	ApplyConfChange func(cs consensus.ConfState, e consensus.Entry) (consensus.ConfState, error)
	// LockTimeout bounds how long Open waits for another process's lock
	// on the file (default 1s).
	LockTimeout time.Duration
	// CacheEntries and CacheBytes bound the in-memory cache of the newest
	// entries that serves Entries without reading bolt (defaults 4096
	// entries, 16 MiB).
	CacheEntries int
	CacheBytes   int
}

// Stats are cumulative counters for benchmarks and metrics.
type Stats struct {
	// Commits is the number of fsyncing bolt transactions made by Save
	// and Compact (one per call that wrote anything).
	Commits uint64
	// CleanupCommits counts the extra transactions that delete stale
	// entries after a conflict truncation, a snapshot or a compaction.
	CleanupCommits uint64
	// Entries and Bytes count entries (and their Data bytes) written.
	Entries uint64
	Bytes   uint64
	// SyncTime is the total time spent in committing transactions
	// (write + fsync); MaxSync the longest one.
	SyncTime time.Duration
	MaxSync  time.Duration
}

// Store is the durable Raft log and stable state of one node. It implements
// consensus.Storage. Save and Compact are the write side. All methods are
// safe for concurrent use; reads never wait for bolt except for entries
// older than the in-memory cache.
type Store struct {
	opts Options
	log  *slog.Logger
	path string

	mu     sync.RWMutex
	bolt   *raftboltdb.BoltStore
	closed bool
	c      control  // durable control record (as last written)
	terms  []uint64 // terms[i] is the term of entry c.Snap.Index+1+i
	// confIdx lists, ascending, the indexes of EntryConfChange entries in
	// (c.Snap.Index, c.Last].
	confIdx []uint64
	// tail caches the newest entries, contiguous, ending at c.Last.
	tail      []consensus.Entry
	tailBytes int

	statsMu sync.Mutex
	stats   Stats
}

var _ consensus.Storage = (*Store)(nil)

// Open opens (or creates) the store in dir. A file that is not a raftsql
// store, or is damaged, stops Open with an error wrapping ErrCorrupt (or
// ErrVersion / ErrLocked); nothing is repaired or dropped past what the
// store itself had marked as garbage.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.ApplyConfChange == nil {
		opts.ApplyConfChange = CoreApplyConfChange
	}
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = 4096
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 16 << 20
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	s := &Store{opts: opts, log: opts.Logger.With("component", "store", "path", path), path: path}

	var info loadInfo
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := create(path, opts.LockTimeout); err != nil {
			return nil, err
		}
		s.log.Info("created new store")
	case err != nil:
		return nil, fmt.Errorf("store: %w", err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, path)
	default:
		if info, err = loadExisting(ctx, s, opts.LockTimeout); err != nil {
			return nil, err
		}
	}
	return openBolt(ctx, s, opts, info)
}

// openBolt opens the validated file through raft-boltdb and loads it.
// Reads of a damaged file may panic inside bolt or fault in its mmap; both
// become ErrCorrupt.
func openBolt(ctx context.Context, s *Store, opts Options, info loadInfo) (_ *Store, err error) {
	path := s.path
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if err != nil && s.bolt != nil {
			s.bolt.Close()
		}
	}()
	defer recoverCorrupt(path, &err) // runs first: sets err for the close above
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: opts.LockTimeout}})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	s.bolt = b
	// Entries outside (Snap.Index, Last] were made garbage by a committed
	// control record whose cleanup did not finish: finish it. This is the
	// only thing Open deletes.
	c := s.c
	if info.aboveCount > 0 {
		s.log.Info("removing entries past the log end left by an interrupted truncation", "from", c.Last+1, "to", info.boltLast)
		if err := b.DeleteRange(c.Last+1, info.boltLast); err != nil {
			return nil, fmt.Errorf("store: cleanup: %w", err)
		}
	}
	if info.belowSnap {
		s.log.Info("removing compacted entries left by an interrupted compaction", "to", c.Snap.Index)
		if err := b.DeleteRange(1, c.Snap.Index); err != nil {
			return nil, fmt.Errorf("store: cleanup: %w", err)
		}
	}
	s.log.Info("opened store", "term", c.Term, "vote", c.Vote, "snapshot", c.Snap.Index, "first", c.Snap.Index+1, "last", c.Last)
	return s, nil
}

// create makes a new store file atomically: it is built under a temporary
// name with its format marker and renamed into place, so a crash never
// leaves a bolt file without the marker (which Open would reject).
func create(path string, timeout time.Duration) error {
	tmp := path + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: %w", err)
	}
	b, err := raftboltdb.New(raftboltdb.Options{Path: tmp, BoltOptions: &bbolt.Options{Timeout: timeout}})
	if err != nil {
		return fmt.Errorf("store: create: %w", err)
	}
	c := control{}
	err = b.Set(formatKey, []byte(formatValue))
	if err == nil {
		err = b.StoreLogs([]*raft.Log{{Index: 0, Data: c.encode()}})
	}
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("store: create: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readEntry reads entry i from bolt and verifies it.
func (s *Store) readEntry(i uint64) (consensus.Entry, error) {
	var l raft.Log
	if err := s.bolt.GetLog(i, &l); err != nil {
		if errors.Is(err, raft.ErrLogNotFound) {
			return consensus.Entry{}, fmt.Errorf("%w: %s: entry %d missing (hole in the log)", ErrCorrupt, s.path, i)
		}
		return consensus.Entry{}, fmt.Errorf("%w: %s: entry %d: %v", ErrCorrupt, s.path, i, err)
	}
	if l.Index != i {
		return consensus.Entry{}, fmt.Errorf("%w: %s: key %d holds entry %d", ErrCorrupt, s.path, i, l.Index)
	}
	e := consensus.Entry{Index: l.Index, Term: l.Term, Data: l.Data}
	if err := checkEntry(&e, l.Extensions); err != nil {
		return consensus.Entry{}, fmt.Errorf("%s: %w", s.path, err)
	}
	return e, nil
}

func (s *Store) cacheAppend(e consensus.Entry) {
	s.tail = append(s.tail, e)
	s.tailBytes += len(e.Data)
	drop := 0
	for len(s.tail)-drop > s.opts.CacheEntries || (s.tailBytes > s.opts.CacheBytes && len(s.tail)-drop > 1) {
		s.tailBytes -= len(s.tail[drop].Data)
		drop++
	}
	if drop > 0 {
		// Copy down once the dropped prefix is large, so the backing
		// array does not grow forever.
		if drop > len(s.tail)/2 {
			s.tail = append([]consensus.Entry(nil), s.tail[drop:]...)
		} else {
			s.tail = s.tail[drop:]
		}
	}
}

// cacheTruncate removes cached entries with index >= from.
func (s *Store) cacheTruncate(from uint64) {
	for len(s.tail) > 0 && s.tail[len(s.tail)-1].Index >= from {
		s.tailBytes -= len(s.tail[len(s.tail)-1].Data)
		s.tail = s.tail[:len(s.tail)-1]
	}
}

// cacheDropBefore removes cached entries with index < from.
func (s *Store) cacheDropBefore(from uint64) {
	for len(s.tail) > 0 && s.tail[0].Index < from {
		s.tailBytes -= len(s.tail[0].Data)
		s.tail = s.tail[1:]
	}
}

// Save durably writes hs, the optional snapshot meta snap and entries, in
// one bolt transaction (one fsync), and returns once they are on disk.
//
//   - snap, if newer than the stored snapshot, is installed (Raft §7): when
//     the log holds snap.Index with snap.Term, the entries after it are
//     kept; otherwise the whole log is discarded and continues at
//     snap.Index+1. An older or equal snapshot is ignored.
//   - entries must be contiguous and start at most at LastIndex()+1;
//     entries at or below the snapshot index are skipped, and existing
//     entries at >= entries[0].Index are replaced (a conflicting suffix is
//     deleted).
//   - hs is written when its Term or Vote differ from the stored ones (or
//     with any other write); a change of Commit alone costs no I/O.
//
// The caller must not modify the entries' Data after Save.
func (s *Store) Save(hs consensus.HardState, entries []consensus.Entry, snap *consensus.SnapshotMeta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	old := s.c
	nc := s.c
	write := false
	newSnap := snap != nil && snap.Index > old.Snap.Index
	keepSuffix := false
	if newSnap {
		nc.Snap = cloneMeta(*snap)
		nc.Last = snap.Index
		if snap.Index <= old.Last && s.terms[snap.Index-old.Snap.Index-1] == snap.Term {
			keepSuffix = true
			nc.Last = old.Last
		}
		write = true
	}
	// termOf is the term of entry i in [nc.Snap.Index, nc.Last] before
	// this Save's entries are applied.
	termOf := func(i uint64) uint64 {
		if i == nc.Snap.Index {
			return nc.Snap.Term
		}
		return s.terms[i-old.Snap.Index-1]
	}
	if !hs.IsEmpty() {
		if hs.Term < old.Term {
			return fmt.Errorf("%w: term %d below the stored term %d", ErrInvalidArgument, hs.Term, old.Term)
		}
		if hs.Term == old.Term && old.Vote != "" && hs.Vote != old.Vote {
			// One vote per term (Raft §5.2): a second vote is a bug above.
			return fmt.Errorf("%w: vote for %q in term %d, which already has a vote for %q", ErrInvalidArgument, hs.Vote, hs.Term, old.Vote)
		}
		if hs.Term != old.Term || hs.Vote != old.Vote {
			write = true
		}
		nc.Term, nc.Vote = hs.Term, hs.Vote
		if hs.Commit > nc.Commit {
			nc.Commit = hs.Commit
		}
	}
	if len(entries) > 0 && entries[0].Index <= nc.Snap.Index {
		// Already covered by the snapshot.
		if n := nc.Snap.Index + 1 - entries[0].Index; n < uint64(len(entries)) {
			entries = entries[n:]
		} else {
			entries = nil
		}
	}
	if len(entries) > 0 {
		first := entries[0].Index
		if first > nc.Last+1 {
			return fmt.Errorf("%w: entries start at %d, leaving a gap after %d", ErrInvalidArgument, first, nc.Last)
		}
		prevTerm := termOf(first - 1)
		for i := range entries {
			if entries[i].Index != first+uint64(i) {
				return fmt.Errorf("%w: entries not contiguous at %d", ErrInvalidArgument, entries[i].Index)
			}
			if entries[i].Term < prevTerm {
				return fmt.Errorf("%w: entry %d has term %d below the previous entry's term %d", ErrInvalidArgument, entries[i].Index, entries[i].Term, prevTerm)
			}
			prevTerm = entries[i].Term
			if entries[i].Type != consensus.EntryNormal && entries[i].Type != consensus.EntryConfChange {
				return fmt.Errorf("%w: entry %d has unknown type %d", ErrInvalidArgument, entries[i].Index, entries[i].Type)
			}
		}
		nc.Last = entries[len(entries)-1].Index
		write = true
	}
	if !write {
		s.c.Commit = nc.Commit
		return nil
	}
	logs := make([]*raft.Log, 0, len(entries)+1)
	logs = append(logs, &raft.Log{Index: 0, Data: nc.encode()})
	var nbytes uint64
	for i := range entries {
		e := &entries[i]
		logs = append(logs, &raft.Log{Index: e.Index, Term: e.Term, Type: raft.LogCommand, Data: e.Data, Extensions: entryExt(e)})
		nbytes += uint64(len(e.Data))
	}
	start := time.Now()
	if err := s.bolt.StoreLogs(logs); err != nil {
		return fmt.Errorf("store: save: %w", err)
	}
	s.noteCommit(time.Since(start))
	s.statsMu.Lock()
	s.stats.Entries += uint64(len(entries))
	s.stats.Bytes += nbytes
	s.statsMu.Unlock()
	s.c = nc

	// In-memory view.
	if newSnap {
		if keepSuffix {
			s.terms = append([]uint64(nil), s.terms[snap.Index-old.Snap.Index:]...)
			k := sort.Search(len(s.confIdx), func(i int) bool { return s.confIdx[i] > snap.Index })
			s.confIdx = append([]uint64(nil), s.confIdx[k:]...)
			s.cacheDropBefore(snap.Index + 1)
		} else {
			s.terms = s.terms[:0]
			s.confIdx = s.confIdx[:0]
			s.tail, s.tailBytes = nil, 0
		}
	}
	if len(entries) > 0 {
		first := entries[0].Index
		s.terms = s.terms[:first-nc.Snap.Index-1]
		k := sort.Search(len(s.confIdx), func(i int) bool { return s.confIdx[i] >= first })
		s.confIdx = s.confIdx[:k]
		s.cacheTruncate(first)
		if len(s.tail) > 0 && s.tail[len(s.tail)-1].Index != first-1 {
			s.tail, s.tailBytes = nil, 0
		}
		for _, e := range entries {
			s.terms = append(s.terms, e.Term)
			if e.Type == consensus.EntryConfChange {
				s.confIdx = append(s.confIdx, e.Index)
			}
			s.cacheAppend(e)
		}
	}

	// Delete what the new control record made garbage: entries before the
	// new first index and past the new last index. Already safe on disk
	// (Open ignores and removes them), so a failure here is only logged.
	if newSnap && old.Last > old.Snap.Index {
		s.cleanup(old.Snap.Index+1, min(old.Last, nc.Snap.Index))
	}
	if old.Last > nc.Last {
		s.cleanup(max(nc.Last+1, old.Snap.Index+1), old.Last)
	}
	return nil
}

func (s *Store) cleanup(lo, hi uint64) {
	if lo > hi {
		return
	}
	start := time.Now()
	if err := s.bolt.DeleteRange(lo, hi); err != nil {
		s.log.Warn("deleting stale entries failed; Open will retry", "from", lo, "to", hi, "err", err)
		return
	}
	d := time.Since(start)
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.stats.CleanupCommits++
	s.stats.SyncTime += d
	s.stats.MaxSync = max(s.stats.MaxSync, d)
}

func (s *Store) noteCommit(d time.Duration) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.stats.Commits++
	s.stats.SyncTime += d
	s.stats.MaxSync = max(s.stats.MaxSync, d)
}

// Compact discards the entries up to and including index, which a snapshot
// of the state machine covers. The snapshot meta (index, its term and the
// configuration as of index) is recorded durably before any entry is
// deleted. Compacting at or below the current snapshot returns an error
// wrapping consensus.ErrCompacted and changes nothing.
func (s *Store) Compact(index uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if index <= s.c.Snap.Index {
		return fmt.Errorf("compact to %d, snapshot is at %d: %w", index, s.c.Snap.Index, consensus.ErrCompacted)
	}
	if index > s.c.Last {
		return fmt.Errorf("compact to %d past last index %d: %w", index, s.c.Last, consensus.ErrUnavailable)
	}
	conf, err := s.confAt(index)
	if err != nil {
		return err
	}
	old := s.c
	nc := s.c
	nc.Snap = consensus.SnapshotMeta{Index: index, Term: s.terms[index-old.Snap.Index-1], Conf: conf}
	start := time.Now()
	if err := s.bolt.StoreLogs([]*raft.Log{{Index: 0, Data: nc.encode()}}); err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	s.noteCommit(time.Since(start))
	s.c = nc
	n := index - old.Snap.Index
	s.terms = append([]uint64(nil), s.terms[n:]...)
	k := sort.Search(len(s.confIdx), func(i int) bool { return s.confIdx[i] > index })
	s.confIdx = append([]uint64(nil), s.confIdx[k:]...)
	s.cacheDropBefore(index + 1)
	s.cleanup(old.Snap.Index+1, index)
	return nil
}

// confAt returns the configuration as of index (Snap.Index <= index <=
// Last), applying the configuration entries after the snapshot.
func (s *Store) confAt(index uint64) (consensus.ConfState, error) {
	cs := cloneMeta(s.c.Snap).Conf
	for _, ci := range s.confIdx {
		if ci > index {
			break
		}
		e, err := s.entry(ci)
		if err != nil {
			return consensus.ConfState{}, err
		}
		cs, err = s.opts.ApplyConfChange(cs, e)
		if err != nil {
			return consensus.ConfState{}, fmt.Errorf("store: configuration entry %d: %w", ci, err)
		}
	}
	return cs, nil
}

// entry returns entry i (Snap.Index < i <= Last) from the cache or bolt.
func (s *Store) entry(i uint64) (consensus.Entry, error) {
	if len(s.tail) > 0 && i >= s.tail[0].Index {
		return s.tail[i-s.tail[0].Index], nil
	}
	return s.readEntry(i)
}

// InitialState implements consensus.Storage.
func (s *Store) InitialState() (consensus.HardState, consensus.ConfState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return consensus.HardState{}, consensus.ConfState{}, ErrClosed
	}
	cs, err := s.confAt(s.c.Last)
	if err != nil {
		return consensus.HardState{}, consensus.ConfState{}, err
	}
	return consensus.HardState{Term: s.c.Term, Vote: s.c.Vote, Commit: s.c.Commit}, cs, nil
}

// Entries implements consensus.Storage.
func (s *Store) Entries(lo, hi, maxBytes uint64) ([]consensus.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if lo <= s.c.Snap.Index {
		return nil, consensus.ErrCompacted
	}
	if hi > s.c.Last+1 {
		return nil, consensus.ErrUnavailable
	}
	if lo >= hi {
		return nil, nil
	}
	var out []consensus.Entry
	var size uint64
	for i := lo; i < hi; i++ {
		e, err := s.entry(i)
		if err != nil {
			return nil, err
		}
		size += uint64(len(e.Data))
		if len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// Term implements consensus.Storage.
func (s *Store) Term(i uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	switch {
	case i == s.c.Snap.Index:
		return s.c.Snap.Term, nil
	case i < s.c.Snap.Index:
		return 0, consensus.ErrCompacted
	case i > s.c.Last:
		return 0, consensus.ErrUnavailable
	}
	return s.terms[i-s.c.Snap.Index-1], nil
}

// FirstIndex implements consensus.Storage.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.c.Snap.Index + 1, nil
}

// LastIndex implements consensus.Storage.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.c.Last, nil
}

// Snapshot implements consensus.Storage.
func (s *Store) Snapshot() (consensus.SnapshotMeta, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return consensus.SnapshotMeta{}, ErrClosed
	}
	return cloneMeta(s.c.Snap), nil
}

// Stats returns the cumulative counters. It never waits for a write in
// progress.
func (s *Store) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Path is the bolt file's path.
func (s *Store) Path() string { return s.path }

// Close closes the bolt file. Further calls return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.bolt.Close()
}

// CoreApplyConfChange applies the configuration entry e to cs exactly as
// the consensus core does (a change that does not apply is skipped, bytes
// that do not decode are an error), by way of consensus.MemoryStorage, the
// core's reference storage, so the rules live in one place.
func CoreApplyConfChange(cs consensus.ConfState, e consensus.Entry) (consensus.ConfState, error) {
	ms := consensus.NewMemoryStorage()
	meta := &consensus.SnapshotMeta{Index: 1, Term: 1, Conf: cs}
	if err := ms.Save(consensus.HardState{}, []consensus.Entry{{Index: 2, Term: 1, Type: e.Type, Data: e.Data}}, meta); err != nil {
		return cs, err
	}
	_, out, err := ms.InitialState()
	return out, err
}

func cloneMeta(m consensus.SnapshotMeta) consensus.SnapshotMeta {
	m.Conf.Members = append([]consensus.Member(nil), m.Conf.Members...)
	return m
}
