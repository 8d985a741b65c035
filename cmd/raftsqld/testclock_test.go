package main

import (
	"strings"
	"testing"
	"time"
)

// fakeNow is a settable time source.
type fakeNow struct{ t time.Time }

func (f *fakeNow) now() time.Time { return f.t }

func TestScaledClockRunsAtItsRate(t *testing.T) {
	for _, rate := range []float64{0.5, 0.95, 1, 1.5} {
		f := &fakeNow{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		start := f.t
		c := scaledClock(f.now, rate)
		if got := c(); !got.Equal(start) {
			t.Errorf("rate %v: clock at start = %v, want %v", rate, got, start)
		}
		prev := c()
		for _, step := range []time.Duration{time.Millisecond, 150 * time.Millisecond, time.Second, 10 * time.Second} {
			f.t = f.t.Add(step)
			got := c()
			want := time.Duration(rate * float64(f.t.Sub(start)))
			if d := got.Sub(start); d != want {
				t.Errorf("rate %v: %v of real time read as %v, want %v", rate, f.t.Sub(start), d, want)
			}
			if got.Before(prev) {
				t.Errorf("rate %v: clock went backwards: %v then %v", rate, prev, got)
			}
			prev = got
		}
	}
}

func TestScaledClockOnTheRealClockIsMonotonic(t *testing.T) {
	c := scaledClock(time.Now, 0.5)
	prev := c()
	for range 1000 {
		got := c()
		// Time.String shows "m=±..." only for a time with a monotonic
		// reading; node.Node subtracts such readings for the lease.
		if !strings.Contains(got.String(), " m=") {
			t.Fatalf("clock result %v has no monotonic reading", got)
		}
		if got.Before(prev) {
			t.Fatalf("clock went backwards: %v then %v", prev, got)
		}
		prev = got
	}
}

func TestTestClockFromEnvironment(t *testing.T) {
	env := func(v string) func(string) string {
		return func(name string) string {
			if name != testClockRateEnv {
				t.Errorf("read %s, want only %s", name, testClockRateEnv)
			}
			return v
		}
	}
	if c, _, err := testClock(env("")); c != nil || err != nil {
		t.Errorf("unset: clock %v, err %v; want the real clock (nil)", c != nil, err)
	}
	for _, v := range []string{"0.8", "1.5", "1", "2e-1"} {
		c, rate, err := testClock(env(v))
		if err != nil || c == nil || rate <= 0 {
			t.Errorf("%s=%s: clock %v, rate %v, err %v", testClockRateEnv, v, c != nil, rate, err)
		}
	}
	for _, v := range []string{"fast", "0", "-1", "NaN", "Inf", "0.8x"} {
		if c, _, err := testClock(env(v)); err == nil || c != nil || !strings.Contains(err.Error(), testClockRateEnv) {
			t.Errorf("%s=%s: clock %v, err %v; want an error naming the variable", testClockRateEnv, v, c != nil, err)
		}
	}
}

func TestClockHookReachesServerConfig(t *testing.T) {
	args := []string{"--data-dir", t.TempDir()}
	cfg, err := parse(t, args...)
	if err != nil || cfg.Clock != nil {
		t.Fatalf("without %s: clock set %v, err %v; want the real clock", testClockRateEnv, cfg.Clock != nil, err)
	}
	t.Setenv(testClockRateEnv, "0.5")
	if cfg, err = parse(t, args...); err != nil || cfg.Clock == nil {
		t.Fatalf("%s=0.5: clock set %v, err %v", testClockRateEnv, cfg.Clock != nil, err)
	}
	t.Setenv(testClockRateEnv, "slow")
	if _, err = parse(t, args...); err == nil {
		t.Fatalf("%s=slow: no error", testClockRateEnv)
	}
}
