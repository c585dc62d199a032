package filestore_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/stores/filestore/crashtest"
)

// The power-loss test drives a store as the streaming engine does — appends, subscription
// records and client changes, each group commit a Flush of every store then SyncFlushed on a
// committer goroutine (pipelined: the writer goes on meanwhile) — cuts the power at a random
// moment (crashtest), and reopens: Open never fails, every message a returned SyncFlushed
// covered is there (a gapless prefix at least as long), and each channel's subscriptions and
// the clients are exactly as some Flush at or after the last durable one left them.

var plChans = []string{"a", "b"} // b keeps its last 50 messages (markers, dropped segments)

func plMsg(ch int, seq uint64) stores.Msg {
	m := stores.Msg{Seq: seq, Time: int64(seq), Data: make([]byte, int(seq*7%300))}
	for i := range m.Data {
		m.Data[i] = byte(uint64(ch) + seq + uint64(i)*13)
	}
	if seq%4 == 0 {
		m.Reply = "r" + strconv.FormatUint(seq, 10)
	}
	return m
}

// plState is the subscription and client state at one Flush, and the Last of each channel.
type plState struct {
	last    []uint64
	subs    [][]stores.RecoveredSub
	clients []string
}

func (p plState) clone() plState {
	q := plState{last: slices.Clone(p.last), clients: slices.Clone(p.clients)}
	for _, s := range p.subs {
		c := make([]stores.RecoveredSub, len(s))
		for i := range s {
			c[i] = stores.RecoveredSub{State: s[i].State, Pending: slices.Clone(s[i].Pending)}
		}
		q.subs = append(q.subs, c)
	}
	return q
}

func sameSubs(a, b []stores.RecoveredSub) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].State != b[i].State || !slices.Equal(a[i].Pending, b[i].Pending) {
			return false
		}
	}
	return true
}

func clientKeys(cs []stores.ClientInfo) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID+"/"+c.HbInbox+"/"+c.User)
	}
	slices.Sort(out)
	return out
}

// plModel is the writer's view: the state as changed so far.
type plModel struct {
	next    []uint64 // next sequence of each channel
	subs    []map[uint64]*stores.RecoveredSub
	clients map[string]stores.ClientInfo
	nextSub uint64
	check   plCheck // what the next open must find
}

// plCheck: the states of the last durable commit and every later Flush, and the next
// sequence of each channel when the power went.
type plCheck struct {
	snaps   []plState
	maxNext []uint64
}

func (m *plModel) state() plState {
	var s plState
	for i := range plChans {
		s.last = append(s.last, m.next[i]-1)
		var subs []stores.RecoveredSub
		for _, id := range slices.Sorted(maps.Keys(m.subs[i])) {
			r := m.subs[i][id]
			subs = append(subs, stores.RecoveredSub{State: r.State, Pending: slices.Clone(r.Pending)})
		}
		s.subs = append(s.subs, subs)
	}
	var cs []stores.ClientInfo
	for _, c := range m.clients {
		cs = append(cs, c)
	}
	s.clients = clientKeys(cs)
	return s
}

func TestPowerLoss(t *testing.T) {
	iters := 40
	if testing.Short() {
		iters = 8
	}
	if v, err := strconv.Atoi(os.Getenv("POWERLOSS_ITERATIONS")); err == nil {
		iters = v
	}
	for it := range iters {
		t.Run(fmt.Sprint(it), func(t *testing.T) { powerLossRun(t, uint64(it)) })
	}
}

func powerLossRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0xc0ffee))
	dir := t.TempDir()
	disk := crashtest.New()
	opts := filestore.Options{SegmentBytes: 8 << 10, BufferSize: 2 << 10, CompactBytes: 4 << 10,
		Limits: &stores.LimitsSet{Global: stores.DefaultLimits(), Channels: map[string]stores.Limits{"b": {MaxMsgs: 50}}}}
	disk.Install(&opts)
	st, err := filestore.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	m := &plModel{clients: map[string]stores.ClientInfo{}}
	for i, name := range plChans {
		if _, err := st.CreateChannel(name, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		m.next = append(m.next, 1)
		m.subs = append(m.subs, map[uint64]*stores.RecoveredSub{})
	}
	for round := range 3 {
		if round > 0 {
			st = reopenAfterLoss(t, dir, opts, m)
		}
		powerLossRound(t, rng, st, m, disk)
		if rng.IntN(2) == 0 {
			st.Close() // frozen: it writes nothing, and its errors are expected
		} else {
			filestore.Abandon(st)
		}
		if err := disk.PowerLoss(dir, rng); err != nil {
			t.Fatal(err)
		}
		disk.Thaw()
	}
	st = reopenAfterLoss(t, dir, opts, m)
	st.Close()
}

// powerLossRound runs random changes with pipelined commits on st and freezes the disk at a
// random moment, leaving in m.check what the next open must find.
func powerLossRound(t *testing.T, rng *rand.Rand, st *filestore.Store, m *plModel, disk *crashtest.Disk) {
	rs, err := st.Recover()
	if err != nil {
		t.Fatal(err)
	}
	var msgs []stores.MsgStore
	var subs []stores.SubStore
	for _, rc := range rs.Channels {
		msgs, subs = append(msgs, rc.Channel.Msgs), append(subs, rc.Channel.Subs)
	}
	var (
		mu      sync.Mutex
		frozen  bool
		durable int // index in snaps of the last commit a SyncFlushed covered
		snaps   = []plState{m.state()}
		jobs    = make(chan int, 1000)
		done    = make(chan struct{})
	)
	go func() { // the committer
		defer close(done)
		for k := range jobs {
			var errs []error
			for i := range plChans {
				errs = append(errs, msgs[i].(stores.SplitSyncer).SyncFlushed(), subs[i].(stores.SplitSyncer).SyncFlushed())
			}
			errs = append(errs, stores.SplitSyncer(st).SyncFlushed())
			mu.Lock()
			if err := errors.Join(errs...); err == nil && !frozen {
				durable = k
			} else if err != nil && !frozen {
				t.Errorf("SyncFlushed before the power cut: %v", err)
			}
			mu.Unlock()
		}
	}()
	ops := 60 + rng.IntN(120)
	cutAt := rng.IntN(ops)
	for op := 0; op < ops; op++ {
		if op == cutAt {
			mu.Lock()
			disk.Freeze()
			frozen = true
			mu.Unlock()
			break
		}
		i := rng.IntN(len(plChans))
		switch p := rng.IntN(100); {
		case p < 35:
			batch := make([]stores.Msg, 1+rng.IntN(20))
			for j := range batch {
				batch[j] = plMsg(i, m.next[i]+uint64(j))
			}
			if err := msgs[i].Append(batch); err != nil {
				t.Fatal(err)
			}
			m.next[i] += uint64(len(batch))
		case p < 45 || len(m.subs[i]) == 0:
			m.nextSub++
			s := stores.SubState{ID: m.nextSub, ClientID: fmt.Sprint("c", rng.IntN(5)), Inbox: fmt.Sprint("_INBOX.", m.nextSub),
				MaxInFlight: 100, User: fmt.Sprint("u", rng.IntN(3))}
			if err := subs[i].CreateSub(&s); err != nil {
				t.Fatal(err)
			}
			m.subs[i][s.ID] = &stores.RecoveredSub{State: s}
		case p < 50:
			id := slices.Sorted(maps.Keys(m.subs[i]))[rng.IntN(len(m.subs[i]))]
			if err := subs[i].DeleteSub(id); err != nil {
				t.Fatal(err)
			}
			delete(m.subs[i], id)
		case p < 55:
			id := slices.Sorted(maps.Keys(m.subs[i]))[rng.IntN(len(m.subs[i]))]
			s := m.subs[i][id].State
			s.IsClosed, s.Inbox = !s.IsClosed, fmt.Sprint("_INBOX.r", op)
			if err := subs[i].UpdateSub(&s); err != nil {
				t.Fatal(err)
			}
			m.subs[i][id].State = s
		case p < 62:
			c := stores.ClientInfo{ID: fmt.Sprint("c", rng.IntN(8)), HbInbox: fmt.Sprint("_INBOX.hb", op), User: "u"}
			if _, ok := m.clients[c.ID]; ok && rng.IntN(2) == 0 {
				if err := st.DeleteClient(c.ID); err != nil {
					t.Fatal(err)
				}
				delete(m.clients, c.ID)
			} else {
				if err := st.AddClient(c); err != nil {
					t.Fatal(err)
				}
				m.clients[c.ID] = c
			}
		case p < 80:
			ids := slices.Sorted(maps.Keys(m.subs[i]))
			events := make([]stores.SubEvent, 1+rng.IntN(40))
			for j := range events {
				id := ids[rng.IntN(len(ids))]
				ev := stores.SubEvent{SubID: id, Seq: 1 + uint64(rng.IntN(500)), Acked: rng.IntN(2) == 0}
				events[j] = ev
				r := m.subs[i][id]
				if k, found := slices.BinarySearch(r.Pending, ev.Seq); ev.Acked && found {
					r.Pending = slices.Delete(r.Pending, k, k+1)
				} else if !ev.Acked {
					if !found {
						r.Pending = slices.Insert(r.Pending, k, ev.Seq)
					}
					r.State.LastSent = max(r.State.LastSent, ev.Seq)
				}
			}
			if err := subs[i].Record(events); err != nil {
				t.Fatal(err)
			}
		default: // a group commit: the writer flushes, the committer syncs
			for i := range plChans {
				if err := errors.Join(msgs[i].(stores.SplitSyncer).Flush(), subs[i].(stores.SplitSyncer).Flush()); err != nil {
					t.Fatal(err)
				}
			}
			if err := stores.SplitSyncer(st).Flush(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			snaps = append(snaps, m.state())
			k := len(snaps) - 1
			mu.Unlock()
			jobs <- k
		}
	}
	if !frozen {
		mu.Lock()
		disk.Freeze()
		frozen = true
		mu.Unlock()
	}
	close(jobs)
	<-done
	mu.Lock()
	m.check = plCheck{snaps: snaps[durable:], maxNext: slices.Clone(m.next)}
	mu.Unlock()
}

// reopenAfterLoss opens dir after a power cut, checks it against m.check and makes m the
// recovered state.
func reopenAfterLoss(t *testing.T, dir string, opts filestore.Options, m *plModel) *filestore.Store {
	t.Helper()
	// Verify agrees with Open: only torn tails (and indexes to rebuild), no damage.
	r, err := filestore.Verify(dir, filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		if !p.Repairable {
			t.Fatalf("Verify after the power cut: %s", p)
		}
	}
	st, err := filestore.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open after the power cut: %v", err)
	}
	if d := st.Damaged(); len(d) > 0 {
		t.Fatalf("damage after the power cut: %v", d)
	}
	rs, err := st.Recover()
	if err != nil || rs == nil || len(rs.Channels) != len(plChans) {
		t.Fatalf("Recover = %+v, %v", rs, err)
	}
	if rs.Clean {
		t.Fatal("Clean after a power cut")
	}
	durable := m.check.snaps[0]
	var got plState
	for i, rc := range rs.Channels {
		ms := rc.Channel.Msgs
		cs := ms.State()
		if cs.Last < durable.last[i] || cs.Last >= m.check.maxNext[i] {
			t.Fatalf("channel %s: Last %d, durable %d, appended up to %d", plChans[i], cs.Last, durable.last[i], m.check.maxNext[i]-1)
		}
		if cs.Msgs > 0 && cs.Msgs != cs.Last-cs.First+1 || i == 0 && cs.Msgs != cs.Last || i == 1 && cs.Msgs < min(50, cs.Last) {
			t.Fatalf("channel %s: state %+v", plChans[i], cs)
		}
		var msg stores.Msg
		for seq := cs.First; seq <= cs.Last; seq++ {
			want := plMsg(i, seq)
			if err := ms.Load(seq, &msg); err != nil || string(msg.Data) != string(want.Data) || msg.Reply != want.Reply || msg.Time != want.Time {
				t.Fatalf("channel %s: Load(%d) = %v", plChans[i], seq, err)
			}
		}
		got.last = append(got.last, cs.Last)
		got.subs = append(got.subs, rc.Subs)
		m.next[i] = cs.Last + 1
		m.subs[i] = map[uint64]*stores.RecoveredSub{}
		for _, r := range rc.Subs {
			r := r
			m.subs[i][r.State.ID] = &r
			m.nextSub = max(m.nextSub, r.State.ID)
		}
	}
	got.clients = clientKeys(rs.Clients)
	for i := range plChans {
		if !slices.ContainsFunc(m.check.snaps, func(s plState) bool { return sameSubs(got.subs[i], s.subs[i]) }) {
			t.Fatalf("channel %s: subscriptions after the power cut are no Flush's from the last durable one on:\n got %+v\n durable %+v",
				plChans[i], got.subs[i], durable.subs[i])
		}
	}
	if !slices.ContainsFunc(m.check.snaps, func(s plState) bool { return slices.Equal(got.clients, s.clients) }) {
		t.Fatalf("clients after the power cut are no Flush's from the last durable one on:\n got %v\n durable %v", got.clients, durable.clients)
	}
	m.clients = map[string]stores.ClientInfo{}
	for _, c := range rs.Clients {
		m.clients[c.ID] = c
	}
	return st
}
