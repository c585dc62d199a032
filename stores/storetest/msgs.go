package storetest

import (
	"errors"
	"math/rand/v2"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-io/starling/stores"
)

func (s *suite) testAppendLoadState(t *testing.T) {
	st, dir := s.fresh(t)
	ch := create(t, st, "foo", 1)
	ms := ch.Msgs
	checkState(t, ms, stores.ChannelState{First: 1, Last: 0})
	checkGone(t, ms, 0, 1, 2)
	if err := ms.Append(nil); err != nil {
		t.Fatalf("empty Append: %v", err)
	}

	batch := genBatch(1, 10)
	appendOK(t, ms, batch[:1])
	appendOK(t, ms, batch[1:])
	want := stateOf("foo", 10, batch)
	checkState(t, ms, want)
	for i := range batch {
		checkLoad(t, ms, &batch[i])
	}
	checkGone(t, ms, 0, 11)

	// Append copies: the caller may reuse its buffers at once.
	next := genBatch(11, 1)
	kept := genMsg(11, next[0].Time)
	for i := range next[0].Data {
		next[0].Data[i] = 0
	}
	next[0].Data = append(next[0].Data[:0], kept.Data...)
	appendOK(t, ms, next)
	next[0].Data[0]++
	checkLoad(t, ms, &kept)
	batch = append(batch, kept)

	// Load reuses into.Data's capacity and overwrites every field.
	into := stores.Msg{Seq: 99, Time: 99, Reply: "stale", Data: make([]byte, 3, 1024)}
	p := &into.Data[:1][0]
	if err := ms.Load(3, &into); err != nil {
		t.Fatal(err)
	}
	if !sameMsg(&into, &batch[2]) || &into.Data[:1][0] != p {
		t.Fatalf("Load into reused Msg = %s (same buffer %v)", fmtMsg(&into), &into.Data[:1][0] == p)
	}
	if err := ms.Load(5, &into); err != nil || !sameMsg(&into, &batch[4]) {
		t.Fatalf("Load(5) = %s, %v", fmtMsg(&into), err)
	}

	// Channels are independent.
	other := create(t, st, "bar", 2)
	appendOK(t, other.Msgs, genBatch(1, 3))
	checkState(t, other.Msgs, stateOf("bar", 3, genBatch(1, 3)))
	checkState(t, ms, stateOf("foo", 11, batch))

	if err := ms.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if !s.caps.Durable {
		return
	}
	st = s.reopen(t, st, dir, nil)
	ms = recovered(t, st, "foo").Channel.Msgs
	checkState(t, ms, stateOf("foo", 11, batch))
	for i := range batch {
		checkLoad(t, ms, &batch[i])
	}
	appendOK(t, ms, genBatch(12, 2))
	checkLoad(t, ms, &genBatch(13, 1)[0])
}

func (s *suite) testAppendErrors(t *testing.T) {
	st, _ := s.fresh(t)
	ms := create(t, st, "foo", 1).Msgs
	bad := func(batch []stores.Msg, want error) {
		t.Helper()
		before := ms.State()
		if err := ms.Append(batch); !errors.Is(err, want) {
			t.Fatalf("Append(%d msgs from %d) = %v, want %v", len(batch), batch[0].Seq, err, want)
		}
		checkState(t, ms, before)
	}
	bad(genBatch(0, 2), stores.ErrBadSequence)

	// An empty channel may start anywhere after Last.
	appendOK(t, ms, genBatch(100, 3))
	checkState(t, ms, stateOf("foo", 102, genBatch(100, 3)))
	checkGone(t, ms, 1, 99)

	bad(genBatch(104, 1), stores.ErrBadSequence) // gap
	bad(genBatch(102, 1), stores.ErrBadSequence) // reuse
	bad(genBatch(1, 1), stores.ErrBadSequence)
	gap := genBatch(103, 3)
	gap[2].Seq++
	bad(gap, stores.ErrBadSequence) // not contiguous inside the batch: nothing stored
	dup := genBatch(103, 3)
	dup[1].Seq--
	bad(dup, stores.ErrBadSequence)

	back := genBatch(103, 3)
	back[2].Time = back[1].Time - 1
	bad(back, stores.ErrBadTime)
	early := genBatch(103, 1)
	early[0].Time = t0 + 102*1000 - 1 // before the newest stored message
	bad(early, stores.ErrBadTime)

	// Equal times are fine, and the channel still accepts the right batch.
	same := genBatch(103, 3)
	same[1].Time, same[2].Time = same[0].Time, same[0].Time
	appendOK(t, ms, same)
	checkLoad(t, ms, &same[2])
	if got := ms.State(); got.First != 100 || got.Last != 105 || got.Msgs != 6 {
		t.Fatalf("State = %+v", got)
	}
}

func (s *suite) testSeqAtTime(t *testing.T) {
	st, _ := s.fresh(t)
	ms := create(t, st, "foo", 1).Msgs
	if got := ms.SeqAtTime(t0); got != 1 {
		t.Fatalf("empty SeqAtTime = %d, want 1", got)
	}
	times := []int64{10, 20, 20, 30, 40}
	batch := genBatch(1, len(times))
	for i := range batch {
		batch[i].Time = t0 + times[i]
	}
	appendOK(t, ms, batch)
	for _, c := range []struct {
		ns   int64
		want uint64
	}{{0, 1}, {-1 << 62, 1}, {t0 + 9, 1}, {t0 + 10, 1}, {t0 + 11, 2}, {t0 + 20, 2}, {t0 + 21, 4},
		{t0 + 30, 4}, {t0 + 40, 5}, {t0 + 41, 6}, {1<<63 - 1, 6}} {
		if got := ms.SeqAtTime(c.ns); got != c.want {
			t.Errorf("SeqAtTime(t0%+d) = %d, want %d", c.ns-t0, got, c.want)
		}
	}
	// After removal the answer is never below First.
	ms.SetLimits(stores.Limits{MaxMsgs: 3})
	ms.Expire(0)
	if got := ms.SeqAtTime(t0); got != 3 {
		t.Errorf("SeqAtTime after removal = %d, want 3", got)
	}
	if got := ms.SeqAtTime(t0 + 20); got != 3 {
		t.Errorf("SeqAtTime(20) after removal = %d, want 3", got)
	}
	// Expired entirely: Last+1.
	ms.SetLimits(stores.Limits{MaxAge: time.Nanosecond})
	if n, _ := ms.Expire(t0 + 1000); n != 3 {
		t.Fatalf("Expire removed %d", n)
	}
	if got := ms.SeqAtTime(t0); got != 6 {
		t.Errorf("SeqAtTime on emptied channel = %d, want 6", got)
	}

	// Many messages (several chunks or pages) against a linear scan.
	ms = create(t, st, "many", 2).Msgs
	r := rand.New(rand.NewPCG(7, 7))
	big := genBatch(1, 5000)
	tm := t0
	for i := range big {
		tm += int64(r.IntN(3)) // runs of equal times
		big[i].Time = tm
	}
	for i := 0; i < len(big); i += 700 {
		appendOK(t, ms, big[i:min(i+700, len(big))])
	}
	ms.SetLimits(stores.Limits{MaxMsgs: 4000})
	ms.Expire(0)
	stored := big[1000:]
	for range 2000 {
		ns := t0 - 2 + int64(r.IntN(int(tm-t0)+5))
		want := stored[0].Seq + uint64(sort.Search(len(stored), func(i int) bool { return stored[i].Time >= ns }))
		if got := ms.SeqAtTime(ns); got != want {
			t.Fatalf("SeqAtTime(t0%+d) = %d, want %d", ns-t0, got, want)
		}
	}
}

func (s *suite) testLimitsMsgs(t *testing.T) {
	st, dir := s.fresh(t)
	ls := &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 5}}
	setLimits(t, st, ls)
	ms := create(t, st, "foo", 1).Msgs
	all := genBatch(1, 40)
	for i := range 12 {
		appendOK(t, ms, all[i:i+1])
	}
	checkState(t, ms, stateOf("foo", 12, all[7:12]))
	checkGone(t, ms, 1, 7)
	checkLoad(t, ms, &all[7])
	appendOK(t, ms, all[12:22]) // a batch larger than the limit
	checkState(t, ms, stateOf("foo", 22, all[17:22]))

	// Store.SetLimits reaches existing channels at their next Append or Expire.
	setLimits(t, st, &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 2}})
	checkState(t, ms, stateOf("foo", 22, all[17:22]))
	appendOK(t, ms, all[22:23])
	checkState(t, ms, stateOf("foo", 23, all[21:23]))

	// MsgStore.SetLimits likewise; Expire enforces MaxMsgs too.
	ms.SetLimits(stores.Limits{MaxMsgs: 1})
	checkState(t, ms, stateOf("foo", 23, all[21:23]))
	if n, next := ms.Expire(0); n != 1 || next != 0 {
		t.Fatalf("Expire = %d, %d; want 1, 0", n, next)
	}
	checkState(t, ms, stateOf("foo", 23, all[22:23]))

	// Unlimited again: nothing more is removed; sequences continue.
	ms.SetLimits(stores.Limits{})
	appendOK(t, ms, all[23:40])
	checkState(t, ms, stateOf("foo", 40, all[22:40]))
	if !s.caps.Durable {
		return
	}
	if err := ms.Sync(); err != nil {
		t.Fatal(err)
	}
	st = s.reopen(t, st, dir, ls)
	ms = recovered(t, st, "foo").Channel.Msgs
	// A store may apply MaxMsgs on recovery; either way the newest 5 are there.
	got := ms.State()
	if got.Last != 40 || got.Msgs < 5 {
		t.Fatalf("State after reopen = %+v", got)
	}
	appendOK(t, ms, genBatch(41, 1))
	checkState(t, ms, stateOf("foo", 41, genBatch(37, 5)))
}

func (s *suite) testLimitsBytes(t *testing.T) {
	st, _ := s.fresh(t)
	ms := create(t, st, "foo", 1).Msgs
	msg := func(seq uint64, size int) stores.Msg {
		return stores.Msg{Seq: seq, Time: t0 + int64(seq), Data: make([]byte, size)}
	}
	per := stores.MsgSize("foo", &stores.Msg{Data: make([]byte, 100)}) // 119
	ms.SetLimits(stores.Limits{MaxBytes: int64(3 * per)})
	var sent []stores.Msg
	for seq := uint64(1); seq <= 6; seq++ {
		sent = append(sent, msg(seq, 100))
		appendOK(t, ms, sent[len(sent)-1:])
	}
	checkState(t, ms, stateOf("foo", 6, sent[3:]))
	if got := ms.State().Bytes; got != 3*per {
		t.Fatalf("Bytes = %d, want %d", got, 3*per)
	}
	// The newest message is kept even when it alone exceeds MaxBytes.
	huge := msg(7, 10*int(per))
	appendOK(t, ms, []stores.Msg{huge})
	checkState(t, ms, stateOf("foo", 7, []stores.Msg{huge}))
	checkLoad(t, ms, &huge)
	small := msg(8, 1)
	appendOK(t, ms, []stores.Msg{small})
	checkState(t, ms, stateOf("foo", 8, []stores.Msg{small}))
	// Both limits at once: whichever is hit first.
	ms.SetLimits(stores.Limits{MaxBytes: int64(3 * per), MaxMsgs: 2})
	b := []stores.Msg{msg(9, 1), msg(10, 1), msg(11, 1)}
	appendOK(t, ms, b)
	checkState(t, ms, stateOf("foo", 11, b[1:]))
	c := []stores.Msg{msg(12, 50), msg(13, 50)}
	ms.SetLimits(stores.Limits{MaxBytes: int64(2*stores.MsgSize("foo", &c[0])) + 2, MaxMsgs: 10})
	appendOK(t, ms, c)
	checkState(t, ms, stateOf("foo", 13, c))
}

func (s *suite) testLimitsAge(t *testing.T) {
	st, _ := s.fresh(t)
	ms := create(t, st, "foo", 1).Msgs
	sec := int64(time.Second)
	var all []stores.Msg
	for seq := uint64(1); seq <= 21; seq++ {
		all = append(all, genMsg(seq, t0+int64(seq-1)*sec)) // seq 1 at t0, seq 21 at t0+20s
	}
	appendOK(t, ms, all)
	if n, next := ms.Expire(t0 + 100*sec); n != 0 || next != 0 {
		t.Fatalf("Expire without MaxAge = %d, %d", n, next)
	}
	ms.SetLimits(stores.Limits{MaxAge: 10 * time.Second})
	// Append does not apply MaxAge.
	more := genMsg(22, t0+20*sec)
	appendOK(t, ms, []stores.Msg{more})
	all = append(all, more)
	checkState(t, ms, stateOf("foo", 22, all))

	expire := func(now int64, wantRemoved int, wantNext int64, wantFirst uint64) {
		t.Helper()
		n, next := ms.Expire(now)
		if n != wantRemoved || next != wantNext {
			t.Fatalf("Expire(t0%+ds) = %d, t0%+dns; want %d, t0%+dns", (now-t0)/sec, n, next-t0, wantRemoved, wantNext-t0)
		}
		checkState(t, ms, stateOf("foo", 22, all[wantFirst-1:]))
	}
	expire(t0+10*sec-1, 0, t0+10*sec, 1) // just before seq 1 is 10s old
	expire(t0+10*sec, 1, t0+11*sec, 2)   // age == MaxAge: removed
	expire(t0+10*sec+5, 0, t0+11*sec, 2) // nothing due yet
	expire(t0+15*sec+1, 5, t0+16*sec, 7) // seqs 2..6
	expire(t0+30*sec, 16, 0, 23)         // everything, even the newest
	if err := ms.Append([]stores.Msg{genMsg(22, t0+40*sec)}); !errors.Is(err, stores.ErrBadSequence) {
		t.Fatalf("sequence reused after expiry: %v", err)
	}
	next := genMsg(23, t0+40*sec)
	appendOK(t, ms, []stores.Msg{next})
	checkState(t, ms, stateOf("foo", 23, []stores.Msg{next}))
	if _, at := ms.Expire(t0 + 40*sec); at != t0+50*sec {
		t.Fatalf("next expiry = t0%+d", at-t0)
	}
}

func (s *suite) testLimitsPerChannel(t *testing.T) {
	st, _ := s.fresh(t)
	setLimits(t, st, &stores.LimitsSet{
		Global:   stores.Limits{MaxMsgs: 10},
		Channels: map[string]stores.Limits{"a.*": {MaxMsgs: 2}, "a.b": {MaxBytes: 1}},
	})
	ab := create(t, st, "a.b", 1).Msgs // MaxBytes 1 (and MaxMsgs 2): keeps one
	ac := create(t, st, "a.c", 2).Msgs // MaxMsgs 2
	x := create(t, st, "x", 3).Msgs    // global: 10
	for _, ms := range []stores.MsgStore{ab, ac, x} {
		appendOK(t, ms, genBatch(1, 20))
	}
	for _, c := range []struct {
		ms   stores.MsgStore
		msgs uint64
	}{{ab, 1}, {ac, 2}, {x, 10}} {
		if got := c.ms.State(); got.Msgs != c.msgs || got.Last != 20 {
			t.Errorf("State = %+v, want %d msgs", got, c.msgs)
		}
	}
}

// testConcurrentLoad runs Load, SeqAtTime and State from several goroutines while one
// goroutine appends and expires. Every successful Load must return exactly the message
// appended at that sequence. Run it with -race.
func (s *suite) testConcurrentLoad(t *testing.T) {
	st, _ := s.fresh(t)
	ms := create(t, st, "foo", 1).Msgs
	ms.SetLimits(stores.Limits{MaxMsgs: 500, MaxAge: 300 * time.Microsecond})
	const total = 20000
	var loads atomic.Int64
	done := make(chan struct{})
	errc := make(chan error, 3)
	stop := func() {
		select {
		case <-done:
		default:
			close(done)
		}
	}
	defer stop()
	for g := range 3 {
		go func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			var m stores.Msg
			for {
				select {
				case <-done:
					errc <- nil
					return
				default:
				}
				cs := ms.State()
				if cs.Msgs > 0 && cs.First > cs.Last || cs.Msgs == 0 && cs.First != cs.Last+1 {
					errc <- errors.New("inconsistent State")
					return
				}
				seq := cs.First + uint64(r.IntN(int(int64(cs.Last)-int64(cs.First)+3)))
				err := ms.Load(seq, &m)
				switch {
				case err == nil:
					loads.Add(1)
					if want := genMsg(seq, t0+int64(seq)*1000); !sameMsg(&m, &want) {
						errc <- errors.New("Load returned a wrong or torn message: " + fmtMsg(&m))
						return
					}
				case !errors.Is(err, stores.ErrNotFound):
					errc <- err
					return
				}
				if at := ms.SeqAtTime(t0 + int64(seq)*1000); at < cs.First {
					errc <- errors.New("SeqAtTime below First")
					return
				}
			}
		}()
	}
	// Append at least total messages, and on until the readers have loaded some while
	// appends were running (bounded, in case the readers are starved or failed).
	for first := uint64(1); first <= total || (loads.Load() < 2000 && len(errc) == 0 && first < 100*total); first += 50 {
		if err := ms.Append(genBatch(first, 50)); err != nil {
			t.Fatal(err)
		}
		ms.Expire(t0 + int64(first)*1000)
	}
	stop()
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
