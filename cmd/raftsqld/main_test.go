package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftsql/raftsql/server"
)

func TestParsePeers(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int
		wantErr string
	}{
		{"", 0, ""},
		{"1=127.0.0.1:7000", 1, ""},
		{" 1=127.0.0.1:7000 , n2=127.0.0.1:7001,n3=h:7002", 3, ""},
		{"1=127.0.0.1:7000,1=127.0.0.1:7001", 0, "twice"},
		{"1", 0, "not id=raftaddr"},
		{"=x:1", 0, "not id=raftaddr"},
		{"1=", 0, "not id=raftaddr"},
	} {
		got, err := parsePeers(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parsePeers(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != tc.want {
			t.Errorf("parsePeers(%q) = %v, %v; want %d peers", tc.in, got, err, tc.want)
		}
		for _, m := range got {
			if !m.Voter {
				t.Errorf("parsePeers(%q): %s is not a voter", tc.in, m.ID)
			}
		}
	}
}

// parse runs the flag set over args (and env) and returns the config the
// server would get.
func parse(t *testing.T, args ...string) (server.Config, error) {
	t.Helper()
	var cfg server.Config
	var cfgErr error
	app := &cli.App{Flags: flags(), Action: func(c *cli.Context) error {
		cfg, cfgErr = configFrom(c, &bytes.Buffer{})
		return nil
	}}
	if err := app.RunContext(context.Background(), append([]string{"raftsqld"}, args...)); err != nil {
		return cfg, err
	}
	return cfg, cfgErr
}

func TestDefaultsAreTheDesignContract(t *testing.T) {
	cfg, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "raftsql-data" || cfg.PGAddr != "127.0.0.1:5433" || cfg.RaftAddr != "127.0.0.1:7000" || cfg.HTTPAddr != "127.0.0.1:8080" {
		t.Fatalf("defaults = %+v", cfg)
	}
	if len(cfg.Peers) != 0 || cfg.Join != "" {
		t.Fatalf("no flags must mean a single new node, got peers %v join %q", cfg.Peers, cfg.Join)
	}
}

func TestFlagsAndEnv(t *testing.T) {
	t.Setenv("RAFTSQL_DATA_DIR", "/tmp/from-env")
	t.Setenv("RAFTSQL_ELECTION_TIMEOUT", "3s")
	cfg, err := parse(t, "--id", "2", "--peers", "1=a:1,2=b:2", "--heartbeat-interval", "200ms", "--snapshot-entries", "50")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != "2" || cfg.DataDir != "/tmp/from-env" || cfg.ElectionTimeout != 3*time.Second ||
		cfg.HeartbeatInterval != 200*time.Millisecond || cfg.SnapshotEntries != 50 || len(cfg.Peers) != 2 {
		t.Fatalf("config = %+v", cfg)
	}
}

// TestBadFlagCombinations: each bad combination is refused for its own
// reason (the error names it), not by an unrelated check.
func TestBadFlagCombinations(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--join", "127.0.0.1:8080", "--peers", "1=a:1"}, "exclude each other"},
		{[]string{"--learner"}, "--learner needs --join"},
		{[]string{"--peers", "2=a:1,3=b:2"}, "must include this node's --id"}, // must include --id (1)
		{[]string{"--election-timeout", "100ms", "--heartbeat-interval", "100ms"}, "--election-timeout"},
		{[]string{"--pg-addr", "nonsense"}, "--pg-addr"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--tls-cert", "c.pem"}, "--tls-key"},
		{[]string{"--id", "node 1"}, "white space"},                                 // ids are what /join accepts: no white space
		{[]string{"--id", "n1", "--peers", "n1=a:1,n\t2=b:2"}, "control character"}, // nor control characters
		{[]string{"--statement-timeout", "-1s"}, "negative"},
		{[]string{"--join-password", "secret", "--join", "127.0.0.1:8080"}, "--join-user"},
		{[]string{"--restore", "x.db", "--join", "127.0.0.1:8080"}, "--restore"},
	} {
		if _, err := parse(t, tc.args...); err == nil {
			t.Errorf("%v: no error", tc.args)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %q, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}
