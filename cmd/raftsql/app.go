package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/chzyer/readline"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/urfave/cli/v2"

	"github.com/raftsql/raftsql/auth"
)

// Run is the whole command: main only adds signals and the exit status.
// Errors are printed to stderr here; the returned error decides the exit
// status (see exitCode).
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return defaultEnv().run(ctx, args, stdin, stdout, stderr)
}

// env holds what tests replace: how to connect, the HTTP client, the
// clock, the bench driver and terminal detection.
type env struct {
	dial        func(ctx context.Context, connString string, onNotice func(*pgconn.Notice)) (sqlConn, error)
	httpClient  *http.Client
	now         func() time.Time
	benchDriver func(cfg *benchConfig) benchDriver
	isTerminal  func(r io.Reader) bool
	random      io.Reader // salts
	// readPassword asks for a password without echo (on a terminal).
	readPassword func(prompt string) (string, error)
}

func defaultEnv() env {
	return env{
		dial: func(ctx context.Context, cs string, onNotice func(*pgconn.Notice)) (sqlConn, error) {
			return dialPG(ctx, cs, onNotice)
		},
		httpClient:  &http.Client{},
		now:         time.Now,
		benchDriver: func(cfg *benchConfig) benchDriver { return pgxDriver{cfg: cfg} },
		isTerminal: func(r io.Reader) bool {
			f, ok := r.(*os.File)
			return ok && readline.IsTerminal(int(f.Fd()))
		},
		random: rand.Reader,
		readPassword: func(prompt string) (string, error) {
			b, err := readline.Password(prompt)
			return string(b), err
		},
	}
}

const defaultHTTP = "127.0.0.1:8080"

// adminFlags are shared by the subcommands that use the HTTP API.
func adminFlags() []cli.Flag { return adminFlagsTimeout(defaultHTTPTimeout) }

// adminFlagsTimeout is adminFlags with another --timeout default;
// backup and restore move whole databases and default to no limit.
func adminFlagsTimeout(timeout time.Duration) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "http", Value: defaultHTTP, EnvVars: []string{"RAFTSQL_HTTP"}, Usage: "HTTP API address of a node, `HOST:PORT`; status, join, remove and transfer-leadership take a comma-separated list (join/remove/transfer try each until one is the leader)"},
		&cli.StringFlag{Name: "user", EnvVars: []string{"RAFTSQL_USER"}, Usage: "user for HTTP basic authentication"},
		&cli.StringFlag{Name: "password", EnvVars: []string{"RAFTSQL_PASSWORD"}, Usage: "password for HTTP basic authentication"},
		&cli.StringFlag{Name: "cacert", EnvVars: []string{"RAFTSQL_CACERT"}, Usage: "CA certificate (PEM) that the nodes' HTTPS certificates chain to; addresses without a scheme then use https://"},
		&cli.DurationFlag{Name: "timeout", Value: timeout, Usage: "time limit of the whole request, 0 for none"},
	}
}

// adminValueFlags and shellValueFlags name the flags that take a value,
// for reorderArgs.
var (
	adminValueFlags = map[string]bool{"http": true, "user": true, "password": true, "cacert": true, "timeout": true, "consistency": true,
		"auth-file": true, "iterations": true}
	shellValueFlags = map[string]bool{"h": true, "host": true, "p": true, "port": true, "U": true, "username": true,
		"d": true, "dbname": true, "c": true, "command": true, "f": true, "file": true, "http": true, "v": true, "set": true}
)

// reorderArgs moves a subcommand's flags in front of its positional
// arguments, so `raftsql join 4 127.0.0.1:7003 --learner` works although
// the flag parser stops at the first positional argument.
func reorderArgs(args []string, valueFlags map[string]bool) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			return append(append(flags, "--"), pos...)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && valueFlags[name] && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(flags, pos...)
}

// adminString is the value of an admin flag, also when it was given
// before the subcommand (`raftsql --http ADDR status`, where the shell's
// own --http parsed it): the innermost context that set it wins.
func adminString(c *cli.Context, name string) string {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return ctx.String(name)
		}
	}
	return c.String(name)
}

func (e env) adminClient(c *cli.Context, addr string) *adminClient {
	if !strings.Contains(addr, "://") && (c.String("cacert") != "" || strings.Contains(adminString(c, "http"), "https://")) {
		// A node's own address (--http) or one /status reported for a
		// peer (http_addr has no scheme): the cluster speaks HTTPS.
		addr = "https://" + addr
	}
	ac := newAdminClient(addr, e.httpClient, c.String("user"), c.String("password"))
	ac.caFile = c.String("cacert")
	return ac
}

// adminClients returns a client per --http address (a comma-separated
// list), in the order given.
func (e env) adminClients(c *cli.Context) []*adminClient {
	var out []*adminClient
	for _, a := range splitList(adminString(c, "http")) {
		out = append(out, e.adminClient(c, a))
	}
	return out
}

// withTimeout bounds ctx by the --timeout flag (0: no bound).
func withTimeout(c *cli.Context) (context.Context, context.CancelFunc) {
	if d := c.Duration("timeout"); d > 0 {
		return context.WithTimeout(c.Context, d)
	}
	return context.WithCancel(c.Context)
}

func (e env) run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		switch args[1] {
		case "status", "backup", "restore", "join", "remove", "transfer-leadership", "passwd":
			args = append([]string{args[0], args[1]}, reorderArgs(args[2:], adminValueFlags)...)
		case "bench":
		default:
			args = append([]string{args[0]}, reorderArgs(args[1:], shellValueFlags)...)
		}
	}
	app := &cli.App{
		Name:                      "raftsql",
		Usage:                     "shell, admin and load tool for a raftsql cluster",
		UsageText:                 "raftsql [-h HOST] [-p PORT] [-U USER] [-d DB | URL] [-c SQL]... [-f FILE]\n   raftsql COMMAND [flags] [args]",
		HideHelp:                  true, // -h is the host, as in psql
		DisableSliceFlagSeparator: true, // -c 'INSERT … VALUES (1, 2)' must stay whole
		Reader:                    stdin,
		Writer:                    stdout,
		ErrWriter:                 stderr,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "help", Usage: "show help"},
			&cli.StringFlag{Name: "host", Aliases: []string{"h"}, EnvVars: []string{"PGHOST"}, Usage: "server host (default 127.0.0.1)"},
			&cli.StringFlag{Name: "port", Aliases: []string{"p"}, EnvVars: []string{"PGPORT"}, Usage: "server port (default 5433)"},
			&cli.StringFlag{Name: "username", Aliases: []string{"U"}, Usage: "user name"},
			&cli.StringFlag{Name: "dbname", Aliases: []string{"d"}, Usage: "database name or postgres:// URL"},
			&cli.StringSliceFlag{Name: "command", Aliases: []string{"c"}, Usage: "run `SQL` (or a backslash command) and exit; repeatable"},
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "run the statements of `FILE` (- for stdin) and exit"},
			&cli.StringFlag{Name: "http", Value: defaultHTTP, EnvVars: []string{"RAFTSQL_HTTP"}, Usage: "HTTP API address(es) for \\status, `HOST:PORT[,…]`"},
			&cli.StringSliceFlag{Name: "set", Aliases: []string{"v"}, Usage: "set a shell variable, `NAME=VALUE` (VERBOSITY=verbose prints SQLSTATEs; ON_ERROR_STOP=0 runs on after errors)"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("help") {
				return cli.ShowAppHelp(c)
			}
			return e.shellMain(c, stdin, stdout, stderr)
		},
		Commands: []*cli.Command{
			{
				Name:  "status",
				Usage: "show every node: role, term, indexes and lag",
				Flags: append(adminFlags(), &cli.BoolFlag{Name: "json", Usage: "print the nodes as a JSON array"}),
				Action: func(c *cli.Context) error {
					ctx, cancel := withTimeout(c)
					defer cancel()
					rows, err := clusterStatus(ctx, splitList(adminString(c, "http")), func(a string) *adminClient { return e.adminClient(c, a) })
					if err != nil {
						return err
					}
					if c.Bool("json") {
						enc := json.NewEncoder(stdout)
						enc.SetIndent("", "  ")
						return enc.Encode(statusJSONRows(rows))
					}
					return writeTable(stdout, statusTable(rows))
				},
			},
			{
				Name:      "backup",
				Usage:     "write a consistent SQLite copy of the database to FILE",
				ArgsUsage: "FILE",
				Flags:     append(adminFlags(), &cli.StringFlag{Name: "consistency", Usage: "`linearizable` (default) or stale (the asked node's state at once)"}),
				Action: func(c *cli.Context) error {
					file, err := oneArg(c, "FILE")
					if err != nil {
						return err
					}
					if cons := c.String("consistency"); cons != "" && cons != "linearizable" && cons != "stale" {
						return fmt.Errorf("%w: --consistency must be linearizable or stale, not %q", ErrUsage, cons)
					}
					ctx, cancel := withLongTimeout(c)
					defer cancel()
					n, err := e.adminClient(c, adminString(c, "http")).backup(ctx, file, c.String("consistency"))
					if err != nil {
						return err
					}
					fmt.Fprintf(stdout, "backup: wrote %d bytes to %s\n", n, file)
					return nil
				},
			},
			{
				Name:      "restore",
				Usage:     "replace the database on every node with the SQLite file FILE",
				ArgsUsage: "FILE",
				Flags:     adminFlagsTimeout(0),
				Action: func(c *cli.Context) error {
					file, err := oneArg(c, "FILE")
					if err != nil {
						return err
					}
					ctx, cancel := withLongTimeout(c)
					defer cancel()
					r, err := e.adminClient(c, adminString(c, "http")).restore(ctx, file)
					if err != nil {
						return err
					}
					at := ""
					if r.Index != 0 {
						at = fmt.Sprintf(" at log index %d", r.Index)
					}
					fmt.Fprintf(stdout, "restore: sent %d bytes from %s; the cluster applied it%s\n", r.Bytes, file, at)
					return nil
				},
			},
			{
				Name:      "join",
				Usage:     "add node ID with Raft address RAFTADDR to the cluster",
				ArgsUsage: "ID RAFTADDR",
				Flags:     append(adminFlags(), &cli.BoolFlag{Name: "learner", Usage: "add it as a non-voting learner"}),
				Action: func(c *cli.Context) error {
					if c.NArg() != 2 {
						return fmt.Errorf("%w: join needs ID RAFTADDR", ErrUsage)
					}
					id, addr := c.Args().Get(0), c.Args().Get(1)
					ctx, cancel := withTimeout(c)
					defer cancel()
					if err := join(ctx, e.adminClients(c), id, addr, !c.Bool("learner")); err != nil {
						return err
					}
					kind := "voter"
					if c.Bool("learner") {
						kind = "learner"
					}
					fmt.Fprintf(stdout, "join: node %s (raft %s) added as %s\n", id, addr, kind)
					return nil
				},
			},
			e.idCommand(stdout, "remove", "remove node ID from the cluster", remove, "remove: node %s removed\n"),
			e.idCommand(stdout, "transfer-leadership", "hand leadership to node ID", transferLeadership,
				"transfer-leadership: the cluster accepted the transfer to node %s\n"),
			e.benchCommand(stdout, stderr),
			e.passwdCommand(stdin, stdout),
		},
	}
	err := app.RunContext(ctx, args)
	if err != nil && !errors.Is(err, ErrStatementFailed) {
		fmt.Fprintf(stderr, "raftsql: %v\n", err)
	}
	return err
}

// withLongTimeout is withTimeout for transfers; it also stops on Ctrl-C.
func withLongTimeout(c *cli.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := withTimeout(c)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	return ctx, func() { stop(); cancel() }
}

func oneArg(c *cli.Context, name string) (string, error) {
	if c.NArg() != 1 || c.Args().First() == "" {
		return "", fmt.Errorf("%w: %s needs %s", ErrUsage, c.Command.Name, name)
	}
	return c.Args().First(), nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// shellMain connects and runs -c commands, a -f file, piped input or the
// interactive prompt.
func (e env) shellMain(c *cli.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	opts := connOptions{Host: c.String("host"), Port: c.String("port"), User: c.String("username"), Database: c.String("dbname")}
	// psql takes the database (or a URL) and the user as arguments too.
	switch c.NArg() {
	case 0:
	case 1, 2:
		if opts.Database == "" {
			opts.Database = c.Args().Get(0)
		}
		if c.NArg() == 2 && opts.User == "" {
			opts.User = c.Args().Get(1)
		}
	default:
		return fmt.Errorf("%w: too many arguments: %s", ErrUsage, strings.Join(c.Args().Slice(), " "))
	}
	if strings.HasPrefix(opts.Database, "postgres://") || strings.HasPrefix(opts.Database, "postgresql://") || strings.Contains(opts.Database, "=") {
		opts.URL, opts.Database = opts.Database, ""
	}
	commands := c.StringSlice("command")
	file := c.String("file")
	interactive := len(commands) == 0 && file == "" && e.isTerminal(stdin)

	ctx := c.Context
	if !interactive {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt)
		defer stop()
	}
	dial := func(ctx context.Context) (sqlConn, error) {
		return e.dial(ctx, opts.connString(), func(n *pgconn.Notice) { printNotice(stderr, n) })
	}
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	sh := &shell{conn: conn, out: stdout, errOut: stderr, now: e.now}
	defer func() { sh.conn.Close(context.WithoutCancel(ctx)) }()
	if interactive {
		sh.reconnect = dial
	}
	for _, v := range c.StringSlice("set") {
		name, value, _ := strings.Cut(v, "=")
		if err := sh.set([]string{name, value}); err != nil {
			return err
		}
	}
	if addrs := splitList(c.String("http")); len(addrs) > 0 {
		sh.status = func(ctx context.Context) ([]statusRow, error) {
			ctx, cancel := context.WithTimeout(ctx, defaultHTTPTimeout)
			defer cancel()
			return clusterStatus(ctx, addrs, func(a string) *adminClient {
				return newAdminClient(a, e.httpClient, os.Getenv("RAFTSQL_USER"), os.Getenv("RAFTSQL_PASSWORD"))
			})
		}
	}
	switch {
	case len(commands) > 0:
		var first error
		for _, cmd := range commands {
			if err := sh.runCommand(ctx, cmd); err != nil {
				if sh.stopOnError() {
					return err
				}
				first = cmp.Or(first, err)
			}
			if sh.quit {
				break
			}
		}
		if file != "" && !sh.quit {
			first = cmp.Or(first, e.runFile(ctx, sh, file, stdin))
		}
		return first
	case file != "":
		return e.runFile(ctx, sh, file, stdin)
	case !interactive:
		return sh.runScript(ctx, stdin)
	}
	rc, ok := stdin.(io.ReadCloser)
	if !ok {
		rc = io.NopCloser(stdin)
	}
	return sh.interactive(ctx, rc, stdout)
}

func (e env) runFile(ctx context.Context, sh *shell, file string, stdin io.Reader) error {
	if file == "-" {
		return sh.runScript(ctx, stdin)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return sh.runScript(ctx, f)
}

func (e env) benchCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "run a write/read load over the PostgreSQL protocol and report ops/s and latency",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "hosts", Value: "127.0.0.1:5433", Usage: "comma-separated `HOST:PORT` list; connections are spread round-robin"},
			&cli.StringFlag{Name: "username", Aliases: []string{"U"}, Value: "raftsql", Usage: "user name"},
			&cli.StringFlag{Name: "password", EnvVars: []string{"PGPASSWORD"}, Usage: "password"},
			&cli.StringFlag{Name: "dbname", Aliases: []string{"d"}, Value: "raftsql", Usage: "database name"},
			&cli.IntFlag{Name: "conns", Value: 16, Usage: "connections"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "run this long (with --ops only when given: whichever ends first)"},
			&cli.Int64Flag{Name: "ops", Usage: "run this many operations"},
			&cli.StringFlag{Name: "workload", Value: "mixed", Usage: "write, read or mixed"},
			&cli.IntFlag{Name: "read-percent", Value: 50, Usage: "share of reads in the mixed workload"},
			&cli.StringFlag{Name: "read-consistency", Usage: "linearizable, lease or stale (default: the server's)"},
			&cli.IntFlag{Name: "value-size", Value: 100, Usage: "bytes per written value"},
			&cli.IntFlag{Name: "keys", Value: 1000, Usage: "number of distinct keys"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the key and value choice"},
			&cli.DurationFlag{Name: "op-timeout", Value: 5 * time.Second, Usage: "an operation taking longer is an error and its connection is replaced (0: no limit)"},
			&cli.BoolFlag{Name: "json", Usage: "print the final report as JSON (progress lines go to stderr)"},
		},
		Action: func(c *cli.Context) error {
			cfg := benchConfig{
				Hosts: splitList(c.String("hosts")), User: c.String("username"), Password: c.String("password"),
				Database: c.String("dbname"), Conns: c.Int("conns"), Duration: c.Duration("duration"),
				Ops: c.Int64("ops"), Workload: c.String("workload"), ReadPercent: c.Int("read-percent"),
				ReadConsistency: c.String("read-consistency"), ValueSize: c.Int("value-size"),
				Keys: c.Int("keys"), Seed: c.Uint64("seed"), OpTimeout: c.Duration("op-timeout"),
			}
			if cfg.Ops > 0 && !c.IsSet("duration") {
				cfg.Duration = 0 // --ops alone: a count bound, not the default time
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt) // Ctrl-C ends the run early, with a report
			defer stop()
			progress := stdout
			if c.Bool("json") {
				progress = stderr
			}
			res, err := runBench(ctx, cfg, e.benchDriver(&cfg), e.now, progress)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(benchReportJSON(cfg, res))
			}
			return writeBenchReport(stdout, res)
		},
	}
}

func (e env) passwdCommand(stdin io.Reader, stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "passwd",
		Usage:     "set USER's password in an auth file (a SCRAM-SHA-256 verifier, never the password)",
		ArgsUsage: "USER",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "auth-file", Required: true, EnvVars: []string{"RAFTSQL_AUTH_FILE"}, Usage: "the `FILE` raftsqld reads with --auth-file"},
			&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from the first line of stdin instead of prompting"},
			&cli.IntFlag{Name: "iterations", Value: auth.DefaultIterations, Usage: "PBKDF2 iterations"},
		},
		Action: func(c *cli.Context) error {
			user, err := oneArg(c, "USER")
			if err != nil {
				return err
			}
			if it := c.Int("iterations"); it < 4096 || it > 10_000_000 {
				return fmt.Errorf("%w: --iterations must be between 4096 and 10000000", ErrUsage)
			}
			var pw string
			switch {
			case c.Bool("password-stdin") || !e.isTerminal(stdin):
				if pw, err = readPasswordLine(stdin); err != nil {
					return err
				}
			default:
				if pw, err = e.readPassword("Password for " + user + ": "); err != nil {
					return err
				}
				again, err := e.readPassword("Again: ")
				if err != nil {
					return err
				}
				if again != pw {
					return fmt.Errorf("%w: the passwords differ", ErrBadPassword)
				}
			}
			salt := make([]byte, auth.SaltLen)
			if _, err := io.ReadFull(e.random, salt); err != nil {
				return fmt.Errorf("salt: %w", err)
			}
			v, err := auth.NewVerifier(pw, salt, c.Int("iterations"))
			if err != nil {
				return err
			}
			if err := setAuthEntry(c.String("auth-file"), user, v.Encode()); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "passwd: set the password of %s in %s\n", user, c.String("auth-file"))
			return nil
		},
	}
}

// idCommand is an admin subcommand that takes one node ID and calls do
// (remove, transfer-leadership), printing done with the ID on success.
func (e env) idCommand(stdout io.Writer, name, usage string, do func(context.Context, []*adminClient, string) error, done string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "ID",
		Flags:     adminFlags(),
		Action: func(c *cli.Context) error {
			id, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(c)
			defer cancel()
			if err := do(ctx, e.adminClients(c), id); err != nil {
				return err
			}
			fmt.Fprintf(stdout, done, id)
			return nil
		},
	}
}
