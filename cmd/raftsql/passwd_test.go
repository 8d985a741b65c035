package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftsql/raftsql/auth"
)

func TestSetAuthEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth")
	if err := setAuthEntry(path, "alice", "V1"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("# users\nalice:V1\nbob:B\n"), 0o600)
	if err := setAuthEntry(path, "alice", "V2"); err != nil {
		t.Fatal(err)
	}
	if err := setAuthEntry(path, "carol", "C"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := "# users\nalice:V2\nbob:B\ncarol:C\n"; string(got) != want {
		t.Errorf("file %q, want %q", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	for _, bad := range []string{"", "a:b", "x\ny", "#root"} {
		if err := setAuthEntry(path, bad, "V"); !errors.Is(err, ErrBadPassword) {
			t.Errorf("user %q: err %v", bad, err)
		}
	}
	if names := dirEntries(t, filepath.Dir(path)); len(names) != 1 {
		t.Errorf("temporary files left: %v", names)
	}
}

func TestRunPasswd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth")
	e := defaultEnv()
	e.isTerminal = func(io.Reader) bool { return false }
	e.random = strings.NewReader(strings.Repeat("s", 64))
	var out, errOut strings.Builder
	err := e.run(t.Context(), []string{"raftsql", "passwd", "--auth-file", path, "--password-stdin", "alice"}, strings.NewReader("correct horse\n"), &out, &errOut)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	got, _ := os.ReadFile(path)
	v, _ := auth.NewVerifier("correct horse", []byte(strings.Repeat("s", 16)), auth.DefaultIterations)
	want := v.Encode()
	if string(got) != "alice:"+want+"\n" {
		t.Errorf("file %q, want alice:%s", got, want)
	}
	if strings.Contains(string(got), "correct horse") || strings.Contains(out.String(), "correct horse") {
		t.Error("the password leaked")
	}
	err = e.run(t.Context(), []string{"raftsql", "passwd", "--auth-file", path, "--password-stdin", "bob"}, strings.NewReader(""), &out, &errOut)
	if err == nil {
		t.Error("empty input accepted")
	}
}
