package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/stores/filestore/crashtest"
	"github.com/starling-io/starling/streaming"
)

// TestStanManyNewChannelsAtOnce: stan.go clients create 240 channels at once on the file
// store — 40 by subscriptions made concurrently, 200 by four clients publishing
// asynchronously to 50 new channels each. Every publish gets its PubAck without error,
// every subscriber its messages in order, and a power cut right after the last PubAck
// loses no channel and no acknowledged message. The creations of an engine iteration are
// one commit of meta.log: before, every new channel fsynced meta.log once (at least 240
// fsyncs here); now a few dozen at most.
func TestStanManyNewChannelsAtOnce(t *testing.T) {
	dir := t.TempDir()
	disk := crashtest.New()
	var metaSyncs atomic.Int64
	l := stores.DefaultLimits()
	l.MaxChannels = 1000
	limits := &stores.LimitsSet{Global: l}
	opts := filestore.Options{Limits: limits, Hooks: filestore.Hooks{BeforeSync: func(p string) error {
		if filepath.Base(p) == "meta.log" {
			metaSyncs.Add(1)
		}
		return nil
	}}}
	disk.Install(&opts)
	store, err := filestore.Open(dir, opts)
	must(t, err)
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	must(t, err)
	must(t, cs.Start())
	conn, err := cs.Connect("_STARLING-test")
	must(t, err)
	st, err := streaming.New(streaming.InProcess(conn), store, raftlog.Standalone, streaming.Options{ClusterID: "test-cluster", Limits: limits})
	must(t, err)
	must(t, st.Start())
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			_ = st.Shutdown()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = cs.Shutdown(ctx)
		})
	}
	t.Cleanup(stop)
	srv := &stanServer{core: cs, st: st, url: cs.ClientURL()}

	const subChans, pubs, perPub, perChan = 40, 4, 50, 3
	subConn := stanConnect(t, srv, "subscriber")
	var pubConns []stan.Conn
	for p := range pubs {
		pubConns = append(pubConns, stanConnect(t, srv, fmt.Sprint("publisher-", p)))
	}
	before := metaSyncs.Load()

	// Subscriptions on 40 new channels, all at once.
	cols := make([]*collector, subChans)
	var wg sync.WaitGroup
	errs := make(chan error, subChans+pubs)
	for i := range subChans {
		cols[i] = newCollector()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := subConn.Subscribe(fmt.Sprint("sub.", i), cols[i].handler); err != nil {
				errs <- fmt.Errorf("subscribe sub.%d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	// Each publisher: perChan messages to each of its perPub new channels, and one to each
	// subscribed channel, asynchronously, all PubAcks awaited.
	for p, sc := range pubConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var acked sync.WaitGroup
			var failed atomic.Value
			ack := func(guid string, err error) {
				if err != nil {
					failed.Store(fmt.Errorf("PubAck %s: %w", guid, err))
				}
				acked.Done()
			}
			for m := range perChan {
				for i := range perPub {
					acked.Add(1)
					if _, err := sc.PublishAsync(fmt.Sprintf("pub.%d.%d", p, i), []byte(fmt.Sprint("m", m+1)), ack); err != nil {
						errs <- err
						acked.Done()
					}
				}
			}
			for i := range subChans {
				acked.Add(1)
				if _, err := sc.PublishAsync(fmt.Sprint("sub.", i), []byte(fmt.Sprint("p", p)), ack); err != nil {
					errs <- err
					acked.Done()
				}
			}
			done := make(chan struct{})
			go func() { acked.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				errs <- fmt.Errorf("publisher %d: PubAcks missing after 30s", p)
			}
			if e, _ := failed.Load().(error); e != nil {
				errs <- e
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	creationSyncs := metaSyncs.Load() - before
	for i, c := range cols {
		if got := c.seqs(t, pubs, 10*time.Second); !equalSeqs(got, seqRange(1, pubs)) {
			t.Fatalf("sub.%d delivered %v", i, got)
		}
	}
	t.Logf("240 channels: meta.log fsynced %d times", creationSyncs)
	if creationSyncs > (subChans+pubs*perPub)/4 {
		t.Errorf("meta.log fsynced %d times for %d new channels: the creations were not batched", creationSyncs, subChans+pubs*perPub)
	}

	// The power goes: every channel and every acknowledged message is still there.
	disk.Freeze()
	stop()
	must(t, disk.PowerLoss(dir, rand.New(rand.NewPCG(1, 2))))
	disk.Thaw()
	re, err := filestore.Open(dir, filestore.Options{})
	must(t, err)
	defer re.Close()
	rs, err := re.Recover()
	must(t, err)
	last := map[string]uint64{}
	for _, rc := range rs.Channels {
		last[rc.Channel.Name] = rc.Channel.Msgs.State().Last
	}
	for i := range subChans {
		if n := last[fmt.Sprint("sub.", i)]; n != pubs {
			t.Fatalf("after the power cut sub.%d holds %d messages, want %d", i, n, pubs)
		}
	}
	for p := range pubs {
		for i := range perPub {
			if n := last[fmt.Sprintf("pub.%d.%d", p, i)]; n != perChan {
				t.Fatalf("after the power cut pub.%d.%d holds %d messages, want %d", p, i, n, perChan)
			}
		}
	}
}

// TestStanClusterManyNewChannelsAtOnce: the same over three nodes: two stan.go clients
// publish asynchronously to 100 new channels each at once; every PubAck comes back without
// error, a subscriber replays every channel, and the nodes converge (each replica applied the
// batched creations as the leader did).
func TestStanClusterManyNewChannelsAtOnce(t *testing.T) {
	c := startStanCluster(t, "--max_channels", "0")
	lead := c.leader(10 * time.Second)
	const pubs, perPub, perChan = 2, 100, 2
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	start := time.Now()
	for p := range pubs {
		sc := stanOn(t, lead, fmt.Sprint("cluster-publisher-", p), stan.PubAckWait(30*time.Second))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var acked sync.WaitGroup
			var failed atomic.Value
			for m := range perChan {
				for i := range perPub {
					acked.Add(1)
					_, err := sc.PublishAsync(fmt.Sprintf("cpub.%d.%d", p, i), []byte(fmt.Sprint("m", m+1)), func(guid string, err error) {
						if err != nil {
							failed.Store(fmt.Errorf("PubAck %s: %w", guid, err))
						}
						acked.Done()
					})
					if err != nil {
						failed.Store(err)
						acked.Done()
					}
				}
			}
			acked.Wait()
			if e, _ := failed.Load().(error); e != nil {
				errs <- e
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d channels, %d messages acknowledged in %v", pubs*perPub, pubs*perPub*perChan, time.Since(start).Round(time.Millisecond))
	sub := stanOn(t, lead, "cluster-subscriber")
	for p := range pubs {
		for i := range perPub {
			col := newCollector()
			s, err := sub.Subscribe(fmt.Sprintf("cpub.%d.%d", p, i), col.handler, stan.DeliverAllAvailable())
			must(t, err)
			if got := col.seqs(t, perChan, 10*time.Second); !equalSeqs(got, seqRange(1, perChan)) {
				t.Fatalf("cpub.%d.%d delivered %v", p, i, got)
			}
			must(t, s.Unsubscribe())
		}
	}
	c.converged(20 * time.Second)
}
