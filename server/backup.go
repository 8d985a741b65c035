package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/pgwire"
)

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// maxRestoreBytes bounds a POST /restore body. A restore travels through
// the log as one entry (fsm.Command.Restore), so it must fit one proposal.
const maxRestoreBytes = 8<<20 - 64<<10

// backup serves GET /backup: a consistent SQLite file of the applied state,
// by default as of a linearizable point (?consistency=stale: at once).
func (a *httpAPI) backup(w http.ResponseWriter, r *http.Request) {
	c := pgwire.Linearizable
	switch v := r.URL.Query().Get("consistency"); v {
	case "", "linearizable":
	case "stale":
		c = pgwire.Stale
	case "lease":
		c = pgwire.Lease
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("consistency %q: want linearizable, lease or stale", v))
		return
	}
	if err := a.s.eng.catchUp(r.Context(), c); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	// Copy to a file first: an error is then still a clean HTTP error, and
	// the response can carry its length.
	dir := filepath.Join(a.s.cfg.DataDir, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("backup: %w", err))
		return
	}
	f, err := os.CreateTemp(dir, "backup-*.db")
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("backup: %w", err))
		return
	}
	path := f.Name()
	f.Close()
	defer os.Remove(path)
	index, err := a.s.fsm.SnapshotFile(r.Context(), path)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("backup: %w", err))
		return
	}
	f, err = os.Open(path)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("backup: %w", err))
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("backup: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/vnd.sqlite3")
	w.Header().Set("Content-Length", strconv.FormatInt(st.Size(), 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="raftsql-%s-%d.db"`, time.Now().UTC().Format("20060102T150405Z"), index))
	w.Header().Set("X-Raftsql-Applied-Index", strconv.FormatUint(index, 10))
	if _, err := io.Copy(w, f); err != nil {
		a.s.log.Warn("sending backup", "err", err)
	}
}

// restore serves POST /restore: the body is a SQLite database file that
// replaces the state on every node through the log.
func (a *httpAPI) restore(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRestoreBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("restore: reading the body: %w", err))
		return
	}
	if len(body) > maxRestoreBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("restore: the file is larger than %d bytes, the most one log entry carries", maxRestoreBytes))
		return
	}
	if !bytes.HasPrefix(body, sqliteHeader) {
		writeError(w, http.StatusBadRequest, errors.New("restore: the body is not a SQLite database file"))
		return
	}
	sess := a.s.eng.NewSession().(*session)
	res, err := sess.propose(r.Context(), fsm.Command{UnixMicro: a.s.eng.clock().UnixMicro(), Restore: body})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("restore: %w", err))
		return
	}
	for _, rs := range res {
		if rs.Err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("restore refused, nothing changed: %s", rs.Err.Message))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "restored", "bytes": len(body)})
}
