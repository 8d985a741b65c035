package fsm

// A thin wrapper over SQLite's C API as transpiled by modernc.org/sqlite/lib.
//
// Why not database/sql: the fsm needs things the driver does not expose —
// the declared type of every result column of a statement that is never
// run (Describe), sqlite3_bind_parameter_count and sqlite3_stmt_readonly,
// the extended result code of every error, RETURNING rows together with
// sqlite3_changes64, the backup API — and it must get values exactly as
// SQLite stores them (the driver turns TEXT in DATE/DATETIME/TIMESTAMP
// columns into time.Time). Each sconn is used by one goroutine at a time;
// the callers serialise access (the applier owns the writer, the read pool
// hands a conn to one reader at a time).

import (
	"container/list"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// cptr turns an address of C memory into an unsafe.Pointer without the
// uintptr→unsafe.Pointer conversion that go vet rightly distrusts for Go
// memory; every address handled here comes from SQLite's allocator.
func cptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

func cbytes(p uintptr, n int) []byte {
	if p == 0 || n <= 0 {
		return nil
	}
	return unsafe.Slice((*byte)(cptr(p)), n)
}

func readPtr(p uintptr) uintptr { return *(*uintptr)(cptr(p)) }

func readInt32(p uintptr) int32 { return *(*int32)(cptr(p)) }

// sconn is one SQLite connection.
type sconn struct {
	tls  *libc.TLS
	db   uintptr
	path string
	// cache holds prepared internal statements by SQL text (the fsm's
	// own, fixed statements: bounded).
	cache map[string]*sstmt
	// budget is the progress handler's C memory (writer only), 0 if none.
	budget uintptr
	// lru caches prepared statements of any SQL (see stmt).
	lru stmtLRU
	// entropy is the clock and PRNG of the function overrides (writer
	// and preview only; see entropy.go), zero if none.
	entropy entropy

	// Table tracking (tables.go). tracking: the authorizer records into
	// authSink, and each cached statement keeps its tables.
	tracking bool
	authSink tableSet
	authFn   func(*libc.TLS, uintptr, int32, uintptr, uintptr, uintptr, uintptr) int32
	// writeSink, when set, receives the tables the preupdate hook sees
	// changed (writer only); lastTbl spares a string per row.
	writeSink tableSet
	lastTbl   string
	hookFn    func(*libc.TLS, uintptr, uintptr, int32, uintptr, uintptr, int64, int64)
}

// openConn opens path and runs pragmas (each "name=value") on it.
func openConn(path string, flags int32, pragmas []string) (*sconn, error) {
	tls := libc.NewTLS()
	c := &sconn{tls: tls, path: path}
	cpath, err := libc.CString(path)
	if err != nil {
		tls.Close()
		return nil, err
	}
	defer libc.Xfree(tls, cpath)
	pp := libc.Xmalloc(tls, 8)
	if pp == 0 {
		tls.Close()
		return nil, fmt.Errorf("fsm: open %s: out of memory", path)
	}
	defer libc.Xfree(tls, pp)
	*(*uintptr)(cptr(pp)) = 0
	rc := sqlite3.Xsqlite3_open_v2(tls, cpath, pp, flags|sqlite3.SQLITE_OPEN_NOMUTEX, 0)
	c.db = readPtr(pp)
	if rc != sqlite3.SQLITE_OK {
		var err error = &SQLError{Code: int(rc), Message: "cannot open database"}
		if c.db != 0 {
			err = c.lastError(rc)
			sqlite3.Xsqlite3_close_v2(tls, c.db)
		}
		tls.Close()
		return nil, fmt.Errorf("fsm: open %s: %w", path, err)
	}
	sqlite3.Xsqlite3_extended_result_codes(tls, c.db, 1)
	sqlite3.Xsqlite3_busy_timeout(tls, c.db, 10000)
	for _, p := range pragmas {
		if err := c.exec("PRAGMA " + p); err != nil {
			c.close()
			return nil, fmt.Errorf("fsm: open %s: PRAGMA %s: %w", path, p, err)
		}
	}
	return c, nil
}

func (c *sconn) close() error {
	if c.db == 0 {
		return nil
	}
	for _, s := range c.cache {
		s.finalize()
	}
	c.cache = nil
	c.dropStmts()
	rc := sqlite3.Xsqlite3_close_v2(c.tls, c.db)
	c.db = 0
	if c.budget != 0 {
		libc.Xfree(c.tls, c.budget)
		c.budget = 0
	}
	if c.entropy.p != 0 {
		libc.Xfree(c.tls, c.entropy.p)
		c.entropy.p = 0
	}
	c.tls.Close()
	if rc != sqlite3.SQLITE_OK {
		return &SQLError{Code: int(rc), Message: "close failed"}
	}
	return nil
}

// lastError is the connection's current error as a *SQLError, with the
// extended result code.
func (c *sconn) lastError(rc int32) *SQLError {
	code := sqlite3.Xsqlite3_extended_errcode(c.tls, c.db)
	if code&0xff != rc&0xff {
		code = rc
	}
	msg := libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
	if msg == "" || msg == "not an error" {
		msg = libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, code))
	}
	return &SQLError{Code: int(code), Message: msg}
}

// exec runs sql, which may hold several statements, discarding rows.
func (c *sconn) exec(sql string) error {
	rest := sql
	for {
		st, tail, err := c.prepareOne(rest)
		if err != nil {
			return err
		}
		if st == nil {
			return nil
		}
		for {
			row, err := st.step()
			if err != nil {
				st.finalize()
				return err
			}
			if !row {
				break
			}
		}
		st.finalize()
		rest = tail
	}
}

// sstmt is one prepared statement.
type sstmt struct {
	c     *sconn
	p     uintptr
	sql   string // set when in the connection's LRU
	inUse bool
	// tables are the tables the statement reads or writes, as the
	// authorizer saw them when SQLite last prepared it (tracking
	// connections only).
	tables []string
}

// prepareOne prepares the first statement of sql and returns the text
// after it. st is nil when sql holds no statement (only spaces/comments).
func (c *sconn) prepareOne(sql string) (st *sstmt, tail string, err error) {
	if sql == "" {
		return nil, "", nil
	}
	csql, err := libc.CString(sql)
	if err != nil {
		return nil, "", err
	}
	defer libc.Xfree(c.tls, csql)
	out := libc.Xmalloc(c.tls, 16)
	if out == 0 {
		return nil, "", fmt.Errorf("fsm: prepare: out of memory")
	}
	defer libc.Xfree(c.tls, out)
	*(*uintptr)(cptr(out)) = 0
	*(*uintptr)(cptr(out + 8)) = 0
	rc := sqlite3.Xsqlite3_prepare_v2(c.tls, c.db, csql, int32(len(sql)), out, out+8)
	if rc != sqlite3.SQLITE_OK {
		return nil, "", c.lastError(rc)
	}
	p := readPtr(out)
	off := int(readPtr(out+8) - csql)
	if off < 0 || off > len(sql) {
		off = len(sql)
	}
	if p == 0 {
		return nil, "", nil
	}
	return &sstmt{c: c, p: p}, sql[off:], nil
}

// prepareSingle prepares sql, which must hold exactly one statement (or
// none: st is nil then).
func (c *sconn) prepareSingle(sql string) (*sstmt, error) {
	st, tail, err := c.prepareOne(sql)
	if err != nil || st == nil {
		return nil, err
	}
	if strings.TrimSpace(tail) != "" {
		more, _, err := c.prepareOne(tail)
		if err != nil {
			st.finalize()
			return nil, err
		}
		if more != nil {
			more.finalize()
			st.finalize()
			return nil, &SQLError{Code: CodeMultipleStatements, Message: "a Statement must hold one SQL statement"}
		}
	}
	return st, nil
}

// cached returns the prepared statement for sql (one statement), preparing
// it on first use. The caller must call s.reset() when done with it.
func (c *sconn) cached(sql string) (*sstmt, error) {
	if s := c.cache[sql]; s != nil {
		return s, nil
	}
	s, err := c.prepareSingle(sql)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("fsm: empty internal statement")
	}
	if c.cache == nil {
		c.cache = map[string]*sstmt{}
	}
	c.cache[sql] = s
	return s, nil
}

// reset makes a cached statement ready for its next use.
func (s *sstmt) reset() {
	sqlite3.Xsqlite3_reset(s.c.tls, s.p)
	sqlite3.Xsqlite3_clear_bindings(s.c.tls, s.p)
}

func (s *sstmt) finalize() {
	if s.p != 0 {
		sqlite3.Xsqlite3_finalize(s.c.tls, s.p)
		s.p = 0
	}
}

func (s *sstmt) readOnly() bool { return sqlite3.Xsqlite3_stmt_readonly(s.c.tls, s.p) != 0 }

// paramMap maps each SQLite parameter index (1-based, position i-1 of the
// result) to an index into Statement.Args, and returns the number of
// arguments the statement needs. "$N" and "?N" refer to Args[N-1]; a bare
// "?" takes the next argument in order. Named parameters (:x, @x, $x) are
// refused: the wire protocol has only positional ones.
func (s *sstmt) paramMap() ([]int, int, *SQLError) {
	n := int(sqlite3.Xsqlite3_bind_parameter_count(s.c.tls, s.p))
	m := make([]int, n)
	need := 0
	next := 0
	for i := 1; i <= n; i++ {
		name := libc.GoString(sqlite3.Xsqlite3_bind_parameter_name(s.c.tls, s.p, int32(i)))
		var k int
		switch {
		case name == "":
			// An anonymous "?" (or an index skipped by "?NNN").
			k = next
			if k < i-1 {
				k = i - 1
			}
		case len(name) > 1 && (name[0] == '$' || name[0] == '?'):
			v, err := strconv.Atoi(name[1:])
			if err != nil || v < 1 {
				return nil, 0, &SQLError{Code: CodeBadParameter, Message: fmt.Sprintf("unsupported parameter %q: use $1, $2, …", name)}
			}
			k = v - 1
		default:
			return nil, 0, &SQLError{Code: CodeBadParameter, Message: fmt.Sprintf("unsupported parameter %q: use $1, $2, …", name)}
		}
		m[i-1] = k
		next = k + 1
		if k+1 > need {
			need = k + 1
		}
	}
	return m, need, nil
}

// bind binds args to the statement's parameters (see paramMap).
func (s *sstmt) bind(args []any) *SQLError {
	m, need, serr := s.paramMap()
	if serr != nil {
		return serr
	}
	if len(args) != need {
		return &SQLError{Code: CodeBadParameter, Message: fmt.Sprintf("statement needs %d parameters, %d given", need, len(args))}
	}
	tls := s.c.tls
	for i, k := range m {
		idx := int32(i + 1)
		var rc int32
		switch v := args[k].(type) {
		case nil:
			rc = sqlite3.Xsqlite3_bind_null(tls, s.p, idx)
		case int64:
			rc = sqlite3.Xsqlite3_bind_int64(tls, s.p, idx, v)
		case float64:
			rc = sqlite3.Xsqlite3_bind_double(tls, s.p, idx, v)
		case string:
			p := libc.Xmalloc(tls, libc.Tsize_t(len(v)+1))
			if p == 0 {
				return &SQLError{Code: sqlite3.SQLITE_NOMEM, Message: "out of memory"}
			}
			copy(cbytes(p, len(v)), v)
			rc = sqlite3.Xsqlite3_bind_text64(tls, s.p, idx, p, uint64(len(v)), sqlite3.SQLITE_TRANSIENT, sqlite3.SQLITE_UTF8)
			libc.Xfree(tls, p)
		case []byte:
			if v == nil {
				rc = sqlite3.Xsqlite3_bind_null(tls, s.p, idx)
				break
			}
			p := libc.Xmalloc(tls, libc.Tsize_t(len(v)+1))
			if p == 0 {
				return &SQLError{Code: sqlite3.SQLITE_NOMEM, Message: "out of memory"}
			}
			copy(cbytes(p, len(v)), v)
			rc = sqlite3.Xsqlite3_bind_blob64(tls, s.p, idx, p, uint64(len(v)), sqlite3.SQLITE_TRANSIENT)
			libc.Xfree(tls, p)
		default:
			return &SQLError{Code: CodeBadParameter, Message: fmt.Sprintf("parameter $%d has unsupported type %T", k+1, v)}
		}
		if rc != sqlite3.SQLITE_OK {
			return s.c.lastError(rc)
		}
	}
	return nil
}

// step advances the statement: row is true when a row is ready.
func (s *sstmt) step() (row bool, err error) {
	switch rc := sqlite3.Xsqlite3_step(s.c.tls, s.p); rc {
	case sqlite3.SQLITE_ROW:
		return true, nil
	case sqlite3.SQLITE_DONE:
		return false, nil
	default:
		return false, s.c.lastError(rc)
	}
}

func (s *sstmt) columns() []Column {
	n := int(sqlite3.Xsqlite3_column_count(s.c.tls, s.p))
	if n == 0 {
		return nil
	}
	cols := make([]Column, n)
	for i := range cols {
		cols[i] = Column{
			Name:     libc.GoString(sqlite3.Xsqlite3_column_name(s.c.tls, s.p, int32(i))),
			DeclType: libc.GoString(sqlite3.Xsqlite3_column_decltype(s.c.tls, s.p, int32(i))),
		}
	}
	return cols
}

// row returns the current row's n values as nil, int64, float64, string
// or []byte.
func (s *sstmt) row(n int) []any {
	tls := s.c.tls
	vals := make([]any, n)
	for i := range vals {
		col := int32(i)
		switch sqlite3.Xsqlite3_column_type(tls, s.p, col) {
		case sqlite3.SQLITE_INTEGER:
			vals[i] = sqlite3.Xsqlite3_column_int64(tls, s.p, col)
		case sqlite3.SQLITE_FLOAT:
			vals[i] = sqlite3.Xsqlite3_column_double(tls, s.p, col)
		case sqlite3.SQLITE_TEXT:
			p := sqlite3.Xsqlite3_column_text(tls, s.p, col)
			vals[i] = string(cbytes(p, int(sqlite3.Xsqlite3_column_bytes(tls, s.p, col))))
		case sqlite3.SQLITE_BLOB:
			p := sqlite3.Xsqlite3_column_blob(tls, s.p, col)
			b := make([]byte, int(sqlite3.Xsqlite3_column_bytes(tls, s.p, col)))
			copy(b, cbytes(p, len(b)))
			vals[i] = b
		default:
			vals[i] = nil
		}
	}
	return vals
}

func (c *sconn) changes() int64      { return sqlite3.Xsqlite3_changes64(c.tls, c.db) }
func (c *sconn) lastInsertID() int64 { return sqlite3.Xsqlite3_last_insert_rowid(c.tls, c.db) }
func (c *sconn) autocommit() bool    { return sqlite3.Xsqlite3_get_autocommit(c.tls, c.db) != 0 }

// deferredFKs reports whether deferred foreign key constraints are
// unresolved in the current transaction.
func (c *sconn) deferredFKs() bool {
	p := libc.Xmalloc(c.tls, 8)
	if p == 0 {
		return false
	}
	defer libc.Xfree(c.tls, p)
	*(*int64)(cptr(p)) = 0
	if sqlite3.Xsqlite3_db_status(c.tls, c.db, sqlite3.SQLITE_DBSTATUS_DEFERRED_FKS, p, p+4, 0) != sqlite3.SQLITE_OK {
		return false
	}
	return readInt32(p) != 0
}

// checkpoint runs a TRUNCATE checkpoint: the WAL is copied into the
// database file and emptied.
func (c *sconn) checkpoint() error {
	rc := sqlite3.Xsqlite3_wal_checkpoint_v2(c.tls, c.db, 0, sqlite3.SQLITE_CHECKPOINT_TRUNCATE, 0, 0)
	if rc != sqlite3.SQLITE_OK {
		return c.lastError(rc)
	}
	return nil
}

// backupTo copies the whole main database of c into dst (another open
// connection) with the online backup API, in one step: the copy is the
// state of one read transaction of c.
func (c *sconn) backupTo(dst *sconn) error {
	main, err := libc.CString("main")
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, main)
	b := sqlite3.Xsqlite3_backup_init(dst.tls, dst.db, main, c.db, main)
	if b == 0 {
		return dst.lastError(sqlite3.SQLITE_ERROR)
	}
	rc := sqlite3.Xsqlite3_backup_step(dst.tls, b, -1)
	frc := sqlite3.Xsqlite3_backup_finish(dst.tls, b)
	if rc != sqlite3.SQLITE_DONE {
		return &SQLError{Code: int(rc), Message: "backup step failed: " + libc.GoString(sqlite3.Xsqlite3_errstr(dst.tls, rc))}
	}
	if frc != sqlite3.SQLITE_OK {
		return dst.lastError(frc)
	}
	return nil
}

func (c *sconn) totalChanges() int64 { return sqlite3.Xsqlite3_total_changes64(c.tls, c.db) }

func (c *sconn) setLastInsertID(v int64) { sqlite3.Xsqlite3_set_last_insert_rowid(c.tls, c.db, v) }

// A write's work is bounded deterministically: SQLite calls the progress
// handler every progressOps virtual machine steps, and the handler aborts
// the statement once the entry has used its budget. Steps, unlike time,
// are the same on every node (same SQLite, same state, same statement),
// so a runaway statement fails alike everywhere instead of stalling the
// log forever.
const progressOps = 10000

// budget is C memory the progress handler reads: [0] calls so far, [1]
// the limit, [2] set to 1 when the limit stopped a statement.
func (c *sconn) enableBudget(maxSteps int64) error {
	p := libc.Xmalloc(c.tls, 24)
	if p == 0 {
		return fmt.Errorf("fsm: out of memory")
	}
	c.budget = p
	c.setBudget(maxSteps)
	sqlite3.Xsqlite3_progress_handler(c.tls, c.db, progressOps, cFuncPointer(progressHandler), p)
	return nil
}

func (c *sconn) budgetWords() *[3]int64 { return (*[3]int64)(cptr(c.budget)) }

// setBudget resets the budget for the next entry.
func (c *sconn) setBudget(maxSteps int64) {
	if c.budget == 0 {
		return
	}
	b := c.budgetWords()
	b[0], b[1], b[2] = 0, max(1, maxSteps/progressOps), 0
}

// budgetExceeded reports whether the budget stopped a statement.
func (c *sconn) budgetExceeded() bool { return c.budget != 0 && c.budgetWords()[2] != 0 }

func progressHandler(_ *libc.TLS, arg uintptr) int32 {
	b := (*[3]int64)(cptr(arg))
	b[0]++
	if b[0] > b[1] {
		b[2] = 1
		return 1
	}
	return 0
}

// cFuncPointer turns a Go function into the value SQLite's transpiled C
// code calls as a function pointer (what modernc.org/sqlite does for its
// own callbacks: a func value is a pointer to its code pointer).
func cFuncPointer[T any](f T) uintptr {
	return *(*uintptr)(unsafe.Pointer(&struct{ f T }{f}))
}

// stmtCacheSize is how many prepared statements each connection keeps by
// SQL text (clients repeat the same statements with new parameters, and
// preparing is a large part of a short statement's cost).
const stmtCacheSize = 64

type stmtLRU struct {
	m map[string]*list.Element // of *sstmt
	l list.List                // front: most recently used
}

// stmt returns a prepared statement for sql (exactly one statement; nil
// for none) from the connection's cache, and the function to call when
// done with it.
func (c *sconn) stmt(sql string) (*sstmt, func(), error) {
	if c.lru.m == nil {
		c.lru.m = map[string]*list.Element{}
	}
	if el := c.lru.m[sql]; el != nil {
		s := el.Value.(*sstmt)
		if !s.inUse {
			c.lru.l.MoveToFront(el)
			s.inUse = true
			return s, func() { s.reset(); s.inUse = false }, nil
		}
	}
	s, err := c.prepareTracked(sql)
	if err != nil || s == nil {
		return nil, func() {}, err
	}
	if _, dup := c.lru.m[sql]; dup || len(sql) > 16<<10 {
		return s, s.finalize, nil // not cached
	}
	s.sql = sql
	s.inUse = true
	c.lru.m[sql] = c.lru.l.PushFront(s)
	for el := c.lru.l.Back(); c.lru.l.Len() > stmtCacheSize && el != nil; {
		prev := el.Prev()
		if old := el.Value.(*sstmt); !old.inUse {
			old.finalize()
			delete(c.lru.m, old.sql)
			c.lru.l.Remove(el)
		}
		el = prev
	}
	return s, func() { s.reset(); s.inUse = false }, nil
}

// dropStmts finalizes every cached statement.
func (c *sconn) dropStmts() {
	for el := c.lru.l.Front(); el != nil; el = el.Next() {
		el.Value.(*sstmt).finalize()
	}
	c.lru.m = nil
	c.lru.l.Init()
}
