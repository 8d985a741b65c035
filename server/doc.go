// Package server wires one raftsql node together: the bolt Raft store, the
// SQLite state machine (fsm), the Raft driver (consensus/node) with its TCP
// transport, the PostgreSQL front end (pgwire) and the HTTP API.
//
// Lifecycle: Start opens the data directory (locked against a second
// process), the store and the database, bootstraps a new cluster (--peers,
// or a single node) or restarts from the log, starts the listeners and
// returns; Close stops them in reverse order. Run does both around a
// context.
//
// The engine (engine.go) is the session layer's bridge to Raft: a write is
// made deterministic (sqltext.MakeDeterministic), encoded as one fsm.Command
// with the session's id and a sequence number, proposed, and its result is
// read from this node's own apply of the entry — so a follower that
// forwarded the proposal gets the same result as the leader. A write is
// proposed again after a leader change or a lost proposal; the fsm applies a
// (session, seq) at most once. Reads never enter the log: linearizable reads
// wait for a read index to be applied, lease reads use the leader's lease
// (falling back to read-index), stale reads read at once.
//
// Restores (restore.go): POST /restore and raftsqld --restore keep the file
// in DATA/tmp, check it (package backup, fsm.CheckRestoreFile) and propose it
// as 1 MiB fsm.RestoreChunk entries, 8 in flight, then an fsm.RestoreCommit;
// any node may drive one (a follower's proposals reach the leader through
// Raft). --restore leaves DATA/restore-pending until its commit applied.
// Once a restore applied, every node takes a snapshot and compacts the log
// up to it (fsm.Options.OnRestore → node.RequestSnapshot), so the chunks
// do not stay in the log.
// The log lines "restore: proposing the file" and "restore: database
// replaced" bracket one, with its id, size and timings.
//
// Debugging: GET /status shows the node's Raft view, /metrics its counters;
// --log-level debug logs every component with the node id.
package server
