package server

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

// Every line carries the node's current term, once: a record that names a
// term itself keeps its own.
func TestTermHandler(t *testing.T) {
	var buf bytes.Buffer
	var term atomic.Uint64
	term.Store(7)
	log := slog.New(termHandler{inner: slog.NewTextHandler(&buf, nil), term: &term}).With("node", "n1")
	log.Info("plain")
	log.Info("about a term", "term", 3)
	term.Store(8)
	log.With("component", "x", "node", "n1").Info("later") // node again: once
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"term=7", "term=3", "term=8"}
	if len(lines) != len(want) {
		t.Fatalf("lines: %q", lines)
	}
	for i, l := range lines {
		if strings.Count(l, "term=") != 1 || !strings.Contains(l, want[i]) || strings.Count(l, "node=n1") != 1 {
			t.Errorf("line %d: %q, want one %s and the node", i, l, want[i])
		}
	}
}
