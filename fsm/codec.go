package fsm

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// The command format, version 1 (all integers varint-encoded as in
// encoding/binary unless said otherwise):
//
//	byte     version (1)
//	uvarint  SessionID
//	uvarint  Seq
//	varint   UnixMicro
//	uvarint  number of statements, then per statement:
//	  uvarint len, SQL bytes
//	  uvarint number of args, then per arg a value
//
// A value is a tag byte and its payload:
//
//	0 NULL | 1 int64 (varint) | 2 float64 (8 bytes, little-endian IEEE
//	bits) | 3 text (uvarint len, bytes) | 4 blob (uvarint len, bytes)
//	| 255 unsupported Go type (uvarint len, type name): decoding fails.
//
// Version 2 is a restore command: the same header (version 2), then
// uvarint len and the database file's bytes.
//
// Version 3 is version 1 with uvarint ReadVersion after UnixMicro. The
// encoder writes version 1 when ReadVersion is 0, so commands that do not
// use it keep their bytes (and older decoders can read them).
//
// Version 4 is a node directory command: the same header (version 4),
// then the strings ID, HTTPAddr, PGAddr (uvarint len, bytes).
//
// Version 5 is version 3 with, after ReadVersion, uvarint number of
// ReadTables and each name (uvarint len, bytes). The encoder writes it
// only when ReadVersion and ReadTables are both set.
//
// Version 6 is a restore chunk: the same header (version 6), then uvarint
// ID (non-zero), uvarint Seq, uvarint len and the chunk's bytes (at least
// one).
//
// Version 7 is a restore commit: the same header (version 7), then
// uvarint ID (non-zero), uvarint Chunks, uvarint Size and the 32 bytes of
// the SHA-256.
const (
	commandVersion = 1
	restoreVersion = 2
	readVersionFmt = 3
	nodeVersion    = 4
	readTablesFmt  = 5
	chunkVersion   = 6
	commitVersion  = 7
	lastVersion    = commitVersion
)

const (
	tagNull        = 0
	tagInt         = 1
	tagFloat       = 2
	tagText        = 3
	tagBlob        = 4
	tagUnsupported = 255
)

// NormalizeArg converts a Go value to one of the types a Statement
// argument may hold (nil, int64, float64, string, []byte): other integer
// types, bool (0/1) and float32 are converted; anything else is an error.
func NormalizeArg(v any) (any, error) {
	switch x := v.(type) {
	case nil, int64, float64, string, []byte:
		return v, nil
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return nil, fmt.Errorf("fsm: argument %d overflows int64", x)
		}
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("fsm: argument %d overflows int64", x)
		}
		return int64(x), nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case float32:
		return float64(x), nil
	case time.Time:
		return nil, fmt.Errorf("fsm: time.Time argument: convert it to text first")
	}
	return nil, fmt.Errorf("fsm: unsupported argument type %T", v)
}

// EncodeCommand encodes c for a log entry. Arguments are converted with
// NormalizeArg; an argument that cannot be converted is encoded so that
// DecodeCommand (and so Apply, on every node) reports it as an error
// result for the command's session — check with NormalizeArg beforehand
// to fail earlier.
func EncodeCommand(c Command) []byte {
	if c.Restore != nil {
		b := make([]byte, 0, 4*binary.MaxVarintLen64+1+len(c.Restore))
		b = appendHeader(b, restoreVersion, c)
		b = binary.AppendUvarint(b, uint64(len(c.Restore)))
		return append(b, c.Restore...)
	}
	if c.RestoreChunk != nil {
		rc := c.RestoreChunk
		b := make([]byte, 0, 6*binary.MaxVarintLen64+1+len(rc.Data))
		b = appendHeader(b, chunkVersion, c)
		b = binary.AppendUvarint(b, rc.ID)
		b = binary.AppendUvarint(b, rc.Seq)
		b = binary.AppendUvarint(b, uint64(len(rc.Data)))
		return append(b, rc.Data...)
	}
	if c.RestoreCommit != nil {
		rc := c.RestoreCommit
		b := make([]byte, 0, 7*binary.MaxVarintLen64+1+len(rc.SHA256))
		b = appendHeader(b, commitVersion, c)
		b = binary.AppendUvarint(b, rc.ID)
		b = binary.AppendUvarint(b, rc.Chunks)
		b = binary.AppendUvarint(b, rc.Size)
		return append(b, rc.SHA256[:]...)
	}
	if c.Node != nil {
		n := c.Node
		b := make([]byte, 0, 6*binary.MaxVarintLen64+1+len(n.ID)+len(n.HTTPAddr)+len(n.PGAddr))
		b = appendHeader(b, nodeVersion, c)
		b = appendString(b, n.ID)
		b = appendString(b, n.HTTPAddr)
		return appendString(b, n.PGAddr)
	}
	size := 1 + 5*binary.MaxVarintLen64 + 2
	for _, t := range c.ReadTables {
		size += len(t) + binary.MaxVarintLen64
	}
	for _, s := range c.Stmts {
		size += len(s.SQL) + 2*binary.MaxVarintLen64
		for _, a := range s.Args {
			size += 1 + binary.MaxVarintLen64
			switch x := a.(type) {
			case string:
				size += len(x)
			case []byte:
				size += len(x)
			}
		}
	}
	b := make([]byte, 0, size)
	tables := c.ReadVersion != 0 && len(c.ReadTables) > 0
	version := byte(commandVersion)
	switch {
	case tables:
		version = readTablesFmt
	case c.ReadVersion != 0:
		version = readVersionFmt
	}
	b = appendHeader(b, version, c)
	if c.ReadVersion != 0 {
		b = binary.AppendUvarint(b, c.ReadVersion)
	}
	if tables {
		b = binary.AppendUvarint(b, uint64(len(c.ReadTables)))
		for _, t := range c.ReadTables {
			b = appendString(b, t)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(c.Stmts)))
	for _, s := range c.Stmts {
		b = appendString(b, s.SQL)
		b = binary.AppendUvarint(b, uint64(len(s.Args)))
		for _, a := range s.Args {
			b = appendValue(b, a)
		}
	}
	return b
}

// appendHeader appends the header every format starts with: the version
// byte, SessionID, Seq and UnixMicro.
func appendHeader(b []byte, version byte, c Command) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, c.SessionID)
	b = binary.AppendUvarint(b, c.Seq)
	return binary.AppendVarint(b, c.UnixMicro)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendValue(b []byte, v any) []byte {
	n, err := NormalizeArg(v)
	if err != nil {
		b = append(b, tagUnsupported)
		return appendString(b, fmt.Sprintf("%T", v))
	}
	switch x := n.(type) {
	case int64:
		b = append(b, tagInt)
		return binary.AppendVarint(b, x)
	case float64:
		b = append(b, tagFloat)
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	case string:
		b = append(b, tagText)
		return appendString(b, x)
	case []byte:
		if x == nil {
			return append(b, tagNull)
		}
		b = append(b, tagBlob)
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	}
	return append(b, tagNull)
}

// decoder reads the formats of this file; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("unexpected end of data")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of items each at least minSize bytes long, so a
// corrupt count cannot make the decoder allocate more than the input.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/minSize) {
		d.fail("count %d exceeds remaining %d bytes", n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d exceeds remaining %d bytes", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) value() any {
	switch tag := d.byte(); tag {
	case tagNull:
		return nil
	case tagInt:
		return d.varint()
	case tagFloat:
		if d.err == nil && len(d.b) < 8 {
			d.fail("short float")
		}
		if d.err != nil {
			return nil
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
		d.b = d.b[8:]
		return v
	case tagText:
		return d.string()
	case tagBlob:
		b := d.bytes()
		if d.err != nil {
			return nil
		}
		return append([]byte{}, b...)
	case tagUnsupported:
		name := d.string()
		d.fail("argument of unsupported type %s", name)
		return nil
	default:
		d.fail("unknown value tag %d", tag)
		return nil
	}
}

// DecodeCommand decodes a payload made by EncodeCommand. On error the
// returned Command still carries SessionID, Seq and UnixMicro when the
// header could be read (so the session learns of the failure), and the
// error wraps ErrCorruptCommand.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	d := &decoder{b: b}
	version := d.byte()
	if d.err == nil && (version < commandVersion || version > lastVersion) {
		return c, fmt.Errorf("%w: unknown version %d", ErrCorruptCommand, version)
	}
	c.SessionID = d.uvarint()
	c.Seq = d.uvarint()
	c.UnixMicro = d.varint()
	if d.err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrCorruptCommand, d.err)
	}
	if version == restoreVersion {
		db := d.bytes()
		if d.err == nil && len(d.b) != 0 {
			d.fail("%d trailing bytes", len(d.b))
		}
		if d.err == nil && len(db) == 0 {
			d.fail("empty restore file")
		}
		if d.err != nil {
			return c, fmt.Errorf("%w: %v", ErrCorruptCommand, d.err)
		}
		c.Restore = db
		return c, nil
	}
	if version == chunkVersion {
		rc := &RestoreChunk{ID: d.uvarint(), Seq: d.uvarint()}
		rc.Data = d.bytes()
		if d.err == nil && len(d.b) != 0 {
			d.fail("%d trailing bytes", len(d.b))
		}
		if d.err == nil && (rc.ID == 0 || len(rc.Data) == 0) {
			d.fail("restore chunk without an id or data")
		}
		if d.err != nil {
			return c, fmt.Errorf("%w: %v", ErrCorruptCommand, d.err)
		}
		rc.Data = append([]byte(nil), rc.Data...)
		c.RestoreChunk = rc
		return c, nil
	}
	if version == commitVersion {
		rc := &RestoreCommit{ID: d.uvarint(), Chunks: d.uvarint(), Size: d.uvarint()}
		if d.err == nil && len(d.b) != len(rc.SHA256) {
			d.fail("restore commit: %d bytes where the SHA-256 should be", len(d.b))
		}
		if d.err == nil && rc.ID == 0 {
			d.fail("restore commit without an id")
		}
		if d.err != nil {
			return c, fmt.Errorf("%w: %v", ErrCorruptCommand, d.err)
		}
		copy(rc.SHA256[:], d.b)
		c.RestoreCommit = rc
		return c, nil
	}
	if version == nodeVersion {
		n := &NodeInfo{ID: d.string(), HTTPAddr: d.string(), PGAddr: d.string()}
		if d.err == nil && len(d.b) != 0 {
			d.fail("%d trailing bytes", len(d.b))
		}
		if d.err != nil {
			return c, fmt.Errorf("%w: %v", ErrCorruptCommand, d.err)
		}
		c.Node = n
		return c, nil
	}
	if version == readVersionFmt || version == readTablesFmt {
		c.ReadVersion = d.uvarint()
		if d.err == nil && c.ReadVersion == 0 {
			d.fail("read version 0 in a version %d command", version)
		}
	}
	if version == readTablesFmt {
		nt := d.count(1)
		if d.err == nil && nt == 0 {
			d.fail("no read tables in a version %d command", version)
		}
		if nt > 0 {
			c.ReadTables = make([]string, nt)
		}
		for i := 0; i < nt && d.err == nil; i++ {
			c.ReadTables[i] = d.string()
		}
	}
	n := d.count(2)
	if n > 0 {
		c.Stmts = make([]Statement, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		c.Stmts[i].SQL = d.string()
		na := d.count(1)
		if na > 0 {
			c.Stmts[i].Args = make([]any, na)
		}
		for j := 0; j < na && d.err == nil; j++ {
			c.Stmts[i].Args[j] = d.value()
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Command{SessionID: c.SessionID, Seq: c.Seq, UnixMicro: c.UnixMicro}, fmt.Errorf("%w: %v", ErrCorruptCommand, d.err)
	}
	return c, nil
}

// The stored-results format (kept in _raftsql_sessions.result), version 1:
//
//	byte version (1), uvarint number of results, then per result:
//	  uvarint ncols, per column: string name, string decltype
//	  uvarint nrows, per row: ncols values (as in commands)
//	  varint RowsAffected, varint LastInsertID
//	  byte hasErr; if 1: varint code, string message
const resultsVersion = 1

func encodeResults(rs []Result) []byte {
	b := []byte{resultsVersion}
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		b = binary.AppendUvarint(b, uint64(len(r.Columns)))
		for _, c := range r.Columns {
			b = appendString(b, c.Name)
			b = appendString(b, c.DeclType)
		}
		b = binary.AppendUvarint(b, uint64(len(r.Rows)))
		for _, row := range r.Rows {
			for i := range r.Columns {
				var v any
				if i < len(row) {
					v = row[i]
				}
				b = appendValue(b, v)
			}
		}
		b = binary.AppendVarint(b, r.RowsAffected)
		b = binary.AppendVarint(b, r.LastInsertID)
		if r.Err != nil {
			b = append(b, 1)
			b = binary.AppendVarint(b, int64(r.Err.Code))
			b = appendString(b, r.Err.Message)
		} else {
			b = append(b, 0)
		}
	}
	return b
}

func decodeResults(b []byte) ([]Result, error) {
	d := &decoder{b: b}
	if v := d.byte(); d.err == nil && v != resultsVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorruptResults, v)
	}
	n := d.count(4)
	rs := make([]Result, n)
	for i := 0; i < n && d.err == nil; i++ {
		r := &rs[i]
		nc := d.count(2)
		if nc > 0 {
			r.Columns = make([]Column, nc)
		}
		for j := 0; j < nc && d.err == nil; j++ {
			r.Columns[j].Name = d.string()
			r.Columns[j].DeclType = d.string()
		}
		nr := d.uvarint()
		if d.err == nil && nc > 0 && nr > uint64(len(d.b)/nc) {
			d.fail("row count %d exceeds data", nr)
		}
		if d.err == nil && nc == 0 && nr != 0 {
			d.fail("rows without columns")
		}
		if nr > 0 && d.err == nil {
			r.Rows = make([][]any, nr)
		}
		for k := 0; k < int(nr) && d.err == nil; k++ {
			row := make([]any, nc)
			for j := range row {
				row[j] = d.value()
			}
			r.Rows[k] = row
		}
		r.RowsAffected = d.varint()
		r.LastInsertID = d.varint()
		switch d.byte() {
		case 0:
		case 1:
			code := d.varint()
			r.Err = &SQLError{Code: int(code), Message: d.string()}
		default:
			d.fail("bad error flag")
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptResults, d.err)
	}
	return rs, nil
}
