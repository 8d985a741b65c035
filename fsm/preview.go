package fsm

import (
	"context"
	"errors"
	"fmt"
)

// Preview runs the statements of an interactive transaction against the
// current state without changing it, for a session that must show a
// client the effect of its writes before COMMIT (read-your-writes). In ONE
// SQLite transaction that is always rolled back, it runs pending (the
// transaction's writes so far) and then stmts, and returns the Results of
// stmts exactly as Apply would give them (rows, RowsAffected,
// LastInsertID, Err; the statements after a failing one do not run), and
// version, the applied index of the state it read (read inside the same
// transaction). Propose the transaction's COMMIT with
// Command.ReadVersion = the smallest version its previews returned: it
// then fails with CodeConflict if the database changed since.
//
// If a pending statement fails, err wraps ErrPendingFailed and its
// *SQLError (the state changed under the transaction, e.g. a table it
// wrote to was dropped). CURRENT_TIMESTAMP and friends give unixMicro, and
// random()/randomblob() draw from a PRNG seeded from it and a count of
// previews (so that SELECT random() differs between the statements of one
// transaction, whose clock is fixed) — but the values are the preview's: the COMMIT entry computes its own
// (from its clock and index) unless the leader froze them in the SQL
// (sqltext.MakeDeterministic). The whole preview is bounded by
// MaxEntrySteps like an entry (CodeStepLimit), and ends when ctx does.
//
// A preview with pending writes, or with a statement that is not
// read-only, runs on a connection of its own under the writer's mutex: it
// waits for the batch being applied, holds the applier back for its own
// duration only, and never leaves SQLite's write lock behind (the
// transaction is rolled back before the mutex is released). It does not
// change the writer's connection state (changes(), last_insert_rowid(),
// its statement cache), so Apply stays deterministic. A preview that only
// reads (no pending writes, every statement read-only) runs on a
// query_only connection without the writer's mutex, like Query: a long
// read in a transaction does not hold the log back.
func (f *FSM) Preview(ctx context.Context, pending []Statement, stmts []Statement, unixMicro int64) (results []Result, version uint64, err error) {
	results, version, _, err = f.PreviewTx(ctx, pending, stmts, unixMicro)
	return results, version, err
}

// PreviewTx is Preview that also returns the tables the preview read or
// wrote (sorted, lower-cased; a view's underlying tables, the tables of
// triggers and foreign key checks included): those of pending and of the
// statements of stmts that ran, failing ones included. A transaction
// proposes its COMMIT with Command.ReadTables = the union of the tables
// of all its previews, so that it conflicts only with changes to those
// tables (or to the schema) after its ReadVersion.
func (f *FSM) PreviewTx(ctx context.Context, pending []Statement, stmts []Statement, unixMicro int64) (results []Result, version uint64, tables []string, err error) {
	if len(pending) == 0 {
		rs, version, tables, ok, err := f.previewReads(ctx, stmts, unixMicro)
		if ok || err != nil {
			return rs, version, tables, err
		}
	}
	if err := f.wmu.LockCtx(ctx); err != nil {
		return nil, 0, nil, err
	}
	defer f.wmu.Unlock()
	return f.preview(ctx, f.pv, pending, stmts, unixMicro, previewSeed(unixMicro, f.previews.Add(1)))
}

// previewReaders is the number of connections for previews that only
// read.
const previewReaders = 2

// previewReads runs a preview without pending writes whose statements are
// all read-only on a query_only connection with the overrides, without
// the writer's mutex: a long read in a transaction does not hold the
// applier back. ok is false (and nothing ran) when a statement is not
// read-only: the caller runs the preview on the writer's side.
func (f *FSM) previewReads(ctx context.Context, stmts []Statement, unixMicro int64) (_ []Result, _ uint64, _ []string, ok bool, _ error) {
	f.rmu.RLock()
	defer f.rmu.RUnlock()
	if f.closed {
		return nil, 0, nil, false, ErrClosed
	}
	var c *sconn
	select {
	case c = <-f.pvReads:
	case <-ctx.Done():
		return nil, 0, nil, false, ctx.Err()
	}
	defer func() { f.pvReads <- c }()
	// Prepare inside a read transaction that has checked the schema, so
	// read-only is decided against the current schema.
	if err := c.exec("BEGIN; SELECT 1 FROM sqlite_schema LIMIT 1"); err != nil {
		return nil, 0, nil, false, fmt.Errorf("fsm: preview: %w", err)
	}
	readOnly := true
	for _, st := range stmts {
		if checkStatement(st.SQL, true) != nil {
			continue // refused alike on both paths
		}
		s, release, err := c.stmt(st.SQL)
		if err != nil {
			continue // a prepare error is the statement's result on both paths
		}
		if s != nil && !s.readOnly() {
			readOnly = false
		}
		release()
		if !readOnly {
			break
		}
	}
	_ = c.exec("ROLLBACK")
	if !readOnly {
		return nil, 0, nil, false, nil
	}
	rs, version, tables, err := f.preview(ctx, c, nil, stmts, unixMicro, previewSeed(unixMicro, f.previews.Add(1)))
	return rs, version, tables, true, err
}

// preview runs a preview on c (f.pv under wmu, or a pvReads connection).
func (f *FSM) preview(ctx context.Context, c *sconn, pending []Statement, stmts []Statement, unixMicro int64, seed uint64) (results []Result, version uint64, tables []string, err error) {
	if c == nil {
		return nil, 0, nil, ErrClosed
	}
	stop := interruptOnDone(ctx, c)
	defer stop()
	if err := c.exec("BEGIN"); err != nil {
		return nil, 0, nil, fmt.Errorf("fsm: preview: begin: %w", err)
	}
	defer func() {
		if !c.autocommit() {
			if rerr := c.exec("ROLLBACK"); rerr != nil && err == nil {
				results, err = nil, fmt.Errorf("fsm: preview: rollback: %w", rerr)
			}
		}
	}()
	rows, err := c.queryCached("SELECT value FROM _raftsql_meta WHERE key = 'applied_index'")
	if err != nil || len(rows) != 1 {
		return nil, 0, nil, fmt.Errorf("fsm: preview: read applied index: %v", err)
	}
	v, _ := rows[0][0].(int64)
	version = uint64(v)
	seen := tableSet{}
	c.authSink = seen
	defer func() { c.authSink = nil }()
	c.setBudget(f.maxSteps)
	c.entropy.reset(unixMicro, seed)
	for i, st := range pending {
		r, _, err := execWrite(c, st)
		if cerr := ctx.Err(); cerr != nil {
			return nil, version, nil, cerr
		}
		if err != nil && !errors.Is(err, errTxnLost) {
			return nil, version, nil, fmt.Errorf("fsm: preview: %w", err)
		}
		if r.Err != nil {
			return nil, version, nil, fmt.Errorf("%w: statement %d of %d: %w", ErrPendingFailed, i+1, len(pending), r.Err)
		}
	}
	results = make([]Result, 0, len(stmts))
	for _, st := range stmts {
		r, _, err := execWrite(c, st)
		if cerr := ctx.Err(); cerr != nil {
			return nil, version, nil, cerr
		}
		if err != nil && !errors.Is(err, errTxnLost) {
			return nil, version, nil, fmt.Errorf("fsm: preview: %w", err)
		}
		results = append(results, r)
		if r.Err != nil {
			break
		}
	}
	return results, version, seen.sorted(), nil
}
