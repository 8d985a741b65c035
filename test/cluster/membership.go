package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// Membership changes of a running cluster, as a nemesis makes them: a
// member is removed (RemoveMember) and becomes retired; a retired node
// comes back with an empty data directory through --join (Rejoin), as the
// README's procedure for a wiped node says; a spare node (SpareNode) is a
// retired node ready to join, created when none is left. Every node the
// harness starts with --join advertises its front door
// (--raft-advertise-addr), so its Raft links go through the fault proxy
// like those of the initial nodes.

// ErrMembership is wrapped by a membership change that did not complete.
var ErrMembership = errors.New("cluster: membership change did not complete")

// Retired reports whether the node was removed from the configuration
// through the harness (or is a spare that never joined).
func (n *Node) Retired() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.retired
}

func (n *Node) setRetired(v bool) {
	n.mu.Lock()
	n.retired = v
	n.mu.Unlock()
}

// Members returns the nodes that are not retired, in id order.
func (c *Cluster) Members() []*Node {
	var out []*Node
	for _, n := range c.Nodes() {
		if !n.Retired() {
			out = append(out, n)
		}
	}
	return out
}

// MemberIDs returns the ids of Members.
func (c *Cluster) MemberIDs() []string {
	var out []string
	for _, n := range c.Members() {
		out = append(out, n.ID)
	}
	return out
}

// Configuration returns the members in the agreed leader's configuration.
func (c *Cluster) Configuration(ctx context.Context) ([]Member, error) {
	_, st, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	return st.Configuration, nil
}

// WaitMember polls the agreed leader's configuration until id is in it
// with the given voter flag (present) or is absent (!present).
func (c *Cluster) WaitMember(ctx context.Context, id string, present, voter bool) error {
	return poll(ctx, fmt.Sprintf("%s present=%v voter=%v in the configuration", id, present, voter), func() error {
		conf, err := c.Configuration(ctx)
		if err != nil {
			return err
		}
		for _, m := range conf {
			if m.ID != id {
				continue
			}
			if !present {
				return fmt.Errorf("%s still in the configuration %+v", id, conf)
			}
			if m.Voter != voter {
				return fmt.Errorf("%s has voter=%v in %+v", id, m.Voter, conf)
			}
			return nil
		}
		if present {
			return fmt.Errorf("%s not in the configuration %+v", id, conf)
		}
		return nil
	})
}

// post sends an admin request to the running members other than skip in
// turn until one answers 2xx.
func (c *Cluster) post(ctx context.Context, skip, path string, body any) error {
	var last error = fmt.Errorf("%w: no running member to ask", ErrNotRunning)
	for _, n := range c.Members() {
		if n.ID == skip || !n.Running() || n.Paused() {
			continue
		}
		if _, err := n.Do(ctx, http.MethodPost, path, body, nil); err != nil {
			last = err
			continue
		}
		return nil
	}
	return last
}

// RemoveMember removes id from the configuration (POST /remove through a
// member; a leader hands over first) and returns once the agreed leader's
// configuration no longer holds it (at once if it does not). The node is retired from then on; its
// process is left running (Kill it, or Rejoin it). If the removal cannot
// be confirmed within ctx, the node is a member again for the harness
// when the configuration still holds it.
func (c *Cluster) RemoveMember(ctx context.Context, id string) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("%w: %s", ErrUnknownNode, id)
	}
	n.setRetired(true)
	err := poll(ctx, "POST /remove "+id, func() error {
		conf, err := c.Configuration(ctx)
		if err != nil {
			return err
		}
		if !inConf(conf, id) {
			return nil
		}
		// Ask the others first: the node itself may be on its way out.
		if err := c.post(ctx, id, "/remove", map[string]string{"id": id}); err != nil {
			if _, err2 := n.Do(ctx, http.MethodPost, "/remove", map[string]string{"id": id}, nil); err2 != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = c.WaitMember(ctx, id, false, false)
	}
	if err != nil {
		wctx, cancel := context.WithTimeout(context.Background(), c.opts.HTTPTimeout)
		conf, cerr := c.Configuration(wctx)
		cancel()
		gone := cerr == nil
		for _, m := range conf {
			if m.ID == id {
				gone = false
			}
		}
		if !gone {
			n.setRetired(false)
		}
		return fmt.Errorf("%w: remove %s: %w", ErrMembership, id, err)
	}
	c.log.Info("cluster: removed", "node", id)
	return nil
}

// SpareNode returns a retired node that is not running, ready to Rejoin,
// or creates one (not started) when there is none.
func (c *Cluster) SpareNode() (*Node, error) {
	for _, n := range c.Nodes() {
		if n.Retired() && !n.Running() {
			return n, nil
		}
	}
	n, err := c.newNode()
	if err != nil {
		return nil, err
	}
	n.setRetired(true)
	return n, nil
}

// Wipe deletes the data directory of a stopped node.
func (n *Node) Wipe() error {
	if n.Running() {
		return fmt.Errorf("%w: %s: stop it before wiping its data", ErrRunning, n.ID)
	}
	if err := os.RemoveAll(n.DataDir); err != nil {
		return fmt.Errorf("cluster: wipe %s: %w", n.ID, err)
	}
	return nil
}

// Rejoin brings a retired node back as a new member: it kills the node's
// process if it runs, removes it from the configuration if it is still
// there (a join that did not complete), wipes its data directory, starts
// it with --join through a running member (--learner if learner), and
// returns once it is ready and the agreed leader's configuration holds it
// (as a voter unless learner). The node is a member for the harness
// (Members) from the moment it is ready, so that clients that follow the
// membership find it serving. A Rejoin that failed can be called again.
func (c *Cluster) Rejoin(ctx context.Context, id string, learner bool) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("%w: %s", ErrUnknownNode, id)
	}
	if n.Running() {
		if err := n.Kill(); err != nil {
			return err
		}
	}
	if err := c.RemoveMember(ctx, id); err != nil {
		return err
	}
	if err := n.Wipe(); err != nil {
		return err
	}
	var through *Node
	for _, m := range c.Members() {
		if m.ID != id && m.Running() && !m.Paused() {
			through = m
			break
		}
	}
	if through == nil {
		return fmt.Errorf("%w: rejoin %s: no running member to join through", ErrMembership, id)
	}
	n.mu.Lock()
	n.join = through.HTTPAddr
	n.learner = learner
	n.mu.Unlock()
	if err := n.Start(ctx); err != nil {
		return err
	}
	if err := n.WaitReady(ctx); err != nil {
		return fmt.Errorf("%w: rejoin %s through %s: %w", ErrMembership, id, through.ID, err)
	}
	n.setRetired(false)
	if err := c.WaitMember(ctx, id, true, !learner); err != nil {
		return fmt.Errorf("%w: rejoin %s: %w", ErrMembership, id, err)
	}
	c.log.Info("cluster: joined", "node", id, "learner", learner, "through", through.ID)
	return nil
}
