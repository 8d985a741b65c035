// Package store is raftsql's durable Raft state: the log entries, the
// term and vote, and the newest snapshot's meta, kept in one bolt file
// (raft.db in the data directory) through github.com/hashicorp/raft-boltdb/v2.
// Bolt and raft-boltdb types never leave this package: *Store implements
// consensus.Storage (the core's read view) plus Save and Compact (the
// driver's write side).
//
// # Layout and atomicity
//
// raft-boltdb's "logs" bucket holds one entry per key (big-endian index).
// Each entry's raft-boltdb Extensions field carries our entry type and a
// CRC-32C over index, term, type and data, checked when the entry is read
// at Open. Key 0 (Raft indexes start at 1) holds the control record: term,
// vote, commit, the last valid index and the snapshot meta, with its own
// CRC. Save writes the control record and all of its entries with one
// raft-boltdb StoreLogs call — one bolt transaction, one fsync — so a
// Save is atomic: after a crash either all of it or none of it is there.
// A normal Ready (entries, unchanged term and vote) therefore costs one
// fsync, and so does an election (term and vote change) or a snapshot
// install. A change of the commit index alone is kept in memory only (the
// core treats commit = max(persisted, applied)).
//
// Entries that the control record declares dead (past the last index after
// a conflict truncation, or at or below the snapshot index) are deleted by
// a second transaction right after; if that is interrupted, Open finishes
// it. This is the only thing Open ever deletes.
//
// The "conf" bucket holds the format marker "raftsql/store-format" =
// "raftsql-store/1", written before the file is renamed into place, so a
// bolt file without it is somebody else's.
//
// # Lifecycle
//
// Open validates and loads the file: it checks the bolt header against the
// file size (a truncated file would otherwise make bbolt fault), checks the
// format marker, walks every page of the log read-only (bolt panics and
// mmap faults on damaged pages are caught and reported as ErrCorrupt), then
// reads every live entry to verify its checksum, the log's contiguity and
// non-decreasing terms, and to fill the in-memory term index and the cache
// of the newest entries. Anything wrong stops Open with an error wrapping
// ErrCorrupt (ErrVersion for a newer format, ErrLocked when another
// process has the file open); nothing is repaired. After Open, Term,
// FirstIndex and LastIndex never touch bolt, and Entries reads bolt only
// for entries older than the cache. Close closes the file.
//
// The configuration returned by InitialState (and recorded by Compact) is
// the snapshot's configuration with every EntryConfChange after it applied
// through Options.ApplyConfChange (default CoreApplyConfChange: the core's
// own rules).
//
// # Debugging
//
// Stats reports commits, cleanup commits, entries and bytes written and
// the time spent committing. Open logs what it loaded (term, vote, first,
// last) and any cleanup it finished. BenchmarkFsync measures the disk's
// raw fsync rate; BenchmarkSave the store's. The contract suite every
// log store must pass is in store/storetest.
package store
