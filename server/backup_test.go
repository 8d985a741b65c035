package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

func httpDo(t *testing.T, method, url string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestBackupAndRestoreThroughTheLog(t *testing.T) {
	c := startCluster(t, 3)
	lead := c.waitLeader()
	follower := (lead + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn := c.connect(follower, "")
	if _, err := conn.Exec(ctx, "CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := conn.Exec(ctx, "INSERT INTO b VALUES ($1, $2)", i, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A linearizable backup from a follower has every acknowledged row and
	// is an intact SQLite file.
	code, file := httpDo(t, "GET", "http://"+c.servers[follower].HTTPAddr()+"/backup", nil)
	if code != http.StatusOK {
		t.Fatalf("backup: %d %s", code, file)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var check string
	var n int
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	if err := db.QueryRow("SELECT count(*) FROM b").Scan(&n); err != nil || n != 10 {
		t.Fatalf("backup has %d rows (%v), want 10", n, err)
	}
	db.Close()

	if _, err := conn.Exec(ctx, "INSERT INTO b VALUES (100, 'after backup')"); err != nil {
		t.Fatal(err)
	}
	// Garbage is refused and changes nothing.
	code, body := httpDo(t, "POST", "http://"+c.servers[follower].HTTPAddr()+"/restore", []byte("not a database"))
	if code != http.StatusBadRequest {
		t.Fatalf("garbage restore: %d %s", code, body)
	}
	var e map[string]string
	if err := json.Unmarshal(body, &e); err != nil || e["error"] == "" {
		t.Fatalf("garbage restore body %s", body)
	}
	// A real restore replaces the state on every node.
	code, body = httpDo(t, "POST", "http://"+c.servers[follower].HTTPAddr()+"/restore", file)
	if code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, body)
	}
	for i := range 3 {
		var got int64
		if err := c.connect(i, "").QueryRow(ctx, "SELECT count(*) FROM b").Scan(&got); err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		if got != 10 {
			t.Fatalf("node %d has %d rows after restore, want 10", i+1, got)
		}
	}
	// The cluster keeps working after the restore.
	if _, err := conn.Exec(ctx, "INSERT INTO b VALUES (200, 'after restore')"); err != nil {
		t.Fatalf("write after restore: %v", err)
	}
}
