package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

func TestReadPrefaceAndRawFrames(t *testing.T) {
	var wire []byte
	wire = appendPreface(wire, preface{From: "n1", To: "n2"})
	pl := len(wire)
	batch := appendMessagesPayload(nil, []consensus.Message{{Type: consensus.MsgHeartbeat, From: "n1", To: "n2", Term: 3}})
	wire = appendFrame(wire, batch)
	f1 := len(wire)
	wire = appendFrame(wire, []byte{frameSnapshot, snapData, 1, 2, 3})

	r := bytes.NewReader(wire)
	raw, from, to, err := ReadPreface(r)
	if err != nil || from != "n1" || to != "n2" || !bytes.Equal(raw, wire[:pl]) {
		t.Fatalf("ReadPreface = %q, %q, %q, %v", raw, from, to, err)
	}
	f, err := ReadRawFrame(r, DefaultMaxFrameSize)
	if err != nil || !bytes.Equal(f, wire[pl:f1]) || IsSnapshotFrame(f) {
		t.Fatalf("first frame = %x, %v", f, err)
	}
	f, err = ReadRawFrame(r, DefaultMaxFrameSize)
	if err != nil || !bytes.Equal(f, wire[f1:]) || !IsSnapshotFrame(f) {
		t.Fatalf("second frame = %x, %v", f, err)
	}
	if _, err := ReadRawFrame(r, DefaultMaxFrameSize); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}

	bad := append([]byte(nil), wire[pl:f1]...)
	bad[len(bad)-1] ^= 1
	if _, err := ReadRawFrame(bytes.NewReader(bad), DefaultMaxFrameSize); !errors.Is(err, ErrMalformed) {
		t.Fatalf("corrupt frame: %v, want ErrMalformed", err)
	}
	if !MayBePreface(nil) || !MayBePreface(wire[:3]) || !MayBePreface(wire) || MayBePreface([]byte("GET")) {
		t.Fatal("MayBePreface is wrong")
	}
	if raw, _, _, err := ReadPreface(bytes.NewReader([]byte("GET / HTTP/1.1\r\n"))); err == nil || len(raw) == 0 {
		t.Fatalf("garbage preface: raw %q, err %v", raw, err)
	}
}

// FuzzReadRawFrame: any input either fails or yields a frame that is
// exactly its prefix.
func FuzzReadRawFrame(f *testing.F) {
	f.Add(appendFrame(nil, []byte{frameMessages, 0}))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ReadRawFrame(bytes.NewReader(b), 1<<16)
		if err == nil && !bytes.Equal(fr, b[:len(fr)]) {
			t.Fatalf("frame %x is not a prefix of the input %x", fr, b)
		}
		raw, _, _, err := ReadPreface(bytes.NewReader(b))
		if !bytes.Equal(raw, b[:len(raw)]) {
			t.Fatalf("preface bytes %x are not a prefix of the input (err %v)", raw, err)
		}
	})
}
