package boltstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
)

// splitOf returns x's Flush and SyncFlushed, or a no-op Flush and x.Sync for a store
// that does not split its Sync.
func splitOf(x interface{ Sync() error }) (flush, syncFlushed func() error) {
	if sp, ok := x.(stores.SplitSyncer); ok {
		return sp.Flush, sp.SyncFlushed
	}
	return func() error { return nil }, x.Sync
}

// lastTxID is the id of the last committed write transaction.
func lastTxID(tb testing.TB, db *bolt.DB) int {
	var id int
	if err := db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		tb.Fatal(err)
	}
	return id
}

// BenchmarkGroupCommit mimics the streaming engine's pipelined group commit, with real
// fsyncs: per pass, on each of chans channels the writer appends 16 messages of 128 B
// and flushes, records them sent (and the previous pass's acked) on the channel's
// subscription and flushes, and registers a client and flushes the store; another
// goroutine then calls SyncFlushed on every channel's messages and subscriptions and on
// the store, while the writer prepares the next pass. One op is one pass; tx/pass counts
// bolt write transactions (fsyncs).
func BenchmarkGroupCommit(b *testing.B) {
	for _, chans := range []int{1, 4} {
		b.Run(fmt.Sprintf("chans=%d", chans), func(b *testing.B) { benchGroupCommit(b, chans) })
	}
}

func benchGroupCommit(b *testing.B, nchans int) {
	s, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(stores.ServerInfo{ClusterID: "bench"}); err != nil {
		b.Fatal(err)
	}
	type chanFns struct {
		ch                *stores.Channel
		msgFlush, msgSync func() error
		subFlush, subSync func() error
		batch             []stores.Msg
		sent              []stores.SubEvent
	}
	chs := make([]*chanFns, nchans)
	data := make([]byte, 128)
	for i := range chs {
		ch, err := s.CreateChannel("bench."+strconv.Itoa(i), uint64(i+1))
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, ClientID: "c0", Inbox: "_INBOX.x", MaxInFlight: 1024}); err != nil {
			b.Fatal(err)
		}
		c := &chanFns{ch: ch, batch: make([]stores.Msg, 16)}
		c.msgFlush, c.msgSync = splitOf(ch.Msgs)
		c.subFlush, c.subSync = splitOf(ch.Subs)
		for j := range c.batch {
			c.batch[j].Data = data
		}
		chs[i] = c
	}
	cliFlush, cliSync := splitOf(s)
	todo, done := make(chan struct{}, 1), make(chan error, 1)
	go func() {
		for range todo {
			var err error
			for _, c := range chs {
				if e := c.msgSync(); e != nil {
					err = e
				}
				if e := c.subSync(); e != nil {
					err = e
				}
			}
			if e := cliSync(); e != nil {
				err = e
			}
			done <- err
		}
	}()
	defer close(todo)
	next := uint64(1)
	pass := func() {
		for _, c := range chs {
			c.sent = c.sent[:0]
			for j := range c.batch {
				c.batch[j].Seq, c.batch[j].Time = next+uint64(j), int64(next)+int64(j)
				c.sent = append(c.sent, stores.SubEvent{SubID: 1, Seq: next + uint64(j)})
				if next > 16 {
					c.sent = append(c.sent, stores.SubEvent{SubID: 1, Seq: next + uint64(j) - 16, Acked: true})
				}
			}
			if err := c.ch.Msgs.Append(c.batch); err != nil {
				b.Fatal(err)
			}
			if err := c.msgFlush(); err != nil {
				b.Fatal(err)
			}
			if err := c.ch.Subs.Record(c.sent); err != nil {
				b.Fatal(err)
			}
			if err := c.subFlush(); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.AddClient(stores.ClientInfo{ID: "c" + strconv.Itoa(int(next/16%8)), HbInbox: "_INBOX.hb"}); err != nil {
			b.Fatal(err)
		}
		if err := cliFlush(); err != nil {
			b.Fatal(err)
		}
		next += 16
	}
	pass()
	todo <- struct{}{}
	tx0 := lastTxID(b, s.db)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pass() // while the previous pass commits
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		todo <- struct{}{}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(lastTxID(b, s.db)-tx0)/float64(b.N), "tx/pass")
}

// BenchmarkCommitMsgs is the message half of a group commit at the sizes of stan-bench's
// rows: append n messages of size bytes to one channel, then Sync (one bolt transaction,
// fsynced). It reports the process's CPU time per message (getrusage: fsync and pwrite cost
// CPU, not only wall time), bolt's page writes per message and the file's bytes per
// message.
func BenchmarkCommitMsgs(b *testing.B) {
	for _, c := range []struct{ n, size int }{{150, 16}, {200, 1024}} {
		b.Run(fmt.Sprintf("%dx%dB", c.n, c.size), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "db")
			s, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ch, err := s.CreateChannel("foo", 1)
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]stores.Msg, c.n)
			data := make([]byte, c.size)
			seq := uint64(1)
			pass := func() {
				for i := range batch {
					batch[i] = stores.Msg{Seq: seq, Time: int64(seq), Data: data}
					seq++
				}
				if err := ch.Msgs.Append(batch); err != nil {
					b.Fatal(err)
				}
				if err := ch.Msgs.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			for range 10 {
				pass()
			}
			st0 := s.db.Stats()
			w0 := st0.TxStats.GetWrite()
			var r0, r1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
			b.ResetTimer()
			for range b.N {
				pass()
			}
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
			msgs := float64(b.N * c.n)
			cpu := r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano()
			b.ReportMetric(float64(cpu)/msgs, "cpu-ns/msg")
			st1 := s.db.Stats()
			b.ReportMetric(float64(st1.TxStats.GetWrite()-w0)/msgs, "writes/msg")
			if fi, err := os.Stat(path); err == nil {
				b.ReportMetric(float64(fi.Size())/float64(seq), "file-B/msg")
			}
		})
	}
}
