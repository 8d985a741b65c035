package store

import "errors"

// Errors returned by the store. Open wraps ErrCorrupt (and a more precise
// cause) for every data directory it refuses to read; callers test with
// errors.Is.
var (
	// ErrCorrupt: the data directory holds something this store cannot
	// read safely: not a bolt file, a torn or truncated file, a bolt file
	// written by another program, an entry whose checksum does not match,
	// or a log with holes. Nothing is repaired or truncated; the operator
	// decides (restore from a peer or a backup).
	ErrCorrupt = errors.New("store: corrupt or foreign data directory")
	// ErrVersion: the store was written by a newer format version.
	ErrVersion = errors.New("store: unsupported store format version")
	// ErrLocked: another process holds the store open.
	ErrLocked = errors.New("store: data directory is locked by another process")
	// ErrClosed: the store was used after Close.
	ErrClosed = errors.New("store: closed")
	// ErrInvalidArgument: Save or Compact was called with arguments that
	// would leave a hole in the log or rewrite compacted entries.
	ErrInvalidArgument = errors.New("store: invalid argument")
)
