package consensus

import (
	"errors"
	"fmt"
)

// unstable holds what the core has decided but the driver has not yet
// reported durable: at most one incoming snapshot and a run of entries that
// starts at offset. Entries below offset live in Storage.
type unstable struct {
	snapshot *SnapshotMeta
	entries  []Entry
	// offset is the index of entries[0] (or where the next entry goes).
	offset uint64
	// snapshotInProgress: the snapshot was handed out in a Ready.
	snapshotInProgress bool
	// offsetInProgress: entries in [offset, offsetInProgress) were handed
	// out in a Ready and are being persisted. offset <= offsetInProgress.
	offsetInProgress uint64
}

func (u *unstable) lastIndex() (uint64, bool) {
	if n := len(u.entries); n > 0 {
		return u.offset + uint64(n) - 1, true
	}
	if u.snapshot != nil {
		return u.snapshot.Index, true
	}
	return 0, false
}

func (u *unstable) term(i uint64) (uint64, bool) {
	if i < u.offset {
		if u.snapshot != nil && u.snapshot.Index == i {
			return u.snapshot.Term, true
		}
		return 0, false
	}
	last, ok := u.lastIndex()
	if !ok || i > last {
		return 0, false
	}
	return u.entries[i-u.offset].Term, true
}

// stableTo marks entries up to (i, t) durable. A mismatching term means
// the entry was replaced after the Ready was handed out; nothing is marked.
func (u *unstable) stableTo(i, t uint64) {
	gt, ok := u.term(i)
	if !ok || gt != t || i < u.offset {
		return
	}
	n := i + 1 - u.offset
	u.entries = u.entries[n:]
	if len(u.entries) == 0 {
		u.entries = nil
	}
	u.offset = i + 1
	u.offsetInProgress = max(u.offsetInProgress, u.offset)
}

func (u *unstable) stableSnapTo(i uint64) {
	if u.snapshot != nil && u.snapshot.Index == i {
		u.snapshot = nil
		u.snapshotInProgress = false
	}
}

func (u *unstable) restore(s SnapshotMeta) {
	u.offset = s.Index + 1
	u.offsetInProgress = u.offset
	u.entries = nil
	u.snapshot = &s
	u.snapshotInProgress = false
}

func (u *unstable) truncateAndAppend(ents []Entry) {
	from := ents[0].Index
	switch {
	case from == u.offset+uint64(len(u.entries)):
		u.entries = append(u.entries, ents...)
	case from <= u.offset:
		// Replace everything unstable; the driver's Save overwrites the
		// stored entries at index >= from.
		u.offset = from
		u.entries = append([]Entry(nil), ents...)
	default:
		kept := append([]Entry(nil), u.entries[:from-u.offset]...)
		u.entries = append(kept, ents...)
	}
	u.offsetInProgress = min(u.offsetInProgress, from)
}

// raftLog is the whole log as the core sees it: Storage (durable) below
// unstable (decided, not yet durable).
//
// Invariants: applied <= applying <= committed <= lastIndex().
type raftLog struct {
	storage  Storage
	unstable unstable
	// committed is the highest index known to be stored on a quorum.
	committed uint64
	// applying is the highest index handed out in CommittedEntries.
	applying uint64
	// applied is the highest index the driver reported handed off (Advance).
	applied uint64
	// changedFrom is the lowest index whose entry was written or replaced
	// since the last call to takeChanged (0: none). Used by tests.
	changedFrom uint64
	// maxApplyBytes caps the CommittedEntries of one Ready.
	maxApplyBytes uint64
}

func newRaftLog(s Storage, maxApplyBytes uint64) (*raftLog, error) {
	first, err := s.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("consensus: storage first index: %w", err)
	}
	last, err := s.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("consensus: storage last index: %w", err)
	}
	if first == 0 || last+1 < first {
		return nil, fmt.Errorf("consensus: storage reports first index %d, last index %d", first, last)
	}
	l := &raftLog{storage: s, maxApplyBytes: maxApplyBytes}
	l.unstable.offset = last + 1
	l.unstable.offsetInProgress = last + 1
	l.committed = first - 1
	l.applying = first - 1
	l.applied = first - 1
	return l, nil
}

func (l *raftLog) firstIndex() uint64 {
	if l.unstable.snapshot != nil {
		return l.unstable.snapshot.Index + 1
	}
	i, err := l.storage.FirstIndex()
	if err != nil {
		panic(fmt.Sprintf("consensus: storage first index: %v", err))
	}
	return i
}

func (l *raftLog) lastIndex() uint64 {
	if i, ok := l.unstable.lastIndex(); ok {
		return i
	}
	i, err := l.storage.LastIndex()
	if err != nil {
		panic(fmt.Sprintf("consensus: storage last index: %v", err))
	}
	return i
}

// durableIndex is the last index known durable and still part of the log.
func (l *raftLog) durableIndex() uint64 {
	if l.unstable.snapshot != nil {
		return 0
	}
	return min(l.unstable.offset-1, l.lastIndex())
}

func (l *raftLog) term(i uint64) (uint64, error) {
	if t, ok := l.unstable.term(i); ok {
		return t, nil
	}
	if i+1 < l.firstIndex() {
		return 0, ErrCompacted
	}
	if i > l.lastIndex() {
		return 0, ErrUnavailable
	}
	if i == 0 {
		return 0, nil
	}
	t, err := l.storage.Term(i)
	if err != nil {
		if errors.Is(err, ErrCompacted) || errors.Is(err, ErrUnavailable) {
			return 0, err
		}
		panic(fmt.Sprintf("consensus: storage term(%d): %v", i, err))
	}
	return t, nil
}

func (l *raftLog) termOrZero(i uint64) uint64 {
	t, err := l.term(i)
	if err != nil {
		return 0
	}
	return t
}

func (l *raftLog) lastTerm() uint64 { return l.termOrZero(l.lastIndex()) }

func (l *raftLog) matchTerm(i, t uint64) bool {
	gt, err := l.term(i)
	return err == nil && gt == t
}

// isUpToDate is the election restriction (§5.4.1): a log ending at
// (lastIndex, lastTerm) is at least as up-to-date as ours.
func (l *raftLog) isUpToDate(lastIndex, lastTerm uint64) bool {
	ours := l.lastTerm()
	return lastTerm > ours || (lastTerm == ours && lastIndex >= l.lastIndex())
}

// findConflict returns the index of the first entry of ents that is not in
// the log (missing or with another term), or 0 if all are present.
func (l *raftLog) findConflict(ents []Entry) uint64 {
	for _, e := range ents {
		if !l.matchTerm(e.Index, e.Term) {
			return e.Index
		}
	}
	return 0
}

// append writes ents (contiguous), replacing any entries at or after
// ents[0].Index. The caller has checked that nothing committed changes.
func (l *raftLog) append(ents []Entry) {
	if len(ents) == 0 {
		return
	}
	if ents[0].Index <= l.committed {
		panic(fmt.Sprintf("consensus: append at %d would overwrite committed %d", ents[0].Index, l.committed))
	}
	l.unstable.truncateAndAppend(ents)
	l.markChanged(ents[0].Index)
}

func (l *raftLog) markChanged(i uint64) {
	if l.changedFrom == 0 || i < l.changedFrom {
		l.changedFrom = i
	}
}

// entries returns entries in [lo, hi) with at most maxBytes of Data (but at
// least one entry).
func (l *raftLog) slice(lo, hi, maxBytes uint64) ([]Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	if lo < l.firstIndex() {
		return nil, ErrCompacted
	}
	if hi > l.lastIndex()+1 {
		return nil, fmt.Errorf("%w: slice [%d,%d) past last index %d", ErrUnavailable, lo, hi, l.lastIndex())
	}
	var out []Entry
	if lo < l.unstable.offset {
		shi := min(hi, l.unstable.offset)
		ents, err := l.storage.Entries(lo, shi, maxBytes)
		if err != nil {
			return nil, err
		}
		if len(ents) == 0 {
			return nil, fmt.Errorf("%w: storage returned no entries for [%d,%d)", ErrUnavailable, lo, shi)
		}
		if uint64(len(ents)) < shi-lo {
			return ents, nil
		}
		out = ents
	}
	if hi > l.unstable.offset {
		ulo := max(lo, l.unstable.offset)
		u := l.unstable.entries[ulo-l.unstable.offset : hi-l.unstable.offset]
		if len(out) > 0 {
			combined := make([]Entry, 0, len(out)+len(u))
			out = append(append(combined, out...), u...)
		} else {
			out = u
		}
	}
	return limitSize(out, maxBytes), nil
}

func limitSize(ents []Entry, maxBytes uint64) []Entry {
	if len(ents) == 0 {
		return ents
	}
	size := uint64(len(ents[0].Data))
	for i := 1; i < len(ents); i++ {
		size += uint64(len(ents[i].Data))
		if size > maxBytes {
			return ents[:i]
		}
	}
	return ents
}

func (l *raftLog) commitTo(i uint64) {
	if i <= l.committed {
		return
	}
	if last := l.lastIndex(); i > last {
		panic(fmt.Sprintf("consensus: commit %d is past last index %d", i, last))
	}
	l.committed = i
}

// nextUnstableEnts returns the entries not yet handed out for persistence.
func (l *raftLog) nextUnstableEnts() []Entry {
	u := &l.unstable
	start := u.offsetInProgress - u.offset
	if start >= uint64(len(u.entries)) {
		return nil
	}
	return u.entries[start:]
}

func (l *raftLog) nextUnstableSnapshot() *SnapshotMeta {
	if l.unstable.snapshot == nil || l.unstable.snapshotInProgress {
		return nil
	}
	return l.unstable.snapshot
}

func (l *raftLog) hasNextCommittedEnts() bool {
	if l.unstable.snapshot != nil {
		return false
	}
	return l.applying < min(l.committed, l.lastIndex())
}

func (l *raftLog) nextCommittedEnts() []Entry {
	if !l.hasNextCommittedEnts() {
		return nil
	}
	ents, err := l.slice(l.applying+1, min(l.committed, l.lastIndex())+1, l.maxApplyBytes)
	if err != nil {
		panic(fmt.Sprintf("consensus: reading committed entries (%d,%d]: %v", l.applying, l.committed, err))
	}
	return ents
}

// acceptReady records that the given Ready contents were handed out.
func (l *raftLog) acceptReady(ents []Entry, snap *SnapshotMeta, committed []Entry) {
	if snap != nil {
		l.unstable.snapshotInProgress = true
	}
	if n := len(ents); n > 0 {
		l.unstable.offsetInProgress = ents[n-1].Index + 1
	}
	if n := len(committed); n > 0 {
		l.applying = max(l.applying, committed[n-1].Index)
	}
}

func (l *raftLog) restore(s SnapshotMeta) {
	l.unstable.restore(s)
	l.committed = s.Index
	l.markChanged(s.Index)
}
