// Package backup holds what raftsql's backup and restore paths share: the
// checks that a candidate file is a usable SQLite database, its size and
// SHA-256, and how a file is cut into the chunks that a restore carries
// through the Raft log.
//
// # Lifecycle of a restore (who uses what)
//
//  1. A client (raftsql restore, or raftsqld --restore) checks the file it
//     is about to send with CheckLocal: a SQLite header, and no -wal file
//     next to it holding changes that the main file lacks. It streams the
//     file; nothing reads it whole into memory.
//  2. The server (server/restore.go) streams the body into a private temp
//     file with Receive (size and SHA-256 computed on the way, a byte
//     limit enforced), then Validate opens that copy with SQLite and runs
//     PRAGMA integrity_check. A refusal here is a 4xx; nothing was proposed.
//  3. The server proposes the file as Chunks(size) entries of ChunkSize
//     bytes (ReadChunk), then a commit entry with the size and SHA-256.
//  4. The state machine (package fsm) stages the chunks in the database,
//     and at the commit entry reassembles them, checks count, size and
//     SHA-256 (Sum), checks the header (CheckHeader) and swaps the file in.
//
// Validate works on a private copy only: SQLite may create -wal and -shm
// files next to the file it opens (a WAL-mode database, which every
// raftsql backup is), and a stray -wal of someone else's must never be
// read into the copy. The copy is opened with query_only, so its bytes —
// and so the SHA-256 the commit carries — do not change.
//
// # Debugging
//
// The errors say which check failed (ErrNotSQLite, ErrCorrupt,
// ErrWALPresent, ErrTooLarge). To check a file by hand:
//
//	sqlite3 FILE 'PRAGMA integrity_check'   # must print ok
//	sha256sum FILE                          # what the commit entry carries
package backup
