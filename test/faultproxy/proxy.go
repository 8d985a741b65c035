package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"time"
)

// Errors returned by the proxy.
var (
	ErrClosed          = errors.New("faultproxy: network closed")
	ErrUnknownNode     = errors.New("faultproxy: unknown node")
	ErrAlreadyListened = errors.New("faultproxy: node already has a listener")
)

// Unknown is the From of a connection whose dialer Identify could not name.
// Rules never apply to it: such traffic passes untouched (and is logged).
const Unknown = "?"

// Identify names the node that opened c (the dialer), or returns an error.
type Identify func(c net.Conn) (string, error)

// Link is one direction between two nodes.
type Link struct {
	From, To string
}

func (l Link) String() string { return l.From + "->" + l.To }

// CutMode says what a cut link does to connections.
type CutMode int

const (
	// Refuse closes the link's connections and every new one at once.
	Refuse CutMode = iota
	// Blackhole keeps connections open and silently discards the bytes.
	Blackhole
)

func (m CutMode) String() string {
	if m == Blackhole {
		return "blackhole"
	}
	return "refuse"
}

// Rule is the fault state of one directed link. The zero Rule is a healthy
// link.
type Rule struct {
	Cut    bool
	Mode   CutMode
	Delay  time.Duration
	Jitter time.Duration
	// Message faults: the probability that one transport frame (a batch
	// of Raft messages, or one piece of a snapshot stream) is discarded,
	// sent twice, or held back and sent after the next frame. They apply
	// to connections that speak the Raft framing (see frames.go); other
	// streams pass whole.
	Drop, Duplicate, Reorder float64
}

func (r Rule) String() string {
	if r.Cut {
		return "cut(" + r.Mode.String() + ")"
	}
	var parts []string
	if r.Delay > 0 || r.Jitter > 0 {
		parts = append(parts, fmt.Sprintf("delay(%v±%v)", r.Delay, r.Jitter))
	}
	if r.Drop > 0 {
		parts = append(parts, fmt.Sprintf("drop(%.2f)", r.Drop))
	}
	if r.Duplicate > 0 {
		parts = append(parts, fmt.Sprintf("dup(%.2f)", r.Duplicate))
	}
	if r.Reorder > 0 {
		parts = append(parts, fmt.Sprintf("reorder(%.2f)", r.Reorder))
	}
	if len(parts) == 0 {
		return "healthy"
	}
	return strings.Join(parts, "+")
}

// Stats counts bytes per directed link.
type Stats struct {
	Forwarded map[Link]int64
	Dropped   map[Link]int64
	Refused   map[Link]int64 // connections closed at accept because of a cut
	// Frames counts transport frames per link and what the message
	// faults did to them.
	Frames map[Link]FrameStats
}

// FrameStats counts the frames of one link.
type FrameStats struct {
	Forwarded, Dropped, Duplicated, Reordered int64
	// SnapshotDropped and SnapshotDuplicated count the frames of
	// snapshot streams among Dropped and Duplicated.
	SnapshotDropped, SnapshotDuplicated int64
}

// Network is the set of proxies of one cluster.
type Network struct {
	log      *slog.Logger
	identify Identify

	mu        sync.Mutex
	closed    bool
	rules     map[Link]Rule
	listeners map[string]net.Listener // by destination node
	targets   map[string]string       // real address of each destination node
	conns     map[*proxyConn]struct{}
	rng       *rand.Rand
	fwd, drop map[Link]int64
	refused   map[Link]int64
	frames    map[Link]*FrameStats

	wg sync.WaitGroup
}

// New returns an empty Network. seed drives the jitter of delays.
func New(log *slog.Logger, identify Identify, seed uint64) *Network {
	return &Network{
		log:       log,
		identify:  identify,
		rules:     map[Link]Rule{},
		listeners: map[string]net.Listener{},
		targets:   map[string]string{},
		conns:     map[*proxyConn]struct{}{},
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		fwd:       map[Link]int64{},
		drop:      map[Link]int64{},
		refused:   map[Link]int64{},
		frames:    map[Link]*FrameStats{},
	}
}

// Listen opens the front door of node to on a free loopback port; every
// connection accepted there is forwarded to target (the node's real Raft
// address), which may be down at the moment. It returns the front door's
// address.
func (n *Network) Listen(to, target string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return "", ErrClosed
	}
	if _, ok := n.listeners[to]; ok {
		return "", fmt.Errorf("%w: %s", ErrAlreadyListened, to)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("faultproxy: listen for %s: %w", to, err)
	}
	n.listeners[to] = ln
	n.targets[to] = target
	n.wg.Add(1)
	go n.acceptLoop(ln, to)
	return ln.Addr().String(), nil
}

// Addr returns the front door of node to ("" if none).
func (n *Network) Addr(to string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ln, ok := n.listeners[to]; ok {
		return ln.Addr().String()
	}
	return ""
}

// SetTarget changes where the front door of node to forwards new
// connections (a node restarted on another port).
func (n *Network) SetTarget(to, target string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.targets[to] = target
}

func (n *Network) acceptLoop(ln net.Listener, to string) {
	defer n.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if !n.isClosed() {
				n.log.Warn("faultproxy: accept stopped", "to", to, "err", err)
			}
			return
		}
		n.mu.Lock()
		target := n.targets[to]
		n.mu.Unlock()
		n.wg.Add(1)
		go n.handle(c, to, target)
	}
}

func (n *Network) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// proxyConn is one accepted connection and its upstream.
type proxyConn struct {
	up, down Link // up: dialer->node, down: node->dialer
	client   net.Conn
	server   net.Conn // nil while blackholed without an upstream
	once     sync.Once
	tainted  bool // guarded by Network.mu: bytes were discarded
	closed   chan struct{}
	// framed is closed once the dialer's first bytes showed whether the
	// connection speaks the Raft framing (isFramed tells which).
	framed     chan struct{}
	isFramed   bool
	decideOnce sync.Once
}

func (pc *proxyConn) close() {
	pc.once.Do(func() {
		close(pc.closed)
		pc.client.Close()
		if pc.server != nil {
			pc.server.Close()
		}
	})
}

func (n *Network) handle(client net.Conn, to, target string) {
	defer n.wg.Done()
	from, err := n.identify(client)
	if err != nil || from == "" {
		n.log.Warn("faultproxy: cannot identify dialer; traffic passes untouched", "to", to, "remote", client.RemoteAddr().String(), "err", err)
		from = Unknown
	}
	pc := &proxyConn{up: Link{from, to}, down: Link{to, from}, client: client, closed: make(chan struct{}), framed: make(chan struct{})}

	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		client.Close()
		return
	}
	upRule, downRule := n.ruleLocked(pc.up), n.ruleLocked(pc.down)
	refuse := (upRule.Cut && upRule.Mode == Refuse) || (downRule.Cut && downRule.Mode == Refuse)
	if refuse {
		n.refused[pc.up]++
		n.mu.Unlock()
		n.log.Debug("faultproxy: refused connection on cut link", "link", pc.up.String())
		client.Close()
		return
	}
	n.mu.Unlock()

	// A blackholed link still accepts (the dialer must not notice), but
	// an upstream is only needed for bytes that can flow.
	if !upRule.Cut {
		d := net.Dialer{Timeout: 2 * time.Second}
		server, err := d.Dial("tcp", target)
		if err != nil {
			n.log.Debug("faultproxy: upstream down", "link", pc.up.String(), "err", err)
			client.Close()
			return
		}
		pc.server = server
	}

	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		pc.close()
		return
	}
	if upRule.Cut {
		pc.tainted = true
	}
	n.conns[pc] = struct{}{}
	// A rule may have changed between the check above and now.
	for _, v := range n.victimsLocked() {
		if v == pc {
			n.mu.Unlock()
			pc.close()
			n.mu.Lock()
			delete(n.conns, pc)
			n.mu.Unlock()
			return
		}
	}
	n.mu.Unlock()
	n.log.Debug("faultproxy: connection", "link", pc.up.String(), "rule_up", upRule.String(), "rule_down", downRule.String())

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.pump(pc, pc.up, pc.client, pc.server, true)
	}()
	if pc.server != nil {
		n.pump(pc, pc.down, pc.server, pc.client, false)
	}
	wg.Wait()
	pc.close()
	n.mu.Lock()
	delete(n.conns, pc)
	n.mu.Unlock()
}

func (n *Network) ruleLocked(l Link) Rule {
	if l.From == Unknown || l.To == Unknown {
		return Rule{}
	}
	return n.rules[l]
}

// Rule returns the current rule of a link.
func (n *Network) Rule(l Link) Rule {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ruleLocked(l)
}

// SetRule replaces the rule of link l. Cutting a link in Refuse mode closes
// its connections at once; healing a link closes the connections that lost
// bytes in a blackhole.
func (n *Network) SetRule(l Link, r Rule) {
	n.mu.Lock()
	n.rules[l] = r
	if r == (Rule{}) {
		delete(n.rules, l)
	}
	victims := n.victimsLocked()
	n.mu.Unlock()
	n.log.Info("faultproxy: rule", "link", l.String(), "rule", r.String())
	for _, pc := range victims {
		pc.close()
	}
}

// victimsLocked lists connections that must be closed under the current
// rules: those on a Refuse-cut link, and tainted ones whose links are no
// longer cut.
func (n *Network) victimsLocked() []*proxyConn {
	var out []*proxyConn
	for pc := range n.conns {
		up, down := n.ruleLocked(pc.up), n.ruleLocked(pc.down)
		switch {
		case up.Cut && up.Mode == Refuse, down.Cut && down.Mode == Refuse:
			out = append(out, pc)
		case pc.tainted && !up.Cut && !down.Cut:
			out = append(out, pc)
		}
	}
	return out
}

// Cut cuts link from→to in mode m (one way).
func (n *Network) Cut(from, to string, m CutMode) {
	n.SetRule(Link{from, to}, Rule{Cut: true, Mode: m})
}

// Partition cuts every link between nodes of different groups, both ways,
// in mode m. Nodes not named in any group keep their links.
func (n *Network) Partition(m CutMode, groups ...[]string) {
	group := map[string]int{}
	for i, g := range groups {
		for _, id := range g {
			group[id] = i
		}
	}
	n.mu.Lock()
	for a, ga := range group {
		for b, gb := range group {
			if ga != gb {
				n.rules[Link{a, b}] = Rule{Cut: true, Mode: m}
			}
		}
	}
	victims := n.victimsLocked()
	n.mu.Unlock()
	n.log.Info("faultproxy: partition", "groups", fmt.Sprint(groups), "mode", m.String())
	for _, pc := range victims {
		pc.close()
	}
}

// Heal removes every rule.
func (n *Network) Heal() {
	n.mu.Lock()
	n.rules = map[Link]Rule{}
	victims := n.victimsLocked()
	n.mu.Unlock()
	n.log.Info("faultproxy: heal")
	for _, pc := range victims {
		pc.close()
	}
}

// Reset closes every connection on link l in either direction, once.
func (n *Network) Reset(l Link) int {
	n.mu.Lock()
	var victims []*proxyConn
	for pc := range n.conns {
		if pc.up == l || pc.down == l {
			victims = append(victims, pc)
		}
	}
	n.mu.Unlock()
	for _, pc := range victims {
		pc.close()
	}
	return len(victims)
}

// Rules returns the links that currently have a non-healthy rule, sorted.
func (n *Network) Rules() map[Link]Rule {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[Link]Rule, len(n.rules))
	for l, r := range n.rules {
		out[l] = r
	}
	return out
}

// Describe renders the current rules in one line, for logs.
func (n *Network) Describe() string {
	rules := n.Rules()
	if len(rules) == 0 {
		return "healthy"
	}
	var parts []string
	for l, r := range rules {
		parts = append(parts, l.String()+":"+r.String())
	}
	sort.Strings(parts)
	return fmt.Sprint(parts)
}

// Stats returns a copy of the byte counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := Stats{Forwarded: map[Link]int64{}, Dropped: map[Link]int64{}, Refused: map[Link]int64{}}
	for l, v := range n.fwd {
		s.Forwarded[l] = v
	}
	for l, v := range n.drop {
		s.Dropped[l] = v
	}
	for l, v := range n.refused {
		s.Refused[l] = v
	}
	s.Frames = map[Link]FrameStats{}
	for l, v := range n.frames {
		s.Frames[l] = *v
	}
	return s
}

// Close stops every listener and connection and waits for the goroutines
// (or for ctx).
func (n *Network) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	for _, ln := range n.listeners {
		ln.Close()
	}
	for pc := range n.conns {
		pc.close()
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("faultproxy: close: %w", ctx.Err())
	}
}
