package auth

import (
	"bytes"
	"testing"
	"time"
)

// BenchmarkSCRAMServer is the server's share of one exchange (the PBKDF2
// work is the client's): a few HMACs and SHA-256s.
func BenchmarkSCRAMServer(b *testing.B) {
	users := testUsers(b)
	nonce := bytes.Repeat([]byte{3}, nonceLen)
	c := &testClient{password: "s3cret pw"}
	s := NewSCRAMServer(users, "alice", bytes.NewReader(nonce))
	first, err := s.ClientFirst(c.first("n,,", "abc"))
	if err != nil {
		b.Fatal(err)
	}
	final := c.final(b, first)
	cf := c.first("n,,", "abc")
	for b.Loop() {
		s := NewSCRAMServer(users, "alice", bytes.NewReader(nonce))
		if _, err := s.ClientFirst(cf); err != nil {
			b.Fatal(err)
		}
		if _, err := s.ClientFinal(final); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkBasicAuth(b *testing.B, cached bool) {
	v, err := NewVerifier("s3cret pw", []byte("0123456789abcdef"), DefaultIterations)
	if err != nil {
		b.Fatal(err)
	}
	users, _ := NewUsers(map[string]Verifier{"alice": v})
	ba := newBasicAuth(users, time.Now)
	for b.Loop() {
		if !cached {
			clear(ba.cache)
		}
		if err := ba.check("alice", "s3cret pw"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBasicAuthUncached is one PBKDF2 derivation at 4096 rounds: the
// cost of every failed HTTP login and of the first good one.
func BenchmarkBasicAuthUncached(b *testing.B) { benchmarkBasicAuth(b, false) }

// BenchmarkBasicAuthCached is a request whose credentials matched within
// the last minute.
func BenchmarkBasicAuthCached(b *testing.B) { benchmarkBasicAuth(b, true) }
