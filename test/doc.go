// Package test holds raftsql's whole-cluster tests: real raftsqld processes
// on loopback, driven by real clients (pgx, database/sql, psql, pgbench,
// node-postgres), with faults injected between them and the histories
// checked for linearizability.
//
// # Running
//
//	go test ./test/...                      # the short variant CI runs (a few minutes)
//	go test ./test/ -run TestJepsen -v -timeout 60m -args -duration=10m -seed=42
//	SEED=42 DURATION=10m go test ./test/ -run TestJepsen -v -timeout 60m
//	make jepsen DURATION=10m SEED=42                  # the same through the Makefile
//	go test ./test/ -run TestClockSkew -v -args -skew.duration=5m -skew.rates=0.95,1.5,0.5 -skew.want-stale
//
// TestClockSkew runs nodes whose lease clock runs slow or fast (raftsqld's
// test-only RAFTSQL_TEST_CLOCK_RATE, see cluster.Node.SetEnv), makes each
// the leader and cuts it off: lease reads must stay linearizable on a node
// whose clock is inside the drift bound; on one far outside it stale lease
// reads are outside the guarantee and reported, not asserted.
//
// Flags (after -args): -seed, -duration, -nodes (TestJepsen's cluster size,
// default 3), -keep (keep the artifacts of passing tests too). A seed of 0
// takes $SEED, else one from the clock; the seed is printed either way.
// $RAFTSQLD_BIN runs the tests against a prebuilt binary instead.
//
// TestMain builds ./cmd/raftsqld once into a temporary directory (or uses
// $RAFTSQLD_BIN); every test that needs it fails if the build failed.
//
// # Pieces
//
//   - test/cluster starts and drives the processes (ports, data dirs, logs,
//     kill -9, SIGSTOP/SIGCONT, restart, leader and convergence waits).
//   - test/faultproxy sits on every Raft link: each node's --peers lists
//     proxy addresses, and the test cuts, blackholes or delays any
//     directed link.
//   - test/jepsen has the workloads (register, bank, set), the porcupine
//     model, the nemesis scheduler and the checks.
//
// # When a test fails
//
// The test prints the folder it kept, test/artifacts/<Test>-<time>/: each
// node's log (n1.log …, every start and exit marked with a "=== harness"
// line), its data directory, the harness log, and for TestJepsen the seed
// (summary.txt, with the command that reproduces the schedule of faults),
// the nemesis schedule, every operation as JSON lines, and porcupine's
// HTML visualization of a register history that is not linearizable.
// Passing tests delete their folder unless -keep is given.
//
// # Checking the harness itself
//
// test/cluster's own tests run a stand-in node (test/cluster/internal/
// fakenode) that speaks the flags and HTTP API. With
// RAFTSQLD_BIN=<built fakenode> and FAKENODE_PG_DSN=<a PostgreSQL URL> the
// whole suite runs against PostgreSQL behind the stand-ins, which is how
// the tests were first tried before raftsqld existed. test/jepsen's
// workloads and checkers run against PostgreSQL with JEPSEN_PG_DSN set.
//
// # Timing
//
// Nodes run with --election-timeout 1.5s and --heartbeat-interval 200ms so
// that fsync stalls of ~400 ms on a loaded 2-core machine do not look like
// a dead leader. Every wait polls /readyz or /status with a deadline.
package test
