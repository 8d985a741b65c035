package node

import (
	"context"
	"encoding/binary"

	"github.com/raftsql/raftsql/consensus"
)

// readReq is one ReadIndex caller waiting for an index.
type readReq struct {
	ctx  context.Context
	resc chan uint64 // buffered 1: the loop never blocks on it
}

// readBatch is the callers that share one core ReadIndex request.
type readBatch struct {
	waiters []*readReq
	issued  uint64 // tick at which it was asked
}

// readBatcher groups ReadIndex callers: all callers that arrive during one
// loop iteration become one core request (one heartbeat round on the
// leader). Unanswered batches are asked again after a while or when the
// leader changes (the core drops requests it cannot serve). Loop-owned.
type readBatcher struct {
	nonce    [8]byte // per-incarnation, so an answer to a previous run's request is never taken
	seq      uint64
	unissued []*readReq
	pending  map[string]*readBatch
}

func newReadBatcher(nonce [8]byte) readBatcher {
	return readBatcher{nonce: nonce, pending: map[string]*readBatch{}}
}

func (b *readBatcher) add(r *readReq) { b.unissued = append(b.unissued, r) }

// issue sends one core request for every caller queued since the last one.
// readIndex is called with the request context (RawNode.ReadIndex).
func (b *readBatcher) issue(readIndex func(rctx []byte), tick uint64) {
	live := b.unissued[:0]
	for _, r := range b.unissued {
		if r.ctx.Err() == nil {
			live = append(live, r)
		}
	}
	clear(b.unissued[len(live):])
	if len(live) == 0 {
		b.unissued = live
		return
	}
	b.seq++
	rctx := make([]byte, 16)
	copy(rctx, b.nonce[:])
	binary.BigEndian.PutUint64(rctx[8:], b.seq)
	b.pending[string(rctx)] = &readBatch{waiters: live, issued: tick}
	b.unissued = nil
	readIndex(rctx)
}

// answer wakes the callers of every answered request and returns how
// many it woke.
func (b *readBatcher) answer(states []consensus.ReadState) (woken int) {
	for _, rs := range states {
		batch, ok := b.pending[string(rs.RequestCtx)]
		if !ok {
			continue // retried meanwhile, or not ours
		}
		delete(b.pending, string(rs.RequestCtx))
		for _, w := range batch.waiters {
			w.resc <- rs.Index
		}
		woken += len(batch.waiters)
	}
	return woken
}

// retryStale queues again the batches unanswered for retryTicks.
func (b *readBatcher) retryStale(tick, retryTicks uint64) {
	for k, batch := range b.pending {
		if tick-batch.issued >= retryTicks {
			delete(b.pending, k)
			b.unissued = append(b.unissued, batch.waiters...)
		}
	}
}

// reissueAll queues every pending batch again (the leader changed).
func (b *readBatcher) reissueAll() {
	for k, batch := range b.pending {
		delete(b.pending, k)
		b.unissued = append(b.unissued, batch.waiters...)
	}
}
