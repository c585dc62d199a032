package filestore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-io/starling/stores"
)

// Compile-time proof that the file store implements the contract.
var (
	_ stores.Store           = (*Store)(nil)
	_ stores.ChannelsCreator = (*Store)(nil)
	_ stores.ChannelsDeleter = (*Store)(nil)
	_ stores.MsgStore        = (*msgStore)(nil)
	_ stores.SubStore        = (*subStore)(nil)

	_ stores.SplitSyncer = (*msgStore)(nil)
	_ stores.SplitSyncer = (*subStore)(nil)
	_ stores.SplitSyncer = (*Store)(nil)
)

// DefaultSegmentBytes is the size at which a channel's segment is sealed.
const DefaultSegmentBytes = 64 << 20

// DefaultBufferSize is the write buffer of a tail segment.
const DefaultBufferSize = 256 << 10

// Options configure a file store. The zero value is usable.
type Options struct {
	// Limits are the initial limits (copied); nil means {Global: stores.DefaultLimits()}.
	Limits *stores.LimitsSet
	// SegmentBytes is the segment size (0 = DefaultSegmentBytes, at most 1 GiB).
	SegmentBytes int64
	// SegmentMsgs rolls to a new segment after this many messages (0: no limit).
	SegmentMsgs int
	// SegmentAge rolls to a new segment when the tail's first message is this much older
	// than the one being written (0: no limit). Limits drop whole segments, so smaller
	// segments free disk sooner.
	SegmentAge time.Duration
	// BufferSize is the write buffer of each channel's tail segment (0 =
	// DefaultBufferSize). Sync flushes it; a larger one only batches the writes of
	// batches bigger than it.
	BufferSize int
	// ParallelRecovery is how many channels Open recovers at once (0: GOMAXPROCS).
	ParallelRecovery int
	// NoSync skips every fsync (tests, or users trading safety for speed): Sync only hands
	// the writes to the OS, which survive a crash of the process but not of the machine.
	NoSync bool
	// AutoSync, with NoSync, fsyncs every file written since the previous pass at this
	// interval (0: never), from one goroutine per store, so power loss takes at most about
	// AutoSync of acknowledged writes. Without NoSync every Sync fsyncs and it is unused.
	AutoSync time.Duration
	// MaxOpenSegments bounds the read handles of sealed segments kept open across all
	// channels (0 = DefaultMaxOpenSegments); each channel also keeps its tail segment and
	// subs.log open.
	MaxOpenSegments int
	// Logger receives what recovery repaired or dropped (nil = discard).
	Logger *slog.Logger
	// Quarantine lets Repair move segments damaged before their end (and every earlier
	// segment of the channel) into the channel's quarantine/ directory instead of refusing.
	Quarantine bool
	// CompactBytes is the size from which meta.log and subs.log are compacted while the
	// store runs, once they are also twice their size after their last compaction (0 =
	// DefaultCompactBytes; negative: only at open).
	CompactBytes int
	// Hooks inject faults (tests).
	Hooks Hooks

	pending *syncSet     // NoSync with AutoSync: what the next pass fsyncs (set by Open)
	wb      *writebacker // without NoSync: starts the writeback of tails (writeback.go; set by Open)
}

// Hooks are test hooks: fault injection and the crashtest layer. Nil fields are ignored
// and cost a nil check.
type Hooks struct {
	// BeforeSync is called with the path of a file or directory after its data has been
	// written and before it is fsynced; an error fails the fsync (and whatever it was for)
	// as a failed fsync would.
	BeforeSync func(path string) error
	// AfterSync is called after each fsync of a store file (not with NoSync, which skips
	// them; not for directories) with its path, what Stat said of it just before the fsync
	// (so fi.Size() bytes at least are durable if err is nil; fi.Sys() identifies the
	// file across renames), and the fsync's error.
	AfterSync func(path string, fi os.FileInfo, err error)
	// Write performs every write of p to a store file (segments, indexes, logs) in place of
	// the store: it calls write with p and returns what write returned — or writes a prefix
	// of p and returns an error, as a full disk would, or writes nothing and fails.
	Write func(path string, p []byte, write func([]byte) (int, error)) (n int, err error)
	// Change performs every creation (or truncation to zero), truncation, rename over, and
	// removal of a store file or directory in place of the store: it calls do and returns
	// its error, or fails the change without calling it. op is ChangeCreate or another
	// kind; size is the new size of a truncation.
	Change func(op, path string, size int64, do func() error) error
	// AfterAutoSync is called after each AutoSync pass with the number of files and
	// directories it fsynced and its first error.
	AfterAutoSync func(n int, err error)
}

// Metadata record types of meta.log.
const (
	metaInfo      = 'I'
	metaClient    = 'A'
	metaClientDel = 'R'
	metaChannel   = 'C' // name, id, dir number, base last
	metaChanDel   = 'X' // name, last (also a tombstone), dir number (DeleteChannel's; not in a snapshot)
	metaClean     = 'Z' // the last record Close writes: the run ended cleanly
	metaTail      = 'T' // dir number, tail first, bytes fsynced, Last: what a clean Close left of a tail
	metaSubsLog   = 'L' // dir number, bytes fsynced: what a clean Close left of a channel's subs.log
)

// Store is the file store.
type Store struct {
	// mu guards the fields below. Lock order: Store.mu, then a channel's msgStore.mu or
	// subStore.mu.
	mu sync.Mutex

	dir      string
	opts     Options
	limits   *stores.LimitsSet
	meta     *recLog
	info     *stores.ServerInfo
	clients  map[string]stores.ClientInfo
	channels map[string]*channel
	damaged  map[string]*channel // not opened: their data failed its checks (kept on disk)
	tombs    map[string]uint64
	nextDir  uint64
	fds      *fdCache
	lock     *os.File // the directory's lock (lock.go), held until Close
	closed   bool
	clean    bool // the previous run ended with Close (Recover's Clean)
	// closeAt: meta.log's T and L records by directory number: what a clean Close fsynced
	// of each tail and subs.log. Used by Open only (the rewrite keeps those of damaged
	// channels).
	closeAt map[uint64]*cleanClose
	// deadDirs: directory numbers of channels meta.log's X records say were deleted: their
	// directories, if still there, are removed at open.
	deadDirs map[uint64]bool
	// dropping: the channels DeleteChannels is deleting while meta.log syncs their X
	// records, so that a rewrite of meta.log at that sync keeps the records' directory numbers.
	dropping []dropRec
	// fenced: channels a failed DeleteChannels left that meta.log may not name durably
	// (channels.go): they refuse everything until a commit of meta.log succeeds.
	fenced []*channel
	buf    []byte

	stopSync func() // stops the AutoSync goroutine (nil without, or once stopped)
}

// dropRec is an X record: a deleted channel's name, last sequence and directory number.
type dropRec struct {
	name     string
	last, dn uint64
}

type channel struct {
	err    error // why it is damaged
	ch     stores.Channel
	dirNum uint64
	base   uint64
	clean  cleanClose // what a clean Close left of its files, if known
	msgs   *msgStore
	subs   *subStore
}

// Open opens (creating if needed) the file store in dir and recovers what it holds.
func Open(dir string, opts Options) (*Store, error) {
	limits, err := checkOptions(&opts)
	if err != nil {
		return nil, err
	}
	if err := stores.CheckImportMarker(dir); err != nil {
		return nil, fmt.Errorf("filestore: %w", err) // before anything is created or removed
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir, false)
	if err != nil {
		return nil, err
	}
	s, err := openLocked(dir, opts, limits)
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	s.lock = lock
	return s, nil
}

// openLocked is Open once the directory is locked.
func openLocked(dir string, opts Options, limits *stores.LimitsSet) (*Store, error) {
	s := &Store{dir: dir, opts: opts, limits: limits, clients: map[string]stores.ClientInfo{},
		channels: map[string]*channel{}, damaged: map[string]*channel{}, tombs: map[string]uint64{}, nextDir: 1,
		fds: &fdCache{max: opts.MaxOpenSegments}}
	if !s.opts.NoSync {
		s.opts.wb = newWritebacker()
	}
	n, err := s.loadMeta()
	if err != nil {
		return nil, err // loadMeta stopped the writebacker
	}
	if n == 0 {
		if err := s.checkMetaNotLost(); err != nil {
			s.abandon()
			return nil, err
		}
	}
	if err := s.removeStrayDirs(); err != nil {
		s.abandon()
		return nil, err
	}
	if err := s.openChannels(); err != nil {
		s.abandon()
		return nil, err
	}
	s.closeAt, s.deadDirs = nil, nil // the rewrite keeps only the damaged channels' T and L records
	err = s.meta.rewrite()
	if err == nil {
		err = s.meta.syncLocked()
	}
	if err != nil {
		s.abandon()
		return nil, err
	}
	if s.opts.pending != nil {
		s.stopSync = stores.Periodic(s.opts.AutoSync, func() { _ = s.autoSyncPass() })
	}
	return s, nil
}

// checkOptions validates opts and fills in its defaults; it returns the limits to use,
// which it takes out of opts.
func checkOptions(opts *Options) (*stores.LimitsSet, error) {
	if opts.SegmentBytes < 0 || opts.SegmentBytes > 1<<30 {
		return nil, fmt.Errorf("filestore: invalid SegmentBytes %d", opts.SegmentBytes)
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	if opts.Limits != nil {
		if err := opts.Limits.Validate(); err != nil {
			return nil, err
		}
		limits = opts.Limits.Clone()
	}
	opts.Limits = nil
	if opts.MaxOpenSegments <= 0 {
		opts.MaxOpenSegments = DefaultMaxOpenSegments
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case opts.AutoSync < 0:
		return nil, fmt.Errorf("filestore: invalid AutoSync %v", opts.AutoSync)
	case opts.SegmentMsgs < 0, opts.SegmentAge < 0, opts.BufferSize < 0, opts.ParallelRecovery < 0:
		return nil, fmt.Errorf("filestore: negative SegmentMsgs, SegmentAge, BufferSize or ParallelRecovery")
	}
	if opts.BufferSize == 0 {
		opts.BufferSize = DefaultBufferSize
	}
	if opts.CompactBytes == 0 {
		opts.CompactBytes = DefaultCompactBytes
	}
	if opts.ParallelRecovery == 0 {
		opts.ParallelRecovery = runtime.GOMAXPROCS(0)
	}
	opts.pending, opts.wb = nil, nil
	if opts.NoSync && opts.AutoSync > 0 {
		opts.pending = newSyncSet()
	}
	return limits, nil
}

// loadMeta opens meta.log and replays its records into s; it returns how many it holds.
// On failure it stops the writebacker (nothing else runs yet).
func (s *Store) loadMeta() (int, error) {
	// A meta.log cut below what the last clean Close fsynced of it (meta.end) is damage,
	// not a torn tail.
	end, why, err := readMetaEnd(s.dir)
	if err != nil {
		s.opts.wb.stop()
		return 0, err
	}
	if why != "" {
		s.opts.Logger.Warn("filestore: clean close record ignored", "file", filepath.Join(s.dir, metaEndName), "why", why)
	}
	l, ld, err := openRecLog(filepath.Join(s.dir, "meta.log"), magicMeta, &s.opts, end)
	if err != nil {
		s.opts.wb.stop() // nothing else runs yet
		return 0, err
	}
	// Clean only if Close's mark is the last record. The rewrite in Open drops it, so any
	// change after this open — or a crash — leaves the next open not clean.
	recs := ld.recs
	s.clean = ld.intact() && len(recs) > 0 && len(recs[len(recs)-1]) == 1 && recs[len(recs)-1][0] == metaClean
	l.mu, l.snapshot, l.onCommit = &s.mu, s.appendSnapshot, s.unfence
	s.meta = l
	for _, r := range recs {
		s.replay(r)
	}
	return len(recs), nil
}

// checkMetaNotLost is for a meta.log that holds nothing (new, or emptied): channel
// directories holding messages mean it was lost, and the stray removal in Open would
// delete them all.
func (s *Store) checkMetaNotLost() error {
	if segs, _ := filepath.Glob(filepath.Join(s.dir, "ch[0-9]*", "*.seg")); len(segs) > 0 {
		return fmt.Errorf("filestore: %w: %s holds no record, yet %s holds messages: the store's metadata is lost (not opened, which would delete the channel directories)",
			ErrCorrupt, filepath.Join(s.dir, "meta.log"), filepath.Dir(segs[0]))
	}
	return nil
}

// openChannels opens the channels meta.log names. A channel whose data fails its checks
// (a DamageError) is set aside in s.damaged; any other error is returned.
func (s *Store) openChannels() error {
	// Channels open in parallel: recovery scans each tail segment (CRCs), which is CPU
	// work that spreads over the cores. openChannel touches only its own channel and the
	// shared handle cache (which has its own lock).
	names := make([]string, 0, len(s.channels))
	for name := range s.channels {
		names = append(names, name)
	}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range min(s.opts.ParallelRecovery, len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(names); i = int(next.Add(1) - 1) {
				errs[i] = s.openChannel(names[i], s.channels[names[i]])
			}
		}()
	}
	wg.Wait()
	for i, name := range names {
		ch := s.channels[name]
		if err := errs[i]; err != nil {
			var de *DamageError
			if !errors.As(err, &de) {
				return err
			}
			// Fail this channel loudly; the others are served. Its files stay as they are.
			de.Channel = name
			s.opts.Logger.Error("filestore: channel damaged, not opened", "channel", name,
				"file", de.File, "offset", de.Offset, "reason", de.Reason)
			ch.err = de
			s.damaged[name] = ch
			delete(s.channels, name)
		}
	}
	return nil
}

func (s *Store) chanDir(n uint64) string { return filepath.Join(s.dir, fmt.Sprintf("ch%08d", n)) }

func (s *Store) openChannel(name string, ch *channel) error {
	d := s.chanDir(ch.dirNum)
	// CreateChannel makes the directory durable before the record naming it: one missing
	// was removed or lost, with the messages and subscriptions it held. Recreating it
	// empty would hide that and hand their sequences out again; Repair does it on request.
	if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
		return &DamageError{File: d, Reason: "channel directory missing: its messages and subscriptions are lost (repair recreates it empty)"}
	} else if err != nil {
		return err
	}
	l := s.limits.For(name)
	if c := s.closeAt[ch.dirNum]; c != nil {
		ch.clean = *c
	}
	ms, err := openMsgStore(d, name, ch.base, l, &s.opts, s.fds, true, ch.clean.tail)
	if err != nil {
		return err
	}
	ss, err := openSubStore(filepath.Join(d, "subs.log"), l.MaxSubs, &s.opts, ms, ch.clean.subs)
	if err != nil {
		ms.abandon()
		return err
	}
	ms.subs = ss
	ch.msgs, ch.subs = ms, ss
	ch.ch.Msgs, ch.ch.Subs = ms, ss
	return nil
}

func (s *Store) replay(rec []byte) {
	d := &dec{b: rec}
	switch d.byte1() {
	case metaTail:
		t := &tailAt{}
		dn := d.uv()
		t.first, t.size, t.last = d.uv(), d.uv(), d.uv()
		if !d.bad {
			s.closeRecord(dn).tail = t
		}
	case metaSubsLog:
		dn, size := d.uv(), d.uv()
		if !d.bad {
			s.closeRecord(dn).subs = int64(size)
		}
	case metaInfo:
		info := stores.ServerInfo{ClusterID: d.str(), Discovery: d.str(), Publish: d.str(), Subscribe: d.str(),
			Unsubscribe: d.str(), Close: d.str(), SubClose: d.str(), NodeID: d.str()}
		if !d.bad {
			s.info = &info
		}
	case metaClient:
		c := stores.ClientInfo{ID: d.str(), HbInbox: d.str(), ConnID: d.bytes(), Protocol: int32(d.iv()),
			PingInterval: int32(d.iv()), PingMaxOut: int32(d.iv())}
		c.User = d.optStr()
		if !d.bad {
			c = stores.CloneClient(c)
			s.clients[c.ID] = c
		}
	case metaClientDel:
		delete(s.clients, d.str())
	case metaChannel:
		name, id, dn, base := d.str(), d.uv(), d.uv(), d.uv()
		if !d.bad {
			s.channels[name] = &channel{ch: stores.Channel{Name: name, ID: id}, dirNum: dn, base: base}
			delete(s.closeAt, dn) // a T or L record follows the C record it speaks of
			delete(s.deadDirs, dn)
			delete(s.tombs, name)
			s.nextDir = max(s.nextDir, dn+1)
		}
	case metaChanDel:
		name, last := d.str(), d.uv()
		dn := d.optUv() // 0: a snapshot's tombstone, or written before the field existed
		if !d.bad && dn > 0 {
			if s.deadDirs == nil {
				s.deadDirs = map[uint64]bool{}
			}
			s.deadDirs[dn] = true
		}
		if !d.bad {
			delete(s.channels, name)
			if last > 0 {
				s.tombs[name] = last
			}
		}
	}
}

func encInfo(b []byte, i *stores.ServerInfo) []byte {
	b = append(b, metaInfo)
	for _, v := range []string{i.ClusterID, i.Discovery, i.Publish, i.Subscribe, i.Unsubscribe, i.Close, i.SubClose, i.NodeID} {
		b = putStr(b, v)
	}
	return b
}

func encClient(b []byte, c *stores.ClientInfo) []byte {
	b = append(b, metaClient)
	b = putStr(b, c.ID)
	b = putStr(b, c.HbInbox)
	b = putStr(b, string(c.ConnID))
	b = putIv(b, int64(c.Protocol))
	b = putIv(b, int64(c.PingInterval))
	b = putIv(b, int64(c.PingMaxOut))
	return putStr(b, c.User) // last: records written before it existed end here
}

func encChannel(b []byte, name string, id, dn, base uint64) []byte {
	return putUv(putUv(putUv(putStr(append(b, metaChannel), name), id), dn), base)
}

func encTail(b []byte, dn uint64, t *tailAt) []byte {
	return putUv(putUv(putUv(putUv(append(b, metaTail), dn), t.first), t.size), t.last)
}

func encSubsLog(b []byte, dn uint64, size int64) []byte {
	return putUv(putUv(append(b, metaSubsLog), dn), uint64(size))
}

// encChanDel encodes a deletion; dn, the deleted channel's directory number, is written by
// DeleteChannel only (0: a snapshot's tombstone — directory numbers are reused after it).
func encChanDel(b []byte, name string, last, dn uint64) []byte {
	b = putUv(putStr(append(b, metaChanDel), name), last)
	if dn > 0 {
		b = putUv(b, dn)
	}
	return b
}

// appendSnapshot appends the framed records that recreate the current metadata
// (compaction). Caller holds mu or has exclusive access.
func (s *Store) appendSnapshot(b []byte) []byte {
	var st int
	if s.info != nil {
		b, st = beginFrame(b)
		b = endFrame(encInfo(b, s.info), st)
	}
	for _, id := range slices.Sorted(keys(s.clients)) {
		c := s.clients[id]
		b, st = beginFrame(b)
		b = endFrame(encClient(b, &c), st)
	}
	for _, name := range slices.Sorted(keys(s.tombs)) {
		b, st = beginFrame(b)
		b = endFrame(encChanDel(b, name, s.tombs[name], 0), st)
	}
	for _, d := range s.dropping {
		b, st = beginFrame(b)
		b = endFrame(encChanDel(b, d.name, d.last, d.dn), st)
	}
	for _, m := range []map[string]*channel{s.channels, s.damaged} {
		for _, name := range slices.Sorted(keys(m)) {
			ch := m[name]
			b, st = beginFrame(b)
			b = endFrame(encChannel(b, name, ch.ch.ID, ch.dirNum, ch.base), st)
			if ch.err != nil && ch.clean.tail != nil {
				// Keeps a tail found cut below what a clean Close synced damaged at every
				// open, until Repair (which drops T records).
				b, st = beginFrame(b)
				b = endFrame(encTail(b, ch.dirNum, ch.clean.tail), st)
			}
			if ch.err != nil && ch.clean.subs > 0 {
				// The same for a subs.log found cut below what a clean Close synced.
				b, st = beginFrame(b)
				b = endFrame(encSubsLog(b, ch.dirNum, ch.clean.subs), st)
			}
		}
	}
	return b
}

func keys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Damaged returns one error (a *DamageError) per channel that was not opened because its
// data is damaged somewhere other than a repairable tail, sorted by channel name. Those
// channels are absent from Recover; their files are kept untouched for Verify/Repair.
func (s *Store) Damaged() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []error
	for _, name := range slices.Sorted(keys(s.damaged)) {
		out = append(out, s.damaged[name].err)
	}
	return out
}

// Name implements stores.Store.
func (s *Store) Name() string { return "FILE" }

// Init implements stores.Store: durable when it returns.
func (s *Store) Init(info stores.ServerInfo) error {
	s.meta.syncMu.Lock()
	defer s.meta.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	s.meta.add(encInfo(s.buf[:0], &info))
	if err := s.meta.syncLocked(); err != nil {
		return err
	}
	s.info = &info
	return nil
}

// Recover implements stores.Store.
func (s *Store) Recover() (*stores.RecoveredState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, stores.ErrClosed
	}
	if s.info == nil {
		return nil, nil
	}
	chans := make([]*stores.Channel, 0, len(s.channels))
	for _, ch := range s.channels {
		chans = append(chans, &ch.ch)
	}
	rs, err := stores.NewRecoveredState(*s.info, s.clients, chans, s.tombs)
	if rs != nil {
		rs.Clean = s.clean
	}
	return rs, err
}

// AddClient implements stores.Store (durable after Sync).
func (s *Store) AddClient(c stores.ClientInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	c = stores.CloneClient(c)
	s.clients[c.ID] = c
	s.buf = encClient(s.buf[:0], &c)
	s.meta.add(s.buf)
	return nil
}

// DeleteClient implements stores.Store (durable after Sync).
func (s *Store) DeleteClient(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	if _, ok := s.clients[id]; !ok {
		return stores.ErrNotFound
	}
	delete(s.clients, id)
	s.buf = putStr(append(s.buf[:0], metaClientDel), id)
	s.meta.add(s.buf)
	return nil
}

// SetLimits implements stores.Store.
func (s *Store) SetLimits(l *stores.LimitsSet) error {
	if err := l.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	s.limits = l.Clone()
	for name, ch := range s.channels {
		cl := s.limits.For(name)
		ch.msgs.SetLimits(cl)
		ch.subs.setMaxSubs(cl.MaxSubs)
	}
	return nil
}

// Flush implements stores.SplitSyncer for the client records of meta.log: they go to the
// OS (or, after a failure or when meta.log is due for compaction, the whole metadata goes
// into a new file that the next SyncFlushed makes meta.log).
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	return s.meta.flush()
}

// SyncFlushed implements stores.SplitSyncer: it fsyncs what was flushed to meta.log (and
// renames a rewrite over it) without holding mu.
func (s *Store) SyncFlushed() error { return s.meta.syncFlushed(s.usable) }

func (s *Store) usable() error {
	if s.closed {
		return stores.ErrClosed
	}
	return nil
}

// Sync implements stores.Store: it makes client changes durable (Flush, then SyncFlushed).
func (s *Store) Sync() error {
	if err := s.Flush(); err != nil {
		return err
	}
	return s.SyncFlushed()
}

// Close implements stores.Store. The channels are closed (synced) without holding mu.
func (s *Store) Close() error {
	s.meta.syncMu.Lock()
	defer s.meta.syncMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.stopAutoSync()
	chans := make([]*channel, 0, len(s.channels))
	for _, ch := range s.channels {
		chans = append(chans, ch)
	}
	s.mu.Unlock()
	var errs []error
	for _, ch := range chans {
		errs = append(errs, ch.msgs.Close(), ch.subs.Close())
	}
	s.mu.Lock()
	if errors.Join(errs...) == nil {
		// Everything is synced: what each tail's and subs.log's fsync covered (so that the
		// next open finds one cut below it damaged, not torn), then the mark that makes the next open
		// report Clean — one batch, so both or neither.
		for _, ch := range chans {
			if t := ch.msgs.closedTailAt(); t.size > 0 {
				s.meta.add(encTail(s.buf[:0], ch.dirNum, &t))
			}
			if n := ch.subs.closedSize(); n > 0 {
				s.meta.add(encSubsLog(s.buf[:0], ch.dirNum, n))
			}
		}
		s.meta.add([]byte{metaClean})
	}
	errs = append(errs, s.meta.close(true))
	if errors.Join(errs...) == nil && !s.opts.NoSync && s.meta.proof > 0 {
		// meta.log's own proof: what its fsync covered, in meta.end (cleanclose.go).
		errs = append(errs, writeMetaEnd(s.dir, cleanProof{size: s.meta.proof, nonce: s.meta.nonce}, &s.opts))
	}
	s.mu.Unlock()
	s.opts.wb.stop()
	if s.opts.pending != nil { // a clean stop leaves everything on disk
		errs = append(errs, s.autoSyncPass())
	}
	s.mu.Lock()
	s.unlock() // last: everything above is written
	s.mu.Unlock()
	return errors.Join(errs...)
}

// unlock releases the directory's lock; caller holds mu.
func (s *Store) unlock() {
	if s.lock != nil {
		_ = s.lock.Close()
		s.lock = nil
	}
}

// stopAutoSync stops the AutoSync goroutine and waits for it. Caller holds mu (the
// goroutine never takes it).
func (s *Store) stopAutoSync() {
	if s.stopSync != nil {
		s.stopSync()
		s.stopSync = nil
	}
}

// abandon releases every file without writing (simulated kill -9, failed open).
func (s *Store) abandon() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.stopAutoSync()
	for _, ch := range s.channels {
		if ch.msgs != nil {
			ch.msgs.abandon()
		}
		if ch.subs != nil {
			ch.subs.abandon()
		}
	}
	s.meta.close(false)
	s.opts.wb.stop()
	s.unlock()
}
