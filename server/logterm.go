package server

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// termHandler adds the node's current Raft term to every log record, so
// that the logs of several nodes can be lined up by term. The term is read
// from an atomic that a goroutine refreshes (never from the Raft node
// itself, which may be logging while it holds its own lock). It also
// drops an attribute that a component adds again with the value it
// already has (the server adds node=ID, and so does consensus/node):
// each line names the node once.
type termHandler struct {
	inner slog.Handler
	term  *atomic.Uint64
	// with holds the attributes added by WithAttrs so far, as text.
	with map[string]string
}

func (h termHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h termHandler) Handle(ctx context.Context, r slog.Record) error {
	own := false // a record about a term names it itself: keep one term
	r.Attrs(func(a slog.Attr) bool {
		own = a.Key == "term"
		return !own
	})
	if !own {
		r.AddAttrs(slog.Uint64("term", h.term.Load()))
	}
	return h.inner.Handle(ctx, r)
}

func (h termHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	with := make(map[string]string, len(h.with)+len(attrs))
	for k, v := range h.with {
		with[k] = v
	}
	keep := make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		v := a.Value.Resolve().String()
		if old, ok := with[a.Key]; ok && old == v {
			continue
		}
		with[a.Key] = v
		keep = append(keep, a)
	}
	return termHandler{inner: h.inner.WithAttrs(keep), term: h.term, with: with}
}

func (h termHandler) WithGroup(name string) slog.Handler {
	// Attributes inside a group are other attributes: start afresh.
	return termHandler{inner: h.inner.WithGroup(name), term: h.term}
}
