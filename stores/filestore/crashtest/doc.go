// Package crashtest simulates a power cut under a filestore, for tests (import it only
// from _test.go files).
//
// A Disk plugs into filestore.Options.Hooks and learns, for every file (by inode, so that
// a log renamed over its predecessor keeps its history), how many bytes its last successful
// fsync covered: the file's size when that fsync started. PowerLoss then turns a store
// directory into what a power cut could leave on a disk with a volatile write cache:
//
//   - every file is cut back to what its last fsync covered — nothing synced is lost;
//   - of the unsynced rest, a random prefix is kept, with random 4 KiB pages of it zeroed
//     (written pages that never reached the platter, or reached it out of order) and the
//     last kept page partial;
//   - a file never fsynced may vanish altogether, or be torn likewise.
//
// Use:
//
//	disk := crashtest.New()
//	opts := filestore.Options{}
//	disk.Install(&opts)            // before the first Open of the directory
//	st, _ := filestore.Open(dir, opts)
//	... writes, syncs (note what each returned Sync or SyncFlushed covered) ...
//	disk.Freeze()                  // the moment of the cut: every later write, file change and fsync fails
//	st.Close()                     // a frozen store writes nothing (or abandon it)
//	disk.PowerLoss(dir, rng)       // the disk as the power cut left it
//	disk.Thaw()
//	st, _ = filestore.Open(dir, opts) // must find everything a returned sync covered
//
// Freeze waits for writes and file changes in progress, so PowerLoss may also run while a
// frozen store is still open (its calls fail, and its files are left alone). An fsync that
// completes after Freeze is not counted: whoever counts durability must not count a sync
// that returns after the Freeze either. After PowerLoss the files are taken as synced as
// they are (the disk holds them), so one Disk serves a sequence of runs and cuts.
//
// Another store's files go through Do, one call per write, fsync and file change
// (raftlog/seglog's Options.Hook has its signature): a raft log and a filestore on one
// Disk then lose power together.
//
// Not modelled: directory entries (a created, renamed or removed file whose directory was
// not fsynced may come back or vanish on a real disk; here the entries are as the store
// left them), and old contents of overwritten bytes (a rewritten page comes back zeroed,
// never as its older version).
package crashtest
