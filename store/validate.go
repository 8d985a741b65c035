package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"
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

// validateExisting checks an existing store file before raft-boltdb opens
// it for writing (raft-boltdb would create its buckets in any bolt file):
// the header, a walk over every page of our two buckets, and our format
// marker. bbolt panics on some malformed pages (and a bad page reference
// would fault in the mmap); the walk runs synchronously with faults turned
// into panics, and any panic into ErrCorrupt. (bbolt's own tx.Check is not
// used: it runs in a goroutine of its own, where such a panic would kill
// the process.)
func validateExisting(path string, timeout time.Duration) (err error) {
	if err := checkBoltHeader(path); err != nil {
		return err
	}
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer recoverCorrupt(path, &err)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
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
		// Touch every page of the log: keys must be 8-byte indexes in
		// ascending order (a cursor over a damaged branch may go astray).
		var prev []byte
		if err := logs.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("%w: %s: log key of %d bytes", ErrCorrupt, path, len(k))
			}
			if prev != nil && string(k) <= string(prev) {
				return fmt.Errorf("%w: %s: log keys out of order", ErrCorrupt, path)
			}
			prev = k
			return nil
		}); err != nil {
			return err
		}
		return nil
	})
}

// recoverCorrupt turns a panic (or, with SetPanicOnFault, a memory fault
// in the mmap of a damaged file) in the calling goroutine into ErrCorrupt.
// Use as: defer recoverCorrupt(path, &err).
func recoverCorrupt(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %s: bolt failed reading the file: %v", ErrCorrupt, path, r)
	}
}
