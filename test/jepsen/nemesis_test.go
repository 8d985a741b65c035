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
}

func newFake(transfer bool) *fakeCluster {
	return &fakeCluster{ids: []string{"n1", "n2", "n3"}, leader: "n1", dead: map[string]bool{}, paused: map[string]bool{}, cuts: map[[2]string]bool{}, transfer: transfer}
}

func (f *fakeCluster) ev(format string, args ...any) {
	f.events = append(f.events, fmt.Sprintf(format, args...))
}

func (f *fakeCluster) IDs() []string               { return f.ids }
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
func (f *fakeCluster) HealAll(ctx context.Context) error       { return nil }
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
