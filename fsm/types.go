package fsm

import "fmt"

// Values exchanged with SQLite are one of: nil, int64, float64, string,
// []byte. Parameters given by clients are converted to these before they
// reach a Statement (bool becomes int64 0/1, time becomes text).

// Statement is one SQL statement (already in SQLite's dialect) with its
// positional parameters ($1 → Args[0]).
type Statement struct {
	SQL  string
	Args []any
}

// Column describes one result column.
type Column struct {
	Name string
	// DeclType is the declared type of the column in the schema (e.g.
	// "INTEGER", "int4", "TEXT", "timestamptz"), "" for an expression.
	DeclType string
}

// Result is the outcome of one statement.
type Result struct {
	Columns      []Column
	Rows         [][]any
	RowsAffected int64
	LastInsertID int64
	// Err is set when the statement failed; the statements before it in the
	// same unit were rolled back with it and the ones after it did not run.
	Err *SQLError
}

// SQLError is an error reported by SQLite for a statement: its extended
// result code (e.g. 2067 SQLITE_CONSTRAINT_UNIQUE) and message. It is a
// result, identical on every node, not a failure of the node.
type SQLError struct {
	Code    int
	Message string
}

func (e *SQLError) Error() string { return fmt.Sprintf("%s (sqlite code %d)", e.Message, e.Code) }

// Command is the payload of one log entry: a unit of work applied in one
// SQLite transaction. SessionID/Seq give exactly-once semantics: a Command
// whose (SessionID, Seq) was already applied is not applied again; its
// first result is returned instead.
type Command struct {
	SessionID uint64
	Seq       uint64
	// UnixMicro is the proposer's wall clock when the command was built:
	// the entry's clock for CURRENT_TIMESTAMP, CURRENT_DATE, CURRENT_TIME
	// evaluated at apply time (column defaults, triggers) and for
	// expiring old sessions, the same on every node.
	UnixMicro int64
	Stmts     []Statement
	// ReadVersion, when non-zero, makes the command conditional (optimistic
	// concurrency control for interactive transactions): it fails as a
	// whole with CodeConflict, changing nothing, if an entry that changed
	// the database (a write that committed, a restore) was applied after
	// index ReadVersion — typically the version a Preview returned — or,
	// with ReadTables, one that changed the schema or one of those
	// tables. See FSM.LastWriteIndex.
	ReadVersion uint64
	// ReadTables, with ReadVersion, narrows the conflict to these tables
	// (lower-cased names; a view's are its tables'): the command fails
	// only if one of them changed after ReadVersion, or the schema did
	// (DDL, a restore). Empty, or holding "*": any change after
	// ReadVersion conflicts.
	// PreviewTx reports the tables a transaction's statements read.
	ReadTables []string
	// Restore, when set, is a whole SQLite database file (e.g. from
	// FSM.Snapshot or GET /backup) that replaces the state on every node
	// at this entry; Stmts must be empty then. The cluster's configuration,
	// node directory and sessions are kept. (Added by the fsm owner.)
	Restore []byte
	// Node, when set, records a node's client-facing addresses in the
	// node directory (_raftsql_nodes, FSM.Nodes); Stmts must be empty
	// then. (Added by the fsm owner.)
	Node *NodeInfo
	// RestoreChunk, when set, stages one chunk of a database file that a
	// later RestoreCommit with the same ID installs (restore.go); Stmts
	// must be empty then. Staging is idempotent and ignores the session's
	// sequence (a chunk applied twice is stored once), so chunks may be
	// proposed concurrently. (Added by the backup owner.)
	RestoreChunk *RestoreChunk
	// RestoreCommit, when set, replaces the database with the file made of
	// the staged chunks of its ID, after checking their count, size and
	// SHA-256 and the file itself; Stmts must be empty then. Its result
	// has one row: (index, bytes). (Added by the backup owner.)
	RestoreCommit *RestoreCommit
}

// RestoreChunk is chunk Seq (from 0) of restore ID: bytes
// [Seq*backup.ChunkSize, ...) of the file.
type RestoreChunk struct {
	ID   uint64 // non-zero, chosen at random by the proposer
	Seq  uint64
	Data []byte
}

// RestoreCommit ends restore ID: the file is the concatenation of chunks
// 0..Chunks-1, Size bytes long, with SHA-256 SHA256.
type RestoreCommit struct {
	ID     uint64
	Chunks uint64
	Size   uint64
	SHA256 [32]byte
}

// NodeInfo is one row of the node directory: how clients and peers reach
// a node's HTTP API and PostgreSQL front end.
type NodeInfo struct {
	ID       string
	HTTPAddr string
	PGAddr   string
}

// Description is what is known of a statement without running it.
type Description struct {
	NumParams int
	Columns   []Column // nil when the statement returns no rows
	ReadOnly  bool     // sqlite3_stmt_readonly
}
