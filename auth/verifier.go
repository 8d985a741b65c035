package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// DefaultIterations is PostgreSQL's default scram_iterations (and the
// iteration count of mock verifiers when there are no users).
const DefaultIterations = 4096

// SaltLen is the salt length PostgreSQL uses (and raftsql passwd writes).
const SaltLen = 16

// maxIterations bounds the PBKDF2 work one entry of the auth file can ask
// for (PostgreSQL stores the count in an int).
const maxIterations = math.MaxInt32

// verifierPrefix starts every verifier, as in pg_authid.rolpassword.
const verifierPrefix = "SCRAM-SHA-256$"

var b64 = base64.StdEncoding.Strict()

// Verifier is what the server keeps of a SCRAM-SHA-256 password
// (RFC 5802 §3): enough to check a client's proof and to prove itself to
// the client, not enough to log in (an attacker with it can still run a
// dictionary attack, so keep it secret all the same).
type Verifier struct {
	Iterations int
	Salt       []byte
	StoredKey  [sha256.Size]byte // H(ClientKey)
	ServerKey  [sha256.Size]byte // HMAC(SaltedPassword, "Server Key")
}

// CheckPassword reports (with ErrBadPassword) a password the auth file
// cannot hold. Only non-empty printable-ASCII passwords are accepted: for
// them SASLprep (RFC 4013), which clients such as libpq and pgx apply,
// changes nothing, so every client derives the same key; other passwords
// would need the full SASLprep tables.
func CheckPassword(password string) error {
	if password == "" {
		return fmt.Errorf("%w: empty password", ErrBadPassword)
	}
	for i := 0; i < len(password); i++ {
		if c := password[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: only printable ASCII passwords are supported", ErrBadPassword)
		}
	}
	return nil
}

// NewVerifier derives the verifier of password with salt and iterations
// PBKDF2-HMAC-SHA-256 rounds (use DefaultIterations and SaltLen random
// bytes unless there is a reason not to).
func NewVerifier(password string, salt []byte, iterations int) (Verifier, error) {
	if err := CheckPassword(password); err != nil {
		return Verifier{}, err
	}
	if len(salt) == 0 {
		return Verifier{}, fmt.Errorf("%w: empty salt", ErrBadPassword)
	}
	if iterations < 1 || iterations > maxIterations {
		return Verifier{}, fmt.Errorf("%w: iterations %d out of range 1..%d", ErrBadPassword, iterations, maxIterations)
	}
	salted, err := saltedPassword(password, salt, iterations)
	if err != nil {
		return Verifier{}, err
	}
	v := Verifier{Iterations: iterations, Salt: append([]byte(nil), salt...)}
	v.StoredKey = sha256.Sum256(hmacSHA256(salted, "Client Key"))
	copy(v.ServerKey[:], hmacSHA256(salted, "Server Key"))
	return v, nil
}

func saltedPassword(password string, salt []byte, iterations int) ([]byte, error) {
	k, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPassword, err)
	}
	return k, nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// matchesPassword derives the stored key from password with v's salt and
// iterations and compares it with v's in constant time.
func (v Verifier) matchesPassword(password string) bool {
	salted, err := saltedPassword(password, v.Salt, v.Iterations)
	if err != nil {
		return false
	}
	stored := sha256.Sum256(hmacSHA256(salted, "Client Key"))
	return subtle.ConstantTimeCompare(stored[:], v.StoredKey[:]) == 1
}

// Encode returns v in PostgreSQL's pg_authid.rolpassword format,
//
//	SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY
//
// with standard padded base64, so a verifier can be copied to or from
// PostgreSQL.
func (v Verifier) Encode() string {
	return verifierPrefix + strconv.Itoa(v.Iterations) + ":" + b64.EncodeToString(v.Salt) +
		"$" + b64.EncodeToString(v.StoredKey[:]) + ":" + b64.EncodeToString(v.ServerKey[:])
}

// ParseVerifier parses the format of Encode. Its errors never quote s,
// which might be a plain password written by mistake.
func ParseVerifier(s string) (Verifier, error) {
	rest, ok := strings.CutPrefix(s, verifierPrefix)
	if !ok {
		switch {
		case len(s) == 35 && strings.HasPrefix(s, "md5"):
			return Verifier{}, fmt.Errorf("%w: an MD5 hash, not a SCRAM-SHA-256 verifier (set the password again with `raftsql passwd`)", ErrBadFile)
		case !strings.Contains(s, "$"):
			return Verifier{}, fmt.Errorf("%w: not a SCRAM-SHA-256 verifier; this looks like a plain password, which the auth file must never hold (write entries with `raftsql passwd`)", ErrBadFile)
		default:
			return Verifier{}, fmt.Errorf("%w: not a SCRAM-SHA-256 verifier (want SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY, as written by `raftsql passwd`)", ErrBadFile)
		}
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return Verifier{}, fmt.Errorf("%w: verifier without '$' between its parameters and its keys", ErrBadFile)
	}
	iter, salt, ok := strings.Cut(params, ":")
	if !ok {
		return Verifier{}, fmt.Errorf("%w: verifier without ':' between iterations and salt", ErrBadFile)
	}
	stored, server, ok := strings.Cut(keys, ":")
	if !ok {
		return Verifier{}, fmt.Errorf("%w: verifier without ':' between stored key and server key", ErrBadFile)
	}
	var v Verifier
	n, err := strconv.Atoi(iter)
	if err != nil || n < 1 || n > maxIterations {
		return Verifier{}, fmt.Errorf("%w: iteration count is not a number in 1..%d", ErrBadFile, maxIterations)
	}
	v.Iterations = n
	if v.Salt, err = b64.DecodeString(salt); err != nil || len(v.Salt) == 0 {
		return Verifier{}, fmt.Errorf("%w: salt is not non-empty base64", ErrBadFile)
	}
	if err := decodeKey(v.StoredKey[:], stored); err != nil {
		return Verifier{}, fmt.Errorf("%w: stored key %w", ErrBadFile, err)
	}
	if err := decodeKey(v.ServerKey[:], server); err != nil {
		return Verifier{}, fmt.Errorf("%w: server key %w", ErrBadFile, err)
	}
	return v, nil
}

func decodeKey(dst []byte, s string) error {
	b, err := b64.DecodeString(s)
	if err != nil {
		return errors.New("is not base64")
	}
	if len(b) != len(dst) {
		return fmt.Errorf("is %d bytes, want %d", len(b), len(dst))
	}
	copy(dst, b)
	return nil
}
