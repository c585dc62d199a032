package filestore

import (
	"testing"

	"github.com/starling-io/starling/stores"
)

// TestRemovalsDurableBeforeLaterAppends: a First moved by removals (an expiry pass, limits)
// reaches the disk ahead of the messages appended after them, so a store that recovers a
// later message recovers the removals too. The replicated state machine relies on it: a
// node replaying its raft log skips an expiry pass when its store holds a message appended
// after the pass (streaming, cmdExpire). Before, the marker naming the new First was
// written only at the next flush, behind records the buffered writer had already spilled:
// a kill -9 then recovered the later messages with the removed ones (First 1, Last 57).
func TestRemovalsDurableBeforeLaterAppends(t *testing.T) {
	dir := t.TempDir()
	s, ch := openWithFoo(t, dir, Options{})
	if err := ch.Msgs.Append(genMsgs(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	ch.Msgs.SetLimits(stores.Limits{MaxMsgs: 5})
	if removed, _ := ch.Msgs.Expire(1000); removed != 5 {
		t.Fatalf("removed %d, want 5", removed)
	}
	ch.Msgs.SetLimits(stores.Limits{})
	big := make([]stores.Msg, 50) // enough to spill the buffered writer to the OS
	for i := range big {
		big[i] = stores.Msg{Seq: uint64(11 + i), Time: int64(200 + i), Data: make([]byte, 64<<10)}
	}
	for i := range big {
		if err := ch.Msgs.Append(big[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	s.abandon() // kill -9: what reached the OS survives
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	got := st.Channels[0].Channel.Msgs.State()
	if got.Last > 10 && got.First < 6 {
		t.Fatalf("recovered %+v: messages appended after the removal of 1..5, and 1..5 with them", got)
	}
	t.Logf("recovered %+v", got)
}
