package transport

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/raftsql/raftsql/consensus"
)

// Wire format, version 2 (all integers little-endian unless varint):
//
//	preface:  magic "RSQL-RFT" (8) | version u8 | from-len u8 | from | to-len u8 | to |
//	          addr-len u16 | addr
//	frame:    length u32 | crc32c(payload) u32 | payload[length]
//	payload:  kind u8 | body
//	kind 1 (messages): count uvarint | count × (len uvarint | message)
//	kind 2 (snapshot chunk): see snapshot.go
//
// The preface's addr is the Raft address the dialer advertises (the one
// its peers reach it at; empty if it does not know it). Version 1 is the
// same preface without addr-len and addr; it is still accepted (nothing is
// learnt about the sender's address), so a node of this build serves a
// dialer of the previous one.
//
// A message is: type u8 | flags u8 | to | from | term | logTerm | index |
// commit | rejectHint | context | entries | [snapshot], where strings and
// byte slices are uvarint length + bytes, integers uvarints, entries a
// uvarint count of (term | index | type u8 | data), and the snapshot (flag
// bit 1) index | term | member count × (id | addr | voter u8).
const (
	// WireVersion is the preface version this build sends.
	WireVersion = 2
	// wireVersionNoAddr is the previous preface, without the address.
	wireVersionNoAddr = 1
	frameHeader       = 8

	frameMessages = 1
	frameSnapshot = 2

	flagReject   = 1 << 0
	flagSnapshot = 1 << 1
	knownFlags   = flagReject | flagSnapshot

	maxIDLen = 255
	// MaxAddrLen bounds an address in a preface or a configuration.
	MaxAddrLen = 1024
)

var (
	prefaceMagic = [8]byte{'R', 'S', 'Q', 'L', '-', 'R', 'F', 'T'}
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
)

// DefaultMaxFrameSize bounds one frame's payload.
const DefaultMaxFrameSize = 16 << 20

// preface is what a dialer sends first on a new connection.
type preface struct {
	// Version is the wire version of the dialer (readPreface fills it
	// in; appendPreface writes WireVersion when it is 0).
	Version uint8
	// From is the dialer's node id, To the id it means to reach ("" for
	// whoever listens).
	From, To string
	// Addr is the Raft address the dialer advertises: where its peers
	// reach it. Empty when it does not know it, and always in version 1.
	Addr string
}

// appendPreface appends the wire encoding of p to b. Version 1 leaves the
// address out. The caller keeps ids within 255 bytes and the address
// within MaxAddrLen (NewTCP and checkAddr do).
func appendPreface(b []byte, p preface) []byte {
	v := p.Version
	if v == 0 {
		v = WireVersion
	}
	b = append(b, prefaceMagic[:]...)
	b = append(b, v, byte(len(p.From)))
	b = append(b, p.From...)
	b = append(b, byte(len(p.To)))
	b = append(b, p.To...)
	if v >= 2 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(p.Addr)))
		b = append(b, p.Addr...)
	}
	return b
}

// readPreface reads and validates a connection preface from r, reading
// exactly its bytes. Errors wrap ErrMalformed (bad magic, truncated, no
// sender id, an address longer than MaxAddrLen) or ErrVersion (a version
// other than 1 or 2). ReadPreface (frame_reader.go) exports it for tools.
func readPreface(r io.Reader) (preface, error) {
	var hdr [10]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return preface{}, fmt.Errorf("%w: preface: %v", ErrMalformed, err)
	}
	if [8]byte(hdr[:8]) != prefaceMagic {
		return preface{}, fmt.Errorf("%w: bad preface magic %q", ErrMalformed, hdr[:8])
	}
	v := hdr[8]
	if v != WireVersion && v != wireVersionNoAddr {
		return preface{}, fmt.Errorf("%w: peer speaks version %d, this node %d (and reads %d)", ErrVersion, v, WireVersion, wireVersionNoAddr)
	}
	from := make([]byte, int(hdr[9])+1)
	if _, err := io.ReadFull(r, from); err != nil {
		return preface{}, fmt.Errorf("%w: preface: %v", ErrMalformed, err)
	}
	to := make([]byte, from[len(from)-1])
	if _, err := io.ReadFull(r, to); err != nil {
		return preface{}, fmt.Errorf("%w: preface: %v", ErrMalformed, err)
	}
	p := preface{Version: v, From: string(from[:len(from)-1]), To: string(to)}
	if p.From == "" {
		return preface{}, fmt.Errorf("%w: preface without sender id", ErrMalformed)
	}
	if v >= 2 {
		var n [2]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return preface{}, fmt.Errorf("%w: preface: %v", ErrMalformed, err)
		}
		l := int(binary.LittleEndian.Uint16(n[:]))
		if l > MaxAddrLen {
			return preface{}, fmt.Errorf("%w: preface address of %d bytes (max %d)", ErrMalformed, l, MaxAddrLen)
		}
		addr := make([]byte, l)
		if _, err := io.ReadFull(r, addr); err != nil {
			return preface{}, fmt.Errorf("%w: preface: %v", ErrMalformed, err)
		}
		p.Addr = string(addr)
	}
	return p, nil
}

// appendFrame appends a frame holding payload.
func appendFrame(b, payload []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, castagnoli))
	return append(b, payload...)
}

// readFrame reads one frame from r into buf (grown as needed) and returns
// its verified payload.
func readFrame(r io.Reader, buf []byte, maxSize int) ([]byte, error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err // io.EOF between frames is a clean close
	}
	n := binary.LittleEndian.Uint32(hdr[0:])
	if uint64(n) > uint64(maxSize) {
		return nil, fmt.Errorf("%w: %d bytes, max %d", ErrFrameTooLarge, n, maxSize)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("%w: truncated frame: %v", ErrMalformed, err)
	}
	if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return nil, fmt.Errorf("%w: frame checksum mismatch", ErrMalformed)
	}
	return buf, nil
}

// DecodeFrame decodes one whole frame held in b (header included) and
// returns its payload. It is the pure form of what connections do, for
// fuzzing and tests.
func DecodeFrame(b []byte, maxSize int) ([]byte, error) {
	r := &sliceReader{b: b}
	p, err := readFrame(r, nil, maxSize)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: truncated frame header", ErrMalformed)
		}
		return nil, err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the frame", ErrMalformed, len(r.b))
	}
	return p, nil
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendMessage appends the wire encoding of m to b.
func AppendMessage(b []byte, m *consensus.Message) []byte {
	var flags byte
	if m.Reject {
		flags |= flagReject
	}
	if m.Snapshot != nil {
		flags |= flagSnapshot
	}
	b = append(b, byte(m.Type), flags)
	b = appendString(b, m.To)
	b = appendString(b, m.From)
	b = appendUvarint(b, m.Term)
	b = appendUvarint(b, m.LogTerm)
	b = appendUvarint(b, m.Index)
	b = appendUvarint(b, m.Commit)
	b = appendUvarint(b, m.RejectHint)
	b = appendBytes(b, m.Context)
	b = appendUvarint(b, uint64(len(m.Entries)))
	for i := range m.Entries {
		e := &m.Entries[i]
		b = appendUvarint(b, e.Term)
		b = appendUvarint(b, e.Index)
		b = append(b, byte(e.Type))
		b = appendBytes(b, e.Data)
	}
	if s := m.Snapshot; s != nil {
		b = appendUvarint(b, s.Index)
		b = appendUvarint(b, s.Term)
		b = appendUvarint(b, uint64(len(s.Conf.Members)))
		for _, mb := range s.Conf.Members {
			b = appendString(b, mb.ID)
			b = appendString(b, mb.Addr)
			if mb.Voter {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	}
	return b
}

// decoder reads the fields of the wire format; the first error sticks and
// every length is checked against the bytes left, so no input can make it
// allocate more than its own size or panic.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d past the end (%d left)", n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(max int) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.fail("string length %d invalid (%d left, max %d)", n, len(d.b), max)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a element count, bounded by the bytes left (each element
// takes at least minSize bytes).
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minSize) {
		d.fail("count %d larger than the input allows", n)
		return 0
	}
	return int(n)
}

// wireType reports whether t may travel between nodes.
func wireType(t consensus.MessageType) bool {
	if !t.Valid() {
		return false
	}
	switch t {
	case consensus.MsgHup, consensus.MsgBeat, consensus.MsgSnapStatus, consensus.MsgUnreachable:
		return false
	}
	return true
}

func (d *decoder) message() consensus.Message {
	var m consensus.Message
	m.Type = consensus.MessageType(d.byte())
	flags := d.byte()
	if d.err != nil {
		return m
	}
	if !wireType(m.Type) {
		d.fail("message type %v is not a wire message", m.Type)
		return m
	}
	if flags&^knownFlags != 0 {
		d.fail("unknown flags %#x", flags)
		return m
	}
	m.Reject = flags&flagReject != 0
	m.To = d.string(maxIDLen)
	m.From = d.string(maxIDLen)
	m.Term = d.uvarint()
	m.LogTerm = d.uvarint()
	m.Index = d.uvarint()
	m.Commit = d.uvarint()
	m.RejectHint = d.uvarint()
	m.Context = d.bytes()
	if n := d.count(4); n > 0 {
		m.Entries = make([]consensus.Entry, n)
		for i := range m.Entries {
			e := &m.Entries[i]
			e.Term = d.uvarint()
			e.Index = d.uvarint()
			e.Type = consensus.EntryType(d.byte())
			e.Data = d.bytes()
			if d.err == nil && e.Type != consensus.EntryNormal && e.Type != consensus.EntryConfChange {
				d.fail("entry %d: unknown type %d", e.Index, e.Type)
			}
		}
	}
	if flags&flagSnapshot != 0 {
		s := &consensus.SnapshotMeta{}
		s.Index = d.uvarint()
		s.Term = d.uvarint()
		if n := d.count(3); n > 0 {
			s.Conf.Members = make([]consensus.Member, n)
			for i := range s.Conf.Members {
				mb := &s.Conf.Members[i]
				mb.ID = d.string(maxIDLen)
				mb.Addr = d.string(MaxAddrLen)
				switch d.byte() {
				case 0:
				case 1:
					mb.Voter = true
				default:
					d.fail("member %q: bad voter flag", mb.ID)
				}
			}
		}
		m.Snapshot = s
	}
	if d.err == nil && m.From == "" {
		d.fail("message without sender")
	}
	return m
}

// DecodeMessage decodes exactly one message encoded by AppendMessage.
func DecodeMessage(b []byte) (consensus.Message, error) {
	d := &decoder{b: b}
	m := d.message()
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return consensus.Message{}, d.err
	}
	return m, nil
}

// appendMessagesPayload appends a kind-1 payload holding msgs.
func appendMessagesPayload(b []byte, msgs []consensus.Message) []byte {
	b = append(b, frameMessages)
	b = appendUvarint(b, uint64(len(msgs)))
	var scratch []byte
	for i := range msgs {
		scratch = AppendMessage(scratch[:0], &msgs[i])
		b = appendBytes(b, scratch)
	}
	return b
}

// DecodeMessages decodes a kind-1 frame payload into its messages.
func DecodeMessages(payload []byte) ([]consensus.Message, error) {
	d := &decoder{b: payload}
	if k := d.byte(); d.err == nil && k != frameMessages {
		d.fail("payload kind %d is not a message batch", k)
	}
	n := d.count(3)
	var out []consensus.Message
	for i := 0; i < n && d.err == nil; i++ {
		l := d.uvarint()
		if d.err != nil {
			break
		}
		if l > uint64(len(d.b)) {
			d.fail("message length %d past the end", l)
			break
		}
		m, err := DecodeMessage(d.b[:l])
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		d.b = d.b[l:]
		out = append(out, m)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return out, nil
}
