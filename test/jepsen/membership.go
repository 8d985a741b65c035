package jepsen

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Nemesis kinds that change the membership or corrupt the message flow.
const (
	// MemberRemove removes a follower (POST /remove); after the hold it
	// comes back with a wiped data directory through --join, as a learner
	// that is promoted.
	MemberRemove = "member-remove"
	// MemberRemoveLeader removes the leader (which hands leadership over
	// first); it comes back like MemberRemove.
	MemberRemoveLeader = "member-remove-leader"
	// MemberLearner joins a spare node as a non-voting learner (--join
	// --learner) and removes it after the hold.
	MemberLearner = "member-learner"
	// MemberVoter joins a spare node that is promoted to voter (four
	// voters) and removes it after the hold.
	MemberVoter = "member-voter"
	// MessageFaults drops, duplicates and reorders whole Raft frames on
	// every link, each with a probability drawn per fault.
	MessageFaults = "frames"
)

// MembershipNemeses are the membership kinds.
var MembershipNemeses = []string{MemberRemove, MemberRemoveLeader, MemberLearner, MemberVoter}

// Membership is what the membership nemeses need from a Cluster. A
// Cluster without it runs without them (they are switched off). IDs must
// list the current members only: a removed node leaves it when the
// removal starts, a joining node enters it when it joins.
type Membership interface {
	// RemoveMember removes id from the configuration and returns once the
	// leader's configuration no longer holds it (at once if it does not).
	// Its process keeps running.
	RemoveMember(ctx context.Context, id string) error
	// Rejoin stops a removed or spare node, wipes its data and starts it
	// with --join (as a learner if learner); it returns once the node is
	// ready and in the configuration (a voter unless learner). It enters
	// IDs once it is ready. A failed Rejoin may be called again.
	Rejoin(ctx context.Context, id string, learner bool) error
	// Spare returns a node that is not a member and may join.
	Spare() (string, error)
	// Retire stops the process of a removed node.
	Retire(id string) error
}

// MessageFaulter is what the message-fault nemesis needs: per directed
// link, the probability that a frame of Raft messages is dropped,
// duplicated, or held back behind the next one. Heal clears it.
type MessageFaulter interface {
	MessageFaults(from, to string, drop, duplicate, reorder float64)
}

// membershipTimeout bounds one membership change (a rejoin catches up
// through a snapshot and waits for its promotion).
// It is longer than the transport's wait for a snapshot's acknowledgement
// (a minute): a stream whose end was dropped stalls that long.
const membershipTimeout = 90 * time.Second

// injectMembership starts a membership fault; it returns the heal (nil
// when nothing is to be undone) and the error of the start.
func (n *Nemesis) injectMembership(ctx context.Context, kind string, f *Fault, leader string, ids []string) (func(context.Context) error, error) {
	mc, ok := n.cl.(Membership)
	if !ok {
		n.switchOff(kind, "the cluster does not support membership changes")
		return nil, errSwitchedOff
	}
	switch kind {
	case MemberRemove, MemberRemoveLeader:
		target := leader
		if kind == MemberRemove || target == "" {
			var cands []string
			for _, id := range ids {
				if id != leader {
					cands = append(cands, id)
				}
			}
			target = cands[n.rng.IntN(len(cands))]
		}
		f.Targets = []string{target}
		// Half the time the node catches up under message faults on
		// the links towards it: a snapshot stream that loses or repeats
		// a frame must fail and be sent again, never install garbage.
		// (Only towards it: a lost acknowledgement of a snapshot that
		// was installed stalls the transfer for the transport's ack
		// timeout, a minute, unless the follower's reply gets through;
		// the general frame nemesis covers both directions.) The rates
		// are moderate: a dropped end of stream costs a minute.
		mf, frames := n.cl.(MessageFaulter)
		frames = frames && n.rng.IntN(2) == 0
		drop, dup := 0.05+0.1*n.rng.Float64(), 0.05+0.1*n.rng.Float64()
		if frames {
			f.Note = fmt.Sprintf("rejoins with drop %.2f, duplicate %.2f of the frames sent to it", drop, dup)
		}
		rctx, cancel := context.WithTimeout(ctx, membershipTimeout)
		err := mc.RemoveMember(rctx, target)
		cancel()
		// Still a member: the removal did not happen, nothing to undo.
		removed := !slices.Contains(n.cl.IDs(), target)
		heal := func(ctx context.Context) error {
			if !removed {
				return nil
			}
			if frames {
				for _, id := range n.cl.IDs() {
					mf.MessageFaults(id, target, drop, dup, 0)
				}
				defer n.cl.Heal()
			}
			return mc.Rejoin(ctx, target, false)
		}
		return heal, err
	case MemberLearner, MemberVoter:
		spare, err := mc.Spare()
		if err != nil {
			return nil, err
		}
		f.Targets = []string{spare}
		jctx, cancel := context.WithTimeout(ctx, membershipTimeout)
		err = mc.Rejoin(jctx, spare, kind == MemberLearner)
		cancel()
		heal := func(ctx context.Context) error {
			// Also when the join failed half way: the spare may be
			// in the configuration without being ready.
			if err := mc.RemoveMember(ctx, spare); err != nil {
				return err
			}
			return mc.Retire(spare)
		}
		return heal, err
	}
	return nil, fmt.Errorf("jepsen: not a membership kind: %s", kind)
}

// injectMessageFaults starts frame drops, duplicates and reordering on
// every link between members.
func (n *Nemesis) injectMessageFaults(f *Fault, ids []string) (func(context.Context) error, error) {
	mf, ok := n.cl.(MessageFaulter)
	if !ok {
		n.switchOff(MessageFaults, "the cluster cannot inject message faults")
		return nil, errSwitchedOff
	}
	drop := 0.05 + 0.2*n.rng.Float64()
	dup := 0.05 + 0.2*n.rng.Float64()
	reorder := 0.05 + 0.2*n.rng.Float64()
	f.Targets = ids
	f.Note = fmt.Sprintf("every link: drop %.2f, duplicate %.2f, reorder %.2f of frames", drop, dup, reorder)
	for _, a := range ids {
		for _, b := range ids {
			if a != b {
				mf.MessageFaults(a, b, drop, dup, reorder)
			}
		}
	}
	return func(context.Context) error { n.cl.Heal(); return nil }, nil
}
