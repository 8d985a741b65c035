// Package pgwiretest provides a pgwire.Engine backed by one local SQLite
// database (modernc.org/sqlite), with no Raft, for tests of the front end
// and of anything that wants a real PostgreSQL-speaking server in-process.
//
// Write runs its statements in one SQLite transaction (all or nothing),
// Read runs in a transaction that is always rolled back and refuses any
// statement that is not a read, so a test fails if the front end sends a
// write down the read path. Every call is recorded (Calls, unless
// NoRecord) so tests can check how statements were grouped.
package pgwiretest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// Engine implements pgwire.Engine on one SQLite database (a temporary
// file in WAL mode: reads run beside an open write transaction).
type Engine struct {
	db      *sql.DB
	dir     string
	writeMu sync.Mutex // one writer at a time, like the fsm

	// Interactive makes new sessions implement pgwire.InteractiveSession
	// (set it before clients connect).
	Interactive bool

	// Leader is what IsLeader reports (true by default).
	Leader atomic.Bool
	// Hook, when set, runs before every Read/Write with its statements;
	// an error fails the call. Tests use it to block until ctx ends.
	Hook func(ctx context.Context, write bool, stmts []fsm.Statement) error
	// NoRecord turns the record of calls off (set it before clients
	// connect), for a long-running server such as cmd/pgsqlite whose
	// record would grow without bound; Calls then returns nothing.
	NoRecord bool

	callsMu sync.Mutex
	calls   []Call
}

// New opens a fresh database in a new temporary directory.
func New() (*Engine, error) {
	dir, err := os.MkdirTemp("", "pgwiretest")
	if err != nil {
		return nil, fmt.Errorf("pgwiretest: %w", err)
	}
	dsn := "file:" + filepath.Join(dir, "db.sqlite") + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgwiretest: open: %w", err)
	}
	db.SetMaxOpenConns(8)
	e := &Engine{db: db, dir: dir}
	e.Leader.Store(true)
	return e, nil
}

// Close closes the database and removes its directory.
func (e *Engine) Close() error {
	err := e.db.Close()
	os.RemoveAll(e.dir)
	return err
}

// Calls returns the recorded calls so far and forgets them.
func (e *Engine) Calls() []Call {
	e.callsMu.Lock()
	defer e.callsMu.Unlock()
	c := e.calls
	e.calls = nil
	return c
}

func (e *Engine) record(write bool, stmts []fsm.Statement) {
	if e.NoRecord {
		return
	}
	e.callsMu.Lock()
	defer e.callsMu.Unlock()
	e.calls = append(e.calls, Call{Write: write, Stmts: append([]fsm.Statement(nil), stmts...)})
}

// NewSession implements pgwire.Engine.
func (e *Engine) NewSession() pgwire.EngineSession {
	if e.Interactive {
		return &txSession{session{e: e}}
	}
	return &session{e: e}
}

// IsLeader implements pgwire.Engine.
func (e *Engine) IsLeader() bool { return e.Leader.Load() }

var paramRE = regexp.MustCompile(`\?(\d+)|\?`)

// Describe implements pgwire.Engine.
func (e *Engine) Describe(ctx context.Context, query string) (fsm.Description, error) {
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
	if write {
		e.writeMu.Lock()
		defer e.writeMu.Unlock()
	}
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

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func runOne(ctx context.Context, tx queryer, st fsm.Statement) (fsm.Result, error) {
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

// txSession also implements pgwire.InteractiveSession.
type txSession struct{ session }

// Begin implements pgwire.InteractiveSession: it holds the writer lock
// until Commit or Rollback.
func (s *txSession) Begin(ctx context.Context, _ pgwire.Consistency) (pgwire.EngineTx, error) {
	e := s.e
	e.record(true, []fsm.Statement{{SQL: "BEGIN"}})
	e.writeMu.Lock()
	conn, err := e.db.Conn(ctx)
	if err != nil {
		e.writeMu.Unlock()
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		conn.Close()
		e.writeMu.Unlock()
		return nil, sqlErr(err)
	}
	return &engineTx{e: e, conn: conn}, nil
}

type engineTx struct {
	e    *Engine
	conn *sql.Conn
	done bool
}

func (t *engineTx) Exec(ctx context.Context, stmts []fsm.Statement) ([]fsm.Result, error) {
	t.e.record(true, stmts)
	if t.e.Hook != nil {
		if err := t.e.Hook(ctx, true, stmts); err != nil {
			return nil, err
		}
	}
	var out []fsm.Result
	for _, st := range stmts {
		r, err := runOne(ctx, t.conn, st)
		if err != nil {
			var se *fsm.SQLError
			if errors.As(err, &se) {
				return append(out, fsm.Result{Err: se}), nil
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (t *engineTx) end(query string) error {
	if t.done {
		return errors.New("pgwiretest: transaction already ended")
	}
	t.done = true
	defer t.e.writeMu.Unlock()
	defer t.conn.Close()
	_, err := t.conn.ExecContext(context.Background(), query)
	if err != nil && query == "COMMIT" {
		_, _ = t.conn.ExecContext(context.Background(), "ROLLBACK")
		return sqlErr(err)
	}
	return err
}

func (t *engineTx) Commit(ctx context.Context) error {
	t.e.record(true, []fsm.Statement{{SQL: "COMMIT"}})
	return t.end("COMMIT")
}

func (t *engineTx) Rollback() { _ = t.end("ROLLBACK") }

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
