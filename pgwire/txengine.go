package pgwire

import (
	"context"

	"github.com/raftsql/raftsql/fsm"
)

// TxEngineSession is implemented by EngineSessions that support interactive
// transactions: statements inside BEGIN … COMMIT that see the
// transaction's own earlier writes, with the writes applied atomically at
// COMMIT. The front end uses it when the session implements it; otherwise
// it buffers writes and refuses reads after writes (0A000).
//
// The engine keeps the transaction's state (its writes so far and the
// point its reads were made at); the front end only says where the
// transaction starts and ends and sends every statement in between
// through TxExec.
type TxEngineSession interface {
	// TxExec runs one statement inside the current explicit transaction
	// (the first call starts it). It sees the transaction's earlier writes;
	// nothing is applied until TxCommit. write tells whether stmt changes
	// data: if it succeeds it joins the transaction's writes. A SQL error
	// comes back in Result.Err (the transaction is then failed, as in
	// PostgreSQL); err is for everything else.
	TxExec(ctx context.Context, c Consistency, stmt fsm.Statement, write bool) (fsm.Result, error)
	// TxCommit applies the transaction's writes as one atomic unit. It
	// fails with SQLSTATE 40001 when the database changed since the
	// transaction read it (the client retries the transaction). A
	// transaction without writes commits at once.
	TxCommit(ctx context.Context) error
	// TxRollback forgets the transaction.
	TxRollback()
}
