package raftlog

import (
	"context"
	"io"
	"log"
	"log/slog"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

var _ hclog.Logger = (*hcLogger)(nil)

// hcLogger adapts raft's logger interface (hclog.Logger) to a *slog.Logger, so raft, its
// transport and its snapshot store log through the server's logger. hclog's name becomes a
// "logger" attribute; its key/value arguments are slog's. The level is shared by a logger
// and every logger derived from it, as in hclog.
type hcLogger struct {
	base  *slog.Logger // with the implied arguments, without the name
	l     *slog.Logger // base with the name
	name  string
	args  []any // the implied arguments, for ImpliedArgs
	level *atomic.Int32
}

// newHCLogger returns raft's logger over l, logging from level up (hclog.Off: nothing).
func newHCLogger(l *slog.Logger, name string, level hclog.Level) *hcLogger {
	lv := new(atomic.Int32)
	lv.Store(int32(level))
	return derive(l, name, nil, lv)
}

func derive(base *slog.Logger, name string, args []any, level *atomic.Int32) *hcLogger {
	l := base
	if name != "" {
		l = base.With("logger", name)
	}
	return &hcLogger{base: base, l: l, name: name, args: args, level: level}
}

// slogLevel maps hclog's levels to slog's; Trace sits below Debug.
func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo // Info, and NoLevel (unset)
}

// hclogLevel is the hclog threshold that lets through what slog level l would.
func hclogLevel(l slog.Level) hclog.Level {
	switch {
	case l < slog.LevelDebug:
		return hclog.Trace
	case l < slog.LevelInfo:
		return hclog.Debug
	case l < slog.LevelWarn:
		return hclog.Info
	case l < slog.LevelError:
		return hclog.Warn
	}
	return hclog.Error
}

func (h *hcLogger) enabled(l hclog.Level) bool {
	if l == hclog.NoLevel {
		l = hclog.Info
	}
	floor := hclog.Level(h.level.Load())
	if floor == hclog.Off || l == hclog.Off || l < floor {
		return false
	}
	return h.l.Enabled(context.Background(), slogLevel(l))
}

func (h *hcLogger) Log(l hclog.Level, msg string, args ...any) {
	if h.enabled(l) {
		h.l.Log(context.Background(), slogLevel(l), msg, args...)
	}
}

func (h *hcLogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hcLogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hcLogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hcLogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hcLogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hcLogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hcLogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hcLogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hcLogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hcLogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hcLogger) ImpliedArgs() []any { return h.args }

func (h *hcLogger) With(args ...any) hclog.Logger {
	all := append(append([]any(nil), h.args...), args...)
	return derive(h.base.With(args...), h.name, all, h.level)
}

func (h *hcLogger) Name() string { return h.name }

func (h *hcLogger) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return derive(h.base, name, h.args, h.level)
}

func (h *hcLogger) ResetNamed(name string) hclog.Logger {
	return derive(h.base, name, h.args, h.level)
}

func (h *hcLogger) SetLevel(l hclog.Level) { h.level.Store(int32(l)) }

func (h *hcLogger) GetLevel() hclog.Level { return hclog.Level(h.level.Load()) }

// StandardLogger returns a *log.Logger writing at Info (or opts.ForceLevel) through h,
// unless h is off.
func (h *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hcLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	l := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		l = opts.ForceLevel
	}
	if !h.enabled(l) {
		return io.Discard
	}
	return slog.NewLogLogger(h.l.Handler(), slogLevel(l)).Writer()
}
