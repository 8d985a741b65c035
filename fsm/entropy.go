package fsm

import (
	"encoding/binary"
	"fmt"
	"time"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The writer (and the preview path) replaces SQLite's sources of time and
// randomness with the entry's own, so that SQL evaluated at apply time —
// a column's DEFAULT CURRENT_TIMESTAMP, UPDATE t SET r = random() (a new
// value per row), a trigger — computes the same bytes on every node:
//
//   - current_timestamp(), current_date(), current_time() (SQLite
//     compiles the CURRENT_* keywords into calls of these names) return
//     the entry's clock, Command.UnixMicro, in UTC and in SQLite's
//     formats 'YYYY-MM-DD HH:MM:SS', 'YYYY-MM-DD', 'HH:MM:SS';
//   - random() and randomblob(N) draw from a PRNG (splitmix64) seeded from
//     the entry's index and term.
//
// They are application-defined functions registered on the connection:
// SQLite looks application-defined functions up before its built-ins
// (except while it re-parses its own schema in nested statements, which
// never evaluates them), also for a DEFAULT expression copied into an
// INSERT. The 'now' argument of date(), datetime(), strftime(), … is not
// covered: it reads the VFS clock; sqltext.MakeDeterministic rewrites it
// to a literal in DML and to CURRENT_TIMESTAMP in a column DEFAULT.
//
// The state lives in C memory (the callbacks get its address as the
// function's user data): [0] the clock in Unix microseconds, [1] the PRNG
// state.

// maxRandomBlob bounds randomblob(N) on the writer; a larger N is an
// error result (the same on every node), not a huge allocation.
const maxRandomBlob = 16 << 20

type entropy struct {
	p uintptr // 16 bytes of C memory: clock, PRNG state
}

func (e entropy) words() *[2]int64 { return (*[2]int64)(cptr(e.p)) }

// reset sets the clock and seeds the PRNG for the next entry.
func (e entropy) reset(unixMicro int64, seed uint64) {
	w := e.words()
	w[0] = unixMicro
	w[1] = int64(seed)
}

// entrySeed is the PRNG seed of the entry at index in term.
func entrySeed(index, term uint64) uint64 {
	s := index
	_ = splitmix(&s)
	t := term ^ 0x9e3779b97f4a7c15
	return splitmix(&s) ^ splitmix(&t)
}

// previewSeed is the PRNG seed of the n-th preview, at unixMicro.
func previewSeed(unixMicro int64, n uint64) uint64 {
	s := uint64(unixMicro) ^ 0x5851f42d4c957f2d
	return splitmix(&s) ^ splitmix(&n)
}

// splitmix advances *s and returns the next splitmix64 output.
func splitmix(s *uint64) uint64 {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// overrideFuncs are the functions registered by enableEntropy.
var overrideFuncs = []struct {
	name string
	narg int32
	fn   func(tls *libc.TLS, ctx uintptr, argc int32, argv uintptr)
}{
	{"current_timestamp", 0, timestampFunc},
	{"current_date", 0, dateFunc},
	{"current_time", 0, timeFunc},
	{"random", 0, randomFunc},
	{"randomblob", 1, randomblobFunc},
}

// enableEntropy registers the overrides on c; the clock starts at 0 and
// the PRNG at seed 0 until reset.
func (c *sconn) enableEntropy() error {
	p := libc.Xmalloc(c.tls, 16)
	if p == 0 {
		return fmt.Errorf("fsm: out of memory")
	}
	c.entropy = entropy{p: p}
	c.entropy.reset(0, 0)
	for _, f := range overrideFuncs {
		name, err := libc.CString(f.name)
		if err != nil {
			return err
		}
		rc := sqlite3.Xsqlite3_create_function_v2(c.tls, c.db, name, f.narg, sqlite3.SQLITE_UTF8, p, cFuncPointer(f.fn), 0, 0, 0)
		libc.Xfree(c.tls, name)
		if rc != sqlite3.SQLITE_OK {
			return fmt.Errorf("fsm: register %s(): %w", f.name, c.lastError(rc))
		}
	}
	return nil
}

func ctxEntropy(tls *libc.TLS, ctx uintptr) entropy {
	return entropy{p: sqlite3.Xsqlite3_user_data(tls, ctx)}
}

func resultText(tls *libc.TLS, ctx uintptr, s string) {
	p := libc.Xmalloc(tls, libc.Tsize_t(len(s)+1))
	if p == 0 {
		sqlite3.Xsqlite3_result_error_nomem(tls, ctx)
		return
	}
	copy(cbytes(p, len(s)), s)
	sqlite3.Xsqlite3_result_text(tls, ctx, p, int32(len(s)), sqlite3.SQLITE_TRANSIENT)
	libc.Xfree(tls, p)
}

func resultError(tls *libc.TLS, ctx uintptr, msg string) {
	p, err := libc.CString(msg)
	if err != nil {
		sqlite3.Xsqlite3_result_error_nomem(tls, ctx)
		return
	}
	sqlite3.Xsqlite3_result_error(tls, ctx, p, -1)
	libc.Xfree(tls, p)
}

func entryTime(tls *libc.TLS, ctx uintptr) time.Time {
	return time.UnixMicro(ctxEntropy(tls, ctx).words()[0]).UTC()
}

func timestampFunc(tls *libc.TLS, ctx uintptr, _ int32, _ uintptr) {
	resultText(tls, ctx, entryTime(tls, ctx).Format("2006-01-02 15:04:05"))
}

func dateFunc(tls *libc.TLS, ctx uintptr, _ int32, _ uintptr) {
	resultText(tls, ctx, entryTime(tls, ctx).Format("2006-01-02"))
}

func timeFunc(tls *libc.TLS, ctx uintptr, _ int32, _ uintptr) {
	resultText(tls, ctx, entryTime(tls, ctx).Format("15:04:05"))
}

func (e entropy) next() uint64 {
	w := e.words()
	s := uint64(w[1])
	v := splitmix(&s)
	w[1] = int64(s)
	return v
}

func randomFunc(tls *libc.TLS, ctx uintptr, _ int32, _ uintptr) {
	sqlite3.Xsqlite3_result_int64(tls, ctx, int64(ctxEntropy(tls, ctx).next()))
}

func randomblobFunc(tls *libc.TLS, ctx uintptr, _ int32, argv uintptr) {
	n := sqlite3.Xsqlite3_value_int64(tls, readPtr(argv))
	if n < 1 {
		n = 1 // as SQLite's randomblob
	}
	if n > maxRandomBlob {
		resultError(tls, ctx, fmt.Sprintf("randomblob(%d): at most %d bytes", n, maxRandomBlob))
		return
	}
	e := ctxEntropy(tls, ctx)
	p := libc.Xmalloc(tls, libc.Tsize_t(n))
	if p == 0 {
		sqlite3.Xsqlite3_result_error_nomem(tls, ctx)
		return
	}
	b := cbytes(p, int(n))
	var w [8]byte
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(w[:], e.next())
		copy(b[i:], w[:])
	}
	sqlite3.Xsqlite3_result_blob(tls, ctx, p, int32(n), sqlite3.SQLITE_TRANSIENT)
	libc.Xfree(tls, p)
}
