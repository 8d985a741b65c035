package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer is a stand-in node: it echoes every byte and counts them.
type echoServer struct {
	ln       net.Listener
	received atomic.Int64
}

func newEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					k, err := c.Read(buf)
					if k > 0 {
						e.received.Add(int64(k))
						if _, werr := c.Write(buf[:k]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return e
}

// portNames identifies dialers by the local port the test dialed from.
type portNames struct {
	mu sync.Mutex
	m  map[int]string
}

func (p *portNames) identify(c net.Conn) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	port := c.RemoteAddr().(*net.TCPAddr).Port
	if id, ok := p.m[port]; ok {
		return id, nil
	}
	return "", fmt.Errorf("unknown port %d", port)
}

// dial connects as node from to addr.
func (p *portNames) dial(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	// Bind the local port first so the proxy can identify us on accept.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p.mu.Lock()
	p.m[port] = from
	p.mu.Unlock()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newNet(t *testing.T) (*Network, *portNames) {
	t.Helper()
	names := &portNames{m: map[int]string{}}
	n := New(slog.New(slog.NewTextHandler(io.Discard, nil)), names.identify, 1)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return n, names
}

func roundTrip(c net.Conn, msg []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectClosed reads until EOF/reset; it fails if bytes arrive or the
// connection stays open for 5 s.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	k, err := c.Read(buf)
	if err == nil {
		t.Fatalf("read %d bytes from a connection that should be closed", k)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open: %v", err)
	}
}

func TestPassThrough(t *testing.T) {
	n, names := newNet(t)
	b := newEcho(t)
	addr, err := n.Listen("b", b.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Listen("b", b.ln.Addr().String()); !errors.Is(err, ErrAlreadyListened) {
		t.Fatalf("second Listen: %v, want ErrAlreadyListened", err)
	}
	c := names.dial(t, "a", addr)
	for i := 0; i < 10; i++ {
		if err := roundTrip(c, []byte(fmt.Sprintf("hello %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	st := n.Stats()
	if st.Forwarded[Link{"a", "b"}] == 0 || st.Forwarded[Link{"b", "a"}] == 0 {
		t.Fatalf("stats not counted per link: %+v", st)
	}
}

func TestRefuseCutClosesAndRefuses(t *testing.T) {
	n, names := newNet(t)
	b := newEcho(t)
	addr, _ := n.Listen("b", b.ln.Addr().String())
	c := names.dial(t, "a", addr)
	if err := roundTrip(c, []byte("x")); err != nil {
		t.Fatal(err)
	}
	n.Cut("a", "b", Refuse)
	expectClosed(t, c)
	c2 := names.dial(t, "a", addr)
	expectClosed(t, c2)
	// The other direction's rule does not affect c (from c to b).
	c3 := names.dial(t, "c", addr)
	if err := roundTrip(c3, []byte("other dialer")); err != nil {
		t.Fatal(err)
	}
	n.Heal()
	c4 := names.dial(t, "a", addr)
	if err := roundTrip(c4, []byte("healed")); err != nil {
		t.Fatal(err)
	}
}

func TestRefuseCutOfReturnDirection(t *testing.T) {
	n, names := newNet(t)
	b := newEcho(t)
	addr, _ := n.Listen("b", b.ln.Addr().String())
	n.Cut("b", "a", Refuse)
	// A connection a->b also carries b->a bytes, so it is refused too.
	expectClosed(t, names.dial(t, "a", addr))
}

func TestBlackholeDropsThenResetsOnHeal(t *testing.T) {
	n, names := newNet(t)
	b := newEcho(t)
	addr, _ := n.Listen("b", b.ln.Addr().String())
	c := names.dial(t, "a", addr)
	if err := roundTrip(c, []byte("before")); err != nil {
		t.Fatal(err)
	}
	before := b.received.Load()
	n.Cut("a", "b", Blackhole)
	if _, err := c.Write([]byte("into the void")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bytes to be dropped", func() bool { return n.Stats().Dropped[Link{"a", "b"}] == int64(len("into the void")) })
	if got := b.received.Load(); got != before {
		t.Fatalf("server received %d bytes through a blackhole", got-before)
	}
	// New connections are accepted (the dialer must not notice) but their
	// bytes vanish too.
	c2 := names.dial(t, "a", addr)
	if _, err := c2.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bytes of the new connection to be dropped", func() bool {
		return n.Stats().Dropped[Link{"a", "b"}] == int64(len("into the voidmore"))
	})
	n.Heal()
	// Both connections lost bytes: they are closed on heal.
	expectClosed(t, c)
	expectClosed(t, c2)
	if err := roundTrip(names.dial(t, "a", addr), []byte("after")); err != nil {
		t.Fatal(err)
	}
}

func TestOneWayBlackholeOfReturnPath(t *testing.T) {
	n, names := newNet(t)
	b := newEcho(t)
	addr, _ := n.Listen("b", b.ln.Addr().String())
	c := names.dial(t, "a", addr)
	n.Cut("b", "a", Blackhole)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	// a->b still flows: the server gets the bytes; its echo is dropped.
	waitFor(t, "server to receive", func() bool { return b.received.Load() == 4 })
	waitFor(t, "echo to be dropped", func() bool { return n.Stats().Dropped[Link{"b", "a"}] == 4 })
}

func TestDelayKeepsOrderAndDelays(t *testing.T) {
	n, names := newNet(t)
	b := newEcho(t)
	addr, _ := n.Listen("b", b.ln.Addr().String())
	c := names.dial(t, "a", addr)
	if err := roundTrip(c, []byte("warm")); err != nil {
		t.Fatal(err)
	}
	const d = 150 * time.Millisecond
	n.SetRule(Link{"a", "b"}, Rule{Delay: d, Jitter: 20 * time.Millisecond})
	start := time.Now()
	var msg []byte
	for i := 0; i < 50; i++ {
		msg = append(msg, byte(i))
	}
	if err := roundTrip(c, msg); err != nil {
		t.Fatal(err)
	}
	// A delay is a lower bound: never faster than d.
	if el := time.Since(start); el < d {
		t.Fatalf("round trip took %v under a %v delay", el, d)
	}
}

func TestUnknownDialerPassesUntouched(t *testing.T) {
	n, _ := newNet(t)
	b := newEcho(t)
	addr, _ := n.Listen("b", b.ln.Addr().String())
	n.Partition(Refuse, []string{"a"}, []string{"b"})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, []byte("anonymous")); err != nil {
		t.Fatal(err)
	}
}

func TestPartitionAndReset(t *testing.T) {
	n, names := newNet(t)
	b := newEcho(t)
	cc := newEcho(t)
	addrB, _ := n.Listen("b", b.ln.Addr().String())
	addrC, _ := n.Listen("c", cc.ln.Addr().String())
	n.Partition(Refuse, []string{"a"}, []string{"b", "c"})
	expectClosed(t, names.dial(t, "a", addrB))
	expectClosed(t, names.dial(t, "a", addrC))
	if err := roundTrip(names.dial(t, "b", addrC), []byte("majority side")); err != nil {
		t.Fatal(err)
	}
	if got := n.Describe(); got == "healthy" {
		t.Fatal("Describe after Partition says healthy")
	}
	n.Heal()
	c := names.dial(t, "a", addrB)
	if err := roundTrip(c, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if k := n.Reset(Link{"a", "b"}); k != 1 {
		t.Fatalf("Reset closed %d connections, want 1", k)
	}
	expectClosed(t, c)
}

func TestProcIdentifyFindsOwnProcess(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp on this system")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := <-accepted
	defer srv.Close()
	id := ProcIdentify(func() map[int]string { return map[int]string{os.Getpid(): "me"} })
	got, err := id(srv)
	if err != nil || got != "me" {
		t.Fatalf("ProcIdentify = %q, %v; want me", got, err)
	}
	other := ProcIdentify(func() map[int]string { return map[int]string{1: "init"} })
	if got, err := other(srv); err == nil {
		t.Fatalf("ProcIdentify named %q for a socket no listed process owns", got)
	}
}

// TestNonFramesPassUntouched: bytes that begin like a Raft preface but
// are not one the transport accepts, and bytes after a good preface that
// are not a frame, reach the other side exactly as sent (the proxy falls
// back to raw bytes and forwards what its frame reader had consumed).
func TestNonFramesPassUntouched(t *testing.T) {
	preface := []byte("RSQL-RFT\x01\x01a\x01b") // version 1, from a, to b
	cases := map[string][]byte{
		"refused preface":        []byte("RSQL-RFT\x09\x01a\x01b and then anything"),
		"no frame after preface": append(append([]byte(nil), preface...), "\xff\xff\xff\xff\xff\xff\xff\xff not a frame"...),
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			n, _ := newNet(t)
			b := newEcho(t)
			addr, _ := n.Listen("b", b.ln.Addr().String())
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := roundTrip(c, msg); err != nil {
				t.Fatal(err)
			}
		})
	}
}
