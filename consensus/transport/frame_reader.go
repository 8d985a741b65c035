package transport

import (
	"bytes"
	"io"
)

// This file exports the connection framing for tools that sit on a Raft
// link without being a node, such as the test fault proxy
// (test/faultproxy), which forwards, drops or duplicates whole frames.
// Both readers return the bytes exactly as they were on the wire, so a
// caller can forward them unchanged.

// ReadPreface reads the connection preface a dialer sends first, checking
// it as a listener does (whatever version the transport reads), and
// returns its bytes as read with the sender's and the receiver's ids. On
// error, raw holds the bytes consumed so far.
func ReadPreface(r io.Reader) (raw []byte, from, to string, err error) {
	var buf bytes.Buffer
	p, err := readPreface(io.TeeReader(r, &buf))
	if err != nil {
		return buf.Bytes(), "", "", err
	}
	return buf.Bytes(), p.From, p.To, nil
}

// ReadRawFrame reads one frame (length, checksum, payload) of at most
// maxSize payload bytes from r, verifies its checksum, and returns the
// whole frame, header included. It returns io.EOF when r ends cleanly
// between frames.
func ReadRawFrame(r io.Reader, maxSize int) ([]byte, error) {
	payload, err := readFrame(r, nil, maxSize)
	if err != nil {
		return nil, err
	}
	return appendFrame(make([]byte, 0, frameHeader+len(payload)), payload), nil
}

// IsSnapshotFrame reports whether a whole frame read by ReadRawFrame
// belongs to a snapshot transfer (rather than a batch of messages).
func IsSnapshotFrame(frame []byte) bool {
	return len(frame) > frameHeader && frame[frameHeader] == frameSnapshot
}

// MayBePreface reports whether b, the first bytes received on a
// connection, could be the beginning of a preface (so a reader that
// needs whole prefaces knows when to stop waiting for one).
func MayBePreface(b []byte) bool {
	n := min(len(b), len(prefaceMagic))
	return bytes.Equal(b[:n], prefaceMagic[:n])
}
