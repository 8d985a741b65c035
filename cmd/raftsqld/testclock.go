package main

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// testClockRateEnv names a test-only hook, deliberately not a flag: when
// set, this node's lease clock (server.Config.Clock) runs at that rate of
// real time (0.8: 20% slow, 1.5: 50% fast). Only the lease reads the clock;
// the Raft ticker (heartbeats, election timeouts) keeps real time. The fault
// tests in test/ use it to run a node whose clock drifts.
const testClockRateEnv = "RAFTSQL_TEST_CLOCK_RATE"

// testClock returns the clock the hook asks for: nil (the real clock) when
// the variable is unset or empty, else a scaledClock. getenv is os.Getenv
// outside tests.
func testClock(getenv func(string) string) (func() time.Time, float64, error) {
	s := getenv(testClockRateEnv)
	if s == "" {
		return nil, 1, nil
	}
	rate, err := strconv.ParseFloat(s, 64)
	if err != nil || rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return nil, 0, fmt.Errorf("%s=%q: want a positive number (the rate of the lease clock; unset for the real clock)", testClockRateEnv, s)
	}
	return scaledClock(time.Now, rate), rate, nil
}

// scaledClock returns a clock that reads start + rate × (now() - start),
// where start is now() when it is called. With now = time.Now it is
// monotonic: its results carry start's monotonic reading plus a scaled
// monotonic difference, so differences between them are immune to
// wall-clock steps, and it never goes backwards.
func scaledClock(now func() time.Time, rate float64) func() time.Time {
	start := now()
	return func() time.Time {
		return start.Add(time.Duration(rate * float64(now().Sub(start))))
	}
}
