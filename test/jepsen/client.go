package jepsen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Worker is one client: one connection at a time, to one node, moving to
// the next node after an error.
type Worker struct {
	ID    int
	Node  string // node of the current connection
	rng   *rand.Rand
	clock *Clock
	run   *runState

	conn    *pgx.Conn
	level   string   // session read consistency of conn
	members []string // Cluster.IDs when conn was opened
	nodeIdx int
	client  int
}

// runState is shared by the workers of one run.
type runState struct {
	cluster   Cluster
	opTimeout time.Duration
	clients   counter // porcupine client ids
	acks      ackLog
}

// Client is the worker's current porcupine lane.
func (w *Worker) Client() int { return w.client }

// NewClient moves the worker to a fresh lane (after an operation whose
// outcome is unknown, which stays open to the end of the history).
func (w *Worker) NewClient() { w.client = w.run.clients.next() }

func (w *Worker) ackWrite(at time.Duration) { w.run.acks.add(at) }

// Rand is the worker's own seeded source.
func (w *Worker) Rand() *rand.Rand { return w.rng }

// connect makes sure the worker has a connection, trying the nodes in turn
// from its current one. When the membership changed since the connection
// was opened, the worker moves (to the next member): off a node that was
// removed, and so that a node that joined gets clients too.
func (w *Worker) connect(ctx context.Context) error {
	ids := w.run.cluster.IDs()
	if w.conn != nil && !slices.Equal(ids, w.members) {
		w.drop()
	}
	if w.conn != nil {
		return nil
	}
	levels := []string{"", "linearizable", "lease", "stale"}
	backoff := 20 * time.Millisecond
	for {
		ids = w.run.cluster.IDs()
		id := ids[w.nodeIdx%len(ids)]
		// The startup option sets a first read level; Register changes
		// it with SET, so both ways are exercised.
		level := levels[w.rng.IntN(len(levels))]
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		conn, err := pgx.Connect(cctx, w.run.cluster.DSN(id, level))
		cancel()
		if err == nil {
			w.conn, w.Node, w.members = conn, id, ids
			w.level = level
			if level == "" {
				w.level = "linearizable"
			}
			return nil
		}
		w.nodeIdx++
		if err := sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// drop closes the connection; the next operation reconnects to the next
// node.
func (w *Worker) drop() {
	if w.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		w.conn.Close(ctx)
		cancel()
		w.conn = nil
	}
	w.nodeIdx++
}

// Ready connects if needed. An operation should only be recorded after
// Ready succeeded.
func (w *Worker) Ready(ctx context.Context) error { return w.connect(ctx) }

// SetLevel sets the session's read consistency with SET if it differs.
func (w *Worker) SetLevel(ctx context.Context, level string) error {
	if err := w.connect(ctx); err != nil {
		return err
	}
	if w.level == level {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, w.run.opTimeout)
	defer cancel()
	if _, err := w.conn.Exec(cctx, "SET raftsql.read_consistency = "+level); err != nil {
		w.drop()
		return fmt.Errorf("jepsen: SET read_consistency: %w", err)
	}
	w.level = level
	return nil
}

// Do runs f on the worker's connection with the operation timeout. After
// an error the connection is dropped unless it was a definite SQL error,
// which leaves a PostgreSQL session usable.
func (w *Worker) Do(ctx context.Context, f func(ctx context.Context, c *pgx.Conn) error) error {
	if w.conn == nil {
		return ErrNotConnected
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.run.opTimeout)
	defer cancel()
	err := f(cctx, w.conn)
	if err != nil && (Classify(err) != Fail || SQLState(err) == "") {
		w.drop()
	}
	return err
}

func (w *Worker) close() {
	if w.conn != nil {
		w.drop()
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ackLog holds the return times of acknowledged writes.
type ackLog struct {
	mu sync.Mutex
	t  []time.Duration
}

func (a *ackLog) add(t time.Duration) {
	a.mu.Lock()
	a.t = append(a.t, t)
	a.mu.Unlock()
}

func (a *ackLog) sorted() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := append([]time.Duration(nil), a.t...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
