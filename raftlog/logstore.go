package raftlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/starling-io/starling/raftlog/seglog"
)

// Log stores (Config.LogStore).
const (
	LogStoreSegments = "segments" // seglog under Dir/Group/log: one fdatasync per commit (default)
	LogStoreBolt     = "bolt"     // raft-boltdb's own log in raft.db: two fdatasyncs per commit
)

// openLog returns the group's log store and what to close with it (nil: the bolt store,
// closed anyway), and the path its errors name. bolt is the stable store (the term and
// the vote), which holds the log too where LogStore is bolt, and for a node whose log
// an earlier version wrote there: it keeps it (DESIGN.md, "The segment log").
func openLog(c *Config, dir string, bolt *raftboltdb.BoltStore, logger *slog.Logger) (raft.LogStore, io.Closer, string, error) {
	segDir := filepath.Join(dir, "log")
	_, err := os.Stat(segDir)
	hasSeg := err == nil
	boltLast, err := bolt.LastIndex()
	if err != nil {
		return nil, nil, "", fmt.Errorf("raftlog: reading %s: %w", filepath.Join(dir, "raft.db"), err)
	}
	useBolt := c.LogStore == LogStoreBolt
	switch {
	case useBolt && hasSeg:
		return nil, nil, "", fmt.Errorf("raftlog: %s holds a segment log: the log store %q would start without it", segDir, LogStoreBolt)
	case !useBolt && !hasSeg && boltLast > 0:
		logger.Info("raftlog: the raft log stays in raft.db, where an earlier version wrote it", "path", filepath.Join(dir, "raft.db"))
		useBolt = true
	}
	if useBolt {
		return bolt, nil, filepath.Join(dir, "raft.db"), nil
	}
	seg, err := seglog.Open(segDir, seglog.Options{SegmentSize: c.LogSegmentBytes, NoSync: c.NoSync, Logger: logger, Hook: c.LogHook})
	if errors.Is(err, seglog.ErrDamaged) {
		return nil, nil, "", damagedLog(segDir, err.Error())
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("raftlog: opening the raft log in %s: %w", segDir, err)
	}
	return seg, seg, segDir, nil
}
