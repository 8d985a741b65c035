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

// readBatch is the callers that share one core ReadIndex request. It is
// formed before its first request is made, so the answer to any of its
// requests (first or retried) is valid for all of them.
type readBatch struct {
	waiters  []*readReq
	issued   uint64   // tick of the newest request
	keys     []string // request contexts still awaiting an answer
	retrying bool     // queued to be asked again
}

// maxKeysPerBatch bounds the outstanding requests of one batch; older
// ones are forgotten (their answers, if any, are then ignored).
const maxKeysPerBatch = 4

// readBatcher groups ReadIndex callers: all callers that arrive during one
// loop iteration become one core request (one heartbeat round on the
// leader). A batch that stays unanswered is asked again after a while or
// at once when the leader changes (the core drops requests it cannot
// serve), without forgetting its earlier requests: under a slow disk a
// round may take longer than the retry interval, and whichever answer
// comes first serves the batch. Loop-owned.
type readBatcher struct {
	nonce    [8]byte // per-incarnation, so an answer to a previous run's request is never taken
	seq      uint64
	unissued []*readReq
	retry    []*readBatch
	pending  map[string]*readBatch
}

func newReadBatcher(nonce [8]byte) readBatcher {
	return readBatcher{nonce: nonce, pending: map[string]*readBatch{}}
}

func (b *readBatcher) add(r *readReq) { b.unissued = append(b.unissued, r) }

// issue makes one core request for every caller queued since the last
// call, and one more for every batch due for a retry. readIndex is
// RawNode.ReadIndex.
func (b *readBatcher) issue(readIndex func(rctx []byte), tick uint64) {
	if live := liveWaiters(b.unissued); len(live) > 0 {
		b.ask(&readBatch{waiters: live}, readIndex, tick)
	}
	b.unissued = nil
	for _, batch := range b.retry {
		batch.retrying = false
		batch.waiters = liveWaiters(batch.waiters)
		if len(batch.waiters) == 0 {
			b.forget(batch)
			continue
		}
		b.ask(batch, readIndex, tick)
	}
	b.retry = nil
}

func liveWaiters(ws []*readReq) []*readReq {
	live := ws[:0]
	for _, r := range ws {
		if r.ctx.Err() == nil {
			live = append(live, r)
		}
	}
	clear(ws[len(live):])
	return live
}

func (b *readBatcher) ask(batch *readBatch, readIndex func(rctx []byte), tick uint64) {
	b.seq++
	rctx := make([]byte, 16)
	copy(rctx, b.nonce[:])
	binary.BigEndian.PutUint64(rctx[8:], b.seq)
	if len(batch.keys) == maxKeysPerBatch {
		delete(b.pending, batch.keys[0])
		batch.keys = append(batch.keys[:0], batch.keys[1:]...)
	}
	batch.keys = append(batch.keys, string(rctx))
	batch.issued = tick
	b.pending[string(rctx)] = batch
	readIndex(rctx)
}

func (b *readBatcher) forget(batch *readBatch) {
	for _, k := range batch.keys {
		delete(b.pending, k)
	}
	batch.keys = nil
}

// answer wakes the callers of every answered batch and returns how many
// it woke.
func (b *readBatcher) answer(states []consensus.ReadState) (woken int) {
	for _, rs := range states {
		batch, ok := b.pending[string(rs.RequestCtx)]
		if !ok {
			continue // already answered through another request, or not ours
		}
		b.forget(batch)
		for _, w := range batch.waiters {
			w.resc <- rs.Index
		}
		woken += len(batch.waiters)
		batch.waiters = nil
	}
	return woken
}

// retryStale queues the batches unanswered for retryTicks to be asked again.
func (b *readBatcher) retryStale(tick, retryTicks uint64) {
	for _, batch := range b.pending {
		if !batch.retrying && tick-batch.issued >= retryTicks {
			batch.retrying = true
			b.retry = append(b.retry, batch)
		}
	}
}

// reissueAll queues every pending batch to be asked again (the leader
// changed).
func (b *readBatcher) reissueAll() {
	for _, batch := range b.pending {
		if !batch.retrying {
			batch.retrying = true
			b.retry = append(b.retry, batch)
		}
	}
}
