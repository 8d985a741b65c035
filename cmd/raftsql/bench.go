package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// benchConfig is `raftsql bench`'s flags.
type benchConfig struct {
	Hosts           []string // host:port, connections are spread round-robin
	User, Database  string
	Password        string
	Conns           int
	Duration        time.Duration // stop after this long (0: no time bound)
	Ops             int64         // stop after this many operations (0: no count bound)
	Workload        string        // write | read | mixed
	ReadPercent     int           // share of reads in mixed
	ReadConsistency string        // linearizable | lease | stale | "" (server default)
	ValueSize       int
	Keys            int
	Seed            uint64
	Progress        time.Duration // progress line period
	// OpTimeout bounds one operation (0: none). An operation that takes
	// longer counts as an error and its connection is replaced, so a
	// request stuck on a dead node does not stall the worker for good.
	OpTimeout time.Duration
}

// benchTable and the statements of the load, kept valid for both SQLite
// (through raftsqld) and PostgreSQL so the same load compares the two.
const (
	benchCreateSQL = `CREATE TABLE IF NOT EXISTS bench_kv(k INTEGER PRIMARY KEY, v TEXT)`
	benchWriteSQL  = `INSERT INTO bench_kv(k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v`
	benchReadSQL   = `SELECT v FROM bench_kv WHERE k = $1`
	// benchFillBatch keys go into one prefill statement.
	benchFillBatch = 200
)

var readConsistencies = []string{"linearizable", "lease", "stale"}

func (c *benchConfig) validate() error {
	switch {
	case len(c.Hosts) == 0:
		return fmt.Errorf("%w: --hosts is empty", ErrUsage)
	case c.Conns < 1:
		return fmt.Errorf("%w: --conns must be at least 1", ErrUsage)
	case c.Ops < 0:
		return fmt.Errorf("%w: --ops must not be negative", ErrUsage)
	case c.Ops == 0 && c.Duration <= 0:
		return fmt.Errorf("%w: give --duration or --ops", ErrUsage)
	case c.OpTimeout < 0:
		return fmt.Errorf("%w: --op-timeout must not be negative", ErrUsage)
	case c.Duration < 0:
		return fmt.Errorf("%w: --duration must not be negative", ErrUsage)
	case c.Keys < 1:
		return fmt.Errorf("%w: --keys must be at least 1", ErrUsage)
	case c.ValueSize < 0 || c.ValueSize > 16<<20:
		return fmt.Errorf("%w: --value-size must be between 0 and 16 MiB", ErrUsage)
	case c.ReadPercent < 0 || c.ReadPercent > 100:
		return fmt.Errorf("%w: --read-percent must be between 0 and 100", ErrUsage)
	}
	switch c.Workload {
	case "write", "read", "mixed":
	default:
		return fmt.Errorf("%w: --workload must be write, read or mixed, not %q", ErrUsage, c.Workload)
	}
	if c.ReadConsistency != "" {
		ok := false
		for _, rc := range readConsistencies {
			ok = ok || rc == c.ReadConsistency
		}
		if !ok {
			return fmt.Errorf("%w: --read-consistency must be one of %s, not %q", ErrUsage, strings.Join(readConsistencies, ", "), c.ReadConsistency)
		}
	}
	for _, h := range c.Hosts {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return fmt.Errorf("%w: --hosts: %q is not host:port: %w", ErrUsage, h, err)
		}
	}
	return nil
}

// benchConn is one connection of the load. The real one is pgx with
// prepared statements; tests use a fake.
type benchConn interface {
	Write(ctx context.Context, k int64, v string) error
	Read(ctx context.Context, k int64) error
	// Broken reports whether the connection must be dialled again.
	Broken() bool
	Close(ctx context.Context) error
}

// benchDriver dials connections and prepares the table.
type benchDriver interface {
	Dial(ctx context.Context, host string) (benchConn, error)
	// Setup creates the table through host and, when fill is true,
	// writes every key 0..keys-1 once so reads find rows.
	Setup(ctx context.Context, host string, keys int, value string, fill bool) error
}

// pgxDriver is benchDriver over pgx.
type pgxDriver struct{ cfg *benchConfig }

func (d pgxDriver) connConfig(host string) (*pgx.ConnConfig, error) {
	u := url.URL{Scheme: "postgres", Host: host, Path: "/" + d.cfg.Database}
	if d.cfg.Password != "" {
		u.User = url.UserPassword(d.cfg.User, d.cfg.Password)
	} else if d.cfg.User != "" {
		u.User = url.User(d.cfg.User)
	}
	q := url.Values{}
	q.Set("connect_timeout", "10")
	if d.cfg.ReadConsistency != "" {
		q.Set("options", "-c raftsql.read_consistency="+d.cfg.ReadConsistency)
	}
	// Spaces as %20: pgx does not read '+' in a URL query as a space.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return pgx.ParseConfig(u.String())
}

func (d pgxDriver) Dial(ctx context.Context, host string) (benchConn, error) {
	cfg, err := d.connConfig(host)
	if err != nil {
		return nil, err
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &pgxBenchConn{c: c}, nil
}

func (d pgxDriver) Setup(ctx context.Context, host string, keys int, value string, fill bool) error {
	cfg, err := d.connConfig(host)
	if err != nil {
		return err
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, benchCreateSQL); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	if !fill {
		return nil
	}
	for lo := 0; lo < keys; lo += benchFillBatch {
		hi := min(lo+benchFillBatch, keys)
		var b strings.Builder
		b.WriteString("INSERT INTO bench_kv(k, v) VALUES ")
		args := make([]any, 0, 1+hi-lo)
		args = append(args, value)
		for k := lo; k < hi; k++ {
			if k > lo {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "(%d, $1)", k)
		}
		b.WriteString(" ON CONFLICT (k) DO NOTHING")
		if _, err := c.Exec(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("prefill keys %d..%d: %w", lo, hi-1, err)
		}
	}
	return nil
}

type pgxBenchConn struct{ c *pgx.Conn }

func (p *pgxBenchConn) Write(ctx context.Context, k int64, v string) error {
	_, err := p.c.Exec(ctx, benchWriteSQL, k, v)
	return err
}

func (p *pgxBenchConn) Read(ctx context.Context, k int64) error {
	var v string
	err := p.c.QueryRow(ctx, benchReadSQL, k).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // a key not written yet is a valid answer
	}
	return err
}

func (p *pgxBenchConn) Broken() bool                    { return p.c.IsClosed() }
func (p *pgxBenchConn) Close(ctx context.Context) error { return p.c.Close(ctx) }

// benchResult is what a run measured.
type benchResult struct {
	Elapsed     time.Duration
	Reads       histogram
	Writes      histogram
	ReadErrors  int64
	WriteErrors int64
	DialErrors  int64
	FirstErrors []string // a few distinct error messages, for the report
}

// Ops counts successful operations.
func (r *benchResult) Ops() uint64 { return r.Reads.Count() + r.Writes.Count() }

// Errors counts failed operations and failed dials.
func (r *benchResult) Errors() int64 { return r.ReadErrors + r.WriteErrors + r.DialErrors }

// bench holds one run's shared state.
type bench struct {
	cfg    benchConfig
	driver benchDriver
	now    func() time.Time
	out    io.Writer

	budget  atomic.Int64 // operations left to claim when cfg.Ops > 0
	done    atomic.Int64 // operations finished (ok or not)
	errs    atomic.Int64
	errMu   sync.Mutex
	errSeen map[string]bool
	errList []string
}

// maxErrorSamples distinct error messages are kept for the report.
const maxErrorSamples = 5

func (b *bench) noteError(err error) {
	b.errs.Add(1)
	msg := strings.Join(strings.Fields(err.Error()), " ") // pgconn's messages span lines
	if pe, ok := pgErrorOf(err); ok {
		msg = pe.Code + " " + pe.Message
	}
	b.errMu.Lock()
	defer b.errMu.Unlock()
	if !b.errSeen[msg] && len(b.errList) < maxErrorSamples {
		b.errSeen[msg] = true
		b.errList = append(b.errList, msg)
	}
}

// runBench prepares the table, runs the load until the duration passes,
// the operation budget is spent or ctx ends, printing a progress line
// every cfg.Progress, and returns what it measured.
func runBench(ctx context.Context, cfg benchConfig, driver benchDriver, now func() time.Time, out io.Writer) (*benchResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Progress <= 0 {
		cfg.Progress = time.Second
	}
	b := &bench{cfg: cfg, driver: driver, now: now, out: out, errSeen: map[string]bool{}}
	b.budget.Store(cfg.Ops)
	value := strings.Repeat("x", cfg.ValueSize)
	fill := cfg.Workload != "write"
	// The table is made through the first host that answers.
	var setupErr error
	for _, h := range cfg.Hosts {
		if setupErr = driver.Setup(ctx, h, cfg.Keys, value, fill); setupErr == nil {
			break
		}
		setupErr = fmt.Errorf("bench setup on %s: %w", h, setupErr)
		if ctx.Err() != nil {
			break
		}
	}
	if setupErr != nil {
		return nil, setupErr
	}
	fmt.Fprintf(out, "bench: %s workload, %d connections over %s, %d keys, %d-byte values", cfg.Workload, cfg.Conns, strings.Join(cfg.Hosts, ","), cfg.Keys, cfg.ValueSize)
	if cfg.ReadConsistency != "" {
		fmt.Fprintf(out, ", reads %s", cfg.ReadConsistency)
	}
	switch {
	case cfg.Ops > 0 && cfg.Duration > 0:
		fmt.Fprintf(out, ", %d ops or %s\n", cfg.Ops, cfg.Duration)
	case cfg.Ops > 0:
		fmt.Fprintf(out, ", %d ops\n", cfg.Ops)
	default:
		fmt.Fprintf(out, ", %s\n", cfg.Duration)
	}

	// Connect everything before the clock starts, so the run measures the
	// load and not the connection storm. A failed dial is counted and the
	// worker keeps trying during the run.
	workers := make([]*benchWorker, cfg.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &benchWorker{
			b:       b,
			hostIdx: i % len(cfg.Hosts),
			rnd:     rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
		}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := driver.Dial(ctx, w.host())
			if err != nil {
				w.dialErrs++
				b.noteError(fmt.Errorf("dial %s: %w", w.host(), err))
				w.nextHost()
				return
			}
			w.conn = c
		}()
	}
	wg.Wait()
	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if cfg.Duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
	}
	defer cancel()
	start := now()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(runCtx)
		}()
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	b.progress(start, finished)
	<-finished

	res := &benchResult{Elapsed: now().Sub(start)}
	for _, w := range workers {
		res.Reads.Merge(&w.reads)
		res.Writes.Merge(&w.writes)
		res.ReadErrors += w.readErrs
		res.WriteErrors += w.writeErrs
		res.DialErrors += w.dialErrs
	}
	res.FirstErrors = b.errList
	return res, nil
}

// progress prints one line per period until the workers finish. It uses
// a ticker (wall time), but nothing asserts on what it prints beyond its
// shape.
func (b *bench) progress(start time.Time, finished <-chan struct{}) {
	t := time.NewTicker(b.cfg.Progress)
	defer t.Stop()
	var lastOps, lastErrs int64
	last := start
	for {
		select {
		case <-finished:
			return
		case <-t.C:
			now := b.now()
			ops, errs := b.done.Load(), b.errs.Load()
			dt := now.Sub(last).Seconds()
			rate := 0.0
			if dt > 0 {
				rate = float64(ops-lastOps) / dt
			}
			fmt.Fprintf(b.out, "%6.1fs  %9.0f ops/s  total %d  errors %d\n", now.Sub(start).Seconds(), rate, ops, errs-lastErrs)
			lastOps, lastErrs, last = ops, errs, now
		}
	}
}

// benchWorker owns one connection and its own histograms.
type benchWorker struct {
	b         *bench
	hostIdx   int // index in cfg.Hosts of the node this worker uses
	rnd       *rand.Rand
	conn      benchConn
	reads     histogram
	writes    histogram
	readErrs  int64
	writeErrs int64
	dialErrs  int64
	value     []byte
}

// redialBackoff is the pause after a failed dial before the next one.
const redialBackoff = 100 * time.Millisecond

func (w *benchWorker) run(ctx context.Context) {
	defer func() {
		if w.conn != nil {
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			w.conn.Close(closeCtx)
			cancel()
		}
	}()
	cfg := &w.b.cfg
	w.value = make([]byte, cfg.ValueSize)
	for ctx.Err() == nil {
		if cfg.Ops > 0 && w.b.budget.Add(-1) < 0 {
			return
		}
		if w.conn == nil {
			c, err := w.b.driver.Dial(ctx, w.host())
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				w.dialErrs++
				w.b.noteError(fmt.Errorf("dial %s: %w", w.host(), err))
				w.nextHost()
				w.b.done.Add(1)
				sleepCtx(ctx, redialBackoff)
				continue
			}
			w.conn = c
		}
		read := false
		switch cfg.Workload {
		case "read":
			read = true
		case "mixed":
			read = w.rnd.IntN(100) < cfg.ReadPercent
		}
		k := w.rnd.Int64N(int64(cfg.Keys))
		opCtx, cancel := ctx, context.CancelFunc(func() {})
		if cfg.OpTimeout > 0 {
			opCtx, cancel = context.WithTimeout(ctx, cfg.OpTimeout)
		}
		start := w.b.now()
		var err error
		if read {
			err = w.conn.Read(opCtx, k)
		} else {
			err = w.conn.Write(opCtx, k, w.randomValue())
		}
		lat := w.b.now().Sub(start)
		timedOut := err != nil && opCtx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil && ctx.Err() != nil {
			return // the run ended in the middle of this operation
		}
		if timedOut {
			err = fmt.Errorf("%w after %s (%s)", ErrOpTimeout, cfg.OpTimeout, w.host())
		}
		w.b.done.Add(1)
		switch {
		case err != nil && read:
			w.readErrs++
		case err != nil:
			w.writeErrs++
		case read:
			w.reads.Record(lat)
		default:
			w.writes.Record(lat)
		}
		if err != nil {
			w.b.noteError(err)
			if timedOut || w.conn.Broken() {
				closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				w.conn.Close(closeCtx)
				cancel()
				w.conn = nil
				w.nextHost()
			}
		}
	}
}

func (w *benchWorker) host() string { return w.b.cfg.Hosts[w.hostIdx] }

// nextHost moves the worker to the next node after its connection broke
// or a dial failed, as a client with several addresses would, so a dead
// node does not leave its share of connections idle.
func (w *benchWorker) nextHost() { w.hostIdx = (w.hostIdx + 1) % len(w.b.cfg.Hosts) }

// randomValue fills the worker's value with random letters.
func (w *benchWorker) randomValue() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	for i := range w.value {
		w.value[i] = letters[w.rnd.IntN(len(letters))]
	}
	return string(w.value)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// writeBenchReport prints the final report.
func writeBenchReport(w io.Writer, r *benchResult) error {
	secs := r.Elapsed.Seconds()
	rate := func(n uint64) string {
		if secs <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", float64(n)/secs)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(w, "\nelapsed %.3fs, %d ops, %s ops/s, %d errors\n\n", secs, r.Ops(), rate(r.Ops()), r.Errors())
	str := func(s string) *string { return &s }
	t := table{
		Columns:  []string{"op", "count", "ops/s", "errors", "p50 ms", "p99 ms", "p999 ms", "max ms", "mean ms"},
		Right:    []bool{false, true, true, true, true, true, true, true, true},
		NoFooter: true,
	}
	add := func(name string, h *histogram, errs int64) {
		if h.Count() == 0 && errs == 0 {
			return
		}
		t.Rows = append(t.Rows, []*string{str(name), str(fmt.Sprint(h.Count())), str(rate(h.Count())), str(fmt.Sprint(errs)),
			str(ms(h.Quantile(0.50))), str(ms(h.Quantile(0.99))), str(ms(h.Quantile(0.999))), str(ms(h.Max())), str(ms(h.Mean()))})
	}
	add("read", &r.Reads, r.ReadErrors)
	add("write", &r.Writes, r.WriteErrors)
	if err := writeTable(w, t); err != nil {
		return err
	}
	if r.DialErrors > 0 {
		fmt.Fprintf(w, "connection errors: %d\n", r.DialErrors)
	}
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	return nil
}

// benchOpJSON is one operation kind of the JSON report.
type benchOpJSON struct {
	Count   uint64  `json:"count"`
	Errors  int64   `json:"errors"`
	OpsPerS float64 `json:"ops_per_s"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	P999Ms  float64 `json:"p999_ms"`
	MaxMs   float64 `json:"max_ms"`
	MeanMs  float64 `json:"mean_ms"`
}

// benchJSON is the report of `raftsql bench --json`, for scripts that
// collect results into tables.
type benchJSON struct {
	Workload        string       `json:"workload"`
	ReadConsistency string       `json:"read_consistency,omitempty"`
	Hosts           []string     `json:"hosts"`
	Conns           int          `json:"conns"`
	ValueSize       int          `json:"value_size"`
	Keys            int          `json:"keys"`
	ElapsedS        float64      `json:"elapsed_s"`
	Ops             uint64       `json:"ops"`
	OpsPerS         float64      `json:"ops_per_s"`
	Errors          int64        `json:"errors"`
	DialErrors      int64        `json:"dial_errors"`
	Read            *benchOpJSON `json:"read,omitempty"`
	Write           *benchOpJSON `json:"write,omitempty"`
	ErrorSamples    []string     `json:"error_samples,omitempty"`
}

// benchReportJSON builds the JSON report of a run.
func benchReportJSON(cfg benchConfig, r *benchResult) benchJSON {
	secs := r.Elapsed.Seconds()
	rate := func(n uint64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(n) / secs
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	op := func(h *histogram, errs int64) *benchOpJSON {
		if h.Count() == 0 && errs == 0 {
			return nil
		}
		return &benchOpJSON{Count: h.Count(), Errors: errs, OpsPerS: rate(h.Count()),
			P50Ms: ms(h.Quantile(0.5)), P99Ms: ms(h.Quantile(0.99)), P999Ms: ms(h.Quantile(0.999)),
			MaxMs: ms(h.Max()), MeanMs: ms(h.Mean())}
	}
	return benchJSON{
		Workload: cfg.Workload, ReadConsistency: cfg.ReadConsistency, Hosts: cfg.Hosts, Conns: cfg.Conns,
		ValueSize: cfg.ValueSize, Keys: cfg.Keys, ElapsedS: secs, Ops: r.Ops(), OpsPerS: rate(r.Ops()),
		Errors: r.Errors(), DialErrors: r.DialErrors, Read: op(&r.Reads, r.ReadErrors), Write: op(&r.Writes, r.WriteErrors),
		ErrorSamples: r.FirstErrors,
	}
}
