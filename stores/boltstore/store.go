package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/starling-io/starling/stores"
)

// Compile-time proof that the bolt store implements the contract.
var (
	_ stores.Store    = (*Store)(nil)
	_ stores.MsgStore = (*msgStore)(nil)
	_ stores.SubStore = (*subStore)(nil)
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
}

// Hooks are test hooks; nil fields are ignored.
type Hooks struct {
	// AfterAutoSync is called after each AutoSync fdatasync with its error.
	AfterAutoSync func(err error)
}

// Store is the bolt store: one bbolt file.
type Store struct {
	// mu guards the fields below. Lock order: Store.mu, then a channel's msgStore.mu or
	// subStore.mu (leaf locks, never held while taking Store.mu).
	mu sync.Mutex

	db       *bolt.DB
	limits   *stores.LimitsSet
	info     *stores.ServerInfo // nil until Init
	clients  map[string]stores.ClientInfo
	dirty    map[string]bool // clients to write (true) or delete (false) at Sync
	channels map[string]*channel
	tombs    map[string]uint64 // last sequence of deleted channels
	clean    bool              // the previous run ended with Close (RecoveredState.Clean)
	closed   bool

	hooks    Hooks
	stopSync func() // stops the AutoSync goroutine (nil without, or once stopped)
	autoSync bool   // AutoSync is on: Close syncs the file
}

type channel struct {
	ch   stores.Channel
	msgs *msgStore
	subs *subStore
}

// Open opens (creating if needed) the bolt store at path and recovers what it holds. A
// corrupt file is an error wrapping ErrCorrupt, never a crash: checkFile validates the
// page structure before bbolt maps the file (bbolt trusts its pages and can fault or
// panic on its own goroutine otherwise). As a second line, a panic or memory fault on
// this goroutine while bbolt opens and we read is also turned into ErrCorrupt.
func Open(path string, opts Options) (st *Store, err error) {
	if err := checkFile(path); err != nil {
		return nil, err
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
		// (BenchmarkOpen 254 -> 170 ms); checkFile validates it before bbolt reads it.
		FreelistType: bolt.FreelistMapType,
	})
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
	}
	if err := s.load(); err != nil {
		db.Close()
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
func (s *Store) load() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, n := range []string{bktMeta, bktClients, bktChans, bktTombs} {
			if _, err := tx.CreateBucketIfNotExists([]byte(n)); err != nil {
				return err
			}
		}
		meta := tx.Bucket([]byte(bktMeta))
		s.clean = meta.Get([]byte(keyClean)) != nil
		return meta.Delete([]byte(keyClean))
	})
	if err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte(bktMeta)).Get([]byte(keyInfo)); v != nil {
			info, err := decodeInfo(v)
			if err != nil {
				return err
			}
			s.info = &info
		}
		err := tx.Bucket([]byte(bktClients)).ForEach(func(_, v []byte) error {
			c, err := decodeClient(v)
			if err == nil {
				s.clients[c.ID] = c
			}
			return err
		})
		if err != nil {
			return err
		}
		err = tx.Bucket([]byte(bktTombs)).ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				s.tombs[string(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket([]byte(bktChans)).ForEach(func(k, v []byte) error {
			if len(v) != 16 {
				return fmt.Errorf("channel %q: metadata of %d bytes is corrupt", k, len(v))
			}
			name := string(k)
			ch := s.newChannel(name, binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]))
			if err := ch.msgs.load(tx); err != nil {
				return fmt.Errorf("channel %q: %w", name, err)
			}
			if err := ch.subs.load(tx); err != nil {
				return fmt.Errorf("channel %q: %w", name, err)
			}
			s.channels[name] = ch
			return nil
		})
	})
}

func (s *Store) newChannel(name string, id, last uint64) *channel {
	l := s.limits.For(name)
	ch := &channel{
		msgs: newMsgStore(s.db, name, id, l, last),
		subs: newSubStore(s.db, name, l.MaxSubs),
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
	rs, err := stores.NewRecoveredState(*s.info, s.clients, chans)
	if rs != nil {
		rs.Clean = s.clean
	}
	return rs, err
}

// CreateChannel implements stores.Store: durable when it returns.
func (s *Store) CreateChannel(name string, id uint64) (*stores.Channel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, stores.ErrClosed
	}
	if _, ok := s.channels[name]; ok {
		return nil, stores.ErrExists
	}
	if n := s.limits.Global.MaxChannels; n > 0 && len(s.channels) >= n {
		return nil, stores.ErrTooManyChannels
	}
	last := s.tombs[name]
	err := s.db.Update(func(tx *bolt.Tx) error {
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
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: create channel %q: %w", name, err)
	}
	ch := s.newChannel(name, id, last)
	delete(s.tombs, name)
	s.channels[name] = ch
	return &ch.ch, nil
}

// DeleteChannel implements stores.Store: durable when it returns.
func (s *Store) DeleteChannel(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	ch, ok := s.channels[name]
	if !ok {
		return stores.ErrNotFound
	}
	delete(s.channels, name)
	last := ch.msgs.markDeleted()
	ch.subs.markDeleted()
	err := s.db.Update(func(tx *bolt.Tx) error {
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
	})
	if err != nil {
		return fmt.Errorf("boltstore: delete channel %q: %w", name, err)
	}
	if last > 0 {
		s.tombs[name] = last
	}
	return nil
}

// AddClient implements stores.Store: durable at the next Sync.
func (s *Store) AddClient(c stores.ClientInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	s.clients[c.ID] = stores.CloneClient(c)
	s.dirty[c.ID] = true
	return nil
}

// DeleteClient implements stores.Store: durable at the next Sync.
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

// Sync implements stores.Store: it writes the client changes in one transaction.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	return s.flushClients(false)
}

// flushClients commits the client changes, with the clean mark if clean (Close's last
// transaction). Caller holds mu.
func (s *Store) flushClients(clean bool) error {
	if len(s.dirty) == 0 && !clean {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if clean {
			if err := tx.Bucket([]byte(bktMeta)).Put([]byte(keyClean), []byte{1}); err != nil {
				return err
			}
		}
		b := tx.Bucket([]byte(bktClients))
		for id, put := range s.dirty {
			if !put {
				if err := b.Delete([]byte(id)); err != nil {
					return err
				}
				continue
			}
			c := s.clients[id]
			v, err := encodeClient(&c)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	clear(s.dirty)
	return nil
}

// Close implements stores.Store: it syncs every channel and the clients, then closes
// the file. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.stopAutoSync()
	var errs []error
	for _, ch := range s.channels {
		errs = append(errs, ch.msgs.Close(), ch.subs.Close())
	}
	errs = append(errs, s.flushClients(errors.Join(errs...) == nil))
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
	for _, ch := range s.channels {
		ch.msgs.abandon()
		ch.subs.abandon()
	}
	s.db.Close()
	s.channels, s.clients, s.tombs, s.info = nil, nil, nil, nil
}
