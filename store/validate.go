package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"github.com/raftsql/raftsql/consensus"
)

// Names inside the bolt file. The bucket names are raft-boltdb's; the
// format marker is ours, written when the file is created.
var (
	bucketLogs = []byte("logs")
	bucketConf = []byte("conf")
	formatKey  = []byte("raftsql/store-format")
)

// formatValue is the current store format. An older or foreign value stops
// Open; a future format version is reported as ErrVersion.
const formatValue = "raftsql-store/1"

const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2
	pageHdrSize = 16
	metaSize    = 64
)

type boltMeta struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

// readBoltMeta parses one meta page of a bolt file (layout of bbolt v1.3,
// little-endian hosts) and validates its magic, version and checksum.
func readBoltMeta(b []byte) (boltMeta, error) {
	if len(b) < pageHdrSize+metaSize {
		return boltMeta{}, errors.New("short meta page")
	}
	m := b[pageHdrSize : pageHdrSize+metaSize]
	if binary.LittleEndian.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("bad magic (not a bolt file)")
	}
	if v := binary.LittleEndian.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bolt version %d", v)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != binary.LittleEndian.Uint64(m[56:]) {
		return boltMeta{}, errors.New("meta checksum mismatch")
	}
	return boltMeta{
		pageSize: binary.LittleEndian.Uint32(m[8:]),
		pgid:     binary.LittleEndian.Uint64(m[40:]),
		txid:     binary.LittleEndian.Uint64(m[48:]),
	}, nil
}

// checkBoltHeader reads the two meta pages of the file at path and checks
// that the file is a bolt file at least as long as its newest valid meta
// page says. bbolt itself would mmap past the end of a truncated file and
// fault on access, so this runs before bbolt touches the file.
func checkBoltHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	buf := make([]byte, pageHdrSize+metaSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: %s: file of %d bytes is too short for a bolt file", ErrCorrupt, path, size)
		}
		return err
	}
	// bbolt writes its two meta pages alternately, so a torn commit leaves
	// one intact: accept the file when either is valid, as bbolt does.
	m0, err0 := readBoltMeta(buf)
	pageSize := m0.pageSize
	if err0 != nil {
		pageSize = uint32(os.Getpagesize())
	}
	var m1 boltMeta
	err1 := errors.New("unreadable")
	if _, err := f.ReadAt(buf, int64(pageSize)); err == nil {
		m1, err1 = readBoltMeta(buf)
	}
	var best boltMeta
	switch {
	case err0 != nil && err1 != nil:
		return fmt.Errorf("%w: %s: no valid meta page: %v; second: %v", ErrCorrupt, path, err0, err1)
	case err0 != nil:
		best = m1
	case err1 != nil || m0.txid >= m1.txid:
		best = m0
	default:
		best = m1
	}
	if best.pageSize < 512 || best.pageSize > 1<<20 || best.pageSize&(best.pageSize-1) != 0 || (err0 == nil && err1 == nil && m0.pageSize != m1.pageSize) {
		return fmt.Errorf("%w: %s: bad page size %d", ErrCorrupt, path, best.pageSize)
	}
	need := int64(best.pgid) * int64(best.pageSize)
	if best.pgid > 1<<40 || size < need || size < 2*int64(best.pageSize) {
		return fmt.Errorf("%w: %s: truncated: %d bytes on disk, bolt meta needs %d", ErrCorrupt, path, size, need)
	}
	return nil
}

// loadInfo is what loadExisting learned about garbage left in the file.
type loadInfo struct {
	boltLast   uint64 // highest entry key in the file
	belowSnap  bool   // entries at or below the snapshot index exist
	aboveCount int    // entries past the last valid index
}

// loadExisting validates an existing store file and loads it into s, in
// one read-only bolt transaction, before raft-boltdb opens the file for
// writing (raft-boltdb would create its buckets in any bolt file): the
// header, our format marker, the control record, then every entry — keys
// contiguous, index and CRC verified, terms non-decreasing — filling the
// term index, the list of configuration entries and the entry cache.
//
// bbolt panics on some malformed pages (and a bad page reference would
// fault in the mmap); the walk runs synchronously with faults turned into
// panics, and any panic becomes ErrCorrupt. (bbolt's own tx.Check is not
// used: it runs in a goroutine of its own, where such a panic would kill
// the process.)
func loadExisting(ctx context.Context, s *Store, timeout time.Duration) (info loadInfo, err error) {
	path := s.path
	if err := checkBoltHeader(path); err != nil {
		return info, err
	}
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer recoverCorrupt(path, &err)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return info, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return info, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		conf := tx.Bucket(bucketConf)
		logs := tx.Bucket(bucketLogs)
		if conf == nil || logs == nil {
			return fmt.Errorf("%w: %s: bolt file without raft-boltdb buckets (not a raftsql store)", ErrCorrupt, path)
		}
		v := conf.Get(formatKey)
		switch {
		case v == nil:
			return fmt.Errorf("%w: %s: no raftsql format marker (a raft-boltdb file of another program?)", ErrCorrupt, path)
		case string(v) != formatValue:
			return fmt.Errorf("%w: %s: format %q, this build reads %q", ErrVersion, path, v, formatValue)
		}
		return s.loadLogs(ctx, logs.Cursor(), &info)
	})
	return info, err
}

// loadLogs walks the logs bucket in key order.
func (s *Store) loadLogs(ctx context.Context, cur *bbolt.Cursor, info *loadInfo) error {
	path := s.path
	k, v := cur.First()
	if k == nil || len(k) != 8 || binary.BigEndian.Uint64(k) != 0 {
		return fmt.Errorf("%w: %s: no control record", ErrCorrupt, path)
	}
	var l raft.Log
	h := &codec.MsgpackHandle{}
	dec := codec.NewDecoderBytes(nil, h)
	decode := func(v []byte) error {
		l = raft.Log{}
		dec.ResetBytes(v)
		return dec.Decode(&l)
	}
	if err := decode(v); err != nil {
		return fmt.Errorf("%w: %s: control record: %v", ErrCorrupt, path, err)
	}
	c, err := decodeControl(l.Data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	s.c = c
	s.terms = make([]uint64, 0, c.Last-c.Snap.Index)
	next := c.Snap.Index + 1
	prevTerm := c.Snap.Term
	n := 0
	for k, v = cur.Next(); k != nil; k, v = cur.Next() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if len(k) != 8 {
			return fmt.Errorf("%w: %s: log key of %d bytes", ErrCorrupt, path, len(k))
		}
		i := binary.BigEndian.Uint64(k)
		switch {
		case i <= c.Snap.Index:
			info.belowSnap = true
			continue
		case i > c.Last:
			info.aboveCount++
			info.boltLast = i
			continue
		case i != next:
			return fmt.Errorf("%w: %s: entry %d missing (hole in the log)", ErrCorrupt, path, next)
		}
		if err := decode(v); err != nil {
			return fmt.Errorf("%w: %s: entry %d: %v", ErrCorrupt, path, i, err)
		}
		if l.Index != i {
			return fmt.Errorf("%w: %s: key %d holds entry %d", ErrCorrupt, path, i, l.Index)
		}
		// l.Data aliases the mmap only until the transaction ends.
		e := consensus.Entry{Index: l.Index, Term: l.Term, Data: append([]byte(nil), l.Data...)}
		if len(l.Data) == 0 {
			e.Data = nil
		}
		if err := checkEntry(&e, l.Extensions); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if e.Term < prevTerm {
			return fmt.Errorf("%w: %s: entry %d has term %d below the previous term %d", ErrCorrupt, path, i, e.Term, prevTerm)
		}
		prevTerm = e.Term
		s.terms = append(s.terms, e.Term)
		if e.Type == consensus.EntryConfChange {
			s.confIdx = append(s.confIdx, i)
		}
		s.cacheAppend(e)
		next++
	}
	if next != c.Last+1 {
		return fmt.Errorf("%w: %s: log ends at %d but the control record says %d", ErrCorrupt, path, next-1, c.Last)
	}
	return nil
}

// recoverCorrupt turns a panic (or, with SetPanicOnFault, a memory fault
// in the mmap of a damaged file) in the calling goroutine into ErrCorrupt.
// Use as: defer recoverCorrupt(path, &err).
func recoverCorrupt(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %s: bolt failed reading the file: %v", ErrCorrupt, path, r)
	}
}
