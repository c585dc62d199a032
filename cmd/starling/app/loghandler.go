package app

import (
	"context"
	"io"
	"log/slog"
	"math"
)

// Log formats (--log_format, log_format).
const (
	logText = "text"
	logJSON = "json"
)

// levelTrace is below Debug: protocol tracing (-V).
const levelTrace = slog.LevelDebug - 4

// levelAll lets every record through the shared handler; the loggers filter.
const levelAll = slog.Level(math.MinInt32)

// newLogHandler is the one handler core and streaming write through: text or JSON, with or
// without timestamps (in UTC with logtime_utc), the trace level named TRACE. It lets every
// level through: each logger filters with its levelHandler before a record is built.
func newLogHandler(out io.Writer, c *settings) slog.Handler {
	noTime, utc := !c.logTime, c.logUTC
	o := &slog.HandlerOptions{Level: levelAll, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.TimeKey:
			switch {
			case noTime:
				return slog.Attr{}
			case utc:
				a.Value = slog.TimeValue(a.Value.Time().UTC())
			}
		case slog.LevelKey:
			if l, ok := a.Value.Any().(slog.Level); ok && l < slog.LevelDebug {
				a.Value = slog.StringValue("TRACE")
			}
		}
		return a
	}}
	if c.logFormat == logJSON {
		return slog.NewJSONHandler(out, o)
	}
	return slog.NewTextHandler(out, o)
}

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
