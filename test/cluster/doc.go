// Package cluster starts and drives a cluster of real raftsqld processes on
// loopback for whole-cluster tests.
//
// # Lifecycle
//
//	bin, err := cluster.Build(ctx, tmpDir)            // once per test binary
//	c, err := cluster.Start(ctx, cluster.Options{Binary: bin, Nodes: 3, Dir: dir, Logger: log})
//	defer c.Close()                                      // kills every process
//	leader, err := c.WaitLeader(ctx)
//	c.Node("n2").Kill(); c.Node("n2").Start(ctx)         // kill -9 and restart
//	c.Node("n1").Pause(); c.Node("n1").Resume()          // SIGSTOP / SIGCONT
//	c.Net.Partition(faultproxy.Refuse, []string{"n1"}, []string{"n2", "n3"})
//
// Every node has its own data directory and log file under Options.Dir
// (Dir/<id>/data, Dir/<id>.log; a restart appends to the log with a marker
// line). Ports are picked free on 127.0.0.1 just before a node first
// starts and kept across restarts.
//
// Raft traffic never goes from node to node directly: every node's --peers
// lists the front doors of a faultproxy.Network (one per node, the same list
// on every node), which forwards to the real --raft-addr and applies the
// test's faults per directed link. The dialer of a proxied connection is
// named by looking its socket up in /proc (faultproxy.ProcIdentify).
//
// Membership (membership.go): RemoveMember retires a node (POST /remove,
// confirmed in the leader's configuration), Rejoin brings a retired or
// spare node back with a wiped data directory through --join, SpareNode
// hands out a node that may join. A node started with --join advertises
// its front door (--raft-advertise-addr), so its links are proxied too.
// Members/MemberIDs list the nodes that are not retired.
//
// All waits poll GET /readyz and GET /status with a deadline taken from the
// context; nothing sleeps and hopes.
//
// # Debugging
//
// A node that exits on its own is reported by Node.Exited and in the log of
// the harness (Options.Logger) with its exit status; its own log file says
// why. Close never leaves processes behind: they are killed with SIGKILL
// (which also ends a SIGSTOPped process) and, if the test binary itself dies,
// by the kernel through Pdeathsig.
package cluster
