package raftlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHCLogger(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	h := newHCLogger(sl, "raft", hclogLevel(slog.LevelInfo))

	h.Debug("hidden")
	h.Info("entering leader state", "term", 3)
	child := h.Named("snapshots").With("id", "x")
	child.Warn("reaping")
	if got := buf.String(); strings.Contains(got, "hidden") ||
		!strings.Contains(got, `level=INFO msg="entering leader state" logger=raft term=3`) ||
		!strings.Contains(got, `level=WARN msg=reaping`) || !strings.Contains(got, "logger=raft.snapshots") ||
		!strings.Contains(got, "id=x") {
		t.Fatalf("output:\n%s", got)
	}
	if child.Name() != "raft.snapshots" || len(child.ImpliedArgs()) != 2 || h.IsDebug() || !h.IsInfo() {
		t.Fatalf("name %q, implied %v, IsDebug %v", child.Name(), child.ImpliedArgs(), h.IsDebug())
	}

	// The level is shared with derived loggers; Off silences them all.
	buf.Reset()
	h.SetLevel(hclog.Trace)
	child.Trace("now visible")
	if !strings.Contains(buf.String(), "level=DEBUG-4") {
		t.Fatalf("trace after SetLevel(Trace): %q", buf.String())
	}
	buf.Reset()
	h.SetLevel(hclog.Off)
	child.Error("silenced")
	h.StandardLogger(nil).Print("silenced too")
	if buf.Len() != 0 {
		t.Fatalf("output with Off: %q", buf.String())
	}

	off := newHCLogger(sl, "raft", hclog.Off)
	off.Error("x")
	on := newHCLogger(sl, "raft", hclog.Info)
	on.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}).Print("from the standard logger")
	if got := buf.String(); !strings.Contains(got, `level=WARN msg="from the standard logger" logger=raft`) {
		t.Fatalf("standard logger: %q", got)
	}
}
