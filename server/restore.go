package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/raftsql/raftsql/backup"
	"github.com/raftsql/raftsql/fsm"
)

// Restore through the log, any size (issue 6): the node that receives a
// file (POST /restore, or raftsqld --restore) keeps it in a private temp
// file, checks it (backup.Validate, fsm.CheckRestoreFile), then proposes
// it as backup.Chunks(size) RestoreChunk entries, restoreWorkers at a time
// (each proposed again after a leader change or a long silence; a chunk is
// idempotent in the fsm), then one RestoreCommit with the size and SHA-256
// (exactly once, by session and sequence). The fsm stages the chunks inside the database and swaps the
// file in at the commit, on every node; until then the old state serves.
// Any node can drive a restore: a follower's proposals go to the leader
// through Raft.

// Errors of restores.
var (
	// errRestoreBusy: this node is already running a restore.
	errRestoreBusy = errors.New("a restore is already running on this node; wait for it to finish")
	// errRestoreRefused: the file, or the commit, was refused; nothing
	// changed.
	errRestoreRefused = errors.New("refused, nothing changed")
	// errNoSpace: the data directory's disk cannot hold the restore.
	errNoSpace = errors.New("not enough free disk space for the restore")
)

// restoreWorkers is how many chunk proposals are in flight at once.
const restoreWorkers = 8

// A chunk proposal is proposed again after a leader change, or when no
// result came for restoreAttempts × the engine's attempt timeout (a
// proposal lost on the way); unlike a small write, a 1 MiB chunk can take
// seconds to commit on a loaded machine, and proposing it again early only
// adds load. One proposal gives up after restoreProposalTimeout (503).
const (
	restoreAttempts        = 10
	restoreProposalTimeout = 2 * time.Minute
)

// restoreDiskFactor: a restore of N bytes needs about this many times N
// free on a node: the received copy, the staged chunks (WAL, then the
// database) and the reassembled file.
const restoreDiskFactor = 3

// restorePendingFile, in the data directory, marks a --restore that has
// not completed: it holds the restore id (hex) and the source path.
const restorePendingFile = "restore-pending"

// restoreResult is the body of a successful POST /restore.
type restoreResult struct {
	Status string `json:"status"`
	Bytes  int64  `json:"bytes"`
	Index  uint64 `json:"index"`
}

// restorer runs this node's restores, one at a time.
type restorer struct {
	s    *Server
	busy chan struct{}
	// pending is set while a --restore has not completed (/readyz).
	pending atomic.Bool
}

func newRestorer(s *Server) *restorer {
	return &restorer{s: s, busy: make(chan struct{}, 1)}
}

// restoreStatus maps a restore error to an HTTP status.
func restoreStatus(err error) int {
	switch {
	case errors.Is(err, errRestoreBusy):
		return http.StatusConflict
	case errors.Is(err, errNoSpace):
		// Before ErrTooLarge: upload's body limit is the free disk space,
		// so a body over it wraps both and is a 507, as when its
		// Content-Length already says so.
		return http.StatusInsufficientStorage
	case errors.Is(err, backup.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errRestoreRefused), errors.Is(err, backup.ErrNotSQLite),
		errors.Is(err, backup.ErrCorrupt), errors.Is(err, backup.ErrEmpty):
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}

// restore serves POST /restore: the body is a SQLite database file that
// replaces the state on every node through the log.
func (a *httpAPI) restore(w http.ResponseWriter, r *http.Request) {
	res, err := a.s.restore.upload(r.Context(), r.Body, r.ContentLength)
	if err != nil {
		code := restoreStatus(err)
		if code >= 500 {
			a.s.log.Warn("restore failed", "err", err)
		}
		writeError(w, code, fmt.Errorf("restore: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// upload receives body (size bytes, -1 if unknown) and restores it.
func (rs *restorer) upload(ctx context.Context, body io.Reader, size int64) (restoreResult, error) {
	if err := rs.acquire(); err != nil {
		return restoreResult{}, err
	}
	defer rs.release()
	limit, err := rs.limit()
	if err != nil {
		return restoreResult{}, err
	}
	if size > 0 && size > limit {
		return restoreResult{}, fmt.Errorf("%w: the file has %d bytes, the data directory's disk can take %d (it needs %d× the file's size free)", errNoSpace, size, limit, restoreDiskFactor)
	}
	f, err := backup.Receive(ctx, body, backup.TempDir(rs.s.cfg.DataDir), limit)
	if err != nil {
		if errors.Is(err, backup.ErrTooLarge) {
			return restoreResult{}, fmt.Errorf("%w: %w (%d× the file's size must be free on the data directory's disk)", errNoSpace, err, restoreDiskFactor)
		}
		return restoreResult{}, fmt.Errorf("reading the body: %w", err)
	}
	defer backup.Remove(f.Path)
	if err := rs.check(ctx, f.Path); err != nil {
		return restoreResult{}, err
	}
	return rs.run(ctx, f, newRestoreID())
}

func (rs *restorer) acquire() error {
	select {
	case rs.busy <- struct{}{}:
		return nil
	default:
		return errRestoreBusy
	}
}

func (rs *restorer) release() { <-rs.busy }

// limit is the largest restore the data directory's disk can take now.
func (rs *restorer) limit() (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(rs.s.cfg.DataDir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", rs.s.cfg.DataDir, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	return free / restoreDiskFactor, nil
}

// check validates the private copy at path as the fsm will.
func (rs *restorer) check(ctx context.Context, path string) error {
	if err := backup.Validate(ctx, path); err != nil {
		return fmt.Errorf("%w: %w", errRestoreRefused, err)
	}
	if err := fsm.CheckRestoreFile(path); err != nil {
		var se *fsm.SQLError
		if errors.As(err, &se) {
			return fmt.Errorf("%w: %s", errRestoreRefused, se.Message)
		}
		return err
	}
	return nil
}

func newRestoreID() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// run proposes the checked file f as restore id: its chunks, restoreWorkers
// at a time, then the commit, and waits until this node applied it.
func (rs *restorer) run(ctx context.Context, f backup.File, id uint64) (restoreResult, error) {
	s := rs.s
	start := time.Now()
	src, err := os.Open(f.Path)
	if err != nil {
		return restoreResult{}, err
	}
	defer src.Close()
	n := backup.Chunks(f.Size)
	log := s.log.With("restore", fmt.Sprintf("%016x", id))
	log.Info("restore: proposing the file", "bytes", f.Size, "chunks", n, "sha256", hex.EncodeToString(f.SHA256[:]))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int64)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	// One session for the whole restore: chunk i is seq i+1 (chunks do not
	// touch the session table: its seq only keys the waiter), the commit
	// n+1 (deduplicated like a write).
	sid := newRestoreID()
	for range min(int64(restoreWorkers), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range next {
				data, err := backup.ReadChunk(src, f.Size, i, buf)
				if err != nil {
					fail(err)
					return
				}
				buf = data
				res, err := rs.propose(ctx, fsm.Command{SessionID: sid, Seq: uint64(i) + 1, UnixMicro: s.eng.clock().UnixMicro(),
					RestoreChunk: &fsm.RestoreChunk{ID: id, Seq: uint64(i), Data: data}})
				if err != nil {
					fail(fmt.Errorf("proposing chunk %d of %d: %w", i, n, err))
					return
				}
				if len(res) > 0 && res[0].Err != nil {
					fail(fmt.Errorf("%w: chunk %d: %s", errRestoreRefused, i, res[0].Err.Message))
					return
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return restoreResult{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return restoreResult{}, err
	}
	staged := time.Since(start)
	res, err := rs.propose(ctx, fsm.Command{SessionID: sid, Seq: uint64(n) + 1, UnixMicro: s.eng.clock().UnixMicro(),
		RestoreCommit: &fsm.RestoreCommit{ID: id, Chunks: uint64(n), Size: uint64(f.Size), SHA256: f.SHA256}})
	if err != nil {
		return restoreResult{}, fmt.Errorf("proposing the commit: %w", err)
	}
	if len(res) != 1 {
		return restoreResult{}, fmt.Errorf("restore commit: %d results", len(res))
	}
	if res[0].Err != nil {
		return restoreResult{}, fmt.Errorf("%w: %s", errRestoreRefused, res[0].Err.Message)
	}
	out := restoreResult{Status: "restored", Bytes: f.Size}
	if len(res[0].Rows) == 1 && len(res[0].Rows[0]) == 2 {
		idx, _ := res[0].Rows[0][0].(int64)
		out.Index = uint64(idx)
	}
	log.Info("restore: database replaced", "bytes", f.Size, "index", out.Index,
		"staged_in", staged.Round(time.Millisecond), "total", time.Since(start).Round(time.Millisecond))
	return out, nil
}

// propose proposes cmd (its SessionID and Seq set) and waits until this
// node applied it, proposing it again after a leader change, a dropped
// proposal, or restoreAttempts attempt timeouts without a result — and
// after this node installed a snapshot meanwhile (fsm.ErrRestored: the
// result is unknown here; a chunk is idempotent, and a commit applied
// already returns its stored result).
func (rs *restorer) propose(ctx context.Context, cmd fsm.Command) ([]fsm.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, restoreProposalTimeout)
	defer cancel()
	for {
		res, err := rs.proposeOnce(ctx, cmd)
		if !errors.Is(err, fsm.ErrRestored) {
			return res, err
		}
		rs.s.log.Info("restore: a snapshot was installed while waiting; proposing again", "seq", cmd.Seq)
	}
}

func (rs *restorer) proposeOnce(ctx context.Context, cmd fsm.Command) ([]fsm.Result, error) {
	res, waitErr, err := rs.s.eng.proposeUntilApplied(ctx, cmd, restoreAttempts*rs.s.eng.attemptTimeout)
	switch {
	case err != nil:
		return nil, fmt.Errorf("could not propose: %w", err)
	case errors.Is(waitErr, fsm.ErrRestored):
		return nil, waitErr
	case waitErr != nil:
		return nil, fmt.Errorf("no result within %v (no leader or no quorum; it may still be applied): %w", restoreProposalTimeout, waitErr)
	}
	return res, nil
}

// restoreAtStart handles --restore when the node starts (in Start, before
// it serves): on a fresh data directory it records the restore as pending;
// with a pending restore (fresh, or one a crash interrupted) it copies and
// checks the file — a bad file is an error, so the node does not start —
// and returns a function that completes the restore once the cluster has
// a leader (nil: nothing to do).
func (rs *restorer) restoreAtStart(ctx context.Context, fresh bool) (func(context.Context) error, error) {
	s := rs.s
	cfg := s.cfg
	tmp := backup.TempDir(cfg.DataDir)
	// Temp copies of restores and backups that a crash left behind.
	for _, pattern := range []string{"restore-*.db*", "backup-*.db*"} {
		stale, _ := filepath.Glob(filepath.Join(tmp, pattern))
		for _, p := range stale {
			_ = os.Remove(p)
		}
	}
	marker := filepath.Join(cfg.DataDir, restorePendingFile)
	id, path, err := readRestoreMarker(marker)
	pending := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if !pending && (cfg.Restore == "" || !fresh) {
		if cfg.Restore != "" {
			s.log.Info("--restore ignored: the data directory already holds state", "file", cfg.Restore)
		}
		return nil, nil
	}
	if !pending {
		id, path = newRestoreID(), cfg.Restore
	}
	f, err := backup.Copy(ctx, path, tmp, 0)
	if err == nil {
		if cerr := rs.check(ctx, f.Path); cerr != nil {
			backup.Remove(f.Path)
			err = cerr
		}
	}
	if err != nil {
		return nil, fmt.Errorf("--restore %s: %w", path, err)
	}
	if !pending {
		if err := writeRestoreMarker(marker, id, path); err != nil {
			backup.Remove(f.Path)
			return nil, err
		}
	}
	rs.pending.Store(true)
	s.log.Info("--restore: the file will replace the state once the cluster has a leader", "file", path,
		"bytes", f.Size, "restore", fmt.Sprintf("%016x", id), "retry", pending)
	return func(ctx context.Context) error {
		defer backup.Remove(f.Path)
		return rs.completeAtStart(ctx, f, id, marker)
	}, nil
}

// completeAtStart runs the --restore once a leader is known, retrying
// until it succeeds, then removes the marker.
func (rs *restorer) completeAtStart(ctx context.Context, f backup.File, id uint64, marker string) error {
	s := rs.s
	backoff := s.cfg.HeartbeatInterval
	for attempt := 1; ; attempt++ {
		if _, err := s.node.WaitLeader(ctx); err != nil {
			return err
		}
		err := rs.startAttempt(ctx, f, id)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errRestoreRefused) && attempt >= 5 {
			s.setFatal(fmt.Errorf("--restore refused: %w", err))
			return err
		}
		s.log.Warn("--restore: attempt failed; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--restore: removing %s: %w", marker, err)
	}
	if err := syncDir(filepath.Dir(marker)); err != nil {
		return err
	}
	rs.pending.Store(false)
	return nil
}

// startAttempt is one try of a --restore: done already (a crash after the
// commit), or run it now.
func (rs *restorer) startAttempt(ctx context.Context, f backup.File, id uint64) error {
	s := rs.s
	rctx, cancel := context.WithTimeout(ctx, 2*s.cfg.ElectionTimeout)
	err := s.eng.readIndex(rctx)
	cancel()
	if err != nil {
		return err
	}
	if last, err := s.fsm.LastRestore(ctx); err != nil {
		return err
	} else if last == id {
		s.log.Info("--restore: already applied before a restart", "restore", fmt.Sprintf("%016x", id))
		return nil
	}
	if err := rs.acquire(); err != nil {
		return err
	}
	defer rs.release()
	res, err := rs.run(ctx, f, id)
	if err != nil {
		return err
	}
	s.log.Info("--restore: done", "bytes", res.Bytes, "index", res.Index)
	return nil
}

func writeRestoreMarker(path string, id uint64, src string) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%016x\n%s\n", id, abs)), 0o600); err != nil {
		return fmt.Errorf("--restore: %w", err)
	}
	fh, err := os.Open(tmp)
	if err == nil {
		err = fh.Sync()
		fh.Close()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("--restore: writing %s: %w", path, err)
	}
	return nil
}

func readRestoreMarker(path string) (uint64, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", err
	}
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)
	if len(lines) != 2 {
		return 0, "", fmt.Errorf("--restore: %s is damaged (%q); remove it to restore again from --restore", path, b)
	}
	id, err := strconv.ParseUint(lines[0], 16, 64)
	if err != nil || id == 0 {
		return 0, "", fmt.Errorf("--restore: %s is damaged (%q); remove it to restore again from --restore", path, b)
	}
	return id, lines[1], nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
