package main

import "errors"

var (
	// ErrUsage is a bad flag or argument.
	ErrUsage = errors.New("usage")
	// ErrConnect is a failure to connect to the SQL server.
	ErrConnect = errors.New("cannot connect")
	// ErrConnLost is a connection that broke during a query.
	ErrConnLost = errors.New("connection lost")
	// ErrAPI matches every error reply of the HTTP API (see apiError).
	ErrAPI = errors.New("HTTP API error")
	// ErrBadResponse is a reply that does not follow the agreed format.
	ErrBadResponse = errors.New("malformed response")
	// ErrOpTimeout is a bench operation that took longer than --op-timeout.
	ErrOpTimeout = errors.New("operation timed out")
	// ErrNotSQLite is a backup or restore file that is not a SQLite database.
	ErrNotSQLite = errors.New("not a SQLite database file")
)

// exitCode maps Run's error to the process exit status, as psql does:
// 0 ok, 1 an error (statement, admin request, usage), 2 no connection.
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrConnect), errors.Is(err, ErrConnLost):
		return 2
	}
	return 1
}
