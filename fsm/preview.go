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
// Preview runs on a connection of its own under the writer's mutex: it
// waits for the batch being applied, holds the applier back for its own
// duration only, and never leaves SQLite's write lock behind (the
// transaction is rolled back before the mutex is released). It does not
// change the writer's connection state (changes(), last_insert_rowid(),
// its statement cache), so Apply stays deterministic.
func (f *FSM) Preview(ctx context.Context, pending []Statement, stmts []Statement, unixMicro int64) (results []Result, version uint64, err error) {
	if err := f.wmu.LockCtx(ctx); err != nil {
		return nil, 0, err
	}
	defer f.wmu.Unlock()
	c := f.pv
	if c == nil {
		return nil, 0, ErrClosed
	}
	stop := interruptOnDone(ctx, c)
	defer stop()
	if err := c.exec("BEGIN"); err != nil {
		return nil, 0, fmt.Errorf("fsm: preview: begin: %w", err)
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
		return nil, 0, fmt.Errorf("fsm: preview: read applied index: %v", err)
	}
	v, _ := rows[0][0].(int64)
	version = uint64(v)
	c.setBudget(f.maxSteps)
	f.previews++
	c.entropy.reset(unixMicro, previewSeed(unixMicro, f.previews))
	for i, st := range pending {
		r, _, err := execWrite(c, st)
		if cerr := ctx.Err(); cerr != nil {
			return nil, version, cerr
		}
		if err != nil && !errors.Is(err, errTxnLost) {
			return nil, version, fmt.Errorf("fsm: preview: %w", err)
		}
		if r.Err != nil {
			return nil, version, fmt.Errorf("%w: statement %d of %d: %w", ErrPendingFailed, i+1, len(pending), r.Err)
		}
	}
	results = make([]Result, 0, len(stmts))
	for _, st := range stmts {
		r, _, err := execWrite(c, st)
		if cerr := ctx.Err(); cerr != nil {
			return nil, version, cerr
		}
		if err != nil && !errors.Is(err, errTxnLost) {
			return nil, version, fmt.Errorf("fsm: preview: %w", err)
		}
		results = append(results, r)
		if r.Err != nil {
			break
		}
	}
	return results, version, nil
}
