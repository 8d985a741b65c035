package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInteractiveLoop drives the prompt loop through readline with a
// pipe instead of a terminal: statements over several lines, a failing
// statement that does not end the session, history written to the file.
func TestInteractiveLoop(t *testing.T) {
	hist := filepath.Join(t.TempDir(), "history")
	t.Setenv("RAFTSQL_HISTORY", hist)
	sh, fc, out, errOut := newTestShell(sqlFake)
	in := "select 1\n;\nbogus;\ninsert into t values (1);\n\\q\nselect 1;\n"
	done := make(chan error, 1)
	go func() { done <- sh.interactive(context.Background(), io.NopCloser(strings.NewReader(in)), io.Discard) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the prompt loop did not end at \\q")
	}
	want := []string{"select 1\n;", "bogus;", "insert into t values (1);"}
	if strings.Join(fc.sent, "|") != strings.Join(want, "|") {
		t.Errorf("sent %q, want %q", fc.sent, want)
	}
	if !strings.Contains(out.String(), "(1 row)") || !strings.Contains(out.String(), "INSERT 0 1") || !strings.Contains(errOut.String(), "ERROR:  syntax error") {
		t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
	}
	h, err := os.ReadFile(hist)
	if err != nil || !strings.Contains(string(h), "insert into t values (1);") {
		t.Errorf("history %q (%v)", h, err)
	}
}
