package auth

import "errors"

// Errors of the package; every error it returns wraps one of these.
var (
	// ErrAuthFailed is a wrong password or an unknown user; the two are
	// deliberately indistinguishable to the client. The PostgreSQL front
	// end maps it to SQLSTATE 28P01, the HTTP middleware to 401.
	ErrAuthFailed = errors.New("password authentication failed")
	// ErrProtocol is a malformed or out-of-order SCRAM message, or one
	// that asks for something the server does not offer (channel
	// binding, an authorization identity). PostgreSQL answers 08P01.
	ErrProtocol = errors.New("malformed SCRAM message")
	// ErrBadFile is an auth file that cannot be used (unreadable, a
	// malformed line, a plain password, a duplicate user, no users).
	ErrBadFile = errors.New("invalid auth file")
	// ErrBadPassword is a password or user name that the auth file
	// cannot hold (empty, not printable ASCII, a ':' in a user name…).
	ErrBadPassword = errors.New("unusable user or password")
	// ErrTLSConfig is a certificate, key or CA file that cannot be used
	// (missing, unreadable, not PEM, key and certificate do not match,
	// certificate not signed by the CA, expired).
	ErrTLSConfig = errors.New("invalid TLS configuration")
)
