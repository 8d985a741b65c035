package node

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
)

// run is the loop goroutine: the only one that touches the RawNode.
//
// Each iteration waits for one event unless the core already has work,
// then drains every event that is queued (up to maxDrain), so that all
// proposals that arrived during the previous fsync go into one Ready and one
// Save (group commit), then handles the Ready and publishes the state.
func (n *Node) run() {
	defer n.shutdown()
	ticker := time.NewTicker(n.t.tick)
	defer ticker.Stop()
	for {
		if !n.rn.HasReady() {
			select {
			case <-ticker.C:
				n.tick()
			case m := <-n.recvc:
				n.step(m)
			case p := <-n.propc:
				n.handleProposal(p)
			case r := <-n.readc:
				n.reads.add(r)
			case rep := <-n.reportc:
				n.handleReport(rep)
			case f := <-n.ctrlc:
				f()
			case <-n.stopc:
				return
			}
		}
		if !n.drain(ticker.C) {
			return
		}
		n.reads.issue(func(rctx []byte) {
			n.metrics.readRequests.Add(1)
			n.rn.ReadIndex(rctx)
		}, n.tickN)
		if n.rn.HasReady() {
			if err := n.handleReady(); err != nil {
				n.quit(err)
				return
			}
		}
		n.publish()
	}
}

// drain handles queued events without blocking; false means stop.
func (n *Node) drain(tickc <-chan time.Time) bool {
	for range maxDrain {
		select {
		case <-tickc:
			n.tick()
		case m := <-n.recvc:
			n.step(m)
		case p := <-n.propc:
			n.handleProposal(p)
		case r := <-n.readc:
			n.reads.add(r)
		case rep := <-n.reportc:
			n.handleReport(rep)
		case f := <-n.ctrlc:
			f()
		case <-n.stopc:
			return false
		default:
			return true
		}
	}
	return true
}

func (n *Node) tick() {
	n.tickN++
	n.ticks.record(n.tickN, n.clock())
	n.rn.Tick()
	n.reads.retryStale(n.tickN, n.t.readRetryTicks)
}

// step feeds a message from the network to the core. Local-only message
// types and messages for another node are dropped: they cannot come from a
// well-behaved peer.
func (n *Node) step(m consensus.Message) {
	if m.To != n.id || !m.Type.Valid() {
		n.log.Debug("dropping misaddressed or unknown message", "type", m.Type, "to", m.To, "from", m.From)
		return
	}
	switch m.Type {
	case consensus.MsgHup, consensus.MsgBeat, consensus.MsgSnapStatus, consensus.MsgUnreachable:
		n.log.Debug("dropping local message type from the network", "type", m.Type, "from", m.From)
		return
	}
	if err := n.rn.Step(m); err != nil {
		n.log.Debug("step failed", "type", m.Type, "from", m.From, "err", err)
	}
}

func (n *Node) handleProposal(p *proposal) {
	var err error
	if p.cc != nil {
		err = n.rn.ProposeConfChange(*p.cc)
		if err == nil && p.cc.Type != consensus.ConfRemove && p.cc.ID != n.id && p.cc.Addr != "" {
			// Reach the new member at once; syncPeers confirms it later.
			n.cfg.Transport.AddPeer(p.cc.ID, p.cc.Addr)
			n.peers[p.cc.ID] = p.cc.Addr
			delete(n.learnt, p.cc.ID)
		}
	} else {
		err = n.rn.Propose(p.data)
	}
	p.errc <- n.wrapProposeErr(err)
}

func (n *Node) handleReport(r report) {
	switch r.kind {
	case reportUnreachable:
		n.rn.ReportUnreachable(r.id)
	case reportSnapshot:
		n.rn.ReportSnapshot(r.id, r.ok)
		n.snapshotReported(r.id, r.ok)
	case reportAddr:
		n.learnPeer(r.id, r.addr)
	}
}

// maxLearntPeers bounds the peers added from their connections' prefaces
// (learnPeer) that the configuration does not name.
const maxLearntPeers = 64

// learnPeer uses the address a peer advertised when it connected, if this
// node has no address for it: a node that joined has not learnt the
// configuration yet, and must be able to answer a leader that the member
// it joined through never told it about (that member may have failed
// before answering the join). An address from the configuration (or the
// Contacts, or a proposed addition) always wins: a learnt one never
// replaces it, and syncPeers replaces a learnt one when the configuration
// names the peer.
func (n *Node) learnPeer(id, addr string) {
	if id == n.id || id == "" || addr == "" {
		return
	}
	old, known := n.peers[id]
	if known && (!n.learnt[id] || old == addr) {
		return
	}
	if !known && len(n.learnt) >= maxLearntPeers {
		// Each peer costs the transport a queue and a goroutine: a
		// stream of made-up ids must not grow them without bound.
		n.log.Warn("not adding a peer learnt from its connection: too many such peers", "peer", id, "addr", addr, "max", maxLearntPeers)
		return
	}
	n.cfg.Transport.AddPeer(id, addr)
	n.peers[id] = addr
	n.learnt[id] = true
	n.log.Info("peer address learnt from its connection", "peer", id, "addr", addr, "previous", old)
}

// handleReady follows the Ready ordering contract (consensus.Ready).
func (n *Node) handleReady() error {
	rd := n.rn.Ready()
	if rd.Snapshot != nil {
		// Installing a snapshot received from the leader: its file is
		// already in place (the transport commits the data before it
		// delivers the MsgSnap). The meta is saved with the Ready, then
		// the applier restores the state machine before any later entry.
		if n.snapper == nil {
			return fmt.Errorf("%w (snapshot at index %d term %d)", ErrSnapshotUnsupported, rd.Snapshot.Index, rd.Snapshot.Term)
		}
		if _, err := os.Stat(n.cfg.Snapshots.Path(rd.Snapshot.Index)); err != nil {
			return fmt.Errorf("node: install snapshot %d: %w: %w", rd.Snapshot.Index, errNoSnapshotFile, err)
		}
	}
	if rd.SoftState != nil && rd.SoftState.Lead != n.lastLead {
		n.lastLead = rd.SoftState.Lead
		n.reads.reissueAll() // a new leader: pending reads ask it at once
	}
	n.metrics.readCallers.Add(uint64(n.reads.answer(rd.ReadStates)))

	// Committed entries already durable in our log (below this Ready's
	// new entries) go to the applier before the fsync, so applying one
	// batch overlaps with persisting the next. The rest wait for Save.
	committed := rd.CommittedEntries
	if k := n.durablePrefix(committed, rd.Entries); k > 0 && rd.Snapshot == nil {
		n.pushApply(committed[:k])
		committed = committed[k:]
	}
	local := n.send(rd.MessagesBeforePersist, nil)
	if err := n.persist(rd); err != nil {
		return err
	}
	local = n.send(rd.Messages, local)
	n.guardSnapshots(rd.Messages)
	if rd.Snapshot != nil {
		n.pushRestore(*rd.Snapshot)
	}
	if len(committed) > 0 {
		n.pushApply(committed)
	}
	n.rn.Advance(rd)
	for _, m := range local {
		if err := n.rn.Step(m); err != nil {
			n.log.Debug("local step failed", "type", m.Type, "err", err)
		}
	}
	return nil
}

// durablePrefix returns how many of committed are already durable in the
// store: at or below the last index written by a previous Save and below
// the first of the entries about to be written (which may replace a
// suffix; committed entries are never replaced, but the check is cheap).
func (n *Node) durablePrefix(committed, entries []consensus.Entry) int {
	limit := n.durableLast
	if len(entries) > 0 && entries[0].Index <= limit {
		limit = entries[0].Index - 1
	}
	k := 0
	for k < len(committed) && committed[k].Index <= limit {
		k++
	}
	return k
}

// send hands msgs to the transport; messages to this node itself are
// returned (appended to local) to be stepped after Advance.
func (n *Node) send(msgs []consensus.Message, local []consensus.Message) []consensus.Message {
	if len(msgs) == 0 {
		return local
	}
	out := msgs
	for i, m := range msgs {
		if m.To == n.id {
			// Rare: copy out the remote ones once.
			out = slices.Clone(msgs[:i])
			for _, m2 := range msgs[i:] {
				if m2.To == n.id {
					local = append(local, m2)
				} else {
					out = append(out, m2)
				}
			}
			break
		}
	}
	if len(out) > 0 {
		n.cfg.Transport.Send(out)
	}
	return local
}

// slowSave is when a Save is logged as slow.
const slowSave = 100 * time.Millisecond

// persist writes a Ready's HardState and Entries with one Save (one
// fsync). A HardState that only moved Commit (MustSync false) is not worth
// an fsync of its own: it is kept and written with the next Save; a lost
// commit index is learned again from the leader, and Start copes with a
// state machine ahead of it.
func (n *Node) persist(rd consensus.Ready) error {
	if !rd.HardState.IsEmpty() {
		if rd.HardState.Term != n.hs.Term || rd.HardState.Vote != n.hs.Vote {
			rd.MustSync = true
		}
		n.hs = rd.HardState
		n.hsDirty = true
	}
	if len(rd.Entries) == 0 && !rd.MustSync {
		return nil
	}
	var hs consensus.HardState
	if n.hsDirty {
		hs = n.hs
	}
	start := time.Now()
	if err := n.cfg.Store.Save(hs, rd.Entries, rd.Snapshot); err != nil {
		return fmt.Errorf("node: save %d entries (hard state %+v, snapshot %v): %w", len(rd.Entries), hs, rd.Snapshot != nil, err)
	}
	n.hsDirty = false
	for i := range rd.Entries {
		n.appendedBytes += uint64(len(rd.Entries[i].Data))
	}
	if len(rd.Entries) > 0 {
		n.durableLast = rd.Entries[len(rd.Entries)-1].Index
	} else if rd.Snapshot != nil {
		last, err := n.cfg.Store.LastIndex()
		if err != nil {
			return fmt.Errorf("node: last index after installing snapshot: %w", err)
		}
		n.durableLast = last
	}
	d := time.Since(start)
	n.metrics.noteSave(len(rd.Entries), d)
	if d > slowSave {
		n.log.Warn("slow log write", "duration", d, "entries", len(rd.Entries))
	}
	return nil
}

// publish makes the loop's view visible to other goroutines: status,
// leader, lease, transport peers, and transfer waiters.
func (n *Node) publish() {
	st := n.rn.Status()
	n.syncPeers(st.Conf.Members)
	n.updateLease()
	n.checkGuards(st)

	n.mu.Lock()
	n.status = st
	if st.Lead != n.leader {
		n.log.Info("leader changed", "from", n.leader, "to", st.Lead, "term", st.Term, "role", st.Role)
		n.leader = st.Lead
		close(n.leaderCh)
		n.leaderCh = make(chan struct{})
	}
	n.mu.Unlock()
	if len(n.transfers) > 0 {
		n.checkTransfers(st)
	}
}

func (n *Node) checkTransfers(st consensus.Status) {
	kept := n.transfers[:0]
	for _, w := range n.transfers {
		switch {
		case w.ctx.Err() != nil:
			// The caller gave up; forget it.
		case st.Lead == w.to:
			w.errc <- nil
		case st.Role == consensus.RoleLeader && st.LeadTransferee != w.to:
			w.errc <- fmt.Errorf("%w: transfer to %q aborted, %s is still leader", ErrTransferFailed, w.to, n.id)
		case st.Lead != "" && st.Lead != w.startLead:
			w.errc <- fmt.Errorf("%w: %q became leader instead of %q", ErrTransferFailed, st.Lead, w.to)
		default:
			kept = append(kept, w)
			continue
		}
	}
	clear(n.transfers[len(kept):])
	n.transfers = kept
}

// syncPeers gives the transport the addresses of the configuration's
// members. Before the log holds a configuration (a joining node), the
// configured Contacts are used.
func (n *Node) syncPeers(members []consensus.Member) {
	if len(members) == 0 {
		members = n.cfg.Contacts
	}
	var b strings.Builder
	for _, m := range members {
		b.WriteString(m.ID)
		b.WriteByte('=')
		b.WriteString(m.Addr)
		b.WriteByte(',')
	}
	key := b.String()
	if key == n.confKey {
		return
	}
	n.confKey = key
	want := make(map[string]string, len(members))
	self := false
	for _, m := range members {
		if m.ID != n.id {
			want[m.ID] = m.Addr
		} else {
			self = true
			n.advertise(m.Addr)
		}
	}
	if !self && len(members) > 0 && len(n.cfg.Contacts) == 0 {
		n.log.Warn("this node is not in the configuration (removed, or not yet added)", "members", key)
	}
	for id, addr := range want {
		if old, ok := n.peers[id]; !ok || old != addr {
			n.cfg.Transport.AddPeer(id, addr)
			n.log.Info("peer added", "peer", id, "addr", addr)
		}
		delete(n.learnt, id) // the configuration's address from now on
	}
	// Peers that left the configuration stay known to the transport. The
	// configuration followed here is the latest APPENDED one, which a
	// leader change may still truncate: forgetting a peer removed by an
	// uncommitted change would leave this node unable to answer it if it
	// becomes the leader (a removed peer is never sent anything by the
	// core otherwise, so keeping its address costs nothing).
	for id, addr := range n.peers {
		if _, ok := want[id]; !ok {
			want[id] = addr
		}
	}
	n.peers = want
}

// advertise tells the transport (if it sends an address in its preface)
// that this node is reached at addr, the configuration's address for it:
// behind a proxy that is not the listen address.
func (n *Node) advertise(addr string) {
	if addr == "" || addr == n.advertised {
		return
	}
	if a, ok := n.cfg.Transport.(transport.Advertiser); ok {
		a.SetAdvertiseAddr(addr)
		n.advertised = addr
	}
}

// shutdown runs when the loop exits: it stops the transport (nothing more
// is received), then the applier, writes a deferred HardState, and closes
// the store.
func (n *Node) shutdown() {
	n.leaseExp.Store(0)
	if err := n.cfg.Transport.Close(); err != nil {
		n.log.Warn("closing transport", "err", err)
	}
	n.applyCancel()
	<-n.applyDone
	<-n.snapDone
	if n.hsDirty && n.Err() == nil {
		if err := n.cfg.Store.Save(n.hs, nil, nil); err != nil {
			n.log.Warn("saving hard state at stop", "err", err)
		}
	}
	if err := n.cfg.Store.Close(); err != nil {
		n.log.Warn("closing store", "err", err)
	}
	n.log.Info("node stopped")
	close(n.done)
}
