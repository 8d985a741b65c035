// Package auth is raftsql's client authentication and TLS configuration:
// the auth file of users and SCRAM-SHA-256 verifiers (raftsqld
// --auth-file, written by `raftsql passwd`), the server side of the
// SCRAM-SHA-256 exchange that the PostgreSQL front end runs, HTTP basic
// authentication for the admin API against the same verifiers, and the
// tls.Configs for clients (--tls-cert, --tls-key) and for mutual TLS
// between nodes (--peer-tls with --tls-ca).
//
// The package does no network I/O and holds no global state: the front
// ends (pgwire/, server/) own the connections and call into it.
//
// # Lifecycle
//
// raftsqld calls Load once at start-up with its flags (Options); it reads
// and checks every file, so that a bad file stops the node with an error
// naming it, and returns a Setup: Users for pgwire.Config.AuthUsers and the
// HTTP API (Setup.HTTPHandler), ClientTLS for pgwire.Config.TLSConfig,
// HTTPTLS for the HTTP listener, PeerServer for
// transport.TCPConfig.TLS, and HTTPClient for a node's calls to another
// node's API. Everything it returns is immutable and safe for concurrent
// use. Certificates and the auth file are read once; a restart (or a new
// Load swapped in) picks up changes.
//
// # The auth file
//
// One user per line:
//
//	# comments and empty lines are ignored
//	alice:SCRAM-SHA-256$4096:w+9nfLE/V38aoMIZvZ4Y+w==$okhuszwu1ikA7JDaZys4d5kRencEkFIF0nSQoO7cVik=:dIyeipXPxfX+nQMdlsqBr7kyMidPxDHFILC7Yqr7aT8=
//
// The part after the first ':' is exactly PostgreSQL's
// pg_authid.rolpassword for SCRAM-SHA-256 (iterations, salt, StoredKey,
// ServerKey; standard base64), so verifiers can be copied to and from
// PostgreSQL (SELECT rolpassword FROM pg_authid). The file never holds a
// password: a line that looks like one is refused, with an error naming
// the line and never quoting it. User names are non-empty, without ':' or
// control characters, not starting with '#' or a blank. Passwords are
// printable ASCII (so that SASLprep, which clients apply, is the
// identity). Keep the file mode 0600: a verifier allows an offline
// dictionary attack on the password; a world-writable file is refused.
//
// LoadFile parses the file once into an immutable *Users; to reload, load
// again and swap the pointer. NewVerifier and FormatEntry make entries
// (`raftsql passwd` uses them); ParseVerifier and Verifier.Encode convert
// the rolpassword form.
//
// # SCRAM-SHA-256 in the PostgreSQL front end
//
// SCRAMServer is a pure state machine for one exchange (RFC 5802, RFC 7677,
// as PostgreSQL does it). The front end drives it:
//
//	s := auth.NewSCRAMServer(users, startupUser, rand.Reader)
//	send AuthenticationSASL{AuthMechanisms: [auth.Mechanism]}
//	receive SASLInitialResponse (mechanism must be auth.Mechanism)
//	serverFirst, err := s.ClientFirst(init.Data)   → AuthenticationSASLContinue{serverFirst}
//	receive SASLResponse
//	serverFinal, err := s.ClientFinal(resp.Data)   → AuthenticationSASLFinal{serverFinal}, AuthenticationOk
//
// An error from either step ends the connection with an ErrorResponse:
// ErrAuthFailed → 28P01 (its text is PostgreSQL's `password
// authentication failed for user "alice"`), ErrProtocol → 08P01. Only
// the plain mechanism is offered, no channel binding: a client's GS2
// header "n,," or "y,," is accepted, "p=…" is refused, as is an
// authorization identity. The user name inside the SCRAM message is
// ignored; the startup packet's user is the one authenticated.
//
// An unknown user goes through the same exchange as a known one, against a
// mock verifier whose salt is derived from a per-Users random secret and
// the name (stable for the process, like a real salt) and whose iteration
// count is the file's most common one, and fails only at ClientFinal with
// the same error as a wrong password. Proofs are compared in constant
// time. The server nonce comes from the injected io.Reader.
//
// # HTTP
//
// BasicAuth(users) wraps the admin API: HTTP basic credentials are checked
// by deriving the StoredKey from the given password with the user's salt
// and iterations (PBKDF2, ~ms at 4096 rounds) and comparing in constant
// time; a success is remembered for a minute (keyed by an HMAC with a
// random key, so the cache holds no password). Anything else gets 401,
// `WWW-Authenticate: Basic realm="raftsql"` and {"error": "..."}.
// UserFromContext gives the authenticated user to handlers.
//
// Nodes call each other's HTTP API too (POST /join from a new node, a
// follower forwarding to the leader). Under --peer-tls, serve the API
// with HTTPTLS(cert, key, ca): a client certificate is then verified
// against the cluster CA when one is presented, and such a request is
// from a node (NodeName). BasicAuth lets nodes through without a
// password, and RequireNode admits nodes only (for /join, so that a
// process without a certificate of the CA cannot join). A node calls
// with the client config of PeerTLS.
//
// # TLS
//
// ServerTLS(cert, key) is for the PostgreSQL listener (SSLRequest answered
// 'S') and the HTTP API: TLS ≥ 1.2, no client certificates. HTTPTLS adds
// optional node certificates for the HTTP API (see above).
// PeerTLS(cert, key, ca) is for Raft traffic (and node-to-node HTTP): TLS
// 1.3, both sides present a certificate and verify the other's against
// the CA; the dialling side also checks the host name, so node
// certificates need their raft address's IP or DNS name as a subject
// alternative name and the serverAuth and clientAuth usages. Both check at
// load time what would otherwise fail only at the first handshake: files
// missing or not PEM, a key that does not match its certificate, a
// certificate not signed by the CA, expired, or lacking a usage.
// Package authtest makes throwaway CAs, certificates and auth files for
// tests.
//
// # Debugging
//
//   - A client gets 28P01 although the password seems right: log
//     SCRAMServer.Detail() on the server; it says "user … is not in the
//     auth file" or "password does not match". Set the password again
//     with `raftsql passwd` if in doubt (verifiers cannot be compared by
//     text: each has its own salt).
//   - psql's `PGPASSWORD=… psql "host=… sslmode=require" -c 'select 1'`
//     exercises TLS and SCRAM together; pgx sends the GS2 header "y,," over
//     TLS and "n,," without it.
//   - TLS: `openssl s_client -connect HOST:PORT -cert node.crt -key
//     node.key -CAfile ca.crt` (raft port) shows which side refuses whom;
//     a missing client certificate shows up on the server as "tls: client
//     didn't provide a certificate", a foreign CA as "certificate signed by
//     unknown authority".
//   - curl -u alice:PASSWORD http://HOST:PORT/status for the HTTP API; a
//     401 body says whether credentials were missing or wrong.
package auth
