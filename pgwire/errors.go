package pgwire

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/raftsql/raftsql/auth"
	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/sqltext"
)

// Errors of the package. Everything else in pgwire wraps one of these (or
// an Engine error) with %w; toErrorResponse is the one place that turns an
// error chain into a SQLSTATE.
var (
	// ErrProtocol is a malformed or out-of-order message (08P01). The
	// connection is closed after the ErrorResponse.
	ErrProtocol = errors.New("pgwire: protocol violation")
	// ErrTooLarge is a message over Config.MaxMessageSize (08P01).
	ErrTooLarge = errors.New("pgwire: message too large")
	// ErrNotSupported is a statement or feature raftsql does not
	// implement (0A000).
	ErrNotSupported = errors.New("pgwire: feature not supported")
	// ErrInFailedTxn is any statement but COMMIT/ROLLBACK in a failed
	// transaction (25P02).
	ErrInFailedTxn = errors.New("current transaction is aborted, commands ignored until end of transaction block")
	// ErrReadOnlyTxn is a write inside a READ ONLY transaction (25006).
	ErrReadOnlyTxn = errors.New("cannot execute a write statement in a read-only transaction")
	// ErrReadAfterWrite is a read inside a transaction that already has
	// buffered writes: it could not see them, so it is refused (0A000).
	ErrReadAfterWrite = errors.New("reads after writes inside a transaction are not supported yet")
	// ErrUnknownStatement is a reference to a prepared statement that does
	// not exist (26000).
	ErrUnknownStatement = errors.New("prepared statement does not exist")
	// ErrUnknownPortal is a reference to a portal that does not exist
	// (34000).
	ErrUnknownPortal = errors.New("portal does not exist")
	// ErrCanceled is a statement canceled by a CancelRequest (57014).
	ErrCanceled = errors.New("canceling statement due to user request")
	// ErrStatementTimeout is a statement that ran past statement_timeout
	// (57014).
	ErrStatementTimeout = errors.New("canceling statement due to statement timeout")
	// ErrIdleInTxTimeout ends a session that sat idle inside a
	// transaction block for longer than
	// idle_in_transaction_session_timeout (FATAL 25P03).
	ErrIdleInTxTimeout = errors.New("terminating connection due to idle-in-transaction timeout")
	// ErrServerClosed is returned by Serve after its context ended.
	ErrServerClosed = errors.New("pgwire: server closed")
	// ErrShutdown ends the sessions of a server that is stopping (57P01).
	ErrShutdown = errors.New("terminating connection due to administrator command")
)

// Error is an error with an explicit SQLSTATE, for errors raised by the
// front end itself.
type Error struct {
	Code     string
	Message  string
	Detail   string
	Hint     string
	Position int32 // 1-based character position in the query, 0 if none
	Err      error // optional cause, for errors.Is
}

func (e *Error) Error() string { return e.Message }

// SQLState implements SQLStater.
func (e *Error) SQLState() string { return e.Code }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func newError(code string, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// SQLSTATE codes used by the front end.
const (
	codeSuccessfulCompletion  = "00000"
	codeWarning               = "01000"
	codeNoActiveTxn           = "25P01"
	codeActiveTxn             = "25001"
	codeProtocolViolation     = "08P01"
	codeInvalidPassword       = "28P01"
	codeFeatureNotSupported   = "0A000"
	codeInvalidParameterValue = "22023"
	codeInFailedTxn           = "25P02"
	codeIdleInTxTimeout       = "25P03"
	codeAdminShutdown         = "57P01"
	codeReadOnlyTxn           = "25006"
	codeUnknownStatement      = "26000"
	codeUnknownPortal         = "34000"
	codeQueryCanceled         = "57014"
	codeSyntaxError           = "42601"
	codeUndefinedTable        = "42P01"
	codeUndefinedColumn       = "42703"
	codeUndefinedFunction     = "42883"
	codeUndefinedObject       = "42704"
	codeDuplicateTable        = "42P07"
	codeDuplicateObject       = "42710"
	codeAmbiguousColumn       = "42702"
	codeUniqueViolation       = "23505"
	codeNotNullViolation      = "23502"
	codeForeignKeyViolation   = "23503"
	codeCheckViolation        = "23514"
	codeIntegrityViolation    = "23000"
	codeSerialization         = "40001"
	codeDatatypeMismatch      = "42804"
	codeInvalidText           = "22P02"
	codeNumericOutOfRange     = "22003"
	codeBinaryRepresentation  = "22P03"
	codeStringTooLong         = "22001"
	codeProgramLimit          = "54000"
	codeInternal              = "XX000"
	codeLockNotAvailable      = "55P03"
	codeDiskFull              = "53100"
	codeIOError               = "58030"
	codeInsufficientPrivilege = "42501"
	codeDuplicatePStatement   = "42P05"
	codeDataCorrupted         = "XX001"
)

// SQLite primary result codes (extended code & 0xff).
const (
	sqliteError      = 1
	sqliteInternal   = 2
	sqlitePerm       = 3
	sqliteAbort      = 4
	sqliteBusy       = 5
	sqliteLocked     = 6
	sqliteReadOnly   = 8
	sqliteInterrupt  = 9
	sqliteIOErr      = 10
	sqliteFull       = 13
	sqliteTooBig     = 18
	sqliteConstraint = 19
	sqliteMismatch   = 20
	sqliteRange      = 25
)

// SQLite extended constraint codes.
const (
	sqliteConstraintCheck      = 275
	sqliteConstraintForeignKey = 787
	sqliteConstraintNotNull    = 1299
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
	sqliteConstraintDatatype   = 3091
)

var nearRE = regexp.MustCompile(`near "((?:[^"]|"")*)": syntax error`)

// sqliteState maps an SQLite error to a SQLSTATE.
func sqliteState(e *fsm.SQLError) string {
	msg := e.Message
	switch e.Code {
	// The fsm's own codes (above SQLite's range).
	case fsm.CodeConflict, fsm.CodeStaleSequence:
		return codeSerialization
	case fsm.CodeNotAllowed:
		return codeFeatureNotSupported
	case fsm.CodeStepLimit:
		return codeQueryCanceled
	case fsm.CodeMultipleStatements:
		return codeSyntaxError
	case fsm.CodeBadParameter:
		return codeInvalidParameterValue
	case fsm.CodeReadOnly:
		return codeReadOnlyTxn
	case fsm.CodeBadRestore:
		return codeInvalidParameterValue
	case fsm.CodeCorruptCommand:
		return codeDataCorrupted
	case sqliteConstraintUnique, sqliteConstraintPrimaryKey:
		return codeUniqueViolation
	case sqliteConstraintNotNull:
		return codeNotNullViolation
	case sqliteConstraintForeignKey:
		return codeForeignKeyViolation
	case sqliteConstraintCheck:
		return codeCheckViolation
	case sqliteConstraintDatatype:
		return codeDatatypeMismatch
	}
	switch e.Code & 0xff {
	case sqliteConstraint:
		switch {
		case strings.Contains(msg, "UNIQUE"), strings.Contains(msg, "PRIMARY KEY"):
			return codeUniqueViolation
		case strings.Contains(msg, "NOT NULL"):
			return codeNotNullViolation
		case strings.Contains(msg, "FOREIGN KEY"):
			return codeForeignKeyViolation
		case strings.Contains(msg, "CHECK"):
			return codeCheckViolation
		}
		return codeIntegrityViolation
	case sqliteMismatch:
		return codeDatatypeMismatch
	case sqliteTooBig:
		return codeProgramLimit
	case sqliteRange:
		return codeProtocolViolation
	case sqliteBusy, sqliteLocked:
		return codeLockNotAvailable
	case sqliteReadOnly:
		return codeReadOnlyTxn
	case sqliteInterrupt:
		return codeQueryCanceled
	case sqliteFull:
		return codeDiskFull
	case sqliteIOErr:
		return codeIOError
	case sqlitePerm:
		return codeInsufficientPrivilege
	case sqliteAbort:
		return codeSerialization
	case sqliteInternal:
		return codeInternal
	}
	switch {
	case strings.Contains(msg, "syntax error"), strings.Contains(msg, "incomplete input"),
		strings.Contains(msg, "unrecognized token"):
		return codeSyntaxError
	case strings.HasPrefix(msg, "no such table"), strings.HasPrefix(msg, "no such view"):
		return codeUndefinedTable
	case strings.HasPrefix(msg, "no such column"), strings.Contains(msg, "has no column named"):
		return codeUndefinedColumn
	case strings.HasPrefix(msg, "no such function"), strings.Contains(msg, "wrong number of arguments to function"):
		return codeUndefinedFunction
	case strings.HasPrefix(msg, "no such index"), strings.HasPrefix(msg, "no such trigger"):
		return codeUndefinedObject
	case strings.HasPrefix(msg, "ambiguous column name"):
		return codeAmbiguousColumn
	case strings.HasSuffix(msg, "already exists"):
		if strings.HasPrefix(msg, "table") || strings.HasPrefix(msg, "view") {
			return codeDuplicateTable
		}
		return codeDuplicateObject
	case strings.Contains(msg, "integer overflow"):
		return codeNumericOutOfRange
	case strings.Contains(msg, "too big"), strings.Contains(msg, "too many"):
		return codeProgramLimit
	}
	return codeInternal
}

// sqlStatePosition returns the 1-based position of the token an SQLite
// syntax error names in stmt, or 0.
func sqlStatePosition(msg, stmt string) int32 {
	m := nearRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	tok := strings.ReplaceAll(m[1], `""`, `"`)
	i := strings.Index(stmt, tok)
	if i < 0 {
		i = strings.Index(strings.ToLower(stmt), strings.ToLower(tok))
	}
	if i < 0 {
		return 0
	}
	return int32(len([]rune(stmt[:i]))) + 1
}

// toErrorResponse maps any error to an ErrorResponse, walking the %w
// chain. query and offset locate the failing statement for Position.
func toErrorResponse(err error, query string, offset int) *pgproto3.ErrorResponse {
	r := &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: codeInternal, Message: err.Error()}
	var pe *Error
	var se *fsm.SQLError
	var ss SQLStater
	switch {
	case errors.As(err, &pe):
		r.Code, r.Message, r.Detail, r.Hint, r.Position = pe.Code, pe.Message, pe.Detail, pe.Hint, pe.Position
	case errors.As(err, &ss):
		// An explicit SQLSTATE wins over a SQLite error it wraps.
		r.Code = ss.SQLState()
	case errors.As(err, &se):
		r.Code = sqliteState(se)
		r.Message = se.Message
		if r.Code == codeSyntaxError && query != "" && offset >= 0 && offset <= len(query) {
			if p := sqlStatePosition(se.Message, query[offset:]); p > 0 {
				r.Position = int32(len([]rune(query[:offset]))) + p
			}
		}
	case errors.Is(err, ErrCanceled), errors.Is(err, context.Canceled):
		r.Code, r.Message = codeQueryCanceled, ErrCanceled.Error()
	case errors.Is(err, ErrStatementTimeout), errors.Is(err, context.DeadlineExceeded):
		r.Code, r.Message = codeQueryCanceled, ErrStatementTimeout.Error()
	case errors.Is(err, sqltext.ErrSyntax):
		r.Code = codeSyntaxError
	case errors.Is(err, sqltext.ErrNonDeterministic), errors.Is(err, ErrNotSupported), errors.Is(err, ErrReadAfterWrite):
		r.Code = codeFeatureNotSupported
	case errors.Is(err, ErrInFailedTxn):
		r.Code = codeInFailedTxn
	case errors.Is(err, ErrReadOnlyTxn):
		r.Code = codeReadOnlyTxn
	case errors.Is(err, ErrUnknownStatement):
		r.Code = codeUnknownStatement
	case errors.Is(err, ErrUnknownPortal):
		r.Code = codeUnknownPortal
	case errors.Is(err, auth.ErrAuthFailed):
		r.Code = codeInvalidPassword
	case errors.Is(err, ErrProtocol), errors.Is(err, ErrTooLarge), errors.Is(err, auth.ErrProtocol):
		r.Code = codeProtocolViolation
	}
	return r
}

// notice builds a NoticeResponse (WARNING or NOTICE).
func notice(severity, code, msg string) *pgproto3.NoticeResponse {
	return &pgproto3.NoticeResponse{Severity: severity, SeverityUnlocalized: severity, Code: code, Message: msg}
}
