package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseUsers(t *testing.T) {
	file := "# raftsql users\r\n\n  # indented comment\nalice:" + pgVerifier + "\r\nbob smith:" + pgVerifier + "\n"
	u, err := ParseUsers([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(u.Names(), ","); got != "alice,bob smith" {
		t.Errorf("names %q", got)
	}
	v, ok := u.Lookup("alice")
	if !ok || v.Encode() != pgVerifier {
		t.Errorf("Lookup(alice) = %v, %v", v, ok)
	}
	if _, ok := u.Lookup("carol"); ok {
		t.Error("Lookup of an unknown user succeeded")
	}
	if _, ok := (*Users)(nil).Lookup("alice"); ok {
		t.Error("nil Users has a user")
	}
}

func TestParseUsersErrors(t *testing.T) {
	ok := "alice:" + pgVerifier + "\n"
	for _, tc := range []struct{ file, want string }{
		{"", "no users"},
		{"# only a comment\n\n", "no users"},
		{ok + "bob\n", "line 2: no ':'"},
		{ok + "bob:hunter2\n", `line 2: user "bob": invalid auth file: not a SCRAM-SHA-256 verifier; this looks like a plain password`},
		{ok + "\n" + ok, `line 3: user "alice" already defined on line 1`},
		{":" + pgVerifier + "\n", "line 1: unusable user"},
		{" alice:" + pgVerifier + "\n", "line 1: unusable user"},
		{ok + "carol:SCRAM-SHA-256$4096:c2FsdA==\n", `line 2: user "carol"`},
	} {
		_, err := ParseUsers([]byte(tc.file))
		if !errors.Is(err, ErrBadFile) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n err  %v\n want ErrBadFile containing %q", tc.file, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error quotes a password: %v", err)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth")
	if _, err := LoadFile(path); !errors.Is(err, ErrBadFile) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	os.WriteFile(path, []byte("alice:"+pgVerifier+"\nbob:secret\n"), 0o600)
	_, err := LoadFile(path)
	if !errors.Is(err, ErrBadFile) || !strings.Contains(err.Error(), path+": line 2") {
		t.Errorf("bad file: %v", err)
	}
	os.WriteFile(path, []byte("alice:"+pgVerifier+"\n"), 0o600)
	u, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := u.Lookup("alice"); !ok {
		t.Error("alice missing")
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(path); !errors.Is(err, ErrBadFile) || !strings.Contains(err.Error(), "writable by every user") {
		t.Errorf("world-writable file: %v", err)
	}
}

func TestFormatEntryRoundTrip(t *testing.T) {
	v, err := NewVerifier("pw", []byte("salt"), 16)
	if err != nil {
		t.Fatal(err)
	}
	line, err := FormatEntry("alice", v)
	if err != nil {
		t.Fatal(err)
	}
	u, err := ParseUsers([]byte(line + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := u.Lookup("alice"); got.Encode() != v.Encode() {
		t.Errorf("round trip: %s != %s", got.Encode(), v.Encode())
	}
	for _, bad := range []string{"", "a:b", "x\ny", "#root", " pad", "pad ", "tab\t"} {
		if _, err := FormatEntry(bad, v); !errors.Is(err, ErrBadPassword) {
			t.Errorf("user %q: err %v", bad, err)
		}
	}
	if _, err := NewUsers(map[string]Verifier{"a:b": v}); !errors.Is(err, ErrBadPassword) {
		t.Errorf("NewUsers with a bad name: %v", err)
	}
}

func TestMockVerifierStable(t *testing.T) {
	u, _ := NewUsers(nil)
	a1, k1 := u.verifier("mallory")
	a2, _ := u.verifier("mallory")
	b, _ := u.verifier("eve")
	if k1 || string(a1.Salt) != string(a2.Salt) || string(a1.Salt) == string(b.Salt) || len(a1.Salt) != SaltLen {
		t.Errorf("mock salts: %x %x %x (known %v)", a1.Salt, a2.Salt, b.Salt, k1)
	}
	other, _ := NewUsers(nil)
	if c, _ := other.verifier("mallory"); string(c.Salt) == string(a1.Salt) {
		t.Error("two processes (secrets) give the same mock salt")
	}
}

func FuzzParseUsers(f *testing.F) {
	f.Add([]byte("alice:" + pgVerifier + "\n"))
	f.Add([]byte("# c\r\nbob:SCRAM-SHA-256$1:AA==$AA==:AA==\n"))
	f.Add([]byte("x:y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := ParseUsers(data)
		if err != nil {
			if !errors.Is(err, ErrBadFile) {
				t.Fatalf("error %v does not wrap ErrBadFile", err)
			}
			return
		}
		for _, n := range u.Names() {
			v, ok := u.Lookup(n)
			if !ok {
				t.Fatalf("name %q not found", n)
			}
			if _, err := ParseVerifier(v.Encode()); err != nil {
				t.Fatalf("re-parse of %q: %v", v.Encode(), err)
			}
		}
	})
}
