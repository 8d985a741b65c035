package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/raftsql/raftsql/test/faultproxy"
)

// Errors of the harness.
var (
	ErrNoLeader    = errors.New("cluster: no leader agreed by a majority")
	ErrNotRunning  = errors.New("cluster: node is not running")
	ErrRunning     = errors.New("cluster: node is already running")
	ErrUnsupported = errors.New("cluster: endpoint not supported by this raftsqld")
	ErrHTTP        = errors.New("cluster: HTTP error")
	ErrUnknownNode = errors.New("cluster: unknown node")
)

// Options configures a cluster.
type Options struct {
	Binary string // path to raftsqld
	Nodes  int    // number of initial voters (default 3)
	Dir    string // where data directories and logs go (must exist)
	Logger *slog.Logger
	// Timing of every node. The defaults ride through fsync stalls of a
	// few hundred milliseconds on a loaded machine.
	ElectionTimeout   time.Duration // default 1.5s (raftsqld randomizes up to twice this)
	HeartbeatInterval time.Duration // default 200ms
	// SnapshotEntries is passed as --snapshot-entries when > 0.
	SnapshotEntries int
	// ExtraArgs are appended to every node's command line.
	ExtraArgs []string
	// Seed drives the fault proxy's jitter.
	Seed uint64
	// HTTPTimeout bounds one request to a node's HTTP API (default 2s).
	HTTPTimeout time.Duration
}

// Member is one entry of /status "configuration".
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
}

// Status is a node's GET /status.
type Status struct {
	ID            string   `json:"id"`
	Role          string   `json:"role"`
	Term          uint64   `json:"term"`
	Leader        string   `json:"leader"`
	CommitIndex   uint64   `json:"commit_index"`
	AppliedIndex  uint64   `json:"applied_index"`
	Configuration []Member `json:"configuration"`
}

// Cluster is a set of raftsqld processes and the fault network between them.
type Cluster struct {
	opts Options
	log  *slog.Logger
	Net  *faultproxy.Network
	http *http.Client

	mu      sync.Mutex
	nodes   []*Node
	initial int // the first nodes, bootstrapped with --peers
}

// Node is one raftsqld process (across restarts).
type Node struct {
	ID        string
	Dir       string // Dir/<id>
	DataDir   string // --data-dir
	LogPath   string // stdout+stderr of every run
	PGAddr    string
	RaftAddr  string // the real listen address
	FrontDoor string // the proxy address peers use
	HTTPAddr  string

	c       *Cluster
	join    string // --join address, for a node added to a running cluster
	learner bool
	retired bool     // removed from the configuration through the harness
	env     []string // extra environment (test-only hooks), see SetEnv

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	paused  bool
	starts  int
	logFile *os.File
}

// Start creates and starts a cluster and waits (within ctx) until every
// node is ready and a leader is agreed. On error the processes already
// started are killed.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := New(opts)
	if err != nil {
		return nil, err
	}
	for _, n := range c.Nodes() {
		if err := n.Start(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitStarted(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// WaitStarted is WaitReady for freshly started nodes: a node that exited
// because one of its ports was taken in the meantime (another process
// bound it between the harness choosing it and the node binding it) gets
// new ports and is started again, up to three times.
func (c *Cluster) WaitStarted(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := c.WaitReady(ctx)
		if err == nil {
			// WaitReady skips stopped nodes: every node must run.
			for _, n := range c.Nodes() {
				if !n.Running() {
					_, exit := n.Exited()
					err = fmt.Errorf("%w: %s exited at start (%v; see %s)", ErrNotRunning, n.ID, exit, n.LogPath)
				}
			}
		}
		if err == nil || attempt == 3 {
			return err
		}
		moved := false
		for _, n := range c.Nodes() {
			if n.Running() || !n.portTaken() {
				continue
			}
			if rerr := n.reallocate(); rerr != nil {
				return rerr
			}
			c.log.Warn("cluster: a port of the node was taken; restarting it on new ports", "node", n.ID)
			if serr := n.Start(ctx); serr != nil {
				return serr
			}
			moved = true
		}
		if !moved {
			return err
		}
	}
}

// portTaken reports whether the node's last run ended on a bind error.
func (n *Node) portTaken() bool {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		return false
	}
	if i := bytes.LastIndex(b, []byte("=== harness: start #")); i >= 0 {
		b = b[i:]
	}
	return bytes.Contains(b, []byte("address already in use"))
}

// reallocate gives a stopped node new listen addresses; its front door
// forwards to the new Raft address.
func (n *Node) reallocate() error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.PGAddr, n.RaftAddr, n.HTTPAddr = ports[0], ports[1], ports[2]
	n.mu.Unlock()
	n.c.Net.SetTarget(n.ID, n.RaftAddr)
	return nil
}

// New prepares a cluster (ports, proxies, directories) without starting
// any process.
func New(opts Options) (*Cluster, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.ElectionTimeout == 0 {
		opts.ElectionTimeout = 1500 * time.Millisecond
	}
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = 200 * time.Millisecond
	}
	if opts.HTTPTimeout == 0 {
		opts.HTTPTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Binary == "" || opts.Dir == "" {
		return nil, fmt.Errorf("cluster: Options.Binary and Options.Dir are required")
	}
	c := &Cluster{
		opts: opts,
		log:  opts.Logger,
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	c.Net = faultproxy.New(opts.Logger, faultproxy.ProcIdentify(c.Pids), opts.Seed)
	for i := 0; i < opts.Nodes; i++ {
		if _, err := c.newNode(); err != nil {
			return nil, err
		}
	}
	c.initial = opts.Nodes
	return c, nil
}

// newNode allocates the next node's id, ports, directory and front door.
func (c *Cluster) newNode() (*Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("n%d", len(c.nodes)+1)
	dir := filepath.Join(c.opts.Dir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n := &Node{
		ID:       id,
		Dir:      dir,
		DataDir:  filepath.Join(dir, "data"),
		LogPath:  filepath.Join(c.opts.Dir, id+".log"),
		PGAddr:   ports[0],
		RaftAddr: ports[1],
		HTTPAddr: ports[2],
		c:        c,
	}
	front, err := c.Net.Listen(id, n.RaftAddr)
	if err != nil {
		return nil, err
	}
	n.FrontDoor = front
	c.nodes = append(c.nodes, n)
	return n, nil
}

// SetJoin changes the member a node added with AddNode joins through
// (used at its next start).
func (n *Node) SetJoin(member *Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.join = member.HTTPAddr
}

// SetEnv sets extra environment variables ("NAME=value") of the node's
// next starts, e.g. RAFTSQL_TEST_CLOCK_RATE; SetEnv() clears them.
// RAFTSQL_* variables of the test's own environment never reach a node.
func (n *Node) SetEnv(kv ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.env = append([]string(nil), kv...)
}

// AddNode creates a node that joins the running cluster through the HTTP
// API of member (--join), as a non-voting learner if learner, and starts
// it (without waiting). The node advertises its front door
// (--raft-advertise-addr), so its Raft links go through the fault proxy.
func (c *Cluster) AddNode(ctx context.Context, member *Node, learner bool) (*Node, error) {
	n, err := c.newNode()
	if err != nil {
		return nil, err
	}
	n.join = member.HTTPAddr
	n.learner = learner
	return n, n.Start(ctx)
}

// freePorts returns k distinct free loopback addresses. They are free when
// returned; a process must bind them soon. They are drawn below the
// kernel's ephemeral port range, so that the proxies' listeners, client
// connections and other tests' ":0" listeners (which the kernel serves from
// that range) cannot take them in the meantime.
func freePorts(k int) ([]string, error) {
	lo, hi := portRange()
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var out []string
	for tries := 0; len(out) < k && tries < 1000; tries++ {
		port := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	if len(out) < k {
		return nil, fmt.Errorf("cluster: no free port in [%d, %d)", lo, hi)
	}
	return out, nil
}

// portRange is where freePorts looks: up to 20000 ports just below the
// ephemeral range of /proc/sys/net/ipv4/ip_local_port_range (default
// 32768), never below 1024.
func portRange() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var a, z int
		if _, err := fmt.Sscan(string(b), &a, &z); err == nil && a > 2048 {
			hi = a
		}
	}
	lo = max(1024, hi-20000)
	return lo, hi
}

// Nodes returns every node, in id order.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// IDs returns every node id.
func (c *Cluster) IDs() []string {
	nodes := c.Nodes()
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}

// Node returns the node with id (nil if none).
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes() {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Pids maps the pid of every running node to its id.
func (c *Cluster) Pids() map[int]string {
	out := map[int]string{}
	for _, n := range c.Nodes() {
		if pid := n.Pid(); pid > 0 {
			out[pid] = n.ID
		}
	}
	return out
}

// Peers is the --peers value: every initial node's front door.
func (c *Cluster) Peers() string {
	var parts []string
	for _, n := range c.Nodes()[:c.initial] {
		parts = append(parts, n.ID+"="+n.FrontDoor)
	}
	return strings.Join(parts, ",")
}

// Args returns the command line of node n.
func (n *Node) Args() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.argsLocked()
}

func (n *Node) argsLocked() []string {
	o := n.c.opts
	args := []string{
		"--id", n.ID,
		"--data-dir", n.DataDir,
		"--pg-addr", n.PGAddr,
		"--raft-addr", n.RaftAddr,
		"--http-addr", n.HTTPAddr,
	}
	switch {
	case n.join != "":
		args = append(args, "--join", n.join, "--raft-advertise-addr", n.FrontDoor)
		if n.learner {
			args = append(args, "--learner")
		}
	default:
		args = append(args, "--peers", n.c.Peers())
	}
	args = append(args,
		"--election-timeout", o.ElectionTimeout.String(),
		"--heartbeat-interval", o.HeartbeatInterval.String(),
	)
	if o.SnapshotEntries > 0 {
		args = append(args, "--snapshot-entries", fmt.Sprint(o.SnapshotEntries))
	}
	return append(args, o.ExtraArgs...)
}

// Start starts the node's process (it does not wait for readiness).
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("%w: %s", ErrRunning, n.ID)
	}
	if n.logFile == nil {
		f, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		n.logFile = f
	}
	n.starts++
	args := n.argsLocked()
	envs := ""
	if len(n.env) > 0 {
		envs = strings.Join(n.env, " ") + " "
	}
	fmt.Fprintf(n.logFile, "=== harness: start #%d of %s at %s: %s%s %s\n", n.starts, n.ID,
		time.Now().UTC().Format(time.RFC3339Nano), envs, n.c.opts.Binary, strings.Join(args, " "))
	cmd := exec.Command(n.c.opts.Binary, args...)
	cmd.Stdout = n.logFile
	cmd.Stderr = n.logFile
	cmd.Dir = n.Dir
	cmd.Env = append(cleanEnv(), n.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cluster: start %s: %w", n.ID, err)
	}
	n.cmd = cmd
	n.paused = false
	exited := make(chan struct{})
	n.exited = exited
	n.exitErr = nil
	n.c.log.Info("cluster: started", "node", n.ID, "pid", cmd.Process.Pid, "start", n.starts)
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.exitErr = err
		if n.cmd == cmd {
			n.cmd = nil
		}
		n.mu.Unlock()
		n.c.log.Info("cluster: exited", "node", n.ID, "pid", cmd.Process.Pid, "status", fmt.Sprint(err))
		fmt.Fprintf(n.logFile, "=== harness: %s pid %d exited at %s: %v\n", n.ID, cmd.Process.Pid,
			time.Now().UTC().Format(time.RFC3339Nano), err)
		close(exited)
	}()
	return nil
}

// cleanEnv is the environment without RAFTSQL_* variables, so that a
// developer's settings never leak into a test node.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RAFTSQL_") {
			out = append(out, kv)
		}
	}
	return out
}

// Pid is the running process id (0 if not running).
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Running reports whether the process is alive (paused counts as alive).
func (n *Node) Running() bool { return n.Pid() != 0 }

// Paused reports whether the process is SIGSTOPped by the harness.
func (n *Node) Paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && n.paused
}

// Exited returns a channel closed when the current process exits, and
// the exit status once it has (nil channel if never started).
func (n *Node) Exited() (<-chan struct{}, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exited, n.exitErr
}

func (n *Node) signal(sig syscall.Signal) (<-chan struct{}, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotRunning, n.ID)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("cluster: signal %v to %s: %w", sig, n.ID, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return n.exited, nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (n *Node) Kill() error {
	exited, err := n.signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	<-exited // SIGKILL cannot be ignored, even by a stopped process
	n.c.log.Info("cluster: killed", "node", n.ID)
	return nil
}

// Stop sends SIGTERM and waits for a clean exit; if ctx ends first it
// kills the process and returns an error.
func (n *Node) Stop(ctx context.Context) error {
	if n.Paused() {
		if err := n.Resume(); err != nil {
			return err
		}
	}
	exited, err := n.signal(syscall.SIGTERM)
	if err != nil {
		return err
	}
	select {
	case <-exited:
		_, err := n.Exited()
		if err != nil {
			return fmt.Errorf("cluster: %s exited uncleanly after SIGTERM: %w", n.ID, err)
		}
		return nil
	case <-ctx.Done():
		n.Kill()
		return fmt.Errorf("cluster: %s did not stop after SIGTERM: %w", n.ID, ctx.Err())
	}
}

// Pause sends SIGSTOP and waits (up to 5 s) until every thread of the
// process is stopped: the signal is asynchronous, and a thread that is
// running when it is sent may answer one more request.
func (n *Node) Pause() error {
	if _, err := n.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	pid := n.Pid()
	deadline := time.Now().Add(5 * time.Second)
	for !allStopped(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: %s (pid %d) not stopped 5s after SIGSTOP", n.ID, pid)
		}
		time.Sleep(time.Millisecond)
	}
	n.c.log.Info("cluster: paused", "node", n.ID)
	return nil
}

// allStopped reports whether every thread of pid is in state T (stopped).
// Where /proc is missing it reports true.
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return true
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			continue // the thread exited
		}
		// The state follows the command name in parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return false
		}
		if st := b[i+2]; st != 'T' && st != 't' {
			return false
		}
	}
	return true
}

// Resume sends SIGCONT.
func (n *Node) Resume() error {
	_, err := n.signal(syscall.SIGCONT)
	if err == nil {
		n.c.log.Info("cluster: resumed", "node", n.ID)
	}
	return err
}

// DSN is a libpq URL for the node with the given read consistency
// ("" keeps the server's default), set through the startup options.
func (n *Node) DSN(consistency string) string {
	host, port, _ := net.SplitHostPort(n.PGAddr)
	u := url.URL{Scheme: "postgres", User: url.User("raftsql"), Host: net.JoinHostPort(host, port), Path: "/raftsql"}
	q := url.Values{}
	q.Set("sslmode", "disable")
	q.Set("connect_timeout", "5")
	if consistency != "" {
		q.Set("options", "-c raftsql.read_consistency="+consistency)
	}
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String()
}

// Do sends one request to the node's HTTP API. in (if not nil) is sent as
// JSON; a 2xx answer is decoded into out (if not nil). It returns the
// status code; a non-2xx answer is an ErrHTTP error carrying the body.
func (n *Node) Do(ctx context.Context, method, path string, in, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, n.c.opts.HTTPTimeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("cluster: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.HTTPAddr+path, body)
	if err != nil {
		return 0, fmt.Errorf("cluster: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cluster: %s %s on %s: %w", method, path, n.ID, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("cluster: %s %s on %s: %w", method, path, n.ID, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%w: %s %s on %s: %d %s", ErrHTTP, method, path, n.ID, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		if b, ok := out.(*[]byte); ok {
			*b = raw
			return resp.StatusCode, nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("cluster: %s %s on %s: bad JSON %q: %w", method, path, n.ID, raw, err)
		}
	}
	return resp.StatusCode, nil
}

// Status fetches GET /status.
func (n *Node) Status(ctx context.Context) (Status, error) {
	var s Status
	_, err := n.Do(ctx, http.MethodGet, "/status", nil, &s)
	return s, err
}

// Ready reports GET /readyz == 200 as a nil error.
func (n *Node) Ready(ctx context.Context) error {
	_, err := n.Do(ctx, http.MethodGet, "/readyz", nil, nil)
	return err
}

// poll calls f every interval until it returns nil or ctx ends; the last
// error is wrapped into the timeout error.
func poll(ctx context.Context, what string, f func() error) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		err := f()
		if err == nil {
			return nil
		}
		if last == nil || ctx.Err() == nil {
			last = err // keep the last failure not caused by ctx ending
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for %s: %w (last: %w)", what, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// WaitReady polls /readyz of node n until 200 or ctx ends. It fails at
// once if the process exits.
func (n *Node) WaitReady(ctx context.Context) error {
	var exited error
	err := poll(ctx, n.ID+" /readyz", func() error {
		if !n.Running() {
			_, err := n.Exited()
			exited = fmt.Errorf("%w: %s (exit: %v; see %s)", ErrNotRunning, n.ID, err, n.LogPath)
			return nil // stop polling: an exited process does not come back
		}
		return n.Ready(ctx)
	})
	if exited != nil {
		return exited
	}
	return err
}

// WaitReady waits until every running, unpaused node is ready and a leader
// is agreed.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for _, n := range c.Nodes() {
		if !n.Running() || n.Paused() {
			continue
		}
		if err := n.WaitReady(ctx); err != nil {
			return err
		}
	}
	_, err := c.WaitLeader(ctx)
	return err
}

// Statuses fetches /status of every running, unpaused node in parallel;
// nodes that do not answer are missing from the map.
func (c *Cluster) Statuses(ctx context.Context) map[string]Status {
	var mu sync.Mutex
	out := map[string]Status{}
	var wg sync.WaitGroup
	for _, n := range c.Nodes() {
		if !n.Running() || n.Paused() {
			continue
		}
		wg.Add(1)
		go func(n *Node) {
			defer wg.Done()
			if s, err := n.Status(ctx); err == nil {
				mu.Lock()
				out[n.ID] = s
				mu.Unlock()
			}
		}(n)
	}
	wg.Wait()
	return out
}

// Leader returns the node that a majority of the cluster (counting every
// initial node, up or not) reports as leader in the same term, itself
// included.
func (c *Cluster) Leader(ctx context.Context) (*Node, Status, error) {
	st := c.Statuses(ctx)
	return c.leaderOf(st)
}

func (c *Cluster) leaderOf(st map[string]Status) (*Node, Status, error) {
	type key struct {
		id   string
		term uint64
	}
	votes := map[key]int{}
	for _, s := range st {
		if s.Leader != "" {
			votes[key{s.Leader, s.Term}]++
		}
	}
	for k, v := range votes {
		ls, ok := st[k.id]
		if ok && ls.Role == "leader" && ls.Term == k.term && v >= c.quorum(ls) {
			return c.Node(k.id), ls, nil
		}
	}
	return nil, Status{}, fmt.Errorf("%w: %s", ErrNoLeader, describe(st))
}

// quorum is the number of votes a leader needs: a majority of the voters
// in its configuration, or of every node when it reports none.
func (c *Cluster) quorum(ls Status) int {
	voters := 0
	for _, m := range ls.Configuration {
		if m.Voter {
			voters++
		}
	}
	if voters == 0 {
		voters = len(c.Nodes())
	}
	return voters/2 + 1
}

func describe(st map[string]Status) string {
	var parts []string
	for id, s := range st {
		parts = append(parts, fmt.Sprintf("%s:%s/t%d/lead=%s/commit=%d/applied=%d", id, s.Role, s.Term, s.Leader, s.CommitIndex, s.AppliedIndex))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "no node answered"
	}
	return strings.Join(parts, " ")
}

// WaitLeader polls until Leader succeeds.
func (c *Cluster) WaitLeader(ctx context.Context) (*Node, error) {
	var leader *Node
	err := poll(ctx, "a leader", func() error {
		l, _, err := c.Leader(ctx)
		leader = l
		return err
	})
	return leader, err
}

// WaitConverged waits until a leader is agreed and every running, unpaused
// node of the leader's configuration has applied everything the leader has
// committed, the leader included (a removed node that still runs is not
// waited for). Call it once the workload is quiet.
func (c *Cluster) WaitConverged(ctx context.Context) error {
	return poll(ctx, "replicas to converge", func() error {
		st := c.Statuses(ctx)
		_, ls, err := c.leaderOf(st)
		if err != nil {
			return err
		}
		for _, n := range c.Nodes() {
			if !n.Running() || n.Paused() || !inConf(ls.Configuration, n.ID) {
				continue
			}
			s, ok := st[n.ID]
			if !ok {
				return fmt.Errorf("%s did not answer /status", n.ID)
			}
			if s.AppliedIndex < ls.CommitIndex {
				return fmt.Errorf("%s applied %d < leader commit %d (%s)", n.ID, s.AppliedIndex, ls.CommitIndex, describe(st))
			}
		}
		return nil
	})
}

// inConf reports whether id is in conf; an empty configuration (a node
// that reports none) holds every node.
func inConf(conf []Member, id string) bool {
	if len(conf) == 0 {
		return true
	}
	for _, m := range conf {
		if m.ID == id {
			return true
		}
	}
	return false
}

// TransferLeadership asks the current leader to hand leadership to id.
// A 404 or 405 answer is ErrUnsupported.
func (c *Cluster) TransferLeadership(ctx context.Context, id string) error {
	leader, _, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	code, err := leader.Do(ctx, http.MethodPost, "/transfer-leadership", map[string]string{"id": id}, nil)
	if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
		return fmt.Errorf("%w: POST /transfer-leadership: %d", ErrUnsupported, code)
	}
	return err
}

// Backup fetches GET /backup from node n. ErrUnsupported on 404/405.
func (n *Node) Backup(ctx context.Context) ([]byte, error) {
	var b []byte
	code, err := n.Do(ctx, http.MethodGet, "/backup", nil, &b)
	if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
		return nil, fmt.Errorf("%w: GET /backup: %d", ErrUnsupported, code)
	}
	return b, err
}

// StartNode starts node id (see Node.Start).
func (c *Cluster) StartNode(ctx context.Context, id string) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("%w: %s", ErrUnknownNode, id)
	}
	return n.Start(ctx)
}

// Close kills every process and closes the fault network. It is safe to
// call more than once.
func (c *Cluster) Close() error {
	for _, n := range c.Nodes() {
		if n.Running() {
			n.Kill()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Net.Close(ctx)
	for _, n := range c.Nodes() {
		n.mu.Lock()
		if n.logFile != nil {
			n.logFile.Close()
			n.logFile = nil
		}
		n.mu.Unlock()
	}
	return err
}
