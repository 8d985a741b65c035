package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

func TestControlRoundTrip(t *testing.T) {
	c := control{Term: 9, Vote: "n2", Commit: 40, Last: 50, Snap: consensus.SnapshotMeta{Index: 30, Term: 8,
		Conf: consensus.ConfState{Members: []consensus.Member{{ID: "n1", Addr: "a:1", Voter: true}, {ID: "n9", Addr: "b:2"}}}}}
	got, err := decodeControl(c.encode())
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("decodeControl(encode(c)) = %+v, %v", got, err)
	}
	b := c.encode()
	b[3] ^= 1
	if _, err := decodeControl(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v, want ErrCorrupt", err)
	}
}

// FuzzDecodeControl: the control record comes from disk; whatever is there
// is either decoded into a record that re-encodes identically or rejected
// with ErrCorrupt/ErrVersion, never a panic.
func FuzzDecodeControl(f *testing.F) {
	f.Add((&control{Term: 1, Vote: "a", Last: 3}).encode())
	f.Add((&control{Snap: consensus.SnapshotMeta{Index: 2, Term: 1, Conf: consensus.ConfState{Members: []consensus.Member{{ID: "x", Voter: true}}}}, Last: 2}).encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeControl(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrVersion", err)
			}
			return
		}
		if again, err := decodeControl(c.encode()); err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("re-encoding: %+v, %v", again, err)
		}
	})
}

// FuzzCheckEntry: entry extension bytes from disk.
func FuzzCheckEntry(f *testing.F) {
	e := consensus.Entry{Index: 5, Term: 2, Data: []byte("x")}
	f.Add(uint64(5), uint64(2), []byte("x"), entryExt(&e))
	f.Fuzz(func(t *testing.T, index, term uint64, data, ext []byte) {
		e := consensus.Entry{Index: index, Term: term, Data: data}
		if err := checkEntry(&e, ext); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
	})
}

// FuzzBoltHeader: the first bytes of a data file that may be anything.
func FuzzBoltHeader(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(f.Context(), filepath.Join(dir, "seed"), Options{})
	if err != nil {
		f.Fatal(err)
	}
	s.Close()
	seed, _ := os.ReadFile(filepath.Join(dir, "seed", FileName))
	f.Add(seed[:8192])
	f.Add([]byte("not a bolt file"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := checkBoltHeader(path); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
	})
}
