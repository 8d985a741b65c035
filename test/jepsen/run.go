package jepsen

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/jackc/pgx/v5"
)

// Workload is one kind of client load.
type Workload interface {
	Name() string
	Setup(ctx context.Context, conn *pgx.Conn) error
	Step(ctx context.Context, w *Worker)
}

// Config describes one run.
type Config struct {
	Cluster  Cluster
	Duration time.Duration // of the workload under faults
	Seed     uint64
	Logger   *slog.Logger

	RegisterWorkers, BankWorkers, SetWorkers int           // defaults 4, 2, 2
	OpTimeout                                time.Duration // default 5s
	Nemesis                                  NemesisConfig
	// NoNemesis runs the workloads without faults.
	NoNemesis bool
	// CustomNemesis, if set, replaces the seeded nemesis: it runs while
	// the workload runs (until ctx ends), must undo every fault it caused
	// before it returns, and returns its schedule, timed on the Probe's
	// clock. The Probe records register reads of its own in the history.
	CustomNemesis func(ctx context.Context, p *Probe) []Fault
	// SkipLeaseCheck leaves out the porcupine check of all lease reads at
	// once, for a caller that checks them itself (per node, when the
	// nodes' lease guarantees differ); see CheckRegister and NodeReads.
	SkipLeaseCheck bool
	// CheckTimeout bounds each porcupine check (default 2m).
	CheckTimeout time.Duration
	// ConvergeTimeout bounds the wait for replicas after healing
	// (default 2m).
	ConvergeTimeout time.Duration
}

// Result is everything a run saw and concluded.
type Result struct {
	Seed uint64
	// Duration is when the workers and the nemesis were done (a heal in
	// progress at the end of the workload finishes first); Workload is
	// when the last worker stopped.
	Duration, Workload time.Duration
	Register           *Register
	Bank               *Bank
	Set                *Set
	Faults             []Fault
	Disabled           map[string]string
	Linear             []LinearCheck
	SetCounts          map[string]SetCounts
	Avail              []Availability
	// Problems lists every failed check; empty means the run passed.
	Problems []string
	// Notes are facts worth printing that are not failures.
	Notes []string
	// Entries is how many log entries the run committed (0 if unknown).
	Entries uint64
}

// WritesAttempted counts the write operations that reached a node.
func (r *Result) WritesAttempted() int {
	n := len(r.Set.Ops())
	for _, op := range r.Register.Ops() {
		if op.Kind != RegRead {
			n++
		}
	}
	for _, op := range r.Bank.Ops() {
		if op.Kind == "transfer" {
			n++
		}
	}
	return n
}

// checkEntries flags a log that grew far faster than the clients wrote: a
// write may be proposed again after a leader change, but a storm of
// re-proposals starves the cluster.
func (r *Result) checkEntries() {
	w := r.WritesAttempted()
	if r.Entries > uint64(4*w+200) {
		r.Problems = append(r.Problems, fmt.Sprintf("the log grew by %d entries for %d attempted writes (%.1f per write): writes are re-proposed in a storm",
			r.Entries, w, float64(r.Entries)/float64(max(w, 1))))
	}
}

// Run sets up the workloads, runs them under the nemesis for cfg.Duration,
// heals, and checks. The error is for a run that could not happen at all
// (no cluster to set up); failed checks are in Result.Problems.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.RegisterWorkers == 0 && cfg.BankWorkers == 0 && cfg.SetWorkers == 0 {
		cfg.RegisterWorkers, cfg.BankWorkers, cfg.SetWorkers = 4, 2, 2
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 2 * time.Minute
	}
	if cfg.ConvergeTimeout == 0 {
		cfg.ConvergeTimeout = 2 * time.Minute
	}
	log := cfg.Logger
	res := &Result{Seed: cfg.Seed, Register: &Register{}, Bank: &Bank{}, Set: &Set{}, SetCounts: map[string]SetCounts{}}
	workloads := []Workload{res.Register, res.Bank, res.Set}
	counts := []int{cfg.RegisterWorkers, cfg.BankWorkers, cfg.SetWorkers}

	if err := setup(ctx, cfg.Cluster, workloads); err != nil {
		return res, err
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.ConvergeTimeout)
	err := cfg.Cluster.WaitConverged(sctx)
	cancel()
	if err != nil {
		return res, fmt.Errorf("jepsen: after setup: %w", err)
	}

	commit0, commitErr := cfg.Cluster.CommitIndex(ctx)
	clock := NewClock()
	rs := &runState{cluster: cfg.Cluster, opTimeout: cfg.OpTimeout}
	runCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	var wg sync.WaitGroup
	id := 0
	var workers sync.WaitGroup
	for i, wl := range workloads {
		for j := 0; j < counts[i]; j++ {
			w := &Worker{
				ID: id, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(1000+id))), clock: clock, run: rs,
				nodeIdx: id, client: rs.clients.next(),
			}
			id++
			wg.Add(1)
			workers.Add(1)
			go func(wl Workload) {
				defer wg.Done()
				defer workers.Done()
				defer w.close()
				for runCtx.Err() == nil {
					wl.Step(runCtx, w)
				}
			}(wl)
		}
	}
	var nem *Nemesis
	var custom []Fault
	if cfg.CustomNemesis != nil {
		p := &Probe{Cluster: cfg.Cluster, Clock: clock, Log: log, reg: res.Register, rs: rs}
		wg.Add(1)
		go func() {
			defer wg.Done()
			custom = cfg.CustomNemesis(runCtx, p)
		}()
	} else if !cfg.NoNemesis {
		nem = NewNemesis(cfg.Cluster, cfg.Nemesis, cfg.Seed, clock, log)
		nem.probe = res.Register.leaseProbe(rs, clock, log)
		wg.Add(1)
		go func() {
			defer wg.Done()
			nem.Run(runCtx)
		}()
	}
	workers.Wait()
	res.Workload = clock.Now()
	wg.Wait()
	res.Duration = clock.Now()
	if nem != nil {
		res.Faults = nem.Faults()
		res.Disabled = nem.Disabled()
	}
	if cfg.CustomNemesis != nil {
		res.Faults = custom
	}
	log.Info("jepsen: workload done; healing", "elapsed", res.Duration)

	hctx, cancel := context.WithTimeout(ctx, cfg.ConvergeTimeout)
	defer cancel()
	if err := cfg.Cluster.HealAll(hctx); err != nil {
		res.Problems = append(res.Problems, fmt.Sprintf("cluster did not heal: %v", err))
	}
	if err := cfg.Cluster.WaitConverged(hctx); err != nil {
		res.Problems = append(res.Problems, fmt.Sprintf("replicas did not converge once quiet: %v", err))
	}
	final, err := readFinal(hctx, cfg.Cluster)
	if err != nil {
		res.Problems = append(res.Problems, fmt.Sprintf("final read: %v", err))
	}
	levels := [][]string{{"linearizable"}, {"lease"}}
	if cfg.SkipLeaseCheck {
		levels = levels[:1]
	}
	check(res, final, levels, cfg.CheckTimeout, log)
	if commit1, err := cfg.Cluster.CommitIndex(hctx); err == nil && commitErr == nil {
		res.Entries = commit1 - commit0
		res.checkEntries()
	}
	// Workers start no operation after cfg.Duration: a gap is measured up
	// to then at the latest.
	res.Avail = ComputeAvailability(res.Faults, rs.acks.sorted(), min(cfg.Duration, res.Duration))
	return res, nil
}

// setup runs each workload's Setup through any node that accepts it.
func setup(ctx context.Context, cl Cluster, wls []Workload) error {
	var last error
	for attempt := 0; attempt < 30; attempt++ {
		id := cl.IDs()[attempt%len(cl.IDs())]
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := pgx.Connect(cctx, cl.DSN(id, ""))
		if err == nil {
			for _, wl := range wls {
				if err = wl.Setup(cctx, conn); err != nil {
					break
				}
			}
			conn.Close(cctx)
			if err == nil {
				cancel()
				return nil
			}
			cancel()
			// A partial setup cannot be retried (tables exist).
			return fmt.Errorf("jepsen: setup via %s: %w", id, err)
		}
		cancel()
		last = err
		if sleep(ctx, 200*time.Millisecond) != nil {
			break
		}
	}
	return fmt.Errorf("jepsen: setup: no node accepted a connection: %w", last)
}

// finalState is what each node holds at the end.
type finalState struct {
	reg  map[string][][2]int64
	acct map[string][][2]int64
	set  map[string][]int64
}

// readFinal reads every table from every node at the stale level (its
// local state; the replicas have converged).
func readFinal(ctx context.Context, cl Cluster) (*finalState, error) {
	fs := &finalState{reg: map[string][][2]int64{}, acct: map[string][][2]int64{}, set: map[string][]int64{}}
	for _, id := range cl.IDs() {
		conn, err := pgx.Connect(ctx, cl.DSN(id, "stale"))
		if err != nil {
			return fs, fmt.Errorf("connect %s: %w", id, err)
		}
		pairs := func(q string) ([][2]int64, error) {
			rows, err := conn.Query(ctx, q)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]int64, error) {
				var p [2]int64
				err := r.Scan(&p[0], &p[1])
				return p, err
			})
		}
		if fs.reg[id], err = pairs("SELECT k, v FROM reg ORDER BY k"); err != nil {
			conn.Close(ctx)
			return fs, fmt.Errorf("read reg on %s: %w", id, err)
		}
		if fs.acct[id], err = pairs("SELECT id, bal FROM acct ORDER BY id"); err != nil {
			conn.Close(ctx)
			return fs, fmt.Errorf("read acct on %s: %w", id, err)
		}
		rows, err := conn.Query(ctx, "SELECT v FROM set_items ORDER BY v")
		if err == nil {
			fs.set[id], err = pgx.CollectRows(rows, pgx.RowTo[int64])
		}
		conn.Close(ctx)
		if err != nil {
			return fs, fmt.Errorf("read set_items on %s: %w", id, err)
		}
	}
	return fs, nil
}

func check(res *Result, final *finalState, readLevels [][]string, timeout time.Duration, log *slog.Logger) {
	add := func(format string, args ...any) { res.Problems = append(res.Problems, fmt.Sprintf(format, args...)) }

	// Register: porcupine per read level.
	regOps := res.Register.Ops()
	for _, levels := range readLevels {
		start := time.Now()
		lc := CheckRegister(regOps, timeout, levels...)
		res.Linear = append(res.Linear, lc)
		log.Info("jepsen: porcupine", "reads", levels, "ops", lc.Ops, "result", lc.Result, "took", time.Since(start))
		if err := lc.Err(); err != nil {
			if lc.Result == porcupine.Unknown {
				res.Notes = append(res.Notes, err.Error())
			} else {
				add("register: %v", err)
			}
		}
	}
	for _, op := range regOps {
		if op.Kind == RegRead && op.Status == OK && op.Value < 0 {
			add("register: read of key %d on %s found no row", op.Key, op.Node)
		}
	}

	// Bank: every read, then the final state of every node.
	bankOps := res.Bank.Ops()
	probs := res.Bank.CheckReads(bankOps)
	if len(probs) > 20 {
		probs = append(probs[:20], fmt.Sprintf("… and %d more bad bank reads", len(probs)-20))
	}
	res.Problems = append(res.Problems, probs...)

	if final == nil {
		return
	}
	ids := sortedKeys(final.acct)
	for _, id := range ids {
		var bals []int64
		for _, p := range final.acct[id] {
			bals = append(bals, p[1])
		}
		if p := res.Bank.checkBalances(bals); p != "" {
			add("bank: final state on %s: %s", id, p)
		}
	}
	// Set: every node against the history.
	setOps := res.Set.Ops()
	for _, id := range sortedKeys(final.set) {
		c, probs := res.Set.CheckFinal(id, setOps, final.set[id])
		res.SetCounts[id] = c
		res.Problems = append(res.Problems, probs...)
	}
	// Replicas identical.
	same := func(name string, eq func(a, b string) bool) {
		for _, id := range ids[1:] {
			if !eq(ids[0], id) {
				add("replicas differ: table %s on %s and %s", name, ids[0], id)
			}
		}
	}
	if len(ids) > 1 {
		same("reg", func(a, b string) bool { return slices.Equal(final.reg[a], final.reg[b]) })
		same("acct", func(a, b string) bool { return slices.Equal(final.acct[a], final.acct[b]) })
		same("set_items", func(a, b string) bool { return slices.Equal(final.set[a], final.set[b]) })
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Summary is a human-readable account of the run.
func (r *Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, workload %v, faults healed at %v\n", r.Seed, r.Workload.Round(time.Millisecond), r.Duration.Round(time.Millisecond))
	reg := r.Register.Ops()
	byStatus := func(get func(i int) (string, Status), n int) string {
		m := map[string]map[Status]int{}
		for i := 0; i < n; i++ {
			k, s := get(i)
			if m[k] == nil {
				m[k] = map[Status]int{}
			}
			m[k][s]++
		}
		var parts []string
		for _, k := range sortedKeys(m) {
			parts = append(parts, fmt.Sprintf("%s ok=%d fail=%d unknown=%d", k, m[k][OK], m[k][Fail], m[k][Unknown]))
		}
		return strings.Join(parts, "; ")
	}
	fmt.Fprintf(&b, "register: %d ops: %s\n", len(reg), byStatus(func(i int) (string, Status) {
		k := reg[i].Kind
		if k == RegRead {
			k += "[" + reg[i].Level + "]"
		}
		return k, reg[i].Status
	}, len(reg)))
	bank := r.Bank.Ops()
	fmt.Fprintf(&b, "bank: %d ops: %s\n", len(bank), byStatus(func(i int) (string, Status) {
		k := bank[i].Kind
		if k == "read" {
			k += "[" + bank[i].Level + "]"
		} else {
			k += "[" + bank[i].Variant + "]"
		}
		return k, bank[i].Status
	}, len(bank)))
	set := r.Set.Ops()
	fmt.Fprintf(&b, "set: %d inserts: %s\n", len(set), byStatus(func(i int) (string, Status) { return "insert", set[i].Status }, len(set)))
	for _, id := range sortedKeys(r.SetCounts) {
		c := r.SetCounts[id]
		fmt.Fprintf(&b, "  set on %s: acked %d found %d; unknown %d found %d; failed %d\n", id, c.Acked, c.AckedFound, c.Unknown, c.UnknownFound, c.Failed)
	}
	if r.Entries > 0 {
		w := r.WritesAttempted()
		fmt.Fprintf(&b, "log: %d entries committed for %d attempted writes (%.2f per write)\n", r.Entries, w, float64(r.Entries)/float64(max(w, 1)))
	}
	for _, lc := range r.Linear {
		fmt.Fprintf(&b, "porcupine (writes + %s reads): %d ops: %s\n", strings.Join(lc.Levels, ","), lc.Ops, lc.Result)
	}
	fmt.Fprintf(&b, "faults: %d\n", len(r.Faults))
	byKind := map[string]int{}
	for _, f := range r.Faults {
		byKind[f.Kind]++
	}
	var kinds []string
	for _, k := range sortedKeys(byKind) {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, byKind[k]))
	}
	fmt.Fprintf(&b, "faults by kind: %s\n", strings.Join(kinds, " "))
	for _, f := range r.Faults {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	for k, why := range r.Disabled {
		fmt.Fprintf(&b, "nemesis %s switched off: %s\n", k, why)
	}
	for _, a := range r.Avail {
		fmt.Fprintf(&b, "availability %-18s %d faults: longest gap without an acknowledged write %v (from %.3fs), mean of per-fault worst %v\n",
			a.Kind, a.Faults, a.Worst.Round(time.Millisecond), a.At.Seconds(), a.Mean.Round(time.Millisecond))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if len(r.Problems) == 0 {
		b.WriteString("verdict: PASS\n")
	} else {
		fmt.Fprintf(&b, "verdict: FAIL (%d problems)\n", len(r.Problems))
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	return b.String()
}

// WriteArtifacts writes the seed, the schedule, the histories and, for a
// register check that failed, porcupine's visualization into dir.
func (r *Result) WriteArtifacts(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, f func(*os.File) error) error {
		fh, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := f(fh); err != nil {
			fh.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		return fh.Close()
	}
	jsonl := func(name string, n int, at func(i int) any) error {
		return write(name, func(fh *os.File) error {
			enc := json.NewEncoder(fh)
			for i := 0; i < n; i++ {
				if err := enc.Encode(at(i)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := write("summary.txt", func(fh *os.File) error {
		_, err := fmt.Fprintf(fh, "reproduce: SEED=%d (go test ./test/ -run TestJepsen -args -seed=%d -duration=%v)\n%s",
			r.Seed, r.Seed, r.Duration.Round(time.Second), r.Summary())
		return err
	}); err != nil {
		return err
	}
	if err := jsonl("nemesis.jsonl", len(r.Faults), func(i int) any { return r.Faults[i] }); err != nil {
		return err
	}
	reg, bank, set := r.Register.Ops(), r.Bank.Ops(), r.Set.Ops()
	if err := jsonl("history-register.jsonl", len(reg), func(i int) any { return reg[i] }); err != nil {
		return err
	}
	if err := jsonl("history-bank.jsonl", len(bank), func(i int) any { return bank[i] }); err != nil {
		return err
	}
	if err := jsonl("history-set.jsonl", len(set), func(i int) any { return set[i] }); err != nil {
		return err
	}
	for _, lc := range r.Linear {
		if lc.Result == porcupine.Ok {
			continue
		}
		name := "register-" + strings.Join(lc.Levels, "-") + ".html"
		if err := write(name, func(fh *os.File) error { return lc.Visualize(fh, r.Faults) }); err != nil {
			return err
		}
	}
	return nil
}
