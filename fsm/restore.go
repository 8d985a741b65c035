package fsm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/raftsql/raftsql/backup"
	"github.com/raftsql/raftsql/consensus"
	sqlite3 "modernc.org/sqlite/lib"
)

// Restore through the log (DESIGN.md: POST /restore) replaces the
// database on every node at one index. Two forms:
//
//   - Command.Restore (version 2): the whole file in one entry, for files
//     that fit one proposal (kept so that old entries still apply).
//   - Command.RestoreChunk entries, then a Command.RestoreCommit: the
//     chunks are staged inside the database itself, in
//     _raftsql_restore_chunks(id, seq, data), so that a snapshot taken
//     while a restore is staged carries its chunks and every node is
//     byte-identical at every index (invariant 5). A chunk of a new
//     restore id deletes the chunks of any other id (an interrupted
//     restore is superseded); a chunk is idempotent (INSERT OR REPLACE of
//     (id, seq)), so it ignores the session's sequence and may be
//     proposed again or out of order. The commit reassembles the file
//     from the chunks, checks count, size and SHA-256, then the file, and
//     swaps it in; the new database has no staging table. A refused
//     commit drops the staging table. _raftsql_meta.restore_done keeps the
//     id of the last restore that ended (committed or refused), so a late
//     duplicate of one of its chunks stages nothing.
//
// Everything here is a function of the entries' bytes and of the
// replicated state, so every node does the same: a file that is not a
// usable database, or whose schema could not be replicated, is refused as
// the entry's error result; the state stays as it was.

const stagingTable = "_raftsql_restore_chunks"

const stagingSQL = `CREATE TABLE IF NOT EXISTS _raftsql_restore_chunks(
	id INTEGER NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(id, seq))`

// isRestoreEntry reports whether e replaces the database (applied alone).
func isRestoreEntry(e consensus.Entry) bool {
	return e.Type == consensus.EntryNormal && len(e.Data) > 0 && (e.Data[0] == restoreVersion || e.Data[0] == commitVersion)
}

// applyChunk stages a restore chunk inside the batch transaction.
func (f *FSM) applyChunk(cmd Command) ([]Result, error) {
	w := f.w
	rc := cmd.RestoreChunk
	done, err := readMetaOr(w, "restore_done", 0)
	if err != nil {
		return nil, err
	}
	if done == rc.ID {
		return []Result{{Err: &SQLError{Code: CodeBadRestore, Message: fmt.Sprintf(
			"restore: chunk %d of restore %016x, which has already ended; nothing staged", rc.Seq, rc.ID)}}}, nil
	}
	if err := w.exec(stagingSQL); err != nil {
		return nil, err
	}
	if _, err := w.queryCached("DELETE FROM _raftsql_restore_chunks WHERE id <> ?", int64(rc.ID)); err != nil {
		return nil, err
	}
	if _, err := w.queryCached("INSERT OR REPLACE INTO _raftsql_restore_chunks(id, seq, data) VALUES (?, ?, ?)",
		int64(rc.ID), int64(rc.Seq), rc.Data); err != nil {
		return nil, err
	}
	return []Result{{}}, nil
}

// applyRestore applies a restore entry (whole file or commit) on its own
// (no transaction open).
func (f *FSM) applyRestore(e consensus.Entry) error {
	cmd, err := DecodeCommand(e.Data)
	if err != nil || (cmd.Restore == nil && cmd.RestoreCommit == nil) {
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
	rs := []Result{{}}
	var size int64
	if cmd.Restore != nil {
		if err := os.WriteFile(tmp, cmd.Restore, 0o644); err != nil {
			return fmt.Errorf("%w: entry %d: write restore file: %w", ErrApplyFailed, e.Index, err)
		}
		size = int64(len(cmd.Restore))
	} else {
		serr, err := f.assemble(tmp, cmd.RestoreCommit)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrApplyFailed, e.Index, err)
		}
		if serr != nil {
			f.log.Warn("fsm: restore commit refused", "index", e.Index, "restore", fmt.Sprintf("%016x", cmd.RestoreCommit.ID), "err", serr.Message)
			return f.recordWith(e, cmd, []Result{{Err: serr}}, true, func(c *sconn) error { return endStaging(c, cmd.RestoreCommit.ID) })
		}
		size = int64(cmd.RestoreCommit.Size)
		rs = []Result{{
			Columns: []Column{{Name: "index", DeclType: "INTEGER"}, {Name: "bytes", DeclType: "INTEGER"}},
			Rows:    [][]any{{int64(e.Index), size}},
		}}
	}
	serr, err := prepareRestoreFile(tmp, w, e, cmd, rs)
	if err != nil {
		return fmt.Errorf("%w: entry %d: %w", ErrApplyFailed, e.Index, err)
	}
	if serr != nil {
		f.log.Warn("fsm: restore entry refused", "index", e.Index, "err", serr)
		var extra func(*sconn) error
		if cmd.RestoreCommit != nil {
			extra = func(c *sconn) error { return endStaging(c, cmd.RestoreCommit.ID) }
		}
		return f.recordWith(e, cmd, []Result{{Err: serr}}, true, extra)
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
	f.log.Info("fsm: database replaced by a restore entry", "index", e.Index, "bytes", size)
	f.waiters.deliver(waiterKey{cmd.SessionID, cmd.Seq}, rs)
	if f.opts.OnRestore != nil {
		f.opts.OnRestore(e.Index)
	}
	return nil
}

// assemble writes the staged chunks of rc.ID to path and checks them
// against rc. serr is a refusal (a result, the same on every node); err a
// failure of this node.
func (f *FSM) assemble(path string, rc *RestoreCommit) (serr *SQLError, err error) {
	refuse := func(format string, args ...any) (*SQLError, error) {
		return &SQLError{Code: CodeBadRestore, Message: fmt.Sprintf("restore %016x: ", rc.ID) + fmt.Sprintf(format, args...)}, nil
	}
	w := f.w
	w.setBudget(f.maxSteps)
	rows, err := w.query("SELECT count(*) FROM sqlite_schema WHERE name = ?", stagingTable)
	if err != nil {
		return nil, err
	}
	if rows[0][0] != int64(1) {
		return refuse("no chunks are staged (0 of %d)", rc.Chunks)
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	s, err := w.prepareSingle("SELECT seq, data FROM _raftsql_restore_chunks WHERE id = ? ORDER BY seq")
	if err != nil {
		return nil, err
	}
	defer s.finalize()
	if serr := s.bind([]any{int64(rc.ID)}); serr != nil {
		return nil, serr
	}
	h := sha256.New()
	var n, size uint64
	var head []byte
	for {
		row, err := s.step()
		if err != nil {
			return nil, err
		}
		if !row {
			break
		}
		v := s.row(2)
		seq, _ := v[0].(int64)
		data, _ := v[1].([]byte)
		if uint64(seq) != n {
			return refuse("chunk %d is missing (found %d next)", n, seq)
		}
		if n == rc.Chunks {
			return refuse("more chunks are staged than the %d the commit names", rc.Chunks)
		}
		if len(head) < backup.HeaderSize {
			head = append(head, data[:min(len(data), backup.HeaderSize-len(head))]...)
		}
		if _, err := out.Write(data); err != nil {
			return nil, err
		}
		h.Write(data)
		n++
		size += uint64(len(data))
	}
	if n != rc.Chunks {
		return refuse("%d of %d chunks are staged", n, rc.Chunks)
	}
	if size != rc.Size {
		return refuse("the chunks hold %d bytes, the commit says %d", size, rc.Size)
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, rc.SHA256[:]) {
		return refuse("SHA-256 of the chunks is %x, the commit says %x", sum, rc.SHA256)
	}
	if err := backup.CheckHeader(head); err != nil {
		return refuse("%v", err)
	}
	if err := out.Sync(); err != nil {
		return nil, err
	}
	return nil, out.Close()
}

// endStaging drops the staging table and records id as ended (in the
// caller's transaction).
func endStaging(c *sconn, id uint64) error {
	if err := c.exec("DROP TABLE IF EXISTS " + stagingTable); err != nil {
		return err
	}
	return upsertMeta(c, "restore_done", int64(id))
}

// recordOnly applies e as rs without touching the data: the session (when
// store) and the applied index, in one transaction.
func (f *FSM) recordOnly(e consensus.Entry, cmd Command, rs []Result, store bool) error {
	return f.recordWith(e, cmd, rs, store, nil)
}

// recordWith is recordOnly that also runs extra (if not nil) in the same
// transaction.
func (f *FSM) recordWith(e consensus.Entry, cmd Command, rs []Result, store bool, extra func(*sconn) error) error {
	w := f.w
	w.setBudget(f.maxSteps)
	err := w.exec("BEGIN IMMEDIATE")
	if err == nil && extra != nil {
		err = extra(w)
	}
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

// restoreRefusal makes the refusal of a bad file (a result).
func restoreRefusal(format string, args ...any) *SQLError {
	return &SQLError{Code: CodeBadRestore, Message: "restore: " + fmt.Sprintf(format, args...)}
}

// restoreFileError turns an SQLite error caused by the file into a
// refusal; other errors are the node's.
func restoreFileError(what string, err error) (*SQLError, error) {
	var se *SQLError
	if errors.As(err, &se) {
		switch se.Code & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_ERROR, sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH:
			return restoreRefusal("%s: %s", what, se.Message), nil
		}
	}
	return nil, fmt.Errorf("restore: %s: %w", what, err)
}

// checkRestoreConn checks the database open on c the way a restore entry
// does: quick_check, and a schema the log can replicate.
func checkRestoreConn(c *sconn) (*SQLError, error) {
	rows, err := c.query("PRAGMA quick_check")
	if err != nil {
		return restoreFileError("check", err)
	}
	if len(rows) != 1 || rows[0][0] != "ok" {
		return restoreRefusal("the file fails quick_check: %v", rows), nil
	}
	schema, err := c.query("SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid")
	if err != nil {
		return restoreFileError("read schema", err)
	}
	for _, r := range schema {
		name, _ := r[1].(string)
		sql, _ := r[2].(string)
		if strings.HasPrefix(strings.ToLower(name), internalPrefix) {
			continue
		}
		if bad := checkStatement(sql, true); bad != nil {
			return restoreRefusal("%v %s cannot be replicated: %s", r[0], name, bad.Message), nil
		}
	}
	return nil, nil
}

// CheckRestoreFile checks, as a restore entry will, that the database at
// path can replace the state: it opens, passes quick_check, and its
// schema can be replicated. path must be a private copy (SQLite may
// create path-wal and path-shm while it is open); it is opened with
// query_only. A refusal is a *SQLError with CodeBadRestore.
func CheckRestoreFile(path string) error {
	c, err := openConn(path, sqlite3.SQLITE_OPEN_READWRITE, []string{"query_only=1"})
	if err != nil {
		serr, err := restoreFileError("open", err)
		if serr != nil {
			return serr
		}
		return err
	}
	defer c.close()
	serr, err := checkRestoreConn(c)
	if serr != nil {
		return serr
	}
	return err
}

// prepareRestoreFile checks the database at path and makes it the state
// at entry e: the fsm's tables with e's index, the current configuration
// and sessions (w's), and cmd's result rs in its session; no staging
// table; for a commit, restore_done = its id. serr is the refusal of a
// bad file (a result); err a failure of this node.
func prepareRestoreFile(path string, w *sconn, e consensus.Entry, cmd Command, rs []Result) (serr *SQLError, err error) {
	c, err := openConn(path, sqlite3.SQLITE_OPEN_READWRITE, nil)
	if err != nil {
		return restoreFileError("open", err)
	}
	defer c.close()
	if serr, err := checkRestoreConn(c); serr != nil || err != nil {
		return serr, err
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
		"DELETE FROM _raftsql_members; DELETE FROM _raftsql_sessions; DELETE FROM _raftsql_nodes; DELETE FROM _raftsql_table_writes;" +
		"DROP TABLE IF EXISTS " + stagingTable + ";"); err != nil {
		return restoreFileError("prepare", err)
	}
	for _, m := range members {
		if _, err := c.queryCached("INSERT INTO _raftsql_members(id, addr, voter) VALUES (?, ?, ?)", m...); err != nil {
			return restoreFileError("members", err)
		}
	}
	for _, n := range nodes {
		if _, err := c.queryCached("INSERT INTO _raftsql_nodes(id, http_addr, pg_addr) VALUES (?, ?, ?)", n...); err != nil {
			return restoreFileError("nodes", err)
		}
	}
	for _, s := range sessions {
		if _, err := c.queryCached("INSERT INTO _raftsql_sessions(session_id, last_seq, result, updated) VALUES (?, ?, ?, ?)", s...); err != nil {
			return restoreFileError("sessions", err)
		}
	}
	if cmd.SessionID != 0 {
		if err := finishSession(c, cmd, rs); err != nil {
			return restoreFileError("sessions", err)
		}
	}
	if err := setMeta(c, "conf_index", int64(confIndex)); err != nil {
		return restoreFileError("meta", err)
	}
	if err := setMeta(c, "last_write_index", int64(e.Index)); err != nil {
		return restoreFileError("meta", err)
	}
	if err := setMeta(c, "last_schema_index", int64(e.Index)); err != nil {
		return restoreFileError("meta", err)
	}
	if err := setMeta(c, "tables_since", int64(e.Index)); err != nil {
		return restoreFileError("meta", err)
	}
	if cmd.RestoreCommit != nil {
		if err := upsertMeta(c, "restore_done", int64(cmd.RestoreCommit.ID)); err != nil {
			return restoreFileError("meta", err)
		}
		if err := upsertMeta(c, "restore_applied", int64(cmd.RestoreCommit.ID)); err != nil {
			return restoreFileError("meta", err)
		}
	}
	if err := setApplied(c, e.Index, e.Term); err != nil {
		return restoreFileError("meta", err)
	}
	if err := c.exec("COMMIT"); err != nil {
		return restoreFileError("commit", err)
	}
	return nil, nil
}

// LastRestore returns the id of the last chunked restore whose commit
// replaced the database (0: none), as of the applied state. A node that
// bootstraps from a file (raftsqld --restore) uses it to tell, after a
// crash, whether its restore was already applied.
func (f *FSM) LastRestore(ctx context.Context) (uint64, error) {
	rs, err := f.Query(ctx, []Statement{{SQL: "SELECT value FROM _raftsql_meta WHERE key = 'restore_applied'"}})
	if err != nil {
		return 0, err
	}
	if rs[0].Err != nil {
		return 0, rs[0].Err
	}
	if len(rs[0].Rows) == 0 {
		return 0, nil
	}
	v, _ := rs[0].Rows[0][0].(int64)
	return uint64(v), nil
}

// readMetaOr reads an optional _raftsql_meta key (def when absent).
func readMetaOr(c *sconn, key string, def uint64) (uint64, error) {
	rows, err := c.queryCached("SELECT value FROM _raftsql_meta WHERE key = ?", key)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return def, nil
	}
	v, _ := rows[0][0].(int64)
	return uint64(v), nil
}

// upsertMeta sets an optional _raftsql_meta key.
func upsertMeta(c *sconn, key string, v int64) error {
	_, err := c.queryCached("INSERT INTO _raftsql_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, v)
	return err
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
