package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/raftsql/raftsql/consensus"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// controlVersion is the version of the control record layout.
const controlVersion = 1

// control is the store's own state, kept at key 0 of the logs bucket (Raft
// indexes start at 1, so key 0 is never an entry). It is rewritten in the
// same bolt transaction as the entries a Save appends, which is what makes
// a Save atomic: entries outside (Snap.Index, Last] are garbage left by an
// interrupted cleanup and are removed on Open.
type control struct {
	Term   uint64
	Vote   string
	Commit uint64
	// Last is the index of the last valid entry (Snap.Index when the log
	// is empty after the snapshot).
	Last uint64
	Snap consensus.SnapshotMeta
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (c *control) encode() []byte {
	b := make([]byte, 0, 64)
	b = append(b, controlVersion)
	b = binary.AppendUvarint(b, c.Term)
	b = appendString(b, c.Vote)
	b = binary.AppendUvarint(b, c.Commit)
	b = binary.AppendUvarint(b, c.Last)
	b = binary.AppendUvarint(b, c.Snap.Index)
	b = binary.AppendUvarint(b, c.Snap.Term)
	b = binary.AppendUvarint(b, uint64(len(c.Snap.Conf.Members)))
	for _, m := range c.Snap.Conf.Members {
		b = appendString(b, m.ID)
		b = appendString(b, m.Addr)
		if m.Voter {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// reader decodes the varint-based layouts; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.err = fmt.Errorf("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("string length %d past end", n)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func decodeControl(b []byte) (control, error) {
	var c control
	if len(b) < 5 {
		return c, fmt.Errorf("%w: control record of %d bytes", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return c, fmt.Errorf("%w: control record checksum mismatch", ErrCorrupt)
	}
	if body[0] != controlVersion {
		return c, fmt.Errorf("%w: control record version %d", ErrVersion, body[0])
	}
	r := &reader{b: body[1:]}
	c.Term = r.uvarint()
	c.Vote = r.string()
	c.Commit = r.uvarint()
	c.Last = r.uvarint()
	c.Snap.Index = r.uvarint()
	c.Snap.Term = r.uvarint()
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = fmt.Errorf("member count %d past end", n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		m := consensus.Member{ID: r.string(), Addr: r.string()}
		m.Voter = r.byte() == 1
		c.Snap.Conf.Members = append(c.Snap.Conf.Members, m)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return control{}, fmt.Errorf("%w: control record: %v", ErrCorrupt, r.err)
	}
	if c.Last < c.Snap.Index {
		return control{}, fmt.Errorf("%w: control record: last index %d below snapshot index %d", ErrCorrupt, c.Last, c.Snap.Index)
	}
	return c, nil
}

// entryExtVersion tags the Extensions field of every stored entry.
const entryExtVersion = 1

// entryExt builds the Extensions bytes stored with an entry: a version, the
// entry type and a CRC-32C over index, term, type and data, so that a
// damaged entry is reported instead of handed to the state machine.
func entryExt(e *consensus.Entry) []byte {
	b := make([]byte, 6)
	b[0] = entryExtVersion
	b[1] = byte(e.Type)
	binary.LittleEndian.PutUint32(b[2:], entryCRC(e))
	return b
}

func entryCRC(e *consensus.Entry) uint32 {
	var hdr [17]byte
	binary.LittleEndian.PutUint64(hdr[0:], e.Index)
	binary.LittleEndian.PutUint64(hdr[8:], e.Term)
	hdr[16] = byte(e.Type)
	c := crc32.Update(0, castagnoli, hdr[:])
	return crc32.Update(c, castagnoli, e.Data)
}

// checkEntry validates ext against e and fills in e.Type.
func checkEntry(e *consensus.Entry, ext []byte) error {
	if len(ext) != 6 || ext[0] != entryExtVersion {
		return fmt.Errorf("%w: entry %d: bad extension header", ErrCorrupt, e.Index)
	}
	e.Type = consensus.EntryType(ext[1])
	if e.Type != consensus.EntryNormal && e.Type != consensus.EntryConfChange {
		return fmt.Errorf("%w: entry %d: unknown type %d", ErrCorrupt, e.Index, ext[1])
	}
	if entryCRC(e) != binary.LittleEndian.Uint32(ext[2:]) {
		return fmt.Errorf("%w: entry %d: checksum mismatch", ErrCorrupt, e.Index)
	}
	return nil
}
