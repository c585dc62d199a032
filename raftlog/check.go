package raftlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// checkLogFile verifies the raft log's bolt file before raft reads it: a torn tail is
// harmless (bolt's copy-on-write keeps the last committed state, and the leader sends what
// is missing), but damage in the middle — a flipped bit, a page overwritten — would make
// raft read wrong entries or bolt panic. A damaged file is never used, repaired or deleted
// here: the node refuses to start, and so to vote, naming the file and the way to repair.
func checkLogFile(path string) (err error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	damaged := func(cause any) error { return damagedLog(path, fmt.Sprint(cause)) }
	// A file cut short of the pages its meta page counts makes bbolt read its mapping past
	// the end: SIGBUS, which no recover catches. A damaged page would make bbolt's own walk
	// at Open (it rebuilds the unsynced freelist) fault in a goroutine of its own.
	m, err := readBoltMeta(path)
	if err == nil {
		err = checkBoltTree(path, m)
	}
	if err != nil {
		return damaged(err)
	}
	if m.pageSize != 0 && m.freelist == ^uint64(0) {
		// No synced freelist: bolt's check would rebuild it by the walk just made and find
		// nothing that walk did not (a second walk of a log that may hold a gigabyte).
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = damaged(r)
		}
	}()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil // in use: NewNode's own open reports it
		}
		return damaged(err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		var first error
		for cerr := range tx.Check() { // drained: the check stops only at the end
			if first == nil {
				first = damaged(cerr)
			}
		}
		return first
	})
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

// damagedLog is the refusal of a damaged raft log: what is wrong, and how to repair it.
func damagedLog(path, what string) error {
	return fmt.Errorf("raftlog: the raft log %s is damaged: %s; this node does not start, and so does not vote, until "+
		"it is repaired: stop it, move %s aside and start it again; it rejoins with an empty log and catches up from "+
		"the others (a snapshot, then the messages its store lacks)", path, what, path)
}
