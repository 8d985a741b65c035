package fsm

import (
	"context"
	"fmt"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// acquire takes a read connection from the pool. The caller holds rmu
// shared and must call release.
func (f *FSM) acquire(ctx context.Context) (*sconn, error) {
	if f.closed {
		return nil, ErrClosed
	}
	select {
	case c := <-f.pool:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *FSM) release(c *sconn) { f.pool <- c }

// interruptOnDone interrupts the statement running on c when ctx ends;
// the returned stop must be called (it waits for an interrupt in flight,
// so the connection is never interrupted after it went back to the pool).
func interruptOnDone(ctx context.Context, c *sconn) (stop func()) {
	done := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		defer close(done)
		tls := libc.NewTLS() // a TLS is not safe for concurrent use
		sqlite3.Xsqlite3_interrupt(tls, c.db)
		tls.Close()
	})
	return func() {
		if !stopAfter() {
			<-done
		}
	}
}

// Query runs read-only statements on the read pool, all in one read
// transaction (one consistent state). A statement's SQL error is its
// Result.Err and ends the call (later statements do not run); the error
// return is for the call itself (ctx, closed). A statement that would
// write gets CodeReadOnly.
func (f *FSM) Query(ctx context.Context, stmts []Statement) ([]Result, error) {
	f.rmu.RLock()
	defer f.rmu.RUnlock()
	c, err := f.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer f.release(c)
	stop := interruptOnDone(ctx, c)
	defer stop()
	if err := c.exec("BEGIN"); err != nil {
		return nil, fmt.Errorf("fsm: query: %w", err)
	}
	defer func() { _ = c.exec("ROLLBACK") }()
	results := make([]Result, 0, len(stmts))
	for _, st := range stmts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := runRead(ctx, c, st)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
		if r.Err != nil {
			break
		}
	}
	return results, nil
}

func runRead(ctx context.Context, c *sconn, st Statement) (Result, error) {
	if serr := checkStatement(st.SQL, false); serr != nil {
		return Result{Err: serr}, nil
	}
	s, release, err := c.stmt(st.SQL)
	if err != nil {
		return readError(ctx, Result{}, err)
	}
	defer release()
	if s == nil {
		if len(st.Args) != 0 {
			return Result{Err: &SQLError{Code: CodeBadParameter, Message: fmt.Sprintf("empty statement given %d parameters", len(st.Args))}}, nil
		}
		return Result{}, nil
	}
	if !s.readOnly() {
		return Result{Err: &SQLError{Code: CodeReadOnly, Message: "statement is not read-only: writes go through the log"}}, nil
	}
	r, err := runPrepared(ctx, c, s, st.Args)
	if err != nil {
		return readError(ctx, r, err)
	}
	return r, nil
}

// readError turns the error of a read statement into its result, or into
// the call's error when ctx ended or the node failed.
func readError(ctx context.Context, r Result, err error) (Result, error) {
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	se, ferr := sqlResult(err)
	if ferr != nil {
		return Result{}, fmt.Errorf("fsm: query: %w", ferr)
	}
	return Result{Columns: r.Columns, Rows: r.Rows, Err: se}, nil
}

// Describe prepares sql against the current schema without running it and
// reports its parameters, result columns and whether it is read-only (a
// statement Query would accept). An invalid statement gives its *SQLError.
func (f *FSM) Describe(ctx context.Context, sql string) (Description, error) {
	f.rmu.RLock()
	defer f.rmu.RUnlock()
	c, err := f.acquire(ctx)
	if err != nil {
		return Description{}, err
	}
	defer f.release(c)
	// Prepare inside a read transaction that has checked the schema
	// cookie, so the statement sees the schema as of now (another
	// connection may have changed it since this one last looked).
	if err := c.exec("BEGIN; SELECT 1 FROM sqlite_schema LIMIT 1"); err != nil {
		return Description{}, fmt.Errorf("fsm: describe: %w", err)
	}
	defer func() { _ = c.exec("ROLLBACK") }()
	s, err := c.prepareSingle(sql)
	if err != nil {
		return Description{}, err
	}
	if s == nil {
		return Description{ReadOnly: true}, nil
	}
	defer s.finalize()
	_, need, serr := s.paramMap()
	if serr != nil {
		return Description{}, serr
	}
	return Description{
		NumParams: need,
		Columns:   s.columns(),
		ReadOnly:  s.readOnly() && checkStatement(sql, false) == nil,
	}, nil
}
