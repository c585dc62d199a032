package streaming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/boltstore"
)

// damagedPayload is message seq's body in the damage tests: unique in the store's file.
// Its tail makes five of them fill a fetch reply.
func damagedPayload(seq uint64) []byte {
	return append([]byte(fmt.Sprintf("payload-%04d-of-ch", seq)), bytes.Repeat([]byte{'.'}, 100<<10)...)
}

// damagedMark is what of damagedPayload(seq) is unique.
func damagedMark(seq uint64) []byte { return damagedPayload(seq)[:18] }

// boltPeer serves fetches (as node id, on bus) of channel "ch" holding messages 1..n in a
// bolt store, whose copy of each of damaged is made to fail its checksum on disk.
func boltPeer(t *testing.T, bus Bus, id string, n uint64, damaged ...uint64) *Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), id+".db")
	store, err := boltstore.Open(path, boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Init(stores.ServerInfo{ClusterID: "replica"}); err != nil {
		t.Fatal(err)
	}
	m := newStateMachine(store)
	msgs := msgRun(1, n)
	for i := range msgs {
		msgs[i].Data = damagedPayload(msgs[i].Seq)
	}
	applyCmds(t, m, &cmdCreateChannel{name: "ch", id: 1}, &cmdPublish{chanRef: chanRef{"ch", 1}, msgs: msgs})
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if len(damaged) > 0 {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, seq := range damaged {
			p := damagedMark(seq)
			i := bytes.Index(data, p)
			if i < 0 || bytes.Contains(data[i+1:], p) {
				t.Fatalf("%q is not in the file exactly once", p)
			}
			data[i+len(p)-1] ^= 1
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	store, err = boltstore.Open(path, boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	m = newStateMachine(store)
	if _, err := m.recover(); err != nil {
		t.Fatal(err)
	}
	peer := fetchServer(bus, nil)
	peer.sm, peer.id = m, id
	if err := peer.serveFetch(); err != nil {
		t.Fatal(err)
	}
	return peer
}

// fetchChecked fetches "ch" 1..to and fails t unless every message arrived once, in order,
// intact.
func fetchChecked(t *testing.T, s *Server, to uint64) error {
	t.Helper()
	next := uint64(1)
	return s.fetch(context.Background(), "ch", 1, 1, to, func(first uint64, msgs []stores.Msg) error {
		if first != next {
			return fmt.Errorf("batch at %d, want %d", first, next)
		}
		for i, m := range msgs {
			if m.Seq != first+uint64(i) || !bytes.Equal(m.Data, damagedPayload(m.Seq)) {
				return fmt.Errorf("message %d: %q", m.Seq, m.Data)
			}
		}
		next += uint64(len(msgs))
		return nil
	})
}

// slowReplies is a node's bus whose fetch replies take delay to arrive (a farther node: the
// route queues them, the node is free to answer the next request meanwhile, not busy when
// the asking node sends it).
type slowReplies struct {
	*meshBus
	delay time.Duration
}

func (b slowReplies) Publish(subject, reply string, hdr, data []byte) error {
	if strings.Contains(subject, ".fetched.") {
		data = bytes.Clone(data)
		time.AfterFunc(b.delay, func() { _ = b.meshBus.Publish(subject, reply, hdr, data) })
		return nil
	}
	return b.meshBus.Publish(subject, reply, hdr, data)
}

// TestFetchGetsADamagedMessageFromAnother: the node that answers first (and so is asked for
// the rest) holds message 8 damaged on disk; another, slower node holds it intact. The fetch
// takes 8 from that node at once and ends with every message intact. Before, the first node
// answered 6..7 and then nothing, the fetcher waited for fetchRetry (3 s here) before asking
// every node again: one retry interval lost per damaged message, and nothing in any log.
func TestFetchGetsADamagedMessageFromAnother(t *testing.T) {
	bus := &meshBus{}
	boltPeer(t, slowReplies{bus, 5 * time.Millisecond}, "p1", 20, 8)
	boltPeer(t, slowReplies{bus, 50 * time.Millisecond}, "p2", 20)
	s := fetchServer(bus, nil)
	s.fetchTimes = fetchTimes{timeout: 20 * time.Second, retry: 10 * time.Second}
	start := time.Now()
	if err := fetchChecked(t, s, 20); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the fetch took %v: it waited for a retry", took)
	}
}

// TestFetchFailsAtAMessageDamagedEverywhere: every node that holds message 8 holds it
// damaged. The fetch stores 1..7, never 8 nor any after it, and fails naming the channel, the
// message and the nodes. Before, it failed as if no node had answered ("no node sent "ch"
// from 8"), and neither node logged why.
func TestFetchFailsAtAMessageDamagedEverywhere(t *testing.T) {
	bus := &meshBus{}
	boltPeer(t, slowReplies{bus, 5 * time.Millisecond}, "p1", 20, 8)
	boltPeer(t, slowReplies{bus, 5 * time.Millisecond}, "p2", 20, 8, 12)
	s := fetchServer(bus, nil)
	s.fetchTimes = fetchTimes{timeout: 2 * time.Second, retry: 100 * time.Millisecond}
	var last uint64
	err := s.fetch(context.Background(), "ch", 1, 1, 20, func(first uint64, msgs []stores.Msg) error {
		if first != last+1 {
			return fmt.Errorf("batch at %d after %d", first, last)
		}
		last += uint64(len(msgs))
		return nil
	})
	if last != 7 {
		t.Errorf("stored up to %d, want 7", last)
	}
	if !errors.Is(err, errFetch) || !strings.Contains(err.Error(), `message 8 of "ch" is damaged on p1, p2`) &&
		!strings.Contains(err.Error(), `message 8 of "ch" is damaged on p2, p1`) {
		t.Fatalf("fetch = %v, want message 8 of ch named damaged on p1 and p2", err)
	}
}

// TestFetchWithAnOlderNode: an older node (no skips, no exclude) holding message 8 damaged
// answers as it always did: 6..7, then nothing from 8, and every request, even one that
// excludes it. The fetch still gets 8 from the node holding it intact (asked again after
// fetchRetry, as before). And a request of an older node (no skips) gets from a node with 8
// damaged a reply that stops before it, as before: consecutive messages only.
func TestFetchWithAnOlderNode(t *testing.T) {
	bus := &meshBus{}
	fetchPeer(t, bus, func(req *raftpb.FetchRequest) *raftpb.FetchReply {
		rep := &raftpb.FetchReply{First: req.From, Node: "old"}
		for seq := req.From; seq <= min(req.To, req.From+4) && seq != 8; seq++ {
			rep.Msgs = append(rep.Msgs, &raftpb.MsgProto{Sequence: seq, Timestamp: int64(seq), Data: damagedPayload(seq)})
		}
		return rep
	})
	boltPeer(t, slowReplies{bus, 20 * time.Millisecond}, "p2", 20)
	s := fetchServer(bus, nil)
	s.fetchTimes = fetchTimes{timeout: 2 * time.Second, retry: 100 * time.Millisecond}
	if err := fetchChecked(t, s, 20); err != nil {
		t.Fatal(err)
	}

	bus = &meshBus{}
	boltPeer(t, slowReplies{bus, 5 * time.Millisecond}, "p1", 20, 8)
	replies := make(chan []byte, 1)
	_, _ = bus.Subscribe("reply", "", func(m core.Msg) { replies <- m.Data })
	req, _ := proto.Marshal(&raftpb.FetchRequest{Channel: "ch", ChannelID: 1, From: 6, To: 20})
	_ = bus.Publish("_STARLING.raft.c.fetch", "reply", nil, req)
	var rep raftpb.FetchReply
	select {
	case b := <-replies:
		if err := proto.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reply")
	}
	if rep.First != 6 || len(rep.Msgs) != 2 || rep.Msgs[1].Sequence != 7 || len(rep.Unread) != 0 {
		t.Fatalf("reply to an older node: first %d, %d messages, unread %v", rep.First, len(rep.Msgs), rep.Unread)
	}
}

// TestRestorePastADamagedMessage: a follower installs a snapshot naming messages 1..20 of
// "ch" it lacks. The node answering first holds message 8 damaged on disk. When another node
// holds it intact, the follower ends with all 20, each intact; when none does, the restore
// fails naming the channel and message 8, the follower holding 1..7: nothing skipped, nothing
// damaged stored.
func TestRestorePastADamagedMessage(t *testing.T) {
	for _, intact := range []bool{true, false} {
		t.Run(fmt.Sprintf("intact elsewhere %v", intact), func(t *testing.T) {
			bus := &meshBus{}
			first := boltPeer(t, slowReplies{bus, 5 * time.Millisecond}, "p1", 20, 8)
			if intact {
				boltPeer(t, slowReplies{bus, 20 * time.Millisecond}, "p2", 20)
			} else {
				boltPeer(t, slowReplies{bus, 20 * time.Millisecond}, "p2", 20, 8)
			}
			snap := persist(t, first.sm)
			follower, store := newReplica(t)
			s := fetchServer(bus, nil)
			s.sm, s.id = follower, "f"
			s.fetchTimes = fetchTimes{timeout: 2 * time.Second, retry: 100 * time.Millisecond}
			follower.fetch = s.fetch
			err := follower.Restore(bytes.NewReader(snap))
			rs, rerr := store.Recover()
			if rerr != nil {
				t.Fatal(rerr)
			}
			var ch *stores.Channel
			for _, rc := range rs.Channels {
				if rc.Channel.Name == "ch" {
					ch = rc.Channel
				}
			}
			want := uint64(20)
			if !intact {
				want = 7
				if err == nil || !strings.Contains(err.Error(), `"ch"`) || !strings.Contains(err.Error(), "message 8") ||
					!strings.Contains(err.Error(), "damaged") {
					t.Fatalf("Restore = %v, want an error naming ch and its damaged message 8", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if ch == nil {
				t.Fatal("no channel ch")
			}
			if st := ch.Msgs.State(); st.First != 1 || st.Last != want {
				t.Fatalf("the follower holds %d..%d, want 1..%d", st.First, st.Last, want)
			}
			for seq := uint64(1); seq <= want; seq++ {
				var m stores.Msg
				if err := ch.Msgs.Load(seq, &m); err != nil || !bytes.Equal(m.Data, damagedPayload(seq)) {
					t.Fatalf("message %d: %.20q %v", seq, m.Data, err)
				}
			}
		})
	}
}

// TestFetchErrorsNameNodeIDs: the nodes holding message 8 damaged are named in the fetch's
// error by their cluster node IDs (cluster_node_id, what the operator configured and looks
// for), with the server ID beside, and the log says which node last sent messages. Before,
// the error named only the random server IDs ("damaged on SRV1, SRV2"), which appear in no
// configuration.
func TestFetchErrorsNameNodeIDs(t *testing.T) {
	bus := &meshBus{}
	p1 := boltPeer(t, slowReplies{bus, 5 * time.Millisecond}, "SRV1", 20, 8)
	p2 := boltPeer(t, slowReplies{bus, 5 * time.Millisecond}, "SRV2", 20, 8)
	p1.opts.NodeID, p2.opts.NodeID = "n1", "n2"
	var logs bytes.Buffer
	s := fetchServer(bus, slog.New(slog.NewTextHandler(&logs, nil)))
	s.fetchTimes = fetchTimes{timeout: time.Second, retry: 100 * time.Millisecond}
	err := fetchChecked(t, s, 20)
	if !errors.Is(err, errFetch) || !strings.Contains(err.Error(), `damaged on n1 (server SRV1), n2 (server SRV2)`) &&
		!strings.Contains(err.Error(), `damaged on n2 (server SRV2), n1 (server SRV1)`) {
		t.Fatalf("fetch = %v, want message 8 named damaged on n1 and n2 (their server IDs beside)", err)
	}
	if l := logs.String(); !strings.Contains(l, "last_sender=n1") && !strings.Contains(l, "last_sender=n2") {
		t.Fatalf("the log names no node ID of a node that sent messages:\n%s", l)
	}
}

// busyReplies is a node's bus whose fetch replies take delay to send (a slow read, a full
// route): the node stays busy with an answer for that long.
type busyReplies struct {
	*meshBus
	delay time.Duration
}

func (b busyReplies) Publish(subject, reply string, hdr, data []byte) error {
	if strings.Contains(subject, ".fetched.") {
		time.Sleep(b.delay)
	}
	return b.meshBus.Publish(subject, reply, hdr, data)
}

// TestFetchBusyNodeAnswersAnExcludeRequest: p1 answers first and reports message 8
// unreadable; p2, which holds it intact, is still busy sending its answer to the first
// request (200 ms) when the request excluding p1 arrives. p2 answers it once done, and the
// fetch ends well before its retry (10 s here, far from the 1-2 s it takes under -race on a
// loaded machine). Before, p2 dropped the request while busy and the fetch waited for the
// retry (3.65 s with a 3 s retry, instead of 0.82 s).
func TestFetchBusyNodeAnswersAnExcludeRequest(t *testing.T) {
	bus := &meshBus{}
	boltPeer(t, slowReplies{bus, 5 * time.Millisecond}, "p1", 20, 8)
	boltPeer(t, busyReplies{bus, 200 * time.Millisecond}, "p2", 20)
	s := fetchServer(bus, nil)
	s.fetchTimes = fetchTimes{timeout: 20 * time.Second, retry: 10 * time.Second}
	start := time.Now()
	if err := fetchChecked(t, s, 20); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("the fetch took %v", took)
	if took > 6*time.Second {
		t.Fatalf("the fetch took %v: the busy node dropped the request excluding p1, and the fetch waited for its retry", took)
	}
}

// reusedReply is a node's bus that, as core's read loop does with a route's buffer, reuses a
// delivered message's bytes once its handler returns (core.Msg is valid only during the call).
type reusedReply struct{ *meshBus }

func (b reusedReply) Subscribe(subject, queue string, h core.MsgHandler) (Subscription, error) {
	return b.meshBus.Subscribe(subject, queue, func(m core.Msg) {
		buf := []byte(string(m.Reply))
		m.Reply = buf
		h(m)
		for i := range buf {
			buf[i] = 'X' // the next read
		}
	})
}

// TestFetchAnswerKeepsItsReplySubject: the answering node replies to the subject the request
// named, though core reuses the request's bytes once the handler returns. bbd183c read it in
// the answering goroutine, after the handler: the reply went to "XXXX…" (or, as fetch inboxes
// have one length, to another node's fetch, which would take one channel's messages for
// another's), and the fetch failed for want of an answer.
func TestFetchAnswerKeepsItsReplySubject(t *testing.T) {
	bus := &meshBus{}
	boltPeer(t, reusedReply{bus}, "p1", 20)
	s := fetchServer(bus, nil)
	s.fetchTimes = fetchTimes{timeout: 2 * time.Second, retry: 200 * time.Millisecond}
	if err := fetchChecked(t, s, 20); err != nil {
		t.Fatal(err)
	}
}
