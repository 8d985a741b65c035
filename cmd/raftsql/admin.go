package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/raftsql/raftsql/backup"
)

// adminClient talks to one node's HTTP API (DESIGN.md, "The HTTP API").
type adminClient struct {
	base     string // "http://host:port"
	hc       *http.Client
	user     string
	password string
	// caFile, when set, is a PEM CA the server certificates must chain
	// to (--cacert); hc is then used with that trust.
	caFile string
	caOnce sync.Once
	caHC   *http.Client
	caErr  error
}

// newAdminClient returns a client for addr, "host:port" or a full
// http(s):// URL.
func newAdminClient(addr string, hc *http.Client, user, password string) *adminClient {
	base := strings.TrimRight(addr, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	return &adminClient{base: base, hc: hc, user: user, password: password}
}

// client returns the HTTP client to use: hc, or with --cacert a copy of
// it that trusts that CA.
func (c *adminClient) client() (*http.Client, error) {
	if c.caFile == "" {
		return c.hc, nil
	}
	c.caOnce.Do(func() {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			c.caErr = fmt.Errorf("--cacert: %w", err)
			return
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			c.caErr = fmt.Errorf("--cacert %s: no PEM certificate in it", c.caFile)
			return
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if t, ok := c.hc.Transport.(*http.Transport); ok {
			tr = t.Clone()
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		hc := *c.hc
		hc.Transport = tr
		c.caHC = &hc
	})
	return c.caHC, c.caErr
}

// apiError is a 4xx/5xx reply; Message is the body's "error" field, or
// the body itself when it is not the agreed JSON.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Is makes errors.Is(err, ErrAPI) true for every apiError.
func (e *apiError) Is(target error) bool { return target == ErrAPI }

// maxErrorBody bounds how much of an error reply is read.
const maxErrorBody = 64 << 10

// do sends one request and returns the response of a 2xx reply; other
// replies become *apiError. The caller closes the body.
func (c *adminClient) do(ctx context.Context, method, path string, body io.Reader, size int64, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
		if size >= 0 {
			req.ContentLength = size
		}
	}
	req.Header.Set("Accept", "application/json")
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	hc, err := c.client()
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, c.base+path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := strings.TrimSpace(string(raw))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = "(no message)"
	}
	return nil, fmt.Errorf("%s %s: %w", method, c.base+path, &apiError{Status: resp.StatusCode, Message: msg})
}

// postJSON posts v and discards a successful reply.
func (c *adminClient) postJSON(ctx context.Context, path string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, path, bytes.NewReader(body), int64(len(body)), "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return nil
}

// nodeID accepts a JSON string or number, so the client keeps working
// whichever the server sends.
type nodeID string

func (id *nodeID) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = nodeID(s)
		return nil
	}
	if string(b) == "null" {
		*id = ""
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("node id: %w", err)
	}
	*id = nodeID(n.String())
	return nil
}

// member is one entry of /status "configuration". HTTPAddr is not in the
// agreed contract yet; when a server sends it, `raftsql status` asks that
// member for its own view.
type member struct {
	ID       nodeID `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
	HTTPAddr string `json:"http_addr,omitempty"`
}

// nodeStatus is GET /status.
type nodeStatus struct {
	ID            nodeID   `json:"id"`
	Role          string   `json:"role"`
	Term          uint64   `json:"term"`
	Leader        nodeID   `json:"leader"`
	CommitIndex   uint64   `json:"commit_index"`
	AppliedIndex  uint64   `json:"applied_index"`
	Configuration []member `json:"configuration"`
}

// maxStatusBody bounds a /status reply.
const maxStatusBody = 4 << 20

func (c *adminClient) status(ctx context.Context) (nodeStatus, error) {
	var st nodeStatus
	resp, err := c.do(ctx, http.MethodGet, "/status", nil, -1, "")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxStatusBody))
	if err := dec.Decode(&st); err != nil {
		return st, fmt.Errorf("GET %s/status: %w: %w", c.base, ErrBadResponse, err)
	}
	return st, nil
}

// statusRow is one printed line of `raftsql status`.
type statusRow struct {
	member
	st     *nodeStatus // nil when the member was not asked or did not answer
	err    error
	leader bool
}

// clusterStatus asks every address in addrs for /status, then every member
// named in a configuration whose HTTP address is known, and returns one
// row per member. Members nobody could ask show only what the
// configuration says. It fails only when no node answered.
func clusterStatus(ctx context.Context, addrs []string, newClient func(string) *adminClient) ([]statusRow, error) {
	type answer struct {
		addr string
		st   nodeStatus
		err  error
	}
	ask := func(list []string) []answer {
		out := make([]answer, len(list))
		var wg sync.WaitGroup
		for i, a := range list {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := newClient(a).status(ctx)
				out[i] = answer{addr: a, st: st, err: err}
			}()
		}
		wg.Wait()
		return out
	}
	answers := ask(addrs)
	asked := map[string]bool{}
	for _, a := range addrs {
		asked[a] = true
	}
	var more []string
	for _, a := range answers {
		for _, m := range a.st.Configuration {
			if m.HTTPAddr != "" && !asked[m.HTTPAddr] {
				asked[m.HTTPAddr] = true
				more = append(more, m.HTTPAddr)
			}
		}
	}
	answers = append(answers, ask(more)...)

	byID := map[nodeID]*statusRow{}
	var order []nodeID
	row := func(id nodeID) *statusRow {
		r, ok := byID[id]
		if !ok {
			r = &statusRow{member: member{ID: id}}
			byID[id] = r
			order = append(order, id)
		}
		return r
	}
	var firstErr error
	var leaders []nodeID
	var latestTerm uint64
	answered := 0
	unreached := map[string]error{}
	for _, a := range answers {
		if a.err != nil {
			if firstErr == nil {
				firstErr = a.err
			}
			unreached[a.addr] = a.err
			continue
		}
		answered++
		st := a.st
		r := row(st.ID)
		r.st = &st
		if r.HTTPAddr == "" {
			r.HTTPAddr = a.addr
		}
		if st.Term >= latestTerm && st.Leader != "" {
			if st.Term > latestTerm {
				leaders = leaders[:0]
			}
			latestTerm = st.Term
			leaders = append(leaders, st.Leader)
		}
		for _, m := range st.Configuration {
			mr := row(m.ID)
			mr.RaftAddr, mr.Voter = m.RaftAddr, m.Voter
			if m.HTTPAddr != "" {
				mr.HTTPAddr = m.HTTPAddr
			}
		}
	}
	if answered == 0 {
		if firstErr == nil {
			firstErr = errors.New("no address to ask")
		}
		return nil, firstErr
	}
	for _, r := range byID {
		if r.st == nil && r.HTTPAddr != "" {
			r.err = unreached[r.HTTPAddr]
		}
	}
	if len(leaders) > 0 {
		if r, ok := byID[leaders[0]]; ok {
			r.leader = true
		}
	}
	// Addresses that never answered and are in no configuration still
	// get a row, so the operator sees them.
	for _, a := range answers {
		if a.err == nil {
			continue
		}
		found := false
		for _, r := range byID {
			if r.HTTPAddr == a.addr {
				found = true
			}
		}
		if !found {
			r := row(nodeID("?" + a.addr))
			r.HTTPAddr, r.err = a.addr, a.err
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return lessID(order[i], order[j]) })
	out := make([]statusRow, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out, nil
}

// lessID orders numeric ids numerically and others as strings.
func lessID(a, b nodeID) bool {
	x, errA := strconv.ParseUint(string(a), 10, 64)
	y, errB := strconv.ParseUint(string(b), 10, 64)
	if errA == nil && errB == nil {
		return x < y
	}
	return a < b
}

// statusTable renders rows as the `raftsql status` table. Lag is how far a
// node's applied index trails the leader's commit index (or, when the
// leader did not answer, its own commit index).
func statusTable(rows []statusRow) table {
	t := table{
		Columns: []string{"id", "raft_addr", "http_addr", "voter", "role", "term", "commit_index", "applied_index", "lag", "leader"},
		Right:   []bool{false, false, false, false, false, true, true, true, true, false},
	}
	var leaderCommit uint64
	haveLeader := false
	for _, r := range rows {
		if r.leader && r.st != nil {
			leaderCommit, haveLeader = r.st.CommitIndex, true
		}
	}
	str := func(s string) *string { return &s }
	num := func(n uint64) *string { return str(strconv.FormatUint(n, 10)) }
	for _, r := range rows {
		voter := "learner"
		if r.Voter {
			voter = "voter"
		}
		if r.RaftAddr == "" && r.st == nil {
			voter = ""
		}
		id := string(r.ID)
		if strings.HasPrefix(id, "?") {
			id = "?" // an address that did not answer and is in no configuration
		}
		cells := []*string{str(id), str(r.RaftAddr), str(r.HTTPAddr), str(voter), nil, nil, nil, nil, nil, nil}
		switch {
		case r.st != nil:
			cells[4] = str(r.st.Role)
			cells[5] = num(r.st.Term)
			cells[6] = num(r.st.CommitIndex)
			cells[7] = num(r.st.AppliedIndex)
			ref := r.st.CommitIndex
			if haveLeader {
				ref = leaderCommit
			}
			var lag uint64
			if ref > r.st.AppliedIndex {
				lag = ref - r.st.AppliedIndex
			}
			cells[8] = num(lag)
		case r.err != nil:
			cells[4] = str("unreachable: " + shortErr(r.err))
		default:
			cells[4] = str("?")
		}
		if r.leader {
			cells[9] = str("*")
		}
		t.Rows = append(t.Rows, cells)
	}
	return t
}

// statusJSON is one node of `raftsql status --json`.
type statusJSONRow struct {
	ID           string  `json:"id"`
	RaftAddr     string  `json:"raft_addr,omitempty"`
	HTTPAddr     string  `json:"http_addr,omitempty"`
	Voter        bool    `json:"voter"`
	Role         string  `json:"role,omitempty"`
	Term         *uint64 `json:"term,omitempty"`
	CommitIndex  *uint64 `json:"commit_index,omitempty"`
	AppliedIndex *uint64 `json:"applied_index,omitempty"`
	Lag          *uint64 `json:"lag,omitempty"`
	Leader       bool    `json:"leader"`
	Error        string  `json:"error,omitempty"`
}

// statusJSONRows is the machine-readable form of statusTable: the same
// rows and lag, with fields absent where nothing is known.
func statusJSONRows(rows []statusRow) []statusJSONRow {
	t := statusTable(rows)
	out := make([]statusJSONRow, len(rows))
	for i, r := range rows {
		j := statusJSONRow{ID: string(r.ID), RaftAddr: r.RaftAddr, HTTPAddr: r.HTTPAddr, Voter: r.Voter, Leader: r.leader}
		if strings.HasPrefix(j.ID, "?") {
			j.ID = ""
		}
		if r.st != nil {
			term, commit, applied := r.st.Term, r.st.CommitIndex, r.st.AppliedIndex
			lag, _ := strconv.ParseUint(*t.Rows[i][8], 10, 64)
			j.Role, j.Term, j.CommitIndex, j.AppliedIndex, j.Lag = r.st.Role, &term, &commit, &applied, &lag
		}
		if r.err != nil {
			j.Error = r.err.Error()
		}
		out[i] = j
	}
	return out
}

// shortErr keeps the innermost part of a long network error.
func shortErr(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s) > 60 {
		return s[i+2:]
	}
	return s
}

// sqliteHeader starts every SQLite database file.
const sqliteHeader = "SQLite format 3\x00"

// backup streams GET /backup into path: a temporary file in the same
// directory, synced, checked to look like a SQLite database and renamed,
// so path is never left half written. It returns the bytes written.
func (c *adminClient) backup(ctx context.Context, path, consistency string) (int64, error) {
	q := ""
	if consistency != "" {
		q = "?consistency=" + consistency
	}
	resp, err := c.do(ctx, http.MethodGet, "/backup"+q, nil, -1, "")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, resp.Body)
	if err != nil {
		return n, fmt.Errorf("backup: reading %s/backup after %d bytes: %w", c.base, n, err)
	}
	if err := checkSQLiteFile(tmp); err != nil {
		return n, fmt.Errorf("backup: the server sent %d bytes that are not a SQLite database: %w", n, err)
	}
	if err := tmp.Sync(); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	ok = true
	return n, nil
}

// checkSQLiteFile reports ErrNotSQLite unless f starts with the SQLite
// header. It reads at offset 0 and leaves f's position alone.
func checkSQLiteFile(f io.ReaderAt) error {
	head := make([]byte, len(sqliteHeader))
	if _, err := f.ReadAt(head, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return ErrNotSQLite
		}
		return err
	}
	if string(head) != sqliteHeader {
		return ErrNotSQLite
	}
	return nil
}

// restoreReply is the answer of POST /restore.
type restoreReply struct {
	Status string `json:"status"`
	Bytes  int64  `json:"bytes"`
	Index  uint64 `json:"index"` // the log index of the commit (0: not said)
}

// restore streams the SQLite file at path to /restore (never reading it
// whole into memory) and returns the server's answer, which comes once
// every chunk and the commit went through the log. A file that is not a
// SQLite database, or that has a -wal file next to it with changes the
// main file lacks (an application still has it open), is refused here,
// before anything is sent.
func (c *adminClient) restore(ctx context.Context, path string) (restoreReply, error) {
	f, err := os.Open(path)
	if err != nil {
		return restoreReply{}, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return restoreReply{}, fmt.Errorf("restore: %w", err)
	}
	if err := checkSQLiteFile(f); err != nil {
		return restoreReply{}, fmt.Errorf("restore: %s: %w", path, err)
	}
	if err := backup.CheckWAL(path); err != nil {
		return restoreReply{}, fmt.Errorf("restore: %w", err)
	}
	resp, err := c.do(ctx, http.MethodPost, "/restore", f, fi.Size(), "application/vnd.sqlite3")
	if err != nil {
		return restoreReply{}, err
	}
	defer resp.Body.Close()
	reply := restoreReply{Bytes: fi.Size()}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if json.Unmarshal(raw, &reply) != nil || reply.Bytes == 0 {
		reply.Bytes = fi.Size()
	}
	return reply, nil
}

// Membership and leadership requests (POST /join, /remove,
// /transfer-leadership) are sent to one address after another until one
// takes them: a node that answers 503 ("not the leader", no quorum) or
// 421, or cannot be reached, has not acted, so the next address is tried.
// Any other reply (success, 4xx) ends the attempt.
func postAny(ctx context.Context, clients []*adminClient, path string, v any) error {
	var last error
	for _, c := range clients {
		err := c.postJSON(ctx, path, v)
		if err == nil {
			return nil
		}
		last = err
		var ae *apiError
		if errors.As(err, &ae) && ae.Status != http.StatusServiceUnavailable && ae.Status != http.StatusMisdirectedRequest {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
	}
	if last == nil {
		return fmt.Errorf("%w: no --http address", ErrUsage)
	}
	return last
}

func join(ctx context.Context, clients []*adminClient, id, raftAddr string, voter bool) error {
	return postAny(ctx, clients, "/join", map[string]any{"id": id, "raft_addr": raftAddr, "voter": voter})
}

func remove(ctx context.Context, clients []*adminClient, id string) error {
	return postAny(ctx, clients, "/remove", map[string]any{"id": id})
}

func transferLeadership(ctx context.Context, clients []*adminClient, id string) error {
	return postAny(ctx, clients, "/transfer-leadership", map[string]any{"id": id})
}

// defaultHTTPTimeout bounds admin requests other than backup and restore,
// whose bodies can be large; those are bounded by the context.
const defaultHTTPTimeout = 30 * time.Second
