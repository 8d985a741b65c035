// Package fsm is raftsql's state machine: it applies committed Raft
// entries to a SQLite database (modernc.org/sqlite, pure Go) and serves
// local reads, statement descriptions and snapshots of it.
//
// # What an entry holds
//
// An EntryNormal carries a Command (EncodeCommand/DecodeCommand: a compact
// versioned binary format): a session id and sequence number, the
// proposer's clock, and one or more statements with parameters — one unit
// of work, with PostgreSQL's implicit-transaction semantics. An
// EntryNormal with no data is a leader's no-op: only its index is recorded.
// An EntryConfChange is membership: the fsm records its index and keeps
// the resulting configuration in _raftsql_members (same rules as the
// consensus core, bootstrap entries included), so that a snapshot carries
// its configuration (ReadSnapshotMeta, ConfState). A Command with Node
// set upserts a row of the node directory, _raftsql_nodes (each node's
// HTTP and PostgreSQL addresses, FSM.Nodes); removing a member deletes
// its row (nodes.go).
//
// # Apply
//
// The Raft driver calls Apply from one goroutine, in log order. A batch of
// entries runs in ONE SQLite transaction (BEGIN IMMEDIATE … COMMIT: one
// WAL commit per batch), each entry in its own SAVEPOINT. A statement that
// fails rolls back its entry alone: the entry's results are those of its
// statements up to the failing one, which carries Err (a *SQLError with
// SQLite's extended result code); the other entries of the batch commit.
// The applied index (and its term) is written in the same transaction,
// after every entry, in the _raftsql_meta table, so a crash neither loses
// nor repeats an entry: on restart AppliedIndex() is what the database
// holds and Apply skips entries at or below it. Errors that are the node's
// and not the SQL's (I/O, disk full, corruption) roll back the whole batch
// and are returned, wrapped in ErrApplyFailed: the caller must not go past
// them.
//
// Every entry has a budget of MaxEntrySteps SQLite virtual machine steps
// (the progress handler counts them: the same on every node); a statement
// that runs out fails with CodeStepLimit instead of stalling the log
// forever. A statement that makes SQLite roll back the whole transaction
// (an interrupted write does) makes Apply redo the batch before its entry
// and record the entry alone as failed, so the result does not depend on
// batching.
//
// Statements that would change the connection instead of the database or
// break the batch transaction are refused with CodeNotAllowed as their
// result (transaction control, ROLLBACK conflict resolution, ATTACH,
// VACUUM, PRAGMA, TEMP objects, the fsm's _raftsql_* tables); see
// classify.go.
//
// # Exactly once
//
// _raftsql_sessions keeps, per session, the last applied sequence number
// and its encoded results. A command whose seq is the last one returns the
// stored results without running; an older seq gets CodeStaleSequence.
// The stored copy is bounded (MaxStoredResult): a larger result (many
// RETURNING rows) is stored without its rows, so a retry of that write
// returns its columns, row count and errors but no rows.
// Sessions idle for SessionTTL, measured with the commands' own clock
// (Command.UnixMicro), are deleted as entries are applied, so every node
// deletes the same ones at the same entry. SessionID 0 means no dedup.
//
// # Results
//
// Expect(session, seq) before proposing, then Waiter.Wait: the results
// arrive when this node commits the entry (on every node, so a follower
// that forwarded a write learns its result from its own apply). Results
// nobody waits for are dropped.
//
// # Reads
//
// Query runs statements on a pool of read connections opened with
// query_only=1 (a write that was misclassified as a read cannot change a
// replica), all statements of one call in one read transaction. WaitApplied
// blocks until an index is applied (read-index reads). Describe prepares a
// statement without running it and reports its parameters, result columns
// with declared types and whether it is read-only.
//
// # Interactive transactions
//
// Preview runs a transaction's pending writes and its next statements on
// a connection of its own, in a transaction that is always rolled back,
// under the writer's mutex (so it never holds SQLite's write lock while
// the applier needs it, and the writer's connection state stays as Apply
// left it); a preview that only reads runs on a query_only connection of
// its own without that mutex. Both register the clock and random
// overrides, with the transaction's clock. It returns the results and the
// applied index it read at (version); PreviewTx also returns the tables
// its statements read or wrote (an authorizer on the preview connections:
// a view's tables, a trigger's, a foreign key check's; tables.go). The
// COMMIT is proposed with Command.ReadVersion = version and
// Command.ReadTables = the union of its previews' tables. It fails as a
// whole with CodeConflict (SQLSTATE 40001), alike on every node, if
// last_schema_index (the last entry that ran DDL, or a restore) is above
// ReadVersion, or one of ReadTables was changed after it:
// _raftsql_table_writes(tbl, idx) keeps, per table, the index of the
// last entry that committed and changed its rows (a preupdate hook on the
// writer sees every row changed, triggers and cascades included), in the
// same transaction as the entry. A command with ReadVersion and no
// ReadTables keeps the global check: _raftsql_meta's last_write_index is
// the index of the last entry that changed the database (changed rows —
// triggers and cascades included — or ran DDL; or a restore), and any
// such entry after ReadVersion conflicts; so does a command whose
// ReadTables hold "*", which PreviewTx adds when a statement used a
// virtual table (FTS5 reads part of its shadow tables through blob
// handles, which no authorizer sees, and the preupdate hook does not see
// a virtual table's writes). No-ops, configuration changes
// and failed entries move none of these. Because the preupdate hook is
// set, SQLite's truncate optimisation is off on the writer: a DELETE
// without WHERE deletes row by row (and counts against MaxEntrySteps).
// Per-table indexes are trusted only for a ReadVersion at or after
// tables_since (_raftsql_meta): 1 in a database created empty by this
// version; a restore sets it to its own index. A database an older fsm
// wrote recorded no table writes before its upgrade, and nodes upgrade
// at different indexes: its tables_since is set by the first entry with
// ReadTables, which can only be proposed once every node decodes it
// (older ones refuse version 5 commands as corrupt: upgrade every node
// before clients use transactions). An earlier ReadVersion gets the
// global check, the same on every node. Not covered: a cluster upgraded
// that way which then adds an empty node replaying the log from index 1
// (not from a snapshot): that node tracks from 1, the others from the
// first entry with ReadTables, and they could decide a transaction read
// in between differently.
//
// # Snapshots and backups
//
// SnapshotFile/Snapshot copy the database with SQLite's online backup API
// in one read transaction while Apply goes on; the copy carries its applied
// index in _raftsql_meta (ReadSnapshotMeta) and is an ordinary SQLite file
// (a backup). Restore checks a file, copies it next to the database, fsyncs
// and renames it over the database (the old WAL removed first) and reopens
// the connections; reads wait meanwhile (that is how a node installs a
// snapshot from its leader).
//
// A Command with Restore set (a whole database file) replaces the state on
// every node at its entry (DESIGN.md: POST /restore goes through the log).
// The entries before it in the batch commit first; the file is checked
// (quick_check, and a schema the log could replicate), given the cluster's
// configuration, node directory, sessions and the entry's index,
// last_write_index = last_schema_index = that index and no per-table
// write indexes (the file's own came from another log), and swapped in
// like a snapshot. A bad file is refused as the entry's result (CodeBadRestore),
// alike on every node.
//
// A file of any size goes as RestoreChunk entries and a RestoreCommit
// (restore.go): the chunks are staged inside the database, in
// _raftsql_restore_chunks (so a snapshot taken mid-restore carries them
// and replicas stay identical at every index; a chunk of a new restore id
// deletes any other id's), and the commit reassembles them, checks count,
// size and SHA-256 and swaps the file in as above. A refused commit drops
// the staging table; either way the database holds the old state or the
// new one, never a mix. CheckRestoreFile runs the same file checks ahead
// of time (the server refuses a bad upload before proposing anything).
//
// # Determinism
//
// The proposer makes the SQL text deterministic (package sqltext). What
// SQLite evaluates at apply time — a column's DEFAULT CURRENT_TIMESTAMP, a
// trigger, random() left in the SQL — uses the entry's own clock and
// randomness: the writer overrides current_timestamp(), current_date(),
// current_time() (the entry's Command.UnixMicro, UTC, SQLite's formats),
// random() and randomblob() (a PRNG seeded from the entry's index and
// term: a new value per row, the same on every node); see entropy.go.
// SQLite calls these overrides for the DEFAULT of an INSERT too
// (TestDefaultClockIsTheEntrys); the 'now' of date functions reads the
// OS clock and is not covered (sqltext rewrites it). The fsm keeps the
// rest deterministic: the same entries give byte-identical
// database files however they are batched (the meta row is updated per
// entry), stored results and the connection-state functions do not
// depend on connection history (RowsAffected/LastInsertID are set only
// when the statement changed rows; last_insert_rowid() starts at 0 in
// every statement and changes() at 2 in every entry, restart or not), and
// session expiry uses the entries' clock. SQLite keeps two header fields
// per file (the change counter and version-valid-for number, offsets 24
// and 92), which in WAL mode depend on when checkpoints ran; Checksum
// leaves them out and covers every other byte.
//
// # Prepared statements
//
// Each connection keeps an LRU of prepared statements by SQL text
// (stmtCacheSize) plus the applier's own statements. A cached statement
// whose schema changed is re-prepared by SQLite at its first step, so a
// Result's columns are read after that step.
//
// # Why not database/sql
//
// The fsm talks to SQLite through modernc.org/sqlite/lib (sqlite.go):
// database/sql cannot describe a statement without running it, hides the
// extended result codes and sqlite3_stmt_readonly, and the driver turns
// TEXT in DATE/TIMESTAMP columns into time.Time. Pragmas are run right
// after sqlite3_open_v2 instead of through a DSN.
//
// # Debugging
//
// The database is DIR/raftsql.db (WAL mode); open it with sqlite3 (read
// only while the node runs). SELECT * FROM _raftsql_meta shows
// applied_index, applied_term, conf_index, last_write_index,
// last_schema_index and tables_since; _raftsql_table_writes each table's last write;
// _raftsql_sessions the dedup state; _raftsql_restore_chunks (if present)
// the chunks of a restore being staged (SELECT id, count(*), sum(length(data))
// FROM _raftsql_restore_chunks GROUP BY id), and restore_done in
// _raftsql_meta the id of the last restore that ended. A file left as
// raftsql.db.restore is an interrupted restore and is removed at Open.
package fsm
