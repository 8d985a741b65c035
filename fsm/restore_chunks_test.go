package fsm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

// chunkCmds cuts file into chunks of size n for restore id (session sid,
// seqs from seq0) and returns the chunk commands and the commit.
func chunkCmds(id, sid, seq0 uint64, file []byte, n int) ([]Command, Command) {
	var out []Command
	seq := seq0
	for i := 0; i*n < len(file); i++ {
		data := file[i*n : min(len(file), (i+1)*n)]
		out = append(out, Command{SessionID: sid, Seq: seq, UnixMicro: t0, RestoreChunk: &RestoreChunk{ID: id, Seq: uint64(i), Data: data}})
		seq++
	}
	commit := Command{SessionID: sid, Seq: seq, UnixMicro: t0, RestoreCommit: &RestoreCommit{
		ID: id, Chunks: uint64(len(out)), Size: uint64(len(file)), SHA256: sha256.Sum256(file)}}
	return out, commit
}

// stagedChunks counts the staged chunks (-1: no staging table).
func stagedChunks(t *testing.T, f *FSM) int64 {
	t.Helper()
	r := query(t, f, "SELECT count(*) FROM sqlite_schema WHERE name = '_raftsql_restore_chunks'")
	if r.Rows[0][0] == int64(0) {
		return -1
	}
	return query(t, f, "SELECT count(*) FROM _raftsql_restore_chunks").Rows[0][0].(int64)
}

func TestChunkedRestore(t *testing.T) {
	ctx := context.Background()
	es := workload(120)
	src := openT(t, t.TempDir())
	mustApply(t, src, es[:60]...)
	file := snapshotBytes(t, src)

	log := clusterLog(es[:80])
	// Chunks interleaved with writes, then the commit, then a write.
	chunks, commit := chunkCmds(0xabc, 77, 1, file, 4096)
	if len(chunks) < 5 {
		t.Fatalf("only %d chunks", len(chunks))
	}
	next := uint64(len(log) + 1)
	for i, c := range chunks {
		log = append(log, ent(next, c))
		next++
		if i%3 == 1 {
			log = append(log, ent(next, cmd(6, uint64(i+1), st("INSERT INTO kv VALUES ($1, NULL, 2, 2)", "during"+string(rune('a'+i))))))
			next++
		}
	}
	// A chunk sent twice (a re-proposal) is harmless.
	log = append(log, ent(next, chunks[2]))
	next++
	commitIndex := next
	log = append(log, ent(next, commit))
	next++
	log = append(log, ent(next, cmd(5, 1, st("INSERT INTO kv VALUES ('after', NULL, 1, 1)"))))

	var restoredAt []uint64 // OnRestore calls (Apply's goroutine: this one)
	a, err := Open(ctx, t.TempDir(), Options{OnRestore: func(i uint64) { restoredAt = append(restoredAt, i) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := openT(t, t.TempDir())
	w := a.Expect(77, commit.Seq)
	mid := len(log) - 6
	mustApply(t, a, log[:mid]...)
	for i := 0; i < mid; i += 4 {
		mustApply(t, b, log[i:min(i+4, mid)]...)
	}
	// Identical while staged (invariant 5).
	assertSameDB(t, a, b)
	if n := stagedChunks(t, a); n <= 0 {
		t.Fatalf("staged chunks mid-restore: %d", n)
	}
	mustApply(t, a, log[mid:]...)
	for i := mid; i < len(log); i += 2 {
		mustApply(t, b, log[i:min(i+2, len(log))]...)
	}
	rs, err := w.Wait(ctx)
	if err != nil || len(rs) != 1 || rs[0].Err != nil {
		t.Fatalf("commit result: %+v %v", rs, err)
	}
	if got := rs[0].Rows; len(got) != 1 || got[0][0] != int64(commitIndex) || got[0][1] != int64(len(file)) {
		t.Fatalf("commit result rows %v, want [[%d %d]]", got, commitIndex, len(file))
	}
	assertSameDB(t, a, b)
	if n := stagedChunks(t, a); n != -1 {
		t.Fatalf("staging left after the commit: %d", n)
	}
	if !reflect.DeepEqual(restoredAt, []uint64{commitIndex}) {
		t.Fatalf("OnRestore calls %v, want [%d]", restoredAt, commitIndex)
	}
	if id, err := a.LastRestore(ctx); err != nil || id != 0xabc {
		t.Fatalf("LastRestore = %x, %v", id, err)
	}
	ref := openT(t, t.TempDir())
	mustApply(t, ref, es[:60]...)
	mustApply(t, ref, ent(61, cmd(5, 1, st("INSERT INTO kv VALUES ('after', NULL, 1, 1)"))))
	if userDump(t, a) != userDump(t, ref) {
		t.Fatalf("restored data differs:\n%s\nwant\n%s", userDump(t, a), userDump(t, ref))
	}
	cs, err := a.ConfState(ctx)
	if err != nil || len(cs.Members) != 2 {
		t.Fatalf("configuration after restore: %+v %v", cs, err)
	}
	// A retried commit returns the first result (exactly once).
	rs = applyOne(t, a, next+1, commit)
	if rs[0].Err != nil || rs[0].Rows[0][0] != int64(commitIndex) {
		t.Fatalf("retried commit: %+v", rs)
	}
	// A late duplicate chunk of the ended restore stages nothing.
	rs = applyOne(t, a, next+2, Command{SessionID: 78, Seq: 1, RestoreChunk: chunks[0].RestoreChunk})
	if rs[0].Err == nil || rs[0].Err.Code != CodeBadRestore {
		t.Fatalf("late chunk result %+v, want CodeBadRestore", rs)
	}
	if n := stagedChunks(t, a); n != -1 {
		t.Fatalf("a late chunk staged: %d", n)
	}
	if len(restoredAt) != 1 {
		t.Fatalf("OnRestore called again by a retried commit or a late chunk: %v", restoredAt)
	}
	// The replaced database survives a reopen.
	a.Close()
	a2 := openT(t, a.Dir())
	if a2.AppliedIndex() != next+2 || userDump(t, a2) != userDump(t, ref) {
		t.Fatalf("after reopen: applied %d", a2.AppliedIndex())
	}
}

func TestChunkedRestoreRefused(t *testing.T) {
	f := openT(t, t.TempDir())
	mustApply(t, f, workload(30)...)
	good := snapshotBytes(t, f)
	garbage := bytes.Repeat([]byte("garbage!"), 3000)
	next := uint64(31)
	tests := []struct {
		name   string
		file   []byte
		mutate func(chunks []Command, commit *Command) []Command
	}{
		{"wrong hash", good, func(c []Command, commit *Command) []Command {
			commit.RestoreCommit.SHA256[0] ^= 1
			return c
		}},
		{"missing chunk", good, func(c []Command, _ *Command) []Command { return append(c[:2:2], c[3:]...) }},
		{"missing last chunk", good, func(c []Command, _ *Command) []Command { return c[:len(c)-1] }},
		{"wrong size", good, func(c []Command, commit *Command) []Command {
			commit.RestoreCommit.Size++
			return c
		}},
		{"fewer chunks named", good, func(c []Command, commit *Command) []Command {
			commit.RestoreCommit.Chunks--
			return c
		}},
		{"no chunks", good, func(c []Command, _ *Command) []Command { return nil }},
		{"garbage", garbage, nil},
		{"truncated", good[:len(good)/2], nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := userDump(t, f)
			id := uint64(100 + i)
			chunks, commit := chunkCmds(id, 9, uint64(1000*(i+1)), tc.file, 2048)
			if tc.mutate != nil {
				chunks = tc.mutate(chunks, &commit)
			}
			for _, c := range chunks {
				mustApply(t, f, ent(next, c))
				next++
			}
			rs := applyOne(t, f, next, commit)
			assertRefused(t, f, rs, next, before)
			next++
			if n := stagedChunks(t, f); n != -1 {
				t.Fatalf("staging left after a refused commit: %d", n)
			}
			if last, err := f.LastRestore(context.Background()); err != nil || last != 0 {
				t.Fatalf("LastRestore after a refusal = %x, %v", last, err)
			}
		})
	}
	// The same refusals on a replica that batches differently: identical.
	g := openT(t, t.TempDir())
	var all []consensus.Entry
	all = append(all, workload(30)...)
	next = 31
	for i, file := range [][]byte{garbage, good} {
		chunks, commit := chunkCmds(uint64(500+i), 9, uint64(50000+100*i), file, 3000)
		if i == 0 {
			commit.RestoreCommit.SHA256[5] ^= 1
		}
		for _, c := range append(chunks, commit) {
			all = append(all, ent(next, c))
			next++
		}
	}
	h := openT(t, t.TempDir())
	mustApply(t, g, all...)
	for _, e := range all {
		mustApply(t, h, e)
	}
	assertSameDB(t, g, h)
}

// TestChunkedRestoreAcrossSnapshot: a node that installs a snapshot taken
// while chunks are staged gets the staged chunks, and the rest of the
// restore completes on it as on the others.
func TestChunkedRestoreAcrossSnapshot(t *testing.T) {
	ctx := context.Background()
	src := openT(t, t.TempDir())
	mustApply(t, src, workload(90)...)
	file := snapshotBytes(t, src)

	a := openT(t, t.TempDir())
	mustApply(t, a, workload(20)...)
	chunks, commit := chunkCmds(0x5eed, 3, 1, file, 4096)
	var log []consensus.Entry
	for i, c := range append(chunks, commit) {
		log = append(log, ent(uint64(21+i), c))
	}
	half := len(chunks) / 2
	mustApply(t, a, log[:half]...)
	snap := filepath.Join(t.TempDir(), "snap.db")
	if _, err := a.SnapshotFile(ctx, snap); err != nil {
		t.Fatal(err)
	}
	b := openT(t, t.TempDir())
	if err := b.Restore(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if got, want := stagedChunks(t, b), int64(half); got != want {
		t.Fatalf("the snapshot carries %d staged chunks, want %d", got, want)
	}
	assertSameDB(t, a, b)
	mustApply(t, a, log[half:]...)
	w := b.Expect(3, commit.Seq)
	mustApply(t, b, log[half:]...)
	rs, err := w.Wait(ctx)
	if err != nil || rs[0].Err != nil {
		t.Fatalf("commit on the snapshot-installed node: %+v %v", rs, err)
	}
	assertSameDB(t, a, b)
	if userDump(t, b) != userDump(t, src) {
		t.Fatal("restored data differs from the source")
	}
	// The mid-staging copy, used as a backup, restores without its staged
	// chunks.
	staged, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	c := openT(t, t.TempDir())
	mustApply(t, c, workload(5)...)
	cc, ccommit := chunkCmds(0x77, 8, 1, staged, 16384)
	for i, cmd := range cc {
		mustApply(t, c, ent(uint64(6+i), cmd))
	}
	if rs := applyOne(t, c, uint64(6+len(cc)), ccommit); rs[0].Err != nil {
		t.Fatalf("restore of a mid-staging copy: %+v", rs)
	}
	if n := stagedChunks(t, c); n != -1 {
		t.Fatalf("the restored copy kept %d staged chunks", n)
	}
	ref := openT(t, t.TempDir())
	mustApply(t, ref, workload(20)...)
	if userDump(t, c) != userDump(t, ref) {
		t.Fatal("restored mid-staging copy differs")
	}
}

// TestChunkedRestoreSuperseded: a chunk of a new restore deletes the
// chunks of an interrupted one; the interrupted one can no longer commit.
func TestChunkedRestoreSuperseded(t *testing.T) {
	src := openT(t, t.TempDir())
	mustApply(t, src, workload(40)...)
	file := snapshotBytes(t, src)
	f := openT(t, t.TempDir())
	mustApply(t, f, workload(10)...)
	before := userDump(t, f)
	old, oldCommit := chunkCmds(1, 4, 1, file, 4096)
	next := uint64(11)
	for _, c := range old[:len(old)-1] {
		mustApply(t, f, ent(next, c))
		next++
	}
	if n := stagedChunks(t, f); n != int64(len(old)-1) {
		t.Fatalf("staged %d", n)
	}
	neu, neuCommit := chunkCmds(2, 5, 1, file, 8192)
	mustApply(t, f, ent(next, neu[0]))
	next++
	if n := query(t, f, "SELECT count(*) FROM _raftsql_restore_chunks WHERE id = 1").Rows[0][0]; n != int64(0) {
		t.Fatalf("%v chunks of the superseded restore left", n)
	}
	// The old restore's last chunk and commit arrive late: it supersedes
	// the new one in turn, and cannot commit (a chunk is missing).
	mustApply(t, f, ent(next, old[len(old)-1]))
	next++
	rs := applyOne(t, f, next, oldCommit)
	next++
	if rs[0].Err == nil || rs[0].Err.Code != CodeBadRestore || userDump(t, f) != before {
		t.Fatalf("commit of a superseded restore: %+v", rs)
	}
	// Retried whole, the new one succeeds.
	for _, c := range neu {
		mustApply(t, f, ent(next, c))
		next++
	}
	rs = applyOne(t, f, next, neuCommit)
	if rs[0].Err != nil || userDump(t, f) != userDump(t, src) {
		t.Fatalf("new restore: %+v", rs)
	}
}

func TestCheckRestoreFile(t *testing.T) {
	f := openT(t, t.TempDir())
	mustApply(t, f, workload(10)...)
	dir := t.TempDir()
	path := filepath.Join(dir, "x.db")
	if _, err := f.SnapshotFile(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	if err := CheckRestoreFile(path); err != nil {
		t.Fatalf("a snapshot refused: %v", err)
	}
	err := CheckRestoreFile(rollbackTriggerDB(t, dir))
	if se, ok := err.(*SQLError); !ok || se.Code != CodeBadRestore {
		t.Fatalf("trigger with RAISE(ROLLBACK): %v", err)
	}
}

func TestRestoreCommandCodec(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	for _, c := range []Command{
		{SessionID: 1, Seq: 2, UnixMicro: 3, RestoreChunk: &RestoreChunk{ID: 1 << 63, Seq: 7, Data: []byte{0, 1, 2}}},
		{SessionID: 1, Seq: 3, UnixMicro: -3, RestoreCommit: &RestoreCommit{ID: 9, Chunks: 100, Size: 100 << 20, SHA256: sum}},
	} {
		b := EncodeCommand(c)
		got, err := DecodeCommand(b)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip of %+v: %+v %v", c, got, err)
		}
		for i := 1; i < len(b); i++ {
			if _, err := DecodeCommand(b[:i]); err == nil {
				t.Fatalf("truncated to %d bytes decodes", i)
			}
		}
		if _, err := DecodeCommand(append(append([]byte(nil), b...), 0)); err == nil {
			t.Fatal("a trailing byte decodes")
		}
	}
	// Id 0 and an empty chunk are refused.
	for _, c := range []Command{
		{RestoreChunk: &RestoreChunk{ID: 0, Data: []byte{1}}},
		{RestoreChunk: &RestoreChunk{ID: 1}},
		{RestoreCommit: &RestoreCommit{ID: 0}},
	} {
		if _, err := DecodeCommand(EncodeCommand(c)); err == nil {
			t.Fatalf("%+v decodes", c)
		}
	}
}

func FuzzDecodeRestoreCommand(f *testing.F) {
	f.Add(EncodeCommand(Command{SessionID: 1, Seq: 2, RestoreChunk: &RestoreChunk{ID: 3, Seq: 4, Data: []byte("SQLite")}}))
	f.Add(EncodeCommand(Command{SessionID: 1, Seq: 2, RestoreCommit: &RestoreCommit{ID: 3, Chunks: 4, Size: 5}}))
	f.Add([]byte{chunkVersion, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{commitVersion, 0, 0, 0, 1, 1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if c.RestoreChunk != nil || c.RestoreCommit != nil || c.Stmts != nil {
				t.Fatalf("error %v with %+v", err, c)
			}
			return
		}
		again, err := DecodeCommand(EncodeCommand(c))
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalizeForCompare(c), normalizeForCompare(again)) {
			t.Fatalf("round trip changed %#v into %#v", c, again)
		}
	})
}
