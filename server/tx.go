package server

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/pgwire"
	"github.com/raftsql/raftsql/sqltext"
)

// Interactive transactions use optimistic concurrency control over the
// Raft log. Every statement of a transaction runs on this node as a
// preview (fsm.Preview): the transaction's earlier writes, then the
// statement, in a SQLite transaction that is rolled back. The first
// preview fixes the transaction's read version (the applied index it read
// at). COMMIT proposes the writes as one entry carrying that version and
// the tables the previews read or wrote; the fsm applies it only if no
// entry changed those tables (or the schema) after the version — on every
// node alike — and fails it with a conflict otherwise (40001, the
// client retries). So a committed transaction saw exactly the state it
// commits on: serializable, on any node, without locks held across client
// round trips; a leader change in the middle costs nothing unless the data
// changed.

// maxTxStatements bounds the writes of one transaction (each preview
// re-runs them).
const maxTxStatements = 10000

const codeProgramLimitExceeded = "54000"

// previewer is the fsm's preview of a transaction's statements; it also
// reports the tables they read (the commit conflicts only with changes to
// those).
type previewer interface {
	PreviewTx(ctx context.Context, pending, stmts []fsm.Statement, unixMicro int64) ([]fsm.Result, uint64, []string, error)
}

var _ pgwire.InteractiveSession = (*session)(nil)

// Begin opens an interactive transaction whose reads are as fresh as c.
func (s *session) Begin(ctx context.Context, c pgwire.Consistency) (pgwire.EngineTx, error) {
	pv, ok := s.e.sm.(previewer)
	if !ok {
		return nil, &sqlStateError{code: codeFeatureNotSupported, msg: "interactive transactions are not supported by this state machine"}
	}
	if err := s.e.catchUp(ctx, c); err != nil {
		return nil, err
	}
	return &engineTx{s: s, pv: pv, now: s.e.clock().UTC()}, nil
}

type engineTx struct {
	s  *session
	pv previewer
	// now is the transaction's clock: the same for its previews and its
	// commit, so that what the client saw is what is applied.
	now        time.Time
	version    uint64 // applied index the first statement read at
	hasVersion bool
	pending    []fsm.Statement
	// tables: every table the transaction's previews read or wrote.
	tables map[string]struct{}
	done   bool
}

// Exec runs stmts in the transaction: they see its earlier writes; the
// writes among them that succeed join the transaction.
func (t *engineTx) Exec(ctx context.Context, stmts []fsm.Statement) ([]fsm.Result, error) {
	if t.done {
		return nil, fmt.Errorf("transaction already ended")
	}
	write := make([]bool, len(stmts))
	run := make([]fsm.Statement, len(stmts))
	for i, st := range stmts {
		kind, _, err := sqltext.Classify(st.SQL)
		write[i] = err != nil || kind != sqltext.KindRead
		run[i] = st
		if write[i] {
			det, err := t.s.deterministic([]fsm.Statement{st}, t.now)
			if err != nil {
				return nil, err
			}
			run[i] = det[0]
		}
	}
	if n := len(t.pending) + len(stmts); n > maxTxStatements {
		return nil, &sqlStateError{code: codeProgramLimitExceeded, msg: fmt.Sprintf("a transaction may hold at most %d statements", maxTxStatements)}
	}
	res, version, tables, err := t.pv.PreviewTx(ctx, t.pending, run, t.now.UnixMicro())
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, "transaction statement")
		}
		return nil, fmt.Errorf("run statement in transaction: %w", err)
	}
	if !t.hasVersion {
		t.version, t.hasVersion = version, true
	}
	if t.tables == nil {
		t.tables = map[string]struct{}{}
	}
	for _, tb := range tables {
		t.tables[tb] = struct{}{}
	}
	for i, r := range res {
		if i < len(write) && write[i] && r.Err == nil {
			t.pending = append(t.pending, run[i])
		}
	}
	return res, nil
}

// Commit applies the transaction's writes as one entry, or fails with
// 40001 when the database changed since the transaction read it.
func (t *engineTx) Commit(ctx context.Context) (err error) {
	if t.done {
		return fmt.Errorf("transaction already ended")
	}
	t.done = true
	if len(t.pending) == 0 {
		return nil
	}
	readTables := slices.Sorted(maps.Keys(t.tables))
	res, err := t.s.propose(ctx, fsm.Command{UnixMicro: t.now.UnixMicro(), Stmts: t.pending, ReadVersion: t.version, ReadTables: readTables})
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err == nil {
			continue
		}
		if r.Err.Code == fsm.CodeConflict {
			return &sqlStateError{code: codeSerializationFailure, msg: "could not serialize access due to a concurrent update; retry the transaction", err: r.Err}
		}
		return r.Err
	}
	return nil
}

// Rollback abandons the transaction; nothing of it was applied.
func (t *engineTx) Rollback() { t.done = true }
