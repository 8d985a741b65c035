package test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftsql/raftsql/test/cluster"
	"github.com/raftsql/raftsql/test/faultproxy"
	"github.com/raftsql/raftsql/test/jepsen"
)

var (
	flagSkewDuration = flag.Duration("skew.duration", 0, "how long TestClockSkew runs its workload under clock-skew faults (0: 30s)")
	flagSkewRates    = flag.String("skew.rates", "0.95,1.5,0.5", "TestClockSkew: lease clock rate of each node n1,n2,... (1: real time; one node per rate)")
	flagSkewWant     = flag.Bool("skew.want-stale", false, "TestClockSkew: fail unless porcupine flags a stale lease read on every node whose clock is slower than the drift bound allows (shows the check can catch one)")
)

// clockRateEnv is raftsqld's test-only hook: the rate of its lease clock.
const clockRateEnv = "RAFTSQL_TEST_CLOCK_RATE"

// Kinds of the clock-skew nemesis. The target is always the leader, made
// so by a leadership transfer; it is cut off both ways (blackhole) until
// the others have elected a new leader and committed writes, while probes
// read through it.
const (
	// skewIsolate: the target keeps running while cut off; it steps down
	// on its own once check-quorum notices (one to two election timeouts).
	skewIsolate = "skew-isolate"
	// skewPause: the target is also paused (SIGSTOP), so it cannot step
	// down, and resumed (still cut off) right after the new leader took
	// writes: the earliest moment a lease that outlived the followers'
	// vote refusal can serve a stale read.
	skewPause = "skew-pause"
)

// leaseSafeRate is the slowest leader clock rate for which the lease stays
// inside the followers' promise, with raftsqld's derivation (see
// consensus/node: LeaseValid, LeaseDriftBound): the lease is measured on
// the leader's clock from the start of a tick as
//
//	lease = ElectionTimeout - tick - LeaseDriftBound   (tick = heartbeat/2, bound = ElectionTimeout/10)
//
// and a follower that acknowledged that round refuses votes for at least
// (electionTick - 1) ticks of real time (electionTick = ⌈ElectionTimeout /
// tick⌉). A leader clock at rate r makes the lease last lease/r of real
// time, so it is safe while lease/r ≤ (electionTick-1)·tick. Any rate above
// 1 (a fast clock) only shortens the lease.
func leaseSafeRate(election, heartbeat time.Duration) float64 {
	tick := heartbeat / 2
	electionTick := (election + tick - 1) / tick
	lease := election - tick - election/10
	return float64(lease) / float64((electionTick-1)*tick)
}

// TestClockSkew restarts every node with its own lease clock rate
// (RAFTSQL_TEST_CLOCK_RATE; default n1 0.95 and n2 1.5, inside the drift
// bound, n3 0.5, far outside it), then runs the register workload with
// lease, linearizable and stale reads while a nemesis makes each node in
// turn the leader and cuts it off (also paused, in turn), reading through
// it all along. It checks with porcupine:
//   - writes + every linearizable read: must be linearizable (always);
//   - writes + the lease reads served by each node: must be linearizable
//     for a node whose clock rate is inside the bound (≥ leaseSafeRate, or
//     faster than real time). For a node whose clock is slower than that,
//     stale lease reads are outside the guarantee: the verdict is reported
//     (a demonstration when porcupine flags one), not asserted, unless
//     -skew.want-stale.
//
// Longer runs and other rates:
//
//	go test ./test/ -run TestClockSkew -v -timeout 30m -args -skew.duration=5m -skew.rates=0.9,2,0.3 -seed=42
func TestClockSkew(t *testing.T) {
	rates := parseRates(t, *flagSkewRates)
	dur := *flagSkewDuration
	if dur == 0 {
		dur = 30 * time.Second
	}
	sd := seed(t)
	opts := cluster.Options{Nodes: len(rates), Seed: sd, ElectionTimeout: 1500 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond}
	c := startCluster(t, opts)
	// The cluster's timings decide the bound.
	safe := leaseSafeRate(opts.ElectionTimeout, opts.HeartbeatInterval)
	t.Logf("TestClockSkew: seed %d, duration %v, lease clock rates %v; lease reads are guaranteed for a leader clock rate ≥ %.3f", sd, dur, rates, safe)

	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()
	restartWithClockRates(ctx, t, c, rates)

	dir := filepath.Dir(c.Nodes()[0].Dir)
	logf, err := os.Create(filepath.Join(dir, "clockskew.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, nil))
	nem := &skewNemesis{c: c, rates: rates, log: log, hits: map[string]int{}}
	res, err := jepsen.Run(ctx, jepsen.Config{
		Cluster:         jepsenCluster{c},
		Duration:        dur,
		Seed:            sd,
		Logger:          log,
		RegisterWorkers: 4,
		// A worker stuck on the cut-off node gives up sooner and moves on,
		// so that the new leader soon takes writes.
		OpTimeout:      2 * time.Second,
		SkipLeaseCheck: true,
		CustomNemesis:  nem.run,
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, tails(dir, len(rates)))
	}

	// Porcupine per node: every write, and the lease reads that node served.
	ops := res.Register.Ops()
	for _, id := range c.IDs() {
		rate := rates[id]
		lc := jepsen.CheckRegister(jepsen.NodeReads(ops, id), 2*time.Minute, "lease")
		lc.Levels = []string{"lease@" + id}
		res.Linear = append(res.Linear, lc)
		within := rate >= safe
		answered, cutOff := leaseReads(ops, id)
		verdict := fmt.Sprintf("%s (lease clock ×%g, %s the bound ≥ %.3f): %d lease reads answered (%d by the probes around its faults), %d faults as leader: porcupine %s",
			id, rate, map[bool]string{true: "inside", false: "outside"}[within], safe, answered, cutOff, nem.hits[id], lc.Result)
		t.Log(verdict)
		switch {
		case lc.Result == porcupine.Unknown:
			res.Notes = append(res.Notes, verdict+" (check timed out)")
		case within && lc.Result != porcupine.Ok:
			res.Problems = append(res.Problems, "stale lease read inside the drift bound: "+verdict)
		case !within && lc.Result == porcupine.Illegal:
			res.Notes = append(res.Notes, "stale lease reads demonstrated outside the drift bound (not a guarantee): "+verdict)
		case !within:
			res.Notes = append(res.Notes, "no stale lease read observed outside the drift bound this run: "+verdict)
			if *flagSkewWant {
				res.Problems = append(res.Problems, "-skew.want-stale: porcupine flagged no lease read of "+verdict)
			}
		}
		if nem.hits[id] == 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("the nemesis never cut off %s as the leader (lengthen -skew.duration)", id))
		}
	}
	if werr := res.WriteArtifacts(dir); werr != nil {
		t.Errorf("writing artifacts: %v", werr)
	}
	t.Logf("TestClockSkew summary:\n%s", res.Summary())
	for _, p := range res.Problems {
		t.Errorf("%s", p)
	}
	if len(res.Register.Ops()) == 0 {
		t.Errorf("no operations ran")
	}
	compareBackups(ctx, t, c)
}

// parseRates maps n1, n2, ... to the comma-separated rates.
func parseRates(t *testing.T, s string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for i, f := range strings.Split(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 {
			t.Fatalf("-skew.rates %q: %q is not a positive rate", s, f)
		}
		out[fmt.Sprintf("n%d", i+1)] = r
	}
	if len(out) < 3 {
		t.Fatalf("-skew.rates %q: need at least 3 nodes", s)
	}
	return out
}

// leaseReads counts the lease reads node id answered, and how many of
// them the nemesis's probes made.
func leaseReads(ops []jepsen.RegOp, id string) (answered, probes int) {
	for _, op := range ops {
		if op.Kind == jepsen.RegRead && op.Level == "lease" && op.Node == id && op.Status == jepsen.OK {
			answered++
			if op.Worker < 0 {
				probes++
			}
		}
	}
	return answered, probes
}

// restartWithClockRates restarts every node (SIGTERM, start) with its lease
// clock rate, the leader last, and checks from each node's log that the
// hook took effect.
func restartWithClockRates(ctx context.Context, t *testing.T, c *cluster.Cluster, rates map[string]float64) {
	t.Helper()
	leader, followers := leaderAndFollowers(ctx, t, c)
	for _, n := range append(followers, leader) {
		rate := rates[n.ID]
		n.SetEnv(fmt.Sprintf("%s=%g", clockRateEnv, rate))
		if err := n.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("after restarting %s with lease clock ×%g: %v\n%s", n.ID, rate, err, tails(filepath.Dir(n.Dir), len(rates)))
		}
		b, err := os.ReadFile(n.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		run := string(b[strings.LastIndex(string(b), "=== harness: start #"):])
		if !strings.Contains(run, "test-only hook") || !strings.Contains(run, fmt.Sprintf("rate=%g", rate)) {
			t.Fatalf("%s did not report the lease clock hook (%s=%g) at start; its log:\n%s", n.ID, clockRateEnv, rate, run)
		}
	}
}

// skewNemesis makes each node in turn the leader, then cuts it off (and
// pauses it, every other time) while probes read through it.
type skewNemesis struct {
	c     *cluster.Cluster
	rates map[string]float64
	log   *slog.Logger
	hits  map[string]int // faults per target; read once run returned
}

func (s *skewNemesis) run(ctx context.Context, p *jepsen.Probe) []jepsen.Fault {
	var faults []jepsen.Fault
	ids := s.c.IDs()
	// The slowest clock first: a short run faults it surely.
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if s.rates[ids[j]] < s.rates[ids[i]] {
				ids[i], ids[j] = ids[j], ids[i]
			}
		}
	}
	kinds := []string{skewPause, skewIsolate}
	turn, misses := 0, 0
	for sleepCtx(ctx, time.Second) == nil {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 5*time.Second {
			break // too little time left for a whole fault
		}
		target := ids[turn%len(ids)]
		// Kinds alternate along a round and shift by one each round, so
		// every node meets both kinds over two rounds.
		kind := kinds[(turn%len(ids)+turn/len(ids))%len(kinds)]
		if err := s.makeLeader(ctx, target); err != nil {
			s.log.Warn("skew nemesis: could not make the target leader", "target", target, "err", err)
			if misses++; misses < 3 {
				continue
			}
		} else {
			faults = append(faults, s.fault(ctx, p, kind, target))
			s.hits[target]++
		}
		misses = 0
		turn++
	}
	return faults
}

// makeLeader transfers leadership to id and waits until it is agreed.
func (s *skewNemesis) makeLeader(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var last error
	for {
		l, _, err := s.c.Leader(ctx)
		if err == nil && l.ID == id {
			return nil
		}
		if err == nil {
			err = s.c.TransferLeadership(ctx, id)
		}
		if err != nil {
			last = err
		}
		if sleepCtx(ctx, 200*time.Millisecond) != nil {
			return fmt.Errorf("%s is not the leader: %w (last: %v)", id, ctx.Err(), last)
		}
	}
}

// fault cuts the leader target off, waits until it is replaced, probes it
// and heals. It returns the fault as recorded.
func (s *skewNemesis) fault(ctx context.Context, p *jepsen.Probe, kind, target string) jepsen.Fault {
	// Let the target hold a lease and serve lease reads first.
	sleepCtx(ctx, 500*time.Millisecond)
	f := jepsen.Fault{Kind: kind, Targets: []string{target}, Leader: target, Start: p.Clock.Now()}
	var notes []string
	var conns []*jepsen.ProbeConn
	for _, level := range []string{"lease", "linearizable"} {
		pc, err := p.Connect(ctx, target, level)
		if err != nil {
			notes = append(notes, err.Error())
			continue
		}
		defer pc.Close()
		conns = append(conns, pc)
	}
	var others []string
	for _, id := range s.c.IDs() {
		if id != target {
			others = append(others, id)
		}
	}
	n := s.c.Node(target)
	s.c.Net.Partition(faultproxy.Blackhole, []string{target}, others)
	paused := false
	stop := make(chan struct{})
	var probed map[string]int
	var wg sync.WaitGroup
	startProbes := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probed = probeUntil(ctx, conns, stop)
		}()
	}
	if kind == skewPause {
		if err := n.Pause(); err != nil {
			notes = append(notes, "pause: "+err.Error())
		} else {
			paused = true
		}
	}
	if !paused {
		startProbes()
	}
	newLeader, after := s.waitReplaced(ctx, target, 6*time.Second)
	if paused {
		if err := n.Resume(); err != nil {
			notes = append(notes, "resume: "+err.Error())
		}
		startProbes()
	}
	// Past the end of any lease the target may believe in (2.5 s from the
	// last acknowledged round at ×0.5).
	sleepCtx(ctx, 1500*time.Millisecond)
	close(stop)
	wg.Wait()
	s.c.Net.Heal()
	if paused && n.Paused() {
		n.Resume()
	}
	// Reads through the old leader once it is back: they must be fresh.
	stop = make(chan struct{})
	var healed map[string]int
	wg.Add(1)
	go func() {
		defer wg.Done()
		healed = probeUntil(context.WithoutCancel(ctx), conns, stop)
	}()
	sleepCtx(context.WithoutCancel(ctx), time.Second)
	close(stop)
	wg.Wait()
	f.End = p.Clock.Now()
	repl := "not replaced within 6s"
	switch {
	case ctx.Err() != nil && newLeader == "":
		repl = "the run ended before it was replaced"
	case newLeader != "":
		repl = fmt.Sprintf("replaced by %s after %v", newLeader, after.Round(time.Millisecond))
	}
	f.Note = fmt.Sprintf("lease clock ×%g; %s; probe reads answered while cut off: lease %d, linearizable %d; after healing: lease %d, linearizable %d",
		s.rates[target], repl, probed["lease"], probed["linearizable"], healed["lease"], healed["linearizable"])
	if len(notes) > 0 {
		f.Note += "; " + strings.Join(notes, "; ")
	}
	s.log.Info("skew nemesis", "fault", f.String())
	return f
}

// waitReplaced waits (up to limit) until the nodes other than target agree
// on another leader and it has committed a few entries (client writes);
// it returns that leader ("" if none) and how long it took.
func (s *skewNemesis) waitReplaced(ctx context.Context, target string, limit time.Duration) (string, time.Duration) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var base uint64
	for {
		l, st, err := s.c.Leader(ctx)
		if err == nil && l.ID != target {
			if base == 0 {
				base = st.CommitIndex
			}
			if st.CommitIndex >= base+3 {
				return l.ID, time.Since(start)
			}
		}
		if sleepCtx(ctx, 50*time.Millisecond) != nil {
			return "", time.Since(start)
		}
	}
}

// probeUntil reads the keys in use through each connection, round after
// round, until stop is closed; it returns the reads answered per level.
func probeUntil(ctx context.Context, conns []*jepsen.ProbeConn, stop <-chan struct{}) map[string]int {
	var mu sync.Mutex
	out := map[string]int{}
	var wg sync.WaitGroup
	for _, pc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				n, err := pc.ReadKeys(ctx, time.Second)
				mu.Lock()
				out[pc.Level] += n
				mu.Unlock()
				if err != nil {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
