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
	"syscall"
	"testing"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/stores/filestore/crashtest"
)

// The power-loss test drives a store as the streaming engine does — appends, subscription
// records and client changes, each group commit a Flush of every store then SyncFlushed on a
// committer goroutine (pipelined: the writer goes on meanwhile) — with a full disk or failed
// fsyncs now and then (a failed channel is rolled back, a failed log rewritten), cuts the
// power at a random moment (crashtest), and reopens: Open never fails, every message a
// returned SyncFlushed of its channel covered is there (a gapless prefix at least as long),
// and each channel's subscriptions and the clients are exactly as some Flush at or after the
// last one their store made durable left them.

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
	tried   []uint64 // past the last sequence ever given to Append (a failed one may be on disk)
	subs    []map[uint64]*stores.RecoveredSub
	clients map[string]stores.ClientInfo
	nextSub uint64
	check   plCheck // what the next open must find
}

// plCheck: the states of every Flush of the round, the last one each store made durable
// (msgs and subs per channel, then clients), and the next sequence of each channel when the
// power went.
type plCheck struct {
	snaps   []plState
	durable []int // index in snaps, per store
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

// plFaults fills the disk or fails fsyncs while armed.
type plFaults struct {
	mu     sync.Mutex
	budget int // bytes still written before ENOSPC; -1: no full disk
	syncs  bool
}

func (f *plFaults) install(o *filestore.Options) {
	o.Hooks.Write = func(path string, p []byte, write func([]byte) (int, error)) (int, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.budget < 0 || len(p) <= f.budget {
			if f.budget >= 0 {
				f.budget -= len(p)
			}
			return write(p)
		}
		n, err := write(p[:f.budget])
		f.budget = 0
		if err == nil {
			err = syscall.ENOSPC
		}
		return n, err
	}
	o.Hooks.BeforeSync = func(string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.syncs {
			return syscall.EIO
		}
		return nil
	}
}

func (f *plFaults) set(budget int, syncs bool) {
	f.mu.Lock()
	f.budget, f.syncs = budget, syncs
	f.mu.Unlock()
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
	faults := &plFaults{budget: -1}
	// CompactBytes also bounds the subscription journal in each tail: small, it is
	// checkpointed and shed (rolls, tails replaced) often.
	opts := filestore.Options{SegmentBytes: 8 << 10, BufferSize: 2 << 10, CompactBytes: []int{4 << 10, 1 << 10, 300}[seed%3],
		Limits: &stores.LimitsSet{Global: stores.DefaultLimits(), Channels: map[string]stores.Limits{"b": {MaxMsgs: 50}}}}
	faults.install(&opts)
	disk.Install(&opts) // around the faults: a frozen disk fails before them
	st := openInit(t, dir, opts)
	m := &plModel{clients: map[string]stores.ClientInfo{}}
	for i, name := range plChans {
		if _, err := st.CreateChannel(name, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		m.next, m.tried = append(m.next, 1), append(m.tried, 1)
		m.subs = append(m.subs, map[uint64]*stores.RecoveredSub{})
	}
	for round := range 3 {
		if round > 0 {
			st = reopenAfterLoss(t, dir, opts, m)
		}
		powerLossRound(t, rng, st, m, disk, faults)
		if rng.IntN(2) == 0 {
			st.Close() // frozen: it writes nothing, and its errors are expected
		} else {
			filestore.Abandon(st)
		}
		if err := disk.PowerLoss(dir, rng); err != nil {
			t.Fatal(err)
		}
		faults.set(-1, false)
		disk.Thaw()
	}
	st = reopenAfterLoss(t, dir, opts, m)
	st.Close()
}

// powerLossRound runs random changes with pipelined commits on st, with faults now and
// then, and freezes the disk at a random moment, leaving in m.check what the next open must
// find.
func powerLossRound(t *testing.T, rng *rand.Rand, st *filestore.Store, m *plModel, disk *crashtest.Disk, faults *plFaults) {
	rs, err := st.Recover()
	if err != nil {
		t.Fatal(err)
	}
	var msgs []stores.MsgStore
	var syncers []stores.SplitSyncer // msgs a, subs a, msgs b, subs b, clients
	for _, rc := range rs.Channels {
		msgs = append(msgs, rc.Channel.Msgs)
		syncers = append(syncers, rc.Channel.Msgs.(stores.SplitSyncer), rc.Channel.Subs.(stores.SplitSyncer))
	}
	syncers = append(syncers, stores.SplitSyncer(st))
	var (
		mu       sync.Mutex
		frozen   bool
		armed    bool // a fault was armed this round: SyncFlushed may fail
		snaps    = []plState{m.state()}
		durable  = make([]int, len(syncers))
		jobs     = make(chan int, 1000)
		inflight sync.WaitGroup
		failed   = make([]bool, len(plChans)) // a channel's write failed: Rollback due
	)
	go func() { // the committer
		for k := range jobs {
			for c, sp := range syncers {
				err := sp.SyncFlushed()
				mu.Lock()
				switch {
				case frozen: // a sync returning after the power cut counts for nothing
				case err == nil:
					durable[c] = k
				case !armed:
					t.Errorf("SyncFlushed with no fault: %v", err)
				}
				mu.Unlock()
			}
			inflight.Done()
		}
	}()
	writeFailed := func(i int, err error) {
		t.Helper()
		if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EIO) {
			t.Fatalf("channel %s: %v", plChans[i], err)
		}
		failed[i] = true
	}
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
			if failed[i] {
				continue
			}
			batch := make([]stores.Msg, 1+rng.IntN(20))
			for j := range batch {
				batch[j] = plMsg(i, m.next[i]+uint64(j))
			}
			m.tried[i] = max(m.tried[i], m.next[i]+uint64(len(batch)))
			if err := msgs[i].Append(batch); err != nil {
				writeFailed(i, err)
				continue
			}
			m.next[i] += uint64(len(batch))
		case p < 45 || len(m.subs[i]) == 0:
			m.nextSub++
			s := stores.SubState{ID: m.nextSub, ClientID: fmt.Sprint("c", rng.IntN(5)), Inbox: fmt.Sprint("_INBOX.", m.nextSub),
				MaxInFlight: 100, User: fmt.Sprint("u", rng.IntN(3))}
			if err := rs.Channels[i].Channel.Subs.CreateSub(&s); err != nil {
				t.Fatal(err)
			}
			m.subs[i][s.ID] = &stores.RecoveredSub{State: s}
		case p < 50:
			id := slices.Sorted(maps.Keys(m.subs[i]))[rng.IntN(len(m.subs[i]))]
			if err := rs.Channels[i].Channel.Subs.DeleteSub(id); err != nil {
				t.Fatal(err)
			}
			delete(m.subs[i], id)
		case p < 55:
			id := slices.Sorted(maps.Keys(m.subs[i]))[rng.IntN(len(m.subs[i]))]
			s := m.subs[i][id].State
			s.IsClosed, s.Inbox = !s.IsClosed, fmt.Sprint("_INBOX.r", op)
			if err := rs.Channels[i].Channel.Subs.UpdateSub(&s); err != nil {
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
			if err := rs.Channels[i].Channel.Subs.Record(events); err != nil {
				t.Fatal(err)
			}
		default: // a group commit: the writer flushes, the committer syncs
			if faults.budget >= 0 || faults.syncs || slices.Contains(failed, true) {
				// The fault is over: once what was flushed is synced (or failed), roll the
				// failed channels back to exactly what their last SyncFlushed covered.
				faults.set(-1, false)
				inflight.Wait()
				for i := range plChans {
					if !failed[i] {
						continue
					}
					if err := msgs[i].Rollback(); err != nil {
						t.Fatalf("channel %s: Rollback: %v", plChans[i], err)
					}
					// Exactly what some successful SyncFlushed covered: at least the last one
					// that returned nil for a commit, perhaps a later Flush that one covered
					// too (a SyncFlushed covers every Flush before it was called).
					got := msgs[i].State().Last
					mu.Lock()
					ok := slices.ContainsFunc(snaps[durable[2*i]:], func(s plState) bool { return s.last[i] == got })
					want := snaps[durable[2*i]].last[i]
					mu.Unlock()
					if !ok {
						t.Fatalf("channel %s: Last %d after Rollback is no Flush's from the last durable one (%d) on", plChans[i], got, want)
					}
					m.next[i], failed[i] = got+1, false
				}
			}
			if rng.IntN(6) == 0 {
				mu.Lock()
				armed = true
				mu.Unlock()
				faults.set(rng.IntN(3000), rng.IntN(3) == 0)
			}
			for c, sp := range syncers {
				if err := sp.Flush(); err != nil && c%2 == 0 && c < 2*len(plChans) {
					writeFailed(c/2, err)
				}
			}
			mu.Lock()
			snaps = append(snaps, m.state())
			k := len(snaps) - 1
			mu.Unlock()
			inflight.Add(1)
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
	inflight.Wait()
	mu.Lock()
	m.check = plCheck{snaps: snaps, durable: durable, maxNext: slices.Clone(m.tried)}
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
	var got plState
	for i, rc := range rs.Channels {
		ms := rc.Channel.Msgs
		cs := ms.State()
		durable := m.check.snaps[m.check.durable[2*i]].last[i]
		if cs.Last < durable || cs.Last >= m.check.maxNext[i] {
			t.Fatalf("channel %s: Last %d, durable %d, appended up to %d", plChans[i], cs.Last, durable, m.check.maxNext[i]-1)
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
		m.tried[i] = max(m.tried[i], m.next[i])
		m.subs[i] = map[uint64]*stores.RecoveredSub{}
		for _, r := range rc.Subs {
			r := r
			m.subs[i][r.State.ID] = &r
			m.nextSub = max(m.nextSub, r.State.ID)
		}
	}
	got.clients = clientKeys(rs.Clients)
	for i := range plChans {
		from := m.check.durable[2*i+1]
		if !slices.ContainsFunc(m.check.snaps[from:], func(s plState) bool { return sameSubs(got.subs[i], s.subs[i]) }) {
			t.Fatalf("channel %s: subscriptions after the power cut are no Flush's from the last durable one on:\n got %+v\n durable %+v",
				plChans[i], got.subs[i], m.check.snaps[from].subs[i])
		}
	}
	from := m.check.durable[len(m.check.durable)-1]
	if !slices.ContainsFunc(m.check.snaps[from:], func(s plState) bool { return slices.Equal(got.clients, s.clients) }) {
		t.Fatalf("clients after the power cut are no Flush's from the last durable one on:\n got %v\n durable %v", got.clients, m.check.snaps[from].clients)
	}
	m.clients = map[string]stores.ClientInfo{}
	for _, c := range rs.Clients {
		m.clients[c.ID] = c
	}
	return st
}

// TestPowerLossExpiry cuts the power under a channel that MaxAge empties now and then and
// that resumes at a gap when empty, with small segments: after each cut the channel's Last
// is at least what the last successful Sync covered, and every message in [First, Last]
// loads.
func TestPowerLossExpiry(t *testing.T) {
	iters := 60
	if testing.Short() {
		iters = 10
	}
	for it := range iters {
		t.Run(fmt.Sprint(it), func(t *testing.T) { powerLossExpiryRun(t, uint64(it)) })
	}
}

func powerLossExpiryRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0xe4a1))
	dir := t.TempDir()
	disk := crashtest.New()
	faults := &plFaults{budget: -1}
	opts := filestore.Options{SegmentMsgs: 2 + rng.IntN(6), BufferSize: 512}
	faults.install(&opts)
	disk.Install(&opts)
	st := openInit(t, dir, opts)
	ch, err := st.CreateChannel("e", 1)
	if err != nil {
		t.Fatal(err)
	}
	next, tried, durable := uint64(1), uint64(1), uint64(0)
	for round := range 4 {
		ms := ch.Msgs
		ops := 10 + rng.IntN(60)
		// failed: a write or sync failed (a full disk, a failed fsync): the channel is
		// rolled back to what the last Sync covered.
		failed := func(err error) {
			t.Helper()
			if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EIO) {
				t.Fatalf("round %d: %v", round, err)
			}
			faults.set(-1, false)
			if err := ms.Rollback(); err != nil {
				t.Fatalf("round %d: Rollback: %v", round, err)
			}
			if cs := ms.State(); cs.Last != durable {
				t.Fatalf("round %d: state %+v after Rollback, durable Last %d", round, cs, durable)
			}
			next = durable + 1
		}
		for op := 0; op < ops; op++ {
			if rng.IntN(10) == 0 {
				faults.set(rng.IntN(400), rng.IntN(2) == 0)
			}
			switch p := rng.IntN(100); {
			case p < 45:
				if ms.State().Msgs == 0 && rng.IntN(2) == 0 {
					next += uint64(1 + rng.IntN(20)) // resume at a gap
				}
				batch := make([]stores.Msg, 1+rng.IntN(4))
				for j := range batch {
					batch[j] = plMsg(0, next+uint64(j))
				}
				tried = max(tried, next+uint64(len(batch)))
				if err := ms.Append(batch); err != nil {
					failed(err)
					continue
				}
				next += uint64(len(batch))
			case p < 60:
				ms.SetLimits(stores.Limits{MaxAge: 1})
				ms.Expire(1 << 62)
				ms.SetLimits(stores.Limits{})
			default:
				if err := ms.Sync(); err != nil {
					failed(err)
					continue
				}
				durable = next - 1
			}
		}
		disk.Freeze()
		faults.set(-1, false)
		filestore.Abandon(st)
		if err := disk.PowerLoss(dir, rng); err != nil {
			t.Fatal(err)
		}
		disk.Thaw()
		r, err := filestore.Verify(dir, filestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Problems {
			if !p.Repairable {
				t.Fatalf("round %d: Verify after the power cut: %s", round, p)
			}
		}
		if st, err = filestore.Open(dir, opts); err != nil {
			t.Fatalf("round %d: Open: %v", round, err)
		}
		if d := st.Damaged(); len(d) > 0 {
			t.Fatalf("round %d: damage after the power cut: %v", round, d)
		}
		rs, err := st.Recover()
		if err != nil || rs == nil || len(rs.Channels) != 1 {
			t.Fatalf("round %d: Recover = %+v, %v", round, rs, err)
		}
		ch = rs.Channels[0].Channel
		cs := ch.Msgs.State()
		if cs.Last < durable || cs.Last >= tried {
			t.Fatalf("round %d: state %+v, durable Last %d, appended up to %d", round, cs, durable, tried-1)
		}
		if cs.Msgs > 0 && cs.Msgs != cs.Last-cs.First+1 || cs.Msgs == 0 && cs.First != cs.Last+1 {
			t.Fatalf("round %d: state %+v", round, cs)
		}
		var msg stores.Msg
		for seq := cs.First; seq <= cs.Last; seq++ {
			want := plMsg(0, seq)
			if err := ch.Msgs.Load(seq, &msg); err != nil || string(msg.Data) != string(want.Data) || msg.Reply != want.Reply {
				t.Fatalf("round %d: Load(%d) = %v", round, seq, err)
			}
		}
		next, durable = cs.Last+1, cs.Last
	}
	st.Close()
}
