package pgwire

import (
	"context"

	"github.com/raftsql/raftsql/fsm"
)

// Consistency is a session's read guarantee (raftsql.read_consistency).
type Consistency int

const (
	Linearizable Consistency = iota // default: read-index, on any node
	Lease                           // leader lease, leader only
	Stale                           // local state at once
)

// Engine is what the front end needs from the database: the server package
// implements it on top of consensus/ and fsm/. Methods may be called from
// many connection goroutines at once.
type Engine interface {
	// NewSession is called once per client connection.
	NewSession() EngineSession
	// Describe prepares sql against the local schema without running it.
	Describe(ctx context.Context, sql string) (fsm.Description, error)
	// IsLeader reports whether this node is the Raft leader now (for
	// pg_is_in_recovery() and transaction_read_only).
	IsLeader() bool
}

// EngineSession is one client connection's handle on the Engine. It is
// used from one goroutine at a time.
type EngineSession interface {
	// Write applies stmts atomically as one log entry (they may include
	// SELECTs, which then see the unit's own writes) and returns one
	// Result per statement run. It retries internally (exactly-once by
	// session id and sequence number) until ctx ends.
	Write(ctx context.Context, stmts []fsm.Statement) ([]fsm.Result, error)
	// Read runs read-only stmts on the local replica after making sure it
	// is as fresh as c requires.
	Read(ctx context.Context, c Consistency, stmts []fsm.Statement) ([]fsm.Result, error)
	// Close releases the session.
	Close()
}

// An error returned by the Engine that has a PostgreSQL SQLSTATE implements
// SQLStater; the front end sends that code (e.g. 40001 for a leadership
// change mid-request, 57014 for a cancel or timeout).
type SQLStater interface {
	SQLState() string
}

// InteractiveSession is an optional extension of EngineSession. A session
// that implements it runs explicit transactions interactively: from the
// first statement on, every statement of BEGIN … COMMIT runs inside one
// transaction that sees its own writes, so reads after writes and
// RETURNING work and row counts are exact; COMMIT applies the writes as
// one unit. Without it the front end buffers the writes and sends them as
// one Write at COMMIT (and refuses reads after writes).
type InteractiveSession interface {
	// Begin opens a transaction whose reads are at least as fresh as c
	// requires. It is called at the first statement after BEGIN (read or
	// write), so that the engine knows the point the whole transaction
	// read from: committing the writes of a transaction whose earlier
	// reads were not part of it would lose updates.
	Begin(ctx context.Context, c Consistency) (EngineTx, error)
}

// EngineTx is an open interactive transaction, used from one goroutine.
// Exactly one of Commit or Rollback ends it.
type EngineTx interface {
	// Exec runs stmts inside the transaction, with results as
	// EngineSession.Write. After a statement error (Result.Err) or an
	// error the front end rolls the transaction back.
	Exec(ctx context.Context, stmts []fsm.Statement) ([]fsm.Result, error)
	// Commit applies the transaction's writes atomically (one log entry).
	// An error means none of them was applied.
	Commit(ctx context.Context) error
	// Rollback abandons the transaction.
	Rollback()
}
