package fsm

import (
	"context"
	"fmt"
)

// The node directory: each node's client-facing addresses (HTTP API,
// PostgreSQL), replicated through the log so that any node can tell a
// client or a peer where the others are (e.g. to forward a write to the
// leader's PostgreSQL port). A Command with Node set upserts one row of
// _raftsql_nodes; a configuration change that removes a member deletes
// its row. The table is in snapshots and backups like every table; a
// restore entry keeps the cluster's own directory (like its
// configuration), not the file's. It is not user data: a node command
// does not move last_write_index.

// applyNode applies a node directory command inside the batch
// transaction.
func (f *FSM) applyNode(cmd Command) ([]Result, error) {
	w := f.w
	if cmd.SessionID != 0 {
		if prev, ok, err := f.dedup(cmd); err != nil || ok {
			return prev, err
		}
	}
	n := cmd.Node
	rs := []Result{{RowsAffected: 1}}
	if n.ID == "" {
		rs = []Result{{Err: &SQLError{Code: CodeBadParameter, Message: "node directory: a node needs an id"}}}
	} else if _, err := w.queryCached(`INSERT INTO _raftsql_nodes(id, http_addr, pg_addr) VALUES (?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET http_addr = excluded.http_addr, pg_addr = excluded.pg_addr`, n.ID, n.HTTPAddr, n.PGAddr); err != nil {
		return nil, err
	}
	if cmd.SessionID != 0 {
		if err := finishSession(w, cmd, rs); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// Nodes returns the node directory as of the applied index, by node id.
func (f *FSM) Nodes(ctx context.Context) (map[string]NodeInfo, error) {
	f.rmu.RLock()
	defer f.rmu.RUnlock()
	c, err := f.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer f.release(c)
	rows, err := c.query("SELECT id, http_addr, pg_addr FROM _raftsql_nodes")
	if err != nil {
		return nil, fmt.Errorf("fsm: node directory: %w", err)
	}
	m := make(map[string]NodeInfo, len(rows))
	for _, r := range rows {
		var n NodeInfo
		n.ID, _ = r[0].(string)
		n.HTTPAddr, _ = r[1].(string)
		n.PGAddr, _ = r[2].(string)
		m[n.ID] = n
	}
	return m, nil
}
