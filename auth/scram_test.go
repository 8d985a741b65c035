package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// The example exchange of RFC 7677 §3 (user "user", password "pencil").
func TestSCRAMRFC7677Vector(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := NewVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	users, _ := NewUsers(map[string]Verifier{"user": v})
	s := NewSCRAMServer(users, "user", nil)
	first, err := s.clientFirst([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
	if err != nil {
		t.Fatal(err)
	}
	if want := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"; string(first) != want {
		t.Errorf("server-first %q, want %q", first, want)
	}
	final, err := s.ClientFinal([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil {
		t.Fatalf("%v (%s)", err, s.Detail())
	}
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; string(final) != want {
		t.Errorf("server-final %q, want %q", final, want)
	}
}

// testClient is a minimal SCRAM-SHA-256 client.
type testClient struct {
	password, gs2, bare, authMessage string
	salted                           []byte
}

func (c *testClient) first(gs2, cnonce string) []byte {
	c.gs2 = gs2
	c.bare = "n=,r=" + cnonce
	return []byte(gs2 + c.bare)
}

func (c *testClient) final(t testing.TB, serverFirst []byte) []byte {
	t.Helper()
	attrs := strings.Split(string(serverFirst), ",")
	if len(attrs) != 3 {
		t.Fatalf("server-first %q", serverFirst)
	}
	nonce := strings.TrimPrefix(attrs[0], "r=")
	salt, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(attrs[1], "s="))
	if err != nil {
		t.Fatal(err)
	}
	iter, err := strconv.Atoi(strings.TrimPrefix(attrs[2], "i="))
	if err != nil {
		t.Fatal(err)
	}
	c.salted, err = saltedPassword(c.password, salt, iter)
	if err != nil {
		t.Fatal(err)
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2)) + ",r=" + nonce
	c.authMessage = c.bare + "," + string(serverFirst) + "," + withoutProof
	clientKey := hmacSHA256(c.salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	sig := hmacSHA256(stored[:], c.authMessage)
	for i := range clientKey {
		clientKey[i] ^= sig[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(clientKey))
}

func (c *testClient) verifyServer(serverFinal []byte) bool {
	want := "v=" + base64.StdEncoding.EncodeToString(hmacSHA256(hmacSHA256(c.salted, "Server Key"), c.authMessage))
	return hmac.Equal([]byte(want), serverFinal)
}

func testUsers(t testing.TB) *Users {
	v, err := NewVerifier("s3cret pw", []byte("0123456789abcdef"), 64)
	if err != nil {
		t.Fatal(err)
	}
	u, err := NewUsers(map[string]Verifier{"alice": v})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSCRAMExchange(t *testing.T) {
	users := testUsers(t)
	rnd := bytes.NewReader(bytes.Repeat([]byte{7}, 1000))
	for _, gs2 := range []string{"n,,", "y,,"} {
		c := &testClient{password: "s3cret pw"}
		s := NewSCRAMServer(users, "alice", rnd)
		first, err := s.ClientFirst(c.first(gs2, "abc"))
		if err != nil {
			t.Fatalf("%s: %v", gs2, err)
		}
		if !strings.HasPrefix(string(first), "r=abc"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, nonceLen))+",") {
			t.Errorf("server-first %q does not carry the nonce from rand", first)
		}
		final, err := s.ClientFinal(c.final(t, first))
		if err != nil {
			t.Fatalf("%s: %v (%s)", gs2, err, s.Detail())
		}
		if !c.verifyServer(final) {
			t.Errorf("%s: server signature %q does not verify", gs2, final)
		}
		if _, err := s.ClientFinal(c.final(t, first)); !errors.Is(err, ErrProtocol) {
			t.Errorf("a second client-final: %v", err)
		}
	}
}

// A wrong password and an unknown user look the same to the client: same
// message shapes, a stable salt per user, the same error text.
func TestSCRAMFailuresIndistinguishable(t *testing.T) {
	users := testUsers(t)
	rnd := bytes.NewReader(bytes.Repeat([]byte{1}, 1000))
	try := func(user, password string) (serverFirst, detail string, err error) {
		c := &testClient{password: password}
		s := NewSCRAMServer(users, user, rnd)
		first, err := s.ClientFirst(c.first("n,,", "nonce"))
		if err != nil {
			t.Fatalf("%s: client-first: %v", user, err)
		}
		final, err := s.ClientFinal(c.final(t, first))
		if final != nil {
			t.Errorf("%s: a server-final %q with an error", user, final)
		}
		return string(first), s.Detail(), err
	}
	wrongFirst, wrongDetail, wrongErr := try("alice", "not it")
	unkFirst, unkDetail, unkErr := try("mallory", "not it")
	unkFirst2, _, _ := try("mallory", "other")
	for _, err := range []error{wrongErr, unkErr} {
		if !errors.Is(err, ErrAuthFailed) {
			t.Errorf("err %v, want ErrAuthFailed", err)
		}
	}
	if got, want := wrongErr.Error(), `password authentication failed for user "alice"`; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if strings.ReplaceAll(unkErr.Error(), "mallory", "alice") != wrongErr.Error() {
		t.Errorf("errors differ: %q vs %q", unkErr, wrongErr)
	}
	if unkFirst != unkFirst2 {
		t.Errorf("the mock salt changes between attempts: %q vs %q", unkFirst, unkFirst2)
	}
	shape := func(s string) string {
		a := strings.Split(s, ",")
		return strconv.Itoa(len(a)) + ":" + strconv.Itoa(len(a[0])) + ":" + strconv.Itoa(len(a[1])) + ":" + a[2]
	}
	if shape(wrongFirst) != shape(unkFirst) || !strings.HasSuffix(unkFirst, ",i=64") {
		t.Errorf("server-first shapes differ: %q vs %q", wrongFirst, unkFirst)
	}
	if wrongDetail == unkDetail || !strings.Contains(unkDetail, "not in the auth file") {
		t.Errorf("details (for the server log) %q, %q should tell the cases apart", wrongDetail, unkDetail)
	}
}

func TestSCRAMProtocolErrors(t *testing.T) {
	users := testUsers(t)
	rnd := bytes.NewReader(bytes.Repeat([]byte{2}, 100000))
	firstErrs := map[string]string{
		"":                                 "GS2 header",
		"n":                                "GS2 header",
		"n,":                               "incomplete GS2 header",
		"p=tls-server-end-point,,n=,r=abc": "channel binding",
		"x,,n=,r=abc":                      "channel-binding flag",
		"n,a=alice,n=,r=abc":               "authorization identity",
		"n,,m=ext,n=,r=abc":                "mandatory",
		"n,,r=abc":                         "user name and nonce",
		"n,,n=,x=abc":                      "nonce attribute",
		"n,,r=abc,n=":                      "user name attribute",
		"n,,n=,r=":                         "nonce is empty",
		"n,,n=,r=a\x01b":                   "not printable",
		"n,,n=,r=abc,=x":                   "malformed attribute",
		"n,,n=,r=abc," + strings.Repeat("x", maxMessageLen): "bytes",
	}
	for msg, want := range firstErrs {
		s := NewSCRAMServer(users, "alice", rnd)
		if _, err := s.ClientFirst([]byte(msg)); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), want) {
			t.Errorf("client-first %q: err %v, want ErrProtocol with %q", msg, err, want)
		}
		if _, err := s.ClientFinal([]byte("c=biws,r=x,p=x")); !errors.Is(err, ErrProtocol) {
			t.Errorf("client-final after a failed client-first: %v", err)
		}
	}
	// An extension after the nonce is ignored, as PostgreSQL does.
	if _, err := NewSCRAMServer(users, "alice", rnd).ClientFirst([]byte("n,,n=,r=abc,x=ext")); err != nil {
		t.Errorf("extension: %v", err)
	}

	c := &testClient{password: "s3cret pw"}
	finalErrs := []struct {
		edit func(good string) string
		want string
	}{
		{func(string) string { return "" }, "needs channel binding"},
		{func(g string) string { return strings.Replace(g, "c=biws", "c=eSws", 1) }, "does not match the GS2 header"},
		{func(g string) string { return strings.Replace(g, "c=biws", "c=***", 1) }, "does not match the GS2 header"},
		{func(g string) string { return strings.Replace(g, "c=biws", "x=biws", 1) }, "channel binding attribute"},
		{func(g string) string { return strings.Replace(g, ",r=abc", ",r=abd", 1) }, "nonce does not match"},
		{func(g string) string { return strings.Replace(g, ",r=abc", ",q=abc", 1) }, "nonce attribute"},
		{func(g string) string { return g + ",x=1" }, "must be the last"},
		{func(g string) string { i := strings.Index(g, ",p="); return g[:i] + ",p=AAAA" + g[i:] }, "malformed attribute"},
		{func(g string) string { return g[:strings.Index(g, ",p=")] + ",p=abc" }, "not 32 bytes"},
		{func(g string) string { return g + strings.Repeat("A", maxMessageLen) }, "bytes"},
	}
	for i, tc := range finalErrs {
		s := NewSCRAMServer(users, "alice", rnd)
		first, err := s.ClientFirst(c.first("n,,", "abc"))
		if err != nil {
			t.Fatal(err)
		}
		msg := tc.edit(string(c.final(t, first)))
		if _, err := s.ClientFinal([]byte(msg)); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d: client-final %q: err %v, want ErrProtocol with %q", i, msg, err, tc.want)
		}
	}

	if _, err := NewSCRAMServer(users, "alice", rnd).ClientFinal([]byte("c=biws")); !errors.Is(err, ErrProtocol) {
		t.Errorf("client-final first: %v", err)
	}
	if _, err := NewSCRAMServer(users, "alice", bytes.NewReader(nil)).ClientFirst(c.first("n,,", "abc")); err == nil {
		t.Error("a failing random source went unnoticed")
	}
	if _, err := NewSCRAMServer(users, "alice", nil).ClientFirst(c.first("n,,", "abc")); err != nil {
		t.Errorf("nil random (crypto/rand): %v", err)
	}
}

// FuzzSCRAMServer feeds arbitrary client messages: nothing panics, every
// error wraps ErrProtocol or ErrAuthFailed, and nobody gets in without
// the password.
func FuzzSCRAMServer(f *testing.F) {
	f.Add([]byte("n,,n=,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add([]byte("y,,n=alice,r=x,ext=1"), []byte("c=eSws,r=x,p="))
	f.Add([]byte("p=tls-server-end-point,,n=,r=abc"), []byte(""))
	users := testUsers(f)
	f.Fuzz(func(t *testing.T, first, final []byte) {
		s := NewSCRAMServer(users, "alice", bytes.NewReader(make([]byte, nonceLen)))
		sf, err := s.ClientFirst(first)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("client-first error %v", err)
			}
			return
		}
		if !bytes.HasPrefix(sf, []byte("r=")) {
			t.Fatalf("server-first %q", sf)
		}
		_, err = s.ClientFinal(final)
		if err == nil {
			t.Fatalf("authenticated without the password: %q / %q", first, final)
		}
		if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("client-final error %v", err)
		}
	})
}
