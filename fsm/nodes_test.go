package fsm

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

func nodeCmd(session, seq uint64, id, http, pg string) Command {
	return Command{SessionID: session, Seq: seq, UnixMicro: t0, Node: &NodeInfo{ID: id, HTTPAddr: http, PGAddr: pg}}
}

func nodes(t *testing.T, f *FSM) string {
	t.Helper()
	m, err := f.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(m)
}

// TestNodeDirectory: node commands upsert _raftsql_nodes alike on every
// node; removing a member drops its row; users cannot write the table; a
// snapshot carries it; a restore entry keeps the cluster's own.
func TestNodeDirectory(t *testing.T) {
	ctx := context.Background()
	es := []consensus.Entry{
		confEntry(1, consensus.ConfAddVoter, "n1", "127.0.0.1:7001"),
		confEntry(2, consensus.ConfAddVoter, "n2", "127.0.0.1:7002"),
		ent(3, cmd(1, 1, st("CREATE TABLE t(x)"))),
		ent(4, nodeCmd(0, 0, "n1", "127.0.0.1:8001", "127.0.0.1:5431")),
		ent(5, nodeCmd(9, 1, "n2", "127.0.0.1:8002", "127.0.0.1:5432")),
		ent(6, nodeCmd(0, 0, "n1", "127.0.0.1:8011", "127.0.0.1:5441")), // moved
		ent(7, nodeCmd(9, 2, "", "x", "y")),                             // refused
		ent(8, cmd(1, 2, st("INSERT INTO _raftsql_nodes VALUES ('evil', 'a', 'b')"))),
		ent(9, nodeCmd(9, 1, "n2", "stale", "stale")), // an old retry: not applied
	}
	a, b := openT(t, t.TempDir()), openT(t, t.TempDir())
	w5, w7 := a.Expect(9, 1), a.Expect(9, 2)
	w8 := a.Expect(1, 2)
	mustApply(t, a, es...)
	for _, e := range es {
		mustApply(t, b, e)
	}
	assertSameDB(t, a, b)
	want := "map[n1:{n1 127.0.0.1:8011 127.0.0.1:5441} n2:{n2 127.0.0.1:8002 127.0.0.1:5432}]"
	if got := nodes(t, a); got != want {
		t.Fatalf("Nodes = %s\nwant %s", got, want)
	}
	if rs, _ := w5.Wait(ctx); len(rs) != 1 || rs[0].Err != nil {
		t.Errorf("node command result %+v", rs)
	}
	if rs, _ := w7.Wait(ctx); len(rs) != 1 || rs[0].Err == nil || rs[0].Err.Code != CodeBadParameter {
		t.Errorf("node without id: %+v", rs)
	}
	if rs, _ := w8.Wait(ctx); len(rs) != 1 || rs[0].Err == nil || rs[0].Err.Code != CodeNotAllowed {
		t.Errorf("user write to _raftsql_nodes: %+v", rs)
	}
	if a.LastWriteIndex() != 3 {
		t.Errorf("node commands moved LastWriteIndex to %d", a.LastWriteIndex())
	}

	// A snapshot carries the directory.
	snap := filepath.Join(t.TempDir(), "snap.db")
	if _, err := a.SnapshotFile(ctx, snap); err != nil {
		t.Fatal(err)
	}
	c := openT(t, t.TempDir())
	if err := c.Restore(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if got := nodes(t, c); got != want {
		t.Errorf("after snapshot install: %s", got)
	}

	// Removing a member drops its row.
	mustApply(t, a, confEntry(10, consensus.ConfRemove, "n2", ""))
	if got := nodes(t, a); got != "map[n1:{n1 127.0.0.1:8011 127.0.0.1:5441}]" {
		t.Errorf("after removing n2: %s", got)
	}

	// A restore entry keeps the cluster's own directory, not the file's.
	other := openT(t, t.TempDir())
	applyOne(t, other, 1, nodeCmd(0, 0, "z", "elsewhere:1", "elsewhere:2"))
	backup := snapshotBytes(t, other)
	rs := applyOne(t, a, 11, Command{SessionID: 5, Seq: 1, UnixMicro: t0, Restore: backup})
	if rs[0].Err != nil {
		t.Fatal(rs[0].Err)
	}
	if got := nodes(t, a); got != "map[n1:{n1 127.0.0.1:8011 127.0.0.1:5441}]" {
		t.Errorf("after a restore entry: %s", got)
	}
}

func TestNodeCommandCodec(t *testing.T) {
	in := Command{SessionID: 3, Seq: 4, UnixMicro: 5, Node: &NodeInfo{ID: "n1", HTTPAddr: "h:1", PGAddr: "p:2"}}
	got, err := DecodeCommand(EncodeCommand(in))
	if err != nil || !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	b := EncodeCommand(in)
	for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte{}, b...), 0)} {
		if c, err := DecodeCommand(bad); err == nil || c.Node != nil || c.SessionID != 3 {
			t.Errorf("DecodeCommand(%v) = %+v, %v", bad, c, err)
		}
	}
}
