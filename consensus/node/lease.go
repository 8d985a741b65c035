package node

import "time"

// tickClock remembers when each recent tick began, so that a tick number
// from the core (LeaseStartTick) maps back to this node's clock.
type tickClock struct {
	times []time.Time
	last  uint64
}

func newTickClock(size int, start time.Time) tickClock {
	c := tickClock{times: make([]time.Time, size)}
	c.times[0] = start // tick 0 began at Start
	return c
}

func (c *tickClock) record(n uint64, t time.Time) {
	c.times[n%uint64(len(c.times))] = t
	c.last = n
}

// at returns when tick n began; false if n is in the future or too old to
// be remembered (then it is far older than any lease anyway).
func (c *tickClock) at(n uint64) (time.Time, bool) {
	if n > c.last || c.last-n >= uint64(len(c.times)) {
		return time.Time{}, false
	}
	return c.times[n%uint64(len(c.times))], true
}

// updateLease recomputes the lease end from the core (loop goroutine).
// The tick is mapped to the time it began, which is no later than when the
// heartbeats of that round were sent, so the lease errs on the short side.
func (n *Node) updateLease() {
	if n.t.lease <= 0 {
		n.leaseExp.Store(0)
		return
	}
	tick, ok := n.rn.LeaseStartTick()
	if !ok {
		n.leaseExp.Store(0)
		return
	}
	at, ok := n.ticks.at(tick)
	if !ok {
		n.leaseExp.Store(0)
		return
	}
	n.leaseExp.Store(int64(at.Sub(n.base) + n.t.lease))
}
