package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Users is the parsed auth file: a verifier per user, plus a per-process
// secret from which mock verifiers of unknown users are derived. It is
// immutable and safe for concurrent use; to reload the file, load a new
// Users and swap it in.
type Users struct {
	byName map[string]Verifier
	// secret makes the mock salt of an unknown user stable for the
	// process (the same user always gets the same salt, as a real one
	// would) but unpredictable from outside.
	secret [32]byte
	// mockIterations is the iteration count of mock verifiers: the most
	// common one in the file, so that it gives nothing away.
	mockIterations int
}

// LoadFile reads and parses the auth file at path (raftsqld --auth-file).
// A file that every user of the machine may write is refused (anyone
// could add a user); keep it 0600, as `raftsql passwd` writes it.
func LoadFile(path string) (*Users, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o002 != 0 {
		return nil, fmt.Errorf("%w: auth file %s is writable by every user of the machine (mode %v); chmod 600 it", ErrBadFile, path, fi.Mode().Perm())
	}
	u, err := ParseUsers(data)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	return u, nil
}

// ParseUsers parses the contents of an auth file: one user per line,
//
//	USER:SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY
//
// Empty lines and lines whose first non-blank character is '#' are
// ignored; a trailing '\r' is dropped. Any other line that is not a valid
// entry, a user that appears twice, or a file without users is an error
// naming the line. Errors never quote the secret part of a line.
func ParseUsers(data []byte) (*Users, error) {
	byName := make(map[string]Verifier)
	lineOf := make(map[string]int)
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		if t := strings.TrimSpace(line); t == "" || t[0] == '#' {
			continue
		}
		user, secret, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: no ':' between user and verifier (want USER:SCRAM-SHA-256$..., as written by `raftsql passwd`)", ErrBadFile, n)
		}
		if err := CheckUser(user); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrBadFile, n, err)
		}
		v, err := ParseVerifier(secret)
		if err != nil {
			return nil, fmt.Errorf("line %d: user %q: %w", n, user, err)
		}
		if first, dup := lineOf[user]; dup {
			return nil, fmt.Errorf("%w: line %d: user %q already defined on line %d", ErrBadFile, n, user, first)
		}
		byName[user], lineOf[user] = v, n
	}
	if len(byName) == 0 {
		return nil, fmt.Errorf("%w: no users (add one with `raftsql passwd --auth-file FILE USER`)", ErrBadFile)
	}
	return newUsers(byName), nil
}

// NewUsers returns Users holding the given verifiers (tests, or users
// kept elsewhere than in a file). User names are checked like the file's.
func NewUsers(verifiers map[string]Verifier) (*Users, error) {
	byName := make(map[string]Verifier, len(verifiers))
	for name, v := range verifiers {
		if err := CheckUser(name); err != nil {
			return nil, err
		}
		byName[name] = v
	}
	return newUsers(byName), nil
}

func newUsers(byName map[string]Verifier) *Users {
	u := &Users{byName: byName, mockIterations: DefaultIterations}
	count := make(map[int]int)
	for _, v := range byName {
		count[v.Iterations]++
	}
	best := 0
	for it, n := range count {
		if n > best || n == best && it > u.mockIterations {
			u.mockIterations, best = it, n
		}
	}
	rand.Read(u.secret[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return u
}

// CheckUser reports (with ErrBadPassword) a user name the auth file cannot
// hold: empty, with a ':' or a control character, with blanks at either
// end, or starting with '#'.
func CheckUser(user string) error {
	bad := user == "" || strings.HasPrefix(user, "#") || strings.TrimSpace(user) != user ||
		strings.ContainsFunc(user, func(r rune) bool { return r == ':' || r < 0x20 || r == 0x7f })
	if bad {
		return fmt.Errorf("%w: user name %q (must be non-empty, without ':' or control characters, not starting with '#' or blanks)", ErrBadPassword, user)
	}
	return nil
}

// FormatEntry returns the auth-file line (without its newline) that gives
// user the verifier v.
func FormatEntry(user string, v Verifier) (string, error) {
	if err := CheckUser(user); err != nil {
		return "", err
	}
	return user + ":" + v.Encode(), nil
}

// Lookup returns the verifier of user. A nil *Users has no users.
func (u *Users) Lookup(user string) (Verifier, bool) {
	if u == nil {
		return Verifier{}, false
	}
	v, ok := u.byName[user]
	return v, ok
}

// Names returns the user names, sorted (for logs; never log verifiers).
func (u *Users) Names() []string {
	if u == nil {
		return nil
	}
	names := make([]string, 0, len(u.byName))
	for n := range u.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// verifier returns user's verifier, or, for an unknown user, a mock one
// whose salt is derived from the process secret and the name (as
// PostgreSQL's scram_mock_salt does), so that the exchange looks the same
// as for a real user with a wrong password. known is false for the mock.
func (u *Users) verifier(user string) (v Verifier, known bool) {
	if v, ok := u.Lookup(user); ok {
		return v, true
	}
	var secret []byte
	iterations := DefaultIterations
	if u != nil {
		secret, iterations = u.secret[:], u.mockIterations
	}
	derive := func(label string) []byte {
		h := hmac.New(sha256.New, secret)
		h.Write([]byte(label))
		h.Write([]byte{0})
		h.Write([]byte(user))
		return h.Sum(nil)
	}
	v = Verifier{Iterations: iterations, Salt: derive("salt")[:SaltLen]}
	copy(v.StoredKey[:], derive("stored key"))
	copy(v.ServerKey[:], derive("server key"))
	return v, false
}
