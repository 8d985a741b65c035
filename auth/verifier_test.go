package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// Made by PostgreSQL 15: CREATE ROLE vec PASSWORD 'correct horse' with
// password_encryption = 'scram-sha-256'.
const pgVerifier = "SCRAM-SHA-256$4096:w+9nfLE/V38aoMIZvZ4Y+w==$okhuszwu1ikA7JDaZys4d5kRencEkFIF0nSQoO7cVik=:dIyeipXPxfX+nQMdlsqBr7kyMidPxDHFILC7Yqr7aT8="

func TestNewVerifierMatchesPostgreSQL(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("w+9nfLE/V38aoMIZvZ4Y+w==")
	v, err := NewVerifier("correct horse", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Encode(); got != pgVerifier {
		t.Errorf("got  %s\nwant %s", got, pgVerifier)
	}
	other, err := NewVerifier("correct horsf", salt, 4096)
	if err != nil || other.Encode() == pgVerifier {
		t.Errorf("another password gave the same verifier (err %v)", err)
	}
	if !v.matchesPassword("correct horse") || v.matchesPassword("correct horsf") || v.matchesPassword("") {
		t.Error("matchesPassword disagrees with the verifier")
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	salt := []byte("0123456789abcdef")
	for _, bad := range []string{"", "naïve", "tab\there", "nul\x00", "del\x7f"} {
		if _, err := NewVerifier(bad, salt, 4096); !errors.Is(err, ErrBadPassword) {
			t.Errorf("password %q: err %v, want ErrBadPassword", bad, err)
		}
	}
	if _, err := NewVerifier("pw", nil, 4096); !errors.Is(err, ErrBadPassword) {
		t.Errorf("empty salt: err %v", err)
	}
	for _, it := range []int{0, -1} {
		if _, err := NewVerifier("pw", salt, it); !errors.Is(err, ErrBadPassword) {
			t.Errorf("iterations %d: err %v", it, err)
		}
	}
}

func TestParseVerifier(t *testing.T) {
	v, err := ParseVerifier(pgVerifier)
	if err != nil {
		t.Fatal(err)
	}
	if v.Iterations != 4096 || len(v.Salt) != 16 || v.Encode() != pgVerifier {
		t.Errorf("parsed %+v, re-encoded %s", v, v.Encode())
	}
	key := "okhuszwu1ikA7JDaZys4d5kRencEkFIF0nSQoO7cVik="
	for _, tc := range []struct{ in, want string }{
		{"hunter2", "plain password"},
		{"md5" + strings.Repeat("a", 32), "MD5"},
		{"SCRAM-SHA-1$4096:c2FsdA==$" + key + ":" + key, "not a SCRAM-SHA-256 verifier"},
		{"SCRAM-SHA-256$4096:c2FsdA==", "without '$'"},
		{"SCRAM-SHA-256$4096$" + key + ":" + key, "between iterations and salt"},
		{"SCRAM-SHA-256$4096:c2FsdA==$" + key, "between stored key and server key"},
		{"SCRAM-SHA-256$0:c2FsdA==$" + key + ":" + key, "iteration count"},
		{"SCRAM-SHA-256$x:c2FsdA==$" + key + ":" + key, "iteration count"},
		{"SCRAM-SHA-256$99999999999:c2FsdA==$" + key + ":" + key, "iteration count"},
		{"SCRAM-SHA-256$4096:$" + key + ":" + key, "salt"},
		{"SCRAM-SHA-256$4096:!!$" + key + ":" + key, "salt"},
		{"SCRAM-SHA-256$4096:c2FsdA==$c2FsdA==:" + key, "stored key is 4 bytes"},
		{"SCRAM-SHA-256$4096:c2FsdA==$" + key + ":***", "server key is not base64"},
	} {
		_, err := ParseVerifier(tc.in)
		if !errors.Is(err, ErrBadFile) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want ErrBadFile mentioning %q", tc.in, err, tc.want)
		}
	}
	if _, err := ParseVerifier("hunter2"); err != nil && strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error quotes the secret: %v", err)
	}
}
