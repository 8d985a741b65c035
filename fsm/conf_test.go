package fsm

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

func confEntry(index uint64, t consensus.ConfChangeType, id, addr string) consensus.Entry {
	return consensus.Entry{Term: 1, Index: index, Type: consensus.EntryConfChange,
		Data: consensus.EncodeConfChange(consensus.ConfChange{Type: t, ID: id, Addr: addr})}
}

func TestConfState(t *testing.T) {
	m := func(id, addr string, voter bool) consensus.Member {
		return consensus.Member{ID: id, Addr: addr, Voter: voter}
	}
	steps := []struct {
		name  string
		entry consensus.Entry
		want  []consensus.Member
	}{
		{"bootstrap b", confEntry(1, consensus.ConfAddVoter, "b", "b:1"), []consensus.Member{m("b", "b:1", true)}},
		{"bootstrap a", confEntry(2, consensus.ConfAddVoter, "a", "a:1"), []consensus.Member{m("a", "a:1", true), m("b", "b:1", true)}},
		{"learner c", confEntry(3, consensus.ConfAddLearner, "c", "c:1"), []consensus.Member{m("a", "a:1", true), m("b", "b:1", true), m("c", "c:1", false)}},
		{"no demotion", confEntry(4, consensus.ConfAddLearner, "a", "a:9"), []consensus.Member{m("a", "a:1", true), m("b", "b:1", true), m("c", "c:1", false)}},
		{"promote keeps addr", confEntry(5, consensus.ConfAddVoter, "c", ""), []consensus.Member{m("a", "a:1", true), m("b", "b:1", true), m("c", "c:1", true)}},
		{"remove", confEntry(6, consensus.ConfRemove, "b", ""), []consensus.Member{m("a", "a:1", true), m("c", "c:1", true)}},
		{"remove unknown", confEntry(7, consensus.ConfRemove, "x", ""), []consensus.Member{m("a", "a:1", true), m("c", "c:1", true)}},
		{"remove c", confEntry(8, consensus.ConfRemove, "c", ""), []consensus.Member{m("a", "a:1", true)}},
		{"not the last voter", confEntry(9, consensus.ConfRemove, "a", ""), []consensus.Member{m("a", "a:1", true)}},
		{"garbage", consensus.Entry{Term: 1, Index: 10, Type: consensus.EntryConfChange, Data: []byte{9, 9}}, []consensus.Member{m("a", "a:1", true)}},
		{"readdress learner", confEntry(11, consensus.ConfAddLearner, "d", "d:1"), []consensus.Member{m("a", "a:1", true), m("d", "d:1", false)}},
		{"readdress learner 2", confEntry(12, consensus.ConfAddLearner, "d", "d:2"), []consensus.Member{m("a", "a:1", true), m("d", "d:2", false)}},
	}
	f := openT(t, t.TempDir())
	ctx := context.Background()
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			mustApply(t, f, s.entry)
			cs, err := f.ConfState(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cs.Members, s.want) {
				t.Fatalf("members %v, want %v", cs.Members, s.want)
			}
		})
	}
	snap := filepath.Join(t.TempDir(), "s.db")
	if _, err := f.SnapshotFile(ctx, snap); err != nil {
		t.Fatal(err)
	}
	meta, err := ReadSnapshotMeta(snap)
	if err != nil {
		t.Fatal(err)
	}
	want := SnapshotMeta{Index: 12, Term: 1, ConfIndex: 12, Conf: consensus.ConfState{Members: steps[len(steps)-1].want}}
	if !reflect.DeepEqual(meta, want) {
		t.Fatalf("snapshot meta %+v, want %+v", meta, want)
	}
}
