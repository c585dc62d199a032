package app

import (
	"context"
	"log/slog"
)

// levelHandler filters records below its own level before a shared handler: core and the
// streaming layer write through one handler (one output, one lock) at separate levels.
type levelHandler struct {
	h     slog.Handler
	level slog.Leveler
}

func (l *levelHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.level.Level() && l.h.Enabled(ctx, lv)
}

func (l *levelHandler) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }

func (l *levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &levelHandler{h: l.h.WithAttrs(attrs), level: l.level}
}

func (l *levelHandler) WithGroup(name string) slog.Handler {
	return &levelHandler{h: l.h.WithGroup(name), level: l.level}
}
