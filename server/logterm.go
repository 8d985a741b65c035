package server

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// termHandler adds the node's current Raft term to every log record, so
// that the logs of several nodes can be lined up by term. The term is read
// from an atomic that a goroutine refreshes (never from the Raft node
// itself, which may be logging while it holds its own lock).
type termHandler struct {
	inner slog.Handler
	term  *atomic.Uint64
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
	return termHandler{inner: h.inner.WithAttrs(attrs), term: h.term}
}

func (h termHandler) WithGroup(name string) slog.Handler {
	return termHandler{inner: h.inner.WithGroup(name), term: h.term}
}
