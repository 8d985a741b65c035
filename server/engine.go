package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/pgwire"
	"github.com/raftsql/raftsql/sqltext"
)

// raftNode is what the engine needs from the Raft driver.
type raftNode interface {
	Propose(ctx context.Context, data []byte) error
	ReadIndex(ctx context.Context) (uint64, error)
	LeaseValid() bool
	LeaseReadIndex(ctx context.Context) (uint64, bool, error)
	Status() consensus.Status
	LeaderChanged() <-chan struct{}
}

// stateMachine is what the engine needs from the fsm.
type stateMachine interface {
	Expect(sessionID, seq uint64) *fsm.Waiter
	WaitApplied(ctx context.Context, index uint64) error
	Query(ctx context.Context, stmts []fsm.Statement) ([]fsm.Result, error)
	Describe(ctx context.Context, sql string) (fsm.Description, error)
}

// engine implements pgwire.Engine over Raft and the fsm.
type engine struct {
	node  raftNode
	sm    stateMachine
	clock func() time.Time
	// attemptTimeout bounds one proposal attempt before it is proposed
	// again (safe: exactly-once by session id and sequence number).
	attemptTimeout time.Duration
	writeTimeout   time.Duration
	// retryBackoff is how long to wait before retrying when there is no
	// leader and no leader change arrives.
	retryBackoff time.Duration

	metrics *metrics
}

var _ pgwire.Engine = (*engine)(nil)

// sqlStateError is an error that carries a PostgreSQL SQLSTATE.
type sqlStateError struct {
	code string
	msg  string
	err  error
}

func (e *sqlStateError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}
func (e *sqlStateError) Unwrap() error    { return e.err }
func (e *sqlStateError) SQLState() string { return e.code }

// SQLSTATEs the engine produces.
const (
	codeSerializationFailure = "40001" // retryable: leadership changed, no leader
	codeQueryCanceled        = "57014"
	codeFeatureNotSupported  = "0A000"
	codeConnectionFailure    = "08006"
)

func ctxError(ctx context.Context, what string) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return &sqlStateError{code: codeQueryCanceled, msg: "canceling statement due to user request", err: ctx.Err()}
	}
	return &sqlStateError{code: codeQueryCanceled, msg: "canceling statement due to statement timeout (" + what + ")", err: ctx.Err()}
}

func (e *engine) NewSession() pgwire.EngineSession {
	var seed [24]byte
	_, _ = rand.Read(seed[:])
	id := binary.LittleEndian.Uint64(seed[:8])
	if id == 0 {
		id = 1
	}
	return &session{
		e:   e,
		id:  id,
		rnd: mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[8:16]), binary.LittleEndian.Uint64(seed[16:]))),
	}
}

// Describe prepares sql against the local schema. The local replica may
// lag (a node that just restarted has not applied the CREATE TABLE yet):
// when preparing fails, the engine catches up to a linearizable read index
// and tries once more, so a client never gets "no such table" for a table
// whose creation was acknowledged.
func (e *engine) Describe(ctx context.Context, sql string) (fsm.Description, error) {
	d, err := e.sm.Describe(ctx, sql)
	if err == nil {
		return d, nil
	}
	if rerr := e.readIndex(ctx); rerr != nil {
		return d, err
	}
	return e.sm.Describe(ctx, sql)
}

func (e *engine) IsLeader() bool { return e.node.Status().Role == consensus.RoleLeader }

type session struct {
	e   *engine
	id  uint64
	seq uint64
	rnd *mrand.Rand
}

func (s *session) Close() {}

// Write proposes stmts as one log entry and waits until this node applied
// it. Across leader changes and dropped proposals it proposes the same
// (session, seq) again: the fsm applies it at most once.
func (s *session) Write(ctx context.Context, stmts []fsm.Statement) (res []fsm.Result, err error) {
	start := time.Now()
	defer func() { s.e.metrics.observeWrite(time.Since(start), err) }()
	now := s.e.clock().UTC()
	det, err := s.deterministic(stmts, now)
	if err != nil {
		return nil, err
	}
	return s.propose(ctx, fsm.Command{UnixMicro: now.UnixMicro(), Stmts: det})
}

// deterministic fixes the non-deterministic parts of stmts (random(),
// 'now', …) once, here, so that every node applies the same text.
func (s *session) deterministic(stmts []fsm.Statement, now time.Time) ([]fsm.Statement, error) {
	det := make([]fsm.Statement, len(stmts))
	for i, st := range stmts {
		q, err := sqltext.MakeDeterministic(st.SQL, now, s.rnd)
		if err != nil {
			return nil, &sqlStateError{code: codeFeatureNotSupported, msg: "statement cannot be replicated deterministically", err: err}
		}
		det[i] = fsm.Statement{SQL: q, Args: st.Args}
	}
	return det, nil
}

// propose gives cmd the session's id and next sequence number, proposes
// it, and waits until this node applied it.
func (s *session) propose(ctx context.Context, cmd fsm.Command) (res []fsm.Result, err error) {
	e := s.e
	if _, ok := ctx.Deadline(); !ok && e.writeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.writeTimeout)
		defer cancel()
	}
	s.seq++
	cmd.SessionID, cmd.Seq = s.id, s.seq
	res, waitErr, err := e.proposeUntilApplied(ctx, cmd, e.attemptTimeout)
	switch {
	case err != nil:
		return nil, &sqlStateError{code: codeConnectionFailure, msg: "could not propose the write", err: err}
	case waitErr != nil:
		return nil, s.outcomeUnknown(ctx)
	}
	return res, nil
}

// proposeUntilApplied proposes cmd (SessionID and Seq set) and waits
// until this node applied it and delivered its result. It proposes the
// same (session, seq) again — the fsm applies it at most once — after a
// leader change, after retryBackoff when the proposal was dropped (no
// leader), or when an attempt waited attempt without a result (the
// proposal may have been lost with a leader). err is a refusal by the
// node other than a dropped proposal; waitErr the waiter's failure (ctx
// ended, or fsm.ErrRestored: a snapshot was installed meanwhile, so the
// result is unknown here).
func (e *engine) proposeUntilApplied(ctx context.Context, cmd fsm.Command, attempt time.Duration) (res []fsm.Result, waitErr, err error) {
	data := fsm.EncodeCommand(cmd)
	w := e.sm.Expect(cmd.SessionID, cmd.Seq)
	defer w.Cancel()
	type outcome struct {
		res []fsm.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := w.Wait(ctx)
		done <- outcome{res, err}
	}()
	for {
		changed := e.node.LeaderChanged()
		err := e.node.Propose(ctx, data)
		retry := attempt
		switch {
		case err == nil:
		case errors.Is(err, consensus.ErrProposalDropped):
			retry = e.retryBackoff
		case ctx.Err() != nil:
		default:
			return nil, nil, err
		}
		t := time.NewTimer(retry)
		select {
		case o := <-done:
			t.Stop()
			return o.res, o.err, nil
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// outcomeUnknown is the error for a write whose fate is not known when the
// caller's deadline ends: it may still be applied.
func (s *session) outcomeUnknown(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctxError(ctx, "")
	}
	return &sqlStateError{code: codeSerializationFailure, msg: "could not confirm the write in time (no leader or no quorum); it may or may not have been applied", err: ctx.Err()}
}

// waitChange waits for a leader change, backoff, or ctx.
func waitChange(ctx context.Context, changed <-chan struct{}, backoff time.Duration) error {
	t := time.NewTimer(backoff)
	defer t.Stop()
	select {
	case <-changed:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Read runs read-only statements on the local replica once it is as fresh
// as c requires.
func (s *session) Read(ctx context.Context, c pgwire.Consistency, stmts []fsm.Statement) (res []fsm.Result, err error) {
	e := s.e
	start := time.Now()
	defer func() { e.metrics.observeRead(time.Since(start), err) }()
	if err := e.catchUp(ctx, c); err != nil {
		return nil, err
	}
	return e.sm.Query(ctx, stmts)
}

// catchUp makes the local replica as fresh as c requires.
func (e *engine) catchUp(ctx context.Context, c pgwire.Consistency) error {
	switch c {
	case pgwire.Stale:
		return nil
	case pgwire.Lease:
		ok, err := e.leaseRead(ctx)
		if err != nil || ok {
			return err
		}
	}
	return e.readIndex(ctx)
}

// leaseRead waits for the leader's commit index to be applied while its
// lease holds. ok is false when this node holds no valid lease (the caller
// falls back to a read-index read).
func (e *engine) leaseRead(ctx context.Context) (bool, error) {
	if !e.node.LeaseValid() {
		return false, nil
	}
	commit, ok, err := e.node.LeaseReadIndex(ctx)
	if err != nil || !ok {
		return false, nil
	}
	if err := e.sm.WaitApplied(ctx, commit); err != nil {
		return false, ctxError(ctx, "waiting to apply")
	}
	// The lease must still hold once the state is applied.
	return e.node.LeaseValid(), nil
}

// readIndex obtains a linearizable read index and waits until it is
// applied locally, retrying across leader changes until ctx ends.
func (e *engine) readIndex(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok && e.writeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.writeTimeout)
		defer cancel()
	}
	for {
		changed := e.node.LeaderChanged()
		attempt, cancel := context.WithTimeout(ctx, e.attemptTimeout)
		idx, err := e.node.ReadIndex(attempt)
		cancel()
		if err == nil {
			if err := e.sm.WaitApplied(ctx, idx); err != nil {
				return ctxError(ctx, "waiting to apply the read index")
			}
			return nil
		}
		if ctx.Err() != nil {
			return &sqlStateError{code: codeSerializationFailure, msg: "could not confirm leadership for a linearizable read in time (no leader or no quorum)", err: ctx.Err()}
		}
		if werr := waitChange(ctx, changed, e.retryBackoff); werr != nil {
			return &sqlStateError{code: codeSerializationFailure, msg: "could not confirm leadership for a linearizable read in time", err: fmt.Errorf("%w (last: %w)", werr, err)}
		}
	}
}
