package fsm

import "errors"

// Errors of the fsm's own operations (not SQL results: those are *SQLError
// values inside a Result).
var (
	// ErrClosed: the FSM was closed.
	ErrClosed = errors.New("fsm: closed")
	// ErrIndexGap: Apply was given an entry whose index is not the next
	// one after the applied index. The driver must hand entries over in
	// log order without holes.
	ErrIndexGap = errors.New("fsm: entry index is not contiguous with the applied index")
	// ErrApplyFailed: SQLite failed in a way that is not a result of the
	// entry's SQL (I/O error, disk full, out of memory, corruption). The
	// batch was rolled back and nothing of it is applied; the caller must
	// not continue past it (retry, or stop the node).
	ErrApplyFailed = errors.New("fsm: apply failed")
	// ErrRestored: a snapshot was installed while waiting; the entry may
	// have been applied as part of it, its result is unknown here.
	ErrRestored = errors.New("fsm: state replaced by a snapshot; result unknown")
	// ErrWaiterReplaced: Expect was called again for the same session and
	// sequence number.
	ErrWaiterReplaced = errors.New("fsm: waiter replaced by a newer Expect for the same session and sequence")
	// ErrCanceled: Waiter.Cancel was called.
	ErrCanceled = errors.New("fsm: waiter canceled")
	// ErrCorruptCommand: a command payload could not be decoded.
	ErrCorruptCommand = errors.New("fsm: corrupt command")
	// ErrBadSnapshot: a file given to Restore or SnapshotIndex is not a
	// usable raftsql snapshot.
	ErrBadSnapshot = errors.New("fsm: bad snapshot")
	// errTxnLost: a statement made SQLite roll back the batch transaction;
	// Apply redoes the batch before the entry and records the entry alone.
	errTxnLost = errors.New("fsm: statement ended the batch transaction")
	// ErrCorruptResults: a stored result could not be decoded.
	ErrCorruptResults = errors.New("fsm: corrupt stored result")
	// ErrPendingFailed: a pending statement given to Preview failed; the
	// error also wraps its *SQLError.
	ErrPendingFailed = errors.New("fsm: a pending statement of the transaction failed")
)

// Codes of SQLError values that the fsm produces itself. They live above
// SQLite's extended codes, and their low byte is the SQLite primary code
// that fits best, so code&0xff still classifies them.
const (
	// CodeNotAllowed: the statement may not run here (transaction
	// control, ATTACH, VACUUM, PRAGMA, TEMP objects, ROLLBACK conflict
	// resolution, the fsm's own _raftsql_ tables, a write in a read).
	CodeNotAllowed = 23 | 1000<<8 // SQLITE_AUTH family
	// CodeReadOnly: a statement given to Query would write.
	CodeReadOnly = 8 | 1000<<8 // SQLITE_READONLY family
	// CodeCorruptCommand: the entry's payload did not decode; the entry
	// is applied as a no-op with this error on every node.
	CodeCorruptCommand = 1 | 1000<<8
	// CodeStaleSequence: the command's sequence number is below the last
	// one applied for its session; its result is no longer kept.
	CodeStaleSequence = 1 | 1001<<8
	// CodeMultipleStatements: a Statement held more than one statement.
	CodeMultipleStatements = 1 | 1002<<8
	// CodeBadRestore: the database file of a restore command is not
	// usable (not SQLite, corrupt, or a schema that cannot be replicated).
	CodeBadRestore = 26 | 1000<<8 // SQLITE_NOTADB family
	// CodeStepLimit: the statement exceeded MaxEntrySteps.
	CodeStepLimit = 9 | 1000<<8 // SQLITE_INTERRUPT family
	// CodeBadParameter: wrong number or type of parameters.
	CodeBadParameter = 25 | 1000<<8 // SQLITE_RANGE family
	// CodeConflict: a command with a ReadVersion was refused because the
	// database changed after that version (PostgreSQL's serialization
	// failure, SQLSTATE 40001: retry the transaction).
	CodeConflict = 5 | 1000<<8 // SQLITE_BUSY family
)
