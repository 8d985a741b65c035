package fsm

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/raftsql/raftsql/consensus"
	sqlite3 "modernc.org/sqlite/lib"
)

// Restore through the log (DESIGN.md: POST /restore): an entry whose
// Command carries a whole SQLite file replaces the database on every node
// at that index. Everything here is a function of the entry's bytes and of
// the replicated state, so every node does the same: a file that is not a
// usable database, or whose schema could not be replicated, is refused as
// the entry's error result; the state stays as it was.

// applyRestore applies a restore entry on its own (no transaction open).
func (f *FSM) applyRestore(e consensus.Entry) error {
	cmd, err := DecodeCommand(e.Data)
	if err != nil || cmd.Restore == nil {
		return f.applyBatch([]consensus.Entry{e}) // records the error result
	}
	w := f.w
	if cmd.SessionID != 0 {
		prev, dup, err := f.dedup(cmd)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrApplyFailed, e.Index, err)
		}
		if dup {
			return f.recordOnly(e, cmd, prev, false)
		}
	}
	tmp := f.path + restoreSuffix
	defer removeDB(tmp)
	if err := os.WriteFile(tmp, cmd.Restore, 0o644); err != nil {
		return fmt.Errorf("%w: entry %d: write restore file: %w", ErrApplyFailed, e.Index, err)
	}
	rs := []Result{{}}
	serr, err := prepareRestoreFile(tmp, w, e, cmd, rs)
	if err != nil {
		return fmt.Errorf("%w: entry %d: %w", ErrApplyFailed, e.Index, err)
	}
	if serr != nil {
		f.log.Warn("fsm: restore entry refused", "index", e.Index, "err", serr)
		return f.recordOnly(e, cmd, []Result{{Err: serr}}, true)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("%w: entry %d: %w", ErrApplyFailed, e.Index, err)
	}
	f.rmu.Lock()
	err = f.swapIn(tmp)
	f.rmu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: entry %d: %w", ErrApplyFailed, e.Index, err)
	}
	f.log.Info("fsm: database replaced by a restore entry", "index", e.Index, "bytes", len(cmd.Restore))
	f.waiters.deliver(waiterKey{cmd.SessionID, cmd.Seq}, rs)
	return nil
}

// recordOnly applies e as rs without touching the data: the session (when
// store) and the applied index, in one transaction.
func (f *FSM) recordOnly(e consensus.Entry, cmd Command, rs []Result, store bool) error {
	w := f.w
	w.setBudget(f.maxSteps)
	err := w.exec("BEGIN IMMEDIATE")
	if err == nil && store && cmd.SessionID != 0 {
		err = finishSession(w, cmd, rs)
	}
	if err == nil {
		err = setApplied(w, e.Index, e.Term)
	}
	if err == nil {
		err = w.exec("COMMIT")
	}
	if err != nil {
		if !w.autocommit() {
			_ = w.exec("ROLLBACK")
		}
		return fmt.Errorf("%w: entry %d: %w", ErrApplyFailed, e.Index, err)
	}
	f.setApplied(e.Index)
	f.waiters.deliver(waiterKey{cmd.SessionID, cmd.Seq}, rs)
	return nil
}

// prepareRestoreFile checks the database at path and makes it the state
// at entry e: the fsm's tables with e's index, the current configuration
// and sessions (w's), and cmd's result rs in its session. serr is the
// refusal of a bad file (a result); err a failure of this node.
func prepareRestoreFile(path string, w *sconn, e consensus.Entry, cmd Command, rs []Result) (serr *SQLError, err error) {
	refuse := func(format string, args ...any) (*SQLError, error) {
		return &SQLError{Code: CodeBadRestore, Message: "restore: " + fmt.Sprintf(format, args...)}, nil
	}
	// asResult turns an SQLite error caused by the file into a refusal.
	asResult := func(what string, err error) (*SQLError, error) {
		var se *SQLError
		if errors.As(err, &se) {
			switch se.Code & 0xff {
			case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_ERROR, sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH:
				return refuse("%s: %s", what, se.Message)
			}
		}
		return nil, fmt.Errorf("restore: %s: %w", what, err)
	}
	c, err := openConn(path, sqlite3.SQLITE_OPEN_READWRITE, nil)
	if err != nil {
		return asResult("open", err)
	}
	defer c.close()
	rows, err := c.query("PRAGMA quick_check")
	if err != nil {
		return asResult("check", err)
	}
	if len(rows) != 1 || rows[0][0] != "ok" {
		return refuse("the file fails quick_check: %v", rows)
	}
	schema, err := c.query("SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid")
	if err != nil {
		return asResult("read schema", err)
	}
	for _, r := range schema {
		name, _ := r[1].(string)
		sql, _ := r[2].(string)
		if strings.HasPrefix(strings.ToLower(name), internalPrefix) {
			continue
		}
		if bad := checkStatement(sql, true); bad != nil {
			return refuse("%v %s cannot be replicated: %s", r[0], name, bad.Message)
		}
	}
	// The state that is not the file's: configuration and sessions.
	members, err := w.query("SELECT id, addr, voter FROM _raftsql_members ORDER BY id")
	if err != nil {
		return nil, err
	}
	sessions, err := w.query("SELECT session_id, last_seq, result, updated FROM _raftsql_sessions ORDER BY session_id")
	if err != nil {
		return nil, err
	}
	nodes, err := w.query("SELECT id, http_addr, pg_addr FROM _raftsql_nodes ORDER BY id")
	if err != nil {
		return nil, err
	}
	confIndex, err := readMeta(w, "conf_index")
	if err != nil {
		return nil, err
	}
	if err := c.exec("PRAGMA journal_mode=DELETE; BEGIN IMMEDIATE;" + schemaSQL +
		"DELETE FROM _raftsql_members; DELETE FROM _raftsql_sessions; DELETE FROM _raftsql_nodes; DELETE FROM _raftsql_table_writes;"); err != nil {
		return asResult("prepare", err)
	}
	for _, m := range members {
		if _, err := c.queryCached("INSERT INTO _raftsql_members(id, addr, voter) VALUES (?, ?, ?)", m...); err != nil {
			return asResult("members", err)
		}
	}
	for _, n := range nodes {
		if _, err := c.queryCached("INSERT INTO _raftsql_nodes(id, http_addr, pg_addr) VALUES (?, ?, ?)", n...); err != nil {
			return asResult("nodes", err)
		}
	}
	for _, s := range sessions {
		if _, err := c.queryCached("INSERT INTO _raftsql_sessions(session_id, last_seq, result, updated) VALUES (?, ?, ?, ?)", s...); err != nil {
			return asResult("sessions", err)
		}
	}
	if cmd.SessionID != 0 {
		if err := finishSession(c, cmd, rs); err != nil {
			return asResult("sessions", err)
		}
	}
	if err := setMeta(c, "conf_index", int64(confIndex)); err != nil {
		return asResult("meta", err)
	}
	if err := setMeta(c, "last_write_index", int64(e.Index)); err != nil {
		return asResult("meta", err)
	}
	if err := setMeta(c, "last_schema_index", int64(e.Index)); err != nil {
		return asResult("meta", err)
	}
	if err := setMeta(c, "tables_since", int64(e.Index)); err != nil {
		return asResult("meta", err)
	}
	if err := setApplied(c, e.Index, e.Term); err != nil {
		return asResult("meta", err)
	}
	if err := c.exec("COMMIT"); err != nil {
		return asResult("commit", err)
	}
	return nil, nil
}

// swapIn replaces the database with the file tmp (same directory) and
// reopens the connections; with wmu and rmu held. On failure the FSM is
// closed: the node must stop.
func (f *FSM) swapIn(tmp string) error {
	if err := f.closeConns(); err != nil {
		f.log.Warn("fsm: closing connections for a restore", "err", err)
	}
	fail := func(err error) error {
		f.markClosed()
		f.waiters.failAll(ErrClosed)
		return fmt.Errorf("fsm: replace database: %w", err)
	}
	// The old WAL must never meet the new file: remove it (closing the
	// last connection checkpointed it) before the rename.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(f.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
	}
	if err := syncDir(f.dir); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fail(err)
	}
	if err := syncDir(f.dir); err != nil {
		return fail(err)
	}
	if err := f.openConns(); err != nil {
		return fail(err)
	}
	return nil
}
