package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftsql/raftsql/backup"
)

// TestRestoreStreamsAndPrintsIndex: the file arrives whole with its
// length, and the commit's index from the answer is printed.
func TestRestoreStreamsAndPrintsIndex(t *testing.T) {
	var got int64
	var length int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		length = r.ContentLength
		got, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"status":"restored","bytes":3000000,"index":4242}`)
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "big.db")
	if err := os.WriteFile(file, sqliteBytes(3_000_000), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCLI(t, "restore", file, "--http", srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	if got != 3_000_000 || length != 3_000_000 {
		t.Fatalf("server got %d bytes, Content-Length %d", got, length)
	}
	if !strings.Contains(out, "sent 3000000 bytes") || !strings.Contains(out, "at log index 4242") {
		t.Fatalf("stdout %q", out)
	}
}

// TestRestoreRefusesLiveWAL: a database with a non-empty -wal next to it
// (an application still writes it) is refused before anything is sent.
func TestRestoreRefusesLiveWAL(t *testing.T) {
	n := newFakeNode(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "app.db")
	os.WriteFile(file, sqliteBytes(5000), 0o600)
	os.WriteFile(file+"-wal", []byte("frames"), 0o600)
	_, _, err := runCLI(t, "restore", file, "--http", n.addr())
	if !errors.Is(err, backup.ErrWALPresent) {
		t.Fatalf("err %v, want ErrWALPresent", err)
	}
	if len(n.requests()) != 0 {
		t.Fatalf("sent %d requests", len(n.requests()))
	}
}
