package main

import "testing"

// TestRaftAdvertiseAddr: --raft-advertise-addr reaches the config, and a
// malformed one is refused.
func TestRaftAdvertiseAddr(t *testing.T) {
	cfg, err := parse(t, "--join", "127.0.0.1:8080", "--raft-addr", "127.0.0.1:7001", "--raft-advertise-addr", "127.0.0.1:9001")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RaftAdvertise != "127.0.0.1:9001" || cfg.RaftAddr != "127.0.0.1:7001" {
		t.Fatalf("config = %+v", cfg)
	}
	if cfg, err := parse(t); err != nil || cfg.RaftAdvertise != "" {
		t.Fatalf("default: %q, %v; want empty (the node advertises --raft-addr)", cfg.RaftAdvertise, err)
	}
	if _, err := parse(t, "--raft-advertise-addr", "nonsense"); err == nil {
		t.Fatal("a malformed --raft-advertise-addr was accepted")
	}
}
