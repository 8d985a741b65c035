package pgwire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/sqltext"
)

// flushThreshold is how many bytes of rows are buffered before they are
// written to the client.
const flushThreshold = 256 << 10

type txnState int

const (
	txnIdle   txnState = iota // no explicit transaction: 'I'
	txnOpen                   // inside BEGIN: 'T'
	txnFailed                 // an error inside BEGIN: 'E'
)

// conn is one client connection: the session state machine. It is used
// only by its own goroutine, except cancelRunning (CancelRequest, from
// another connection's goroutine).
type conn struct {
	srv *Server
	nc  net.Conn
	be  *pgproto3.Backend
	log *slog.Logger

	pid    uint32
	secret []byte
	sess   EngineSession

	user, database string
	settings       map[string]string // by lower-case name
	consistency    Consistency
	wasLeader      bool // last reported in_hot_standby / read_only state

	txn         txnState
	txnReadOnly bool
	txnWrites   []fsm.Statement // buffered writes (no InteractiveSession)
	tx          EngineTx        // open interactive transaction, if any
	txnNoticed  bool

	stmts   map[string]*prepared
	portals map[string]*portal

	// The current Sync group (extended protocol) or Query (simple).
	out        []item    // replies not sent yet, in order
	unit       []*portal // engine statements not run yet
	unitWrite  bool      // unit contains a write
	unitTx     bool      // unit runs in the interactive transaction
	errSent    bool      // an ErrorResponse was sent in this group
	skipToSync bool      // extended protocol: ignore until Sync

	unflushed int // bytes of DataRows sent since the last flush (approx.)

	// awaitingCommand: ReadyForQuery was sent and no message has come
	// since (idle_in_transaction_session_timeout counts this wait).
	awaitingCommand bool

	runMu     sync.Mutex
	runCancel context.CancelCauseFunc
}

// prepared is a parsed statement (named, unnamed, or one statement of a
// simple Query).
type prepared struct {
	name   string
	query  string // the client's text (whole Query string for simple)
	offset int    // of this statement in query
	st     sqltext.Statement
	sql    string // SQLite dialect, for engine statements
	local  bool   // answered by the front end
	desc   fsm.Description
	params []uint32 // parameter OIDs
	// fields, once sent in a RowDescription for Describe S, fix the
	// result types of every execution.
	fields    []field
	described bool
}

type field struct {
	name string
	oid  uint32
}

// portal is a bound statement and, once run, its result and cursor.
type portal struct {
	name    string
	ps      *prepared
	args    []any
	formats []int16 // result format codes as sent in Bind
	simple  bool    // simple Query: text results, RowDescription with rows

	fields   []field // resolved result fields (nil until known)
	resolved bool
	rs       *resultSet
	inUnit   bool // waits in the current unit
	pos      int
	done     bool

	start    time.Time // first Execute, for Observer.Query
	observed bool      // Observer.Query was called
}

type resultSet struct {
	cols []fsm.Column // engine result columns (nil: no rows)
	// fields, when set, are the result fields of a local statement.
	fields []field
	rows   [][]any
	tag    string // "" for SELECT-like: computed from the rows sent
	pre    []pgproto3.BackendMessage
	err    error
}

type itemKind int

const (
	itemMsg itemKind = iota
	itemDescribe
	itemExec
)

type item struct {
	kind    itemKind
	msg     pgproto3.BackendMessage
	p       *portal
	maxRows int
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		srv:      s,
		nc:       nc,
		be:       s.newBackend(nc),
		log:      s.log.With("remote", nc.RemoteAddr().String()),
		settings: s.defaultSettings(),
		stmts:    make(map[string]*prepared),
		portals:  make(map[string]*portal),
	}
}

// newBackend is the wire codec of a client connection (plain, or TLS
// after SSLRequest), its messages bounded by Config.MaxMessageSize.
func (s *Server) newBackend(nc net.Conn) *pgproto3.Backend {
	be := pgproto3.NewBackend(nc, nc)
	be.SetMaxBodyLen(s.cfg.MaxMessageSize)
	return be
}

func (c *conn) close() {
	if c.tx != nil {
		c.tx.Rollback()
		c.tx = nil
	}
	if c.sess != nil {
		c.sess.Close()
		c.log.Debug("pgwire: session ended")
	}
	c.nc.Close()
}

// serve runs the connection: startup, then the message loop.
func (c *conn) serve(ctx context.Context) {
	_ = c.nc.SetDeadline(time.Now().Add(c.srv.cfg.StartupTimeout))
	if !c.startup(ctx) {
		return
	}
	_ = c.nc.SetDeadline(time.Time{})
	deadlineSet := false
	for {
		if ctx.Err() != nil {
			return
		}
		// Idle in a transaction block: the client got ReadyForQuery 'T'
		// or 'E' and owes the next command. Like PostgreSQL, only this
		// wait counts (not the one between Parse and Sync).
		idle := time.Duration(0)
		if c.awaitingCommand && c.txn != txnIdle {
			idle = c.idleInTxTimeout()
		}
		switch {
		case idle > 0:
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
			deadlineSet = true
		case deadlineSet:
			_ = c.nc.SetReadDeadline(time.Time{})
			deadlineSet = false
		}
		// Checked after the deadline is set: drain sets draining before
		// it moves the deadline, so a session that misses the flag here
		// is woken from Receive below.
		if c.srv.draining.Load() {
			c.shutdown()
			return
		}
		msg, err := c.be.Receive()
		if err != nil {
			if c.srv.draining.Load() {
				c.shutdown()
				return
			}
			var ne net.Error
			if idle > 0 && errors.As(err, &ne) && ne.Timeout() {
				c.idleInTxExpired(idle)
				return
			}
			c.receiveError(err)
			return
		}
		c.awaitingCommand = false
		if !c.handle(ctx, msg) {
			return
		}
	}
}

// idleInTxExpired ends a session that sat idle in a transaction block
// for longer than idle_in_transaction_session_timeout, as PostgreSQL 15
// does: FATAL 25P03, then the connection closes (close rolls back the
// engine transaction).
func (c *conn) idleInTxExpired(idle time.Duration) {
	c.log.Info("pgwire: closing a session idle in a transaction", "timeout", idle)
	c.fatal(&Error{Code: codeIdleInTxTimeout, Message: ErrIdleInTxTimeout.Error(), Err: ErrIdleInTxTimeout})
}

// shutdown ends a session of a stopping server as PostgreSQL's fast
// shutdown does: FATAL 57P01, then the connection closes (close rolls
// back an open transaction, which never committed anything). Work queued
// without a Sync was never run.
func (c *conn) shutdown() {
	c.log.Debug("pgwire: ending the session, the server is stopping")
	c.fatal(&Error{Code: codeAdminShutdown, Message: ErrShutdown.Error(), Err: ErrShutdown})
}

// receiveError answers a message that could not be read: a closed
// connection ends quietly, anything else is a protocol violation.
func (c *conn) receiveError(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return
	}
	c.log.Debug("pgwire: bad message", "err", err)
	code := codeProtocolViolation
	msg := "invalid message: " + err.Error()
	var tooBig *pgproto3.ExceededMaxBodyLenErr
	if errors.As(err, &tooBig) {
		msg = fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", tooBig.ActualBodyLen, tooBig.MaxExpectedBodyLen)
	}
	c.sendErrorResponse(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg})
	_ = c.be.Flush()
}

func (c *conn) fatal(err error) {
	r := toErrorResponse(err, "", 0)
	r.Severity, r.SeverityUnlocalized = "FATAL", "FATAL"
	c.sendErrorResponse(r)
	_ = c.be.Flush()
}

// sendErrorResponse is where every ErrorResponse leaves (for the
// Observer).
func (c *conn) sendErrorResponse(r *pgproto3.ErrorResponse) {
	c.srv.cfg.Observer.Error(r.Code)
	c.be.Send(r)
}

// startup runs the startup phase; false closes the connection.
func (c *conn) startup(ctx context.Context) bool {
	for {
		msg, err := c.be.ReceiveStartupMessage()
		if err != nil {
			c.receiveError(err)
			return false
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if c.srv.cfg.TLSConfig == nil {
				if _, err := c.nc.Write([]byte{'N'}); err != nil {
					return false
				}
				continue
			}
			if _, err := c.nc.Write([]byte{'S'}); err != nil {
				return false
			}
			tc := tls.Server(c.nc, c.srv.cfg.TLSConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.log.Debug("pgwire: TLS handshake", "err", err)
				return false
			}
			c.nc = tc
			c.be = c.srv.newBackend(tc)
		case *pgproto3.GSSEncRequest:
			if _, err := c.nc.Write([]byte{'N'}); err != nil {
				return false
			}
		case *pgproto3.CancelRequest:
			c.srv.cancel(m.ProcessID, m.SecretKey)
			return false
		case *pgproto3.StartupMessage:
			return c.acceptStartup(ctx, m)
		default:
			c.fatal(newError(codeProtocolViolation, ErrProtocol, "unexpected startup message %T", msg))
			return false
		}
	}
}

func (c *conn) acceptStartup(ctx context.Context, m *pgproto3.StartupMessage) bool {
	var unknown []string
	for k, v := range m.Parameters {
		switch {
		case k == "user":
			c.user = v
		case k == "database":
			c.database = v
		case k == "options":
			opts, err := parseStartupOptions(v)
			if err != nil {
				c.fatal(err)
				return false
			}
			for name, val := range opts {
				if _, err := c.setSetting(name, val); err != nil {
					c.fatal(err)
					return false
				}
			}
		case strings.HasPrefix(k, "_pq_."):
			unknown = append(unknown, k)
		case k == "replication":
			c.fatal(newError(codeFeatureNotSupported, ErrNotSupported, "replication connections are not supported"))
			return false
		default:
			if _, err := c.setSetting(k, v); err != nil {
				c.fatal(err)
				return false
			}
		}
	}
	if c.user == "" {
		c.fatal(&Error{Code: "28000", Message: "no PostgreSQL user name specified in startup packet"})
		return false
	}
	if c.database == "" {
		c.database = c.user
	}
	if c.srv.cfg.AuthUsers != nil && !c.authUsers() {
		return false
	}
	if a := c.srv.cfg.Authenticate; a != nil {
		if err := a(ctx, c.user, c.database); err != nil {
			c.fatal(&Error{Code: "28000", Message: err.Error(), Err: err})
			return false
		}
	}
	if err := c.srv.register(c); err != nil {
		c.fatal(err)
		return false
	}
	c.settings["session_authorization"] = c.user
	c.log = c.log.With("pid", c.pid, "user", c.user, "database", c.database)
	c.log.Debug("pgwire: session started", "application_name", c.settings["application_name"])
	c.sess = c.srv.cfg.Engine.NewSession()
	if m.ProtocolVersion != pgproto3.ProtocolVersion30 || len(unknown) > 0 {
		c.be.Send(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown})
	}
	c.be.Send(&pgproto3.AuthenticationOk{})
	c.wasLeader = c.srv.cfg.Engine.IsLeader()
	for _, name := range reportedSettings {
		c.be.Send(&pgproto3.ParameterStatus{Name: name, Value: c.showSetting(name)})
	}
	c.be.Send(&pgproto3.BackendKeyData{ProcessID: c.pid, SecretKey: c.secret})
	c.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	return c.be.Flush() == nil
}

// handle processes one message; false ends the connection.
func (c *conn) handle(ctx context.Context, msg pgproto3.FrontendMessage) bool {
	switch m := msg.(type) {
	case *pgproto3.Query:
		c.runPending(ctx)
		c.skipToSync = false
		c.simpleQuery(ctx, m.String)
		c.skipToSync = false
		return c.readyForQuery()
	case *pgproto3.Sync:
		c.runPending(ctx)
		c.skipToSync = false
		if c.txn == txnIdle {
			c.dropPortals()
		}
		return c.readyForQuery()
	case *pgproto3.Flush:
		c.runPending(ctx)
		return c.be.Flush() == nil
	case *pgproto3.Terminate:
		// Work queued without a Sync was never committed: drop it, as
		// PostgreSQL aborts an implicit transaction on Terminate.
		c.unit, c.unitWrite, c.unitTx, c.out = nil, false, false, nil
		return false
	case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
		// Ignored outside COPY, as PostgreSQL does.
		return true
	}
	if c.skipToSync {
		return true
	}
	switch m := msg.(type) {
	case *pgproto3.Parse:
		c.parse(ctx, m)
	case *pgproto3.Bind:
		c.bind(ctx, m)
	case *pgproto3.Describe:
		c.describe(ctx, m)
	case *pgproto3.Execute:
		c.executeMsg(ctx, m)
	case *pgproto3.Close:
		c.closeMsg(ctx, m)
	case *pgproto3.FunctionCall:
		c.fail(ctx, newError(codeFeatureNotSupported, ErrNotSupported, "the fastpath function call interface is not supported"))
	default:
		c.fail(ctx, newError(codeProtocolViolation, ErrProtocol, "unexpected message %T", msg))
		c.runPending(ctx)
		_ = c.be.Flush()
		return false
	}
	return true
}

// readyForQuery ends a Sync group or Query: it sends ReadyForQuery with
// the transaction status (and leadership changes as ParameterStatus).
func (c *conn) readyForQuery() bool {
	c.errSent = false
	c.awaitingCommand = true
	if leader := c.srv.cfg.Engine.IsLeader(); leader != c.wasLeader {
		c.wasLeader = leader
		c.be.Send(&pgproto3.ParameterStatus{Name: "default_transaction_read_only", Value: c.showSetting("default_transaction_read_only")})
		c.be.Send(&pgproto3.ParameterStatus{Name: "in_hot_standby", Value: c.showSetting("in_hot_standby")})
	}
	status := byte('I')
	switch c.txn {
	case txnOpen:
		status = 'T'
	case txnFailed:
		status = 'E'
	}
	c.be.Send(&pgproto3.ReadyForQuery{TxStatus: status})
	return c.be.Flush() == nil
}

func (c *conn) dropPortals() {
	clear(c.portals)
}

// ---------------------------------------------------------------------------
// Simple query protocol.

func (c *conn) simpleQuery(ctx context.Context, q string) {
	stmts, err := sqltext.Split(q)
	if err != nil {
		c.fail(ctx, err)
		return
	}
	nonEmpty := 0
	for _, st := range stmts {
		if st.Kind != sqltext.KindEmpty {
			nonEmpty++
		}
	}
	if nonEmpty == 0 {
		c.be.Send(&pgproto3.EmptyQueryResponse{})
		return
	}
	for _, st := range stmts {
		if st.Kind == sqltext.KindEmpty {
			continue
		}
		start := time.Now()
		ps, err := c.prepare(ctx, "", q, st, nil, false)
		if err != nil {
			c.failQuery(ctx, &portal{ps: &prepared{st: st}, start: start}, err)
			return
		}
		p := &portal{ps: ps, simple: true, start: start}
		c.execute(ctx, p, 0)
		if c.errSent {
			return
		}
	}
	c.runPending(ctx)
}

// ---------------------------------------------------------------------------
// Preparing statements.

// prepare analyses one statement. describe asks the Engine for parameter
// and result descriptions (extended protocol).
func (c *conn) prepare(ctx context.Context, name, query string, st sqltext.Statement, paramOIDs []uint32, describe bool) (*prepared, error) {
	ps := &prepared{name: name, query: query, offset: st.Offset, st: st}
	if c.txn == txnFailed && st.Kind != sqltext.KindCommit && st.Kind != sqltext.KindRollback {
		return nil, ErrInFailedTxn
	}
	switch st.Kind {
	case sqltext.KindEmpty:
		ps.local = true
	case sqltext.KindRead, sqltext.KindWrite:
		text := st.Text
		if st.Kind == sqltext.KindRead && isLocalQuery(text) {
			rewritten, ok := c.rewriteCatalogViews(text)
			if !ok {
				ps.local = true
				break
			}
			text = rewritten // catalog views as subqueries: an ordinary read
		}
		sql, err := sqltext.Translate(text)
		if err != nil {
			return nil, err
		}
		ps.sql = sql
		if describe {
			d, err := c.srv.cfg.Engine.Describe(ctx, sql)
			if err != nil {
				return nil, err
			}
			ps.desc = d
		}
	case sqltext.KindOther:
		if err := checkOther(st); err != nil {
			return nil, err
		}
		ps.local = true
	default:
		ps.local = true
	}
	n := ps.desc.NumParams
	if ps.local {
		for _, t := range significant(st.Text) {
			n = max(n, paramIndex(t)+1)
		}
	}
	if len(paramOIDs) > n {
		n = len(paramOIDs)
	}
	ps.params = make([]uint32, n)
	copy(ps.params, paramOIDs)
	if describe && !ps.local {
		inferParamTypes(ps, c.columnTypes(ctx))
	}
	return ps, nil
}

// ---------------------------------------------------------------------------
// Execution.

// execute runs (or queues) portal p with a row limit (0: all rows).
func (c *conn) execute(ctx context.Context, p *portal, maxRows int) {
	if p.rs != nil || p.inUnit {
		c.out = append(c.out, item{kind: itemExec, p: p, maxRows: maxRows})
		return
	}
	if p.start.IsZero() {
		p.start = time.Now()
	}
	ps := p.ps
	kind := ps.st.Kind
	if c.txn == txnFailed && kind != sqltext.KindCommit && kind != sqltext.KindRollback {
		c.failQuery(ctx, p, ErrInFailedTxn)
		return
	}
	if kind == sqltext.KindEmpty {
		c.out = append(c.out, item{msg: &pgproto3.EmptyQueryResponse{}})
		return
	}
	if ps.local {
		c.runPending(ctx)
		if c.errSent {
			return
		}
		rs, err := c.runLocal(ctx, ps, p.args)
		if err != nil {
			c.failQuery(ctx, p, err)
			return
		}
		p.rs = rs
		c.out = append(c.out, item{kind: itemExec, p: p, maxRows: maxRows})
		return
	}
	if c.txn == txnOpen && c.tx == nil {
		if is, ok := c.sess.(InteractiveSession); ok {
			// The first statement of the transaction opens it in the
			// engine, so that the transaction's reads and writes form one
			// unit (no lost update between a read and a later write).
			c.runPending(ctx)
			if c.errSent {
				return
			}
			qctx, done := c.startQuery(ctx)
			tx, err := is.Begin(qctx, c.consistency)
			err = c.queryErr(qctx, err)
			done()
			if err != nil {
				c.failQuery(ctx, p, err)
				return
			}
			c.tx = tx
		}
	}
	if kind == sqltext.KindWrite {
		if c.txnReadOnly {
			c.failQuery(ctx, p, ErrReadOnlyTxn)
			return
		}
		if c.txn == txnOpen && c.tx == nil {
			c.bufferWrite(ctx, p, maxRows)
			return
		}
		c.unitWrite = true
	} else if c.txn == txnOpen && c.tx == nil && len(c.txnWrites) > 0 {
		c.failQuery(ctx, p, ErrReadAfterWrite)
		return
	}
	c.unitTx = c.txn == txnOpen && c.tx != nil
	p.inUnit = true
	c.unit = append(c.unit, p)
	c.out = append(c.out, item{kind: itemExec, p: p, maxRows: maxRows})
}

// bufferWrite adds a write of an explicit transaction to the buffer sent
// at COMMIT. Its effect is not known before COMMIT, so the tag carries a
// zero count and RETURNING is refused.
func (c *conn) bufferWrite(ctx context.Context, p *portal, maxRows int) {
	if returnsRows(p.ps) {
		c.failQuery(ctx, p, newError(codeFeatureNotSupported, ErrNotSupported,
			"RETURNING inside an explicit transaction is not supported yet (writes are applied at COMMIT)"))
		return
	}
	c.txnWrites = append(c.txnWrites, fsm.Statement{SQL: p.ps.sql, Args: p.args})
	n, known := insertValuesCount(p.ps.st.Text)
	rs := &resultSet{tag: commandTag(p.ps.st.Verb, n, false)}
	if !known && isWriteVerb(p.ps.st.Verb) && !c.txnNoticed {
		c.txnNoticed = true
		rs.pre = append(rs.pre, notice("NOTICE", codeSuccessfulCompletion,
			"raftsql applies the writes of a transaction at COMMIT; row counts of UPDATE and DELETE inside the transaction are reported as 0"))
	}
	p.rs = rs
	c.out = append(c.out, item{kind: itemExec, p: p, maxRows: maxRows})
}

func returnsRows(ps *prepared) bool {
	if len(ps.desc.Columns) > 0 {
		return true
	}
	return containsWord(ps.st.Text, "returning")
}

// runPending runs the queued unit (one Engine call) and sends every queued
// reply. After an error the rest of the queue is dropped.
func (c *conn) runPending(ctx context.Context) {
	if len(c.unit) > 0 {
		c.runUnit(ctx)
	}
	out := c.out
	c.out = nil
	for _, it := range out {
		if !c.resolve(it) {
			break
		}
	}
}

func (c *conn) runUnit(ctx context.Context) {
	unit, write, inTx := c.unit, c.unitWrite, c.unitTx
	c.unit, c.unitWrite, c.unitTx = nil, false, false
	stmts := make([]fsm.Statement, len(unit))
	for i, p := range unit {
		stmts[i] = fsm.Statement{SQL: p.ps.sql, Args: p.args}
	}
	qctx, done := c.startQuery(ctx)
	var res []fsm.Result
	var err error
	switch {
	case inTx && c.tx != nil:
		res, err = c.tx.Exec(qctx, stmts)
	case inTx:
		err = ErrInFailedTxn // the transaction ended under the queued unit
	case write:
		res, err = c.sess.Write(qctx, stmts)
	default:
		res, err = c.sess.Read(qctx, c.consistency, stmts)
	}
	err = c.queryErr(qctx, err)
	done()
	for i, p := range unit {
		p.inUnit = false
		switch {
		case err != nil:
			p.rs = &resultSet{err: err}
		case i < len(res):
			r := res[i]
			if r.Err != nil {
				p.rs = &resultSet{err: r.Err}
				continue
			}
			p.rs = &resultSet{cols: r.Columns, rows: r.Rows}
			if len(r.Columns) == 0 || isWriteVerb(p.ps.st.Verb) {
				p.rs.tag = commandTag(p.ps.st.Verb, r.RowsAffected, len(r.Columns) > 0)
			}
		default:
			p.rs = &resultSet{err: newError(codeInternal, nil, "statement was not run")}
		}
	}
}

// startQuery returns the context of one Engine call: cancelable by a
// CancelRequest and bounded by statement_timeout (a deadline, so that the
// Engine sees the limit).
func (c *conn) startQuery(ctx context.Context) (context.Context, func()) {
	qctx, cancel := context.WithCancelCause(ctx)
	stop := func() {}
	if d := c.statementTimeout(); d > 0 {
		qctx, stop = context.WithTimeoutCause(qctx, d, ErrStatementTimeout)
	}
	c.runMu.Lock()
	c.runCancel = cancel
	c.runMu.Unlock()
	return qctx, func() {
		c.runMu.Lock()
		c.runCancel = nil
		c.runMu.Unlock()
		stop()
		cancel(nil)
	}
}

// queryErr names why a query context ended, if it did.
func (c *conn) queryErr(qctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cause := context.Cause(qctx); cause != nil && (errors.Is(cause, ErrCanceled) || errors.Is(cause, ErrStatementTimeout)) {
		return fmt.Errorf("%w (%v)", cause, err)
	}
	return err
}

func (c *conn) cancelRunning() {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.runCancel != nil {
		c.runCancel(ErrCanceled)
	}
}

// failQuery is fail for the statement of portal p, which counts as
// executed.
func (c *conn) failQuery(ctx context.Context, p *portal, err error) {
	c.fail(ctx, err)
	c.observeQuery(p)
}

// observeQuery tells the Observer that p's statement finished.
func (c *conn) observeQuery(p *portal) {
	if p.observed {
		return
	}
	p.observed = true
	d := time.Duration(0)
	if !p.start.IsZero() {
		d = time.Since(p.start)
	}
	c.srv.cfg.Observer.Query(queryKind(p.ps.st), d)
}

// queryKind classifies a statement for Observer.Query.
func queryKind(st sqltext.Statement) QueryKind {
	switch st.Kind {
	case sqltext.KindRead:
		return QuerySelect
	case sqltext.KindBegin, sqltext.KindCommit, sqltext.KindRollback:
		return QueryTx
	case sqltext.KindWrite:
		switch v := st.Verb; {
		case v == "INSERT":
			return QueryInsert
		case v == "UPDATE", v == "MERGE":
			return QueryUpdate
		case v == "DELETE":
			return QueryDelete
		case v == "SELECT", v == "TRUNCATE TABLE", v == "ANALYZE", v == "REINDEX",
			strings.HasPrefix(v, "CREATE"), strings.HasPrefix(v, "DROP"), strings.HasPrefix(v, "ALTER"):
			return QueryDDL // "SELECT" is CREATE TABLE … AS
		}
	case sqltext.KindOther:
		switch st.Verb {
		case "SAVEPOINT", "RELEASE", "ROLLBACK":
			return QueryTx
		}
	}
	return QueryOther
}

// fail reports err for the statement being processed. Queued work runs
// first when it is read-only; queued writes are dropped (the implicit
// transaction fails as a whole) and the error takes their place.
func (c *conn) fail(ctx context.Context, err error) {
	if c.txn == txnOpen {
		c.txn = txnFailed
	}
	if len(c.unit) > 0 && (c.unitWrite || c.unitTx) {
		for _, p := range c.unit {
			p.rs = &resultSet{err: err}
			p.inUnit = false
		}
		c.unit, c.unitWrite, c.unitTx = nil, false, false
	}
	c.runPending(ctx)
	if !c.errSent {
		c.sendError(err, "", 0)
	}
	c.skipToSync = true
}

func (c *conn) sendError(err error, query string, offset int) {
	c.errSent = true
	if c.txn == txnOpen {
		c.txn = txnFailed
	}
	if c.txn == txnFailed && c.tx != nil {
		// A failed transaction is over: release it now (the client still
		// has to say ROLLBACK).
		c.tx.Rollback()
		c.tx = nil
	}
	c.sendErrorResponse(toErrorResponse(err, query, offset))
}

// resolve sends one queued reply; false stops the queue after an error.
func (c *conn) resolve(it item) bool {
	switch it.kind {
	case itemMsg:
		c.be.Send(it.msg)
		return true
	case itemDescribe:
		p := it.p
		if p.rs != nil && p.rs.err != nil && !p.resolved {
			// The statement failed; its error comes with Execute.
			c.be.Send(&pgproto3.NoData{})
			return true
		}
		fields := c.portalFields(p)
		if fields == nil {
			c.be.Send(&pgproto3.NoData{})
		} else {
			c.be.Send(rowDescription(fields, p.formats))
		}
		return true
	}
	p := it.p
	rs := p.rs
	if rs == nil {
		c.sendError(newError(codeInternal, nil, "internal error: portal has no result"), "", 0)
		c.skipToSync = true
		return false
	}
	if rs.err != nil {
		c.sendError(rs.err, p.ps.query, p.ps.offset)
		c.skipToSync = true
		c.observeQuery(p)
		return false
	}
	for _, m := range rs.pre {
		c.be.Send(m)
	}
	rs.pre = nil
	fields := c.portalFields(p)
	if p.simple && fields != nil {
		c.be.Send(rowDescription(fields, nil))
	}
	if p.done {
		c.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tagOr(rs.tag, "SELECT 0"))})
		c.observeQuery(p)
		return true
	}
	sent := 0
	for p.pos < len(rs.rows) && (it.maxRows <= 0 || sent < it.maxRows) {
		row := rs.rows[p.pos]
		vals := make([][]byte, len(row))
		for i, v := range row {
			var oid uint32
			if i < len(fields) {
				oid = fields[i].oid
			}
			b, err := encodeValue(v, oid, formatFor(p.formats, i))
			if err != nil {
				c.sendError(err, p.ps.query, p.ps.offset)
				c.skipToSync = true
				c.observeQuery(p)
				return false
			}
			vals[i] = b
		}
		c.be.Send(&pgproto3.DataRow{Values: vals})
		p.pos++
		sent++
		// Stream big results instead of buffering them whole.
		for _, v := range vals {
			c.unflushed += len(v) + 4
		}
		if c.unflushed > flushThreshold {
			c.unflushed = 0
			if err := c.be.Flush(); err != nil {
				c.skipToSync = true
				return false
			}
		}
	}
	if p.pos < len(rs.rows) {
		c.be.Send(&pgproto3.PortalSuspended{})
		return true
	}
	p.done = true
	tag := rs.tag
	if tag == "" {
		tag = fmt.Sprintf("SELECT %d", sent)
	}
	c.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	c.observeQuery(p)
	return true
}

func tagOr(tag, def string) string {
	if tag == "" {
		return def
	}
	return tag
}

func formatFor(formats []int16, i int) int16 {
	switch len(formats) {
	case 0:
		return 0
	case 1:
		return formats[0]
	}
	if i < len(formats) {
		return formats[i]
	}
	return 0
}

func rowDescription(fields []field, formats []int16) *pgproto3.RowDescription {
	rd := &pgproto3.RowDescription{Fields: make([]pgproto3.FieldDescription, len(fields))}
	for i, f := range fields {
		rd.Fields[i] = pgproto3.FieldDescription{
			Name:         []byte(f.name),
			DataTypeOID:  f.oid,
			DataTypeSize: typeSize(f.oid),
			TypeModifier: -1,
			Format:       formatFor(formats, i),
		}
	}
	return rd
}

// portalFields resolves the result fields of p: the ones a Describe S
// announced, a local result's, or from declared types and then values.
func (c *conn) portalFields(p *portal) []field {
	if p.resolved {
		return p.fields
	}
	switch {
	case p.ps.described:
		p.fields = p.ps.fields
	case p.rs != nil && p.rs.fields != nil:
		p.fields = p.rs.fields
	case p.rs != nil && len(p.rs.cols) > 0:
		p.fields = fieldsFor(p.rs.cols, p.rs.rows, p.ps.st.Text)
	case p.rs != nil:
		p.fields = nil
	default:
		p.fields = c.describeFields(p.ps)
	}
	p.resolved = true
	return p.fields
}

// fieldsFor picks the fields of result columns: declared types first,
// then the first non-NULL value of each column, then the expression.
func fieldsFor(cols []fsm.Column, rows [][]any, stmtText string) []field {
	fs := make([]field, len(cols))
	for i, col := range cols {
		f := field{name: pgColumnName(col, stmtText)}
		if oid, ok := declTypeOID(col.DeclType); ok {
			f.oid = oid
		} else {
			if f.oid = exprOID(col.Name); f.oid != oidBool {
				f.oid = oidUnknown
				for _, r := range rows {
					if i < len(r) && r[i] != nil {
						f.oid = valueOID(r[i])
						break
					}
				}
			}
			if f.oid == oidUnknown {
				f.oid = exprOID(col.Name)
			}
			if f.oid == oidUnknown {
				f.oid = oidText
			}
		}
		fs[i] = f
	}
	return fs
}

// describeFields is the RowDescription of a statement before it runs
// (Describe S, or Describe P before Execute).
func (c *conn) describeFields(ps *prepared) []field {
	if ps.local {
		return ps.fields
	}
	if len(ps.desc.Columns) == 0 {
		return nil
	}
	fs := make([]field, len(ps.desc.Columns))
	for i, col := range ps.desc.Columns {
		f := field{name: pgColumnName(col, ps.st.Text)}
		if oid, ok := declTypeOID(col.DeclType); ok {
			f.oid = oid
		} else {
			f.oid = exprOID(col.Name)
		}
		fs[i] = f
	}
	return fs
}

// ---------------------------------------------------------------------------
// Extended protocol messages.

func (c *conn) parse(ctx context.Context, m *pgproto3.Parse) {
	if m.Name != "" {
		if _, ok := c.stmts[m.Name]; ok {
			c.fail(ctx, &Error{Code: codeDuplicatePStatement, Message: fmt.Sprintf("prepared statement %q already exists", m.Name)})
			return
		}
	}
	stmts, err := sqltext.Split(m.Query)
	if err != nil {
		c.fail(ctx, err)
		return
	}
	var st sqltext.Statement
	switch n := countNonEmpty(stmts); {
	case n > 1:
		c.fail(ctx, &Error{Code: codeSyntaxError, Message: "cannot insert multiple commands into a prepared statement"})
		return
	case n == 1:
		for _, s := range stmts {
			if s.Kind != sqltext.KindEmpty {
				st = s
			}
		}
	default:
		st = sqltext.Statement{Kind: sqltext.KindEmpty}
	}
	ps, err := c.prepare(ctx, m.Name, m.Query, st, m.ParameterOIDs, true)
	if err != nil && c.unitWrite {
		// Parse describes against the schema now; queued writes of this
		// Sync group (say, the CREATE TABLE this statement uses) have not
		// run yet. Run them and try again: the group is then no longer
		// one atomic unit, a price paid only in this case.
		c.runPending(ctx)
		if c.errSent {
			return
		}
		ps, err = c.prepare(ctx, m.Name, m.Query, st, m.ParameterOIDs, true)
	}
	if err != nil {
		c.fail(ctx, err)
		return
	}
	if ps.local {
		ps.fields, err = c.localFields(ctx, ps)
		if err != nil {
			c.fail(ctx, err)
			return
		}
	}
	c.stmts[m.Name] = ps
	c.out = append(c.out, item{msg: &pgproto3.ParseComplete{}})
}

func countNonEmpty(stmts []sqltext.Statement) int {
	n := 0
	for _, s := range stmts {
		if s.Kind != sqltext.KindEmpty {
			n++
		}
	}
	return n
}

func (c *conn) bind(ctx context.Context, m *pgproto3.Bind) {
	ps, ok := c.stmts[m.PreparedStatement]
	if !ok {
		c.fail(ctx, fmt.Errorf("%w: %q", ErrUnknownStatement, m.PreparedStatement))
		return
	}
	if c.txn == txnFailed && ps.st.Kind != sqltext.KindCommit && ps.st.Kind != sqltext.KindRollback {
		c.fail(ctx, ErrInFailedTxn)
		return
	}
	if m.DestinationPortal != "" {
		if _, ok := c.portals[m.DestinationPortal]; ok {
			c.fail(ctx, &Error{Code: "42P03", Message: fmt.Sprintf("cursor %q already exists", m.DestinationPortal)})
			return
		}
	}
	if len(m.Parameters) != len(ps.params) {
		c.fail(ctx, newError(codeProtocolViolation, ErrProtocol,
			"bind message supplies %d parameters, but prepared statement %q requires %d", len(m.Parameters), m.PreparedStatement, len(ps.params)))
		return
	}
	if n := len(m.ParameterFormatCodes); n > 1 && n != len(m.Parameters) {
		c.fail(ctx, newError(codeProtocolViolation, ErrProtocol,
			"bind message has %d parameter formats but %d parameters", n, len(m.Parameters)))
		return
	}
	args := make([]any, len(m.Parameters))
	for i, raw := range m.Parameters {
		f := formatFor(m.ParameterFormatCodes, i)
		if f != 0 && f != 1 {
			c.fail(ctx, newError(codeProtocolViolation, ErrProtocol, "unsupported format code: %d", f))
			return
		}
		v, err := decodeParam(raw, ps.params[i], f)
		if err != nil {
			c.fail(ctx, fmt.Errorf("parameter $%d: %w", i+1, err))
			return
		}
		args[i] = v
	}
	nres := len(c.describeFields(ps))
	if n := len(m.ResultFormatCodes); n > 1 && n != nres {
		c.fail(ctx, newError(codeProtocolViolation, ErrProtocol,
			"bind message has %d result formats but query has %d columns", n, nres))
		return
	}
	for _, f := range m.ResultFormatCodes {
		if f != 0 && f != 1 {
			c.fail(ctx, newError(codeProtocolViolation, ErrProtocol, "unsupported format code: %d", f))
			return
		}
	}
	p := &portal{name: m.DestinationPortal, ps: ps, args: args, formats: append([]int16(nil), m.ResultFormatCodes...)}
	c.portals[m.DestinationPortal] = p
	c.out = append(c.out, item{msg: &pgproto3.BindComplete{}})
}

func (c *conn) describe(ctx context.Context, m *pgproto3.Describe) {
	switch m.ObjectType {
	case 'S':
		ps, ok := c.stmts[m.Name]
		if !ok {
			c.fail(ctx, fmt.Errorf("%w: %q", ErrUnknownStatement, m.Name))
			return
		}
		c.out = append(c.out, item{msg: &pgproto3.ParameterDescription{ParameterOIDs: append([]uint32(nil), ps.params...)}})
		fields := c.describeFields(ps)
		ps.fields, ps.described = fields, true
		if fields == nil {
			c.out = append(c.out, item{msg: &pgproto3.NoData{}})
		} else {
			c.out = append(c.out, item{msg: rowDescription(fields, nil)})
		}
	case 'P':
		p, ok := c.portals[m.Name]
		if !ok {
			c.fail(ctx, fmt.Errorf("%w: %q", ErrUnknownPortal, m.Name))
			return
		}
		c.out = append(c.out, item{kind: itemDescribe, p: p})
	default:
		c.fail(ctx, newError(codeProtocolViolation, ErrProtocol, "invalid DESCRIBE message subtype %d", m.ObjectType))
	}
}

func (c *conn) executeMsg(ctx context.Context, m *pgproto3.Execute) {
	p, ok := c.portals[m.Portal]
	if !ok {
		c.fail(ctx, fmt.Errorf("%w: %q", ErrUnknownPortal, m.Portal))
		return
	}
	c.execute(ctx, p, int(m.MaxRows))
}

func (c *conn) closeMsg(ctx context.Context, m *pgproto3.Close) {
	switch m.ObjectType {
	case 'S':
		delete(c.stmts, m.Name)
	case 'P':
		delete(c.portals, m.Name)
	default:
		c.fail(ctx, newError(codeProtocolViolation, ErrProtocol, "invalid CLOSE message subtype %d", m.ObjectType))
		return
	}
	c.out = append(c.out, item{msg: &pgproto3.CloseComplete{}})
}

// ---------------------------------------------------------------------------
// Command tags.

func isWriteVerb(verb string) bool {
	switch verb {
	case "INSERT", "UPDATE", "DELETE", "REPLACE":
		return true
	}
	return false
}

// commandTag is the CommandComplete tag of a statement that changed n rows
// (or, for SELECT-like statements, returned n rows).
func commandTag(verb string, n int64, _ bool) string {
	switch verb {
	case "INSERT", "REPLACE":
		return fmt.Sprintf("INSERT 0 %d", n)
	case "UPDATE", "DELETE", "SELECT", "MERGE", "FETCH", "MOVE", "COPY":
		return fmt.Sprintf("%s %d", verb, n)
	case "":
		return "OK"
	}
	return verb
}
