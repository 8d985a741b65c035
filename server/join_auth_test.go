package server

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/raftsql/raftsql/auth/authtest"
)

// TestJoinWithCredentials: a cluster under --auth-file (no --peer-tls)
// lets a node join with --join-user and its password; a node without
// credentials, or with a wrong password, stops with an error that says
// what to set, and the configuration does not change.
func TestJoinWithCredentials(t *testing.T) {
	file := authtest.WriteAuthFile(t, map[string]string{"alice": "s3cret-pw"})
	c := startClusterWith(t, 1, func(cfg *Config) { cfg.AuthFile = file })
	lead := c.waitLeader()
	joiner := func(id, user, password string) int {
		t.Helper()
		c.cfgs = append(c.cfgs, Config{
			ID: id, DataDir: t.TempDir(),
			PGAddr: freeAddr(t), RaftAddr: freeAddr(t), HTTPAddr: freeAddr(t),
			Join: c.servers[lead].HTTPAddr(), AuthFile: file,
			JoinUser: user, JoinPassword: password,
			Logger: testLogger(t, id),
		})
		c.servers = append(c.servers, nil)
		c.start(len(c.servers) - 1)
		return len(c.servers) - 1
	}
	waitFatal := func(i int) error {
		t.Helper()
		select {
		case <-c.servers[i].Fatal():
			return c.servers[i].FatalErr()
		case <-time.After(30 * time.Second):
			t.Fatalf("node %s did not stop", c.cfgs[i].ID)
			return nil
		}
	}

	err := waitFatal(joiner("2", "", ""))
	if !errors.Is(err, ErrJoinUnauthorized) || !strings.Contains(err.Error(), "--join-user") || !strings.Contains(err.Error(), "RAFTSQL_JOIN_PASSWORD") {
		t.Fatalf("join without credentials: %v", err)
	}
	err = waitFatal(joiner("3", "alice", "wrong"))
	if !errors.Is(err, ErrJoinUnauthorized) || !strings.Contains(err.Error(), `--join-user "alice"`) {
		t.Fatalf("join with a wrong password: %v", err)
	}
	if n := len(c.servers[lead].node.Status().Conf.Members); n != 1 {
		t.Fatalf("refused joins changed the configuration: %+v", c.servers[lead].node.Status().Conf)
	}

	i := joiner("4", "alice", "s3cret-pw")
	for deadline := time.Now().Add(60 * time.Second); !isVoter(c.servers[lead].node.Status().Conf, "4"); {
		if err := c.servers[i].FatalErr(); err != nil {
			t.Fatalf("join with credentials: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 4 not a voter: %+v", c.servers[lead].node.Status().Conf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
