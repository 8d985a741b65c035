package jepsen

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCluster records what the nemesis does to it.
type fakeCluster struct {
	mu       sync.Mutex
	ids      []string
	leader   string
	dead     map[string]bool
	paused   map[string]bool
	cuts     map[[2]string]bool
	events   []string
	transfer bool
	// rejoinFails is how many Rejoin calls fail before one works.
	rejoinFails int
}

func newFake(transfer bool) *fakeCluster {
	return &fakeCluster{ids: []string{"n1", "n2", "n3"}, leader: "n1", dead: map[string]bool{}, paused: map[string]bool{}, cuts: map[[2]string]bool{}, transfer: transfer}
}

func (f *fakeCluster) ev(format string, args ...any) {
	f.events = append(f.events, fmt.Sprintf(format, args...))
}

func (f *fakeCluster) IDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ids)
}
func (f *fakeCluster) DSN(id, level string) string { return "" }
func (f *fakeCluster) Leader(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader, nil
}
func (f *fakeCluster) Kill(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dead[id] = true
	f.ev("kill %s", id)
	return nil
}
func (f *fakeCluster) Restart(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.dead, id)
	f.ev("restart %s", id)
	return nil
}
func (f *fakeCluster) Pause(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused[id] = true
	f.ev("pause %s", id)
	return nil
}
func (f *fakeCluster) Resume(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.paused, id)
	f.ev("resume %s", id)
	return nil
}
func (f *fakeCluster) Partition(blackhole bool, groups ...[]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					f.cuts[[2]string{a, b}] = true
				}
			}
		}
	}
	f.ev("partition %v", groups)
}
func (f *fakeCluster) Cut(from, to string, blackhole bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cuts[[2]string{from, to}] = true
	f.ev("cut %s->%s", from, to)
}
func (f *fakeCluster) Delay(from, to string, d, jitter time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cuts[[2]string{from, to}] = true
	f.ev("delay %s->%s %v", from, to, d)
}
func (f *fakeCluster) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cuts = map[[2]string]bool{}
	f.ev("heal")
}
func (f *fakeCluster) TransferLeadership(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.transfer {
		return fmt.Errorf("%w: 404", ErrUnsupported)
	}
	f.leader = id
	f.ev("transfer %s", id)
	return nil
}
func (f *fakeCluster) HealAll(ctx context.Context) error { return nil }

// Membership: n1–n3 start as members; n4 is the spare.
func (f *fakeCluster) RemoveMember(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.Index(f.ids, id)
	if i < 0 {
		return nil // as the real one: removing a non-member is a no-op
	}
	f.ids = slices.Delete(f.ids, i, i+1)
	if f.leader == id {
		f.leader = f.ids[0]
	}
	f.ev("remove %s", id)
	return nil
}
func (f *fakeCluster) Rejoin(ctx context.Context, id string, learner bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Contains(f.ids, id) {
		return fmt.Errorf("%s is a member", id)
	}
	if f.rejoinFails > 0 {
		f.rejoinFails--
		f.ev("join %s failed", id)
		return fmt.Errorf("join %s: timed out", id)
	}
	f.ids = append(f.ids, id)
	slices.Sort(f.ids)
	f.ev("join %s learner=%v", id, learner)
	return nil
}
func (f *fakeCluster) Spare() (string, error) { return "n4", nil }
func (f *fakeCluster) Retire(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ev("retire %s", id)
	return nil
}
func (f *fakeCluster) MessageFaults(from, to string, drop, dup, reorder float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cuts[[2]string{from, to}] = true
	f.ev("frames %s->%s", from, to)
}

func (f *fakeCluster) WaitConverged(ctx context.Context) error { return nil }
func (f *fakeCluster) CommitIndex(ctx context.Context) (uint64, error) {
	return 0, fmt.Errorf("%w: no commit index", ErrUnsupported)
}

func runFakeNemesis(t *testing.T, seed uint64, transfer bool) (*fakeCluster, []Fault, *Nemesis) {
	t.Helper()
	f := newFake(transfer)
	cfg := NemesisConfig{Quiet: [2]time.Duration{time.Millisecond, 2 * time.Millisecond}, Hold: [2]time.Duration{time.Millisecond, 2 * time.Millisecond}}
	n := NewNemesis(f, cfg, seed, NewClock(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []Fault)
	go func() { done <- n.Run(ctx) }()
	// Stop after 40 faults, whatever the speed of the machine.
	deadline := time.Now().Add(30 * time.Second)
	for len(n.Faults()) < 40 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	faults := <-done
	if len(faults) < 40 {
		t.Fatalf("only %d faults in 30s", len(faults))
	}
	return f, faults[:40], n
}

func TestNemesisHealsEverything(t *testing.T) {
	f, faults, _ := runFakeNemesis(t, 7, true)
	if len(f.dead) != 0 || len(f.paused) != 0 || len(f.cuts) != 0 {
		t.Fatalf("left faults behind: dead %v paused %v cuts %v", f.dead, f.paused, f.cuts)
	}
	if ids := f.IDs(); !slices.Equal(ids, []string{"n1", "n2", "n3"}) {
		t.Fatalf("membership not restored: %v", ids)
	}
	kinds := map[string]bool{}
	for _, fl := range faults {
		kinds[fl.Kind] = true
		if fl.End < fl.Start {
			t.Fatalf("fault ends before it starts: %v", fl)
		}
	}
	if len(kinds) < 6 {
		t.Fatalf("40 faults used only kinds %v", kinds)
	}
}

func TestNemesisScheduleIsSeeded(t *testing.T) {
	describe := func(fs []Fault) string {
		var parts []string
		for _, f := range fs {
			parts = append(parts, f.Kind+":"+strings.Join(f.Targets, ",")+":"+f.Note)
		}
		return strings.Join(parts, " ")
	}
	_, a, _ := runFakeNemesis(t, 42, true)
	_, b, _ := runFakeNemesis(t, 42, true)
	_, c, _ := runFakeNemesis(t, 43, true)
	if describe(a) != describe(b) {
		t.Fatalf("same seed, different schedules:\n%s\n%s", describe(a), describe(b))
	}
	if describe(a) == describe(c) {
		t.Fatal("different seeds, same schedule")
	}
}

func TestNemesisSwitchesOffUnsupportedTransfer(t *testing.T) {
	f, faults, n := runFakeNemesis(t, 3, false)
	for _, fl := range faults {
		if fl.Kind == TransferLeader {
			t.Fatalf("recorded an unsupported transfer: %v", fl)
		}
	}
	if _, off := n.Disabled()[TransferLeader]; !off {
		t.Fatal("transfer not reported as switched off")
	}
	if slices.ContainsFunc(f.events, func(e string) bool { return strings.HasPrefix(e, "transfer") }) {
		t.Fatal("a transfer happened")
	}
}

// TestNemesisFirstAndMembership: the First kinds run first, in order; a
// removed member comes back, a spare joins and is removed again, and no
// other fault starts while the membership is changed.
func TestNemesisFirstAndMembership(t *testing.T) {
	f := newFake(true)
	first := []string{MessageFaults, MemberRemoveLeader, MemberRemove, MemberVoter, MemberLearner}
	cfg := NemesisConfig{Kinds: []string{KillAny}, First: first,
		Quiet: [2]time.Duration{time.Millisecond, 2 * time.Millisecond}, Hold: [2]time.Duration{time.Millisecond, 2 * time.Millisecond}}
	n := NewNemesis(f, cfg, 5, NewClock(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []Fault)
	go func() { done <- n.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for len(n.Faults()) < len(first)+1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	faults := <-done
	if len(faults) < len(first) {
		t.Fatalf("only %d faults", len(faults))
	}
	for i, k := range first {
		if faults[i].Kind != k {
			t.Fatalf("fault %d is %s, want %s (schedule %v)", i, faults[i].Kind, k, faults)
		}
		if strings.Contains(faults[i].Note, "error") {
			t.Fatalf("fault %v failed", faults[i])
		}
	}
	if faults[1].Targets[0] != "n1" {
		t.Fatalf("remove-leader removed %v, not the leader n1", faults[1].Targets)
	}
	if faults[2].Targets[0] == f.leader {
		t.Fatalf("remove (a follower) removed the leader %s", f.leader)
	}
	if ids := f.IDs(); !slices.Equal(ids, []string{"n1", "n2", "n3"}) {
		t.Fatalf("membership not restored: %v (events %v)", ids, f.events)
	}
	want := []string{"remove n1", "join n1 learner=false", "join n4 learner=false", "remove n4", "retire n4", "join n4 learner=true", "remove n4", "retire n4"}
	var got []string
	for _, e := range f.events {
		if strings.HasPrefix(e, "remove") || strings.HasPrefix(e, "join") || strings.HasPrefix(e, "retire") {
			got = append(got, e)
		}
	}
	// The follower removal sits between the leader's and n4's.
	if len(got) != len(want)+2 || !slices.Equal(got[:2], want[:2]) || !slices.Equal(got[4:], want[2:]) {
		t.Fatalf("membership events %v, want %v with a follower's remove and join after the first two", got, want)
	}
	for _, fl := range faults[:len(first)] {
		if !fl.Measured() {
			t.Errorf("%s is not measured for availability", fl.Kind)
		}
	}
}

// TestNemesisRepairsBeforeTheNextFault: when a removed member cannot come
// back, no other fault starts (a kill would cost the majority) until a
// repair brings it back.
func TestNemesisRepairsBeforeTheNextFault(t *testing.T) {
	f := newFake(true)
	f.rejoinFails = 3
	cfg := NemesisConfig{Kinds: []string{KillAny}, First: []string{MemberRemove},
		Quiet: [2]time.Duration{time.Millisecond, 2 * time.Millisecond}, Hold: [2]time.Duration{time.Millisecond, 2 * time.Millisecond}}
	n := NewNemesis(f, cfg, 9, NewClock(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []Fault)
	go func() { done <- n.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for len(n.Faults()) < 6 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	faults := <-done
	var kinds []string
	for _, fl := range faults {
		kinds = append(kinds, fl.Kind)
	}
	want := []string{MemberRemove, "repair", "repair", "repair", KillAny}
	if len(kinds) < len(want) || !slices.Equal(kinds[:len(want)], want) {
		t.Fatalf("schedule %v, want it to start with %v", kinds, want)
	}
	if !strings.Contains(faults[0].Note, "heal error") || !strings.Contains(faults[3].Note, "succeeded") {
		t.Fatalf("notes: %q, %q", faults[0].Note, faults[3].Note)
	}
	if ids := f.IDs(); len(ids) != 3 {
		t.Fatalf("membership %v after the repair", ids)
	}
}
