package memstore

import (
	"fmt"
	"sync"

	"github.com/starling-io/starling/stores"
)

// Compile-time proof that the memory store implements the contract.
var (
	_ stores.Store           = (*Store)(nil)
	_ stores.ChannelsCreator = (*Store)(nil)
	_ stores.ChannelsDeleter = (*Store)(nil)
	_ stores.MsgStore        = (*msgStore)(nil)
	_ stores.SubStore        = (*subStore)(nil)
)

// Default chunk geometry (see Options).
const (
	DefaultChunkMsgs = 1024
	// DefaultChunkBytes makes a full chunk's block, with its entries, exactly 1 MiB: half
	// of a huge page (mem_linux.go).
	DefaultChunkBytes = 1<<20 - DefaultChunkMsgs*entrySize
)

// Options configure a memory store. The zero value is usable.
type Options struct {
	// Limits are the initial limits (copied); nil means {Global: stores.DefaultLimits()}.
	Limits *stores.LimitsSet
	// ChunkMsgs is the number of messages per chunk (0 = DefaultChunkMsgs).
	ChunkMsgs int
	// ChunkBytes is the arena size at which a chunk is closed (0 = DefaultChunkBytes,
	// at most 1 GiB). A single larger message gets a chunk of its own.
	ChunkBytes int
}

// Store is the memory store: everything in RAM, nothing survives the process.
type Store struct {
	// mu guards the fields below. Lock order: Store.mu, then a channel's msgStore.mu or
	// subStore.mu (leaf locks, never held while taking Store.mu).
	mu sync.Mutex

	opts     Options
	limits   *stores.LimitsSet
	info     *stores.ServerInfo // nil until Init
	clients  map[string]stores.ClientInfo
	channels map[string]*channel
	tombs    map[string]uint64 // last sequence of deleted channels
	closed   bool
}

type channel struct {
	ch   stores.Channel
	msgs *msgStore
	subs *subStore
}

// New returns an empty memory store.
func New(opts Options) (*Store, error) {
	if opts.ChunkMsgs < 0 || opts.ChunkBytes < 0 || opts.ChunkBytes > 1<<30 {
		return nil, fmt.Errorf("memstore: invalid chunk geometry (%d msgs, %d bytes)", opts.ChunkMsgs, opts.ChunkBytes)
	}
	if opts.ChunkMsgs == 0 {
		opts.ChunkMsgs = DefaultChunkMsgs
	}
	if opts.ChunkBytes == 0 {
		opts.ChunkBytes = DefaultChunkBytes
	}
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	if opts.Limits != nil {
		if err := opts.Limits.Validate(); err != nil {
			return nil, err
		}
		limits = opts.Limits.Clone()
	}
	opts.Limits = nil
	return &Store{
		opts:     opts,
		limits:   limits,
		clients:  make(map[string]stores.ClientInfo),
		channels: make(map[string]*channel),
		tombs:    make(map[string]uint64),
	}, nil
}

// Name implements stores.Store.
func (s *Store) Name() string { return "MEMORY" }

// Init implements stores.Store.
func (s *Store) Init(info stores.ServerInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
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
	return stores.NewRecoveredState(*s.info, s.clients, chans, s.tombs)
}

// CreateChannel implements stores.Store.
func (s *Store) CreateChannel(name string, id uint64) (*stores.Channel, error) {
	return s.CreateChannelAfter(name, id, 0)
}

// CreateChannelAfter implements stores.Store.
func (s *Store) CreateChannelAfter(name string, id, after uint64) (*stores.Channel, error) {
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
	l := s.limits.For(name)
	ch := &channel{
		msgs: newMsgStore(name, l, max(s.tombs[name], after), s.opts.ChunkMsgs, s.opts.ChunkBytes),
		subs: newSubStore(l.MaxSubs),
	}
	ch.ch = stores.Channel{Name: name, ID: id, Msgs: ch.msgs, Subs: ch.subs}
	delete(s.tombs, name)
	s.channels[name] = ch
	return &ch.ch, nil
}

// CreateChannels implements stores.ChannelsCreator: nothing to make durable, so one
// CreateChannelAfter after another.
func (s *Store) CreateChannels(cs []stores.NewChannel) ([]*stores.Channel, []error) {
	out, errs := make([]*stores.Channel, len(cs)), make([]error, len(cs))
	for i, c := range cs {
		out[i], errs[i] = s.CreateChannelAfter(c.Name, c.ID, c.After)
	}
	return out, errs
}

// DeleteChannels implements stores.ChannelsDeleter: one DeleteChannel after another.
func (s *Store) DeleteChannels(names []string) []error {
	errs := make([]error, len(names))
	for i, n := range names {
		errs[i] = s.DeleteChannel(n)
	}
	return errs
}

// DeleteChannel implements stores.Store.
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
	if last := ch.msgs.markDeleted(); last > 0 {
		s.tombs[name] = last
	}
	ch.subs.markDeleted()
	return nil
}

// AddClient implements stores.Store.
func (s *Store) AddClient(c stores.ClientInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	s.clients[c.ID] = stores.CloneClient(c)
	return nil
}

// DeleteClient implements stores.Store.
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

// Sync implements stores.Store: memory only, nothing to make durable.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return stores.ErrClosed
	}
	return nil
}

// Close implements stores.Store: it closes every channel and drops everything.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for _, ch := range s.channels {
		ch.msgs.Close()
		ch.subs.Close()
	}
	s.channels, s.clients, s.tombs, s.info = nil, nil, nil, nil
	return nil
}
