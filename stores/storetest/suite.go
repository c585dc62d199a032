package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/starling-io/starling/stores"
)

// OpenFunc opens the store kept in dir: empty (default limits, never initialised) for a
// new dir; for a durable store, what a previous store on dir left.
type OpenFunc func(tb testing.TB, dir string) stores.Store

// Caps says what a store promises beyond the common behaviour.
type Caps struct {
	// Durable: the store survives Close and a new open on the same dir.
	Durable bool
	// Crash, if set, abandons a durable store as kill -9 would: it releases the store's
	// resources (files, locks) without writing or syncing anything, so that only what was
	// synced is guaranteed to be found by the next open. Nil skips the crash tests.
	Crash func(s stores.Store)
}

type suite struct {
	open OpenFunc
	caps Caps
}

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, open OpenFunc, caps Caps) {
	s := &suite{open: open, caps: caps}
	for _, c := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"AppendLoadState", s.testAppendLoadState},
		{"AppendErrors", s.testAppendErrors},
		{"SeqAtTime", s.testSeqAtTime},
		{"LimitsMsgs", s.testLimitsMsgs},
		{"LimitsBytes", s.testLimitsBytes},
		{"LimitsAge", s.testLimitsAge},
		{"LimitsPerChannel", s.testLimitsPerChannel},
		{"Channels", s.testChannels},
		{"ChannelRecreate", s.testChannelRecreate},
		{"ChannelAfter", s.testChannelAfter},
		{"CreateChannels", s.testCreateChannels},
		{"DeleteChannels", s.testDeleteChannels},
		{"Clients", s.testClients},
		{"ServerInfo", s.testServerInfo},
		{"Subs", s.testSubs},
		{"SubLimits", s.testSubLimits},
		{"Closed", s.testClosed},
		{"ConcurrentLoad", s.testConcurrentLoad},
		{"Crash", s.testCrash},
		{"SplitSync", s.testSplitSync},
		{"MetaSplitSync", func(t *testing.T) { s.testMetaSplitSync(t, false) }},
		{"MetaSplitSyncMsgs", func(t *testing.T) { s.testMetaSplitSync(t, true) }},
		{"Clean", s.testClean},
		{"RollbackHealthy", s.testRollbackHealthy},
		{"Model", s.testModel},
	} {
		t.Run(c.name, c.fn)
	}
}

// t0 is the time base of generated messages (unix ns, late 2023).
const t0 = int64(1_700_000_000_000_000_000)

// fresh opens a store on a new dir, initialised, closed at the end of the test.
func (s *suite) fresh(t testing.TB) (stores.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st := s.open(t, dir)
	t.Cleanup(func() { st.Close() })
	if err := st.Init(stores.ServerInfo{ClusterID: "test-cluster", NodeID: "n1"}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return st, dir
}

// reopen closes st and opens dir again with limits ls (nil: defaults).
func (s *suite) reopen(t testing.TB, st stores.Store, dir string, ls *stores.LimitsSet) stores.Store {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Fatalf("Close before reopen: %v", err)
	}
	st = s.open(t, dir)
	t.Cleanup(func() { st.Close() })
	if ls != nil {
		if err := st.SetLimits(ls); err != nil {
			t.Fatalf("SetLimits after reopen: %v", err)
		}
	}
	return st
}

// recovered returns the recovered channel name of st, failing if absent.
func recovered(t testing.TB, st stores.Store, name string) *stores.RecoveredChannel {
	t.Helper()
	rs, err := st.Recover()
	if err != nil || rs == nil {
		t.Fatalf("Recover = %v, %v", rs, err)
	}
	for _, rc := range rs.Channels {
		if rc.Channel.Name == name {
			return rc
		}
	}
	t.Fatalf("channel %q not recovered", name)
	return nil
}

func create(t testing.TB, st stores.Store, name string, id uint64) *stores.Channel {
	t.Helper()
	ch, err := st.CreateChannel(name, id)
	if err != nil {
		t.Fatalf("CreateChannel(%q): %v", name, err)
	}
	if ch.Name != name || ch.ID != id || ch.Msgs == nil || ch.Subs == nil {
		t.Fatalf("CreateChannel(%q, %d) = %+v", name, id, ch)
	}
	return ch
}

func setLimits(t testing.TB, st stores.Store, ls *stores.LimitsSet) {
	t.Helper()
	if err := st.SetLimits(ls); err != nil {
		t.Fatalf("SetLimits: %v", err)
	}
}

// genMsg is the message the suite stores at seq: its size and reply vary with seq, and its
// bytes identify it, so a Load of the wrong message or a torn copy is detected.
func genMsg(seq uint64, tm int64) stores.Msg {
	m := stores.Msg{Seq: seq, Time: tm, Data: make([]byte, int(seq*7%61))}
	for i := range m.Data {
		m.Data[i] = byte(seq + uint64(i)*31)
	}
	if seq%5 == 0 {
		m.Reply = "_INBOX.r" + strconv.FormatUint(seq, 10)
	}
	return m
}

// genBatch returns messages first..first+n-1 at times t0+seq×1µs.
func genBatch(first uint64, n int) []stores.Msg {
	b := make([]stores.Msg, n)
	for i := range b {
		seq := first + uint64(i)
		b[i] = genMsg(seq, t0+int64(seq)*1000)
	}
	return b
}

func appendOK(t testing.TB, ms stores.MsgStore, batch []stores.Msg) {
	t.Helper()
	if err := ms.Append(batch); err != nil {
		t.Fatalf("Append(%d msgs from %d): %v", len(batch), batch[0].Seq, err)
	}
}

func sameMsg(a, b *stores.Msg) bool {
	return a.Seq == b.Seq && a.Time == b.Time && a.Reply == b.Reply && string(a.Data) == string(b.Data)
}

func fmtMsg(m *stores.Msg) string {
	return fmt.Sprintf("{seq %d time %d reply %q data %d bytes}", m.Seq, m.Time, m.Reply, len(m.Data))
}

func checkLoad(t testing.TB, ms stores.MsgStore, want *stores.Msg) {
	t.Helper()
	var got stores.Msg
	if err := ms.Load(want.Seq, &got); err != nil {
		t.Fatalf("Load(%d): %v", want.Seq, err)
	}
	if !sameMsg(&got, want) {
		t.Fatalf("Load(%d) = %s, want %s", want.Seq, fmtMsg(&got), fmtMsg(want))
	}
}

func checkGone(t testing.TB, ms stores.MsgStore, seqs ...uint64) {
	t.Helper()
	var m stores.Msg
	for _, seq := range seqs {
		if err := ms.Load(seq, &m); !errors.Is(err, stores.ErrNotFound) {
			t.Fatalf("Load(%d) = %v, want ErrNotFound", seq, err)
		}
	}
}

func checkState(t testing.TB, ms stores.MsgStore, want stores.ChannelState) {
	t.Helper()
	if got := ms.State(); got != want {
		t.Fatalf("State = %+v, want %+v", got, want)
	}
}

// stateOf is the expected state of a channel holding msgs (nil: empty after last).
func stateOf(channel string, last uint64, msgs []stores.Msg) stores.ChannelState {
	st := stores.ChannelState{First: last + 1, Last: last}
	if len(msgs) > 0 {
		st.First = msgs[0].Seq
	}
	for i := range msgs {
		st.Msgs++
		st.Bytes += stores.MsgSize(channel, &msgs[i])
	}
	return st
}

func checkSubs(t testing.TB, ss stores.SubStore, want []stores.RecoveredSub) {
	t.Helper()
	got, err := ss.Subs()
	if err != nil {
		t.Fatalf("Subs: %v", err)
	}
	eq := len(got) == len(want)
	for i := 0; eq && i < len(got); i++ {
		eq = got[i].State == want[i].State && slices.Equal(got[i].Pending, want[i].Pending)
	}
	if !eq {
		t.Fatalf("Subs =\n %+v\nwant\n %+v", got, want)
	}
}
