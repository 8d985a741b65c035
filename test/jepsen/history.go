package jepsen

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Errors of the package.
var (
	ErrUnsupported  = errors.New("jepsen: not supported by the cluster")
	ErrNotLinear    = errors.New("jepsen: history is not linearizable")
	ErrCheckTimeout = errors.New("jepsen: linearizability check timed out")
	// ErrNotConnected is returned by Worker.Do when no node could be
	// reached; nothing was sent.
	ErrNotConnected = errors.New("jepsen: worker has no connection")
)

// Status is the outcome of one operation as the client saw it.
type Status string

const (
	OK      Status = "ok"      // returned normally
	Fail    Status = "fail"    // definitely not applied
	Unknown Status = "unknown" // may or may not have been applied
)

// Clock gives every event of a run a time on one monotonic scale, as
// nanoseconds since the run started.
type Clock struct {
	start time.Time
}

// NewClock starts a clock now.
func NewClock() *Clock { return &Clock{start: time.Now()} }

// Now is the time since the clock started.
func (c *Clock) Now() time.Duration { return time.Since(c.start) }

// Start returns the wall time at which the clock started.
func (c *Clock) Start() time.Time { return c.start }

// Classify turns the error of a write into its status: nil is OK; an error
// that shows the request never left (pgconn.SafeToRetry) or a definite SQL
// error is Fail; everything else is Unknown.
func Classify(err error) Status {
	if err == nil {
		return OK
	}
	if errors.Is(err, ErrNotConnected) || pgconn.SafeToRetry(err) {
		return Fail
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && definiteSQLState(pe.Code) {
		return Fail
	}
	return Unknown
}

// definiteSQLState reports whether a statement that failed with code was
// certainly not applied: data exceptions, integrity violations and syntax or
// access errors are decided before or while the statement runs, and a
// failed statement leaves nothing. Serialization failures (40001), cancels
// (57014), connection and internal errors may come after the write was
// already committed by the log.
func definiteSQLState(code string) bool {
	for _, p := range []string{"22", "23", "42", "25", "0A", "26", "34"} {
		if strings.HasPrefix(code, p) {
			return true
		}
	}
	return false
}

// SQLState returns the SQLSTATE of err, or "".
func SQLState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// errText shortens an error for the history.
func errText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		s = "timeout: " + s
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// log is a concurrent append-only list.
type log[T any] struct {
	mu  sync.Mutex
	ops []T
}

func (l *log[T]) add(op T) {
	l.mu.Lock()
	l.ops = append(l.ops, op)
	l.mu.Unlock()
}

func (l *log[T]) all() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.ops...)
}
