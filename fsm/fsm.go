package fsm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftsql/raftsql/consensus"
	sqlite3 "modernc.org/sqlite/lib"
)

// DBFile is the name of the SQLite database inside the FSM's directory.
const DBFile = "raftsql.db"

// SessionTTL is how long a session's last result is kept after its last
// command, measured in the commands' own clock (Command.UnixMicro), so that
// every node expires the same sessions at the same entry. A retry older
// than this is applied again.
const SessionTTL = time.Hour

// MaxEntrySteps bounds the work of one entry in SQLite virtual machine
// steps (counted, not timed, so every node stops the same statement at the
// same point). A statement that exceeds it fails with CodeStepLimit. It
// must be the same on every node, hence a constant. 10^8 steps is a few
// seconds of work (about a million rows inserted by one statement); a
// runaway statement stalls the log that long, not forever.
const MaxEntrySteps = 100_000_000

// Options configures an FSM.
type Options struct {
	// Logger receives the FSM's logs; nil discards them.
	Logger *slog.Logger
	// ReadConns is the size of the read pool (default 4).
	ReadConns int
	// OnRestore, when set, is called from Apply after a restore entry
	// replaced the database (not after a snapshot install), with the
	// entry's index; it must return at once. The node uses it to take a
	// snapshot, so the restore's chunks leave the log.
	OnRestore func(index uint64)
}

// FSM is the SQLite state machine of one node. Apply is called by the Raft
// driver from one goroutine; every other method may be called from any
// goroutine at any time.
type FSM struct {
	dir  string
	path string
	log  *slog.Logger
	opts Options

	// wmu serialises the writer: Apply, Restore, Close, and Preview,
	// which runs on pv (a connection of its own) under it, so that it
	// never holds SQLite's write lock while Apply wants it.
	wmu ctxMutex
	w   *sconn
	pv  *sconn
	// previews counts Preview calls, to seed each one's PRNG.
	previews atomic.Uint64

	// rmu: readers (Query, Describe, Snapshot) hold it shared while they
	// use the pool; Restore and Close hold it exclusively to swap or close
	// the connections. Lock order: wmu before rmu.
	rmu   sync.RWMutex
	pool  chan *sconn
	reads []*sconn // every read-only connection, the pools' and pvReads'
	// pvReads holds query_only connections with the clock and random
	// overrides, for previews that only read (no wmu needed).
	pvReads chan *sconn
	closed  bool // under wmu and rmu (written with both held)
	// isClosed mirrors closed for callers that must not wait for rmu.
	isClosed atomic.Bool

	// maxSteps is MaxEntrySteps (tests lower it).
	maxSteps int64

	applied atomic.Uint64
	// lastWrite is last_write_index as committed (LastWriteIndex);
	// batchLW its value inside the batch being applied (under wmu).
	lastWrite atomic.Uint64
	batchLW   uint64
	// lastSchema is last_schema_index (DDL, restores) as committed;
	// batchSchema its value inside the batch being applied.
	lastSchema  atomic.Uint64
	batchSchema uint64
	// tablesSince is tables_since as committed (0: not yet), batchSince
	// its value inside the batch being applied; see conflict.
	tablesSince atomic.Uint64
	batchSince  uint64
	amu         sync.Mutex
	achange     chan struct{} // closed and replaced whenever applied moves

	waiters waiterMap
}

type batchDelivery struct {
	key     waiterKey
	results []Result
}

var writerPragmas = []string{
	"journal_mode=WAL",
	// Durability comes from the Raft log: after a crash the driver
	// replays from the applied index kept in the database.
	"synchronous=NORMAL",
	"foreign_keys=ON",
}

var previewPragmas = []string{"foreign_keys=ON"}

var readerPragmas = []string{
	// A statement misclassified as a read can never change this replica
	// behind Raft's back.
	"query_only=1",
	"foreign_keys=ON",
}

const schemaSQL = `
CREATE TABLE IF NOT EXISTS _raftsql_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _raftsql_sessions(
	session_id INTEGER PRIMARY KEY,
	last_seq INTEGER NOT NULL,
	result BLOB NOT NULL,
	updated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS _raftsql_sessions_updated ON _raftsql_sessions(updated);
CREATE TABLE IF NOT EXISTS _raftsql_members(id TEXT PRIMARY KEY, addr TEXT NOT NULL, voter INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _raftsql_nodes(id TEXT PRIMARY KEY, http_addr TEXT NOT NULL, pg_addr TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _raftsql_table_writes(tbl TEXT PRIMARY KEY, idx INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO _raftsql_meta(key, value) VALUES ('applied_index', 0), ('applied_term', 0), ('conf_index', 0), ('last_write_index', 0);
INSERT OR IGNORE INTO _raftsql_meta(key, value) SELECT 'last_schema_index', value FROM _raftsql_meta WHERE key = 'last_write_index';
INSERT OR IGNORE INTO _raftsql_meta(key, value) SELECT 'tables_since', iif(value = 0, 1, 0) FROM _raftsql_meta WHERE key = 'applied_index';
`

// Open opens (creating if needed) the database in dir.
func Open(ctx context.Context, dir string, opts Options) (*FSM, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fsm: %w", err)
	}
	f := &FSM{
		dir:      dir,
		path:     filepath.Join(dir, DBFile),
		log:      opts.Logger,
		opts:     opts,
		achange:  make(chan struct{}),
		wmu:      newCtxMutex(),
		maxSteps: MaxEntrySteps,
	}
	f.waiters.m = map[waiterKey]*Waiter{}
	// A restore or snapshot interrupted by a crash leaves temp files.
	removeDB(f.path + restoreSuffix)
	if stale, err := filepath.Glob(filepath.Join(dir, "snapshot-*.db")); err == nil {
		for _, p := range stale {
			removeDB(p)
		}
	}
	if err := f.openConns(); err != nil {
		return nil, err
	}
	f.log.Info("fsm opened", "path", f.path, "applied_index", f.applied.Load())
	return f, nil
}

// openConns opens the writer and the read pool and loads the applied
// index. Called with wmu and rmu held (or before f is shared).
func (f *FSM) openConns() error {
	w, err := openConn(f.path, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_CREATE, writerPragmas)
	if err != nil {
		return err
	}
	if err := w.exec("BEGIN IMMEDIATE;" + schemaSQL + "COMMIT;"); err != nil {
		_ = w.exec("ROLLBACK")
		w.close()
		return fmt.Errorf("fsm: create internal tables in %s: %w", f.path, err)
	}
	idx, err := readMeta(w, "applied_index")
	if err != nil {
		w.close()
		return fmt.Errorf("fsm: %s: %w", f.path, err)
	}
	lw, err := readMeta(w, "last_write_index")
	if err != nil {
		w.close()
		return fmt.Errorf("fsm: %s: %w", f.path, err)
	}
	f.lastWrite.Store(lw)
	ls, err := readMeta(w, "last_schema_index")
	if err != nil {
		w.close()
		return fmt.Errorf("fsm: %s: %w", f.path, err)
	}
	f.lastSchema.Store(ls)
	since, err := readMeta(w, "tables_since")
	if err != nil {
		w.close()
		return fmt.Errorf("fsm: %s: %w", f.path, err)
	}
	f.tablesSince.Store(since)
	// changes() in a statement reports the connection's last INSERT,
	// UPDATE or DELETE. Every entry ends with setApplied (two rows), so
	// the next entry starts with changes() = 2; make a fresh connection
	// start the same way, or a node that restarted would differ.
	if err := w.exec("UPDATE _raftsql_meta SET value = value WHERE key IN ('applied_index', 'applied_term')"); err != nil {
		w.close()
		return fmt.Errorf("fsm: %s: %w", f.path, err)
	}
	if err := w.enableBudget(f.maxSteps); err != nil {
		w.close()
		return err
	}
	if err := w.enableEntropy(); err != nil {
		w.close()
		return err
	}
	w.enableWriteTracking()
	f.w = w
	pv, err := openConn(f.path, sqlite3.SQLITE_OPEN_READWRITE, previewPragmas)
	if err == nil {
		err = pv.enableBudget(f.maxSteps)
		if err == nil {
			err = pv.enableEntropy()
		}
		if err != nil {
			pv.close()
		} else {
			pv.enableReadTracking()
		}
	}
	if err != nil {
		w.close()
		return err
	}
	f.pv = pv
	f.pool = make(chan *sconn, f.opts.ReadConns)
	f.reads = nil
	for range f.opts.ReadConns {
		r, err := openConn(f.path, sqlite3.SQLITE_OPEN_READWRITE, readerPragmas)
		if err != nil {
			f.closeConns()
			return err
		}
		f.reads = append(f.reads, r)
		f.pool <- r
	}
	f.pvReads = make(chan *sconn, previewReaders)
	for range previewReaders {
		r, err := openConn(f.path, sqlite3.SQLITE_OPEN_READWRITE, readerPragmas)
		if err == nil {
			f.reads = append(f.reads, r)
			err = r.enableBudget(f.maxSteps)
		}
		if err == nil {
			err = r.enableEntropy()
		}
		if err != nil {
			f.closeConns()
			return err
		}
		r.enableReadTracking()
		f.pvReads <- r
	}
	f.setApplied(idx)
	return nil
}

// closeConns closes every connection; with wmu and rmu held.
func (f *FSM) closeConns() error {
	var errs []error
	for _, r := range f.reads {
		if err := r.close(); err != nil {
			errs = append(errs, err)
		}
	}
	f.reads = nil
	f.pool = nil
	f.pvReads = nil
	if f.pv != nil {
		if err := f.pv.close(); err != nil {
			errs = append(errs, err)
		}
		f.pv = nil
	}
	if f.w != nil {
		if err := f.w.close(); err != nil {
			errs = append(errs, err)
		}
		f.w = nil
	}
	return errors.Join(errs...)
}

// Close closes the database. Pending waiters get ErrClosed.
func (f *FSM) Close() error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.rmu.Lock()
	defer f.rmu.Unlock()
	if f.closed {
		return nil
	}
	f.markClosed()
	f.waiters.failAll(ErrClosed)
	return f.closeConns()
}

// Dir returns the directory of the database.
func (f *FSM) Dir() string { return f.dir }

// AppliedIndex returns the index of the last entry applied (committed to
// SQLite).
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

func (f *FSM) setApplied(idx uint64) {
	f.amu.Lock()
	f.applied.Store(idx)
	close(f.achange)
	f.achange = make(chan struct{})
	f.amu.Unlock()
}

// markClosed marks the FSM closed (with wmu and rmu held) and wakes
// WaitApplied callers.
func (f *FSM) markClosed() {
	f.closed = true
	f.isClosed.Store(true)
	f.setApplied(f.applied.Load())
}

// WaitApplied blocks until the applied index is at least index (for
// read-index reads), ctx ends, or the FSM is closed.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.amu.Lock()
		ch := f.achange
		cur := f.applied.Load()
		f.amu.Unlock()
		if cur >= index {
			return nil
		}
		if f.isClosed.Load() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fsm: waiting for index %d (applied %d): %w", index, cur, ctx.Err())
		}
	}
}

// Apply applies committed entries in log order, in one SQLite transaction
// together with the new applied index (a restore entry, or a statement
// that makes SQLite abort the transaction, splits the batch; see doc.go).
// Entries at or below the applied index are skipped (a replay after a
// crash); the first new entry must be the next index (ErrIndexGap
// otherwise). A failing statement is a result, never an error; an error
// (wrapping ErrApplyFailed) means SQLite itself failed and the entries
// from the failed transaction on are not applied (AppliedIndex tells
// where it stopped): the node must not go on.
func (f *FSM) Apply(ctx context.Context, entries []consensus.Entry) error {
	if err := f.wmu.LockCtx(ctx); err != nil {
		return err
	}
	defer f.wmu.Unlock()
	if f.w == nil {
		return ErrClosed
	}
	applied := f.applied.Load()
	start := 0
	for start < len(entries) && entries[start].Index <= applied {
		start++
	}
	entries = entries[start:]
	if len(entries) == 0 {
		return nil
	}
	for i, e := range entries {
		if e.Index != applied+1+uint64(i) {
			return fmt.Errorf("%w: applied %d, got entry %d at position %d", ErrIndexGap, applied, e.Index, i)
		}
	}
	// A restore entry replaces the database: the entries before it commit
	// first, the ones after it go into a new transaction.
	for len(entries) > 0 {
		n := slices.IndexFunc(entries, isRestoreEntry)
		if n < 0 {
			n = len(entries)
		}
		if n == 0 {
			if err := f.applyRestore(entries[0]); err != nil {
				return err
			}
			entries = entries[1:]
			continue
		}
		err := f.applyBatch(entries[:n])
		var ab *batchAbort
		if errors.As(err, &ab) {
			// A statement rolled back the whole transaction: redo the
			// entries before it, then record it alone as failed. Every
			// node ends with the same state however it batched.
			if ab.at > 0 {
				if err := f.applyBatch(entries[:ab.at]); err != nil {
					return fmt.Errorf("%w: redoing entries %d..%d: %w", ErrApplyFailed, entries[0].Index, entries[ab.at-1].Index, err)
				}
			}
			if err := f.recordOnly(entries[ab.at], ab.cmd, ab.results, true); err != nil {
				return err
			}
			entries = entries[ab.at+1:]
			continue
		}
		if err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// batchAbort: the entry at position at made SQLite roll back the batch.
type batchAbort struct {
	at      int
	cmd     Command
	results []Result
}

func (b *batchAbort) Error() string {
	return fmt.Sprintf("fsm: entry at position %d rolled back its batch", b.at)
}

// applyBatch applies entries (none a restore) in one transaction.
func (f *FSM) applyBatch(entries []consensus.Entry) error {
	w := f.w
	if err := w.exec("BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("%w: begin: %w", ErrApplyFailed, err)
	}
	var out []batchDelivery
	f.batchLW = f.lastWrite.Load()
	f.batchSchema = f.lastSchema.Load()
	f.batchSince = f.tablesSince.Load()
	for i, e := range entries {
		w.setBudget(f.maxSteps)
		switch {
		case e.Type == consensus.EntryConfChange:
			err := f.applyConfChange(e)
			if err == nil {
				err = setMeta(w, "conf_index", int64(e.Index))
			}
			if err != nil {
				_ = w.exec("ROLLBACK")
				return fmt.Errorf("%w: entry %d: %w", ErrApplyFailed, e.Index, err)
			}
		case e.Type == consensus.EntryNormal && len(e.Data) == 0:
			// The leader's no-op: only the index moves.
		case e.Type == consensus.EntryNormal:
			cmd, derr := DecodeCommand(e.Data)
			var rs []Result
			var err error
			var wrote, ddl bool
			if derr == nil && (cmd.Restore != nil || cmd.RestoreCommit != nil) {
				derr = errors.New("a restore command must be applied on its own") // unreachable: Apply splits batches
			}
			switch {
			case derr != nil:
				f.log.Warn("fsm: corrupt command in committed entry", "index", e.Index, "err", derr)
				rs, err = f.applyBroken(cmd, derr)
			case cmd.Node != nil:
				rs, err = f.applyNode(cmd)
			case cmd.RestoreChunk != nil:
				rs, err = f.applyChunk(cmd)
			default:
				w.entropy.reset(cmd.UnixMicro, entrySeed(e.Index, e.Term))
				var tables tableSet
				rs, wrote, ddl, tables, err = f.applyCommand(cmd, e.Index)
				if err == nil && wrote {
					err = recordTableWrites(w, tables, e.Index)
				}
			}
			if err == nil && wrote {
				err = setMeta(w, "last_write_index", int64(e.Index))
				f.batchLW = e.Index
			}
			if err == nil && ddl {
				err = setMeta(w, "last_schema_index", int64(e.Index))
				f.batchSchema = e.Index
			}
			if errors.Is(err, errTxnLost) && w.autocommit() {
				return &batchAbort{at: i, cmd: cmd, results: rs}
			}
			if err != nil {
				if !w.autocommit() {
					_ = w.exec("ROLLBACK")
				}
				return fmt.Errorf("%w: entry %d: %w", ErrApplyFailed, e.Index, err)
			}
			out = append(out, batchDelivery{key: waiterKey{cmd.SessionID, cmd.Seq}, results: rs})
		default:
			f.log.Warn("fsm: unknown entry type, recording its index only", "index", e.Index, "type", e.Type)
		}
		// The index moves with every entry, not once per batch: the
		// sequence of B-tree operations, and so the database bytes, must
		// not depend on how the driver happened to batch the entries.
		if err := setApplied(w, e.Index, e.Term); err != nil {
			_ = w.exec("ROLLBACK")
			return fmt.Errorf("%w: entry %d: %w", ErrApplyFailed, e.Index, err)
		}
	}
	last := entries[len(entries)-1]
	err := w.exec("COMMIT")
	if err != nil {
		if !w.autocommit() {
			_ = w.exec("ROLLBACK")
		}
		return fmt.Errorf("%w: commit of entries %d..%d: %w", ErrApplyFailed, entries[0].Index, last.Index, err)
	}
	f.lastWrite.Store(f.batchLW)
	f.lastSchema.Store(f.batchSchema)
	f.tablesSince.Store(f.batchSince)
	f.setApplied(last.Index)
	for _, d := range out {
		f.waiters.deliver(d.key, d.results)
	}
	return nil
}

// applyBroken records a command that could not be decoded: an error result
// for its session, if its header was readable.
func (f *FSM) applyBroken(cmd Command, derr error) ([]Result, error) {
	rs := []Result{{Err: &SQLError{Code: CodeCorruptCommand, Message: derr.Error()}}}
	if cmd.SessionID == 0 {
		return rs, nil
	}
	if prev, ok, err := f.dedup(cmd); err != nil || ok {
		return prev, err
	}
	return rs, finishSession(f.w, cmd, rs)
}

// applyCommand applies one command inside the batch transaction, in a
// savepoint of its own. It returns the command's results, whether it
// changed the database (it committed and a statement changed rows or
// the schema, see execWrite: last_write_index moves), whether it ran
// DDL (last_schema_index moves) and the tables whose rows it changed; an
// error means SQLite failed (not the command's SQL).
func (f *FSM) applyCommand(cmd Command, index uint64) (_ []Result, wrote, ddl bool, tables tableSet, _ error) {
	if cmd.SessionID != 0 {
		if prev, ok, err := f.dedup(cmd); err != nil || ok {
			return prev, false, false, nil, err
		}
	}
	w := f.w
	if cmd.ReadVersion != 0 {
		cerr, err := f.conflict(cmd, index)
		if err != nil {
			return nil, false, false, nil, err
		}
		if cerr != nil {
			rs := []Result{{Err: cerr}}
			if cmd.SessionID != 0 {
				if err := finishSession(w, cmd, rs); err != nil {
					return nil, false, false, nil, err
				}
			}
			return rs, false, false, nil, nil
		}
	}
	if _, err := w.queryCached("SAVEPOINT raftsql_entry"); err != nil {
		return nil, false, false, nil, err
	}
	results := make([]Result, 0, len(cmd.Stmts))
	failed := false
	w.startWrites()
	for _, st := range cmd.Stmts {
		r, changed, err := execWrite(w, st)
		if errors.Is(err, errTxnLost) {
			w.stopWrites()
			return append(results, r), false, false, nil, err
		}
		if err != nil {
			w.stopWrites()
			return nil, false, false, nil, err
		}
		results = append(results, r)
		if r.Err != nil {
			failed = true
			break
		}
		wrote = wrote || changed
		ddl = ddl || (changed && !isDML(st.SQL))
	}
	tables = w.stopWrites()
	w.setBudget(f.maxSteps) // the fsm's own statements below are not the entry's work
	if !failed && w.deferredFKs() {
		// A deferred foreign key is unresolved at the end of the unit:
		// PostgreSQL fails the COMMIT; so does this entry.
		failed = true
		ferr := &SQLError{Code: 787, Message: "FOREIGN KEY constraint failed"}
		if len(results) == 0 {
			results = append(results, Result{})
		}
		results[len(results)-1].Err = ferr
	}
	if failed {
		wrote, ddl, tables = false, false, nil
		if _, err := w.queryCached("ROLLBACK TO raftsql_entry"); err != nil {
			return nil, false, false, nil, err
		}
		// A statement failure never ends SQLite's transaction (ROLLBACK
		// resolution is refused), but make sure of it.
	}
	if _, err := w.queryCached("RELEASE raftsql_entry"); err != nil {
		return nil, false, false, nil, err
	}
	if cmd.SessionID != 0 {
		if err := finishSession(w, cmd, results); err != nil {
			return nil, false, false, nil, err
		}
	}
	return results, wrote, ddl, tables, nil
}

// conflict decides whether cmd (with a ReadVersion), the entry at index,
// must fail: without ReadTables, if anything changed the database after
// its version; with them, if the schema changed (DDL, a restore) or one
// of its tables did.
//
// Per-table write indexes are complete from tables_since on: 1 for a
// database this version created empty (every write was tracked). A
// database an older fsm wrote (an upgrade) has none recorded before its
// upgrade, and nodes upgrade at different indexes; its tables_since is
// 0 until the first entry with ReadTables (proposed once every node runs
// this version: older ones cannot decode it) sets it to that entry's
// index, the same on every node. A command whose ReadVersion is below
// tables_since gets the global check.
func (f *FSM) conflict(cmd Command, index uint64) (*SQLError, error) {
	rv := cmd.ReadVersion
	if len(cmd.ReadTables) > 0 && f.batchSince == 0 {
		if err := setMeta(f.w, "tables_since", int64(index)); err != nil {
			return nil, err
		}
		f.batchSince = index
	}
	if len(cmd.ReadTables) == 0 || rv < f.batchSince || slices.Contains(cmd.ReadTables, allTables) {
		if f.batchLW > rv {
			return conflictError(rv, f.batchLW), nil
		}
		return nil, nil
	}
	if f.batchSchema > rv {
		return &SQLError{Code: CodeConflict, Message: fmt.Sprintf(
			"could not serialize access: the schema changed since the transaction read it (read at index %d, changed at index %d)", rv, f.batchSchema)}, nil
	}
	t, at, err := tableConflict(f.w, cmd.ReadTables, rv)
	if err != nil || t == "" {
		return nil, err
	}
	return &SQLError{Code: CodeConflict, Message: fmt.Sprintf(
		"could not serialize access: table %s changed since the transaction read it (read at index %d, changed at index %d)", t, rv, at)}, nil
}

func conflictError(readVersion, lastWrite uint64) *SQLError {
	return &SQLError{Code: CodeConflict, Message: fmt.Sprintf(
		"could not serialize access: the database changed since the transaction read it (read at index %d, changed at index %d)", readVersion, lastWrite)}
}

// LastWriteIndex returns the index of the last applied entry that changed
// the database (a write that committed, a restore); no-ops,
// configuration changes and failed or read-only entries leave it. A
// Command whose ReadVersion is below it at its own entry fails with
// CodeConflict.
func (f *FSM) LastWriteIndex() uint64 { return f.lastWrite.Load() }

// dedup reports whether cmd was already applied for its session, and then
// the results to return instead.
func (f *FSM) dedup(cmd Command) ([]Result, bool, error) {
	rows, err := f.w.queryCached("SELECT last_seq, result FROM _raftsql_sessions WHERE session_id = ?", int64(cmd.SessionID))
	if err != nil || len(rows) == 0 {
		return nil, false, err
	}
	last := uint64(rows[0][0].(int64))
	if cmd.Seq > last {
		return nil, false, nil
	}
	if cmd.Seq < last {
		return []Result{{Err: &SQLError{Code: CodeStaleSequence, Message: fmt.Sprintf("sequence %d of session %d is older than the last applied (%d); its result is gone", cmd.Seq, cmd.SessionID, last)}}}, true, nil
	}
	blob, _ := rows[0][1].([]byte)
	rs, derr := decodeResults(blob)
	if derr != nil {
		rs = []Result{{Err: &SQLError{Code: CodeCorruptCommand, Message: derr.Error()}}}
	}
	return rs, true, nil
}

// MaxStoredResult bounds the stored copy of a session's last results (in
// encoded bytes). Results larger than that are stored without their rows
// (RETURNING rows): the first delivery has them all, but a retry of that
// write (same session and sequence) returns the columns, RowsAffected,
// LastInsertID and errors only — no rows. It must be the same on every
// node, hence a constant.
const MaxStoredResult = 32 << 10

// storedResults is the stored copy of rs: rs itself, or without rows when
// it would exceed MaxStoredResult.
func storedResults(rs []Result) []byte {
	b := encodeResults(rs)
	if len(b) <= MaxStoredResult {
		return b
	}
	trimmed := make([]Result, len(rs))
	for i, r := range rs {
		r.Rows = nil
		trimmed[i] = r
	}
	return encodeResults(trimmed)
}

// finishSession stores the result of cmd as its session's last, then
// expires sessions idle for more than SessionTTL as of cmd's time.
func finishSession(c *sconn, cmd Command, rs []Result) error {
	_, err := c.queryCached(`INSERT INTO _raftsql_sessions(session_id, last_seq, result, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT(session_id) DO UPDATE SET last_seq = excluded.last_seq, result = excluded.result, updated = excluded.updated`,
		int64(cmd.SessionID), int64(cmd.Seq), storedResults(rs), cmd.UnixMicro)
	if err != nil {
		return err
	}
	if cmd.UnixMicro > 0 {
		_, err = c.queryCached("DELETE FROM _raftsql_sessions WHERE updated < ?", cmd.UnixMicro-SessionTTL.Microseconds())
	}
	return err
}

// isFatal reports whether a SQLite error code means the node (disk,
// memory, file) failed rather than the statement: such an error must stop
// the batch, because another node would not see it.
func isFatal(code int) bool {
	switch code & 0xff {
	case sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT,
		sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
		sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_INTERRUPT,
		sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOLFS:
		return true
	}
	return false
}

// sqlResult turns an error of a statement into its result, or returns it
// as fatal.
func sqlResult(err error) (*SQLError, error) {
	var se *SQLError
	if errors.As(err, &se) {
		if isFatal(se.Code) && se.Code < 1000<<8 {
			return nil, err
		}
		return se, nil
	}
	return nil, err
}

// execWrite runs one statement of a command on the writer (or the
// preview connection); changed reports whether the statement may have
// changed the database: it is not read-only (sqlite3_stmt_readonly) and
// either changed rows (triggers and cascades included) or is not
// INSERT/UPDATE/DELETE/REPLACE (DDL, ANALYZE, …). An UPDATE that matched
// nothing or an INSERT … DO NOTHING that did nothing changed nothing.
func execWrite(w *sconn, st Statement) (_ Result, changed bool, _ error) {
	if serr := checkStatement(st.SQL, true); serr != nil {
		return Result{Err: serr}, false, nil
	}
	before := w.totalChanges()
	r, ro, err := runStatementRO(context.Background(), w, st)
	changed = !ro && (w.totalChanges() != before || !isDML(st.SQL))
	if err != nil {
		if w.budgetExceeded() {
			r.Err = &SQLError{Code: CodeStepLimit, Message: fmt.Sprintf("statement exceeded the limit of %d steps for one write", MaxEntrySteps)}
		} else {
			se, ferr := sqlResult(err)
			if ferr != nil {
				return Result{}, false, ferr
			}
			r.Err = se
		}
		if w.autocommit() {
			// SQLite rolled back the whole batch (an interrupted write
			// does that): the caller redoes the batch without this entry.
			return r, changed, errTxnLost
		}
	}
	return r, changed, nil
}

// runStatement prepares, binds and runs st on c, collecting its rows.
func runStatement(ctx context.Context, c *sconn, st Statement) (Result, error) {
	r, _, err := runStatementRO(ctx, c, st)
	return r, err
}

// runStatementRO is runStatement that also reports whether the statement
// is read-only.
func runStatementRO(ctx context.Context, c *sconn, st Statement) (Result, bool, error) {
	s, release, err := c.stmt(st.SQL)
	if err != nil {
		return Result{}, true, err
	}
	defer release()
	if s == nil {
		if len(st.Args) != 0 {
			return Result{}, true, &SQLError{Code: CodeBadParameter, Message: fmt.Sprintf("empty statement given %d parameters", len(st.Args))}
		}
		return Result{}, true, nil
	}
	ro := s.readOnly()
	r, err := runPrepared(ctx, c, s, st.Args)
	return r, ro, err
}

// runPrepared binds args to s and runs it, collecting its rows.
// RowsAffected and LastInsertID are set only when the statement changed
// rows (they are part of stored results, so they must not depend on what
// the connection did before).
func runPrepared(ctx context.Context, c *sconn, s *sstmt, args []any) (Result, error) {
	var r Result
	if serr := s.bind(args); serr != nil {
		return r, serr
	}
	r.Columns = s.columns()
	before := c.totalChanges()
	c.setLastInsertID(0)
	for n := 0; ; n++ {
		if n%256 == 255 {
			if err := ctx.Err(); err != nil {
				return Result{}, err
			}
		}
		var row bool
		var err error
		if n == 0 {
			row, err = s.firstStep()
		} else {
			row, err = s.step()
		}
		if n == 0 && err == nil {
			// The first step re-prepares a statement whose schema
			// changed since it was prepared (a cached one): its columns
			// are known for sure only now.
			r.Columns = s.columns()
		}
		if err != nil {
			return r, err
		}
		if !row {
			break
		}
		r.Rows = append(r.Rows, s.row(len(r.Columns)))
	}
	if c.totalChanges() != before {
		r.RowsAffected = c.changes()
		r.LastInsertID = c.lastInsertID()
	}
	return r, nil
}

// query runs an internal statement with args and returns its rows.
func (c *sconn) query(sql string, args ...any) ([][]any, error) {
	r, err := runStatement(context.Background(), c, Statement{SQL: sql, Args: args})
	return r.Rows, err
}

// queryCached is query with the statement kept prepared on c.
func (c *sconn) queryCached(sql string, args ...any) ([][]any, error) {
	s, err := c.cached(sql)
	if err != nil {
		return nil, err
	}
	defer s.reset()
	r, err := runPrepared(context.Background(), c, s, args)
	return r.Rows, err
}

func readMeta(c *sconn, key string) (uint64, error) {
	rows, err := c.query("SELECT value FROM _raftsql_meta WHERE key = ?", key)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, fmt.Errorf("no %s in _raftsql_meta", key)
	}
	v, ok := rows[0][0].(int64)
	if !ok {
		return 0, fmt.Errorf("%s in _raftsql_meta is %T", key, rows[0][0])
	}
	return uint64(v), nil
}

func setApplied(c *sconn, index, term uint64) error {
	_, err := c.queryCached("UPDATE _raftsql_meta SET value = iif(key = 'applied_index', ?, ?) WHERE key IN ('applied_index', 'applied_term')", int64(index), int64(term))
	return err
}

func setMeta(c *sconn, key string, v int64) error {
	_, err := c.query("UPDATE _raftsql_meta SET value = ? WHERE key = ?", v, key)
	return err
}
