package transport

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

// Network is an in-process network for tests: each node gets a Mem
// transport from Transport, and the test injects faults — links cut one
// way or both, drops, duplicates and reordering (seeded), delays. Messages travel through the wire
// codec (so nothing is shared between nodes, and the codec is exercised),
// in order per link, asynchronously: Send never calls another node's
// Handler on the caller's goroutine.
type Network struct {
	log *slog.Logger

	mu        sync.Mutex
	seed      uint64
	links     map[[2]string]*linkFaults
	listening map[string]*Mem // by address
	cut       map[[2]string]bool
	dropRate  float64
	dupRate   float64
	reorder   float64
	delay     time.Duration
	linkDelay map[[2]string]time.Duration
}

// NetworkConfig configures a Network.
type NetworkConfig struct {
	// Seed seeds the drop decisions.
	Seed   uint64
	Logger *slog.Logger
}

// NewNetwork returns an empty network without faults.
func NewNetwork(cfg NetworkConfig) *Network {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Network{
		log:       cfg.Logger.With("component", "memnet"),
		seed:      cfg.Seed,
		links:     map[[2]string]*linkFaults{},
		listening: map[string]*Mem{},
		cut:       map[[2]string]bool{},
		linkDelay: map[[2]string]time.Duration{},
	}
}

// MemConfig configures one node's in-process transport.
type MemConfig struct {
	ID string
	// Addr is the address the node listens on (default: ID).
	Addr string
	// AdvertiseAddr is the address this node tells the nodes it sends to
	// (see TCPConfig.AdvertiseAddr; default: Addr).
	AdvertiseAddr string
	// QueueSize bounds each link's queue (default 4096).
	QueueSize int
	// Snapshots carries snapshot data with MsgSnap as the TCP transport
	// does (Source on the sender, Sink on the receiver).
	Snapshots *SnapshotConfig
}

// Transport returns a new transport for a node on this network.
func (n *Network) Transport(cfg MemConfig) *Mem {
	if cfg.Addr == "" {
		cfg.Addr = cfg.ID
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = cfg.Addr
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Mem{net: n, cfg: cfg, ctx: ctx, cancel: cancel, links: map[string]*memLink{}, seenAddr: map[string]string{}, log: n.log.With("node", cfg.ID)}
	t.advertise.Store(&cfg.AdvertiseAddr)
	return t
}

// Cut drops every message sent from → to (by node id) until Heal or
// Restore. Faults (cuts, drops) apply when a message is sent; delays when
// it is delivered.
func (n *Network) Cut(from, to string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[[2]string{from, to}] = true
}

// CutBoth cuts the link between a and b in both directions.
func (n *Network) CutBoth(a, b string) { n.Cut(a, b); n.Cut(b, a) }

// Restore undoes Cut(from, to).
func (n *Network) Restore(from, to string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cut, [2]string{from, to})
}

// Isolate cuts id from each of others, both ways.
func (n *Network) Isolate(id string, others ...string) {
	for _, o := range others {
		if o != id {
			n.CutBoth(id, o)
		}
	}
}

// Heal removes every cut, the drop rate and all delays.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
	clear(n.linkDelay)
	n.dropRate, n.dupRate, n.reorder, n.delay = 0, 0, 0, 0
}

// SetDuplicateRate makes every message be delivered twice with
// probability p.
func (n *Network) SetDuplicateRate(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dupRate = p
}

// SetReorderRate makes every message be held back, with probability p,
// and delivered after the messages of the next Send on its link (so it
// arrives out of order; it waits until there is such a Send).
func (n *Network) SetReorderRate(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reorder = p
}

// SetDropRate makes every message be dropped with probability p.
func (n *Network) SetDropRate(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dropRate = p
}

// SetDelay delays every delivery by d (SetLinkDelay overrides per link).
func (n *Network) SetDelay(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delay = d
}

// SetLinkDelay delays deliveries from → to by d.
func (n *Network) SetLinkDelay(from, to string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.linkDelay[[2]string{from, to}] = d
}

// linkFaults is the fault state of one directed link.
type linkFaults struct {
	rng  *rand.Rand
	held []consensus.Message // held back for reordering
}

// filter applies the cuts, drops, duplicates and reordering to msgs sent
// from → to, at Send time. Each link draws from its own source seeded by
// the network's seed and the link's ends, so a link's faults depend only on
// the seed and the sequence of Sends on that link.
func (n *Network) filter(from, to string, msgs []consensus.Message) []consensus.Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	link := [2]string{from, to}
	if n.cut[link] {
		return nil
	}
	lf := n.links[link]
	if n.dropRate <= 0 && n.dupRate <= 0 && n.reorder <= 0 && (lf == nil || len(lf.held) == 0) {
		return msgs
	}
	if lf == nil {
		h := fnv.New64a()
		h.Write([]byte(from))
		h.Write([]byte{0})
		h.Write([]byte(to))
		lf = &linkFaults{rng: rand.New(rand.NewPCG(n.seed, h.Sum64()))}
		n.links[link] = lf
	}
	held := lf.held
	lf.held = nil
	var kept []consensus.Message
	for _, m := range msgs {
		if n.dropRate > 0 && lf.rng.Float64() < n.dropRate {
			continue
		}
		if n.reorder > 0 && lf.rng.Float64() < n.reorder {
			lf.held = append(lf.held, m)
			continue
		}
		kept = append(kept, m)
		if n.dupRate > 0 && lf.rng.Float64() < n.dupRate {
			kept = append(kept, m)
		}
	}
	return append(kept, held...)
}

// route returns the transport listening at addr (nil if none) and the
// delay of the link from → to.
func (n *Network) route(from, to, addr string) (*Mem, time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d, ok := n.linkDelay[[2]string{from, to}]
	if !ok {
		d = n.delay
	}
	return n.listening[addr], d
}

// Mem is one node's transport on a Network.
type Mem struct {
	net    *Network
	cfg    MemConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stats  stats

	mu      sync.Mutex
	started bool
	closed  bool
	h       Handler
	links   map[string]*memLink
	// seenAddr is the address each sender last advertised to this node
	// (reported to an AddrObserver when it changes, like a new TCP
	// connection's preface).
	seenAddr  map[string]string
	advertise atomic.Pointer[string]

	// recvMu is held for reading while a delivery into this node runs,
	// and for writing by Close, so nothing is delivered after Close.
	recvMu     sync.RWMutex
	recvClosed bool
}

var _ Transport = (*Mem)(nil)

// Start registers the transport's address on the network.
func (t *Mem) Start(ctx context.Context, h Handler) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	if t.started {
		return fmt.Errorf("transport: already started")
	}
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	if t.net.listening[t.cfg.Addr] != nil {
		return fmt.Errorf("%w: %s", ErrAddrInUse, t.cfg.Addr)
	}
	t.net.listening[t.cfg.Addr] = t
	t.h = h
	t.started = true
	return nil
}

// Addr is the node's address on the network.
func (t *Mem) Addr() string { return t.cfg.Addr }

// SetAdvertiseAddr sets the address told to the nodes this one sends to.
func (t *Mem) SetAdvertiseAddr(addr string) { t.advertise.Store(&addr) }

// observe reports to the handler, if it is an AddrObserver, the address
// from advertises when it is new.
func (t *Mem) observe(h Handler, from, addr string) {
	o, ok := h.(AddrObserver)
	if !ok || addr == "" {
		return
	}
	t.mu.Lock()
	changed := t.seenAddr[from] != addr
	t.seenAddr[from] = addr
	t.mu.Unlock()
	if changed {
		o.ObservePeerAddr(from, addr)
	}
}

// Stats returns the cumulative counters.
func (t *Mem) Stats() Stats { return t.stats.snapshot() }

func (t *Mem) handler() Handler {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.h
}

func (t *Mem) reportUnreachable(id string) {
	if h := t.handler(); h != nil {
		h.ReportUnreachable(id)
	}
}

// AddPeer sets the address of id.
func (t *Mem) AddPeer(id, addr string) {
	if id == t.cfg.ID || id == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if l, ok := t.links[id]; ok {
		l.mu.Lock()
		l.addr = addr
		l.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(t.ctx)
	l := &memLink{t: t, to: id, addr: addr, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), done: make(chan struct{})}
	t.links[id] = l
	t.wg.Add(1)
	go l.run()
}

// RemovePeer forgets id and waits for its link goroutine.
func (t *Mem) RemovePeer(id string) {
	t.mu.Lock()
	l := t.links[id]
	delete(t.links, id)
	t.mu.Unlock()
	if l != nil {
		l.cancel()
		<-l.done
	}
}

// Send queues msgs on their links; unknown peers and full queues drop and
// report unreachable.
func (t *Mem) Send(msgs []consensus.Message) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	var unreachable []string
	for i := 0; i < len(msgs); {
		j := i + 1
		for j < len(msgs) && msgs[j].To == msgs[i].To {
			j++
		}
		l := t.links[msgs[i].To]
		if l == nil {
			t.stats.dropped.Add(uint64(j - i))
			unreachable = append(unreachable, msgs[i].To)
			i = j
			continue
		}
		kept := t.net.filter(t.cfg.ID, msgs[i].To, msgs[i:j])
		t.stats.dropped.Add(uint64(j - i - len(kept)))
		if !l.enqueue(kept) {
			t.stats.dropped.Add(uint64(len(kept)))
			unreachable = append(unreachable, msgs[i].To)
		}
		i = j
	}
	t.mu.Unlock()
	for _, id := range unreachable {
		t.reportUnreachable(id)
	}
}

// Close unregisters the address, stops the links and waits for them; no
// message is delivered to this node after Close returns.
func (t *Mem) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.cancel()
	links := t.links
	t.links = map[string]*memLink{}
	t.mu.Unlock()
	t.net.mu.Lock()
	if t.net.listening[t.cfg.Addr] == t {
		delete(t.net.listening, t.cfg.Addr)
	}
	t.net.mu.Unlock()
	t.recvMu.Lock()
	t.recvClosed = true
	t.recvMu.Unlock()
	for _, l := range links {
		<-l.done
	}
	t.wg.Wait()
	return nil
}

// deliver hands msgs (already copied through the codec) from node from,
// which advertises addr, to this node's handler; false when the node is
// closed.
func (t *Mem) deliver(from, addr string, msgs []consensus.Message) bool {
	t.recvMu.RLock()
	defer t.recvMu.RUnlock()
	if t.recvClosed {
		return false
	}
	h := t.handler()
	t.observe(h, from, addr)
	for _, m := range msgs {
		t.stats.recv.Add(1)
		h.Receive(m)
	}
	return true
}

type memLink struct {
	t      *Mem
	to     string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}

	mu   sync.Mutex
	addr string
	q    []consensus.Message
}

func (l *memLink) enqueue(msgs []consensus.Message) bool {
	if len(msgs) == 0 {
		return true
	}
	l.mu.Lock()
	if len(l.q)+len(msgs) > l.t.cfg.QueueSize {
		l.mu.Unlock()
		return false
	}
	l.q = append(l.q, msgs...)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

func (l *memLink) run() {
	defer l.t.wg.Done()
	defer close(l.done)
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.wake:
		}
		l.mu.Lock()
		batch, addr := l.q, l.addr
		l.q = nil
		l.mu.Unlock()
		// Copy through the wire codec: the receiver shares nothing with
		// the sender, as over TCP.
		copied := make([]consensus.Message, 0, len(batch))
		var buf []byte
		for i := range batch {
			buf = AppendMessage(buf[:0], &batch[i])
			m, err := DecodeMessage(buf)
			if err != nil {
				l.t.log.Error("message does not survive the codec", "type", batch[i].Type, "err", err)
				l.t.stats.dropped.Add(1)
				continue
			}
			copied = append(copied, m)
		}
		dst, delay := l.t.net.route(l.t.cfg.ID, l.to, addr)
		if dst == nil {
			l.t.stats.dropped.Add(uint64(len(copied)))
			l.t.reportUnreachable(l.to)
			continue
		}
		if delay > 0 {
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(delay):
			}
		}
		if !l.deliver(dst, copied) {
			l.t.stats.dropped.Add(uint64(len(copied)))
			l.t.reportUnreachable(l.to)
		}
	}
}

// deliver sends normal messages in one batch and MsgSnap through the
// snapshot hooks when both ends have them.
func (l *memLink) deliver(dst *Mem, msgs []consensus.Message) bool {
	start := 0
	for i, m := range msgs {
		if m.Type != consensus.MsgSnap || l.t.cfg.Snapshots == nil {
			continue
		}
		if !l.deliverBatch(dst, msgs[start:i]) {
			return false
		}
		start = i + 1
		ok := l.transferSnapshot(dst, m)
		if ok {
			l.t.stats.snapSent.Add(1)
		} else {
			l.t.stats.snapFail.Add(1)
		}
		if h := l.t.handler(); h != nil {
			h.ReportSnapshot(l.to, ok)
		}
	}
	return l.deliverBatch(dst, msgs[start:])
}

func (l *memLink) deliverBatch(dst *Mem, msgs []consensus.Message) bool {
	if len(msgs) == 0 {
		return true
	}
	if !dst.deliver(l.t.cfg.ID, *l.t.advertise.Load(), msgs) {
		return false
	}
	l.t.stats.sent.Add(uint64(len(msgs)))
	l.t.stats.batches.Add(1)
	return true
}

func (l *memLink) transferSnapshot(dst *Mem, m consensus.Message) bool {
	src, sink := l.t.cfg.Snapshots, dst.cfg.Snapshots
	if m.Snapshot == nil || src.Source == nil || sink == nil || sink.Sink == nil {
		l.t.log.Warn("cannot transfer snapshot: a side has no snapshot hooks", "to", l.to)
		return false
	}
	r, err := src.Source.Open(l.ctx, l.to, *m.Snapshot)
	if err != nil {
		l.t.log.Warn("open snapshot", "err", err)
		return false
	}
	defer r.Close()
	w, err := sink.Sink.Create(l.ctx, l.t.cfg.ID, *m.Snapshot)
	if err != nil {
		l.t.log.Warn("create snapshot", "err", err)
		return false
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return false
	}
	if err := w.Commit(); err != nil {
		return false
	}
	dst.stats.snapRecv.Add(1)
	return dst.deliver(l.t.cfg.ID, *l.t.advertise.Load(), []consensus.Message{m})
}
