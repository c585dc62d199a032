package storetest

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/starling-io/starling/stores"
)

// The model test drives a store with random operations on two channels and checks every
// answer against a plain in-memory model (bbolt's simulation-test idea). Durable stores
// are also synced, closed and reopened at random points and must come back equal to the
// model.

type modelChan struct {
	name   string
	ch     *stores.Channel
	last   uint64
	msgs   []stores.Msg // stored messages, oldest first (copies)
	limits stores.Limits
	subs   map[uint64]*modelSub
}

type modelSub struct {
	state   stores.SubState
	pending map[uint64]bool
}

type model struct {
	t      *testing.T
	s      *suite
	r      *rand.Rand
	st     stores.Store
	dir    string
	now    int64
	chans  []*modelChan
	nextID uint64
}

const tick = int64(time.Millisecond)

func (s *suite) testModel(t *testing.T) {
	seeds, ops := 6, 3000
	if testing.Short() {
		seeds, ops = 2, 1000
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			st, dir := s.fresh(t)
			m := &model{t: t, s: s, r: rand.New(rand.NewPCG(seed, 0x5eed)), st: st, dir: dir, now: t0}
			for i, name := range []string{"foo", "bar.baz"} {
				mc := &modelChan{name: name, ch: create(t, st, name, uint64(i+1)), subs: map[uint64]*modelSub{}}
				m.chans = append(m.chans, mc)
			}
			m.setLimits() // all unlimited
			for i := range ops {
				m.step(i)
			}
			if s.caps.Durable {
				m.reopen()
			}
		})
	}
}

func (m *model) step(i int) {
	c := m.chans[m.r.IntN(len(m.chans))]
	m.now += int64(m.r.IntN(3)) * tick
	switch p := m.r.IntN(100); {
	case p < 35:
		m.appendBatch(c)
	case p < 55:
		m.load(c)
	case p < 63:
		m.seqAtTime(c)
	case p < 67:
		c.limits = stores.Limits{
			MaxMsgs:  []int{0, 0, 1, 3, 20}[m.r.IntN(5)],
			MaxBytes: []int64{0, 0, 100, 2000}[m.r.IntN(4)],
			MaxAge:   time.Duration([]int64{0, 0, 5, 50}[m.r.IntN(4)] * tick),
		}
		m.setLimits()
	case p < 75:
		m.expire(c)
	case p < 92:
		m.subOp(c)
	case p < 95:
		checkSubs(m.t, c.ch.Subs, c.wantSubs())
	case p < 97 && m.s.caps.Durable:
		m.reopen()
	default:
		if err := c.ch.Msgs.Sync(); err != nil {
			m.t.Fatalf("op %d: Sync: %v", i, err)
		}
	}
	for _, c := range m.chans {
		if got, want := c.ch.Msgs.State(), stateOf(c.name, c.last, c.msgs); got != want {
			m.t.Fatalf("op %d: %s State = %+v, model %+v", i, c.name, got, want)
		}
	}
}

func (m *model) setLimits() {
	ls := &stores.LimitsSet{Channels: map[string]stores.Limits{}}
	for _, c := range m.chans {
		l := c.limits
		// In a per-channel entry 0 inherits (here: the unlimited global) — same meaning.
		ls.Channels[c.name] = l
	}
	setLimits(m.t, m.st, ls)
}

func (m *model) appendBatch(c *modelChan) {
	n := m.r.IntN(6)
	if n == 0 {
		if err := c.ch.Msgs.Append(nil); err != nil {
			m.t.Fatalf("empty Append: %v", err)
		}
		return
	}
	first := c.last + 1
	if len(c.msgs) == 0 && m.r.IntN(8) == 0 {
		first += uint64(m.r.IntN(5)) // an empty channel may resume further on
	}
	batch := make([]stores.Msg, n)
	tm := m.now
	if len(c.msgs) > 0 {
		tm = max(tm, c.msgs[len(c.msgs)-1].Time)
	}
	for i := range batch {
		size := m.r.IntN(200)
		if m.r.IntN(50) == 0 {
			size = 3000 + m.r.IntN(3000)
		}
		batch[i] = stores.Msg{Seq: first + uint64(i), Time: tm, Data: make([]byte, size)}
		for j := range batch[i].Data {
			batch[i].Data[j] = byte(m.r.Uint32())
		}
		if m.r.IntN(5) == 0 {
			batch[i].Reply = fmt.Sprintf("_INBOX.%d", m.r.IntN(1000))
		}
		tm += int64(m.r.IntN(2))
	}
	var want error
	if m.r.IntN(20) == 0 {
		switch k := m.r.IntN(3); {
		case k == 0 && n > 1:
			batch[n-1].Time = batch[n-2].Time - 1
			want = stores.ErrBadTime
		case k == 1 && c.last > 0:
			for i := range batch {
				batch[i].Seq -= first - c.last // reuses Last
			}
			want = stores.ErrBadSequence
		default:
			if len(c.msgs) > 0 || n > 1 {
				batch[n-1].Seq++
				want = stores.ErrBadSequence
			}
		}
	}
	err := c.ch.Msgs.Append(batch)
	if !errors.Is(err, want) || (want == nil) != (err == nil) {
		m.t.Fatalf("Append(%d from %d on %s, last %d) = %v, want %v", n, batch[0].Seq, c.name, c.last, err, want)
	}
	if err != nil {
		return
	}
	for i := range batch {
		kept := batch[i]
		kept.Data = slices.Clone(batch[i].Data)
		c.msgs = append(c.msgs, kept)
		clear(batch[i].Data) // the caller reuses its buffers: the store must have copied
	}
	c.last = batch[n-1].Seq
	c.enforce()
}

func (c *modelChan) enforce() (removed int) {
	var bytes uint64
	for i := range c.msgs {
		bytes += stores.MsgSize(c.name, &c.msgs[i])
	}
	for len(c.msgs) > 1 && c.limits.Exceeded(uint64(len(c.msgs)), bytes) {
		bytes -= stores.MsgSize(c.name, &c.msgs[0])
		c.msgs = c.msgs[1:]
		removed++
	}
	return removed
}

func (m *model) load(c *modelChan) {
	lo := int64(c.last) - int64(len(c.msgs)) - 2
	seq := uint64(max(0, lo+int64(m.r.IntN(len(c.msgs)+5))))
	var got stores.Msg
	if m.r.IntN(2) == 0 {
		got.Data = make([]byte, 0, 64)
	}
	err := c.ch.Msgs.Load(seq, &got)
	if len(c.msgs) == 0 || seq < c.msgs[0].Seq || seq > c.last {
		if !errors.Is(err, stores.ErrNotFound) {
			m.t.Fatalf("Load(%d) on %s [%d msgs to %d] = %v, want ErrNotFound", seq, c.name, len(c.msgs), c.last, err)
		}
		return
	}
	want := &c.msgs[seq-c.msgs[0].Seq]
	if err != nil || !sameMsg(&got, want) {
		m.t.Fatalf("Load(%d) on %s = %s, %v; want %s", seq, c.name, fmtMsg(&got), err, fmtMsg(want))
	}
}

func (m *model) seqAtTime(c *modelChan) {
	ns := m.now - int64(m.r.IntN(60))*tick + int64(m.r.IntN(3)) - 1
	want := c.last + 1
	for i := range c.msgs {
		if c.msgs[i].Time >= ns {
			want = c.msgs[i].Seq
			break
		}
	}
	if got := c.ch.Msgs.SeqAtTime(ns); got != want {
		m.t.Fatalf("SeqAtTime(now%+d) on %s = %d, want %d", ns-m.now, c.name, got, want)
	}
}

func (m *model) expire(c *modelChan) {
	removed := c.enforce()
	for len(c.msgs) > 0 && c.limits.Expired(c.msgs[0].Time, m.now) {
		c.msgs = c.msgs[1:]
		removed++
	}
	var next int64
	if len(c.msgs) > 0 {
		next = c.limits.ExpiresAt(c.msgs[0].Time)
	}
	if n, at := c.ch.Msgs.Expire(m.now); n != removed || at != next {
		m.t.Fatalf("Expire on %s = %d, %d; want %d, %d", c.name, n, at, removed, next)
	}
}

func (m *model) subOp(c *modelChan) {
	ss := c.ch.Subs
	ids := slices.Sorted(maps.Keys(c.subs))
	pick := func() uint64 {
		if len(ids) == 0 || m.r.IntN(10) == 0 {
			return 1000 + uint64(m.r.IntN(3)) // unknown
		}
		return ids[m.r.IntN(len(ids))]
	}
	switch p := m.r.IntN(10); {
	case p < 2:
		m.nextID++
		id := m.nextID
		if len(ids) > 0 && m.r.IntN(8) == 0 {
			id = ids[0]
		}
		st := stores.SubState{ID: id, ClientID: fmt.Sprint("c", m.r.IntN(3)), Inbox: fmt.Sprint("_INBOX.", id),
			MaxInFlight: int32(m.r.IntN(100)), LastSent: uint64(m.r.IntN(3))}
		err := ss.CreateSub(&st)
		if _, exists := c.subs[id]; exists {
			if !errors.Is(err, stores.ErrExists) {
				m.t.Fatalf("CreateSub(existing %d) = %v", id, err)
			}
			return
		}
		if err != nil {
			m.t.Fatalf("CreateSub(%d): %v", id, err)
		}
		c.subs[id] = &modelSub{state: st, pending: map[uint64]bool{}}
	case p < 3:
		id := pick()
		ms, ok := c.subs[id]
		st := stores.SubState{ID: id, IsDurable: true, IsClosed: m.r.IntN(2) == 0, AckInbox: fmt.Sprint(m.r.Uint32())}
		if ok {
			st.LastSent = ms.state.LastSent
		}
		if err := ss.UpdateSub(&st); ok != (err == nil) || (!ok && !errors.Is(err, stores.ErrNotFound)) {
			m.t.Fatalf("UpdateSub(%d) = %v (exists %v)", id, err, ok)
		}
		if ok {
			ms.state = st
		}
	case p < 4:
		id := pick()
		_, ok := c.subs[id]
		if err := ss.DeleteSub(id); ok != (err == nil) || (!ok && !errors.Is(err, stores.ErrNotFound)) {
			m.t.Fatalf("DeleteSub(%d) = %v (exists %v)", id, err, ok)
		}
		delete(c.subs, id)
	default:
		events := make([]stores.SubEvent, m.r.IntN(20))
		for i := range events {
			ev := stores.SubEvent{SubID: pick(), Seq: 1 + uint64(m.r.IntN(int(c.last)+5)), Acked: m.r.IntN(2) == 0}
			events[i] = ev
			sub := c.subs[ev.SubID]
			if sub == nil {
				continue
			}
			if ev.Acked {
				delete(sub.pending, ev.Seq)
			} else {
				sub.pending[ev.Seq] = true
				sub.state.LastSent = max(sub.state.LastSent, ev.Seq)
			}
		}
		if err := ss.Record(events); err != nil {
			m.t.Fatalf("Record: %v", err)
		}
	}
}

func (c *modelChan) wantSubs() []stores.RecoveredSub {
	var out []stores.RecoveredSub
	for _, id := range slices.Sorted(maps.Keys(c.subs)) {
		s := c.subs[id]
		out = append(out, stores.RecoveredSub{State: s.state, Pending: slices.Sorted(maps.Keys(s.pending))})
	}
	return out
}

// reopen syncs everything, closes, reopens and compares the whole recovered state.
func (m *model) reopen() {
	t := m.t
	for _, c := range m.chans {
		m.expire(c) // limits in force before the restart, so recovery has nothing to trim
		if err := errors.Join(c.ch.Msgs.Sync(), c.ch.Subs.Sync()); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.st.Sync(); err != nil {
		t.Fatal(err)
	}
	m.st = m.s.reopen(t, m.st, m.dir, nil)
	m.setLimits()
	for _, c := range m.chans {
		rc := recovered(t, m.st, c.name)
		c.ch = rc.Channel
		if got, want := c.ch.Msgs.State(), stateOf(c.name, c.last, c.msgs); got != want {
			t.Fatalf("after reopen %s State = %+v, model %+v", c.name, got, want)
		}
		for i := range c.msgs {
			checkLoad(t, c.ch.Msgs, &c.msgs[i])
		}
		checkSubs(t, c.ch.Subs, c.wantSubs())
	}
}
