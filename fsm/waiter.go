package fsm

import (
	"context"
	"sync"
)

type waiterKey struct{ session, seq uint64 }

// Waiter receives the results of one command when this node applies it.
type Waiter struct {
	key waiterKey
	m   *waiterMap
	ch  chan waiterResult // buffered 1; written once
}

type waiterResult struct {
	results []Result
	err     error
}

type waiterMap struct {
	mu sync.Mutex
	m  map[waiterKey]*Waiter
}

// Expect registers interest in the results of the command (sessionID,
// seq). Call it before proposing the command, then Wait. Results of
// commands nobody expects are dropped. A second Expect for the same key
// replaces the first, whose Wait returns ErrWaiterReplaced.
func (f *FSM) Expect(sessionID, seq uint64) *Waiter {
	w := &Waiter{key: waiterKey{sessionID, seq}, m: &f.waiters, ch: make(chan waiterResult, 1)}
	f.waiters.mu.Lock()
	defer f.waiters.mu.Unlock()
	if f.isClosed.Load() { // checked under the lock: Close fails waiters under it
		w.ch <- waiterResult{err: ErrClosed}
		return w
	}
	if old := f.waiters.m[w.key]; old != nil {
		old.ch <- waiterResult{err: ErrWaiterReplaced}
	}
	f.waiters.m[w.key] = w
	return w
}

// Wait returns the command's results once this node has applied it (on
// every node, so a follower that forwarded a write learns the result from
// its own apply). It returns an error when ctx ends (the waiter is then
// cancelled), the FSM is closed (ErrClosed), a snapshot replaces the state
// (ErrRestored), or Cancel was called (ErrCanceled).
func (w *Waiter) Wait(ctx context.Context) ([]Result, error) {
	select {
	case r := <-w.ch:
		w.ch <- r // a later Wait sees the same outcome
		return r.results, r.err
	case <-ctx.Done():
		w.Cancel()
		return nil, ctx.Err()
	}
}

// Cancel unregisters the waiter; a pending Wait returns ErrCanceled.
func (w *Waiter) Cancel() {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	if w.m.m[w.key] == w {
		delete(w.m.m, w.key)
		w.ch <- waiterResult{err: ErrCanceled}
	}
}

func (m *waiterMap) deliver(k waiterKey, rs []Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.m[k]; w != nil {
		delete(m.m, k)
		w.ch <- waiterResult{results: rs}
	}
}

func (m *waiterMap) failAll(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, w := range m.m {
		delete(m.m, k)
		w.ch <- waiterResult{err: err}
	}
}

// pending is the number of registered waiters (for tests and metrics).
func (m *waiterMap) pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}

// ctxMutex is a mutex whose Lock can give up when a context ends (the
// writer's mutex: a Preview or an Apply waiting behind a long batch can be
// canceled).
type ctxMutex struct{ ch chan struct{} }

func newCtxMutex() ctxMutex { return ctxMutex{ch: make(chan struct{}, 1)} }

func (m ctxMutex) Lock() { m.ch <- struct{}{} }

func (m ctxMutex) Unlock() { <-m.ch }

// LockCtx locks m, or returns ctx's error if ctx ends first (or has
// ended: a done ctx never takes the lock).
func (m ctxMutex) LockCtx(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
