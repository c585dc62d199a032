package streaming

import (
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
)

type opKind uint8

const (
	opConnect opKind = iota
	opPing
	opPublish
	opSubscribe
	opUnsubscribe
	opSubClose
	opClose
	opAck
	opHbReply
	opCheckReply
	opHbTick
	opRedeliver
	opCheckTimeout
	opSnapshot
	opExpire
	opIdle
	opLeadership // the log reported a leadership change
	opRetrySends // sends were refused for want of a lease (delivery.go)
	opRetryHeld  // deliveries held back by a backlogged destination (delivery.go)
)

// op is one unit of work for the engine: a request copied out of core's buffers, or a
// timer firing.
type op struct {
	kind    opKind
	subject string // the NATS subject it arrived on
	reply   string
	data    []byte
	chunk   *pubChunk // opPublish: where data was carved from (pubbuf.go)
	from    uint64    // publishing NATS connection
	sub     *subState
	ch      *channel
	token   string
	ack     ackKey         // opAck: the subscription, by the last token of its ack inbox
	seq     uint64         // opAck: the acknowledged sequence
	snap    chan *snapshot // opSnapshot: where the copy goes
	subsToo bool
	leader  bool // opLeadership: this replica leads now
}

// handler turns a core delivery into an op. It runs on the publisher's goroutine, so it
// only copies and queues; a full queue refuses the request rather than stalling core.
func (s *Server) handler(kind opKind) core.MsgHandler {
	return func(m core.Msg) {
		if len(m.Header) > 0 && len(m.Data) == 0 && (kind == opHbReply || kind == opCheckReply) {
			// A no-responders status: nobody listens on the client's heartbeat inbox any
			// more. Not an answer; for a duplicate check it settles the question at once.
			if kind == opCheckReply {
				subj := string(m.Subject)
				_ = s.q.Push(op{kind: opCheckTimeout, token: subj[strings.LastIndexByte(subj, '.')+1:]})
			}
			return
		}
		if kind == opAck {
			// Acks are decoded here, in place, so the hot ack path copies nothing.
			_, seq, err := decodeAck(m.Data)
			key, ok := parseAckKey(m.Subject)
			if err == nil && ok {
				_ = s.q.Push(op{kind: opAck, ack: key, seq: seq, from: m.From})
			}
			return
		}
		var o op
		if kind == opPublish {
			o = s.pubBufs.publishOp(m.Reply, m.Data, m.From)
		} else {
			o = op{kind: kind, from: m.From, reply: string(m.Reply), data: append([]byte(nil), m.Data...)}
		}
		switch kind {
		case opHbReply, opCheckReply:
			subj := string(m.Subject)
			o.token = subj[strings.LastIndexByte(subj, '.')+1:]
			o.subject = subj
		}
		// The queue is bounded by bytes as well as by count: 1 MiB publishes fill memory
		// long before a million of them are queued (audit finding 7).
		if err := s.q.PushBytes(o, int64(len(o.data)+len(o.reply)), s.opts.QueueBytes); err != nil {
			if kind == opPublish && o.reply != "" {
				// This runs on the publisher's goroutine: encode into memory of our own
				// (never the engine's scratch), with the GUID stan.go matches PubAcks by.
				s.warnOverloaded()
				var pm pubMsgView
				_ = decodePubMsg(o.data, &pm)
				_ = s.bus.Publish(o.reply, "", nil, appendPubAck(nil, pm.guid, errOverloaded))
				s.bus.Flush()
			}
		}
	}
}

func (s *Server) push(o op) { _ = s.q.Push(o) }

// warnOverloaded logs a full queue at most once per deliveryLogEvery; it runs on
// publishers' goroutines, hence the atomics.
func (s *Server) warnOverloaded() {
	n := s.refusedPubs.Add(1)
	now := time.Now().UnixNano()
	last := s.lastOverload.Load()
	if now-last < int64(deliveryLogEvery) || !s.lastOverload.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("streaming queue full, refusing publishes", "queued_bytes", s.q.Bytes(), "refused_so_far", n)
}

// run is the engine: drain the queue in batches, handle each op in order (runs of
// publishes are stored together), then flush core once.
func (s *Server) run() {
	defer close(s.done)
	var batch []op
	for {
		select {
		case <-s.q.Ready():
		case <-s.readyCommits():
		case <-s.metaC:
			s.metaC = nil // records waited metaDelay: commitMeta below commits them
		case <-s.stop:
			s.drainCommits()
			return
		}
		s.leaseAsked = false // asked again in this iteration if it sends (leaseHeld)
		s.scratch.resetSendClock()
		s.completeCommits()
		batch = s.q.Pop(batch[:0])
		s.maxPayload = s.bus.MaxPayload()
		for i := range batch {
			o := &batch[i]
			if o.kind == opPublish {
				s.queuePublish(o)
				if len(s.scratch.pubs) >= s.opts.IOBatchSize {
					s.flushPublishes()
				}
				continue
			}
			s.flushPublishes()
			s.process(o)
		}
		s.endBatch()
		s.bus.Flush()
		clear(batch)
	}
}

// endBatch proposes what the batch left: its last publishes, and the records of its
// deliveries and acks — standalone now; replicated they ride the next group's entry, or
// one of their own once nothing is in flight (commitMeta).
func (s *Server) endBatch() {
	s.flushPublishes()
	s.completeCommits() // an fsync that returned meanwhile: its PubAcks go in this flush
	if !s.replicated {
		s.flushSentAcks()
	}
	s.commitMeta()
	s.scratch.resetSendClock()
	s.flushStats()
}

// flushStats adds what the engine counted since the last call to the stats monitoring reads:
// once per iteration, not under the lock for every message.
func (s *Server) flushStats() {
	c := &s.scratch.stats
	if *c == (Stats{}) {
		return
	}
	s.mu.Lock()
	s.stats.InMsgs += c.InMsgs
	s.stats.InBytes += c.InBytes
	s.stats.OutMsgs += c.OutMsgs
	s.stats.OutBytes += c.OutBytes
	s.mu.Unlock()
	*c = Stats{}
}

func (s *Server) process(o *op) {
	switch o.kind {
	case opConnect, opPing, opSubscribe, opUnsubscribe, opSubClose, opClose:
		// Requests queued before the engine stepped down find no view: answering them would
		// tell a live client it is unknown (stan.go then closes the connection). A former
		// leader answers none; the clients' retries reach the new one.
		if !s.leader {
			return
		}
	}
	switch o.kind {
	case opConnect:
		s.processConnect(o)
	case opPing:
		s.processPing(o)
	case opSubscribe:
		s.processSubscribe(o)
	case opUnsubscribe, opSubClose:
		s.processUnsubscribe(o, o.kind == opSubClose)
	case opClose:
		s.processClose(o)
	case opAck:
		s.processAck(o)
	case opHbReply:
		s.processHbReply(o)
	case opCheckReply:
		s.processCheckReply(o, true)
	case opCheckTimeout:
		s.processCheckReply(o, false)
	case opHbTick:
		s.processHbTick()
	case opRedeliver:
		s.processRedeliver(o.sub)
	case opSnapshot:
		s.processSnapshot(o)
	case opExpire:
		s.processExpire(o.ch)
	case opIdle:
		s.processIdle(o.ch)
	case opLeadership:
		s.processLeadership(o.leader)
	case opRetrySends:
		s.processRetrySends()
	case opRetryHeld:
		s.processRetryHeld()
	}
}

// reply encodes m and publishes it to subject (no-op without a subject).
func (s *Server) reply(subject string, m proto.Message) {
	if subject == "" {
		return
	}
	b, err := proto.MarshalOptions{}.MarshalAppend(s.scratch.out[:0], m)
	if err != nil {
		s.log.Error("encoding a response failed", "err", err)
		return
	}
	s.scratch.out = b
	_ = s.bus.Publish(subject, "", nil, b)
}

// leadershipLoop hands the log's leadership changes to the engine as ops, so that the
// engine changes role between two batches, never in the middle of one.
func (s *Server) leadershipLoop() {
	for {
		select {
		case l := <-s.rlog.Leadership():
			s.push(op{kind: opLeadership, leader: l})
		case <-s.stop:
			return
		}
	}
}

// processLeadership records the role. Only the leader performs effects (replies, PubAcks,
// deliveries, heartbeats); standalone the log leads from the start and never stops.
func (s *Server) processLeadership(leader bool) {
	if leader == s.leader {
		return
	}
	if leader {
		if err := s.takeOver(); err != nil {
			// Still a follower for the engine: the log will report again.
			s.log.Error("cannot take over as streaming leader", "err", err)
			s.stepDown()
			return
		}
	} else {
		s.stepDown()
	}
	s.leader = leader
	s.leaderChanges.Add(1)
	s.log.Info("streaming leadership changed", "leader", leader)
}

// heartbeatLoop ticks client heartbeats: one ticker for all clients, never one per client.
func (s *Server) heartbeatLoop() {
	t := time.NewTicker(s.opts.HBInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.push(op{kind: opHbTick})
		case <-s.stop:
			return
		}
	}
}
