package streaming

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/stores"
)

// Catch-up after a snapshot. A snapshot holds no message bodies, so a node that installs
// one (it was away while the log was compacted) may lack messages the snapshot names: it
// fetches them from the other nodes over the route mesh before Restore returns. Every node
// of the group answers fetch requests for what its store holds, leader or not; only
// requests and replies that come over a route count (a client of the mesh can neither
// read a channel this way nor feed a node forged messages).

// A channel's fetch has no overall deadline: a large one over a slow link takes as long as
// it takes, and fails only after fetchTimeout without a new message (or when the node stops).
const (
	fetchTimeout   = 5 * time.Second // without progress (the fetch fails)
	fetchRetry     = time.Second     // a request that brought nothing is sent again
	fetchReplySize = 512 << 10       // bytes of messages per reply, at most
	fetchMaxUnread = 64              // unreadable messages a reply skips, at most (a failing disk)
)

// fetchTimes replace fetchTimeout and fetchRetry where set (tests shorten them).
type fetchTimes struct{ timeout, retry time.Duration }

func (f fetchTimes) get() (timeout, retry time.Duration) {
	return cmp.Or(f.timeout, fetchTimeout), cmp.Or(f.retry, fetchRetry)
}

// errFetch: the missing messages could not be fetched from any node.
var errFetch = errors.New("streaming: fetching missing messages from the other nodes")

// errNoAnswer: besides errFetch, a fetch that no node answered at all (none up or reachable).
var errNoAnswer = errors.New("no node answered the fetch")

// fetcher gets messages of a channel from another node: it calls got with consecutive
// batches starting at from (or later, when the others expired from meanwhile) up to to. It
// fails after fetchTimeout without a new message, or when ctx ends: nothing else bounds it.
type fetcher func(ctx context.Context, channel string, id, from, to uint64, got func(first uint64, msgs []stores.Msg) error) error

// fetchSubject is where the nodes of the group answer fetch requests.
func (s *Server) fetchSubject() string { return "_STARLING.raft." + s.opts.ClusterID + ".fetch" }

// routeOnly reports whether a message came over a route (from another server of the mesh).
// A bus that cannot tell accepts it.
func (s *Server) routeOnly(from uint64) bool {
	if r, ok := s.bus.(interface{ IsRoute(uint64) bool }); ok {
		return r.IsRoute(from)
	}
	return true
}

// serveFetch subscribes to fetch requests (replicated servers only).
//
// One answer at a time: catch-up is rare, and reads are bulky. A request to every node that
// arrives meanwhile is dropped (another node answers it, or the asking node asks again after
// fetchRetry); one that only this node may answer — naming it, or excluding the nodes that
// reported a message unreadable — waits for the answer under way (fetchQueue), else the
// asking node would wait for its retry while this node holds what it needs.
func (s *Server) serveFetch() error {
	var q fetchQueue
	sub, err := s.bus.Subscribe(s.fetchSubject(), "", func(m core.Msg) {
		if len(m.Reply) == 0 || !s.routeOnly(m.From) {
			return
		}
		req := &raftpb.FetchRequest{}
		if err := proto.Unmarshal(m.Data, req); err != nil || !s.asked(req) {
			return
		}
		reply := string(m.Reply) // here: m's bytes are core's again once the handler returns
		if q.add(req, reply) {
			go func() {
				for a := (fetchAsk{req, reply}); a.req != nil; a = q.next() {
					s.answerFetch(a.req, a.reply)
				}
			}()
		}
	})
	if err != nil {
		return fmt.Errorf("streaming: subscribe %s: %w", s.fetchSubject(), err)
	}
	s.mu.Lock()
	s.fetchSub = sub
	s.mu.Unlock()
	return nil
}

// fetchQueueMax bounds the requests waiting for an answer under way (one per fetch: a
// restoring node fetches one channel at a time).
const fetchQueueMax = 8

// fetchAsk is a fetch request and its reply subject.
type fetchAsk struct {
	req   *raftpb.FetchRequest
	reply string
}

// fetchQueue holds the fetch requests waiting while this node answers another.
type fetchQueue struct {
	mu      sync.Mutex
	busy    bool
	waiting []fetchAsk
}

// add reports whether the caller is to answer req now (nothing under way); otherwise it
// keeps req if only this node may answer it, replacing a request of the same fetch (its
// reply subject), which req supersedes.
func (q *fetchQueue) add(req *raftpb.FetchRequest, reply string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.busy {
		q.busy = true
		return true
	}
	if req.Node == "" && len(req.Exclude) == 0 {
		return false // to every node: another answers it, or the retry asks again
	}
	for i := range q.waiting {
		if q.waiting[i].reply == reply {
			q.waiting[i].req = req
			return false
		}
	}
	if len(q.waiting) < fetchQueueMax {
		q.waiting = append(q.waiting, fetchAsk{req, reply})
	}
	return false
}

// next returns the next waiting request, or none (nil req) once the node is free.
func (q *fetchQueue) next() fetchAsk {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) == 0 {
		q.busy = false
		return fetchAsk{}
	}
	a := q.waiting[0]
	q.waiting = slices.Delete(q.waiting, 0, 1)
	return a
}

// asked reports whether req is for this node: not naming another, not excluding this one.
func (s *Server) asked(req *raftpb.FetchRequest) bool {
	return (req.Node == "" || req.Node == s.id) && !slices.Contains(req.Exclude, s.id)
}

// answerFetch replies with the messages this node holds from req.From on, if it holds the
// channel (same ID) up to req.From at least; otherwise it stays silent for another to answer.
// A channel that holds none (every one expired) answers that its first is after its last,
// and so does one this node deleted since: an empty reply past its messages.
//
// A message it holds but cannot read (damaged on its disk: the store refuses it) it never
// sends: it logs it and, when the request allows skips, answers the ones after it, naming
// it in the reply's unread for the node asking to get it from another. An older node asking
// gets the messages before it only, as it always did. serveFetch passes only requests
// asked of this node (asked).
func (s *Server) answerFetch(req *raftpb.FetchRequest, reply string) {
	m := s.sm
	m.mu.Lock()
	ch := m.chans[req.Channel]
	gone := m.deletedSince(req.Channel, req.ChannelID, ch)
	m.mu.Unlock()
	if gone > req.To {
		s.replyFetch(req, reply, &raftpb.FetchReply{First: gone})
		return
	}
	if ch == nil || ch.ID != req.ChannelID {
		return
	}
	st := ch.Msgs.State()
	if st.Last < req.From {
		return
	}
	if st.Msgs == 0 {
		st.First = st.Last + 1
	}
	out := &raftpb.FetchReply{First: max(req.From, st.First)}
	var unreadErr error // the first read that failed (a damaged message, named by the store)
	size := 0
	budget := min(fetchReplySize, s.bus.MaxPayload()/2)
	for seq := out.First; seq <= min(req.To, st.Last); seq++ {
		var msg stores.Msg
		if err := ch.Msgs.Load(seq, &msg); err != nil {
			notFound := errors.Is(err, stores.ErrNotFound)
			if notFound && len(out.Msgs)+len(out.Unread) == 0 {
				out.First = seq + 1 // expired while we read
				continue
			}
			if notFound || errors.Is(err, stores.ErrClosed) {
				break
			}
			if unreadErr == nil {
				unreadErr = err
			}
			out.Unread = append(out.Unread, seq) // an older node asking gets it in the log only
			if !req.Skips || len(out.Unread) >= fetchMaxUnread {
				break
			}
			continue
		}
		if size > 0 && size+len(msg.Data)+len(msg.Reply)+32 > budget {
			break
		}
		size += len(msg.Data) + len(msg.Reply) + 32
		out.Msgs = append(out.Msgs, &raftpb.MsgProto{Sequence: msg.Seq, Timestamp: msg.Time, Reply: msg.Reply, Data: msg.Data})
	}
	if unreadErr != nil {
		s.log.Warn("cannot read stored messages another node fetches: the store needs repair",
			"channel", req.Channel, "seqs", out.Unread, "skipped", req.Skips, "err", unreadErr)
		if !req.Skips {
			out.Unread = nil
		}
	}
	s.replyFetch(req, reply, out)
}

// deletedSince returns, if this node deleted channel name of ID id (ch is what it holds by
// that name now), a sequence past every message that incarnation held; else 0. IDs grow
// in log order: a node that holds the name under a higher ID, or none and gave out the ID
// already, applied the incarnation's deletion. m.mu is held.
func (m *stateMachine) deletedSince(name string, id uint64, ch *stores.Channel) uint64 {
	switch {
	case ch != nil && ch.ID > id: // created again since: it continues after the deleted one
		st := ch.Msgs.State()
		if st.Msgs == 0 {
			return st.Last + 1
		}
		return st.First
	case ch == nil && id <= m.nextChanID && m.deleted[name] > 0:
		return m.deleted[name] + 1
	}
	return 0
}

// largePublisher is a Bus that can send a message past its max_payload to another server of
// the mesh (core.Conn.PublishOverMaxPayload).
type largePublisher interface {
	PublishOverMaxPayload(subject, reply string, data []byte) error
}

// replyFetch sends a fetch reply.
func (s *Server) replyFetch(req *raftpb.FetchRequest, reply string, out *raftpb.FetchReply) {
	out.Node, out.NodeName = s.id, cmp.Or(s.opts.NodeID, s.id)
	b, err := proto.Marshal(out)
	if err != nil {
		return
	}
	publish := func() error { return s.bus.Publish(reply, "", nil, b) }
	if big, ok := s.bus.(largePublisher); ok && len(b) > s.bus.MaxPayload() {
		// One message, which a leader with a larger max_payload accepted (max_payload
		// differs between the nodes, as during a rolling change of it): sent whole past this
		// node's max_payload, or the node asking would never catch up.
		publish = func() error { return big.PublishOverMaxPayload(reply, "", b) }
	}
	if err := publish(); err != nil {
		s.log.Warn("cannot answer a fetch request", "channel", req.Channel, "from", req.From, "err", err)
	}
	s.bus.Flush() // the route's writer sends it now, not with the engine's next batch
}

// fetch is the state machine's fetcher: requests over the bus until from..to arrived. Its
// requests share a reply subject of its own, so that the answers of another fetch (another
// channel, another restore) never reach it. Any answer of this fetch counts for what it brings
// past what arrived: one to an earlier request (a slow link, a slow read: it came after the
// next request went out, or from the slower of two nodes) gives its messages from the next
// needed on and nothing twice, and one that brings nothing new is dropped without asking
// again. Once a node answered, the next requests name it (FetchRequest.Node), so that only
// it reads and sends the messages. A request that brings nothing new — unanswered (the nodes
// that hold the messages drop requests while busy with another answer), or answered with
// nothing (a read that failed) — is sent again after fetchRetry, to every node; the fetch
// fails after fetchTimeout without progress.
//
// A node that cannot read a message (damaged on its disk) names it in its reply's unread and
// sends those after it, kept here until the gap is filled: the next request, sent at once,
// asks every node but the ones that reported it. Should none send it within fetchTimeout,
// the fetch fails naming the channel, the message and those nodes: nothing is skipped.
func (s *Server) fetch(ctx context.Context, channel string, id, from, to uint64, got func(uint64, []stores.Msg) error) (err error) {
	f := &fetchRun{s: s, channel: channel, id: id, from: from, to: to,
		inbox: "_STARLING.raft." + s.opts.ClusterID + ".fetched." + nuid(),
		ahead: map[uint64]stores.Msg{}, unread: map[uint64][]string{}, names: map[string]string{}, batch: []stores.Msg{}}
	replies := make(chan []byte, 4)
	sub, err := s.subscribeFetchReplies(f.inbox, replies)
	if err != nil {
		return fmt.Errorf("%w: %v", errFetch, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	start, first := time.Now(), from
	defer func() {
		if err != nil {
			s.log.Warn("could not fetch the messages a snapshot names from the other nodes", "channel", channel, "from", first, "to", to, "msgs", f.n, "last_sender", f.sender, "took", time.Since(start), "err", err)
			return
		}
		s.log.Info("fetched the messages a snapshot names from the other nodes", "channel", channel, "from", first, "to", to, "msgs", f.n, "last_sender", f.sender, "took", time.Since(start))
	}()
	if err := f.ask(); err != nil {
		return err
	}
	timeout, every := s.fetchTimes.get()
	retry := time.NewTimer(every)
	defer retry.Stop()
	f.progress = time.Now()
	for f.from <= to {
		var rep raftpb.FetchReply
		select {
		case data := <-replies:
			if proto.Unmarshal(data, &rep) != nil {
				continue // a damaged answer
			}
			f.answered = true
		case <-retry.C:
			if err := f.stalled(timeout); err != nil {
				return err
			}
			f.node = ""
			if err := f.ask(); err != nil {
				return err
			}
			retry.Reset(every)
			continue
		case <-ctx.Done():
			return fmt.Errorf("%w: %q from %d: %v", errFetch, channel, f.from, ctx.Err())
		}
		askNow, err := f.take(&rep, got)
		if err != nil {
			return err
		}
		if askNow {
			if err := f.ask(); err != nil {
				return err
			}
			retry.Reset(every)
		}
	}
	return nil
}

// subscribeFetchReplies passes the replies to inbox that come over a route to replies, as
// long as it has room.
func (s *Server) subscribeFetchReplies(inbox string, replies chan<- []byte) (Subscription, error) {
	return s.bus.Subscribe(inbox, "", func(m core.Msg) {
		if !s.routeOnly(m.From) {
			return
		}
		select {
		case replies <- append([]byte(nil), m.Data...):
		default: // the fetcher is behind: a request that brings nothing is sent again
		}
	})
}

// fetchRun is the state of one fetch (Server.fetch).
type fetchRun struct {
	s        *Server
	channel  string
	id, to   uint64
	from     uint64    // the next message needed
	inbox    string    // the fetch's reply subject
	node     string    // the one that answered last, "" to ask every one
	sender   string    // the node ID of the one that last sent messages, for the log
	n        int       // messages got
	answered bool      // a node answered (a reply decoded)
	progress time.Time // when the fetch last progressed (at first, when it first asked)
	// ahead holds the messages past from that came before from did (it was unread); unread,
	// for a message past from, the nodes (server IDs, which requests exclude) that could not
	// read it, and names their node IDs, for errors.
	ahead    map[uint64]stores.Msg
	unread   map[uint64][]string
	names    map[string]string
	batch    []stores.Msg // the consecutive messages from a reply, reused
	reported []uint64     // the sequences a reply newly named unread, reused
}

// ask sends a request for the messages from f.from on.
func (f *fetchRun) ask() error {
	req, _ := proto.Marshal(&raftpb.FetchRequest{Channel: f.channel, ChannelID: f.id, From: f.from, To: f.to, Node: f.node,
		Skips: true, Exclude: f.unread[f.from]})
	if err := f.s.bus.Publish(f.s.fetchSubject(), f.inbox, nil, req); err != nil {
		return fmt.Errorf("%w: %v", errFetch, err)
	}
	f.s.bus.Flush()
	return nil
}

// stalled fails the fetch once timeout passed without progress, naming the nodes that
// reported the next message unreadable, if any.
func (f *fetchRun) stalled(timeout time.Duration) error {
	if time.Since(f.progress) < timeout {
		return nil
	}
	if bad := f.unread[f.from]; len(bad) > 0 {
		return fmt.Errorf("%w: message %d of %q is damaged on %s (unreadable), and no other node sent it within %v",
			errFetch, f.from, f.channel, f.nodeNames(bad), timeout)
	}
	if !f.answered {
		return fmt.Errorf("%w: %w of %q from %d within %v", errFetch, errNoAnswer, f.channel, f.from, timeout)
	}
	return fmt.Errorf("%w: no node sent %q from %d within %v", errFetch, f.channel, f.from, timeout)
}

// nodeNames names the nodes of server IDs ids by their node IDs, with the server ID beside
// one that differs (an older node sends none: its server ID).
func (f *fetchRun) nodeNames(ids []string) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		name := cmp.Or(f.names[id], id)
		b.WriteString(name)
		if name != id {
			fmt.Fprintf(&b, " (server %s)", id)
		}
	}
	return b.String()
}

// take keeps what rep brings past f.from, passes got the messages now consecutive from it,
// and reports whether to ask for the next ones at once.
func (f *fetchRun) take(rep *raftpb.FetchReply, got func(uint64, []stores.Msg) error) (askNow bool, err error) {
	// Requests ask from what arrived so far, which only grows: an answer's first after
	// from means that node expired the messages before it (as one to the last request).
	// One before from is to an earlier request: only what follows from counts.
	if rep.First+uint64(len(rep.Msgs))+uint64(len(rep.Unread)) <= f.from {
		return false, nil // nothing new: another node may answer, else the retry asks again
	}
	if err := checkFetchReply(rep, f.to); err != nil {
		return false, fmt.Errorf("%w: %q: %v", errFetch, f.channel, err)
	}
	jumped := f.jump(rep.First)
	f.batch = f.batch[:0]
	next := f.from
	f.drain()
	f.keep(rep)
	if len(f.batch) > 0 || jumped {
		if err := got(next, f.batch); err != nil {
			return false, err
		}
		f.n += len(f.batch)
		f.progress, f.node, f.sender = time.Now(), rep.Node, cmp.Or(rep.NodeName, rep.Node)
	}
	if len(f.unread[f.from]) > 0 {
		f.node = "" // every node but those asks for it
	}
	return f.from <= f.to && (len(f.batch) > 0 || jumped || slices.Contains(f.reported, f.from)), nil
}

// jump moves f.from to first when that node expired the messages before it, forgetting
// what was kept before it, and reports whether it did.
func (f *fetchRun) jump(first uint64) bool {
	if first <= f.from {
		return false
	}
	f.from = first
	maps.DeleteFunc(f.ahead, func(seq uint64, _ stores.Msg) bool { return seq < f.from })
	maps.DeleteFunc(f.unread, func(seq uint64, _ []string) bool { return seq < f.from })
	return true
}

// keep adds rep's messages to the batch while they continue it — the usual case, without a
// map — and keeps those past a gap in ahead; then it records rep's unread sequences from
// f.from on.
func (f *fetchRun) keep(rep *raftpb.FetchReply) {
	for _, mp := range rep.Msgs {
		m := stores.Msg{Seq: mp.Sequence, Time: mp.Timestamp, Reply: mp.Reply, Data: mp.Data}
		switch {
		case m.Seq == f.from:
			f.next(m)
			f.drain()
		case m.Seq > f.from:
			f.ahead[m.Seq] = m
		}
	}
	f.reported = f.reported[:0]
	for _, seq := range rep.Unread {
		if seq >= f.from && !slices.Contains(f.unread[seq], rep.Node) {
			f.unread[seq] = append(f.unread[seq], rep.Node)
			if rep.NodeName != "" {
				f.names[rep.Node] = rep.NodeName
			}
			f.reported = append(f.reported, seq)
		}
	}
}

// next adds m, the message at f.from, to the batch.
func (f *fetchRun) next(m stores.Msg) {
	f.batch = append(f.batch, m)
	if len(f.unread) > 0 {
		delete(f.unread, f.from)
	}
	f.from++
}

// drain adds to the batch the messages kept ahead that now continue it.
func (f *fetchRun) drain() {
	for len(f.ahead) > 0 {
		m, ok := f.ahead[f.from]
		if !ok {
			return
		}
		delete(f.ahead, f.from)
		f.next(m)
	}
}

// checkFetchReply checks that a reply's messages and unread sequences are consecutive from
// its first, and none past to.
func checkFetchReply(rep *raftpb.FetchReply, to uint64) error {
	i, j := 0, 0
	for seq := rep.First; i < len(rep.Msgs) || j < len(rep.Unread); seq++ {
		switch {
		case seq > to:
			return fmt.Errorf("a reply past %d", to)
		case i < len(rep.Msgs) && rep.Msgs[i].Sequence == seq:
			i++
		case j < len(rep.Unread) && rep.Unread[j] == seq:
			j++
		default:
			return fmt.Errorf("a reply out of order at %d", seq)
		}
	}
	return nil
}
