package fsm

import (
	"slices"
	"strconv"
	"strings"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// Table-granular conflicts for interactive transactions.
//
// Read side: the preview connections have an authorizer that records
// every table a statement reads (SQLITE_READ: the underlying tables of a
// view, a trigger's and a foreign key check's tables included) or writes
// (SQLITE_INSERT/UPDATE/DELETE: a write reads its table too). The
// authorizer runs when SQLite prepares a statement, and statements are
// cached, so each prepared statement keeps its own tables (sstmt.tables,
// replaced when SQLite re-prepares it at its first step after a schema
// change) and a preview unions those of the statements it ran
// (PreviewTx): at their first step, or at prepare for one that failed
// to prepare.
//
// Write side: the writer has a preupdate hook (it fires for every row of
// every table, WITHOUT ROWID ones, triggers and cascades included, and it
// turns off SQLite's truncate optimisation, which would skip it), which
// records the tables an entry's statements changed; an entry that
// committed and changed rows sets _raftsql_table_writes(tbl, idx) to its
// index for each of them, in the batch transaction. DDL and restores move
// last_schema_index instead, which conflicts with every transaction.
// Names are kept lower-cased (SQLite's names are case-insensitive in
// ASCII); the fsm's own _raftsql_ tables are left out.

// tableSet is a set of lower-cased table names.
type tableSet map[string]struct{}

func (s tableSet) addAll(names []string) {
	for _, n := range names {
		s[n] = struct{}{}
	}
}

// sorted returns the names in order (nil for none).
func (s tableSet) sorted() []string {
	if len(s) == 0 {
		return nil
	}
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// tableKey is the name a table is tracked under, "" for the fsm's own.
func tableKey(name string) string {
	k := strings.ToLower(name)
	if strings.HasPrefix(k, internalPrefix) {
		return ""
	}
	return k
}

// enableReadTracking installs the authorizer that records the tables
// statements prepared on c read or write (preview connections).
func (c *sconn) enableReadTracking() {
	fn := func(_ *libc.TLS, _ uintptr, action int32, z1, _, _, _ uintptr) int32 {
		switch action {
		case sqlite3.SQLITE_READ, sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE:
			if z1 != 0 && c.authSink != nil {
				if k := tableKey(libc.GoString(z1)); k != "" {
					c.authSink[k] = struct{}{}
				}
			}
		}
		return sqlite3.SQLITE_OK
	}
	// The closure is what SQLite calls: c keeps it alive (Go's collector
	// does not move heap objects).
	c.authFn = fn
	c.tracking = true
	sqlite3.Xsqlite3_set_authorizer(c.tls, c.db, cFuncPointer(fn), 0)
}

// enableWriteTracking prepares the preupdate hook that records the
// tables changed between startWrites and stopWrites (the writer). The
// hook is set only then: SQLite does some work for it on every row
// change, the fsm's own included.
func (c *sconn) enableWriteTracking() {
	c.hookFn = func(_ *libc.TLS, _ uintptr, _ uintptr, _ int32, _, zTbl uintptr, _, _ int64) {
		if c.writeSink == nil || zTbl == 0 {
			return
		}
		if c.lastTbl != "" && cstrEqual(zTbl, c.lastTbl) {
			return
		}
		name := libc.GoString(zTbl)
		c.lastTbl = name
		if k := tableKey(name); k != "" {
			c.writeSink[k] = struct{}{}
		}
	}
}

// startWrites starts recording the tables changed on c. The statements
// of entries run (and are prepared) only between startWrites and
// stopWrites, so SQLite's truncate optimisation, which the hook turns
// off at prepare, is off for all of them.
func (c *sconn) startWrites() {
	c.writeSink = tableSet{}
	c.lastTbl = ""
	sqlite3.Xsqlite3_preupdate_hook(c.tls, c.db, cFuncPointer(c.hookFn), 0)
}

// stopWrites stops recording and returns the tables changed.
func (c *sconn) stopWrites() tableSet {
	sqlite3.Xsqlite3_preupdate_hook(c.tls, c.db, 0, 0)
	s := c.writeSink
	c.writeSink = nil
	c.lastTbl = ""
	return s
}

// cstrEqual reports whether the NUL-terminated C string at p is s.
func cstrEqual(p uintptr, s string) bool {
	for i := 0; i < len(s); i++ {
		b := *(*byte)(cptr(p + uintptr(i)))
		if b != s[i] { // a shorter string stops here at its NUL
			return false
		}
	}
	return *(*byte)(cptr(p + uintptr(len(s)))) == 0
}

// recordTableWrites sets the write index of tables to index (in order, so
// every node does the same B-tree operations).
func recordTableWrites(w *sconn, tables tableSet, index uint64) error {
	for _, t := range tables.sorted() {
		if _, err := w.queryCached("INSERT INTO _raftsql_table_writes(tbl, idx) VALUES (?, ?) ON CONFLICT(tbl) DO UPDATE SET idx = excluded.idx", t, int64(index)); err != nil {
			return err
		}
	}
	return nil
}

// tableConflict returns the first of tables written after readVersion
// and its write index, or "" if none was.
func tableConflict(w *sconn, tables []string, readVersion uint64) (string, uint64, error) {
	for _, t := range tables {
		if t == allTables {
			continue // checked by the caller
		}
		rows, err := w.queryCached("SELECT idx FROM _raftsql_table_writes WHERE tbl = ?", strings.ToLower(t))
		if err != nil {
			return "", 0, err
		}
		if len(rows) == 1 {
			if v, _ := rows[0][0].(int64); v > 0 && uint64(v) > readVersion {
				return t, uint64(v), nil
			}
		}
	}
	return "", 0, nil
}

// prepareTracked prepares sql (one statement) and, on a tracking
// connection, keeps the tables the authorizer reported on it and adds
// them to the current sink.
func (c *sconn) prepareTracked(sql string) (*sstmt, error) {
	if !c.tracking {
		return c.prepareSingle(sql)
	}
	outer := c.authSink
	c.authSink = tableSet{}
	s, err := c.prepareSingle(sql)
	seen := c.authSink
	c.authSink = outer
	if s != nil {
		s.tables = c.withVirtual(seen.sorted())
	}
	c.noteTables(seen.sorted())
	return s, err
}

// withVirtual returns tables, plus allTables if one of them is a virtual
// table (or that cannot be told). It runs when a statement is prepared,
// not at every run.
func (c *sconn) withVirtual(tables []string) []string {
	outer := c.authSink
	c.authSink = nil
	virtual, err := usesVirtualTable(c, tables)
	c.authSink = outer
	if (virtual || err != nil) && !slices.Contains(tables, allTables) {
		tables = append(tables, allTables)
	}
	return tables
}

// noteTables adds tables to the current sink, if any.
func (c *sconn) noteTables(tables []string) {
	if c.authSink != nil {
		c.authSink.addAll(tables)
	}
}

// firstStep is s.step() for the first step of a run, which adds the
// statement's tables to the current sink: SQLite re-prepares a statement
// whose schema changed there, and the tables it reports then replace the
// statement's own; tables reported by statements prepared inside the
// step (a virtual table's own, prepared lazily) are added to them.
func (s *sstmt) firstStep() (bool, error) {
	c := s.c
	if !c.tracking {
		return s.step()
	}
	outer := c.authSink
	c.authSink = tableSet{}
	before := sqlite3.Xsqlite3_stmt_status(c.tls, s.p, sqlite3.SQLITE_STMTSTATUS_REPREPARE, 0)
	row, err := s.step()
	seen := c.authSink
	c.authSink = outer
	if len(seen) > 0 {
		if sqlite3.Xsqlite3_stmt_status(c.tls, s.p, sqlite3.SQLITE_STMTSTATUS_REPREPARE, 0) == before {
			seen.addAll(s.tables)
		}
		delete(seen, allTables)
		s.tables = c.withVirtual(seen.sorted())
	}
	c.noteTables(s.tables)
	return row, err
}

// allTables in Command.ReadTables makes the command conflict with any
// change after its ReadVersion (as without ReadTables). A statement that
// uses a virtual table has it among its tables (so PreviewTx reports
// it): SQLite's preupdate hook does not see a virtual table's writes,
// and what its module reads and writes underneath (shadow tables, FTS5's
// partly through blob handles, which no authorizer sees) is the module's
// business.
const allTables = "*"

// usesVirtualTable reports whether one of tables is a virtual table.
func usesVirtualTable(c *sconn, tables []string) (bool, error) {
	if len(tables) == 0 {
		return false, nil
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, t := range tables {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(t))
	}
	b.WriteByte(']')
	rows, err := c.queryCached(`SELECT 1 FROM sqlite_schema WHERE type = 'table' AND lower(name) IN (SELECT value FROM json_each(?))
		AND sql LIKE 'CREATE VIRTUAL TABLE%' LIMIT 1`, b.String())
	return len(rows) > 0, err
}
