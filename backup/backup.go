package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"modernc.org/sqlite" // also the "sqlite" database/sql driver, for Validate
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors of this package.
var (
	// ErrNotSQLite: the file does not start with the SQLite header, or
	// SQLite cannot open it as a database.
	ErrNotSQLite = errors.New("not a SQLite database file")
	// ErrCorrupt: SQLite opens the file but PRAGMA integrity_check fails.
	ErrCorrupt = errors.New("the SQLite database fails its integrity check")
	// ErrWALPresent: a non-empty FILE-wal lies next to the file: the
	// database has changes that are not in the file yet.
	ErrWALPresent = errors.New("the database has a -wal file with changes not yet in the main file")
	// ErrTooLarge: the file is larger than the limit given to Receive.
	ErrTooLarge = errors.New("the file is larger than the limit")
	// ErrEmpty: the file has no bytes.
	ErrEmpty = errors.New("the file is empty")
)

// Header starts every SQLite database file.
const Header = "SQLite format 3\x00"

// HeaderSize is the size of the database header (the first page's first
// bytes); a file shorter than that is not a database.
const HeaderSize = 100

// ChunkSize is the size of one restore chunk (the last one may be
// shorter). A chunk is one log entry: well below the proposal limit, and
// about one AppendEntries message.
const ChunkSize = 1 << 20

// File is a file checked or received: where it is, its size and SHA-256.
type File struct {
	Path   string
	Size   int64
	SHA256 [32]byte
}

// Chunks is the number of chunks of a file of size bytes (0 for 0).
func Chunks(size int64) int64 {
	return (size + ChunkSize - 1) / ChunkSize
}

// ReadChunk reads chunk i (from 0) of the size-byte file r into buf (grown
// to ChunkSize if needed) and returns the chunk's bytes (a slice of buf).
func ReadChunk(r io.ReaderAt, size, i int64, buf []byte) ([]byte, error) {
	if i < 0 || i >= Chunks(size) {
		return nil, fmt.Errorf("backup: chunk %d of a %d-byte file (%d chunks)", i, size, Chunks(size))
	}
	off := i * ChunkSize
	n := min(int64(ChunkSize), size-off)
	if int64(cap(buf)) < n {
		buf = make([]byte, ChunkSize)
	}
	buf = buf[:n]
	if _, err := r.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("backup: reading chunk %d: %w", i, err)
	}
	return buf, nil
}

// CheckHeader reports ErrNotSQLite (or ErrEmpty) unless b, the first
// bytes of a file (at least HeaderSize when the file is that long), starts
// like a SQLite database: the magic string, a valid page size, and the
// fixed payload fractions.
func CheckHeader(b []byte) error {
	if len(b) == 0 {
		return ErrEmpty
	}
	if len(b) < HeaderSize || !bytes.HasPrefix(b, []byte(Header)) {
		return fmt.Errorf("%w: it does not start with %q", ErrNotSQLite, strings.TrimRight(Header, "\x00"))
	}
	// Page size: big-endian at 16; 1 means 65536; else a power of two in
	// [512, 32768].
	ps := int(b[16])<<8 | int(b[17])
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps > 65536 || ps&(ps-1) != 0 {
		return fmt.Errorf("%w: bad page size %d in the header", ErrNotSQLite, ps)
	}
	// Maximum and minimum embedded payload fractions, leaf payload fraction.
	if b[21] != 64 || b[22] != 32 || b[23] != 32 {
		return fmt.Errorf("%w: bad payload fractions in the header", ErrNotSQLite)
	}
	return nil
}

// CheckLocal makes the checks a client can make on a file it is about to
// send without copying it: it exists, starts with a SQLite header, and has
// no non-empty -wal file next to it (ErrWALPresent: its last changes would
// be missing; checkpoint it first). It returns the file's size.
func CheckLocal(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%w: %s is not a regular file", ErrNotSQLite, path)
	}
	head := make([]byte, HeaderSize)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, err
	}
	if err := CheckHeader(head[:n]); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if err := CheckWAL(path); err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// CheckWAL reports ErrWALPresent when a non-empty path-wal lies next to
// the database at path: changes an application has not checkpointed into
// the file yet, which a copy of the file alone would lose.
func CheckWAL(path string) error {
	if wst, err := os.Stat(path + "-wal"); err == nil && wst.Size() > 0 {
		return fmt.Errorf("%s: %w (%s-wal, %d bytes): stop the application that uses it, or run: sqlite3 %s 'PRAGMA wal_checkpoint(TRUNCATE)'",
			path, ErrWALPresent, path, wst.Size(), path)
	}
	return nil
}

// Receive streams r into a new temp file in dir (created if needed),
// computing its size and SHA-256 on the way, fsyncs it, and returns it.
// More than limit bytes (limit > 0) is ErrTooLarge. On error nothing is
// left behind; otherwise the caller removes File.Path (see Remove).
func Receive(ctx context.Context, r io.Reader, dir string, limit int64) (File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "restore-*.db")
	if err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	src := r
	if limit > 0 {
		src = io.LimitReader(r, limit+1)
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, src})
	if err != nil {
		return File{}, fmt.Errorf("backup: receiving the file after %d bytes: %w", n, err)
	}
	if limit > 0 && n > limit {
		return File{}, fmt.Errorf("%w of %d bytes", ErrTooLarge, limit)
	}
	if err := tmp.Sync(); err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	f := File{Path: tmp.Name(), Size: n}
	copy(f.SHA256[:], h.Sum(nil))
	ok = true
	return f, nil
}

// ctxReader ends a copy when its context does.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Validate checks that the file at path — a private copy (Receive, Copy):
// SQLite may create path-wal and path-shm while it is open, and removes
// them at close — is a SQLite database that passes PRAGMA
// integrity_check. It opens the file with query_only, so the bytes stay
// as they are. Errors wrap ErrEmpty, ErrNotSQLite or ErrCorrupt when the
// file is at fault.
func Validate(ctx context.Context, path string) error {
	head := make([]byte, HeaderSize)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	n, rerr := io.ReadFull(f, head)
	f.Close()
	if rerr != nil && !errors.Is(rerr, io.ErrUnexpectedEOF) && !errors.Is(rerr, io.EOF) {
		return fmt.Errorf("backup: %w", rerr)
	}
	if err := CheckHeader(head[:n]); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fileError(err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fileError(err)
		}
		if s != "ok" && len(problems) < 5 {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fileError(err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrCorrupt, strings.Join(problems, "; "))
	}
	return nil
}

// fileError classifies an SQLite error about the file: "not a
// database" (SQLITE_NOTADB) is ErrNotSQLite, anything else ErrCorrupt.
func fileError(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_NOTADB {
		return fmt.Errorf("%w: %w", ErrNotSQLite, err)
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}

// Copy makes a private, validated copy of the local SQLite file at src in
// dir: CheckLocal, Receive, Validate. The caller removes File.Path.
func Copy(ctx context.Context, src, dir string, limit int64) (File, error) {
	if _, err := CheckLocal(src); err != nil {
		return File{}, err
	}
	in, err := os.Open(src)
	if err != nil {
		return File{}, err
	}
	defer in.Close()
	f, err := Receive(ctx, in, dir, limit)
	if err != nil {
		return File{}, err
	}
	if err := Validate(ctx, f.Path); err != nil {
		Remove(f.Path)
		return File{}, fmt.Errorf("%s: %w", src, err)
	}
	return f, nil
}

// Sum returns the size and SHA-256 of the file at path.
func Sum(path string) (int64, [32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return 0, sum, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return n, sum, err
	}
	copy(sum[:], h.Sum(nil))
	return n, sum, nil
}

// Remove removes a database file and its SQLite companions, ignoring
// errors (for temp files).
func Remove(path string) {
	for _, s := range []string{"", "-journal", "-wal", "-shm"} {
		_ = os.Remove(path + s)
	}
}

// TempDir is where a node keeps temp files under its data directory.
func TempDir(dataDir string) string { return filepath.Join(dataDir, "tmp") }
