package test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/raftsql/raftsql/test/cluster"
)

var (
	flagSeed     = flag.Uint64("seed", 0, "seed of the nemesis and workloads (0: from $SEED or the clock)")
	flagDuration = flag.Duration("duration", 0, "how long TestJepsen runs its workload under faults (0: from $DURATION or 45s)")
	flagKeep     = flag.Bool("keep", false, "keep the artifacts folder of passing tests too")
	flagNodes    = flag.Int("nodes", 3, "cluster size of TestJepsen")
)

// binary is the raftsqld built by TestMain; buildErr says why not.
var (
	binary   string
	buildErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if bin := os.Getenv("RAFTSQLD_BIN"); bin != "" {
			binary = bin
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "raftsqld-bin-")
		if err != nil {
			buildErr = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		binary, buildErr = cluster.Build(ctx, dir)
		cancel()
		return m.Run()
	}()
	os.Exit(code)
}

// requireBinary fails the test when raftsqld could not be built.
func requireBinary(t testing.TB) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("raftsqld does not build, so the cluster tests cannot run:\n%v", buildErr)
	}
	return binary
}

// seed returns -seed, $SEED, or a seed from the clock.
func seed(t testing.TB) uint64 {
	if *flagSeed != 0 {
		return *flagSeed
	}
	if s := os.Getenv("SEED"); s != "" && s != "0" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("bad SEED %q: %v", s, err)
		}
		return v
	}
	return uint64(time.Now().UnixNano() % 1_000_000_007)
}

// duration returns -duration, $DURATION, or def.
func duration(t testing.TB, def time.Duration) time.Duration {
	if *flagDuration != 0 {
		return *flagDuration
	}
	if s := os.Getenv("DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("bad DURATION %q: %v", s, err)
		}
		return d
	}
	return def
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// artifacts creates test/artifacts/<test>-<time> and arranges for it to be
// printed and kept when the test fails (or -keep), removed otherwise.
func artifacts(t *testing.T) string {
	t.Helper()
	name := unsafeName.ReplaceAllString(t.Name(), "_") + "-" + time.Now().UTC().Format("20060102T150405.000")
	dir, err := filepath.Abs(filepath.Join("artifacts", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || *flagKeep {
			t.Logf("artifacts (node logs, data dirs, histories) kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// startCluster starts n nodes with the test's artifacts folder, and kills
// them when the test ends (pass or fail). Registered before the artifacts
// cleanup runs, so the folder is complete when it is printed.
func startCluster(t *testing.T, opts cluster.Options) *cluster.Cluster {
	t.Helper()
	return startClusterWith(t, opts, nil)
}

// startClusterWith is startCluster with a hook that runs once the nodes'
// directories exist and before any process starts (nil: none).
func startClusterWith(t *testing.T, opts cluster.Options, before func(*cluster.Cluster)) *cluster.Cluster {
	t.Helper()
	bin := requireBinary(t)
	dir := artifacts(t)
	logf, err := os.Create(filepath.Join(dir, "harness.log"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Binary = bin
	opts.Dir = dir
	opts.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logf), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := cluster.New(opts)
	if err != nil {
		logf.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		logf.Close()
	})
	if before != nil {
		before(c)
	}
	for _, n := range c.Nodes() {
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitStarted(ctx); err != nil {
		t.Fatalf("cluster did not start: %v\n%s", err, tails(dir, opts.Nodes))
	}
	return c
}

// tails returns the end of every node log, for a failure message.
func tails(dir string, nodes int) string {
	if nodes == 0 {
		nodes = 3
	}
	var out string
	for i := 1; i <= nodes; i++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("n%d.log", i)))
		if err != nil {
			continue
		}
		if len(b) > 2000 {
			b = b[len(b)-2000:]
		}
		out += fmt.Sprintf("--- n%d.log (tail) ---\n%s\n", i, b)
	}
	return out
}
