package nssimport

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/starling-io/starling/stores"
)

// Batching of the messages written: an Append per batch, a Sync per syncBytes.
const (
	batchMsgs  = 1024
	batchBytes = 4 << 20
	syncBytes  = 64 << 20
)

// OpenFunc opens (creating) a Starling store in dir: the caller picks the store type.
type OpenFunc func(dir string) (stores.Store, error)

// Import writes src into a new Starling store at target, which must not exist or be an
// empty directory (made if missing). It writes stores.ImportMarker into target, builds the
// store (opened with open) in a temporary directory inside it, closes it, moves its entries
// into target and removes the marker last (see moveInto): a crash leaves the whole store
// or a directory stores refuse to open. On any error what it wrote is removed and target
// is left as it was (ErrMarkerLeft aside: the whole store is then in place). The messages
// are read again from the nss files and checked as Scan did, so a file changed since Scan
// fails the import. progress, if not nil, gets a line per channel.
func Import(src *Source, target string, open OpenFunc, progress io.Writer) error {
	return ImportContext(context.Background(), src, target, open, progress)
}

// ImportContext is Import, stopped (and cleaned up as on any error) when ctx is done: an
// interrupted import leaves no temporary directory behind.
func ImportContext(ctx context.Context, src *Source, target string, open OpenFunc, progress io.Writer) (err error) {
	if progress == nil {
		progress = io.Discard
	}
	emptyDir, err := checkTarget(target)
	if err != nil {
		return err
	}
	// The store is built inside target and moved up: an existing empty directory may be a
	// mount point (it cannot be removed, and its parent is another file system) or the only
	// one the importing user may write. A missing one is made first, so that a crash leaves
	// it holding the marker, as an existing one would, rather than no target (which a
	// server opens as a new empty store) and the store hidden beside it.
	created := false
	if !emptyDir {
		if created, err = makeTarget(target); err != nil {
			return err
		}
	}
	if err := writeMarker(target); err != nil {
		if created {
			removeCreated(target)
		}
		return err
	}
	defer func() {
		if err != nil && !errors.Is(err, ErrMarkerLeft) {
			removeLoneMarker(target)
			if created {
				removeCreated(target)
			}
		}
	}()
	tmp, err := os.MkdirTemp(target, tmpPrefix(target))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && !errors.Is(err, ErrMarkerLeft) {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp's 0700: make it a usual directory
		return err
	}
	st, err := open(tmp)
	if err != nil {
		return fmt.Errorf("open the target store: %w", err)
	}
	if err := src.write(ctx, st, progress); err != nil {
		_ = st.Close()
		return err
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close the target store: %w", err)
	}
	return moveInto(tmp, target)
}

// makeTarget makes the directory target (its parents too), durably; it reports true once
// target is made.
func makeTarget(target string) (bool, error) {
	parent := filepath.Dir(filepath.Clean(target))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return false, err
	}
	if err := os.Mkdir(target, 0o755); err != nil {
		return false, err
	}
	if err := syncDir(parent); err != nil {
		removeCreated(target)
		return false, err
	}
	return true, nil
}

// removeCreated removes the directory target made by makeTarget if it is empty again.
func removeCreated(target string) {
	if os.Remove(target) == nil {
		_ = syncDir(filepath.Dir(filepath.Clean(target)))
	}
}

// moveInto moves the entries of the store built in tmp into dir (tmp's parent), removes
// tmp, then the import's marker, in movePlan's order. A failure while entries are moved
// removes what was moved again; one after the last is moved leaves the whole store in
// place (ErrMarkerLeft, saying what is left to remove): a marker that cannot be removed is
// no reason to delete a complete import.
func moveInto(tmp, dir string) (err error) {
	steps, err := movePlan(tmp, dir)
	if err != nil {
		return err
	}
	// From the first removal on (tmp's, then the marker's), the whole store is in place.
	whole := slices.IndexFunc(steps, func(st moveStep) bool { return st.to == "" })
	var moved []string
	defer func() {
		if err != nil && !errors.Is(err, ErrMarkerLeft) {
			for _, p := range moved {
				_ = os.RemoveAll(p)
			}
		}
	}()
	for i, st := range steps {
		if err := st.do(); err != nil {
			if i >= whole {
				return markerLeft(tmp, dir, err)
			}
			return err
		}
		if st.from != "" && st.to != "" {
			moved = append(moved, st.to)
		}
	}
	return nil
}

// markerLeft is the error of an import whose store is whole in dir but whose last steps
// (removing tmp, then the marker, each fsynced) failed with err: it names what to remove.
func markerLeft(tmp, dir string, err error) error {
	marker := filepath.Join(dir, stores.ImportMarker)
	var left []string
	for _, p := range []string{tmp, marker} {
		if _, serr := os.Lstat(p); serr == nil {
			left = append(left, p)
		}
	}
	if len(left) == 0 { // only the last fsync failed
		return fmt.Errorf("%w: the store is whole in %s and %s removed, but: %w (a crash before the file system "+
			"writes it out may bring the marker back: remove it then)", ErrMarkerLeft, dir, marker, err)
	}
	return fmt.Errorf("%w: the store is whole in %s, but: %w; no store opens there until you remove %s by hand",
		ErrMarkerLeft, dir, err, strings.Join(left, " and "))
}

// movedLast reports the files moved after every other entry: the file store's clean-close
// proof (meta.end) speaks of meta.log, and without it the store opens as a crash left it,
// while a proof whose meta.log is missing makes the store refuse to open.
func movedLast(name string) bool { return name == "meta.end" }

// notMoved: the file store's lock file (filestore's LOCK), which guards the store while it
// is open and holds nothing: removed with tmp, the target makes its own when opened.
func notMoved(name string) bool { return name == "LOCK" }

// moveStep renames from to to; or (from empty) fsyncs the directory to; or (to empty)
// removes from.
type moveStep struct{ from, to string }

func (st moveStep) do() error {
	switch {
	case st.from == "":
		return syncDir(st.to)
	case st.to == "":
		return os.Remove(st.from)
	}
	return os.Rename(st.from, st.to)
}

// movePlan orders the moves of moveInto: the lock file removed (notMoved), directories first, then the top-level files
// (filestore's meta.log, bolt's file) that name them, then movedLast ones, each group made
// durable before the next; then tmp is removed and, last, the marker (writeMarker), each
// made durable. A crash before the marker's removal leaves a directory stores refuse to
// open, whatever was moved (channel directories no store file names, or nothing, would
// otherwise open as a new empty store); one after it, the whole store.
func movePlan(tmp, dir string) ([]moveStep, error) {
	all, err := os.ReadDir(tmp)
	if err != nil {
		return nil, err
	}
	var steps []moveStep
	entries := all[:0]
	for _, e := range all {
		if !e.IsDir() && notMoved(e.Name()) {
			steps = append(steps, moveStep{from: filepath.Join(tmp, e.Name())})
			continue
		}
		entries = append(entries, e)
	}
	rank := func(e os.DirEntry) int {
		switch {
		case e.IsDir():
			return 0
		case movedLast(e.Name()):
			return 2
		}
		return 1
	}
	sort.SliceStable(entries, func(i, j int) bool { return rank(entries[i]) < rank(entries[j]) })
	for i, e := range entries {
		if i > 0 && rank(entries[i-1]) != rank(e) {
			steps = append(steps, moveStep{to: dir})
		}
		steps = append(steps, moveStep{from: filepath.Join(tmp, e.Name()), to: filepath.Join(dir, e.Name())})
	}
	return append(steps, moveStep{from: tmp}, moveStep{to: dir},
		moveStep{from: filepath.Join(dir, stores.ImportMarker)}, moveStep{to: dir}), nil
}

// writeMarker writes stores.ImportMarker into dir, durably (file and directory fsynced).
func writeMarker(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, stores.ImportMarker), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString("starling store import is filling this directory: until it removes this file, no store opens here\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// removeLoneMarker removes the marker of a failed import once its cleanup left nothing else
// in dir; otherwise the marker stays, refusing what is left.
func removeLoneMarker(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != stores.ImportMarker {
		return
	}
	if os.Remove(filepath.Join(dir, stores.ImportMarker)) == nil {
		_ = syncDir(dir)
	}
}

// CheckTarget returns ErrTargetExists or ErrInterruptedImport if Import would refuse
// target (so that a caller can say so before a long Scan).
func CheckTarget(target string) error {
	_, err := checkTarget(target)
	return err
}

// checkTarget refuses a target that exists with something in it, or that does not exist
// while an earlier import's temporary directory is beside it; it reports whether an empty
// directory is there (false: target is to be made).
func checkTarget(target string) (bool, error) {
	fi, err := os.Stat(target)
	if errors.Is(err, os.ErrNotExist) {
		// Imports by earlier versions built beside the target: killed, they left these,
		// hidden, maybe as big as the store (imports now build inside the target).
		if left := leftoverBeside(target); left != "" {
			return false, fmt.Errorf("%w: %s holds %s, left by an import into %s that was interrupted (or is still running): remove it and import again",
				ErrInterruptedImport, filepath.Dir(filepath.Clean(target)), left, target)
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%w: %s is a file", ErrTargetExists, target)
	}
	entries, err := os.ReadDir(target)
	if err != nil {
		return false, err
	}
	if len(entries) > 0 {
		if slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == stores.ImportMarker }) {
			return false, fmt.Errorf("%w: %s holds %s, left by an interrupted import with what it had written: empty it and import again",
				ErrTargetExists, target, stores.ImportMarker)
		}
		if left := leftoverImports(target, entries); left != "" {
			// Only an import killed before it could clean up leaves these (any error or
			// interrupt removes its own): say so, as the directory looks empty to ls.
			return false, fmt.Errorf("%w: %s holds %s, left by an interrupted import: remove it and import again",
				ErrTargetExists, target, left)
		}
		return false, fmt.Errorf("%w: %s", ErrTargetExists, target)
	}
	return true, nil
}

// leftoverImports names the temporary directories of earlier imports into target when
// they are all it holds, else returns "".
func leftoverImports(target string, entries []os.DirEntry) string {
	prefix := tmpPrefix(target)
	var names []string
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			return ""
		}
		names = append(names, filepath.Join(target, e.Name()))
	}
	return strings.Join(names, ", ")
}

// tmpPrefix begins the name of an import's temporary directory for target (.TARGET.import-).
func tmpPrefix(target string) string { return "." + filepath.Base(filepath.Clean(target)) + ".import-" }

// leftoverBeside names the temporary directories of earlier imports into target in its
// parent, or returns "".
func leftoverBeside(target string) string {
	parent := filepath.Dir(filepath.Clean(target))
	entries, err := os.ReadDir(parent)
	if err != nil {
		return "" // a missing parent is created; an unreadable one fails MkdirTemp
	}
	prefix := tmpPrefix(target)
	var names []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
			names = append(names, filepath.Join(parent, e.Name()))
		}
	}
	return strings.Join(names, ", ")
}

// write fills a fresh store: server identity, channels (IDs 1, 2, … by name) with their
// messages and subscriptions, clients.
func (src *Source) write(ctx context.Context, st stores.Store, progress io.Writer) error {
	if err := st.SetLimits(&stores.LimitsSet{}); err != nil { // unlimited: drop nothing here
		return err
	}
	rs, err := st.Recover()
	if err != nil {
		return err
	}
	if rs != nil {
		return ErrTargetNotEmpty
	}
	info := src.Info
	info.NodeID = newNodeID()
	if err := st.Init(info); err != nil {
		return err
	}
	for i, ch := range src.Channels {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := st.CreateChannel(ch.Name, uint64(i+1))
		if err != nil {
			return fmt.Errorf("channel %s: %w", ch.Name, err)
		}
		if err := src.writeMsgs(ctx, ch, c.Msgs); err != nil {
			return err
		}
		if err := writeSubs(ch, c.Subs); err != nil {
			return fmt.Errorf("channel %s: subscriptions: %w", ch.Name, err)
		}
		fmt.Fprintf(progress, "imported channel %s: %d message(s), %d subscription(s)\n", ch.Name, ch.Msgs, len(ch.Subs))
	}
	for _, c := range src.Clients {
		if err := st.AddClient(c); err != nil {
			return fmt.Errorf("client %s: %w", c.ID, err)
		}
	}
	return st.Sync()
}

// writeMsgs appends a channel's messages in batches, re-reading and re-checking them.
func (src *Source) writeMsgs(ctx context.Context, ch *Channel, ms stores.MsgStore) error {
	var (
		seq     seqCheck
		batch   = make([]stores.Msg, 0, batchMsgs)
		arena   = make([]byte, 0, batchBytes)
		size    int // bytes of the batch
		unsync  int // bytes appended since the last Sync
		written uint64
	)
	flush := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		if err := ms.Append(batch); err != nil {
			return fmt.Errorf("channel %s: append at sequence %d: %w", ch.Name, batch[0].Seq, err)
		}
		written += uint64(len(batch))
		unsync += size
		batch, arena, size = batch[:0], arena[:0], 0
		if unsync >= syncBytes {
			unsync = 0
			return ms.Sync()
		}
		return nil
	}
	for _, sl := range ch.slices {
		err := readSlice(sl, src.table, func(string) {}, func(m *nssMsg, file string, at int64) error {
			t, err := seq.next(m, file, at)
			if err != nil {
				return err
			}
			if len(batch) == batchMsgs || size+len(m.Data)+len(m.Reply) > batchBytes {
				if err := flush(); err != nil {
					return err
				}
			}
			// The record's buffer is reused: keep a copy until the batch is appended
			// (a message bigger than the arena gets its own copy).
			var data []byte
			if len(arena)+len(m.Data) <= cap(arena) {
				arena = append(arena, m.Data...)
				data = arena[len(arena)-len(m.Data):]
			} else {
				data = append([]byte(nil), m.Data...)
			}
			batch = append(batch, stores.Msg{Seq: m.Seq, Time: t, Reply: string(m.Reply), Data: data})
			size += len(m.Data) + len(m.Reply)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if written != ch.Msgs {
		return fmt.Errorf("channel %s: %d messages read, %d when scanned: the nss store changed", ch.Name, written, ch.Msgs)
	}
	return ms.Sync()
}

// writeSubs creates a channel's subscriptions and records their pending messages as sent.
func writeSubs(ch *Channel, ss stores.SubStore) error {
	var events []stores.SubEvent
	for i := range ch.Subs {
		s := &ch.Subs[i]
		st := s.State
		if err := ss.CreateSub(&st); err != nil {
			return fmt.Errorf("subscription %d: %w", st.ID, err)
		}
		for _, seq := range s.Pending {
			events = append(events, stores.SubEvent{SubID: st.ID, Seq: seq})
		}
	}
	if len(events) > 0 {
		if err := ss.Record(events); err != nil {
			return err
		}
	}
	return ss.Sync()
}

// newNodeID returns a server ID for the new store as Starling makes its own (22 random
// base64url characters): Starling derives its private subjects from it (its ack inboxes
// among them), so it must be persisted for them to survive restarts.
func newNodeID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// syncDir fsyncs a directory, so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
