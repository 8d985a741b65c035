package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Mechanism is the SASL mechanism name the server advertises (in
// AuthenticationSASL). SCRAM-SHA-256-PLUS (channel binding) is not
// offered.
const Mechanism = "SCRAM-SHA-256"

// nonceLen is the number of random bytes in the server's nonce part
// (PostgreSQL's SCRAM_RAW_NONCE_LEN).
const nonceLen = 18

// maxMessageLen bounds one SCRAM message; real ones are ~100 bytes.
const maxMessageLen = 4096

type scramStep int

const (
	stepClientFirst scramStep = iota
	stepClientFinal
	stepDone
)

// SCRAMServer is the server side of one SCRAM-SHA-256 exchange
// (RFC 5802, RFC 7677) as PostgreSQL runs it: a pure state machine with
// no I/O, which the front end drives with the client's two messages:
//
//	s := auth.NewSCRAMServer(users, startupUser, rand.Reader)
//	serverFirst, err := s.ClientFirst(saslInitialResponse.Data) // → AuthenticationSASLContinue
//	serverFinal, err := s.ClientFinal(saslResponse.Data)        // → AuthenticationSASLFinal, AuthenticationOk
//
// Any error ends the exchange: ErrAuthFailed (wrong password or unknown
// user, SQLSTATE 28P01) or ErrProtocol (a malformed message, 08P01).
// The user name inside the client's message is ignored, as PostgreSQL
// does: the startup packet's user is the one authenticated. A
// SCRAMServer is used by one goroutine and for one exchange.
type SCRAMServer struct {
	user   string
	v      Verifier
	known  bool
	random io.Reader
	step   scramStep

	gs2Header       string // "n,," or "y,,"
	clientFirstBare string
	serverFirst     string
	nonce           string // client nonce + server nonce
	detail          string
}

// NewSCRAMServer starts an exchange that authenticates user against
// users (nil: nobody). random supplies the server nonce (nil:
// crypto/rand). An unknown user gets a mock verifier, so the exchange
// fails only at ClientFinal, exactly like a wrong password.
func NewSCRAMServer(users *Users, user string, random io.Reader) *SCRAMServer {
	if random == nil {
		random = rand.Reader
	}
	v, known := users.verifier(user)
	return &SCRAMServer{user: user, v: v, known: known, random: random}
}

// Detail says why the exchange failed, for the server's log only (never
// send it to the client: it tells an unknown user from a wrong
// password). Empty while nothing failed.
func (s *SCRAMServer) Detail() string { return s.detail }

// ClientFirst takes the client-first-message (the data of
// SASLInitialResponse) and returns the server-first-message (the data of
// AuthenticationSASLContinue).
func (s *SCRAMServer) ClientFirst(msg []byte) ([]byte, error) {
	if s.step != stepClientFirst {
		return nil, s.fail(ErrProtocol, "client-first-message out of order")
	}
	var raw [nonceLen]byte
	if _, err := io.ReadFull(s.random, raw[:]); err != nil {
		s.step = stepDone
		return nil, fmt.Errorf("scram: server nonce: %w", err)
	}
	return s.clientFirst(msg, b64.EncodeToString(raw[:]))
}

func (s *SCRAMServer) clientFirst(msg []byte, serverNonce string) ([]byte, error) {
	s.step = stepDone // until it succeeds
	if len(msg) > maxMessageLen {
		return nil, s.fail(ErrProtocol, "client-first-message of %d bytes", len(msg))
	}
	m := string(msg)
	// gs2-header: gs2-cbind-flag "," [authzid] ","
	flag, rest, ok := strings.Cut(m, ",")
	if !ok {
		return nil, s.fail(ErrProtocol, "client-first-message without a GS2 header")
	}
	switch {
	case flag == "n" || flag == "y":
		// No channel binding: the client does not support it ("n"), or
		// supports it but thinks the server does not ("y"). Since
		// SCRAM-SHA-256-PLUS is not advertised, "y" is no downgrade.
	case strings.HasPrefix(flag, "p="):
		return nil, s.fail(ErrProtocol, "the client asks for channel binding (p=), but the server offers only %s", Mechanism)
	default:
		return nil, s.fail(ErrProtocol, "invalid channel-binding flag %q", flag)
	}
	authzid, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, s.fail(ErrProtocol, "client-first-message with an incomplete GS2 header")
	}
	if authzid != "" {
		return nil, s.fail(ErrProtocol, "authorization identity (a=) is not supported")
	}
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return nil, s.fail(ErrProtocol, "client-first-message without user name and nonce")
	}
	if strings.HasPrefix(attrs[0], "m=") {
		return nil, s.fail(ErrProtocol, "mandatory SCRAM extensions (m=) are not supported")
	}
	if !strings.HasPrefix(attrs[0], "n=") {
		return nil, s.fail(ErrProtocol, "client-first-message: expected the user name attribute (n=)")
	}
	cnonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok {
		return nil, s.fail(ErrProtocol, "client-first-message: expected the nonce attribute (r=)")
	}
	if !validNonce(cnonce) {
		return nil, s.fail(ErrProtocol, "client nonce is empty or not printable ASCII")
	}
	for _, a := range attrs[2:] {
		if !validExtension(a) {
			return nil, s.fail(ErrProtocol, "malformed attribute in client-first-message")
		}
	}
	s.gs2Header = flag + ",,"
	s.clientFirstBare = bare
	s.nonce = cnonce + serverNonce
	s.serverFirst = "r=" + s.nonce + ",s=" + b64.EncodeToString(s.v.Salt) + ",i=" + strconv.Itoa(s.v.Iterations)
	s.step = stepClientFinal
	return []byte(s.serverFirst), nil
}

// ClientFinal takes the client-final-message (the data of SASLResponse)
// and returns the server-final-message (the data of
// AuthenticationSASLFinal), after which the user is authenticated.
func (s *SCRAMServer) ClientFinal(msg []byte) ([]byte, error) {
	if s.step != stepClientFinal {
		return nil, s.fail(ErrProtocol, "client-final-message out of order")
	}
	s.step = stepDone
	if len(msg) > maxMessageLen {
		return nil, s.fail(ErrProtocol, "client-final-message of %d bytes", len(msg))
	}
	m := string(msg)
	attrs := strings.Split(m, ",")
	if len(attrs) < 3 {
		return nil, s.fail(ErrProtocol, "client-final-message needs channel binding, nonce and proof")
	}
	cbind, ok := strings.CutPrefix(attrs[0], "c=")
	if !ok {
		return nil, s.fail(ErrProtocol, "client-final-message: expected the channel binding attribute (c=)")
	}
	if got, err := b64.DecodeString(cbind); err != nil || string(got) != s.gs2Header {
		return nil, s.fail(ErrProtocol, "channel binding data does not match the GS2 header of the client-first-message")
	}
	nonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok {
		return nil, s.fail(ErrProtocol, "client-final-message: expected the nonce attribute (r=)")
	}
	if nonce != s.nonce {
		return nil, s.fail(ErrProtocol, "nonce does not match the server's")
	}
	last := attrs[len(attrs)-1]
	proofB64, ok := strings.CutPrefix(last, "p=")
	if !ok {
		return nil, s.fail(ErrProtocol, "client-final-message: the proof (p=) must be the last attribute")
	}
	for _, a := range attrs[2 : len(attrs)-1] {
		if !validExtension(a) || strings.HasPrefix(a, "p=") {
			return nil, s.fail(ErrProtocol, "malformed attribute in client-final-message")
		}
	}
	proof, err := b64.DecodeString(proofB64)
	if err != nil || len(proof) != sha256.Size {
		return nil, s.fail(ErrProtocol, "client proof is not %d bytes of base64", sha256.Size)
	}
	withoutProof := m[:len(m)-len(last)-1]
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof

	// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client
	// knows the password iff H(ClientKey) == StoredKey.
	sig := hmacSHA256(s.v.StoredKey[:], authMessage)
	clientKey := make([]byte, sha256.Size)
	subtle.XORBytes(clientKey, proof, sig)
	stored := sha256.Sum256(clientKey)
	match := subtle.ConstantTimeCompare(stored[:], s.v.StoredKey[:]) == 1
	if !s.known {
		return nil, s.fail(ErrAuthFailed, "user %q is not in the auth file", s.user)
	}
	if !match {
		return nil, s.fail(ErrAuthFailed, "password does not match for user %q", s.user)
	}
	serverSig := hmacSHA256(s.v.ServerKey[:], authMessage)
	return []byte("v=" + b64.EncodeToString(serverSig)), nil
}

// fail ends the exchange. ErrAuthFailed is returned as PostgreSQL words
// it, with no hint of why; the reason goes to Detail.
func (s *SCRAMServer) fail(kind error, format string, args ...any) error {
	s.step = stepDone
	s.detail = fmt.Sprintf(format, args...)
	if kind == ErrAuthFailed {
		return fmt.Errorf("%w for user %q", ErrAuthFailed, s.user)
	}
	return fmt.Errorf("%w: %s", kind, s.detail)
}

// validNonce: printable ASCII except ',' (RFC 5802 "printable").
func validNonce(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validExtension: attr-val = ALPHA "=" value.
func validExtension(a string) bool {
	return len(a) >= 2 && a[1] == '=' && (a[0] >= 'a' && a[0] <= 'z' || a[0] >= 'A' && a[0] <= 'Z')
}
