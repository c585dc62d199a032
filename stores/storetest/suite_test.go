package storetest_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
	"github.com/starling-io/starling/stores/storetest"
)

// The suite's Durable and Crash paths are exercised here with a fake durable store: a
// memstore kept per dir across "reopens", behind wrappers that make the old handles fail
// with ErrClosed as a real store's would. (memstore's own test runs the non-durable
// suite.)

type disk struct {
	mu    sync.Mutex
	byDir map[string]*memstore.Store
	clean map[string]bool // the last store on dir was closed, not crashed
}

func (d *disk) open(tb testing.TB, dir string) stores.Store {
	d.mu.Lock()
	defer d.mu.Unlock()
	ms, ok := d.byDir[dir]
	if !ok {
		var err error
		if ms, err = memstore.New(memstore.Options{ChunkMsgs: 7, ChunkBytes: 500}); err != nil {
			tb.Fatal(err)
		}
		d.byDir[dir] = ms
	} else if err := ms.SetLimits(&stores.LimitsSet{Global: stores.DefaultLimits()}); err != nil {
		tb.Fatal(err) // a reopened store starts with default limits
	}
	r := &reopenable{Store: ms, chans: map[*stores.Channel]*stores.Channel{}, disk: d, dir: dir, wasClean: d.clean[dir]}
	d.clean[dir] = false
	return r
}

type reopenable struct {
	*memstore.Store
	disk     *disk
	dir      string
	wasClean bool
	closed   atomic.Bool
	mu       sync.Mutex
	chans    map[*stores.Channel]*stores.Channel
}

func (r *reopenable) wrap(c *stores.Channel) *stores.Channel {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.chans[c]
	if !ok {
		w = &stores.Channel{Name: c.Name, ID: c.ID, Msgs: msgs{c.Msgs, &r.closed}, Subs: subs{c.Subs, &r.closed}}
		r.chans[c] = w
	}
	return w
}

func (r *reopenable) Recover() (*stores.RecoveredState, error) {
	if r.closed.Load() {
		return nil, stores.ErrClosed
	}
	rs, err := r.Store.Recover()
	if rs != nil {
		rs.Clean = r.wasClean
		for _, rc := range rs.Channels {
			rc.Channel = r.wrap(rc.Channel)
		}
	}
	return rs, err
}

func (r *reopenable) CreateChannel(name string, id uint64) (*stores.Channel, error) {
	return r.CreateChannelAfter(name, id, 0)
}

func (r *reopenable) CreateChannelAfter(name string, id, after uint64) (*stores.Channel, error) {
	if r.closed.Load() {
		return nil, stores.ErrClosed
	}
	c, err := r.Store.CreateChannelAfter(name, id, after)
	if err != nil {
		return nil, err
	}
	return r.wrap(c), nil
}

// CreateChannels creates through CreateChannelAfter, which wraps (memstore's own is promoted).
func (r *reopenable) CreateChannels(cs []stores.NewChannel) ([]*stores.Channel, []error) {
	out, errs := make([]*stores.Channel, len(cs)), make([]error, len(cs))
	for i, c := range cs {
		out[i], errs[i] = r.CreateChannelAfter(c.Name, c.ID, c.After)
	}
	return out, errs
}

// DeleteChannels deletes through DeleteChannel, which guards (memstore's own is promoted).
func (r *reopenable) DeleteChannels(names []string) []error {
	errs := make([]error, len(names))
	for i, n := range names {
		errs[i] = r.DeleteChannel(n)
	}
	return errs
}

func (r *reopenable) guard(err error) error {
	if r.closed.Load() {
		return stores.ErrClosed
	}
	return err
}

func (r *reopenable) Init(i stores.ServerInfo) error { return r.guard(r.Store.Init(i)) }
func (r *reopenable) DeleteChannel(n string) error   { return r.guard(r.Store.DeleteChannel(n)) }
func (r *reopenable) AddClient(c stores.ClientInfo) error {
	return r.guard(r.Store.AddClient(c))
}
func (r *reopenable) DeleteClient(id string) error        { return r.guard(r.Store.DeleteClient(id)) }
func (r *reopenable) SetLimits(l *stores.LimitsSet) error { return r.guard(r.Store.SetLimits(l)) }
func (r *reopenable) Sync() error                         { return r.guard(nil) }
func (r *reopenable) Close() error {
	if !r.closed.Swap(true) {
		r.disk.mu.Lock()
		r.disk.clean[r.dir] = true
		r.disk.mu.Unlock()
	}
	return nil
}

type msgs struct {
	stores.MsgStore
	closed *atomic.Bool
}

func (m msgs) Append(b []stores.Msg) error {
	if m.closed.Load() {
		return stores.ErrClosed
	}
	return m.MsgStore.Append(b)
}

func (m msgs) Load(seq uint64, into *stores.Msg) error {
	if m.closed.Load() {
		return stores.ErrClosed
	}
	return m.MsgStore.Load(seq, into)
}

func (m msgs) Sync() error {
	if m.closed.Load() {
		return stores.ErrClosed
	}
	return m.MsgStore.Sync()
}

type subs struct {
	stores.SubStore
	closed *atomic.Bool
}

func (s subs) CreateSub(st *stores.SubState) error {
	if s.closed.Load() {
		return stores.ErrClosed
	}
	return s.SubStore.CreateSub(st)
}

func (s subs) Sync() error {
	if s.closed.Load() {
		return stores.ErrClosed
	}
	return s.SubStore.Sync()
}

func (s subs) Subs() ([]stores.RecoveredSub, error) {
	if s.closed.Load() {
		return nil, stores.ErrClosed
	}
	return s.SubStore.Subs()
}

func TestDurablePaths(t *testing.T) {
	d := &disk{byDir: map[string]*memstore.Store{}, clean: map[string]bool{}}
	storetest.Run(t, d.open, storetest.Caps{
		Durable: true,
		Crash:   func(s stores.Store) { s.(*reopenable).closed.Store(true) },
	})
}
