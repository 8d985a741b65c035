package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

// Defaults chosen for a machine whose disk stalls for ~400 ms at times: an
// fsync stall must never cost an election.
const (
	DefaultElectionTimeout   = time.Second
	DefaultHeartbeatInterval = 100 * time.Millisecond
	DefaultSnapshotEntries   = 10000
	// DefaultWriteTimeout bounds how long a write keeps retrying (across
	// leader changes) when the client set no statement_timeout.
	DefaultWriteTimeout = 30 * time.Second
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")

// Config is everything a node needs. The zero values of the durations take
// the defaults above.
type Config struct {
	ID       string
	DataDir  string
	PGAddr   string
	RaftAddr string
	HTTPAddr string
	// RaftAdvertise is the Raft address the other nodes dial to reach
	// this one, when it differs from RaftAddr (the node sits behind a
	// proxy or NAT; the fault-injection harness uses it). A joining node
	// sends it in its /join request. Empty means RaftAddr.
	RaftAdvertise string
	// Peers are the initial voters of a new cluster (--peers). Empty means
	// a single-node cluster of this node, unless Join is set.
	Peers []consensus.Member
	// Join is the HTTP address of a member of an existing cluster.
	Join    string
	Learner bool

	ElectionTimeout   time.Duration
	HeartbeatInterval time.Duration
	SnapshotEntries   uint64
	WriteTimeout      time.Duration

	TLSCert, TLSKey, TLSCA string
	PeerTLS                bool
	AuthFile               string
	// JoinUser and JoinPassword are the credentials a joining node sends to
	// the HTTP API of a cluster that runs with --auth-file (--join-user,
	// RAFTSQL_JOIN_PASSWORD).
	JoinUser, JoinPassword string

	// Restore is a SQLite database file (a backup) that a node started on
	// an empty data directory loads through the log once it leads or
	// follows a leader (--restore): it bootstraps a new cluster from it.
	Restore string

	// StatementTimeout and IdleInTxTimeout are the defaults of the
	// sessions' statement_timeout and
	// idle_in_transaction_session_timeout (0: none, as in PostgreSQL).
	StatementTimeout time.Duration
	IdleInTxTimeout  time.Duration
	// MaxConnections bounds the open PostgreSQL sessions (0: no bound);
	// one more gets 53300 (--max-connections). MaxMessageSize bounds one
	// client message in bytes (0: 64 MiB); a bigger one gets 08P01 and
	// its connection is closed (--max-message-size).
	MaxConnections int
	MaxMessageSize int

	Logger *slog.Logger
	// Clock is the clock of the Raft lease (node.Config.Clock: only its
	// monotonic differences are used). Nil means time.Now. raftsqld sets
	// it only through the test-only RAFTSQL_TEST_CLOCK_RATE hook, to run a
	// node whose clock drifts.
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration and fills in defaults.
func (c *Config) Validate() error {
	c.setDefaults()
	if err := checkNodeID(c.ID); err != nil {
		return fmt.Errorf("%w: --id: %w", ErrConfig, err)
	}
	for _, p := range c.Peers {
		if err := checkNodeID(p.ID); err != nil {
			return fmt.Errorf("%w: --peers: %w", ErrConfig, err)
		}
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: --data-dir must not be empty", ErrConfig)
	}
	if c.RaftAdvertise != "" {
		if _, _, err := net.SplitHostPort(c.RaftAdvertise); err != nil {
			return fmt.Errorf("%w: --raft-advertise-addr %q: %w", ErrConfig, c.RaftAdvertise, err)
		}
	}
	for name, a := range map[string]string{"--pg-addr": c.PGAddr, "--raft-addr": c.RaftAddr, "--http-addr": c.HTTPAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%w: %s %q: %w", ErrConfig, name, a, err)
		}
	}
	if c.HeartbeatInterval <= 0 || c.ElectionTimeout < 3*c.HeartbeatInterval {
		return fmt.Errorf("%w: --election-timeout (%v) must be at least 3 × --heartbeat-interval (%v)", ErrConfig, c.ElectionTimeout, c.HeartbeatInterval)
	}
	if len(c.Peers) > 0 {
		found := false
		for _, p := range c.Peers {
			if p.ID == c.ID {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%w: --peers must include this node's --id %q", ErrConfig, c.ID)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("%w: --tls-cert and --tls-key go together", ErrConfig)
	}
	if c.StatementTimeout < 0 || c.IdleInTxTimeout < 0 {
		return fmt.Errorf("%w: --statement-timeout and --idle-in-transaction-timeout must not be negative", ErrConfig)
	}
	if c.MaxConnections < 0 || c.MaxMessageSize < 0 {
		return fmt.Errorf("%w: --max-connections and --max-message-size must not be negative", ErrConfig)
	}
	if c.JoinPassword != "" && c.JoinUser == "" {
		return fmt.Errorf("%w: a join password needs --join-user", ErrConfig)
	}
	if c.Restore != "" && c.Join != "" {
		return fmt.Errorf("%w: --restore bootstraps a new cluster; it excludes --join", ErrConfig)
	}
	if c.PeerTLS && (c.TLSCert == "" || c.TLSCA == "") {
		return fmt.Errorf("%w: --peer-tls needs --tls-cert, --tls-key and --tls-ca", ErrConfig)
	}
	return nil
}

// advertisedRaftAddr is the Raft address the other nodes dial.
func (c *Config) advertisedRaftAddr() string {
	if c.RaftAdvertise != "" {
		return c.RaftAdvertise
	}
	return c.RaftAddr
}
