package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/starling-io/starling/boltcheck"
	"github.com/starling-io/starling/proto/storepb"
	"github.com/starling-io/starling/stores"
)

// Compile-time proof that the bolt store implements the contract.
var (
	_ stores.Store           = (*Store)(nil)
	_ stores.ChannelsCreator = (*Store)(nil)
	_ stores.ChannelsDeleter = (*Store)(nil)
	_ stores.MsgStore        = (*msgStore)(nil)
	_ stores.SubStore        = (*subStore)(nil)
	_ stores.SplitSyncer     = (*Store)(nil)
	_ stores.CommitCoalescer = (*Store)(nil)
	_ stores.SplitSyncer     = (*msgStore)(nil)
	_ stores.SplitSyncer     = (*subStore)(nil)
)

// Options configure a bolt store. The zero value is usable.
type Options struct {
	// Limits are the initial limits (copied); nil means {Global: stores.DefaultLimits()}.
	Limits *stores.LimitsSet
	// NoSync skips fsync on commit (bolt's DB.NoSync): commits reach the OS and survive a
	// crash of the process, not of the machine. bbolt orders a commit's pages before its
	// meta page only by fsync, so power loss with NoSync can also leave the file
	// unreadable (Open then fails with ErrCorrupt). For tests, or users trading safety
	// for speed.
	NoSync bool
	// AutoSync, with NoSync, fdatasyncs the file at this interval (0: never) from one
	// goroutine, bounding the commits power loss can take to about AutoSync.
	AutoSync time.Duration
	// Hooks are test hooks.
	Hooks Hooks
	// LockTimeout bounds the wait for the file lock held by another process (0: 1 s).
	LockTimeout time.Duration
	// Logger receives what Open finds wrong but can open: an invalid meta page (nil:
	// discard).
	Logger *slog.Logger
}

// Hooks are test hooks; nil fields are ignored.
type Hooks struct {
	// AfterAutoSync is called after each AutoSync fdatasync with its error.
	AfterAutoSync func(err error)
	// FailCommit is called twice inside each group-commit transaction (every Sync,
	// SyncFlushed and Close that writes): before anything is written (written false), and
	// after everything is written, just before bbolt commits (written true). An error
	// fails that commit as a failed write or fsync would: the transaction rolls back and
	// the error is what the commit returns.
	FailCommit func(written bool) error
	// FailOpen is called inside the transaction with which Open creates the top-level
	// buckets and removes the clean mark, after its changes: an error fails it as a full
	// disk or an I/O error would.
	FailOpen func() error
}

// Store is the bolt store: one bbolt file.
type Store struct {
	// mu guards the fields below. Lock order: Store.mu, then committer.mu, then a channel's
	// msgStore.mu or subStore.mu, then committer.stageMu (see DESIGN.md).
	mu sync.Mutex

	db       *bolt.DB
	c        *committer
	limits   *stores.LimitsSet
	info     *stores.ServerInfo // nil until Init
	clients  map[string]stores.ClientInfo
	dirty    map[string]bool    // clients to write (true) or delete (false) at the next Flush
	cpb      storepb.ClientInfo // scratch of Flush
	kbuf     []byte             // scratch of Flush
	ckey     []byte             // bucket clients
	channels map[string]*channel
	tombs    map[string]uint64 // last sequence of deleted channels
	clean    bool              // the previous run ended with Close (RecoveredState.Clean)
	closed   bool

	hooks    Hooks
	stopSync func() // stops the AutoSync goroutine (nil without, or once stopped)
	autoSync bool   // AutoSync is on: Close syncs the file

	cst stager // the client records' commit state; guarded by committer.stageMu
}

type channel struct {
	ch   stores.Channel
	msgs *msgStore
	subs *subStore
}

// Open opens (creating if needed) the bolt store at path and recovers what it holds. A
// corrupt file is an error wrapping ErrCorrupt, never a crash: boltcheck.File validates the
// page structure before bbolt maps the file (bbolt trusts its pages and can fault or
// panic on its own goroutine otherwise). As a second line, a panic or memory fault on
// this goroutine while bbolt opens and we read is also turned into ErrCorrupt.
func Open(path string, opts Options) (st *Store, err error) {
	warning, err := boltcheck.FileWarn(path)
	if err != nil {
		if errors.Is(err, boltcheck.ErrDamaged) {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, err
	}
	if warning != "" && opts.Logger != nil {
		// bbolt falls back to the previous commit without a word, and its next commit
		// (Open's own) overwrites the page: this line is all that is left to tell.
		opts.Logger.Warn("boltstore: a meta page of the database file is invalid: "+warning, "file", path)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	return openStore(path, opts)
}

func openStore(path string, opts Options) (*Store, error) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	if opts.Limits != nil {
		if err := opts.Limits.Validate(); err != nil {
			return nil, err
		}
		limits = opts.Limits.Clone()
	}
	if opts.AutoSync < 0 {
		return nil, fmt.Errorf("boltstore: invalid AutoSync %v", opts.AutoSync)
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		NoSync:  opts.NoSync,
		// The freelist is persisted (NoFreelistSync false): without it, bbolt rebuilds
		// the freelist on open by walking every page on a goroutine of its own, where
		// a garbled page crashes the process beyond any recover. Persisting it costs
		// no measurable commit time (BenchmarkStore/Append) and makes Open faster
		// (BenchmarkOpen 254 -> 170 ms); boltcheck.File validates it before bbolt reads it.
		FreelistType: bolt.FreelistMapType,
		FileOps:      fileOps,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("boltstore: open %s: the file is in use by another process (another server on this "+
			"directory?): %w waiting for its lock", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	s := &Store{
		db:       db,
		limits:   limits,
		clients:  make(map[string]stores.ClientInfo),
		dirty:    make(map[string]bool),
		channels: make(map[string]*channel),
		tombs:    make(map[string]uint64),
		hooks:    opts.Hooks,
		cst:      stager{what: "clients"},
		ckey:     []byte(bktClients),
	}
	s.c = newCommitter(db, &s.hooks)
	if err := s.load(); err != nil {
		db.Close()
		if errors.Is(err, ErrForeign) || errors.Is(err, errOpenWrite) {
			return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
		}
		if !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("boltstore: recover %s: %w", path, err)
	}
	if opts.NoSync && opts.AutoSync > 0 {
		s.autoSync = true
		// db.Sync is a plain fdatasync: it runs beside commits without a lock.
		s.stopSync = stores.Periodic(opts.AutoSync, func() {
			err := s.db.Sync()
			if h := s.hooks.AfterAutoSync; h != nil {
				h(err)
			}
		})
	}
	return s, nil
}

// stopAutoSync stops the AutoSync goroutine and waits for it. Caller holds mu.
func (s *Store) stopAutoSync() {
	if s.stopSync != nil {
		s.stopSync()
		s.stopSync = nil
	}
}

// load creates the top-level buckets and reads everything. The transaction that creates
// the buckets also takes the clean mark away, so a crash from now on reads as not clean.
// A file checkBuckets refuses is not changed.
func (s *Store) load() error {
	if err := s.db.View(checkBuckets); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, n := range []string{bktMeta, bktClients, bktChans, bktTombs} {
			if _, err := tx.CreateBucketIfNotExists([]byte(n)); err != nil {
				return err
			}
		}
		meta := tx.Bucket([]byte(bktMeta))
		s.clean = meta.Get([]byte(keyClean)) != nil
		if err := meta.Delete([]byte(keyClean)); err != nil {
			return err
		}
		if h := s.hooks.FailOpen; h != nil {
			return h()
		}
		return nil
	})
	var errno syscall.Errno
	switch {
	case err == nil:
	case errors.As(err, &errno):
		// A failed write (a full disk, an I/O error), not damage: reported as
		// ErrCorrupt, it sent operators to their backups for a disk that only needed space.
		return fmt.Errorf("%w: %w", errOpenWrite, err)
	default:
		return err // what bbolt found wrong inside the file (a key that is a bucket): damage
	}
	return s.db.View(s.read)
}

// read reads the store's state from tx: the server info, the clients, the tombs and every
// channel. The top-level buckets exist (checkBuckets and load).
func (s *Store) read(tx *bolt.Tx) error {
	if v := tx.Bucket([]byte(bktMeta)).Get([]byte(keyInfo)); v != nil {
		info, err := decodeInfo(v)
		if err != nil {
			return err
		}
		s.info = &info
	}
	err := tx.Bucket([]byte(bktClients)).ForEach(func(k, v []byte) error {
		c, err := decodeClient(v)
		switch {
		case err != nil:
			return fmt.Errorf("client record %q: %w", k, err)
		case c.ID != string(k):
			// Written under its ID: under another key, DeleteClient would miss it.
			return fmt.Errorf("%w: client record under key %q names client %q", ErrCorrupt, k, c.ID)
		}
		s.clients[c.ID] = c
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Bucket([]byte(bktTombs)).ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: tomb of channel %q: %d bytes", ErrCorrupt, k, len(v))
		}
		s.tombs[string(k)] = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		return err
	}
	return tx.Bucket([]byte(bktChans)).ForEach(func(k, v []byte) error {
		id, last, dead, err := chanMeta(v)
		if err != nil {
			return fmt.Errorf("channel %q: %w", k, err)
		}
		name := string(k)
		if tomb, ok := s.tombs[name]; ok {
			// CreateChannel removes the tomb with the transaction that writes the record,
			// DeleteChannel the other way round: both means one of them is damage.
			return fmt.Errorf("%w: channel %q is both live (last %d) and deleted (a tomb of last %d)", ErrCorrupt, name, last, tomb)
		}
		ch := s.newChannel(name, id, last, dead)
		if err := ch.msgs.load(tx); err != nil {
			return fmt.Errorf("channel %q: %w", name, err)
		}
		if err := ch.subs.load(tx); err != nil {
			return fmt.Errorf("channel %q: %w", name, err)
		}
		s.channels[name] = ch
		return nil
	})
}

// checkBuckets refuses a store file missing one of its four top-level buckets but not
// all (ErrCorrupt), and a bbolt file holding a top-level bucket this store never creates
// and none of its own (ErrForeign): Open would create the store's buckets in another
// program's file, and the server would initialise and serve an empty store there. Beside
// the store's own buckets, such a bucket is damage (a garbled name: ErrCorrupt). And it
// refuses a channel bucket holding data that no channel record names. The store creates
// and deletes a channel's record and buckets in one transaction, so such a bucket means
// the record was lost: served without it, the channel would be gone; created again under
// the name, the channel would adopt the old subscriptions and trip over (or, rolled back,
// serve) the old messages. Nothing is deleted on that inference. An empty bucket holds
// nothing acknowledged: CreateChannel takes it over.
func checkBuckets(tx *bolt.Tx) error {
	chans := tx.Bucket([]byte(bktChans))
	top := [...]string{bktMeta, bktClients, bktChans, bktTombs}
	var own, missing int
	for _, n := range top {
		if tx.Bucket([]byte(n)) != nil {
			own++
		} else {
			missing++
		}
	}
	if own > 0 && missing > 0 {
		// Open creates the four in one transaction and nothing deletes them: created
		// again empty, a lost one would drop tombs (sequences reused), the server's
		// identity or the clients without a word.
		for _, n := range top {
			if tx.Bucket([]byte(n)) == nil {
				return fmt.Errorf("%w: bucket %q is missing (the file is left as it is)", ErrCorrupt, n)
			}
		}
	}
	return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		n := string(name)
		for _, p := range [...]string{preMsgs, preSubs, prePending} {
			ch, ok := strings.CutPrefix(n, p)
			if !ok {
				continue
			}
			if chans != nil && chans.Get([]byte(ch)) != nil {
				return nil
			}
			if k, _ := b.Cursor().First(); k == nil {
				return nil
			}
			return fmt.Errorf("%w: bucket %q holds data of channel %q, which no channel record names "+
				"(the record is lost; the file is left as it is)", ErrCorrupt, n, ch)
		}
		switch {
		case n == bktMeta || n == bktClients || n == bktChans || n == bktTombs:
			return nil
		case own > 0:
			return fmt.Errorf("%w: bucket %q, which this store never creates, beside its own (a damaged name?)", ErrCorrupt, n)
		}
		return fmt.Errorf("%w: it holds bucket %q, which this store never creates (another program's bbolt "+
			"file, or a raft log?); the file is left as it is", ErrForeign, n)
	})
}

func (s *Store) newChannel(name string, id, last, dead uint64) *channel {
	l := s.limits.For(name)
	ch := &channel{
		msgs: newMsgStore(s.c, name, id, l, last, dead),
		subs: newSubStore(s.c, name, l.MaxSubs),
	}
	ch.ch = stores.Channel{Name: name, ID: id, Msgs: ch.msgs, Subs: ch.subs}
	return ch
}

// Name implements stores.Store.
func (s *Store) Name() string { return "BOLT" }

// Init implements stores.Store: durable when it returns.
func (s *Store) Init(info stores.ServerInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	v, err := encodeInfo(&info)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bktMeta)).Put([]byte(keyInfo), v)
	})
	if err != nil {
		return err
	}
	s.info = &info
	return nil
}

// Recover implements stores.Store: nil until Init, then the current state.
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

// CreateChannel implements stores.Store: durable when it returns.
func (s *Store) CreateChannel(name string, id uint64) (*stores.Channel, error) {
	return s.CreateChannelAfter(name, id, 0)
}

// CreateChannelAfter implements stores.Store: durable when it returns.
func (s *Store) CreateChannelAfter(name string, id, after uint64) (*stores.Channel, error) {
	out, errs := s.CreateChannels([]stores.NewChannel{{Name: name, ID: id, After: after}})
	return out[0], errs[0]
}

// CreateChannels implements stores.ChannelsCreator: one transaction for them all. If it
// fails with more than one channel in it, each is tried in a transaction of its own, so
// that a failure refuses only the channels it concerns. Durable when it returns.
func (s *Store) CreateChannels(cs []stores.NewChannel) ([]*stores.Channel, []error) {
	out, errs := make([]*stores.Channel, len(cs)), make([]error, len(cs))
	s.mu.Lock()
	defer s.mu.Unlock()
	var todo []int // the indexes of cs that may be created
	for i, c := range cs {
		errs[i] = s.mayCreate(c.Name, cs, todo)
		if errs[i] == nil {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return out, errs
	}
	lasts := make([]uint64, len(cs))
	for _, i := range todo {
		lasts[i] = max(s.tombs[cs[i].Name], cs[i].After)
	}
	s.updateEach(todo, func(tx *bolt.Tx, i int) error { return putChannel(tx, cs[i].Name, cs[i].ID, lasts[i]) },
		func(i int, err error) {
			if err != nil {
				errs[i] = fmt.Errorf("boltstore: create channel %q: %w", cs[i].Name, err)
				return
			}
			s.addChannel(cs[i], lasts[i], out, i)
		})
	return out, errs
}

// updateEach writes put(tx, i) for every i of todo in one transaction — or, if that fails
// with more than one of them, each in a transaction of its own, so that a failure concerns
// only its own — and calls done with each one's outcome. Caller holds mu.
func (s *Store) updateEach(todo []int, put func(tx *bolt.Tx, i int) error, done func(i int, err error)) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, i := range todo {
			if err := put(tx, i); err != nil {
				return err
			}
		}
		return nil
	})
	for _, i := range todo {
		if err != nil && len(todo) > 1 {
			done(i, s.db.Update(func(tx *bolt.Tx) error { return put(tx, i) }))
			continue
		}
		done(i, err)
	}
}

// mayCreate returns why name cannot be created next, after the channels of cs at the indexes
// todo. Caller holds mu.
func (s *Store) mayCreate(name string, cs []stores.NewChannel, todo []int) error {
	if s.closed {
		return stores.ErrClosed
	}
	if _, ok := s.channels[name]; ok {
		return stores.ErrExists
	}
	for _, j := range todo {
		if cs[j].Name == name {
			return stores.ErrExists
		}
	}
	if n := s.limits.Global.MaxChannels; n > 0 && len(s.channels)+len(todo) >= n {
		return stores.ErrTooManyChannels
	}
	return nil
}

// putChannel writes a new channel's buckets and record.
func putChannel(tx *bolt.Tx, name string, id, last uint64) error {
	for _, p := range []string{preMsgs, preSubs, prePending} {
		if _, err := tx.CreateBucketIfNotExists([]byte(p + name)); err != nil {
			return err
		}
	}
	meta := binary.BigEndian.AppendUint64(u64(id), last)
	if err := tx.Bucket([]byte(bktChans)).Put([]byte(name), meta); err != nil {
		return err
	}
	return tx.Bucket([]byte(bktTombs)).Delete([]byte(name))
}

// addChannel adds c, written, to the channels as out[i]. Caller holds mu.
func (s *Store) addChannel(c stores.NewChannel, last uint64, out []*stores.Channel, i int) {
	ch := s.newChannel(c.Name, c.ID, last, 0)
	delete(s.tombs, c.Name)
	s.channels[c.Name] = ch
	out[i] = &ch.ch
}

// DeleteChannel implements stores.Store: durable when it returns.
func (s *Store) DeleteChannel(name string) error { return s.DeleteChannels([]string{name})[0] }

// DeleteChannels implements stores.ChannelsDeleter: one transaction for them all. If it fails
// with more than one channel in it, each is tried in a transaction of its own, so that a
// failure fails only the deletions it concerns. Durable when it returns.
func (s *Store) DeleteChannels(names []string) []error {
	errs := make([]error, len(names))
	s.mu.Lock()
	defer s.mu.Unlock()
	var todo []int // the indexes of names to delete
	for i, name := range names {
		switch _, ok := s.channels[name]; {
		case s.closed:
			errs[i] = stores.ErrClosed
		case !ok || slices.ContainsFunc(todo, func(j int) bool { return names[j] == name }):
			errs[i] = stores.ErrNotFound
		default:
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return errs
	}
	// No commit may hold the channels' snapshots or batches while they go (nor write them
	// into a channel re-created under the name).
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	// The file first: if it fails, the channels stay as the file has them. (A message
	// appended meanwhile is deleted with its channel, never synced.)
	lasts := make([]uint64, len(names))
	for _, i := range todo {
		lasts[i] = s.channels[names[i]].msgs.State().Last
	}
	s.updateEach(todo, func(tx *bolt.Tx, i int) error { return dropChannel(tx, names[i], lasts[i]) },
		func(i int, err error) {
			if err != nil {
				errs[i] = fmt.Errorf("boltstore: delete channel %q: %w", names[i], err)
				return
			}
			ch := s.channels[names[i]]
			delete(s.channels, names[i])
			last := max(lasts[i], ch.msgs.markDeleted())
			ch.subs.markDeleted()
			s.c.forget(ch.msgs, &ch.subs.st)
			if last > 0 {
				s.tombs[names[i]] = last
			}
		})
	return errs
}

// dropChannel removes a channel's buckets and record, leaving a tombstone at last (if any).
func dropChannel(tx *bolt.Tx, name string, last uint64) error {
	for _, p := range []string{preMsgs, preSubs, prePending} {
		if err := tx.DeleteBucket([]byte(p + name)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
	}
	if err := tx.Bucket([]byte(bktChans)).Delete([]byte(name)); err != nil {
		return err
	}
	if last == 0 {
		return nil
	}
	return tx.Bucket([]byte(bktTombs)).Put([]byte(name), u64(last))
}

// AddClient implements stores.Store: durable at the next Sync (or Flush and SyncFlushed).
func (s *Store) AddClient(c stores.ClientInfo) error {
	if err := checkClient(&c); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	s.clients[c.ID] = stores.CloneClient(c)
	s.dirty[c.ID] = true
	return nil
}

// DeleteClient implements stores.Store: durable at the next Sync (or Flush and SyncFlushed).
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
	s.dirty[id] = false
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

// Sync implements stores.Store: Flush, then SyncFlushed.
func (s *Store) Sync() error {
	if err := s.Flush(); err != nil {
		return err
	}
	return s.SyncFlushed()
}

// Flush implements stores.SplitSyncer for the client records: it encodes the client changes
// made so far into the store's next commit — or, after a failed commit lost some, every
// client.
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	return s.stageClients()
}

// stageClients stages the client changes. Caller holds mu.
func (s *Store) stageClients() error {
	s.c.stageMu.Lock()
	defer s.c.stageMu.Unlock()
	rewrite := s.cst.rewrite
	if len(s.dirty) == 0 && !rewrite {
		return nil
	}
	b := s.c.batchFor(&s.cst)
	if rewrite {
		b.op(wopReset, s.ckey, nil)
		for id := range s.clients {
			if err := s.putClient(b, id); err != nil {
				return err
			}
		}
		s.cst.rewrite = false
	} else {
		for id, present := range s.dirty {
			if present {
				if err := s.putClient(b, id); err != nil {
					return err
				}
				continue
			}
			s.kbuf = append(s.kbuf[:0], id...)
			b.op(wopDelete, s.ckey, s.kbuf)
		}
	}
	clear(s.dirty)
	return nil
}

// putClient stages client id's record. Caller holds mu and stageMu.
func (s *Store) putClient(b *batch, id string) error {
	c := s.clients[id]
	setClientPB(&s.cpb, &c)
	s.kbuf = append(s.kbuf[:0], id...)
	if err := b.putProto(s.ckey, s.kbuf, &s.cpb); err != nil {
		return fmt.Errorf("boltstore: client %q: %w", id, err)
	}
	return nil
}

// SyncFlushed implements stores.SplitSyncer for the client records: everything flushed
// before it is durable when it returns nil. The first SyncFlushed to run after a Flush
// commits everything the store has staged (see committer); later ones find their flush
// durable and return at once.
func (s *Store) SyncFlushed() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return stores.ErrClosed
	}
	target := s.c.stagedOf(&s.cst)
	return s.c.syncTo(func() (bool, error) { return s.c.covered(&s.cst, target) })
}

// Close implements stores.Store: one last commit writes every channel's messages and
// subscriptions, the clients and — if everything could be written — the clean mark; then
// the file is closed. A channel failed since its last Rollback makes Close fail and the
// next Recover not Clean. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.stopAutoSync()
	s.c.mu.Lock()
	var errs []error
	for _, ch := range s.channels {
		errs = append(errs, ch.msgs.flushForClose(), ch.subs.flushForClose())
	}
	errs = append(errs, s.stageClients())
	errs = append(errs, s.c.commit(errors.Join(errs...) == nil))
	s.c.closed = true
	s.c.mu.Unlock()
	for _, ch := range s.channels {
		ch.msgs.abandon() // committed above: only the memory goes
		ch.subs.markClosed()
	}
	if s.autoSync { // a clean stop leaves everything on disk
		errs = append(errs, s.db.Sync())
	}
	errs = append(errs, s.db.Close())
	s.channels, s.clients, s.tombs, s.info = nil, nil, nil, nil
	return errors.Join(errs...)
}

// crash abandons the store as kill -9 would: the file is closed and nothing buffered
// (unsynced appends, subscription changes, clients) is written.
func (s *Store) crash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.stopAutoSync()
	s.c.mu.Lock() // a running commit finishes: its fsync happened before the "crash"
	s.c.closed = true
	s.c.mu.Unlock()
	for _, ch := range s.channels {
		ch.msgs.abandon()
		ch.subs.abandon()
	}
	s.db.Close()
	s.channels, s.clients, s.tombs, s.info = nil, nil, nil, nil
}

// CoalesceCommits implements stores.CommitCoalescer: each commit costs two fdatasyncs, so
// the engine lets one cover as much of its publishers' window as it can.
func (s *Store) CoalesceCommits() bool { return true }
