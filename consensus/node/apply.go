package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

// applyTask is a run of committed entries, or a received snapshot to
// restore before the entries that follow it.
type applyTask struct {
	ents []consensus.Entry
	snap *consensus.SnapshotMeta
}

// pushApply queues committed entries for the applier goroutine. The queue
// is unbounded so that a slow state machine never blocks the loop (and
// with it ticks, heartbeats and elections); the entries are also in the
// durable log, so nothing is lost if the node stops with a backlog.
func (n *Node) pushApply(ents []consensus.Entry) {
	n.applyMu.Lock()
	if k := len(n.applyQueue); k > 0 && n.applyQueue[k-1].snap == nil {
		n.applyQueue[k-1].ents = append(n.applyQueue[k-1].ents, ents...)
	} else {
		n.applyQueue = append(n.applyQueue, applyTask{ents: ents})
	}
	n.applyMu.Unlock()
	n.kickApplier()
}

// pushRestore queues the installation of a received snapshot.
func (n *Node) pushRestore(meta consensus.SnapshotMeta) {
	n.applyMu.Lock()
	n.applyQueue = append(n.applyQueue, applyTask{snap: &meta})
	n.applyMu.Unlock()
	n.kickApplier()
}

func (n *Node) kickApplier() {
	select {
	case n.applyKick <- struct{}{}:
	default:
	}
}

// applyLoop is the applier goroutine: it hands queued entries to the
// StateMachine in order, in batches of at most maxApplyBatch, skipping
// what the state machine already has, and restores received snapshots.
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
			tasks := n.applyQueue
			n.applyQueue = nil
			n.applyMu.Unlock()
			if len(tasks) == 0 {
				break
			}
			for _, task := range tasks {
				var err error
				if task.snap != nil {
					last, err = n.restore(ctx, *task.snap, last)
				} else {
					last, err = n.apply(ctx, task.ents, last)
				}
				if err != nil {
					if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
						n.quit(err)
					}
					return
				}
			}
		}
	}
}

// apply hands q to the state machine and returns the new applied index.
func (n *Node) apply(ctx context.Context, q []consensus.Entry, last uint64) (uint64, error) {
	// Entries at or below last were applied before a restart or are
	// covered by a restored snapshot.
	for len(q) > 0 && q[0].Index <= last {
		q = q[1:]
	}
	for len(q) > 0 {
		batch := q[:min(len(q), maxApplyBatch)]
		q = q[len(batch):]
		if batch[0].Index != last+1 {
			return last, fmt.Errorf("node: applier: entry %d follows applied index %d (gap in committed entries)", batch[0].Index, last)
		}
		if err := n.cfg.StateMachine.Apply(ctx, batch); err != nil {
			return last, fmt.Errorf("node: apply entries %d..%d: %w", batch[0].Index, batch[len(batch)-1].Index, err)
		}
		last = batch[len(batch)-1].Index
		n.metrics.applied.Add(uint64(len(batch)))
		n.metrics.applyBatches.Add(1)
		n.setApplied(last)
		// A RequestSnapshot that found nothing new to snapshot is still
		// pending (snapLoop leaves it set): this batch is something new.
		if n.snapNow.Load() || (n.cfg.SnapshotEntries > 0 && last-min(last, n.lastSnap.Load()) >= n.cfg.SnapshotEntries) {
			select {
			case n.snapKick <- struct{}{}:
			default:
			}
		}
	}
	return last, nil
}

// restore installs the received snapshot meta.Index into the state machine.
func (n *Node) restore(ctx context.Context, meta consensus.SnapshotMeta, last uint64) (uint64, error) {
	if meta.Index <= last {
		n.log.Info("state machine already past received snapshot", "snapshot", meta.Index, "applied", last)
		return last, nil
	}
	start := time.Now()
	if err := n.snapper.Restore(ctx, n.cfg.Snapshots.Path(meta.Index)); err != nil {
		return last, fmt.Errorf("node: restore snapshot %d: %w", meta.Index, err)
	}
	n.metrics.installs.Add(1)
	n.metrics.installNanos.Add(uint64(time.Since(start)))
	got := n.cfg.StateMachine.AppliedIndex()
	if got < meta.Index {
		return last, fmt.Errorf("node: restored snapshot %d but the state machine reports index %d", meta.Index, got)
	}
	n.log.Info("installed snapshot from leader", "index", meta.Index, "term", meta.Term)
	if meta.Index > n.lastSnap.Load() {
		n.lastSnap.Store(meta.Index)
	}
	n.setApplied(got)
	return got, nil
}

func (n *Node) setApplied(i uint64) {
	n.applied.Store(i)
	n.mu.Lock()
	close(n.appliedCh)
	n.appliedCh = make(chan struct{})
	n.mu.Unlock()
}

// snapLoop takes snapshots when the applier asks (every SnapshotEntries
// entries), concurrently with Apply, then compacts the log up to the
// previous snapshot (see Snapshots for why not this one). A failed
// snapshot is logged and retried at the next trigger: the log just grows.
func (n *Node) snapLoop(ctx context.Context) {
	defer close(n.snapDone)
	if n.snapper == nil {
		return
	}
	for {
		select {
		case <-n.snapKick:
		case <-ctx.Done():
			return
		}
		// A request stays pending until a snapshot takes it: while the
		// applied index is not past the last snapshot (the applier calls
		// the state machine, which may request one, before it publishes
		// the batch's index) the next applied batch kicks again.
		forced := n.snapNow.Load()
		if a, s := n.applied.Load(), n.lastSnap.Load(); a <= s || (!forced && a < s+n.cfg.SnapshotEntries) {
			continue // a stale kick: a snapshot was taken or received since
		}
		if forced {
			n.snapNow.Store(false) // the snapshot below covers what was applied
		}
		start := time.Now()
		idx, err := n.cfg.Snapshots.take(ctx, n.snapper)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.log.Warn("taking snapshot failed", "err", err)
			continue
		}
		d := time.Since(start)
		n.metrics.snaps.Add(1)
		n.metrics.snapNanos.Add(uint64(d))
		n.metrics.lastSnapNanos.Store(uint64(d))
		prev := n.lastSnap.Load()
		if idx <= prev {
			continue
		}
		n.lastSnap.Store(idx)
		to := prev
		if forced {
			to = idx // RequestSnapshot: compact up to this snapshot
		}
		n.log.Info("snapshot taken", "index", idx, "compact_to", to, "requested", forced)
		if to == 0 {
			continue
		}
		if err := n.do(ctx, func() error { return n.compactTo(to) }); err != nil && ctx.Err() == nil {
			n.log.Warn("compacting log failed", "index", to, "err", err)
		}
	}
}

// compactTo discards the log up to index, which the snapshot file at
// index covers, and tells the core (loop goroutine). While a follower is
// being sent a snapshot it compacts only up to that snapshot and leaves
// the rest for when the guard ends (snapguard.go).
func (n *Node) compactTo(index uint64) error {
	if floor, ok := n.guardFloor(); ok && index > floor {
		if index > n.pendingCompact {
			n.pendingCompact = index
			n.log.Info("log compaction held back for a follower receiving a snapshot", "wanted", index, "held_at", floor)
		}
		index = floor
	}
	cur, err := n.cfg.Store.Snapshot()
	if err != nil {
		return err
	}
	if index <= cur.Index {
		return nil
	}
	if err := n.cfg.Store.Compact(index); err != nil {
		return err
	}
	meta, err := n.cfg.Store.Snapshot()
	if err != nil {
		return err
	}
	n.rn.Compact(meta)
	n.cfg.Snapshots.removeBefore(meta.Index)
	return nil
}
