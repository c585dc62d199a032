package raftlog

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/boltcheck"
)

// checkLogFile verifies the raft log's bolt file before raft reads it: a torn tail is
// harmless (bolt's copy-on-write keeps the last committed state, and the leader sends what
// is missing), but damage in the middle — a flipped bit, a page overwritten — would make
// raft read wrong entries or bolt fault or panic: at Open, bolt rebuilds the freelist it
// does not sync by walking the file in a goroutine of its own, where a damaged page, or
// any finding of that walk, ends the process. boltcheck.File checks every page that walk
// reaches, with bounds-checked reads, as the bolt store does. A damaged file is never
// used, repaired or deleted here: the node refuses to start, and so to vote, naming the
// file and the way to repair.
func checkLogFile(path string) error {
	err := boltcheck.File(path)
	var d *boltcheck.DamageError
	switch {
	case errors.As(err, &d):
		return damagedLog(path, d.Err.Error())
	case err != nil:
		return fmt.Errorf("raftlog: checking %s: %w", path, err)
	}
	return nil
}

// checkEntries reads every entry of the log and checks the commands' framing and checksum
// (entry format 2), before raft may send one to a peer or apply it: a bit flipped at rest
// would otherwise travel — this node, elected for its long log, would replicate the damaged
// entry to the others, and every node that applied it would stop. The node refuses to start
// instead, as for a damaged file. Bounded by the log's size after compaction (the trailing
// entries and the snapshot threshold).
func checkEntries(path string, store raft.LogStore) error {
	first, err := store.FirstIndex()
	if err != nil {
		return fmt.Errorf("raftlog: reading %s: %w", path, err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return fmt.Errorf("raftlog: reading %s: %w", path, err)
	}
	damaged := func(i uint64, cause error) error { return damagedLog(path, fmt.Sprintf("entry %d: %v", i, cause)) }
	var l raft.Log
	for i := first; first > 0 && i <= last; i++ {
		if err := store.GetLog(i, &l); err != nil {
			return damaged(i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		r, err := readEntry(l.Data)
		for err == nil && r.more() {
			_, err = r.next()
		}
		if err == nil {
			err = r.end()
		}
		if err != nil {
			return damaged(i, err)
		}
	}
	return nil
}

// checkLogReach refuses a log that begins after the entry following the newest snapshot:
// the entries in between are lost (a segment file gone from the middle, or a sealed one cut
// short where a record ends, reads as a gap that the segment log takes for a deletion a
// crash undid, and drops what precedes it). raft reads every entry after the snapshot as it
// starts and panics on the first missing one, at every start.
func checkLogReach(path string, logs raft.LogStore, snaps raft.SnapshotStore) error {
	first, err := logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("raftlog: reading %s: %w", path, err)
	}
	if first == 0 {
		return nil // empty: raft goes on from the snapshot
	}
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("raftlog: listing the snapshots: %w", err)
	}
	var snap uint64
	if len(metas) > 0 {
		snap = metas[0].Index // newest first
	}
	if first > snap+1 {
		return damagedLog(path, fmt.Sprintf("it begins at entry %d and the newest snapshot ends at entry %d: entries %d to %d are missing",
			first, snap, snap+1, first-1))
	}
	return nil
}

// checkSnapshots refuses a raft directory whose snapshots all fail to open (raft's store
// checks each one's CRC as it opens it), as raft would at its start — but before the
// application starts anything for it (Config.BeforeStart), so that a damaged directory
// never has the node accept clients, only to exit a moment later. The newest snapshot that
// opens is returned open, checked, for raft's restore (snapStore): its CRC pass reads the
// whole file, and raft's own Open would read it all once more before restoring it.
func checkSnapshots(dir string, snaps raft.SnapshotStore) (*checkedSnapshot, error) {
	metas, err := snaps.List()
	if err != nil {
		return nil, fmt.Errorf("raftlog: listing the snapshots: %w", err)
	}
	var errs []error
	for _, m := range metas {
		meta, rc, err := snaps.Open(m.ID)
		if err == nil {
			return &checkedSnapshot{id: m.ID, meta: meta, rc: rc}, nil // raft restores this one, or a newer one that opens
		}
		errs = append(errs, fmt.Errorf("snapshot %s: %w", m.ID, err))
	}
	if len(errs) == 0 {
		return nil, nil
	}
	return nil, fmt.Errorf("raftlog: the raft snapshots in %s are damaged (%w); this node does not start, and so does not vote, "+
		"until it is repaired: stop it, move %s aside and start it again; it rejoins with an empty log and catches up "+
		"from the others", filepath.Join(dir, "snapshots"), errors.Join(errs...), dir)
}

// checkedSnapshot is a snapshot checkSnapshots opened, its CRC checked and its reader at
// the start.
type checkedSnapshot struct {
	id   string
	meta *raft.SnapshotMeta
	rc   io.ReadCloser
}

// damagedLog is the refusal of a damaged raft log: what is wrong, and how to repair it.
func damagedLog(path, what string) error {
	return fmt.Errorf("raftlog: the raft log %s is damaged: %s; this node does not start, and so does not vote, until "+
		"it is repaired: stop it, move %s aside and start it again; it rejoins with an empty log and catches up from "+
		"the others (a snapshot, then the messages its store lacks)", path, what, path)
}

// openHook is the snapshot store with Config.snapshotOpened called on every Open.
type openHook struct {
	raft.SnapshotStore
	opened func(id string)
}

func (h *openHook) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	h.opened(id)
	return h.SnapshotStore.Open(id)
}
