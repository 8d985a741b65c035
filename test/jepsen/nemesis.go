package jepsen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Cluster is what a run needs from the cluster under test. Methods are
// called from the nemesis goroutine and, for IDs and DSN, from workers.
type Cluster interface {
	IDs() []string
	// DSN is a connection string for node id with a startup read
	// consistency ("" for the server's default).
	DSN(id, level string) string
	// Leader returns the id of the leader agreed by a majority, now.
	Leader(ctx context.Context) (string, error)
	Kill(id string) error                         // SIGKILL, wait for exit
	Restart(ctx context.Context, id string) error // start a killed node again
	Pause(id string) error                        // SIGSTOP
	Resume(id string) error                       // SIGCONT
	// Partition cuts every link between groups both ways.
	Partition(blackhole bool, groups ...[]string)
	// Cut cuts the link from→to one way.
	Cut(from, to string, blackhole bool)
	// Delay slows the link from→to by d plus up to jitter.
	Delay(from, to string, d, jitter time.Duration)
	Heal()
	// TransferLeadership asks the leader to hand over to id; an error
	// wrapping ErrUnsupported means the cluster cannot.
	TransferLeadership(ctx context.Context, id string) error
	// HealAll heals the network, resumes paused nodes and restarts
	// killed ones.
	HealAll(ctx context.Context) error
	// WaitConverged waits until every node applied what the leader
	// committed.
	WaitConverged(ctx context.Context) error
	// CommitIndex is the agreed leader's commit index.
	CommitIndex(ctx context.Context) (uint64, error)
}

// Nemesis kinds.
const (
	KillAny        = "kill"              // SIGKILL a random node, restart it after the hold
	KillLeader     = "kill-leader"       // SIGKILL the leader
	PauseAny       = "pause"             // SIGSTOP a random node
	PauseLeader    = "pause-leader"      // SIGSTOP the leader
	IsolateLeader  = "partition-leader"  // cut the leader from everyone, both ways
	SplitRandom    = "partition-halves"  // a random minority from the majority
	LeaderDeaf     = "oneway-leader-in"  // nobody reaches the leader; it still sends
	LeaderMute     = "oneway-leader-out" // the leader reaches nobody; it still hears
	TransferLeader = "transfer"          // POST /transfer-leadership to a random follower
	SlowNetwork    = "delay"             // every link delayed by 50–250 ms with jitter
)

// AllNemeses is every kind, the default mix.
var AllNemeses = []string{KillAny, KillLeader, PauseAny, PauseLeader, IsolateLeader, SplitRandom, LeaderDeaf, LeaderMute, TransferLeader, SlowNetwork,
	MessageFaults, MemberRemove, MemberRemoveLeader, MemberLearner, MemberVoter}

// leaderKinds are the faults aimed at the leader, for the availability
// figures.
var leaderKinds = []string{KillLeader, PauseLeader, IsolateLeader, LeaderDeaf, LeaderMute, TransferLeader, MemberRemoveLeader}

// clusterKinds are faults that touch the whole cluster (or may take the
// leader away) whatever their targets: their availability is measured
// too.
var clusterKinds = []string{SplitRandom, SlowNetwork, MessageFaults, MemberRemove, MemberLearner, MemberVoter}

// errSwitchedOff: the kind is not supported by the cluster; nothing was
// injected.
var errSwitchedOff = errors.New("jepsen: nemesis switched off")

// Fault is one entry of the nemesis schedule.
type Fault struct {
	Kind    string        `json:"kind"`
	Targets []string      `json:"targets"`
	Start   time.Duration `json:"start"`
	End     time.Duration `json:"end"`
	// Leader is the leader when the fault started ("" if none known).
	Leader string `json:"leader,omitempty"`
	Note   string `json:"note,omitempty"`
}

func (f Fault) String() string {
	s := fmt.Sprintf("%8.3fs–%8.3fs %-18s %s", f.Start.Seconds(), f.End.Seconds(), f.Kind, strings.Join(f.Targets, ","))
	if f.Leader != "" {
		s += " (leader " + f.Leader + ")"
	}
	if f.Note != "" {
		s += " — " + f.Note
	}
	return s
}

// HitsLeader reports whether the fault took the leader away (killed,
// paused, isolated or transferred it).
func (f Fault) HitsLeader() bool {
	if slices.Contains(leaderKinds, f.Kind) {
		return true
	}
	return f.Leader != "" && slices.Contains(f.Targets, f.Leader)
}

// Measured reports whether the availability around the fault is
// measured: it took the leader away, or it touches the whole cluster.
func (f Fault) Measured() bool {
	return f.HitsLeader() || slices.Contains(clusterKinds, f.Kind)
}

// NemesisConfig sets the mix and rhythm of faults.
type NemesisConfig struct {
	Kinds []string // default AllNemeses
	// First are injected first, in this order, before the seeded mix
	// (a short run that must include some kinds).
	First []string
	Quiet [2]time.Duration // healthy time between faults, min and max (default 2s–4s)
	Hold  [2]time.Duration // how long a fault lasts, min and max (default 3s–6s)
}

func (c *NemesisConfig) defaults() {
	if len(c.Kinds) == 0 {
		c.Kinds = AllNemeses
	}
	if c.Quiet[1] == 0 {
		c.Quiet = [2]time.Duration{2 * time.Second, 4 * time.Second}
	}
	if c.Hold[1] == 0 {
		c.Hold = [2]time.Duration{3 * time.Second, 6 * time.Second}
	}
}

// Nemesis injects faults on a seeded schedule.
type Nemesis struct {
	cfg   NemesisConfig
	cl    Cluster
	rng   *rand.Rand
	clock *Clock
	log   *slog.Logger

	// probe, if set, is prepared before a pause and fired right after
	// the resume (see Register.leaseProbe).
	probe func(ctx context.Context, id string) (fire func() string)

	mu     sync.Mutex
	faults []Fault
	off    map[string]string // kinds switched off, with why

	// pending is a heal that failed (a membership change not undone):
	// no new fault starts until it succeeds.
	pending func(context.Context) error
}

// NewNemesis returns a nemesis over cl whose choices come from seed.
func NewNemesis(cl Cluster, cfg NemesisConfig, seed uint64, clock *Clock, log *slog.Logger) *Nemesis {
	cfg.defaults()
	return &Nemesis{cfg: cfg, cl: cl, rng: rand.New(rand.NewPCG(seed, 0x6e656d65736973)), clock: clock, log: log, off: map[string]string{}}
}

func (n *Nemesis) between(r [2]time.Duration) time.Duration {
	if r[1] <= r[0] {
		return r[0]
	}
	return r[0] + time.Duration(n.rng.Int64N(int64(r[1]-r[0])))
}

// Run injects faults until ctx ends, then heals everything it did. It
// returns the schedule.
func (n *Nemesis) Run(ctx context.Context) []Fault {
	defer n.repair(context.Background())
	first := slices.Clone(n.cfg.First)
	for {
		if sleep(ctx, n.between(n.cfg.Quiet)) != nil {
			return n.Faults()
		}
		if !n.repair(ctx) {
			continue
		}
		kinds := n.enabled()
		if len(kinds) == 0 {
			<-ctx.Done()
			return n.Faults()
		}
		kind := kinds[n.rng.IntN(len(kinds))]
		if len(first) > 0 {
			kind, first = first[0], first[1:]
		}
		hold := n.between(n.cfg.Hold)
		n.inject(ctx, kind, hold)
	}
}

// repair retries a heal that failed; it reports whether the cluster is
// whole again. Every attempt is recorded in the schedule.
func (n *Nemesis) repair(ctx context.Context) bool {
	if n.pending == nil {
		return true
	}
	f := Fault{Kind: "repair", Start: n.clock.Now()}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), membershipTimeout)
	err := n.pending(hctx)
	cancel()
	if err == nil {
		n.pending = nil
		f.Note = "the failed heal succeeded"
	} else {
		f.Note = "heal error: " + err.Error()
	}
	f.End = n.clock.Now()
	n.record(f)
	return err == nil
}

func (n *Nemesis) switchOff(kind, why string) {
	n.mu.Lock()
	n.off[kind] = why
	n.mu.Unlock()
	n.log.Warn("nemesis: switched off", "kind", kind, "why", why)
}

func (n *Nemesis) enabled() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, k := range n.cfg.Kinds {
		if _, off := n.off[k]; !off {
			out = append(out, k)
		}
	}
	return out
}

// Disabled lists the kinds switched off during the run, with the reason.
func (n *Nemesis) Disabled() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]string{}
	for k, v := range n.off {
		out[k] = v
	}
	return out
}

// Faults returns the schedule so far.
func (n *Nemesis) Faults() []Fault {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Fault(nil), n.faults...)
}

func (n *Nemesis) record(f Fault) {
	n.mu.Lock()
	n.faults = append(n.faults, f)
	n.mu.Unlock()
	n.log.Info("nemesis", "fault", f.String())
}

// inject runs one fault: start it, hold it (ending early if ctx ends),
// heal it. Healing uses a context of its own so it always happens.
func (n *Nemesis) inject(ctx context.Context, kind string, hold time.Duration) {
	ids := n.cl.IDs()
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	leader, lerr := n.cl.Leader(lctx)
	cancel()
	f := Fault{Kind: kind, Leader: leader, Start: n.clock.Now()}
	if lerr != nil && slices.Contains(leaderKinds, kind) {
		// No agreed leader (still recovering): aim at a random node.
		leader = ""
	}
	pick := func() string { return ids[n.rng.IntN(len(ids))] }
	target := leader
	if target == "" {
		target = pick()
	}
	others := func(x string) []string {
		var o []string
		for _, id := range ids {
			if id != x {
				o = append(o, id)
			}
		}
		return o
	}
	blackhole := n.rng.IntN(2) == 0
	mode := "refuse"
	if blackhole {
		mode = "blackhole"
	}
	var heal func(context.Context) error
	var err error
	healTimeout := 30 * time.Second
	switch kind {
	case MemberRemove, MemberRemoveLeader, MemberLearner, MemberVoter:
		if len(ids) < 3 {
			n.log.Info("nemesis: membership change skipped: fewer than 3 members", "kind", kind, "members", ids)
			return
		}
		heal, err = n.injectMembership(ctx, kind, &f, leader, ids)
		if err == errSwitchedOff {
			return
		}
		healTimeout = membershipTimeout
	case MessageFaults:
		heal, err = n.injectMessageFaults(&f, ids)
		if err == errSwitchedOff {
			return
		}
	case KillAny, KillLeader:
		if kind == KillAny {
			target = pick()
		}
		f.Targets = []string{target}
		err = n.cl.Kill(target)
		heal = func(ctx context.Context) error { return n.cl.Restart(ctx, target) }
	case PauseAny, PauseLeader:
		if kind == PauseAny {
			target = pick()
		}
		f.Targets = []string{target}
		var fire func() string
		if n.probe != nil {
			fire = n.probe(ctx, target)
		}
		err = n.cl.Pause(target)
		heal = func(context.Context) error {
			if err := n.cl.Resume(target); err != nil {
				return err
			}
			if fire != nil {
				f.Note = strings.TrimPrefix(f.Note+"; ", "; ") + fire()
			}
			return nil
		}
	case IsolateLeader:
		f.Targets = []string{target}
		f.Note = mode
		n.cl.Partition(blackhole, []string{target}, others(target))
		heal = func(context.Context) error { n.cl.Heal(); return nil }
	case SplitRandom:
		shuffled := slices.Clone(ids)
		n.rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		minority := shuffled[:len(ids)/2]
		majority := shuffled[len(ids)/2:]
		sort.Strings(minority)
		sort.Strings(majority)
		f.Targets = minority
		f.Note = fmt.Sprintf("%s | %s, %s", strings.Join(minority, ","), strings.Join(majority, ","), mode)
		n.cl.Partition(blackhole, minority, majority)
		heal = func(context.Context) error { n.cl.Heal(); return nil }
	case LeaderDeaf:
		f.Targets = []string{target}
		f.Note = "nobody reaches it, " + mode
		for _, o := range others(target) {
			n.cl.Cut(o, target, blackhole)
		}
		heal = func(context.Context) error { n.cl.Heal(); return nil }
	case LeaderMute:
		f.Targets = []string{target}
		f.Note = "it reaches nobody, " + mode
		for _, o := range others(target) {
			n.cl.Cut(target, o, blackhole)
		}
		heal = func(context.Context) error { n.cl.Heal(); return nil }
	case SlowNetwork:
		d := time.Duration(50+n.rng.IntN(200)) * time.Millisecond
		f.Targets = ids
		f.Note = fmt.Sprintf("%v ± %v on every link", d, d/2)
		for _, a := range ids {
			for _, b := range ids {
				if a != b {
					n.cl.Delay(a, b, d, d/2)
				}
			}
		}
		heal = func(context.Context) error { n.cl.Heal(); return nil }
	case TransferLeader:
		o := others(target)
		to := o[n.rng.IntN(len(o))]
		f.Targets = []string{to}
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = n.cl.TransferLeadership(tctx, to)
		cancel()
		if errors.Is(err, ErrUnsupported) {
			n.switchOff(kind, err.Error())
			return
		}
		hold = 0
	default:
		n.log.Error("nemesis: unknown kind", "kind", kind)
		return
	}
	if err != nil {
		f.Note = strings.TrimPrefix(f.Note+"; ", "; ") + "error: " + err.Error()
	}
	sleep(ctx, hold)
	if heal != nil {
		hctx, cancel := context.WithTimeout(context.Background(), healTimeout)
		if herr := heal(hctx); herr != nil {
			f.Note = strings.TrimPrefix(f.Note+"; ", "; ") + "heal error: " + herr.Error()
			if healTimeout == membershipTimeout {
				n.pending = heal
			}
		}
		cancel()
	}
	f.End = n.clock.Now()
	n.record(f)
}

// Availability is the longest time without an acknowledged write around
// faults of one kind.
type Availability struct {
	Kind   string
	Faults int
	Worst  time.Duration // the longest gap
	At     time.Duration // when the worst gap started
	Mean   time.Duration // mean over faults of each fault's longest gap
}

// ComputeAvailability finds, for every fault that took the leader away or
// touched the whole cluster (Fault.Measured), the
// longest gap between consecutive acknowledged writes that began while the
// fault was on (or in the second before it started: the write in flight
// when the fault hit), and reports the worst per kind. An outage that began
// earlier belongs to an earlier fault. acks must be sorted; runEnd closes
// the last gap.
func ComputeAvailability(faults []Fault, acks []time.Duration, runEnd time.Duration) []Availability {
	byKind := map[string]*Availability{}
	sums := map[string]time.Duration{}
	for _, f := range faults {
		if !f.Measured() {
			continue
		}
		lo, hi := f.Start-time.Second, f.End
		prev := time.Duration(0)
		var worst, at time.Duration
		for i := 0; i <= len(acks); i++ {
			next := runEnd
			if i < len(acks) {
				next = acks[i]
			}
			if prev >= lo && prev <= hi && next-prev > worst {
				worst, at = next-prev, prev
			}
			if prev > hi {
				break
			}
			prev = next
		}
		a := byKind[f.Kind]
		if a == nil {
			a = &Availability{Kind: f.Kind}
			byKind[f.Kind] = a
		}
		a.Faults++
		sums[f.Kind] += worst
		if worst > a.Worst {
			a.Worst, a.At = worst, at
		}
	}
	var out []Availability
	for k, a := range byKind {
		a.Mean = sums[k] / time.Duration(a.Faults)
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}
