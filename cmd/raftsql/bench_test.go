package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// fakeDriver is an in-process benchDriver: one shared map, with errors
// injected by key and by host.
type fakeDriver struct {
	mu        sync.Mutex
	data      map[int64]string
	dials     map[string]int
	setups    []string
	filled    bool
	reads     int
	writes    int
	deadHosts map[string]bool // Dial fails, and Setup unless setupOK
	setupOK   bool
	failKey   int64 // operations on this key fail with 40001 …
	dropKey   int64 // … on this one the connection breaks …
	hangKey   int64 // … and on this one they hang until cancelled
	opDelay   time.Duration
}

func newFakeDriver() *fakeDriver {
	return &fakeDriver{data: map[int64]string{}, dials: map[string]int{}, deadHosts: map[string]bool{}, failKey: -1, dropKey: -1, hangKey: -1}
}

func (d *fakeDriver) Dial(_ context.Context, host string) (benchConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials[host]++
	if d.deadHosts[host] {
		return nil, fmt.Errorf("dial tcp %s: connection refused", host)
	}
	return &fakeBenchConn{d: d}, nil
}

func (d *fakeDriver) Setup(_ context.Context, host string, keys int, value string, fill bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setups = append(d.setups, host)
	if d.deadHosts[host] && !d.setupOK {
		return fmt.Errorf("dial tcp %s: connection refused", host)
	}
	d.filled = fill
	if fill {
		for k := range keys {
			d.data[int64(k)] = value
		}
	}
	return nil
}

type fakeBenchConn struct {
	d      *fakeDriver
	broken bool
}

func (c *fakeBenchConn) op(ctx context.Context, k int64, write bool, v string) error {
	if c.broken {
		return errors.New("conn closed")
	}
	if k == c.d.hangKey {
		<-ctx.Done()
		return ctx.Err()
	}
	if c.d.opDelay > 0 {
		sleepCtx(ctx, c.d.opDelay)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	switch k {
	case c.d.failKey:
		return &pgconn.PgError{Severity: "ERROR", Code: "40001", Message: "leadership changed"}
	case c.d.dropKey:
		c.broken = true
		return errors.New("unexpected EOF")
	}
	if write {
		c.d.writes++
		c.d.data[k] = v
	} else {
		c.d.reads++
	}
	return nil
}

func (c *fakeBenchConn) Write(ctx context.Context, k int64, v string) error {
	return c.op(ctx, k, true, v)
}
func (c *fakeBenchConn) Read(ctx context.Context, k int64) error { return c.op(ctx, k, false, "") }
func (c *fakeBenchConn) Broken() bool                            { return c.broken }
func (c *fakeBenchConn) Close(context.Context) error             { return nil }

func baseBench() benchConfig {
	return benchConfig{Hosts: []string{"127.0.0.1:1", "127.0.0.1:2"}, Conns: 4, Ops: 1000, Workload: "mixed",
		ReadPercent: 50, ValueSize: 8, Keys: 50, Seed: 7, Progress: time.Hour}
}

func TestBenchOpsBudget(t *testing.T) {
	d := newFakeDriver()
	var out strings.Builder
	res, err := runBench(context.Background(), baseBench(), d, stepClock(time.Millisecond), &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops() != 1000 || res.Errors() != 0 {
		t.Fatalf("ops %d errors %d, want 1000 and 0", res.Ops(), res.Errors())
	}
	if res.Reads.Count() != uint64(d.reads) || res.Writes.Count() != uint64(d.writes) {
		t.Errorf("measured %d reads %d writes, driver saw %d %d", res.Reads.Count(), res.Writes.Count(), d.reads, d.writes)
	}
	// With the seed fixed, the mix is fixed too; about half are reads.
	if d.reads < 400 || d.reads > 600 {
		t.Errorf("%d reads of 1000 in a 50%% mix", d.reads)
	}
	if d.dials["127.0.0.1:1"] != 2 || d.dials["127.0.0.1:2"] != 2 {
		t.Errorf("dials %v, want 2 per host", d.dials)
	}
	if len(d.setups) != 1 || d.setups[0] != "127.0.0.1:1" || !d.filled || len(d.data) != 50 {
		t.Errorf("setup %v filled %v keys %d", d.setups, d.filled, len(d.data))
	}
	for k, v := range d.data {
		if len(v) != 8 {
			t.Fatalf("key %d holds %q, want an 8-byte value", k, v)
		}
	}
	if !strings.HasPrefix(out.String(), "bench: mixed workload, 4 connections over 127.0.0.1:1,127.0.0.1:2, 50 keys, 8-byte values, 1000 ops\n") {
		t.Errorf("header %q", out.String())
	}
}

func TestBenchWorkloads(t *testing.T) {
	for _, wl := range []string{"write", "read"} {
		t.Run(wl, func(t *testing.T) {
			d := newFakeDriver()
			cfg := baseBench()
			cfg.Workload = wl
			cfg.Ops = 200
			cfg.Conns = 1 // one worker: consecutive clock readings
			res, err := runBench(context.Background(), cfg, d, stepClock(time.Millisecond), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if wl == "write" && (d.writes != 200 || d.reads != 0 || d.filled) {
				t.Errorf("write workload: %d writes %d reads, filled %v", d.writes, d.reads, d.filled)
			}
			if wl == "read" && (d.reads != 200 || d.writes != 0 || !d.filled) {
				t.Errorf("read workload: %d reads %d writes, filled %v", d.reads, d.writes, d.filled)
			}
			// The step clock makes every latency exactly 1 ms.
			h := &res.Writes
			if wl == "read" {
				h = &res.Reads
			}
			if h.Quantile(0.5) != time.Millisecond || h.Quantile(0.999) != time.Millisecond {
				t.Errorf("p50 %v p999 %v, want 1ms", h.Quantile(0.5), h.Quantile(0.999))
			}
		})
	}
}

func TestBenchErrorsAndReconnect(t *testing.T) {
	d := newFakeDriver()
	d.failKey, d.dropKey = 3, 4
	cfg := baseBench()
	cfg.Keys = 10
	res, err := runBench(context.Background(), cfg, d, stepClock(time.Millisecond), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops()+uint64(res.Errors()) != 1000 {
		t.Fatalf("ops %d + errors %d != 1000", res.Ops(), res.Errors())
	}
	if res.ReadErrors == 0 || res.WriteErrors == 0 {
		t.Errorf("read errors %d write errors %d, want both", res.ReadErrors, res.WriteErrors)
	}
	dials := d.dials["127.0.0.1:1"] + d.dials["127.0.0.1:2"]
	if dials <= cfg.Conns {
		t.Errorf("%d dials: broken connections were not replaced", dials)
	}
	joined := strings.Join(res.FirstErrors, "\n")
	if !strings.Contains(joined, "40001 leadership changed") || !strings.Contains(joined, "unexpected EOF") {
		t.Errorf("error samples %q", res.FirstErrors)
	}
}

func TestBenchDeadHostIsBounded(t *testing.T) {
	d := newFakeDriver()
	d.deadHosts["127.0.0.1:2"] = true
	cfg := baseBench()
	cfg.Hosts = []string{"127.0.0.1:2"}
	if _, err := runBench(context.Background(), cfg, d, stepClock(time.Millisecond), io.Discard); err == nil || !strings.Contains(err.Error(), "bench setup on 127.0.0.1:2") {
		t.Fatalf("no host answers the setup: err %v", err)
	}
	d = newFakeDriver()
	d.deadHosts["127.0.0.1:2"] = true
	d.setupOK = true // the node dies after the setup
	cfg.Ops = 6
	res, err := runBench(context.Background(), cfg, d, stepClock(time.Millisecond), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// One failed dial per connection before the start, then every failed
	// dial spends one operation of the budget, so the run ends.
	if res.DialErrors != 4+6 || res.Ops() != 0 || d.dials["127.0.0.1:2"] != 4+6 {
		t.Errorf("ops %d dial errors %d dials %v", res.Ops(), res.DialErrors, d.dials)
	}

	// With a live node in the list, the connections of the dead one move
	// there: every operation of the budget succeeds. Setup goes past the
	// dead first host too.
	d = newFakeDriver()
	d.deadHosts["127.0.0.1:2"] = true
	cfg = baseBench()
	cfg.Hosts = []string{"127.0.0.1:2", "127.0.0.1:1"}
	res, err = runBench(context.Background(), cfg, d, stepClock(time.Millisecond), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops() != 1000 || res.DialErrors != 2 || d.dials["127.0.0.1:2"] != 2 {
		t.Errorf("failover: ops %d dial errors %d dials %v", res.Ops(), res.DialErrors, d.dials)
	}
	if strings.Join(d.setups, ",") != "127.0.0.1:2,127.0.0.1:1" {
		t.Errorf("setups %v", d.setups)
	}
	if len(res.FirstErrors) != 1 || strings.Contains(res.FirstErrors[0], "\n") {
		t.Errorf("error samples %q: want one, on one line", res.FirstErrors)
	}
}

func TestBenchDurationAndCancel(t *testing.T) {
	d := newFakeDriver()
	d.opDelay = time.Millisecond
	cfg := baseBench()
	cfg.Ops = 0
	cfg.Duration = 50 * time.Millisecond
	cfg.Progress = 10 * time.Millisecond
	var out strings.Builder
	res, err := runBench(context.Background(), cfg, d, time.Now, &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors() != 0 {
		t.Errorf("%d errors: operations cut by the end of the run were counted (%q)", res.Errors(), res.FirstErrors)
	}
	// With both bounds, the duration ends a run whose budget is too big.
	cfg.Ops = 1 << 40
	res, err = runBench(context.Background(), cfg, d, time.Now, io.Discard)
	if err != nil || res.Errors() != 0 || res.Ops() == 0 {
		t.Fatalf("ops and duration: err %v, ops %d, errors %d", err, res.Ops(), res.Errors())
	}
	// A cancelled context ends an --ops run early too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg.Ops, cfg.Duration = 1_000_000, 0
	if _, err := runBench(ctx, cfg, d, time.Now, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
		var secs, rate float64
		var total, errs int
		if _, err := fmt.Sscanf(line, "%fs %f ops/s total %d errors %d", &secs, &rate, &total, &errs); err != nil {
			t.Errorf("progress line %q: %v", line, err)
		}
	}
}

func TestBenchValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*benchConfig)
		ok   bool
	}{
		{"base", func(*benchConfig) {}, true},
		{"duration only", func(c *benchConfig) { c.Ops, c.Duration = 0, time.Second }, true},
		{"no stop", func(c *benchConfig) { c.Ops, c.Duration = 0, 0 }, false},
		{"no hosts", func(c *benchConfig) { c.Hosts = nil }, false},
		{"bad host", func(c *benchConfig) { c.Hosts = []string{"localhost"} }, false},
		{"zero conns", func(c *benchConfig) { c.Conns = 0 }, false},
		{"bad workload", func(c *benchConfig) { c.Workload = "scan" }, false},
		{"bad consistency", func(c *benchConfig) { c.ReadConsistency = "strong" }, false},
		{"lease", func(c *benchConfig) { c.ReadConsistency = "lease" }, true},
		{"no keys", func(c *benchConfig) { c.Keys = 0 }, false},
		{"huge value", func(c *benchConfig) { c.ValueSize = 1 << 30 }, false},
		{"read percent", func(c *benchConfig) { c.ReadPercent = 101 }, false},
	}
	for _, tt := range tests {
		cfg := baseBench()
		tt.mod(&cfg)
		err := cfg.validate()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrUsage)) {
			t.Errorf("%s: err %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestBenchReport(t *testing.T) {
	r := &benchResult{Elapsed: 2 * time.Second, WriteErrors: 1, DialErrors: 2, FirstErrors: []string{"40001 leadership changed"}}
	for i := 1; i <= 1000; i++ {
		r.Reads.Record(time.Duration(i) * time.Microsecond)
	}
	r.Writes.Record(3 * time.Millisecond)
	var b strings.Builder
	if err := writeBenchReport(&b, r); err != nil {
		t.Fatal(err)
	}
	want := "\nelapsed 2.000s, 1001 ops, 500 ops/s, 3 errors\n\n" +
		"  op   | count | ops/s | errors | p50 ms | p99 ms | p999 ms | max ms | mean ms \n" +
		"-------+-------+-------+--------+--------+--------+---------+--------+---------\n" +
		" read  |  1000 |   500 |      0 |  0.504 |  0.991 |   0.999 |  1.000 |   0.500\n" +
		" write |     1 |     0 |      1 |  3.000 |  3.000 |   3.000 |  3.000 |   3.000\n" +
		"\n" +
		"connection errors: 2\n" +
		"error: 40001 leadership changed\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestRunBenchCommand(t *testing.T) {
	d := newFakeDriver()
	var gotCfg benchConfig
	e := defaultEnv()
	e.now = stepClock(time.Millisecond)
	e.benchDriver = func(cfg *benchConfig) benchDriver { gotCfg = *cfg; return d }
	var out, errOut strings.Builder
	err := e.run(context.Background(), []string{"raftsql", "bench", "--hosts", "127.0.0.1:5433,127.0.0.1:5434", "--conns", "3",
		"--ops", "90", "--workload", "read", "--read-consistency", "stale", "--value-size", "4", "--keys", "9"}, strings.NewReader(""), &out, &errOut)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	if d.reads != 90 || gotCfg.ReadConsistency != "stale" || gotCfg.Conns != 3 || len(gotCfg.Hosts) != 2 {
		t.Errorf("reads %d cfg %+v", d.reads, gotCfg)
	}
	if !strings.Contains(out.String(), "elapsed") || !strings.Contains(out.String(), " read ") {
		t.Errorf("no report:\n%s", out.String())
	}
	err = e.run(context.Background(), []string{"raftsql", "bench", "--workload", "nope"}, strings.NewReader(""), io.Discard, &errOut)
	if !errors.Is(err, ErrUsage) {
		t.Errorf("bad workload: %v", err)
	}
}

func TestPgxDriverConfig(t *testing.T) {
	cfg := baseBench()
	cfg.User, cfg.Database, cfg.ReadConsistency = "bob", "app", "lease"
	cc, err := pgxDriver{cfg: &cfg}.connConfig("127.0.0.1:5434")
	if err != nil {
		t.Fatal(err)
	}
	if cc.Host != "127.0.0.1" || cc.Port != 5434 || cc.User != "bob" || cc.Database != "app" {
		t.Errorf("config %s:%d %s %s", cc.Host, cc.Port, cc.User, cc.Database)
	}
	if got := cc.RuntimeParams["options"]; got != "-c raftsql.read_consistency=lease" {
		t.Errorf("options %q", got)
	}
}

func TestRunBenchJSON(t *testing.T) {
	d := newFakeDriver()
	e := defaultEnv()
	e.now = stepClock(time.Millisecond)
	e.benchDriver = func(*benchConfig) benchDriver { return d }
	var out, errOut strings.Builder
	err := e.run(context.Background(), []string{"raftsql", "bench", "--json", "--hosts", "127.0.0.1:5433", "--conns", "1",
		"--ops", "10", "--workload", "write", "--keys", "5"}, strings.NewReader(""), &out, &errOut)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	var got benchJSON
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, out.String())
	}
	if got.Ops != 10 || got.Write == nil || got.Write.Count != 10 || got.Read != nil || got.Write.P50Ms != 1 || got.Workload != "write" {
		t.Errorf("report %+v write %+v", got, got.Write)
	}
	if !strings.HasPrefix(errOut.String(), "bench: write workload") {
		t.Errorf("progress should go to stderr: %q", errOut.String())
	}
}

func TestBenchOpTimeout(t *testing.T) {
	d := newFakeDriver()
	d.hangKey = 0
	cfg := baseBench()
	cfg.Keys = 4
	cfg.Ops = 200
	cfg.OpTimeout = 5 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := runBench(ctx, cfg, d, stepClock(time.Millisecond), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops()+uint64(res.Errors()) != 200 || res.Errors() == 0 {
		t.Fatalf("ops %d errors %d", res.Ops(), res.Errors())
	}
	if !strings.Contains(strings.Join(res.FirstErrors, "|"), "operation timed out after 5ms") {
		t.Errorf("error samples %q", res.FirstErrors)
	}
	if dials := d.dials["127.0.0.1:1"] + d.dials["127.0.0.1:2"]; dials <= cfg.Conns {
		t.Errorf("%d dials: timed-out connections were not replaced", dials)
	}
}
