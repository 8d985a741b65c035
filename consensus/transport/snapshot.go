package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

// SnapshotConfig makes a transport carry snapshot data with MsgSnap. When
// set, a MsgSnap is not queued with the other messages: a separate
// connection streams the message, then the data read from Source in
// chunks, then a trailer with the total size and a CRC-32C. The receiver
// writes the data into a SnapshotWriter from Sink, verifies the trailer,
// commits it, and only then delivers the MsgSnap to its Handler and
// acknowledges; the sender then calls Handler.ReportSnapshot(to, ok).
type SnapshotConfig struct {
	Source SnapshotSource
	Sink   SnapshotSink
	// ChunkSize is the data bytes per frame (default 1 MiB, capped by
	// the max frame size).
	ChunkSize int
	// AckTimeout bounds the wait for the receiver's verdict after the
	// last chunk (default 1 minute): its Commit may fsync a large file.
	AckTimeout time.Duration
	// IdleTimeout bounds, on the receiving side, the wait for the next
	// frame of a transfer in progress (default 15 s). A sender that went
	// silent mid-stream (a dead or half-open connection, its last frame
	// lost) aborts the transfer and closes the connection, so the sender
	// learns at once instead of after AckTimeout.
	IdleTimeout time.Duration
}

// SnapshotSource opens the data of a snapshot for sending.
type SnapshotSource interface {
	// Open returns the data of the snapshot described by meta, to be sent
	// to node to. The transport closes it.
	Open(ctx context.Context, to string, meta consensus.SnapshotMeta) (io.ReadCloser, error)
}

// SnapshotSink stores the data of a snapshot being received.
type SnapshotSink interface {
	// Create starts receiving the snapshot described by meta from node
	// from.
	Create(ctx context.Context, from string, meta consensus.SnapshotMeta) (SnapshotWriter, error)
}

// SnapshotWriter receives one snapshot's data. Exactly one of Commit or
// Abort is called.
type SnapshotWriter interface {
	io.Writer
	// Commit is called once all data arrived and verified: make it
	// durable and available to the state machine.
	Commit() error
	// Abort discards a partial transfer.
	Abort() error
}

// Snapshot frame phases (payload: kind 2 | phase u8 | body).
const (
	snapBegin = 1 // body: one encoded MsgSnap
	snapData  = 2 // body: data bytes
	snapEnd   = 3 // body: total size u64 | crc32c u32
	snapAck   = 4 // body: ok u8 (receiver to sender)
)

func (c *SnapshotConfig) chunkSize(maxFrame int) int {
	n := c.ChunkSize
	if n <= 0 {
		n = 1 << 20
	}
	return min(n, maxFrame-16)
}

func (c *SnapshotConfig) ackTimeout() time.Duration {
	if c.AckTimeout <= 0 {
		return time.Minute
	}
	return c.AckTimeout
}

func (c *SnapshotConfig) idleTimeout() time.Duration {
	if c == nil || c.IdleTimeout <= 0 {
		return 15 * time.Second
	}
	return c.IdleTimeout
}

// snapSender runs at most one snapshot transfer to a peer at a time.
type snapSender struct {
	p      *peer
	mu     sync.Mutex
	busy   bool
	closed bool
	wg     sync.WaitGroup
}

func newSnapSender(p *peer) *snapSender { return &snapSender{p: p} }

// wait stops new transfers and waits for the one in flight.
func (s *snapSender) wait() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
}

// send starts transferring m's snapshot unless one is in flight (the core
// sends one at a time and waits for ReportSnapshot).
func (s *snapSender) send(m consensus.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.busy || m.Snapshot == nil {
		s.p.log.Warn("dropping MsgSnap", "busy", s.busy, "has_meta", m.Snapshot != nil)
		return
	}
	s.busy = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.transfer(m)
		s.mu.Lock()
		s.busy = false
		s.mu.Unlock()
		t := s.p.t
		if err != nil {
			t.stats.snapFail.Add(1)
			s.p.log.Warn("snapshot transfer failed", "index", m.Snapshot.Index, "err", err)
		} else {
			t.stats.snapSent.Add(1)
			s.p.log.Info("snapshot sent", "index", m.Snapshot.Index)
		}
		t.reportSnapshot(s.p.id, err == nil)
	}()
}

func (s *snapSender) transfer(m consensus.Message) error {
	p := s.p
	cfg := p.t.cfg.Snapshots
	data, err := cfg.Source.Open(p.ctx, p.id, *m.Snapshot)
	if err != nil {
		return fmt.Errorf("open snapshot: %w", err)
	}
	defer data.Close()
	conn, err := p.dial()
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(p.ctx, func() { conn.Close() })
	defer stop()
	bw := bufio.NewWriterSize(conn, 64<<10)
	write := func(payload []byte) error {
		conn.SetWriteDeadline(time.Now().Add(p.t.cfg.WriteTimeout))
		_, err := bw.Write(appendFrame(nil, payload))
		return err
	}
	if err := write(AppendMessage([]byte{frameSnapshot, snapBegin}, &m)); err != nil {
		return err
	}
	chunk := make([]byte, cfg.chunkSize(p.t.cfg.MaxFrameSize)+2)
	chunk[0], chunk[1] = frameSnapshot, snapData
	var total uint64
	var sum uint32
	for {
		n, rerr := data.Read(chunk[2:])
		if n > 0 {
			total += uint64(n)
			sum = crc32.Update(sum, castagnoli, chunk[2:2+n])
			if err := write(chunk[:2+n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read snapshot: %w", rerr)
		}
	}
	end := []byte{frameSnapshot, snapEnd}
	end = binary.LittleEndian.AppendUint64(end, total)
	end = binary.LittleEndian.AppendUint32(end, sum)
	if err := write(end); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(cfg.ackTimeout()))
	ack, err := readFrame(conn, nil, 16)
	if err != nil {
		return fmt.Errorf("waiting for the receiver's verdict: %w", err)
	}
	if len(ack) != 3 || ack[0] != frameSnapshot || ack[1] != snapAck {
		return fmt.Errorf("%w: bad snapshot ack", ErrMalformed)
	}
	if ack[2] != 1 {
		return errors.New("receiver rejected the snapshot")
	}
	return nil
}

// snapRecv is the receiving state of one inbound connection.
type snapRecv struct {
	t     *TCP
	from  string
	log   *slog.Logger
	conn  net.Conn
	msg   *consensus.Message
	w     SnapshotWriter
	total uint64
	sum   uint32
}

func (r *snapRecv) abort(why string) {
	if r.w != nil {
		r.log.Info("snapshot transfer aborted", "why", why, "received", r.total)
		if err := r.w.Abort(); err != nil {
			r.log.Warn("aborting snapshot", "err", err)
		}
	}
	r.w, r.msg, r.total, r.sum = nil, nil, 0, 0
}

// handle processes one snapshot frame. Any error closes the connection
// (and aborts a transfer in progress).
func (r *snapRecv) handle(payload []byte) error {
	cfg := r.t.cfg.Snapshots
	if cfg == nil || cfg.Sink == nil {
		return fmt.Errorf("%w: snapshot frame but this node has no snapshot sink", ErrMalformed)
	}
	if len(payload) < 2 {
		return fmt.Errorf("%w: short snapshot frame", ErrMalformed)
	}
	body := payload[2:]
	switch payload[1] {
	case snapBegin:
		if r.msg != nil {
			return fmt.Errorf("%w: snapshot begin inside a transfer", ErrMalformed)
		}
		m, err := DecodeMessage(body)
		if err != nil {
			return err
		}
		if err := r.t.checkIncoming(r.from, &m); err != nil {
			return err
		}
		if m.Type != consensus.MsgSnap || m.Snapshot == nil {
			return fmt.Errorf("%w: snapshot transfer of a %v", ErrMalformed, m.Type)
		}
		w, err := cfg.Sink.Create(r.t.ctx, r.from, *m.Snapshot)
		if err != nil {
			r.ack(false)
			return fmt.Errorf("snapshot sink: %w", err)
		}
		r.msg, r.w = &m, w
		r.log.Info("receiving snapshot", "index", m.Snapshot.Index, "term", m.Snapshot.Term)
		return nil
	case snapData:
		if r.msg == nil {
			return fmt.Errorf("%w: snapshot data outside a transfer", ErrMalformed)
		}
		r.total += uint64(len(body))
		r.sum = crc32.Update(r.sum, castagnoli, body)
		if _, err := r.w.Write(body); err != nil {
			r.ack(false)
			return fmt.Errorf("snapshot sink write: %w", err)
		}
		return nil
	case snapEnd:
		if r.msg == nil {
			return fmt.Errorf("%w: snapshot end outside a transfer", ErrMalformed)
		}
		if len(body) != 12 {
			return fmt.Errorf("%w: snapshot trailer of %d bytes", ErrMalformed, len(body))
		}
		if total, sum := binary.LittleEndian.Uint64(body), binary.LittleEndian.Uint32(body[8:]); total != r.total || sum != r.sum {
			r.ack(false)
			return fmt.Errorf("%w: snapshot data does not match its trailer (size %d/%d)", ErrMalformed, r.total, total)
		}
		w, m := r.w, *r.msg
		r.w, r.msg = nil, nil
		if err := w.Commit(); err != nil {
			r.ack(false)
			return fmt.Errorf("snapshot commit: %w", err)
		}
		r.log.Info("snapshot received", "index", m.Snapshot.Index, "bytes", r.total)
		r.total, r.sum = 0, 0
		r.t.stats.snapRecv.Add(1)
		r.t.stats.recv.Add(1)
		r.t.handler().Receive(m)
		r.ack(true)
		return nil
	}
	return fmt.Errorf("%w: unknown snapshot phase %d", ErrMalformed, payload[1])
}

func (r *snapRecv) ack(ok bool) {
	if r.conn == nil {
		return
	}
	v := byte(0)
	if ok {
		v = 1
	}
	r.conn.SetWriteDeadline(time.Now().Add(r.t.cfg.WriteTimeout))
	r.conn.Write(appendFrame(nil, []byte{frameSnapshot, snapAck, v}))
}
