package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	opts  Options
	log   *slog.Logger
	Net   *faultproxy.Network
	nodes []*Node
	http  *http.Client
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

	c *Cluster

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
	for _, n := range c.nodes {
		if err := n.Start(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
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
	ports, err := freePorts(3 * opts.Nodes)
	if err != nil {
		return nil, err
	}
	for i := 0; i < opts.Nodes; i++ {
		id := fmt.Sprintf("n%d", i+1)
		dir := filepath.Join(opts.Dir, id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		n := &Node{
			ID:       id,
			Dir:      dir,
			DataDir:  filepath.Join(dir, "data"),
			LogPath:  filepath.Join(opts.Dir, id+".log"),
			PGAddr:   ports[3*i],
			RaftAddr: ports[3*i+1],
			HTTPAddr: ports[3*i+2],
			c:        c,
		}
		front, err := c.Net.Listen(id, n.RaftAddr)
		if err != nil {
			return nil, err
		}
		n.FrontDoor = front
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// freePorts returns k distinct free loopback addresses. They are free when
// returned; a process must bind them soon.
func freePorts(k int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var out []string
	for i := 0; i < k; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cluster: free port: %w", err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// Nodes returns every node, in id order.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// IDs returns every node id.
func (c *Cluster) IDs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.ID
	}
	return out
}

// Node returns the node with id (nil if none).
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Pids maps the pid of every running node to its id.
func (c *Cluster) Pids() map[int]string {
	out := map[int]string{}
	for _, n := range c.nodes {
		if pid := n.Pid(); pid > 0 {
			out[pid] = n.ID
		}
	}
	return out
}

// Peers is the --peers value: every node's front door.
func (c *Cluster) Peers() string {
	var parts []string
	for _, n := range c.nodes {
		parts = append(parts, n.ID+"="+n.FrontDoor)
	}
	return strings.Join(parts, ",")
}

// Args returns the command line of node n.
func (n *Node) Args() []string {
	o := n.c.opts
	args := []string{
		"--id", n.ID,
		"--data-dir", n.DataDir,
		"--pg-addr", n.PGAddr,
		"--raft-addr", n.RaftAddr,
		"--http-addr", n.HTTPAddr,
		"--peers", n.c.Peers(),
		"--election-timeout", o.ElectionTimeout.String(),
		"--heartbeat-interval", o.HeartbeatInterval.String(),
	}
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
	args := n.Args()
	fmt.Fprintf(n.logFile, "=== harness: start #%d of %s at %s: %s %s\n", n.starts, n.ID,
		time.Now().UTC().Format(time.RFC3339Nano), n.c.opts.Binary, strings.Join(args, " "))
	cmd := exec.Command(n.c.opts.Binary, args...)
	cmd.Stdout = n.logFile
	cmd.Stderr = n.logFile
	cmd.Dir = n.Dir
	cmd.Env = cleanEnv()
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

// Pause sends SIGSTOP.
func (n *Node) Pause() error {
	_, err := n.signal(syscall.SIGSTOP)
	if err == nil {
		n.c.log.Info("cluster: paused", "node", n.ID)
	}
	return err
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
		if last = f(); last == nil {
			return nil
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
	return poll(ctx, n.ID+" /readyz", func() error {
		if !n.Running() {
			_, err := n.Exited()
			return fmt.Errorf("%w: %s (exit: %v; see %s)", ErrNotRunning, n.ID, err, n.LogPath)
		}
		return n.Ready(ctx)
	})
}

// WaitReady waits until every running, unpaused node is ready and a leader
// is agreed.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for _, n := range c.nodes {
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
	for _, n := range c.nodes {
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
		if v > len(c.nodes)/2 && ok && ls.Role == "leader" && ls.Term == k.term {
			return c.Node(k.id), ls, nil
		}
	}
	return nil, Status{}, fmt.Errorf("%w: %s", ErrNoLeader, describe(st))
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
// node has applied everything the leader has committed, the leader
// included. Call it once the workload is quiet.
func (c *Cluster) WaitConverged(ctx context.Context) error {
	return poll(ctx, "replicas to converge", func() error {
		st := c.Statuses(ctx)
		_, ls, err := c.leaderOf(st)
		if err != nil {
			return err
		}
		for _, n := range c.nodes {
			if !n.Running() || n.Paused() {
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
	for _, n := range c.nodes {
		if n.Running() {
			n.Kill()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Net.Close(ctx)
	for _, n := range c.nodes {
		n.mu.Lock()
		if n.logFile != nil {
			n.logFile.Close()
			n.logFile = nil
		}
		n.mu.Unlock()
	}
	return err
}
