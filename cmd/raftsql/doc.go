// Command raftsql is the client of a raftsql cluster: an interactive SQL
// shell like psql, admin subcommands over the nodes' HTTP API, and a load
// tool.
//
// # Shell
//
//	raftsql [-h HOST] [-p PORT] [-U USER] [-d DB | postgres://URL] [-c SQL]... [-f FILE]
//
// connects over the PostgreSQL protocol (default 127.0.0.1:5433) with
// pgconn. Typed SQL is cut at top-level semicolons (quotes, dollar quotes
// and comments respected, see splitter) and each statement is sent with
// the simple query protocol; a -c argument is sent whole, so
// `-c 'BEGIN; …; COMMIT'` is one Query. Results print as psql's aligned
// tables, other statements as their command tag, errors as
// "ERROR:  message" (\errverbose adds the SQLSTATE; the *pgconn.PgError is
// in the chain of the error Run returns). Backslash commands: \q \?
// \timing \x \errverbose \set \unset \r \g \i \dt \d \l \dn \status
// (\status asks --http, with RAFTSQL_USER/RAFTSQL_PASSWORD for basic
// auth). -h takes a comma-separated host list, as libpq does. The catalog
// queries behind \dt, \d, \l and \dn are psql 15's, in catalog.go, in one
// place, so they can follow what the server's pg_catalog supports. The
// interactive shell resets a lost connection (a node restarted) as psql
// does. -c, -f and piped input stop at the first
// error and exit 1 (psql's ON_ERROR_STOP; `-v ON_ERROR_STOP=0` runs on and
// still exits 1); `-v VERBOSITY=verbose` prints SQLSTATEs; a failed
// connection exits 2. History is kept in
// $RAFTSQL_HISTORY or ~/.raftsql_history.
//
// # Admin
//
//	raftsql status              [--http HOST:PORT[,HOST:PORT…]] [--json]
//	raftsql backup FILE         [--consistency stale]
//	raftsql restore FILE
//	raftsql join ID RAFTADDR    [--learner]
//	raftsql remove ID
//	raftsql transfer-leadership ID
//
// Each talks JSON to GET /status, GET /backup, POST /restore, POST /join,
// POST /remove and POST /transfer-leadership of one node (--http, default
// 127.0.0.1:8080, optional --user/--password basic auth). A reply
// {"error": "…"} with a 4xx/5xx status is printed and exits 1. status asks
// every --http address (a comma-separated list is allowed) and every
// configuration member whose http_addr is known, and prints one row per member with the lag of its applied index
// behind the leader's commit index. backup streams into a temporary file
// next to FILE, checks the SQLite header, syncs and renames, so FILE is
// never half written; restore refuses a file that is not SQLite before
// sending anything. join, remove and transfer-leadership also take a list
// and try each address until one that is the leader takes the request (a
// 503 or an unreachable node has not acted; any other reply is final).
//
// # Passwords
//
//	raftsql passwd --auth-file FILE [--password-stdin] USER
//
// writes USER's SCRAM-SHA-256 verifier into the auth file that raftsqld
// reads with --auth-file (a line "USER:" + PostgreSQL's rolpassword
// format, defined by package auth), replacing an older line of the user, through a
// temporary file and a rename, mode 0600. The password is asked twice
// without echo on a terminal; the file never holds it.
//
// # Bench
//
//	raftsql bench --hosts H:P,H:P --conns N (--duration D | --ops N)
//	    --workload write|read|mixed [--read-consistency linearizable|lease|stale]
//	    [--value-size B] [--keys K]
//
// creates bench_kv(k INTEGER PRIMARY KEY, v TEXT), fills it for read
// workloads, then runs N pgx connections (prepared statements), spread
// round-robin over the hosts, with the read level sent as the startup
// option `-c raftsql.read_consistency=…`. It prints a progress line each
// second and a final table of ops, ops/s, errors and p50/p99/p999/max
// latency for reads and writes separately (histogram in hist.go, under
// 1.6% error), or with --json the same as a JSON object. --ops and
// --duration bound the run (both when both are given). Connections that
// break are dialled again; errors are counted and a few are shown. Ctrl-C
// ends the run early and still prints the report.
//
// # Lifecycle and debugging
//
// main builds a context cancelled by SIGTERM/SIGHUP and calls Run, which
// prints errors to stderr and returns one for the exit status. Ctrl-C
// cancels the running query in the interactive shell (a CancelRequest is
// sent; the session stays) and stops every other mode. Everything that
// touches the outside (dialling, HTTP client, clock, bench driver,
// terminal detection) sits in env so tests replace it: the shell runs
// against an in-process fake connection, the admin commands against
// httptest servers, bench against a fake driver; pg_test.go and
// pgwire_test.go run the real connection code against a tiny pgproto3
// server and against raftsql's own pgwire front end on its SQLite test
// engine; interactive_test.go drives the readline prompt over a pipe.
// Tests that need a real server run only when RAFTSQL_TEST_PG (a
// postgres:// URL of PostgreSQL 15 or raftsqld) is set.
// To see what the shell sends, run the server with query logging, or
// psql -E for the psql equivalents of \dt and \d.
package main
