package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// makeDB creates a SQLite file with a table of n rows (WAL mode when wal).
func makeDB(t *testing.T, dir string, n int, wal bool) string {
	t.Helper()
	path := filepath.Join(dir, "src.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if wal {
		if _, err := db.Exec("PRAGMA journal_mode=WAL"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := db.Exec("INSERT INTO t VALUES (?, randomblob(1000))", i); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestChunks(t *testing.T) {
	for _, tc := range []struct{ size, n int64 }{{0, 0}, {1, 1}, {ChunkSize, 1}, {ChunkSize + 1, 2}, {3 * ChunkSize, 3}} {
		if got := Chunks(tc.size); got != tc.n {
			t.Errorf("Chunks(%d) = %d, want %d", tc.size, got, tc.n)
		}
	}
	data := bytes.Repeat([]byte("0123456789"), (2*ChunkSize+500)/10)
	r := bytes.NewReader(data)
	var joined []byte
	var buf []byte
	for i := range Chunks(int64(len(data))) {
		c, err := ReadChunk(r, int64(len(data)), i, buf)
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, c...)
		buf = c
	}
	if !bytes.Equal(joined, data) {
		t.Fatal("chunks do not reassemble the file")
	}
	if _, err := ReadChunk(r, int64(len(data)), 3, nil); err == nil {
		t.Fatal("chunk past the end read")
	}
}

func TestCheckHeader(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(makeDB(t, dir, 1, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckHeader(good[:HeaderSize]); err != nil {
		t.Fatalf("good header refused: %v", err)
	}
	bad := append([]byte(nil), good[:HeaderSize]...)
	bad[16], bad[17] = 0, 3 // page size 3
	for name, b := range map[string][]byte{
		"garbage":   bytes.Repeat([]byte("x"), 200),
		"short":     good[:50],
		"page size": bad,
	} {
		if err := CheckHeader(b); !errors.Is(err, ErrNotSQLite) {
			t.Errorf("%s: %v, want ErrNotSQLite", name, err)
		}
	}
	if err := CheckHeader(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: %v, want ErrEmpty", err)
	}
}

func TestReceiveValidate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := makeDB(t, dir, 300, true)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Receive(ctx, bytes.NewReader(data), filepath.Join(dir, "tmp"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(f.Path)
	if f.Size != int64(len(data)) || f.SHA256 != sha256.Sum256(data) {
		t.Fatalf("Receive: size %d sum %x", f.Size, f.SHA256)
	}
	if err := Validate(ctx, f.Path); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// Validate leaves the bytes alone (the hash a commit carries).
	if n, sum, err := Sum(f.Path); err != nil || n != f.Size || sum != f.SHA256 {
		t.Fatalf("Validate changed the file: %d %x %v", n, sum, err)
	}
	for _, s := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(f.Path + s); err == nil {
			t.Errorf("Validate left %s behind", s)
		}
	}
	// Over the limit.
	if _, err := Receive(ctx, bytes.NewReader(data), dir, int64(len(data)-1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "restore-*")); len(left) != 0 {
		t.Fatalf("a refused Receive left %v", left)
	}

	// Corruption in a table page: the header is fine, integrity_check is not.
	corrupt := append([]byte(nil), data...)
	ps := int(corrupt[16])<<8 | int(corrupt[17])
	for i := 2 * ps; i < 2*ps+ps/2 && i < len(corrupt); i++ {
		corrupt[i] = 0xA5
	}
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"garbage":   {bytes.Repeat([]byte("garbage!"), 1000), ErrNotSQLite},
		"empty":     {nil, ErrEmpty},
		"truncated": {data[:len(data)/2], ErrCorrupt},
		"corrupt":   {corrupt, ErrCorrupt},
	}
	for name, tc := range cases {
		f, err := Receive(ctx, bytes.NewReader(tc.b), dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = Validate(ctx, f.Path)
		Remove(f.Path)
		if !errors.Is(err, tc.want) {
			// A page that is garbage may also make SQLite refuse to open.
			if !(tc.want == ErrCorrupt && errors.Is(err, ErrNotSQLite)) {
				t.Errorf("%s: %v, want %v", name, err, tc.want)
			}
		}
	}
}

func TestCheckLocalWAL(t *testing.T) {
	dir := t.TempDir()
	src := makeDB(t, dir, 10, true)
	if _, err := CheckLocal(src); err != nil {
		t.Fatalf("closed WAL database refused: %v", err)
	}
	// An open writer keeps a -wal with changes the main file lacks.
	db, err := sql.Open("sqlite", src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("PRAGMA wal_autocheckpoint=0; INSERT INTO t VALUES (1000, 'x')"); err != nil {
		t.Fatal(err)
	}
	_, err = CheckLocal(src)
	if !errors.Is(err, ErrWALPresent) || !strings.Contains(err.Error(), "wal_checkpoint") {
		t.Fatalf("CheckLocal with a live -wal: %v", err)
	}
	if _, err := Copy(context.Background(), src, dir, 0); !errors.Is(err, ErrWALPresent) {
		t.Fatalf("Copy with a live -wal: %v", err)
	}
	if _, err := CheckLocal(filepath.Join(dir, "none.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestCopy(t *testing.T) {
	dir := t.TempDir()
	src := makeDB(t, dir, 50, false)
	f, err := Copy(context.Background(), src, filepath.Join(dir, "tmp"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(f.Path)
	want, _ := os.ReadFile(src)
	got, _ := os.ReadFile(f.Path)
	if !bytes.Equal(got, want) || f.SHA256 != sha256.Sum256(want) {
		t.Fatal("the copy differs from the source")
	}
}

// FuzzCheckHeader: any bytes get an answer, never a panic; an accepted
// header starts with the magic string and has a power-of-two page size.
func FuzzCheckHeader(f *testing.F) {
	f.Add([]byte(Header + strings.Repeat("\x00", 84)))
	good := []byte(Header + "\x10\x00\x01\x01\x00\x40\x20\x20" + strings.Repeat("\x00", 76))
	f.Add(good)
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckHeader(b)
		if err != nil {
			if !errors.Is(err, ErrNotSQLite) && !errors.Is(err, ErrEmpty) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		ps := int(b[16])<<8 | int(b[17])
		if ps == 1 {
			ps = 65536
		}
		if !bytes.HasPrefix(b, []byte(Header)) || ps&(ps-1) != 0 || ps < 512 {
			t.Fatalf("accepted %q", b[:min(len(b), 24)])
		}
	})
}
