package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
)

// Snapshotter is the optional snapshot side of a StateMachine (fsm.FSM
// implements it). With Config.Snapshots set, the driver uses it to take
// snapshots (and compact the log behind them) and to install snapshots
// received from the leader.
type Snapshotter interface {
	// SnapshotFile writes a consistent copy of the applied state to path
	// and returns the index it reflects. It may run concurrently with
	// Apply.
	SnapshotFile(ctx context.Context, path string) (uint64, error)
	// Restore replaces the state with the snapshot file at path;
	// afterwards AppliedIndex() is the snapshot's index. Never called
	// concurrently with Apply.
	Restore(ctx context.Context, path string) error
}

// Snapshots is the directory of snapshot files of one node, named by the
// index they reflect (snap-<index>.db). It is the transport's
// SnapshotSource (the leader streams a file to a follower) and
// SnapshotSink (a follower receives one), and the driver's place to take
// snapshots. Create it before the transport, give it to both.
//
// Retention: when the driver takes snapshot k it compacts the log up to
// snapshot k-1 (not k), so the log keeps at least SnapshotEntries entries
// for followers that are briefly behind, and the store's snapshot meta
// always names a file that exists. Files older than k-1 are deleted.
type Snapshots struct {
	dir string
	log *slog.Logger
}

var (
	_ transport.SnapshotSource = (*Snapshots)(nil)
	_ transport.SnapshotSink   = (*Snapshots)(nil)
)

// OpenSnapshots opens (creating) the snapshot directory and removes the
// partial files a crash may have left.
func OpenSnapshots(dir string, logger *slog.Logger) (*Snapshots, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("node: snapshot dir: %w", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	for _, p := range tmps {
		_ = os.Remove(p)
	}
	return &Snapshots{dir: dir, log: logger.With("component", "snapshots")}, nil
}

// Path is the file of the snapshot at index.
func (s *Snapshots) Path(index uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("snap-%020d.db", index))
}

// Indexes lists the snapshots present, oldest first.
func (s *Snapshots) Indexes() []uint64 {
	names, _ := filepath.Glob(filepath.Join(s.dir, "snap-*.db"))
	var out []uint64
	for _, p := range names {
		b := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "snap-"), ".db")
		if i, err := strconv.ParseUint(b, 10, 64); err == nil {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

// removeBefore deletes the snapshots older than index.
func (s *Snapshots) removeBefore(index uint64) {
	for _, i := range s.Indexes() {
		if i < index {
			if err := os.Remove(s.Path(i)); err != nil {
				s.log.Warn("removing old snapshot", "index", i, "err", err)
			}
		}
	}
}

// Open implements transport.SnapshotSource.
func (s *Snapshots) Open(ctx context.Context, to string, meta consensus.SnapshotMeta) (io.ReadCloser, error) {
	f, err := os.Open(s.Path(meta.Index))
	if err != nil {
		return nil, fmt.Errorf("node: open snapshot %d for %s: %w", meta.Index, to, err)
	}
	return f, nil
}

// Create implements transport.SnapshotSink: the data goes to a temporary
// file that Commit fsyncs and renames to Path(meta.Index).
func (s *Snapshots) Create(ctx context.Context, from string, meta consensus.SnapshotMeta) (transport.SnapshotWriter, error) {
	f, err := os.CreateTemp(s.dir, "recv-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("node: receive snapshot %d from %s: %w", meta.Index, from, err)
	}
	return &snapWriter{s: s, f: f, final: s.Path(meta.Index)}, nil
}

type snapWriter struct {
	s     *Snapshots
	f     *os.File
	final string
}

func (w *snapWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *snapWriter) Commit() error {
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.final)
	}
	if err == nil {
		err = syncDir(w.s.dir)
	}
	if err != nil {
		_ = os.Remove(w.f.Name())
		return fmt.Errorf("node: commit received snapshot: %w", err)
	}
	return nil
}

func (w *snapWriter) Abort() error {
	_ = w.f.Close()
	return os.Remove(w.f.Name())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// take writes a new snapshot of sm and returns its index.
func (s *Snapshots) take(ctx context.Context, sm Snapshotter) (uint64, error) {
	f, err := os.CreateTemp(s.dir, "take-*.tmp")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	_ = f.Close()
	_ = os.Remove(tmp) // SnapshotFile creates it
	idx, err := sm.SnapshotFile(ctx, tmp)
	if err != nil {
		_ = os.Remove(tmp)
		return 0, err
	}
	if err := os.Rename(tmp, s.Path(idx)); err != nil {
		_ = os.Remove(tmp)
		return 0, err
	}
	return idx, syncDir(s.dir)
}

// errNoSnapshotFile: the store names a snapshot whose file is missing.
var errNoSnapshotFile = errors.New("snapshot file missing")
