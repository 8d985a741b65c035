package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/raftsql/raftsql/auth"
	"github.com/raftsql/raftsql/consensus"
)

// maxJSONBody bounds a JSON request body of the HTTP API.
const maxJSONBody = 64 << 10

// StatusJSON is the body of GET /status (DESIGN.md).
type StatusJSON struct {
	ID            string       `json:"id"`
	Role          string       `json:"role"`
	Term          uint64       `json:"term"`
	Leader        string       `json:"leader"`
	CommitIndex   uint64       `json:"commit_index"`
	AppliedIndex  uint64       `json:"applied_index"`
	Configuration []MemberJSON `json:"configuration"`
}

// MemberJSON is one member of the configuration.
type MemberJSON struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
	// From the node directory, once the member announced itself.
	HTTPAddr string `json:"http_addr,omitempty"`
	PGAddr   string `json:"pg_addr,omitempty"`
}

type joinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Voter    *bool  `json:"voter"`
}

// joinResponse tells a joining node who the members are, so that its
// transport can answer the leader before the log reaches it.
type joinResponse struct {
	Status        string       `json:"status"`
	Promote       bool         `json:"promote"`
	Configuration []MemberJSON `json:"configuration"`
}

type idRequest struct {
	ID string `json:"id"`
}

type httpAPI struct {
	s *Server
}

func (a *httpAPI) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", a.status)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /metrics", a.metrics)
	if a.s.cfg.PeerTLS {
		// Under --peer-tls only a node with a certificate of the cluster's
		// CA (or an operator who passed the password check) may join.
		mux.Handle("POST /join", auth.RequireNode(http.HandlerFunc(a.join)))
	} else {
		mux.HandleFunc("POST /join", a.join)
	}
	mux.HandleFunc("POST /remove", a.remove)
	mux.HandleFunc("POST /transfer-leadership", a.transfer)
	mux.HandleFunc("GET /backup", a.backup)
	mux.HandleFunc("POST /restore", a.restore)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// decodeJoin reads and checks the body of POST /join. On bad input it
// answers 4xx with a JSON error and returns false; nothing else is
// touched (FuzzAdminJSON).
func decodeJoin(w http.ResponseWriter, r *http.Request) (joinRequest, []byte, bool) {
	var req joinRequest
	body, err := decodeJSON(r, &req)
	if err == nil {
		req.ID, req.RaftAddr = strings.TrimSpace(req.ID), strings.TrimSpace(req.RaftAddr)
		switch {
		case req.ID == "" || req.RaftAddr == "":
			err = errors.New(`"id" and "raft_addr" are required`)
		default:
			err = errors.Join(checkNodeID(req.ID), checkRaftAddr(req.RaftAddr))
		}
	}
	if err != nil {
		writeError(w, decodeStatus(err), err)
		return req, nil, false
	}
	return req, body, true
}

// decodeID reads and checks the body of POST /remove and
// /transfer-leadership, {"id"}, like decodeJoin.
func decodeID(w http.ResponseWriter, r *http.Request) (idRequest, []byte, bool) {
	var req idRequest
	body, err := decodeJSON(r, &req)
	switch {
	case err != nil:
	case req.ID == "":
		err = errors.New(`"id" is required`)
	default:
		err = checkNodeID(req.ID)
	}
	if err != nil {
		writeError(w, decodeStatus(err), err)
		return req, nil, false
	}
	return req, body, true
}

// errBodyTooLarge: a JSON request body over maxJSONBody (413).
var errBodyTooLarge = fmt.Errorf("body larger than %d bytes", maxJSONBody)

func decodeStatus(err error) int {
	if errors.Is(err, errBodyTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// maxNodeID bounds a node id in a request (ids end up in the Raft
// configuration, logs and metric labels).
const maxNodeID = 128

// checkNodeID refuses ids no node could have: empty, longer than
// maxNodeID bytes, not UTF-8, or with white space or control characters.
func checkNodeID(id string) error {
	if id == "" || len(id) > maxNodeID || !utf8.ValidString(id) {
		return fmt.Errorf(`"id" must be 1 to %d bytes of UTF-8`, maxNodeID)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf(`"id" %q contains white space or a control character`, id)
		}
	}
	return nil
}

// checkRaftAddr refuses a raft_addr that no node could be dialed at: it
// must be host:port with a host and a numeric port 1-65535.
func checkRaftAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || len(addr) > 300 {
		return fmt.Errorf(`"raft_addr" %.300q is not host:port`, addr)
	}
	if host == "" {
		return fmt.Errorf(`"raft_addr" %q has no host`, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf(`"raft_addr" %q: port must be a number from 1 to 65535`, addr)
	}
	return nil
}

// decodeJSON reads a bounded, strict JSON body into v and returns the raw
// body (for forwarding).
func decodeJSON(r *http.Request, v any) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	if len(body) > maxJSONBody {
		return nil, errBodyTooLarge
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("bad JSON body: %w", err)
	}
	// One value only: the body is forwarded to the leader as it is, so
	// whatever follows would reach it unchecked.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("bad JSON body: data after the JSON value")
	}
	return body, nil
}

func (a *httpAPI) statusJSON() StatusJSON {
	st := a.s.node.Status()
	out := StatusJSON{
		ID:           st.ID,
		Role:         roleName(st),
		Term:         st.Term,
		Leader:       st.Lead,
		CommitIndex:  st.Commit,
		AppliedIndex: a.s.fsm.AppliedIndex(),
	}
	out.Configuration = []MemberJSON{}
	nodes, _ := a.s.fsm.Nodes(context.Background())
	for _, m := range st.Conf.Members {
		out.Configuration = append(out.Configuration, MemberJSON{ID: m.ID, RaftAddr: m.Addr, Voter: m.Voter,
			HTTPAddr: nodes[m.ID].HTTPAddr, PGAddr: nodes[m.ID].PGAddr})
	}
	return out
}

// roleName maps a node's state to the role names of DESIGN.md.
func roleName(st consensus.Status) string {
	for _, m := range st.Conf.Members {
		if m.ID == st.ID && !m.Voter {
			return "learner"
		}
	}
	switch st.Role {
	case consensus.RoleLeader:
		return "leader"
	case consensus.RoleCandidate, consensus.RolePreCandidate:
		return "candidate"
	case consensus.RoleLearner:
		return "learner"
	}
	return "follower"
}

func (a *httpAPI) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.statusJSON())
}

func (a *httpAPI) readyz(w http.ResponseWriter, r *http.Request) {
	if err := a.s.ready(); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *httpAPI) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	a.s.writeMetrics(w)
}

// leaderOnly handles a request that only the leader can serve on a node
// that is not the leader: it forwards it to the leader (through the node
// directory) or answers 503. It returns true when the request was answered.
func (a *httpAPI) leaderOnly(w http.ResponseWriter, r *http.Request, body []byte) bool {
	st := a.s.node.Status()
	if st.Role == consensus.RoleLeader {
		return false
	}
	if a.forwardToLeader(w, r, body) {
		return true
	}
	if st.Lead == "" {
		writeError(w, http.StatusServiceUnavailable, errors.New("no leader is known; retry shortly"))
		return true
	}
	writeError(w, http.StatusServiceUnavailable, fmt.Errorf("this node is not the leader; send the request to node %q", st.Lead))
	return true
}

func (a *httpAPI) join(w http.ResponseWriter, r *http.Request) {
	req, body, ok := decodeJoin(w, r)
	if !ok {
		return
	}
	if a.leaderOnly(w, r, body) {
		return
	}
	voter := req.Voter == nil || *req.Voter
	for _, m := range a.s.node.Status().Conf.Members {
		if m.ID != req.ID {
			continue
		}
		switch {
		case m.Addr != req.RaftAddr:
			writeError(w, http.StatusConflict, fmt.Errorf("node %q is already a member with raft address %s; remove it first", req.ID, m.Addr))
		case m.Voter:
			// A voter that asks to join again has lost its data (a node
			// with data never calls /join): letting it vote with an empty
			// log could elect a leader without committed entries.
			writeError(w, http.StatusConflict, fmt.Errorf("node %q is already a voter; if its data directory was lost, remove it first (raftsql remove %s), then start it again with --join", req.ID, req.ID))
		default:
			if voter {
				a.s.promoteWhenCaughtUp(req.ID)
			}
			writeJSON(w, http.StatusOK, joinResponse{Status: "already a learner", Promote: voter, Configuration: a.statusJSON().Configuration})
		}
		return
	}
	cc := consensus.ConfChange{Type: consensus.ConfAddLearner, ID: req.ID, Addr: req.RaftAddr}
	if err := a.s.changeMembership(r.Context(), cc); err != nil {
		writeError(w, confErrorStatus(err), err)
		return
	}
	if voter {
		a.s.promoteWhenCaughtUp(req.ID)
	}
	writeJSON(w, http.StatusOK, joinResponse{Status: "joined as learner", Promote: voter, Configuration: a.statusJSON().Configuration})
}

func (a *httpAPI) remove(w http.ResponseWriter, r *http.Request) {
	req, body, ok := a.leaderIDRequest(w, r)
	if !ok {
		return
	}
	st := a.s.node.Status()
	found, voters := false, 0
	for _, m := range st.Conf.Members {
		if m.ID == req.ID {
			found = true
		}
		if m.Voter {
			voters++
		}
	}
	if !found {
		writeError(w, http.StatusNotFound, fmt.Errorf("node %q is not a member", req.ID))
		return
	}
	if voters == 1 && isVoter(st.Conf, req.ID) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("node %q is the last voter; it cannot be removed", req.ID))
		return
	}
	if req.ID == st.ID {
		// The leader removes itself: it hands leadership to another voter
		// first, and the new leader removes it (and can confirm the
		// change, which a removed node cannot see committed).
		if err := a.s.handOffLeadership(r.Context()); err != nil {
			writeError(w, http.StatusServiceUnavailable, fmt.Errorf("removing the leader: %w", err))
			return
		}
		r.Header.Del(forwardedHeader)
		if !a.forwardToLeader(w, r, body) {
			writeError(w, http.StatusServiceUnavailable, errors.New("removing the leader: leadership was handed over, but the new leader cannot be reached yet; retry"))
		}
		return
	}
	if err := a.s.changeMembership(r.Context(), consensus.ConfChange{Type: consensus.ConfRemove, ID: req.ID}); err != nil {
		writeError(w, confErrorStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "removed"})
}

// leaderIDRequest decodes an {"id"} request that only the leader serves;
// ok is false when the request was already answered (bad body, or
// forwarded to the leader).
func (a *httpAPI) leaderIDRequest(w http.ResponseWriter, r *http.Request) (idRequest, []byte, bool) {
	req, body, ok := decodeID(w, r)
	if !ok {
		return req, nil, false
	}
	return req, body, !a.leaderOnly(w, r, body)
}

func isVoter(c consensus.ConfState, id string) bool {
	for _, m := range c.Members {
		if m.ID == id {
			return m.Voter
		}
	}
	return false
}

func (a *httpAPI) transfer(w http.ResponseWriter, r *http.Request) {
	req, _, ok := a.leaderIDRequest(w, r)
	if !ok {
		return
	}
	if !isVoter(a.s.node.Status().Conf, req.ID) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("node %q is not a voter", req.ID))
		return
	}
	if err := a.s.node.TransferLeadership(r.Context(), req.ID); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "leadership transferred", "leader": a.s.node.Status().Lead})
}

func confErrorStatus(err error) int {
	switch {
	case errors.Is(err, consensus.ErrConfChangeInProgress):
		return http.StatusConflict
	case errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrProposalDropped), errors.Is(err, errNotConfirmed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
