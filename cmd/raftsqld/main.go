// Command raftsqld is the raftsql server: one node of a replicated SQLite
// database that speaks the PostgreSQL protocol. With no flags it starts a
// single-node cluster with its data in ./raftsql-data.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "raftsqld: %v\n", err)
		os.Exit(1)
	}
}

// Run parses args and runs the server until ctx is done.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	app := &cli.App{
		Name:      "raftsqld",
		Usage:     "a replicated SQLite database that speaks the PostgreSQL protocol",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     flags(),
		Action: func(c *cli.Context) error {
			cfg, err := configFrom(c, stderr)
			if err != nil {
				return err
			}
			return server.Run(c.Context, cfg)
		},
	}
	return app.RunContext(ctx, args)
}

func env(name string) []string { return []string{"RAFTSQL_" + name} }

func flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "id", Value: "1", EnvVars: env("ID"), Usage: "node id, unique and stable"},
		&cli.StringFlag{Name: "data-dir", Value: "raftsql-data", EnvVars: env("DATA_DIR"), Usage: "where the Raft log, the SQLite database and snapshots live"},
		&cli.StringFlag{Name: "pg-addr", Value: "127.0.0.1:5433", EnvVars: env("PG_ADDR"), Usage: "PostgreSQL protocol listen address"},
		&cli.StringFlag{Name: "raft-addr", Value: "127.0.0.1:7000", EnvVars: env("RAFT_ADDR"), Usage: "Raft listen address (also the address peers use)"},
		&cli.StringFlag{Name: "raft-advertise-addr", EnvVars: env("RAFT_ADVERTISE_ADDR"), Usage: "the Raft address other nodes dial, if not --raft-addr (behind a proxy); sent with --join"},
		&cli.StringFlag{Name: "http-addr", Value: "127.0.0.1:8080", EnvVars: env("HTTP_ADDR"), Usage: "HTTP API listen address"},
		&cli.StringFlag{Name: "peers", EnvVars: env("PEERS"), Usage: "initial voters id=raftaddr,... for bootstrapping a new cluster (same on every initial node)"},
		&cli.StringFlag{Name: "join", EnvVars: env("JOIN"), Usage: "join an existing cluster through the HTTP address of any member"},
		&cli.BoolFlag{Name: "learner", EnvVars: env("LEARNER"), Usage: "with --join: stay a non-voting learner"},
		&cli.DurationFlag{Name: "election-timeout", Value: server.DefaultElectionTimeout, EnvVars: env("ELECTION_TIMEOUT"), Usage: "base election timeout (randomized up to twice this)"},
		&cli.DurationFlag{Name: "heartbeat-interval", Value: server.DefaultHeartbeatInterval, EnvVars: env("HEARTBEAT_INTERVAL"), Usage: "leader heartbeat interval"},
		&cli.Uint64Flag{Name: "snapshot-entries", Value: server.DefaultSnapshotEntries, EnvVars: env("SNAPSHOT_ENTRIES"), Usage: "take a snapshot and compact the log after N applied entries (0: never)"},
		&cli.StringFlag{Name: "tls-cert", EnvVars: env("TLS_CERT"), Usage: "TLS certificate (PEM) for clients and, with --peer-tls, for peers"},
		&cli.StringFlag{Name: "tls-key", EnvVars: env("TLS_KEY"), Usage: "TLS private key (PEM)"},
		&cli.StringFlag{Name: "tls-ca", EnvVars: env("TLS_CA"), Usage: "CA certificate (PEM) that peers' certificates must chain to"},
		&cli.BoolFlag{Name: "peer-tls", EnvVars: env("PEER_TLS"), Usage: "mutual TLS between nodes (needs --tls-cert, --tls-key, --tls-ca)"},
		&cli.StringFlag{Name: "auth-file", EnvVars: env("AUTH_FILE"), Usage: "users and SCRAM-SHA-256 password hashes; when set clients must authenticate"},
		&cli.StringFlag{Name: "join-user", EnvVars: env("JOIN_USER"), Usage: "with --join into a cluster that has --auth-file: the user to join as (password in $RAFTSQL_JOIN_PASSWORD)"},
		&cli.StringFlag{Name: "join-password", EnvVars: env("JOIN_PASSWORD"), Usage: "the --join-user's password (prefer the environment variable: flags show in ps)"},
		&cli.StringFlag{Name: "restore", EnvVars: env("RESTORE"), Usage: "bootstrap a new cluster from this SQLite file (a backup); ignored once the data directory holds state"},
		&cli.DurationFlag{Name: "statement-timeout", EnvVars: env("STATEMENT_TIMEOUT"), Usage: "default statement_timeout of every session (0: none)"},
		&cli.DurationFlag{Name: "idle-in-transaction-timeout", EnvVars: env("IDLE_IN_TRANSACTION_TIMEOUT"), Usage: "close a session idle inside a transaction for this long (0: never)"},
		&cli.IntFlag{Name: "max-connections", EnvVars: env("MAX_CONNECTIONS"), Usage: "most PostgreSQL sessions open at once; more get SQLSTATE 53300 (0: no bound)"},
		&cli.IntFlag{Name: "max-message-size", EnvVars: env("MAX_MESSAGE_SIZE"), Usage: "largest client message in bytes; a bigger one gets 08P01 and its connection closed (0: 64 MiB)"},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: env("LOG_LEVEL"), Usage: "debug, info, warn or error"},
	}
}

func configFrom(c *cli.Context, stderr io.Writer) (server.Config, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return server.Config{}, fmt.Errorf("--log-level: %w", err)
	}
	// The server names the node on every line (node=ID) itself.
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	peers, err := parsePeers(c.String("peers"))
	if err != nil {
		return server.Config{}, fmt.Errorf("--peers: %w", err)
	}
	if c.String("join") != "" && len(peers) > 0 {
		return server.Config{}, errors.New("--join and --peers exclude each other: --peers bootstraps a new cluster, --join enters an existing one")
	}
	if c.Bool("learner") && c.String("join") == "" {
		return server.Config{}, errors.New("--learner needs --join")
	}
	clock, rate, err := testClock(os.Getenv)
	if err != nil {
		return server.Config{}, err
	}
	if clock != nil {
		logger.Warn("test-only hook: the lease clock runs at a rate of real time", "env", testClockRateEnv, "rate", rate)
	}
	cfg := server.Config{
		ID:                c.String("id"),
		DataDir:           c.String("data-dir"),
		PGAddr:            c.String("pg-addr"),
		RaftAddr:          c.String("raft-addr"),
		HTTPAddr:          c.String("http-addr"),
		RaftAdvertise:     c.String("raft-advertise-addr"),
		Peers:             peers,
		Join:              c.String("join"),
		Learner:           c.Bool("learner"),
		ElectionTimeout:   c.Duration("election-timeout"),
		HeartbeatInterval: c.Duration("heartbeat-interval"),
		SnapshotEntries:   c.Uint64("snapshot-entries"),
		TLSCert:           c.String("tls-cert"),
		TLSKey:            c.String("tls-key"),
		TLSCA:             c.String("tls-ca"),
		PeerTLS:           c.Bool("peer-tls"),
		AuthFile:          c.String("auth-file"),
		JoinUser:          c.String("join-user"),
		JoinPassword:      c.String("join-password"),
		Restore:           c.String("restore"),
		StatementTimeout:  c.Duration("statement-timeout"),
		IdleInTxTimeout:   c.Duration("idle-in-transaction-timeout"),
		MaxConnections:    c.Int("max-connections"),
		MaxMessageSize:    c.Int("max-message-size"),
		Logger:            logger,
		Clock:             clock,
	}
	return cfg, cfg.Validate()
}

// parsePeers parses "id=addr,id=addr".
func parsePeers(s string) ([]consensus.Member, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []consensus.Member
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		id, addr = strings.TrimSpace(id), strings.TrimSpace(addr)
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("%q is not id=raftaddr", part)
		}
		if seen[id] {
			return nil, fmt.Errorf("id %q appears twice", id)
		}
		seen[id] = true
		out = append(out, consensus.Member{ID: id, Addr: addr, Voter: true})
	}
	return out, nil
}
