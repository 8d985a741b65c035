package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

func sampleMessages() []consensus.Message {
	return []consensus.Message{
		{Type: consensus.MsgHeartbeat, From: "n1", To: "n2", Term: 1},
		{Type: consensus.MsgApp, From: "n1", To: "n2", Term: 5, LogTerm: 4, Index: 100, Commit: 99,
			Entries: []consensus.Entry{{Term: 5, Index: 101, Data: []byte("insert")}, {Term: 5, Index: 102, Type: consensus.EntryConfChange, Data: []byte{0, 1, 2}}, {Term: 5, Index: 103}}},
		{Type: consensus.MsgAppResp, From: "n2", To: "n1", Term: 5, Index: 90, Reject: true, RejectHint: 80, LogTerm: 3},
		{Type: consensus.MsgVote, From: "n3", To: "n1", Term: 1 << 62, LogTerm: 1<<64 - 1, Index: 1<<64 - 1},
		{Type: consensus.MsgHeartbeatResp, From: "n2", To: "n1", Term: 5, Context: []byte("read-ctx")},
		{Type: consensus.MsgSnap, From: "n1", To: "n4", Term: 9, Snapshot: &consensus.SnapshotMeta{Index: 1000, Term: 8,
			Conf: consensus.ConfState{Members: []consensus.Member{{ID: "n1", Addr: "10.0.0.1:7000", Voter: true}, {ID: "n4", Addr: "10.0.0.4:7000"}}}}},
		{Type: consensus.MsgSnap, From: "n1", To: "n4", Term: 9, Snapshot: &consensus.SnapshotMeta{Index: 1}},
		{Type: consensus.MsgTimeoutNow, From: "n1", To: "n2", Term: 9},
		{Type: consensus.MsgProp, From: "n2", To: "n1", Entries: []consensus.Entry{{Data: bytes.Repeat([]byte("x"), 100000)}}},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b := AppendMessage(nil, &m)
		got, err := DecodeMessage(b)
		if err != nil {
			t.Fatalf("%v: %v", m.Type, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip of %v:\n got %+v\nwant %+v", m.Type, got, m)
		}
	}
	payload := appendMessagesPayload(nil, sampleMessages())
	frame := appendFrame(nil, payload)
	p, err := DecodeFrame(frame, DefaultMaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := DecodeMessages(p)
	if err != nil || !reflect.DeepEqual(msgs, sampleMessages()) {
		t.Fatalf("batch round trip: %v", err)
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	good := AppendMessage(nil, &sampleMessages()[1])
	goodFrame := appendFrame(nil, appendMessagesPayload(nil, sampleMessages()[:2]))
	local := AppendMessage(nil, &consensus.Message{Type: consensus.MsgHup, From: "a"})
	unknown := append([]byte(nil), good...)
	unknown[0] = 200
	badFlags := append([]byte(nil), good...)
	badFlags[1] = 0x80
	noFrom := AppendMessage(nil, &consensus.Message{Type: consensus.MsgApp, To: "b"})
	badEntryType := AppendMessage(nil, &consensus.Message{Type: consensus.MsgApp, From: "a", Entries: []consensus.Entry{{Type: 9}}})
	hugeCount := []byte{byte(consensus.MsgApp), 0, 0, 1, 'a', 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}

	msgCases := map[string][]byte{
		"empty":          nil,
		"truncated":      good[:len(good)-3],
		"trailing":       append(append([]byte(nil), good...), 0),
		"unknown type":   unknown,
		"local type":     local,
		"unknown flags":  badFlags,
		"no sender":      noFrom,
		"bad entry type": badEntryType,
		"huge count":     hugeCount,
	}
	for name, b := range msgCases {
		if _, err := DecodeMessage(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeMessage(%s) = %v, want ErrMalformed", name, err)
		}
	}

	corrupt := append([]byte(nil), goodFrame...)
	corrupt[len(corrupt)-1] ^= 1
	frameCases := map[string]struct {
		b    []byte
		want error
	}{
		"checksum":         {corrupt, ErrMalformed},
		"truncated header": {goodFrame[:5], ErrMalformed},
		"truncated body":   {goodFrame[:len(goodFrame)-1], ErrMalformed},
		"trailing":         {append(append([]byte(nil), goodFrame...), 1), ErrMalformed},
		"empty":            {appendFrame(nil, nil), ErrMalformed},
		"oversized":        {goodFrame, ErrFrameTooLarge},
	}
	for name, c := range frameCases {
		max := DefaultMaxFrameSize
		if name == "oversized" {
			max = 10
		}
		if _, err := DecodeFrame(c.b, max); !errors.Is(err, c.want) {
			t.Errorf("DecodeFrame(%s) = %v, want %v", name, err, c.want)
		}
	}
	if _, err := DecodeMessages([]byte{frameSnapshot, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeMessages of a snapshot payload: %v", err)
	}
}

func TestPreface(t *testing.T) {
	for _, p := range []preface{
		{Version: WireVersion, From: "n1", To: "n2", Addr: "127.0.0.1:7001"},
		{Version: WireVersion, From: "n1", To: "n2"},
		{Version: WireVersion, From: "n1", Addr: "[::1]:7001"},
		{Version: wireVersionNoAddr, From: "n1", To: "n2"}, // the previous version: accepted, no address
	} {
		b := appendPreface(nil, p)
		r := bytes.NewReader(append(append([]byte(nil), b...), "frames"...))
		got, err := readPreface(r)
		if err != nil || got != p {
			t.Fatalf("readPreface(%+v) = %+v, %v", p, got, err)
		}
		if r.Len() != len("frames") {
			t.Fatalf("readPreface(%+v) consumed %d bytes past the preface", p, len("frames")-r.Len())
		}
	}
	b := appendPreface(nil, preface{From: "n1", To: "n2", Addr: "127.0.0.1:7001"})
	if b[8] != WireVersion {
		t.Fatalf("appendPreface wrote version %d, want %d", b[8], WireVersion)
	}
	if v1 := appendPreface(nil, preface{Version: 1, From: "n1", To: "n2", Addr: "x:1"}); len(v1) != 8+1+1+2+1+2 {
		t.Fatalf("a version-1 preface carries the address: % x", v1)
	}
	for _, v := range []byte{0, 3, 99} {
		bad := append([]byte(nil), b...)
		bad[8] = v
		if _, err := readPreface(bytes.NewReader(bad)); !errors.Is(err, ErrVersion) {
			t.Fatalf("version %d: %v, want ErrVersion", v, err)
		}
	}
	long := appendPreface(nil, preface{From: "n1"})
	long = binary.LittleEndian.AppendUint16(long[:len(long)-2], MaxAddrLen+1)
	long = append(long, bytes.Repeat([]byte("a"), MaxAddrLen+1)...)
	for name, in := range map[string][]byte{
		"magic":             append([]byte("HTTP/1.1"), b[8:]...),
		"truncated address": b[:len(b)-1],
		"truncated length":  b[:len(b)-len("127.0.0.1:7001")-1],
		"truncated ids":     b[:12],
		"no sender":         appendPreface(nil, preface{To: "x"}),
		"address too long":  long,
	} {
		if _, err := readPreface(bytes.NewReader(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("preface %s: %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(AppendMessage(nil, &m))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		again, err := DecodeMessage(AppendMessage(nil, &m))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("re-encoding a decoded message: %v", err)
		}
	})
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(appendFrame(nil, appendMessagesPayload(nil, sampleMessages())))
	f.Add(appendFrame(nil, []byte{frameSnapshot, snapEnd, 1, 2}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeFrame(b, 1<<16)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("error %v is not a decoding error", err)
			}
			return
		}
		if _, err := DecodeMessages(p); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("DecodeMessages error %v does not wrap ErrMalformed", err)
		}
	})
}

func FuzzReadPreface(f *testing.F) {
	f.Add(appendPreface(nil, preface{From: "n1", To: "n2", Addr: "127.0.0.1:7000"}))
	f.Add(appendPreface(nil, preface{Version: 1, From: "n1", To: "n2"}))
	f.Add([]byte("RSQL-RFT\x02\x00"))
	f.Add([]byte("RSQL-RFT\x02\x01a\x00\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		p, err := readPreface(r)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrVersion", err)
			}
			return
		}
		if p.From == "" || len(p.Addr) > MaxAddrLen || (p.Version == 1 && p.Addr != "") {
			t.Fatalf("accepted an invalid preface %+v", p)
		}
		// It read exactly the preface, which re-encodes to those bytes.
		if n := len(b) - r.Len(); !bytes.Equal(appendPreface(nil, p), b[:n]) {
			t.Fatalf("preface %+v does not re-encode to the %d bytes read", p, n)
		}
	})
}
