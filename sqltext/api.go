package sqltext

import "errors"

// The agreed API of sqltext, used by pgwire/, fsm/ and server/.

// ErrNonDeterministic is returned (wrapped) by MakeDeterministic for a
// statement that cannot be made deterministic.
var ErrNonDeterministic = errors.New("sqltext: statement cannot be made deterministic")

// ErrSyntax is returned (wrapped) for text that cannot be tokenized
// (an unterminated quote or comment).
var ErrSyntax = errors.New("sqltext: syntax error")

// ErrUnsupported is returned (wrapped) by Translate for PostgreSQL that
// has no SQLite equivalent (a SERIAL column that cannot be SQLite's
// INTEGER PRIMARY KEY, TRUNCATE of several tables, …).
var ErrUnsupported = errors.New("sqltext: not supported")

// Kind classifies a statement for the session layer.
type Kind int

const (
	KindEmpty    Kind = iota // only white space and comments
	KindRead                 // SELECT, VALUES, WITH … SELECT, EXPLAIN, read-only PRAGMA
	KindWrite                // INSERT/UPDATE/DELETE/REPLACE, DDL, WITH … INSERT, writing PRAGMA
	KindBegin                // BEGIN, START TRANSACTION (any modifiers)
	KindCommit               // COMMIT, END
	KindRollback             // ROLLBACK, ABORT (not ROLLBACK TO SAVEPOINT)
	KindSet                  // SET name = value / SET name TO value / SET SESSION …
	KindShow                 // SHOW name
	KindOther                // anything the front end must answer itself or refuse (LISTEN, COPY, SAVEPOINT, RESET, DISCARD, DEALLOCATE …)
)

// Statement is one statement of a query string.
type Statement struct {
	Text string // the statement without the trailing ';'
	Kind Kind
	// Verb is the upper-cased first keyword(s) that decide the
	// CommandComplete tag: "SELECT", "INSERT", "UPDATE", "DELETE",
	// "CREATE TABLE", "DROP TABLE", "BEGIN", "SET", …
	Verb string
	// Offset is the byte offset of Text in the original string (for
	// ErrorResponse positions).
	Offset int
}
