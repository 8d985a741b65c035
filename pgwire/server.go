package pgwire

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftsql/raftsql/auth"
)

// Config configures a Server. Engine is required; everything else has a
// default.
type Config struct {
	// Engine runs the SQL (required).
	Engine Engine
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
	// MaxMessageSize bounds one client message body in bytes (default
	// 64 MiB). A bigger message gets 08P01 and the connection is closed.
	MaxMessageSize int
	// MaxConns bounds concurrent client connections (0: no bound). Extra
	// connections get 53300 "too many connections" and are closed.
	MaxConns int
	// TLSConfig, when set, makes the server answer SSLRequest with 'S'
	// and run the rest of the connection over TLS. Nil answers 'N'.
	TLSConfig *tls.Config
	// AuthUsers, when set, makes clients authenticate with SCRAM-SHA-256
	// against an auth file's users (auth.LoadFile), through
	// auth.SCRAMServer: an unknown user gets a mock verifier that cannot
	// be told from a real one, and fails at the end like a wrong
	// password (28P01); malformed SASL messages get 08P01. Nil accepts
	// any user without a password.
	AuthUsers *auth.Users
	// Authenticate, when set, is called with the startup user and
	// database after any password check; an error refuses the connection
	// (28000).
	Authenticate func(ctx context.Context, user, database string) error
	// ServerVersion is reported as server_version and by version()
	// (default "15.0 (raftsql)"); clients need a 15.x-looking value.
	ServerVersion string
	// Rand is the source of BackendKeyData secrets (default crypto/rand).
	Rand io.Reader
	// StartupTimeout bounds the startup handshake (default 30s).
	StartupTimeout time.Duration
	// StatementTimeout and IdleInTxTimeout are the defaults of every
	// session's statement_timeout and idle_in_transaction_session_timeout
	// (0: none, as in PostgreSQL; whole milliseconds, at most
	// 2147483647 ms). Sessions change them with SET and see them with
	// SHOW; RESET returns to these values.
	StatementTimeout time.Duration
	IdleInTxTimeout  time.Duration
	// Observer, when set, is told about sessions, statements and errors
	// (for metrics). Nil observes nothing.
	Observer Observer
	// ShutdownGrace is how long a statement that is running when Serve's
	// context ends may take to finish (0: none). Sessions waiting for a
	// command end at once with FATAL 57P01 "terminating connection due
	// to administrator command", a busy one after its answer; whatever
	// still runs when the grace is over is cut off. 0 means 100 ms:
	// enough for the waiting sessions to be told.
	ShutdownGrace time.Duration
}

// Observer receives the front end's events, for metrics. Its methods are
// called from the connections' goroutines, concurrently, and must return
// quickly.
type Observer interface {
	// ConnOpened is called when a session has passed startup and
	// authentication; ConnClosed when that session ends.
	ConnOpened()
	ConnClosed()
	// Query is called once per executed statement (a statement of a
	// simple Query, or a portal run to completion by Execute) when its
	// result or error has been sent, with the time since it was
	// submitted.
	Query(kind QueryKind, d time.Duration)
	// Error is called for every ErrorResponse sent to a client, with its
	// SQLSTATE (also for FATAL errors at startup: 28P01, 53300, 08P01,
	// 25P03 …).
	Error(sqlstate string)
}

// QueryKind classifies a statement for Observer.Query. The set is fixed.
type QueryKind string

// The kinds of statements.
const (
	QuerySelect QueryKind = "select" // SELECT, VALUES, WITH … SELECT, EXPLAIN, catalog queries
	QueryInsert QueryKind = "insert" // INSERT, REPLACE
	QueryUpdate QueryKind = "update" // UPDATE, MERGE
	QueryDelete QueryKind = "delete" // DELETE
	QueryDDL    QueryKind = "ddl"    // CREATE, DROP, ALTER, TRUNCATE, ANALYZE, REINDEX
	QueryTx     QueryKind = "tx"     // BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE
	QueryOther  QueryKind = "other"  // SET, SHOW, RESET, PRAGMA, …
)

// QueryKinds lists every QueryKind.
var QueryKinds = []QueryKind{QuerySelect, QueryInsert, QueryUpdate, QueryDelete, QueryDDL, QueryTx, QueryOther}

type nopObserver struct{}

func (nopObserver) ConnOpened()                    {}
func (nopObserver) ConnClosed()                    {}
func (nopObserver) Query(QueryKind, time.Duration) {}
func (nopObserver) Error(string)                   {}

const defaultMaxMessageSize = 64 << 20

// Server is a PostgreSQL wire-protocol front end for an Engine.
type Server struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	conns   map[uint32]*conn // by BackendKeyData process id
	nextPID uint32
	wg      sync.WaitGroup

	// draining is set once Serve's context has ended: sessions end at
	// their next wait for a command (conn.serve).
	draining atomic.Bool

	noRecover bool // tests: let panics through
}

// NewServer checks cfg and returns a Server; it starts nothing.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Engine == nil {
		return nil, errors.New("pgwire: Config.Engine is required")
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = defaultMaxMessageSize
	}
	if cfg.ServerVersion == "" {
		cfg.ServerVersion = "15.0 (raftsql)"
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.StartupTimeout <= 0 {
		cfg.StartupTimeout = 30 * time.Second
	}
	for name, d := range map[string]time.Duration{"StatementTimeout": cfg.StatementTimeout, "IdleInTxTimeout": cfg.IdleInTxTimeout} {
		if d < 0 || d > maxTimeoutSetting {
			return nil, fmt.Errorf("pgwire: Config.%s %v is outside 0 .. %v", name, d, maxTimeoutSetting)
		}
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, conns: make(map[uint32]*conn), nextPID: 1000}, nil
}

// Serve accepts connections on ln until ctx ends or ln fails, serving each
// in its own goroutine. When ctx ends it stops accepting and drains: a
// session waiting for a command gets FATAL 57P01 and is closed, a busy
// one finishes its statement (up to Config.ShutdownGrace) and then gets
// 57P01; nothing a client was told succeeded is cut short. Serve returns
// ErrServerClosed once every connection is gone. If ln fails, every
// connection is closed at once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Sessions and their statements run under connCtx, which ends only
	// when the grace after ctx is over (or at once if ln fails).
	connCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	stopAccepting := context.AfterFunc(ctx, func() { ln.Close() })
	defer stopAccepting()
	var err error
	for {
		var nc net.Conn
		nc, err = ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				continue
			}
			break
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(connCtx, nc)
		}()
	}
	if ctx.Err() == nil {
		ln.Close()
		hardStop()
		s.closeConns()
		s.wg.Wait()
		return fmt.Errorf("pgwire: accept: %w", err)
	}
	s.drain(hardStop)
	return ErrServerClosed
}

// minShutdownGrace lets sessions waiting for a command be told why they
// end even when no grace was configured.
const minShutdownGrace = 100 * time.Millisecond

// drain ends every session (see Serve) and returns when all are gone;
// after Config.ShutdownGrace it cuts off the rest with hardStop.
func (s *Server) drain(hardStop context.CancelFunc) {
	s.draining.Store(true)
	s.mu.Lock()
	for _, c := range s.conns {
		// A session blocked reading its next command wakes up, sees
		// draining and ends; a busy one sees it after its answer.
		_ = c.nc.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	g := s.cfg.ShutdownGrace
	if g <= 0 {
		g = minShutdownGrace
	}
	grace := time.NewTimer(g)
	defer grace.Stop()
	select {
	case <-done:
		return
	case <-grace.C:
	}
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	if n > 0 {
		s.log.Warn("pgwire: cutting off sessions still busy at the end of the shutdown grace", "sessions", n, "grace", g)
	}
	hardStop()
	s.closeConns()
	<-done
}

// closeConns closes every registered connection's socket.
func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.nc.Close()
	}
}

// ServeConn serves one already-accepted connection until it ends (used by
// tests and by callers with their own accept loop).
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	s.serveConn(ctx, nc)
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	stop := context.AfterFunc(ctx, func() { nc.Close() }) // unblocks reads
	defer stop()
	c := newConn(s, nc)
	defer func() {
		if s.noRecover {
			s.unregister(c)
			c.close()
			return
		}
		if r := recover(); r != nil {
			s.log.Error("pgwire: connection panic", "remote", nc.RemoteAddr().String(), "panic", r)
		}
		s.unregister(c)
		c.close()
	}()
	c.serve(ctx)
}

// register gives c a process id and secret and makes it cancelable;
// it fails when MaxConns connections are open.
func (s *Server) register(c *conn) error {
	var b [4]byte
	if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
		return fmt.Errorf("pgwire: backend key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.MaxConns > 0 && len(s.conns) >= s.cfg.MaxConns {
		return &Error{Code: "53300", Message: "sorry, too many clients already"}
	}
	for {
		s.nextPID++
		if s.nextPID == 0 {
			continue
		}
		if _, used := s.conns[s.nextPID]; !used {
			break
		}
	}
	c.pid = s.nextPID
	c.secret = append([]byte(nil), b[:]...)
	s.conns[c.pid] = c
	s.cfg.Observer.ConnOpened()
	return nil
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.pid != 0 && s.conns[c.pid] == c {
		delete(s.conns, c.pid)
		s.cfg.Observer.ConnClosed()
	}
}

// cancel cancels the running statement of the connection with this key.
// A wrong key is ignored, as PostgreSQL does.
func (s *Server) cancel(pid uint32, secret []byte) {
	s.mu.Lock()
	c := s.conns[pid]
	s.mu.Unlock()
	if c == nil || !bytes.Equal(c.secret, secret) {
		s.log.Debug("pgwire: cancel request with unknown key", "pid", pid)
		return
	}
	c.cancelRunning()
}
