package fsm

import (
	"context"
	"fmt"

	"github.com/raftsql/raftsql/consensus"
)

// The configuration as of the applied index is kept in _raftsql_members,
// so that a snapshot carries it (DESIGN.md: snapshots hold their index and
// configuration). The rules mirror the consensus core's (confchange.go): a
// change that does not apply is skipped, alike on every node.

// applyConfChange records an EntryConfChange in _raftsql_members.
func (f *FSM) applyConfChange(e consensus.Entry) error {
	cc, err := consensus.DecodeConfChange(e.Data)
	if err != nil {
		f.log.Warn("fsm: undecodable configuration change; index recorded only", "index", e.Index, "err", err)
		return nil
	}
	if cc.ID == "" {
		return nil
	}
	w := f.w
	rows, err := w.queryCached("SELECT voter FROM _raftsql_members WHERE id = ?", cc.ID)
	if err != nil {
		return err
	}
	exists := len(rows) == 1
	isVoter := exists && rows[0][0] == int64(1)
	switch cc.Type {
	case consensus.ConfAddLearner:
		if isVoter {
			return nil // a voter is never demoted
		}
		_, err = w.queryCached(`INSERT INTO _raftsql_members(id, addr, voter) VALUES (?1, ?2, 0)
			ON CONFLICT(id) DO UPDATE SET addr = iif(?2 = '', addr, ?2)`, cc.ID, cc.Addr)
	case consensus.ConfAddVoter:
		_, err = w.queryCached(`INSERT INTO _raftsql_members(id, addr, voter) VALUES (?1, ?2, 1)
			ON CONFLICT(id) DO UPDATE SET voter = 1, addr = iif(?2 = '', addr, ?2)`, cc.ID, cc.Addr)
	case consensus.ConfRemove:
		if !exists {
			return nil
		}
		if isVoter {
			n, err := w.queryCached("SELECT count(*) FROM _raftsql_members WHERE voter = 1")
			if err != nil {
				return err
			}
			if n[0][0] == int64(1) {
				return nil // never remove the last voter
			}
		}
		_, err = w.queryCached("DELETE FROM _raftsql_members WHERE id = ?", cc.ID)
		if err == nil {
			_, err = w.queryCached("DELETE FROM _raftsql_nodes WHERE id = ?", cc.ID)
		}
	}
	return err
}

// readConf reads the configuration from c's database.
func readConf(c *sconn) (consensus.ConfState, error) {
	var cs consensus.ConfState
	rows, err := c.query("SELECT id, addr, voter FROM _raftsql_members ORDER BY id")
	if err != nil {
		return cs, err
	}
	for _, r := range rows {
		id, _ := r[0].(string)
		addr, _ := r[1].(string)
		cs.Members = append(cs.Members, consensus.Member{ID: id, Addr: addr, Voter: r[2] == int64(1)})
	}
	return cs, nil
}

// ConfState returns the cluster configuration as of the applied index
// (from the EntryConfChange entries applied so far, the bootstrap ones
// included).
func (f *FSM) ConfState(ctx context.Context) (consensus.ConfState, error) {
	f.rmu.RLock()
	defer f.rmu.RUnlock()
	c, err := f.acquire(ctx)
	if err != nil {
		return consensus.ConfState{}, err
	}
	defer f.release(c)
	cs, err := readConf(c)
	if err != nil {
		return cs, fmt.Errorf("fsm: configuration: %w", err)
	}
	return cs, nil
}
