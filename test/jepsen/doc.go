// Package jepsen runs workloads against a raftsqld cluster while a nemesis
// injects faults, records what every client saw, and checks the history:
// linearizability with porcupine, conservation of money, and that no
// acknowledged write is lost.
//
// # Pieces
//
//   - Cluster is what the package needs from a cluster (the test package
//     adapts test/cluster to it; unit tests use a fake).
//   - Workloads: Register (read / write / compare-and-set on integer keys,
//     checked with porcupine per key, once with the linearizable reads and
//     once with the lease reads; stale reads are recorded but exempt),
//     Bank (transfers that keep the total, and total-balance reads at every
//     consistency level that must always see that total), Set (unique
//     inserts; at the end every acknowledged insert is on every node exactly
//     once, and inserts that got a definite error are on none).
//   - Nemesis: a seeded scheduler of faults (kill -9 and restart, SIGSTOP
//     pauses, partitions isolating the leader or splitting the cluster, one
//     way partitions, leadership transfer, delays, dropped / duplicated /
//     reordered Raft frames, and membership changes: a follower or the
//     leader removed and brought back wiped through --join, a spare joined
//     as a learner or as a fourth voter and removed) whose schedule is
//     recorded. Faults never overlap: one is healed before the next starts,
//     and a membership change whose heal failed is repaired before any
//     other fault (so no fault meets a cluster short of a voter).
//     NemesisConfig.First puts chosen kinds at the start of a run.
//   - Membership: the workers and the end checks follow Cluster.IDs, the
//     current members; a worker whose node is removed fails and moves on to
//     a member; a node removed and not back is left out of the checks.
//   - Run wires them: set up tables, start the workers (connections spread
//     over every node, retrying on error), run the nemesis for the duration,
//     heal, wait for the replicas to converge, read the final state from
//     every node and check everything.
//
// # Outcomes of an operation
//
// Every operation records its call and return time on one monotonic clock.
// An operation that returned normally is OK (a compare-and-set that matched
// no row is a definite failure, also a valid result). A write that got a
// SQL error with a definite SQLSTATE (integrity or syntax classes, 22, 23,
// 42) did not happen. Any other error (timeouts, 40001, 57014, connection
// loss, 08xxx) leaves the write unknown: it may or may not have been applied,
// so the checker lets it take effect at any time after its call, or never.
// Reads that fail are dropped: they changed nothing.
//
// # Debugging a failure
//
// Result.WriteArtifacts writes, into the folder the test prints: the seed,
// the nemesis schedule, every operation as JSON lines, and for a register
// history that is not linearizable porcupine's HTML visualization (open it
// in a browser; nemesis events are drawn as annotations). Re-run with the
// same SEED to get the same schedule of faults (the interleaving of real
// processes is not reproducible, the faults are).
package jepsen
