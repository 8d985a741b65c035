package jepsen

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SetOp is one insert of the set workload.
type SetOp struct {
	Worker int           `json:"worker"`
	Node   string        `json:"node"`
	Value  int64         `json:"value"`
	Status Status        `json:"status"`
	Err    string        `json:"err,omitempty"`
	Call   time.Duration `json:"call"`
	Return time.Duration `json:"return"`
}

// Set inserts unique values into a table without a unique constraint, so a
// write applied twice shows up as a duplicate.
type Set struct {
	ops log[SetOp]
	seq counter
}

// Name implements Workload.
func (s *Set) Name() string { return "set" }

// Setup creates the table.
func (s *Set) Setup(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "CREATE TABLE set_items (v INTEGER NOT NULL)"); err != nil {
		return fmt.Errorf("set setup: %w", err)
	}
	return nil
}

// Step inserts the next value. A value is never retried: a retry that is
// applied twice would be the client's doing, not the server's.
func (s *Set) Step(ctx context.Context, w *Worker) {
	if err := w.Ready(ctx); err != nil {
		return
	}
	op := SetOp{Worker: w.ID, Node: w.Node, Value: int64(s.seq.next()) + 1}
	op.Call = w.clock.Now()
	err := w.Do(ctx, func(ctx context.Context, c *pgx.Conn) error {
		tag, err := c.Exec(ctx, "INSERT INTO set_items (v) VALUES ($1)", op.Value)
		if err == nil && tag.RowsAffected() != 1 {
			return fmt.Errorf("jepsen: insert affected %d rows", tag.RowsAffected())
		}
		return err
	})
	op.Return = w.clock.Now()
	op.Status = Classify(err)
	op.Err = errText(err)
	s.ops.add(op)
	if op.Status == OK {
		w.ackWrite(op.Return)
	}
}

// Ops returns the recorded history.
func (s *Set) Ops() []SetOp { return s.ops.all() }

// SetCounts summarises a final read of one node against the history.
type SetCounts struct {
	Acked, AckedFound, Unknown, UnknownFound, Failed int
}

// CheckFinal compares the values read from one node with the history:
// every acknowledged insert exactly once, unknown ones at most once,
// definitely failed ones and values never inserted not at all.
func (s *Set) CheckFinal(node string, ops []SetOp, values []int64) (SetCounts, []string) {
	count := map[int64]int{}
	for _, v := range values {
		count[v]++
	}
	var c SetCounts
	var problems []string
	seen := map[int64]bool{}
	add := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf("set on %s: ", node)+fmt.Sprintf(format, args...))
		}
	}
	for _, op := range ops {
		seen[op.Value] = true
		n := count[op.Value]
		switch op.Status {
		case OK:
			c.Acked++
			if n >= 1 {
				c.AckedFound++
			}
			if n == 0 {
				add("acknowledged insert %d (via %s, returned at %v) is lost", op.Value, op.Node, op.Return)
			}
		case Unknown:
			c.Unknown++
			if n >= 1 {
				c.UnknownFound++
			}
		case Fail:
			c.Failed++
			if n > 0 {
				add("insert %d failed with a definite error (%s) but is present", op.Value, op.Err)
			}
		}
		if n > 1 {
			add("value %d present %d times (applied more than once)", op.Value, n)
		}
	}
	for v := range count {
		if !seen[v] {
			add("value %d was never inserted", v)
		}
	}
	return c, problems
}
