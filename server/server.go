package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/raftsql/raftsql/auth"
	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/node"
	"github.com/raftsql/raftsql/consensus/transport"
	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/pgwire"
	"github.com/raftsql/raftsql/store"
)

// ErrDataDirLocked: another process uses the data directory.
var ErrDataDirLocked = errors.New("data directory is in use by another process")

// Server is one running raftsql node: the Raft driver, the SQLite state
// machine, the PostgreSQL front end and the HTTP API.
type Server struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File
	sec  *auth.Setup

	store *store.Store
	fsm   *fsm.FSM
	tr    transport.Transport
	node  *node.Node
	eng   *engine
	pg    *pgwire.Server

	pgLn, httpLn net.Listener
	httpSrv      *http.Server
	httpClient   *http.Client
	// startIndex is the last log index at start: /readyz waits until it
	// (or the commit index, if lower) is applied.
	startIndex uint64
	metrics    *metrics

	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	// promote holds learners that joined as voters-to-be.
	promote map[string]bool

	// term mirrors the node's Raft term for the logs.
	term atomic.Uint64
	// registered is set once the directory holds this node's addresses.
	registered atomic.Bool
	// restore runs POST /restore and --restore (restore.go).
	restore *restorer

	// snapAsk carries restored's requests for a snapshot to a goroutine
	// that starts once s.node is set (the applier may run before).
	snapAsk chan struct{}

	fatalc    chan struct{}
	fatalOnce sync.Once
	fatalErr  error
}

// shutdownGrace is how long statements running when the node stops may
// take to finish (pgwire.Config.ShutdownGrace); it fits in the 10 s Run
// gives Close together with the leadership hand-off (at most two
// election timeouts).
const shutdownGrace = 5 * time.Second

// Run starts a node and serves until ctx is done, then shuts down.
func Run(ctx context.Context, cfg Config) error {
	s, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	var fatal error
	select {
	case <-ctx.Done():
	case <-s.fatalc:
		fatal = s.fatalErr
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(fatal, s.Close(shutdown))
}

// Fatal is closed when the node hit an error it cannot go on from (its
// disk refused a write, its database is damaged); FatalErr says which.
// The process should exit: restarting from the data directory is the
// recovery, as after a crash.
func (s *Server) Fatal() <-chan struct{} { return s.fatalc }

// setFatal records the first fatal error and closes Fatal.
func (s *Server) setFatal(err error) {
	s.fatalOnce.Do(func() {
		s.fatalErr = err
		close(s.fatalc)
	})
}

// FatalErr is the error that closed Fatal.
func (s *Server) FatalErr() error {
	select {
	case <-s.fatalc:
		return s.fatalErr
	default:
		return nil
	}
}

// Start opens the data directory, starts Raft and the listeners, and
// returns once the node is serving (it may not have a leader yet).
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, promote: map[string]bool{}, metrics: newMetrics(), fatalc: make(chan struct{}), snapAsk: make(chan struct{}, 1)}
	s.log = slog.New(termHandler{inner: cfg.Logger.Handler(), term: &s.term}).With("node", cfg.ID)
	defer func() {
		if err != nil {
			s.closeAll(context.Background())
		}
	}()
	if s.sec, err = cfg.loadSecurity(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if s.lock, err = lockDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if s.store, err = store.Open(ctx, filepath.Join(cfg.DataDir, "raft"), store.Options{Logger: s.log}); err != nil {
		return nil, fmt.Errorf("open raft store in %s: %w", cfg.DataDir, err)
	}
	if s.fsm, err = fsm.Open(ctx, filepath.Join(cfg.DataDir, "sqlite"), fsm.Options{Logger: s.log, OnRestore: s.restored}); err != nil {
		return nil, fmt.Errorf("open sqlite state machine in %s: %w", cfg.DataDir, err)
	}
	if s.startIndex, err = s.store.LastIndex(); err != nil {
		return nil, fmt.Errorf("read raft store: %w", err)
	}
	fresh := s.startIndex == 0
	// --restore: checked (and recorded as pending) before Raft starts, so
	// that a bad file leaves the data directory fresh.
	s.restore = newRestorer(s)
	completeRestore, err := s.restore.restoreAtStart(ctx, fresh)
	if err != nil {
		return nil, err
	}
	var peers []consensus.Member
	if fresh && cfg.Join == "" {
		peers = cfg.Peers
		if len(peers) == 0 {
			peers = []consensus.Member{{ID: cfg.ID, Addr: cfg.advertisedRaftAddr(), Voter: true}}
		}
	}
	snaps, err := node.OpenSnapshots(filepath.Join(cfg.DataDir, "snapshots"), s.log)
	if err != nil {
		return nil, fmt.Errorf("open snapshot directory in %s: %w", cfg.DataDir, err)
	}
	s.tr, err = transport.NewTCP(transport.TCPConfig{
		ID:         cfg.ID,
		ListenAddr: cfg.RaftAddr,
		// Sent in every connection's preface so that a node that does not
		// know this one yet can answer it; the node replaces it with this
		// node's address in the configuration once it has one.
		AdvertiseAddr: cfg.RaftAdvertise,
		Logger:        s.log,
		Snapshots:     &transport.SnapshotConfig{Source: snaps, Sink: snaps},
		TLS:           s.sec.PeerServer,
	})
	if err != nil {
		return nil, fmt.Errorf("raft transport: %w", err)
	}
	s.node, err = node.Start(ctx, node.Config{
		ID:                cfg.ID,
		Peers:             peers,
		ElectionTimeout:   cfg.ElectionTimeout,
		HeartbeatInterval: cfg.HeartbeatInterval,
		Store:             timedStore{LogStore: s.store, m: s.metrics},
		Transport:         s.tr,
		StateMachine:      s.fsm,
		Logger:            s.log,
		Snapshots:         snaps,
		SnapshotEntries:   cfg.SnapshotEntries,
		Clock:             cfg.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	// Peers of the applied configuration: the log may end with a change
	// that removes one of them and that a leader change will truncate; this
	// node must still be able to answer that peer.
	if conf, err := s.fsm.ConfState(ctx); err == nil {
		for _, m := range conf.Members {
			if m.ID != cfg.ID && m.Addr != "" {
				s.tr.AddPeer(m.ID, m.Addr)
			}
		}
	}
	s.eng = &engine{
		node:           s.node,
		sm:             s.fsm,
		clock:          time.Now,
		attemptTimeout: 2 * cfg.ElectionTimeout,
		writeTimeout:   cfg.WriteTimeout,
		retryBackoff:   cfg.HeartbeatInterval,
		metrics:        s.metrics,
	}
	if s.pgLn, err = net.Listen("tcp", cfg.PGAddr); err != nil {
		return nil, fmt.Errorf("listen for PostgreSQL clients on %s: %w", cfg.PGAddr, err)
	}
	if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	s.httpClient = s.sec.HTTPClient(30 * time.Second)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if s.pg, err = pgwire.NewServer(pgwire.Config{
		Engine:    s.eng,
		Logger:    s.log,
		TLSConfig: s.sec.ClientTLS,
		AuthUsers: s.sec.Users,

		StatementTimeout: cfg.StatementTimeout,
		IdleInTxTimeout:  cfg.IdleInTxTimeout,
		MaxConns:         cfg.MaxConnections,
		MaxMessageSize:   cfg.MaxMessageSize,
		Observer:         s.metrics,
		ShutdownGrace:    shutdownGrace,
	}); err != nil {
		cancel()
		return nil, err
	}
	s.goRun("pgwire", func() error {
		if err := s.pg.Serve(runCtx, s.pgLn); !errors.Is(err, pgwire.ErrServerClosed) {
			return err
		}
		return nil
	})
	api := &httpAPI{s: s}
	s.httpSrv = &http.Server{Handler: s.sec.HTTPHandler(api.routes(), "/readyz"), ReadHeaderTimeout: 10 * time.Second}
	s.goRun("http", func() error {
		if err := s.httpSrv.Serve(tlsListener(s.httpLn, s.sec.HTTPTLS)); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	s.goRun("raft-watch", func() error {
		select {
		case <-runCtx.Done():
		case <-s.node.Done():
			if err := s.node.Err(); err != nil && runCtx.Err() == nil {
				s.log.Error("raft stopped on a fatal error; shutting down (restart the node to recover)", "err", err)
				s.setFatal(fmt.Errorf("raft stopped: %w", err))
			}
		}
		return nil
	})
	s.goRun("promoter", func() error { s.promoteLoop(runCtx); return nil })
	s.goRun("snapshots", func() error {
		for {
			select {
			case <-s.snapAsk:
				s.node.RequestSnapshot()
			case <-runCtx.Done():
				return nil
			}
		}
	})
	s.goRun("term", func() error {
		for {
			st := s.node.Status()
			s.term.Store(st.Term)
			s.metrics.noteLeader(st.Lead) // between scrapes too
			select {
			case <-runCtx.Done():
				return nil
			case <-time.After(cfg.HeartbeatInterval):
			}
		}
	})
	s.goRun("directory", func() error { s.announceLoop(runCtx); return nil })
	if completeRestore != nil {
		s.goRun("restore", func() error { return completeRestore(runCtx) })
	}
	if fresh && cfg.Join != "" {
		s.goRun("join", func() error {
			err := s.joinCluster(runCtx)
			if errors.Is(err, errJoinRefused) {
				s.setFatal(err)
			}
			return err
		})
	}
	s.log.Info("raftsqld started", "pg", s.pgLn.Addr().String(), "raft", cfg.RaftAddr,
		"http", s.httpLn.Addr().String(), "data_dir", cfg.DataDir, "fresh", fresh)
	return s, nil
}

// PGAddr and HTTPAddr are the bound listen addresses.
func (s *Server) PGAddr() string   { return s.pgLn.Addr().String() }
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

func (s *Server) goRun(name string, f func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("component stopped with an error", "component", name, "err", err)
			s.mu.Lock()
			s.errs = append(s.errs, fmt.Errorf("%s: %w", name, err))
			s.mu.Unlock()
		}
	}()
}

// Close stops serving and releases the data directory. A leader first
// hands leadership to the most up-to-date other voter, so that a planned
// restart costs the cluster no election timeout.
func (s *Server) Close(ctx context.Context) error {
	if err := s.handOffLeadership(ctx); err != nil && s.node != nil && s.node.Status().Role == consensus.RoleLeader {
		s.log.Warn("stopping without handing leadership over", "err", err)
	}
	s.closeAll(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// restored runs (on the applier) after a restore entry replaced the
// database: a snapshot right away compacts the restore's chunks out of
// the log, instead of two --snapshot-entries periods later.
func (s *Server) restored(index uint64) {
	s.log.Info("restore applied; taking a snapshot to compact its chunks out of the log", "index", index)
	select {
	case s.snapAsk <- struct{}{}:
	default: // one is pending already
	}
}

// handOffLeadership transfers leadership away from this node if it leads
// a cluster with other voters, waiting at most an election timeout.
func (s *Server) handOffLeadership(ctx context.Context) error {
	if s.node == nil {
		return nil
	}
	st := s.node.Status()
	if st.Role != consensus.RoleLeader {
		return nil
	}
	best, bestMatch := "", uint64(0)
	for _, m := range st.Conf.Members {
		if m.Voter && m.ID != st.ID && (best == "" || st.Match[m.ID] > bestMatch) {
			best, bestMatch = m.ID, st.Match[m.ID]
		}
	}
	if best == "" {
		return errors.New("no other voter to hand leadership to")
	}
	tctx, cancel := context.WithTimeout(ctx, 2*s.cfg.ElectionTimeout)
	defer cancel()
	if err := s.node.TransferLeadership(tctx, best); err != nil {
		return fmt.Errorf("handing leadership to %s: %w", best, err)
	}
	s.log.Info("handed leadership over", "to", best)
	return nil
}

func (s *Server) closeAll(ctx context.Context) {
	if s.cancel != nil {
		s.cancel()
	}
	if s.httpSrv != nil {
		_ = s.httpSrv.Shutdown(ctx)
	} else if s.httpLn != nil {
		_ = s.httpLn.Close()
	}
	if s.pgLn != nil {
		_ = s.pgLn.Close()
	}
	s.wg.Wait()
	if s.node != nil {
		if err := s.node.Stop(ctx); err != nil {
			s.log.Warn("stopping raft", "err", err)
		}
	} else if s.tr != nil {
		_ = s.tr.Close()
	}
	if s.fsm != nil {
		if err := s.fsm.Close(); err != nil {
			s.log.Warn("closing sqlite", "err", err)
		}
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("closing raft store", "err", err)
		}
	}
	if s.lock != nil {
		_ = s.lock.Close()
	}
}

// lockDir takes an exclusive lock on dir/LOCK for the life of the process.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrDataDirLocked, dir, err)
	}
	return f, nil
}

// ready reports nil once the node knows a leader and has applied what it
// knew of at start.
func (s *Server) ready() error {
	st := s.node.Status()
	if st.Lead == "" {
		return errors.New("no leader known yet")
	}
	target := min(s.startIndex, st.Commit)
	if applied := s.fsm.AppliedIndex(); applied < target {
		return fmt.Errorf("catching up: applied %d of %d", applied, target)
	}
	// Ready also means registered: the node's addresses are in the
	// replicated directory, so that no write of its own follows readiness
	// (and members can forward to it).
	if !s.registered.Load() {
		return errors.New("registering this node's addresses in the cluster directory")
	}
	if s.restore.pending.Load() {
		return errors.New("loading the --restore file through the log")
	}
	return nil
}

// errJoinRefused: the cluster refused this node's /join (fatal: the
// operator must act, e.g. remove the old member first).
var errJoinRefused = errors.New("join refused")

// ErrJoinUnauthorized: the cluster's HTTP API answered /join with 401, so
// the node stops: it runs with --auth-file and this node sent no
// credentials (--join-user, RAFTSQL_JOIN_PASSWORD) or wrong ones.
var ErrJoinUnauthorized = errors.New("the cluster requires valid credentials for /join")

// joinCluster asks the members at cfg.Join (a comma-separated list, tried
// in turn) to add this node, retrying until one accepts. A node that is to
// be a voter then keeps asking until it is one: the promotion intent lives
// with the joining node, so it survives leader changes.
func (s *Server) joinCluster(ctx context.Context) error {
	if err := s.askToJoin(ctx); err != nil {
		return err
	}
	if s.cfg.Learner {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		if isVoter(s.node.Status().Conf, s.cfg.ID) {
			s.log.Info("this node is a voter now")
			return nil
		}
		if err := s.askToJoin(ctx); err != nil {
			if errors.Is(err, errJoinRefused) {
				// This process joined as a learner above: a refusal
				// now ("already a voter") means the promotion was
				// committed before this node applied it. Not fatal:
				// wait for the configuration to say so.
				s.log.Info("join request refused after joining; waiting for the configuration to show the promotion", "err", err)
				continue
			}
			return err
		}
	}
}

// joinAddrs lists where to send /join, each address once: the leader
// from the node directory once this node has it, the other members in id
// order, then the --join list. The order is stable because askToJoin
// takes the next address at each attempt and an attempt on a member that
// is down costs a timeout: with the order of a map, one frozen member
// (the one named by --join, listed twice before) could take every
// attempt while the leader waits.
func (s *Server) joinAddrs(ctx context.Context) []string {
	var addrs []string
	add := func(a string) {
		if a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if nodes, err := s.fsm.Nodes(ctx); err == nil {
		add(nodes[s.node.Leader()].HTTPAddr)
		for _, id := range slices.Sorted(maps.Keys(nodes)) {
			if id != s.cfg.ID {
				add(nodes[id].HTTPAddr)
			}
		}
	}
	for _, a := range strings.Split(s.cfg.Join, ",") {
		add(strings.TrimSpace(a))
	}
	return addrs
}

// askToJoin posts this node's /join request to the members in turn
// (re-reading the directory each time, as it may arrive meanwhile) until
// one accepts it.
func (s *Server) askToJoin(ctx context.Context) error {
	body, _ := json.Marshal(map[string]any{"id": s.cfg.ID, "raft_addr": s.cfg.advertisedRaftAddr(), "voter": !s.cfg.Learner})
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		addrs := s.joinAddrs(ctx)
		addr := addrs[attempt%len(addrs)]
		rctx, cancel := context.WithTimeout(ctx, 2*s.cfg.ElectionTimeout)
		code, msg, err := s.postJSON(rctx, addr, "/join", body)
		cancel()
		switch {
		case err == nil && code == http.StatusOK:
			var jr joinResponse
			if err := json.Unmarshal(msg, &jr); err != nil {
				return fmt.Errorf("join through %s: bad response: %w", addr, err)
			}
			for _, m := range jr.Configuration {
				if m.ID != s.cfg.ID {
					s.tr.AddPeer(m.ID, m.RaftAddr)
				}
			}
			s.log.Info("joined the cluster", "through", addr, "status", jr.Status)
			return nil
		case err == nil && code == http.StatusUnauthorized:
			return s.joinUnauthorized(addr, msg)
		case err == nil && code >= 400 && code < 500:
			return fmt.Errorf("%w through %s: %s", errJoinRefused, addr, bytes.TrimSpace(msg))
		case err == nil:
			s.log.Warn("join attempt failed; retrying", "through", addr, "status", code, "body", string(bytes.TrimSpace(msg)))
		default:
			s.log.Warn("join attempt failed; retrying", "through", addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// joinUnauthorized is the error of a /join answered with 401: what the
// operator has to change.
func (s *Server) joinUnauthorized(addr string, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	reason := string(bytes.TrimSpace(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		reason = e.Error
	}
	if s.cfg.JoinUser == "" {
		return fmt.Errorf("%w: %w through %s: the cluster runs with --auth-file; start this node with --join-user USER and the password in RAFTSQL_JOIN_PASSWORD (%s)",
			errJoinRefused, ErrJoinUnauthorized, addr, reason)
	}
	return fmt.Errorf("%w: %w through %s: --join-user %q and its password (RAFTSQL_JOIN_PASSWORD) do not match a user of the cluster's --auth-file (%s)",
		errJoinRefused, ErrJoinUnauthorized, addr, s.cfg.JoinUser, reason)
}

// postJSON posts body to http://addr/path and returns the status and body.
// With --join-user it sends those credentials (HTTP basic auth, which
// auth.BasicAuth checks against the auth file's SCRAM verifiers); serve
// the API over TLS when they cross a network.
func (s *Server) postJSON(ctx context.Context, addr, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.sec.HTTPScheme()+"://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.cfg.JoinUser != "" {
		req.SetBasicAuth(s.cfg.JoinUser, s.cfg.JoinPassword)
	}
	resp, err := s.httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, msg, err
}

// promoteWhenCaughtUp marks a learner for promotion to voter once it has
// caught up with the leader's log.
func (s *Server) promoteWhenCaughtUp(id string) {
	s.mu.Lock()
	s.promote[id] = true
	s.mu.Unlock()
}

// promoteCatchUpSlack is how close (in entries) a learner must be to the
// leader's last index to be promoted.
const promoteCatchUpSlack = 100

func (s *Server) promoteLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		var ids []string
		for id := range s.promote {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		st := s.node.Status()
		if st.Role != consensus.RoleLeader {
			continue
		}
		for _, id := range ids {
			member, voter := false, false
			for _, m := range st.Conf.Members {
				if m.ID == id {
					member, voter = true, m.Voter
				}
			}
			if !member || voter {
				// Promoted already, or removed since: nothing to do. (A
				// promotion is only asked for once the learner's addition
				// is committed, so "not a member" never means "not yet".)
				s.mu.Lock()
				delete(s.promote, id)
				s.mu.Unlock()
				continue
			}
			if match := st.Match[id]; match+promoteCatchUpSlack >= st.LastIndex && match > 0 {
				err := s.changeMembership(ctx, consensus.ConfChange{Type: consensus.ConfAddVoter, ID: id})
				if err != nil {
					s.log.Warn("promoting learner", "id", id, "err", err)
					continue
				}
				s.log.Info("promoted learner to voter", "id", id)
			}
		}
	}
}
