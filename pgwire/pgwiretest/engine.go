// Package pgwiretest provides a pgwire.Engine backed by one local SQLite
// database (modernc.org/sqlite), with no Raft, for tests of the front end
// and of anything that wants a real PostgreSQL-speaking server in-process.
//
// Write runs its statements in one SQLite transaction (all or nothing),
// Read runs in a transaction that is always rolled back and refuses any
// statement that is not a read, so a test fails if the front end sends a
// write down the read path. Every call is recorded (Calls) so tests can
// check how statements were grouped.
package pgwiretest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"

	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/pgwire"
	"github.com/raftsql/raftsql/sqltext"
)

// Call is one recorded Engine call.
type Call struct {
	Write bool
	Stmts []fsm.Statement
}

// Engine implements pgwire.Engine on one SQLite database.
type Engine struct {
	db *sql.DB
	mu sync.Mutex // one unit at a time, like the fsm

	// Leader is what IsLeader reports (true by default).
	Leader atomic.Bool
	// Hook, when set, runs before every Read/Write with its statements;
	// an error fails the call. Tests use it to block until ctx ends.
	Hook func(ctx context.Context, write bool, stmts []fsm.Statement) error

	callsMu sync.Mutex
	calls   []Call
}

// New opens a fresh in-memory database (unique per Engine).
func New() (*Engine, error) {
	name := fmt.Sprintf("file:pgwiretest%d?mode=memory&cache=shared&_pragma=foreign_keys(1)", nextDB.Add(1))
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, fmt.Errorf("pgwiretest: open: %w", err)
	}
	db.SetMaxOpenConns(1)
	e := &Engine{db: db}
	e.Leader.Store(true)
	return e, nil
}

var nextDB atomic.Int64

// Close closes the database.
func (e *Engine) Close() error { return e.db.Close() }

// Calls returns the recorded calls so far and forgets them.
func (e *Engine) Calls() []Call {
	e.callsMu.Lock()
	defer e.callsMu.Unlock()
	c := e.calls
	e.calls = nil
	return c
}

func (e *Engine) record(write bool, stmts []fsm.Statement) {
	e.callsMu.Lock()
	defer e.callsMu.Unlock()
	e.calls = append(e.calls, Call{Write: write, Stmts: append([]fsm.Statement(nil), stmts...)})
}

// NewSession implements pgwire.Engine.
func (e *Engine) NewSession() pgwire.EngineSession { return &session{e: e} }

// IsLeader implements pgwire.Engine.
func (e *Engine) IsLeader() bool { return e.Leader.Load() }

var paramRE = regexp.MustCompile(`\?(\d+)|\?`)

// Describe implements pgwire.Engine.
func (e *Engine) Describe(ctx context.Context, query string) (fsm.Description, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return fsm.Description{}, err
	}
	defer conn.Close()
	var d fsm.Description
	err = conn.Raw(func(dc any) error {
		ci, ok := dc.(interface {
			ColumnInfo(string) ([]sqlite.ColumnInfo, error)
		})
		if !ok {
			return errors.New("pgwiretest: driver has no ColumnInfo")
		}
		info, err := ci.ColumnInfo(query)
		if err != nil {
			return sqlErr(err)
		}
		for _, c := range info {
			d.Columns = append(d.Columns, fsm.Column{Name: c.Name, DeclType: c.DeclType})
		}
		return nil
	})
	if err != nil {
		return fsm.Description{}, err
	}
	n := 0
	for _, m := range paramRE.FindAllStringSubmatch(query, -1) {
		if m[1] == "" {
			n++
			continue
		}
		if k, _ := strconv.Atoi(m[1]); k > n {
			n = k
		}
	}
	d.NumParams = n
	kind, _, _ := sqltext.Classify(query)
	d.ReadOnly = kind == sqltext.KindRead
	return d, nil
}

type session struct{ e *Engine }

func (s *session) Close() {}

func (s *session) Write(ctx context.Context, stmts []fsm.Statement) ([]fsm.Result, error) {
	return s.e.run(ctx, true, stmts)
}

func (s *session) Read(ctx context.Context, _ pgwire.Consistency, stmts []fsm.Statement) ([]fsm.Result, error) {
	for _, st := range stmts {
		if kind, _, err := sqltext.Classify(st.SQL); err == nil && kind != sqltext.KindRead {
			return nil, fmt.Errorf("pgwiretest: write statement sent to Read: %q", st.SQL)
		}
	}
	return s.e.run(ctx, false, stmts)
}

func (e *Engine) run(ctx context.Context, write bool, stmts []fsm.Statement) ([]fsm.Result, error) {
	e.record(write, stmts)
	if e.Hook != nil {
		if err := e.Hook(ctx, write, stmts); err != nil {
			return nil, err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var out []fsm.Result
	for _, st := range stmts {
		r, err := runOne(ctx, tx, st)
		if err != nil {
			var se *fsm.SQLError
			if errors.As(err, &se) {
				out = append(out, fsm.Result{Err: se})
				return out, nil
			}
			return nil, err
		}
		out = append(out, r)
	}
	if write {
		if err := tx.Commit(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func runOne(ctx context.Context, tx *sql.Tx, st fsm.Statement) (fsm.Result, error) {
	var r fsm.Result
	rows, err := tx.QueryContext(ctx, st.SQL, st.Args...)
	if err != nil {
		return r, sqlErr(err)
	}
	cts, err := rows.ColumnTypes()
	if err != nil {
		rows.Close()
		return r, sqlErr(err)
	}
	for _, ct := range cts {
		r.Columns = append(r.Columns, fsm.Column{Name: ct.Name(), DeclType: ct.DatabaseTypeName()})
	}
	for rows.Next() {
		vals := make([]any, len(cts))
		ptrs := make([]any, len(cts))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return r, sqlErr(err)
		}
		for i, v := range vals {
			vals[i] = normalize(v)
		}
		r.Rows = append(r.Rows, vals)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return r, sqlErr(err)
	}
	rows.Close()
	_, verb, _ := sqltext.Classify(st.SQL)
	switch verb {
	case "INSERT", "UPDATE", "DELETE":
		if err := tx.QueryRowContext(ctx, "SELECT changes()").Scan(&r.RowsAffected); err != nil {
			return r, sqlErr(err)
		}
	}
	return r, nil
}

func normalize(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999999Z07:00")
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case int:
		return int64(x)
	}
	return v
}

var codeSuffixRE = regexp.MustCompile(`\s*\(\d+\)$`)

// sqlErr turns a modernc error into an *fsm.SQLError (code + bare message).
func sqlErr(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	msg := codeSuffixRE.ReplaceAllString(se.Error(), "")
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "SQL logic error") || strings.HasPrefix(msg, "constraint failed") {
		msg = msg[strings.Index(msg, ": ")+2:]
	}
	return &fsm.SQLError{Code: se.Code(), Message: msg}
}
