package transport

import "errors"

// Errors of the transports and the wire codec. Decoding errors all wrap
// ErrMalformed; a connection that produces one is closed.
var (
	// ErrMalformed: bytes from a peer that do not decode (bad magic,
	// checksum, truncated or trailing fields, unknown message type, …).
	ErrMalformed = errors.New("transport: malformed input")
	// ErrVersion: the peer speaks a wire version this build does not.
	ErrVersion = errors.New("transport: unsupported wire version")
	// ErrFrameTooLarge: a frame longer than the configured maximum.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrClosed: the transport was closed.
	ErrClosed = errors.New("transport: closed")
	// ErrInvalidConfig: New was given an unusable configuration.
	ErrInvalidConfig = errors.New("transport: invalid configuration")
	// ErrAddrInUse: the in-process network already has a transport
	// listening on that address.
	ErrAddrInUse = errors.New("transport: address in use")
)
