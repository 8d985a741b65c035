package consensus

import (
	"fmt"
	"sync"
)

// MemoryStorage is an in-memory Storage with the write side a driver uses
// (Save, Compact, Close). It is the reference implementation for tests and
// the simulation; it is safe for concurrent use.
type MemoryStorage struct {
	mu   sync.Mutex
	hs   HardState
	snap SnapshotMeta
	// ents[0] is a placeholder for the snapshot's (index, term); real
	// entries follow. len(ents) >= 1.
	ents   []Entry
	closed bool
}

// NewMemoryStorage returns an empty storage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{ents: make([]Entry, 1)}
}

func (s *MemoryStorage) firstIndex() uint64 { return s.ents[0].Index + 1 }
func (s *MemoryStorage) lastIndex() uint64  { return s.ents[0].Index + uint64(len(s.ents)) - 1 }

// InitialState returns the HardState and the configuration as of the last
// entry.
func (s *MemoryStorage) InitialState() (HardState, ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, err := applyConfEntries(s.snap.Conf.clone(), s.ents[1:])
	if err != nil {
		return HardState{}, ConfState{}, err
	}
	return s.hs, cs, nil
}

// Entries returns entries in [lo, hi), at most maxBytes of Data (at least
// one entry).
func (s *MemoryStorage) Entries(lo, hi, maxBytes uint64) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lo < s.firstIndex() {
		return nil, ErrCompacted
	}
	if hi > s.lastIndex()+1 {
		return nil, fmt.Errorf("%w: entries [%d,%d) past last index %d", ErrUnavailable, lo, hi, s.lastIndex())
	}
	if lo >= hi {
		return nil, nil
	}
	off := s.ents[0].Index
	ents := limitSize(s.ents[lo-off:hi-off], maxBytes)
	return append([]Entry(nil), ents...), nil
}

// Term returns the term of entry i.
func (s *MemoryStorage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.ents[0].Index
	if i < off {
		return 0, ErrCompacted
	}
	if i > s.lastIndex() {
		return 0, ErrUnavailable
	}
	return s.ents[i-off].Term, nil
}

// FirstIndex is the index of the first entry kept.
func (s *MemoryStorage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstIndex(), nil
}

// LastIndex is the index of the last entry.
func (s *MemoryStorage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastIndex(), nil
}

// Snapshot returns the newest snapshot's meta.
func (s *MemoryStorage) Snapshot() (SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.snap
	out.Conf = s.snap.Conf.clone()
	return out, nil
}

// HardState returns the stored HardState.
func (s *MemoryStorage) HardState() HardState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hs
}

// Save durably (here: in memory) applies one Ready: the snapshot first (if
// newer than the current one: the log is reset to it, keeping a suffix
// that matches it), then the entries, which replace any existing entries
// at index >= entries[0].Index, then the HardState if not empty.
func (s *MemoryStorage) Save(hs HardState, entries []Entry, snap *SnapshotMeta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("consensus: memory storage is closed")
	}
	if snap != nil && snap.Index > s.snap.Index {
		keep := []Entry{{Index: snap.Index, Term: snap.Term}}
		off := s.ents[0].Index
		if snap.Index <= s.lastIndex() && snap.Index >= off && s.ents[snap.Index-off].Term == snap.Term {
			keep = append(keep, s.ents[snap.Index-off+1:]...)
		}
		s.ents = keep
		s.snap = *snap
		s.snap.Conf = snap.Conf.clone()
	}
	if len(entries) > 0 {
		first := entries[0].Index
		if first > s.lastIndex()+1 {
			return fmt.Errorf("%w: appending at %d leaves a gap after %d", ErrUnavailable, first, s.lastIndex())
		}
		off := s.ents[0].Index
		if first <= off {
			// Already compacted into the snapshot.
			if n := off + 1 - first; n < uint64(len(entries)) {
				entries = entries[n:]
			} else {
				entries = nil
			}
		}
		if len(entries) > 0 {
			first = entries[0].Index
			s.ents = append(s.ents[:first-off], entries...)
		}
	}
	if !hs.IsEmpty() {
		s.hs = hs
	}
	return nil
}

// Compact discards the entries up to and including index, which becomes
// the snapshot's index; the snapshot meta (term, configuration) is derived
// from the log. Use it after the application took a snapshot at index.
func (s *MemoryStorage) Compact(index uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.ents[0].Index
	if index <= off {
		return ErrCompacted
	}
	if index > s.lastIndex() {
		return fmt.Errorf("%w: compact %d past last index %d", ErrUnavailable, index, s.lastIndex())
	}
	cs, err := applyConfEntries(s.snap.Conf.clone(), s.ents[1:index-off+1])
	if err != nil {
		return err
	}
	s.snap = SnapshotMeta{Index: index, Term: s.ents[index-off].Term, Conf: cs}
	kept := make([]Entry, 1, 1+s.lastIndex()-index)
	kept[0] = Entry{Index: index, Term: s.snap.Term}
	s.ents = append(kept, s.ents[index-off+1:]...)
	return nil
}

// Close marks the storage closed; Save fails afterwards.
func (s *MemoryStorage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
