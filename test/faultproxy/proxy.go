package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
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
}

func (r Rule) String() string {
	switch {
	case r.Cut:
		return "cut(" + r.Mode.String() + ")"
	case r.Delay > 0 || r.Jitter > 0:
		return fmt.Sprintf("delay(%v±%v)", r.Delay, r.Jitter)
	}
	return "healthy"
}

// Stats counts bytes per directed link.
type Stats struct {
	Forwarded map[Link]int64
	Dropped   map[Link]int64
	Refused   map[Link]int64 // connections closed at accept because of a cut
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
}

func (pc *proxyConn) close() {
	pc.once.Do(func() {
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
	pc := &proxyConn{up: Link{from, to}, down: Link{to, from}, client: client}

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
		n.pump(pc, pc.up, pc.client, pc.server)
	}()
	if pc.server != nil {
		n.pump(pc, pc.down, pc.server, pc.client)
	}
	wg.Wait()
	pc.close()
	n.mu.Lock()
	delete(n.conns, pc)
	n.mu.Unlock()
}

type chunk struct {
	b  []byte
	at time.Time
}

// pump copies src to dst under the rules of link l. A reader goroutine
// (this one) timestamps chunks; a writer goroutine delivers them when their
// delay has passed, so ordering is kept.
func (n *Network) pump(pc *proxyConn, l Link, src, dst net.Conn) {
	defer pc.close()
	q := make(chan chunk, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			if d := time.Until(c.at); d > 0 {
				time.Sleep(d)
			}
			if dst == nil {
				continue
			}
			if _, err := dst.Write(c.b); err != nil {
				pc.close()
				for range q { // drain so the reader never blocks
				}
				return
			}
		}
	}()
	defer func() {
		close(q)
		<-done
	}()
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.mu.Lock()
			r := n.ruleLocked(l)
			var at time.Time
			if r.Cut {
				if r.Mode == Refuse {
					n.mu.Unlock()
					return
				}
				n.drop[l] += int64(k)
				pc.tainted = true
				n.mu.Unlock()
				continue
			}
			n.fwd[l] += int64(k)
			delay := r.Delay
			if r.Jitter > 0 {
				delay += time.Duration(n.rng.Int64N(int64(r.Jitter) + 1))
			}
			n.mu.Unlock()
			at = time.Now().Add(delay)
			b := make([]byte, k)
			copy(b, buf[:k])
			select {
			case q <- chunk{b, at}:
			case <-done:
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				n.log.Debug("faultproxy: read", "link", l.String(), "err", err)
			}
			return
		}
	}
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
