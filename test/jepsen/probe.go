package jepsen

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Probe is what a custom nemesis (Config.CustomNemesis) works with: the
// cluster, the run's clock, and register reads of its own that are
// recorded in the history like the workers' reads, so that porcupine judges
// what a node answered while the nemesis had it in a fault.
type Probe struct {
	Cluster Cluster
	Clock   *Clock
	Log     *slog.Logger
	reg     *Register
	rs      *runState
}

// ProbeConn is one connection of a Probe to one node at one read level.
// Its reads are sequential and share one porcupine lane. Not safe for
// concurrent use.
type ProbeConn struct {
	Node, Level string
	p           *Probe
	conn        *pgx.Conn
	client      int
}

// Connect opens a connection to node id whose session reads at level. Open
// it before a fault that would keep it from connecting (a pause).
func (p *Probe) Connect(ctx context.Context, id, level string) (*ProbeConn, error) {
	pc := &ProbeConn{Node: id, Level: level, p: p, client: p.rs.clients.next()}
	return pc, pc.dial(ctx)
}

func (pc *ProbeConn) dial(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, pc.p.Cluster.DSN(pc.Node, pc.Level))
	if err != nil {
		return fmt.Errorf("jepsen: probe connect to %s (%s): %w", pc.Node, pc.Level, err)
	}
	pc.conn = conn
	return nil
}

// ReadKeys reads every register key in use once, each read bounded by
// timeout, and records the reads (a failed read is recorded as failed,
// which the checker drops). It returns how many were answered. A
// connection lost to an error is opened again on the next call.
func (pc *ProbeConn) ReadKeys(ctx context.Context, timeout time.Duration) (answered int, err error) {
	if pc.conn == nil || pc.conn.IsClosed() {
		if err := pc.dial(ctx); err != nil {
			return 0, err
		}
	}
	r := pc.p.reg
	gen := (r.opCount.peek() / r.OpsPerKey) * r.Keys
	for i := 0; i < r.Keys; i++ {
		op := RegOp{Client: pc.client, Worker: -1, Node: pc.Node, Kind: RegRead, Level: pc.Level, Key: (gen + i) % r.TotalKeys}
		op.Call = pc.p.Clock.Now()
		octx, cancel := context.WithTimeout(ctx, timeout)
		err := pc.conn.QueryRow(octx, "SELECT v FROM reg WHERE k = $1", op.Key).Scan(&op.Value)
		cancel()
		op.Return = pc.p.Clock.Now()
		op.Status, op.Err = OK, errText(err)
		if err != nil {
			op.Status = Fail
		}
		r.ops.add(op)
		if err != nil {
			return answered, err
		}
		answered++
	}
	return answered, nil
}

// Close closes the connection.
func (pc *ProbeConn) Close() {
	if pc.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		pc.conn.Close(ctx)
		cancel()
	}
}

// NodeReads keeps every write and compare-and-set, and only the reads
// that node served: checking it with CheckRegister judges that node's
// reads alone (a sub-history of a linearizable history with reads left
// out is linearizable, so a verdict against it is that node's).
func NodeReads(ops []RegOp, node string) []RegOp {
	var out []RegOp
	for _, op := range ops {
		if op.Kind != RegRead || op.Node == node {
			out = append(out, op)
		}
	}
	return out
}
