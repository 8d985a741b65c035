// Package pgwire is raftsql's PostgreSQL front end: it speaks the
// PostgreSQL v3 wire protocol (through github.com/jackc/pgx/v5/pgproto3)
// to psql, pgx, database/sql, node-postgres, psycopg and pgbench, and runs
// their SQL on an Engine (the server package: writes through the Raft log,
// reads on the local replica).
//
// # Entry point
//
//	srv, err := pgwire.NewServer(pgwire.Config{
//		Engine: engine,          // required
//		Logger: logger,          // *slog.Logger, nil discards
//		MaxMessageSize: 64 << 20, // per client message (default 64 MiB)
//		MaxConns: 0,             // 0: unbounded
//		TLSConfig: nil,          // nil answers SSLRequest with 'N'
//		AuthUsers: nil,          // *auth.Users (--auth-file); nil: no passwords
//		Authenticate: nil,       // extra user/database check, nil: none
//		StatementTimeout: 0,     // default statement_timeout (0: none)
//		IdleInTxTimeout: 0,      // default idle_in_transaction_session_timeout
//		Observer: nil,           // metrics hook (server implements it)
//	})
//	err = srv.Serve(ctx, listener) // until ctx ends: ErrServerClosed
//
// Passwords: load the --auth-file with auth.LoadFile and pass the users
// as AuthUsers; the SCRAM-SHA-256 exchange itself is package auth's
// (auth.SCRAMServer), pgwire only carries its messages (auth.go).
//
// # Layers
//
//	Serve: accept loop ─────────► one goroutine per connection (serveConn)
//	                                │  recover() as a last line of defence
//	startup (conn.startup)          ▼
//	  SSLRequest/GSSEncRequest → 'N' (or TLS via Config.TLSConfig)
//	  CancelRequest → Server.cancel(pid, key) → that conn's cancelRunning
//	  StartupMessage → options (-c raftsql.read_consistency=…), SCRAM-SHA-256
//	  (auth.go, when Config.AuthUsers is set), Authenticate, AuthenticationOk,
//	  ParameterStatus×13, BackendKeyData, ReadyForQuery
//	                                │
//	message loop (conn.handle)      ▼  pgproto3.Backend.Receive, size-capped
//	  Query ─► Split ─► prepare each statement ─┐
//	  Parse/Bind/Describe/Execute ──────────────┤
//	                                            ▼
//	session state machine (conn.execute)
//	  local statements (local.go, catalog.go): BEGIN/COMMIT/ROLLBACK, SET,
//	    SHOW, RESET, DISCARD, DEALLOCATE, builtins (version(), …),
//	    pg_catalog queries of psql → answered here
//	  engine statements: Translate (sqltext) then queued in the "unit"
//	                                            │
//	unit runner (conn.runPending)               ▼ at Sync / Flush / end of
//	  Query, or before a local statement: ONE Engine call for the unit —
//	  Write if any statement writes (atomic), else Read at the session's
//	  consistency. Inside BEGIN, writes are buffered and sent as one Write
//	  at COMMIT.
//	                                            │
//	result writer (conn.resolve)                ▼
//	  queued replies in order: ParseComplete, BindComplete, RowDescription
//	  (types from declared column types, then values), DataRow (text or
//	  binary per Bind), PortalSuspended, CommandComplete, ErrorResponse
//	  (errors.go maps every error chain to a SQLSTATE in one place);
//	  after an error the rest of the group is dropped.
//
// # Semantics worth knowing
//
//   - A simple Query with several statements, and all Executes under one
//     Sync, form one implicit transaction: consecutive engine statements
//     go to the Engine as one unit (split only by statements the front end
//     answers itself, such as SET). An error rolls the unit back.
//   - BEGIN … COMMIT: reads before the first write run as plain reads.
//     If the EngineSession implements InteractiveSession, the first write
//     opens an interactive transaction (EngineTx) and every later statement
//     runs in it: reads see its writes, RETURNING and row counts are
//     exact, COMMIT commits it, an error or ROLLBACK rolls it back.
//     Otherwise writes are buffered and sent as one Write at COMMIT: a read
//     after a buffered write is refused with 0A000 (it could not see the
//     writes), RETURNING is refused (0A000), UPDATE/DELETE row counts are
//     reported as 0 (a NOTICE says so) and a plain INSERT … VALUES reports
//     its row count.
//   - transaction_read_only, default_transaction_read_only, in_hot_standby
//     and pg_is_in_recovery() report whether this node leads, so that
//     target_session_attrs=read-write finds the leader.
//   - Parameter types are inferred for $n::type, col = $n (any comparison),
//     col IN ($n, …), BETWEEN, LIKE, INSERT … VALUES and LIMIT/OFFSET;
//     others are 0 and clients send them as text.
//   - Result types: declared column types map to OIDs (declTypeOID); an
//     expression column takes its type from its values when rows are known
//     (simple Query, Describe P before Execute), from its expression when
//     obvious (count(*) → int8), else OID 0, which pgx reads as text and
//     scans into ints and strings alike.
//   - Flush runs the queued unit at once (a client waiting on Flush gets
//     its results), so a Sync group split by Flush is not one unit.
//     Terminate drops work queued without Sync, as PostgreSQL aborts it.
//   - Catalog: psql's \dt, \d NAME, \di, \dv, \l, \dn, \du queries are
//     recognised and answered from sqlite_master and pragma_* (catalog.go);
//     information_schema.tables/columns/schemata and pg_tables become
//     subqueries over sqlite_master so their WHERE clauses run in SQLite;
//     any other catalog query gets zero rows with its select list's columns.
//   - Limits: statement_timeout bounds each Engine call (a context
//     deadline; 57014 when it passes). idle_in_transaction_session_timeout
//     bounds the wait for the next command after ReadyForQuery 'T' or
//     'E' (a read deadline on the connection): when it passes the session
//     gets FATAL 25P03 and is closed, which rolls back its EngineTx. Both
//     default to Config.StatementTimeout/IdleInTxTimeout, take
//     PostgreSQL's units on SET (us, ms, s, min, h, d; none means ms) and
//     SHOW as PostgreSQL does ("1500ms", "2min").
//   - Observer sees sessions open and close, every executed statement
//     with its QueryKind (a fixed set) and latency, and the SQLSTATE of
//     every ErrorResponse (all pass through conn.sendErrorResponse).
//   - SET LOCAL acts like SET. SAVEPOINT and RELEASE are accepted inside a
//     transaction (they change nothing while nothing is rolled back to
//     them); ROLLBACK TO, LISTEN/NOTIFY, COPY and the fastpath function
//     call are refused with 0A000.
//
// # Debugging
//
// Set Config.Logger at debug level to see bad messages and cancel
// requests. pgproto3.Backend.Trace can print every message of a
// connection. The tests drive the server with pgx (all modes), psql and
// pgbench over TCP against pgwiretest.Engine (SQLite without Raft), and
// wire_test.go checks replies message by message as in
// /work/shared/pgwire-captures. FuzzSession feeds random message
// sequences to the state machine.
package pgwire
