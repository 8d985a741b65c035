package node

import (
	"sync/atomic"
	"time"
)

// Metrics are cumulative counters of the driver, for /metrics and
// benchmarks. Read them with Node.Metrics (safe from any goroutine).
type Metrics struct {
	Saves          uint64        // LogStore.Save calls (one fsync each)
	SavedEntries   uint64        // entries written by those calls
	SaveTime       time.Duration // total time in Save
	MaxSave        time.Duration // longest Save
	SlowSaves      uint64        // Saves longer than 100 ms
	Applied        uint64        // entries handed to StateMachine.Apply
	ApplyBatches   uint64        // StateMachine.Apply calls
	ReadRequests   uint64        // core ReadIndex requests (each shared by many callers)
	ReadCallers    uint64        // ReadIndex callers answered
	DroppedInbound uint64        // inbound messages dropped on a full queue

	SnapshotsTaken     uint64        // snapshots this node took of its state machine
	SnapshotTime       time.Duration // total time taking them
	LastSnapshot       time.Duration // how long the last one took
	SnapshotsInstalled uint64        // snapshots received from a leader and installed
	InstallTime        time.Duration // total time installing them
}

type metrics struct {
	saves, savedEntries, saveNanos, maxSaveNanos, slowSaves atomic.Uint64
	applied, applyBatches                                   atomic.Uint64
	readRequests, readCallers                               atomic.Uint64
	snaps, snapNanos, lastSnapNanos                         atomic.Uint64
	installs, installNanos                                  atomic.Uint64
}

// Metrics returns the node's counters.
func (n *Node) Metrics() Metrics {
	m := &n.metrics
	return Metrics{
		Saves:          m.saves.Load(),
		SavedEntries:   m.savedEntries.Load(),
		SaveTime:       time.Duration(m.saveNanos.Load()),
		MaxSave:        time.Duration(m.maxSaveNanos.Load()),
		SlowSaves:      m.slowSaves.Load(),
		Applied:        m.applied.Load(),
		ApplyBatches:   m.applyBatches.Load(),
		ReadRequests:   m.readRequests.Load(),
		ReadCallers:    m.readCallers.Load(),
		DroppedInbound: n.dropped.Load(),

		SnapshotsTaken:     m.snaps.Load(),
		SnapshotTime:       time.Duration(m.snapNanos.Load()),
		LastSnapshot:       time.Duration(m.lastSnapNanos.Load()),
		SnapshotsInstalled: m.installs.Load(),
		InstallTime:        time.Duration(m.installNanos.Load()),
	}
}

func (m *metrics) noteSave(entries int, d time.Duration) {
	m.saves.Add(1)
	m.savedEntries.Add(uint64(entries))
	m.saveNanos.Add(uint64(d))
	if uint64(d) > m.maxSaveNanos.Load() { // only the loop writes it
		m.maxSaveNanos.Store(uint64(d))
	}
	if d > slowSave {
		m.slowSaves.Add(1)
	}
}
