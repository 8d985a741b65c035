package pgwire

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// SCRAM-SHA-256 authentication (RFC 5802, RFC 7677), as PostgreSQL does
// it: the server keeps a verifier (salt, iteration count, StoredKey,
// ServerKey), never the password, and proves its own knowledge of it to
// the client in the last message.

// ErrAuth is a failed authentication (28P01).
var ErrAuth = errors.New("password authentication failed")

const scramIterations = 4096

// SCRAMVerifier is what the server stores for a user.
type SCRAMVerifier struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// NewSCRAMVerifier derives a verifier for password with a fresh salt read
// from rnd.
func NewSCRAMVerifier(password string, rnd io.Reader) (SCRAMVerifier, error) {
	salt := make([]byte, 16)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return SCRAMVerifier{}, fmt.Errorf("pgwire: salt: %w", err)
	}
	return scramVerifierFor(password, salt, scramIterations)
}

func scramVerifierFor(password string, salt []byte, iter int) (SCRAMVerifier, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return SCRAMVerifier{}, fmt.Errorf("pgwire: pbkdf2: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return SCRAMVerifier{Iterations: iter, Salt: salt, StoredKey: stored[:], ServerKey: hmacSHA256(salted, "Server Key")}, nil
}

// String is PostgreSQL's stored form:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (base64).
func (v SCRAMVerifier) String() string {
	b := base64.StdEncoding
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", v.Iterations, b.EncodeToString(v.Salt), b.EncodeToString(v.StoredKey), b.EncodeToString(v.ServerKey))
}

// ParseSCRAMVerifier reads the form String writes (also what PostgreSQL
// keeps in pg_authid.rolpassword).
func ParseSCRAMVerifier(s string) (SCRAMVerifier, error) {
	bad := fmt.Errorf("pgwire: not a SCRAM-SHA-256 verifier")
	rest, ok := strings.CutPrefix(s, "SCRAM-SHA-256$")
	if !ok {
		return SCRAMVerifier{}, bad
	}
	iterSalt, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return SCRAMVerifier{}, bad
	}
	iterS, saltS, ok1 := strings.Cut(iterSalt, ":")
	storedS, serverS, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return SCRAMVerifier{}, bad
	}
	iter, err := strconv.Atoi(iterS)
	if err != nil || iter < 1 || iter > 1<<24 {
		return SCRAMVerifier{}, bad
	}
	b := base64.StdEncoding
	salt, err1 := b.DecodeString(saltS)
	stored, err2 := b.DecodeString(storedS)
	server, err3 := b.DecodeString(serverS)
	if err1 != nil || err2 != nil || err3 != nil || len(stored) != sha256.Size || len(server) != sha256.Size {
		return SCRAMVerifier{}, bad
	}
	return SCRAMVerifier{Iterations: iter, Salt: salt, StoredKey: stored, ServerKey: server}, nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// scramAuth runs the SASL exchange on c for user; nil means success.
func (c *conn) scramAuth(user string) error {
	v, known := c.srv.cfg.Users(user)
	if !known {
		// Go through the motions with a verifier nobody can match, so a
		// client cannot tell unknown users from wrong passwords.
		v = SCRAMVerifier{Iterations: scramIterations, Salt: []byte(user + "-raftsql-salt"), StoredKey: make([]byte, sha256.Size), ServerKey: make([]byte, sha256.Size)}
	}
	c.be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}})
	if err := c.be.Flush(); err != nil {
		return err
	}
	if err := c.be.SetAuthType(pgproto3.AuthTypeSASL); err != nil {
		return err
	}
	msg, err := c.be.Receive()
	if err != nil {
		return err
	}
	init, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok || init.AuthMechanism != "SCRAM-SHA-256" {
		return newError(codeProtocolViolation, ErrProtocol, "expected a SASLInitialResponse for SCRAM-SHA-256")
	}
	// client-first-message: gs2-header "n,," then "n=user,r=nonce".
	first := string(init.Data)
	gs2, bare, ok := cutN(first, ",", 2)
	if !ok || !strings.HasPrefix(gs2, "n,") && !strings.HasPrefix(gs2, "y,") {
		return newError(codeProtocolViolation, ErrProtocol, "malformed SCRAM client-first-message (channel binding is not supported)")
	}
	clientNonce := scramAttr(bare, "r")
	if clientNonce == "" {
		return newError(codeProtocolViolation, ErrProtocol, "SCRAM client-first-message has no nonce")
	}
	nonceBytes := make([]byte, 18)
	if _, err := io.ReadFull(c.srv.cfg.Rand, nonceBytes); err != nil {
		return err
	}
	nonce := clientNonce + base64.RawStdEncoding.EncodeToString(nonceBytes)
	serverFirst := fmt.Sprintf("r=%s,s=%s,i=%d", nonce, base64.StdEncoding.EncodeToString(v.Salt), v.Iterations)
	c.be.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)})
	if err := c.be.Flush(); err != nil {
		return err
	}
	if err := c.be.SetAuthType(pgproto3.AuthTypeSASLContinue); err != nil {
		return err
	}
	msg, err = c.be.Receive()
	if err != nil {
		return err
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return newError(codeProtocolViolation, ErrProtocol, "expected a SASLResponse")
	}
	final := string(resp.Data)
	i := strings.LastIndex(final, ",p=")
	if i < 0 {
		return newError(codeProtocolViolation, ErrProtocol, "SCRAM client-final-message has no proof")
	}
	withoutProof := final[:i]
	proof, err := base64.StdEncoding.DecodeString(final[i+3:])
	if err != nil || len(proof) != sha256.Size {
		return newError(codeProtocolViolation, ErrProtocol, "malformed SCRAM proof")
	}
	if scramAttr(withoutProof, "r") != nonce || scramAttr(withoutProof, "c") != base64.StdEncoding.EncodeToString([]byte(gs2+",")) {
		return newError(codeProtocolViolation, ErrProtocol, "SCRAM nonce or channel binding mismatch")
	}
	authMessage := bare + "," + serverFirst + "," + withoutProof
	clientSig := hmacSHA256(v.StoredKey, authMessage)
	clientKey := make([]byte, sha256.Size)
	for j := range clientKey {
		clientKey[j] = proof[j] ^ clientSig[j]
	}
	sum := sha256.Sum256(clientKey)
	if !known || subtle.ConstantTimeCompare(sum[:], v.StoredKey) != 1 {
		return &Error{Code: "28P01", Message: fmt.Sprintf("password authentication failed for user %q", user), Err: ErrAuth}
	}
	serverSig := hmacSHA256(v.ServerKey, authMessage)
	c.be.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte("v=" + base64.StdEncoding.EncodeToString(serverSig))})
	return nil
}

// cutN splits s after the n-th sep: "a,b,c" with n=2 gives "a,b", "c".
func cutN(s, sep string, n int) (string, string, bool) {
	idx := 0
	for k := 0; k < n; k++ {
		j := strings.Index(s[idx:], sep)
		if j < 0 {
			return "", "", false
		}
		idx += j + len(sep)
	}
	return s[:idx-len(sep)], s[idx:], true
}

// scramAttr returns attribute key of a SCRAM message "a=1,b=2".
func scramAttr(msg, key string) string {
	for _, part := range strings.Split(msg, ",") {
		if v, ok := strings.CutPrefix(part, key+"="); ok {
			return v
		}
	}
	return ""
}
