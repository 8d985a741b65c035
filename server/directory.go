package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/raftsql/raftsql/fsm"
)

// The node directory: every node records its own HTTP and PostgreSQL
// addresses in the replicated _raftsql_nodes table (through the log), so
// any member can forward an admin request to the leader and `raftsql
// status` can reach every member.

// forwardedHeader marks a request a member forwarded to the leader; the
// leader never forwards it again.
const forwardedHeader = "X-Raftsql-Forwarded"

// announceLoop proposes this node's addresses whenever the directory does
// not hold them (after start, after a restore that replaced the table).
func (s *Server) announceLoop(ctx context.Context) {
	me := fsm.NodeInfo{ID: s.cfg.ID, HTTPAddr: s.HTTPAddr(), PGAddr: s.PGAddr()}
	sess := s.eng.NewSession().(*session)
	// Check often until the directory holds this node, then rarely.
	interval := s.cfg.HeartbeatInterval
	for {
		if s.node.Leader() != "" {
			nodes, err := s.fsm.Nodes(ctx)
			if err == nil && nodes[me.ID] != me {
				pctx, cancel := context.WithTimeout(ctx, 5*s.cfg.ElectionTimeout)
				_, err = sess.propose(pctx, fsm.Command{UnixMicro: s.eng.clock().UnixMicro(), Node: &me})
				cancel()
				if err != nil {
					s.log.Debug("announcing this node's addresses", "err", err)
				} else {
					s.registered.Store(true)
					s.log.Info("announced this node's addresses", "http", me.HTTPAddr, "pg", me.PGAddr)
				}
			} else if err == nil {
				s.registered.Store(true)
				interval = 5 * time.Second
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// httpAddrOf returns id's HTTP address from the directory, waiting a
// little for a member that has not announced itself yet (just started, or
// just became known); "" if it stays unknown.
func (s *Server) httpAddrOf(ctx context.Context, id string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.ElectionTimeout)
	defer cancel()
	for {
		if nodes, err := s.fsm.Nodes(ctx); err == nil && nodes[id].HTTPAddr != "" {
			return nodes[id].HTTPAddr
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// forwardToLeader sends r to the leader's HTTP API and copies its answer
// to w. ok is false when it could not (no leader, unknown address, or r
// was already forwarded); the caller then answers itself.
func (a *httpAPI) forwardToLeader(w http.ResponseWriter, r *http.Request, body []byte) bool {
	if r.Header.Get(forwardedHeader) != "" {
		return false
	}
	lead := a.s.node.Leader()
	if lead == "" || lead == a.s.cfg.ID {
		return false
	}
	addr := a.s.httpAddrOf(r.Context(), lead)
	if addr == "" {
		return false
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, a.s.sec.HTTPScheme()+"://"+addr+r.URL.Path, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(forwardedHeader, a.s.cfg.ID)
	if auth := r.Header.Get("Authorization"); auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := a.s.httpClient.Do(req)
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Errorf("forwarding to leader %q at %s: %w", lead, addr, err))
		return true
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	return true
}
