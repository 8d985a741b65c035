package faultproxy

import (
	"bufio"
	"net"
	"time"

	"github.com/raftsql/raftsql/consensus/transport"
)

// Message-level faults. A Raft connection is a preface from the dialer
// and then frames both ways (consensus/transport). The proxy reads the
// dialer's first bytes: if they begin a preface, it reads the preface
// with the transport's own reader, forwards it untouched, and from then
// on forwards whole frames in both directions, so a Rule can drop,
// duplicate or hold back a frame while the stream stays well formed.
// Anything else (a TLS handshake, a test's echo bytes, a preface the
// transport refuses, a frame that does not verify) is forwarded as raw
// bytes for the rest of the connection: the proxy never corrupts a
// stream, it only loses, repeats or reorders whole frames.

// magicLen is how many bytes decide whether a connection may speak the
// framing: every preface starts with an 8-byte magic and is longer.
const magicLen = 8

// reorderWindow is how long a frame held back waits for a successor to
// overtake it before it is sent anyway.
const reorderWindow = 50 * time.Millisecond

// unit is what the reader hands on: one whole frame, a preface, or raw
// bytes.
type unit struct {
	b     []byte
	frame bool // a whole frame: message faults apply
	snap  bool // a frame of a snapshot stream
}

// chunk is a unit scheduled for delivery.
type chunk struct {
	b    []byte
	at   time.Time
	hold bool // send after the next chunk (reorder)
}

// decide records whether the connection is framed, once.
func (pc *proxyConn) decide(framed bool) {
	pc.decideOnce.Do(func() {
		pc.isFramed = framed
		close(pc.framed)
	})
}

// recorder remembers what was read through it since the last reset, so
// that bytes a frame reader consumed can be forwarded when it fails.
type recorder struct {
	r   *bufio.Reader
	buf []byte
}

func (rc *recorder) Read(p []byte) (int, error) {
	k, err := rc.r.Read(p)
	rc.buf = append(rc.buf, p[:k]...)
	return k, err
}

// take returns a copy of the recorded bytes and resets the record.
func (rc *recorder) take() []byte {
	out := append([]byte(nil), rc.buf...)
	rc.buf = rc.buf[:0]
	return out
}

// pump copies src to dst under the rules of link l. This goroutine reads
// and applies the rule to each unit; a writer goroutine delivers the
// units when their delay has passed, in order (except a unit held back
// for reordering). dialer says src is the side that opened the
// connection.
func (n *Network) pump(pc *proxyConn, l Link, src, dst net.Conn, dialer bool) {
	defer pc.close()
	if dialer {
		defer pc.decide(false)
	}
	q := make(chan chunk, 256)
	done := make(chan struct{})
	go n.deliver(pc, q, done, dst)
	defer func() {
		close(q)
		<-done
	}()
	emit := func(u unit) bool { return n.apply(pc, l, u, q, done) }

	br := bufio.NewReaderSize(src, 64<<10)
	rec := &recorder{r: br}
	framed := false
	if dialer {
		var ok bool
		framed, ok = n.readPreface(pc, br, rec, emit)
		if !ok {
			return
		}
	} else {
		select {
		case <-pc.framed:
			framed = pc.isFramed
		case <-pc.closed:
			return
		}
	}
	if framed {
		for {
			f, err := transport.ReadRawFrame(rec, transport.DefaultMaxFrameSize)
			if err != nil {
				// The end of the stream, or bytes that are not a
				// frame: forward what was read and go on raw.
				if b := rec.take(); len(b) > 0 {
					if !emit(unit{b: b}) {
						return
					}
				}
				n.log.Debug("faultproxy: frames end", "link", l.String(), "err", err)
				break
			}
			rec.buf = rec.buf[:0]
			if !emit(unit{b: f, frame: true, snap: transport.IsSnapshotFrame(f)}) {
				return
			}
		}
	}
	buf := make([]byte, 32<<10)
	for {
		k, err := br.Read(buf)
		if k > 0 {
			if !emit(unit{b: append([]byte(nil), buf[:k]...)}) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// readPreface looks at the dialer's first bytes; if they begin a preface
// it reads and forwards the preface and reports framed. ok is false when
// the pump must stop.
func (n *Network) readPreface(pc *proxyConn, br *bufio.Reader, rec *recorder, emit func(unit) bool) (framed, ok bool) {
	for k := 1; ; {
		b, err := br.Peek(k)
		if err != nil || !transport.MayBePreface(b) {
			pc.decide(false)
			return false, true // raw (the raw loop sees the error, if any)
		}
		if k >= magicLen {
			break
		}
		k = min(magicLen, max(k+1, br.Buffered()))
	}
	_, _, _, err := transport.ReadPreface(rec)
	raw := rec.take()
	pc.decide(err == nil)
	if err != nil {
		n.log.Debug("faultproxy: not a preface the transport accepts; forwarding raw bytes", "link", pc.up.String(), "err", err)
	}
	return err == nil, emit(unit{b: raw})
}

// apply runs link l's rule on one unit and queues what is to be sent. It
// returns false when the pump must stop (a refused link, a closed
// connection).
func (n *Network) apply(pc *proxyConn, l Link, u unit, q chan<- chunk, done <-chan struct{}) bool {
	n.mu.Lock()
	r := n.ruleLocked(l)
	if r.Cut {
		if r.Mode == Refuse {
			n.mu.Unlock()
			return false
		}
		n.drop[l] += int64(len(u.b))
		pc.tainted = true
		n.mu.Unlock()
		return true
	}
	copies, hold := 1, false
	if u.frame && l.From != Unknown && l.To != Unknown {
		fs := n.frames[l]
		if fs == nil {
			fs = &FrameStats{}
			n.frames[l] = fs
		}
		if r.Drop > 0 && n.rng.Float64() < r.Drop {
			fs.Dropped++
			if u.snap {
				fs.SnapshotDropped++
			}
			n.drop[l] += int64(len(u.b))
			n.mu.Unlock()
			return true
		}
		fs.Forwarded++
		if r.Duplicate > 0 && n.rng.Float64() < r.Duplicate {
			copies = 2
			fs.Duplicated++
			if u.snap {
				fs.SnapshotDuplicated++
			}
		}
		if r.Reorder > 0 && n.rng.Float64() < r.Reorder {
			hold = true
			fs.Reordered++
		}
	}
	n.fwd[l] += int64(copies * len(u.b))
	delay := r.Delay
	if r.Jitter > 0 {
		delay += time.Duration(n.rng.Int64N(int64(r.Jitter) + 1))
	}
	n.mu.Unlock()
	at := time.Now().Add(delay)
	for i := 0; i < copies; i++ {
		select {
		case q <- chunk{b: u.b, at: at, hold: hold && i == 0}:
		case <-done:
			return false
		}
	}
	return true
}

// deliver writes the queued chunks to dst (nil: a blackholed connection
// without upstream, whose bytes go nowhere) when their time has come. A
// chunk marked hold waits for the next one to overtake it, or for
// reorderWindow.
func (n *Network) deliver(pc *proxyConn, q <-chan chunk, done chan<- struct{}, dst net.Conn) {
	defer close(done)
	write := func(b []byte) bool {
		if dst == nil {
			return true
		}
		if _, err := dst.Write(b); err != nil {
			pc.close()
			for range q { // drain so the reader never blocks
			}
			return false
		}
		return true
	}
	var held []byte
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var c chunk
		var ok bool
		if held != nil {
			select {
			case c, ok = <-q:
			case <-timer.C:
				if !write(held) {
					return
				}
				held = nil
				continue
			}
		} else {
			c, ok = <-q
		}
		if !ok {
			if held != nil {
				write(held)
			}
			return
		}
		if d := time.Until(c.at); d > 0 {
			time.Sleep(d)
		}
		if c.hold && held == nil {
			held = c.b
			timer.Reset(reorderWindow)
			continue
		}
		if !write(c.b) {
			return
		}
		if held != nil {
			timer.Stop()
			if !write(held) {
				return
			}
			held = nil
		}
	}
}
