package boltstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/starling-io/starling/stores"
)

// Messages flushed, then removed by MaxAge before their SyncFlushed ran (with a message
// appended after the Flush still live), were acknowledged: a crash must keep their
// sequences, whether the channel had messages on disk or resumed at a gap.
func TestFlushedThenExpiredKeepsLast(t *testing.T) {
	for _, onDisk := range []bool{true, false} {
		t.Run(fmt.Sprint("onDisk=", onDisk), func(t *testing.T) {
			limits := &stores.LimitsSet{Global: stores.Limits{MaxAge: time.Second}}
			opts := Options{NoSync: true, Limits: limits}
			s, path, ch := openFoo(t, opts, 1)
			t0 := int64(time.Hour)
			at := func(seq uint64, tm int64) []stores.Msg {
				return []stores.Msg{{Seq: seq, Time: tm, Data: []byte("x")}}
			}
			first := uint64(10) // resumes at a gap on an empty channel
			if onDisk {
				for seq := uint64(1); seq <= 5; seq++ {
					appendOKMsgs(t, ch.Msgs, at(seq, t0))
				}
				if err := ch.Msgs.Sync(); err != nil {
					t.Fatal(err)
				}
				first = 6
			}
			appendOKMsgs(t, ch.Msgs, at(first, t0))
			appendOKMsgs(t, ch.Msgs, at(first+1, t0))
			ss := ch.Msgs.(stores.SplitSyncer)
			if err := ss.Flush(); err != nil {
				t.Fatal(err)
			}
			appendOKMsgs(t, ch.Msgs, at(first+2, t0+int64(time.Minute)))
			if n, _ := ch.Msgs.Expire(t0 + int64(time.Minute)); n == 0 {
				t.Fatal("nothing expired")
			}
			if err := ss.SyncFlushed(); err != nil {
				t.Fatal(err)
			}
			s.crash() // first+1 is acknowledged

			s = mustOpen(t, path, opts)
			defer s.Close()
			if got := s.channels["foo"].msgs.State(); got.Last < first+1 {
				t.Fatalf("after crash State = %+v: acknowledged %d lost", got, first+1)
			}
		})
	}
}

func appendOKMsgs(t *testing.T, ms stores.MsgStore, b []stores.Msg) {
	t.Helper()
	if err := ms.Append(b); err != nil {
		t.Fatal(err)
	}
}
