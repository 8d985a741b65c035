package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/raftsql/raftsql/consensus"
)

// pushApply queues committed entries for the applier goroutine. The queue
// is unbounded so that a slow state machine never blocks the loop (and
// with it ticks, heartbeats and elections); the entries are also in the
// durable log, so nothing is lost if the node stops with a backlog.
func (n *Node) pushApply(ents []consensus.Entry) {
	n.applyMu.Lock()
	n.applyQueue = append(n.applyQueue, ents...)
	n.applyMu.Unlock()
	select {
	case n.applyKick <- struct{}{}:
	default:
	}
}

// applyLoop is the applier goroutine: it hands queued entries to the
// StateMachine in order, in batches of at most maxApplyBatch, skipping
// what the state machine had applied before Start.
func (n *Node) applyLoop(ctx context.Context) {
	defer close(n.applyDone)
	last := n.startApplied
	for {
		select {
		case <-n.applyKick:
		case <-ctx.Done():
			return
		}
		for {
			n.applyMu.Lock()
			q := n.applyQueue
			n.applyQueue = nil
			n.applyMu.Unlock()
			if len(q) == 0 {
				break
			}
			// Entries at or below last were applied before a restart
			// (the core's applied index may lag the state machine's).
			for len(q) > 0 && q[0].Index <= last {
				q = q[1:]
			}
			for len(q) > 0 {
				batch := q[:min(len(q), maxApplyBatch)]
				q = q[len(batch):]
				if batch[0].Index != last+1 {
					n.quit(fmt.Errorf("node: applier: entry %d follows applied index %d (gap in committed entries)", batch[0].Index, last))
					return
				}
				if err := n.cfg.StateMachine.Apply(ctx, batch); err != nil {
					if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
						return // stopping
					}
					n.quit(fmt.Errorf("node: apply entries %d..%d: %w", batch[0].Index, batch[len(batch)-1].Index, err))
					return
				}
				last = batch[len(batch)-1].Index
				n.metrics.applied.Add(uint64(len(batch)))
				n.metrics.applyBatches.Add(1)
				n.setApplied(last)
			}
		}
	}
}

func (n *Node) setApplied(i uint64) {
	n.applied.Store(i)
	n.mu.Lock()
	close(n.appliedCh)
	n.appliedCh = make(chan struct{})
	n.mu.Unlock()
}
