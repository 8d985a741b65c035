package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/raftsql/raftsql/auth"
)

// The auth file (raftsqld --auth-file) holds one user per line,
// USER:SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY (PostgreSQL's
// rolpassword). Package auth defines the format, derives verifiers
// (auth.NewVerifier) and checks user names; this file only rewrites the
// file.

// ErrBadPassword is a password or user name the auth file cannot hold
// (the same error as auth.ErrBadPassword).
var ErrBadPassword = auth.ErrBadPassword

// setAuthEntry writes user's verifier into the auth file at path,
// replacing the user's old line or appending one, through a temporary
// file and a rename (mode 0600), so the file is never half written.
func setAuthEntry(path, user, verifier string) error {
	if err := auth.CheckUser(user); err != nil {
		return err
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
