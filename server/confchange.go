package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

// errNotConfirmed: a membership change was proposed but not seen committed
// in time (the leader lost its quorum, or leadership changed and the entry
// was dropped). It may still take effect; the caller may retry.
var errNotConfirmed = errors.New("the change was proposed but not confirmed as committed")

// changeMembership proposes cc and waits until the APPLIED configuration
// reflects it: a change is acknowledged only once it is committed, never
// when a leader that may have lost its quorum merely appended it.
func (s *Server) changeMembership(ctx context.Context, cc consensus.ConfChange) error {
	ctx, cancel := context.WithTimeout(ctx, 5*s.cfg.ElectionTimeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	// A change is refused while another one is pending, which includes a
	// new leader's first entry of its term: wait that out.
	for {
		err := s.node.ProposeConfChange(ctx, cc)
		if err == nil {
			break
		}
		if !errors.Is(err, consensus.ErrConfChangeInProgress) {
			return err
		}
		// A real change in flight (the appended configuration differs from
		// the applied one) is the caller's conflict; otherwise only the new
		// leader's first entry is pending, which commits in a moment.
		if applied, aerr := s.fsm.ConfState(ctx); aerr != nil || !sameMembers(applied, s.node.Status().Conf) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (waited %v for the previous change to commit)", err, 5*s.cfg.ElectionTimeout)
		case <-t.C:
		}
	}
	for {
		conf, err := s.fsm.ConfState(ctx)
		if err == nil && reflects(conf, cc) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", errNotConfirmed, ctx.Err())
		case <-t.C:
		}
	}
}

// reflects reports whether conf has cc applied.
func reflects(conf consensus.ConfState, cc consensus.ConfChange) bool {
	for _, m := range conf.Members {
		if m.ID != cc.ID {
			continue
		}
		switch cc.Type {
		case consensus.ConfAddLearner:
			return true // a learner, or already promoted
		case consensus.ConfAddVoter:
			return m.Voter
		default:
			return false
		}
	}
	return cc.Type == consensus.ConfRemove
}

// sameMembers reports whether two configurations have the same members
// with the same votes.
func sameMembers(a, b consensus.ConfState) bool {
	if len(a.Members) != len(b.Members) {
		return false
	}
	voter := make(map[string]bool, len(a.Members))
	for _, m := range a.Members {
		voter[m.ID] = m.Voter
	}
	for _, m := range b.Members {
		if v, ok := voter[m.ID]; !ok || v != m.Voter {
			return false
		}
	}
	return true
}
