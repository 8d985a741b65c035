package server

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/raftsql/raftsql/backup"
	"github.com/raftsql/raftsql/pgwire"
)

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
	dir := backup.TempDir(a.s.cfg.DataDir)
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
	defer backup.Remove(path)
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
