package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The auth file (raftsqld --auth-file) holds one user per line,
//
//	USER:SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY
//
// where the part after the first ':' is exactly PostgreSQL's
// pg_authid.rolpassword for SCRAM-SHA-256 (RFC 5802/7677, base64), so a
// verifier can be copied from or to PostgreSQL. Lines starting with '#'
// and empty lines are ignored. The file never holds a password.

// ErrBadPassword is a password or user name the auth file cannot hold.
var ErrBadPassword = errors.New("unusable user or password")

const scramIterations = 4096 // PostgreSQL's default scram_iterations

// scramVerifier returns the SCRAM-SHA-256 verifier of password with salt
// and iter iterations, in PostgreSQL's rolpassword format. Only printable
// ASCII passwords are accepted: for them SASLprep (RFC 4013), which
// clients such as libpq apply, changes nothing; other passwords would need
// the full SASLprep tables to match every client.
func scramVerifier(password string, salt []byte, iter int) (string, error) {
	if password == "" {
		return "", fmt.Errorf("%w: empty password", ErrBadPassword)
	}
	for _, r := range password {
		if r < 0x20 || r > 0x7e {
			return "", fmt.Errorf("%w: only printable ASCII passwords are supported", ErrBadPassword)
		}
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return "SCRAM-SHA-256$" + strconv.Itoa(iter) + ":" + b64(salt) + "$" + b64(storedKey[:]) + ":" + b64(serverKey), nil
}

// setAuthEntry writes user's verifier into the auth file at path,
// replacing the user's old line or appending one, through a temporary
// file and a rename (mode 0600), so the file is never half written.
func setAuthEntry(path, user, verifier string) error {
	if user == "" || strings.ContainsAny(user, ":\n\r") || strings.HasPrefix(user, "#") {
		return fmt.Errorf("%w: user name %q (must be non-empty, without ':' or newlines, not starting with '#')", ErrBadPassword, user)
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("auth file: %w", err)
	}
	var out bytes.Buffer
	replaced := false
	sc := bufio.NewScanner(bytes.NewReader(old))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if name, _, ok := strings.Cut(line, ":"); ok && name == user && !strings.HasPrefix(line, "#") {
			if replaced {
				continue // drop duplicates of the same user
			}
			line = user + ":" + verifier
			replaced = true
		}
		out.WriteString(line + "\n")
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("auth file: %w", err)
	}
	if !replaced {
		out.WriteString(user + ":" + verifier + "\n")
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("auth file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("auth file: %w", err)
	}
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("auth file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("auth file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth file: %w", err)
	}
	return nil
}

// readPasswordLine reads one line from r (--password-stdin), without its
// line ending.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
