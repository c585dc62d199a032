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
	opHeal       // a broken channel's store is tried again (durable.go)
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
	leader  bool  // opLeadership: this replica leads now
	at      int64 // opHbReply: when it arrived (engineClock.mono): a backlog must not make it late
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
				_ = s.pushOp(op{kind: opAck, ack: key, seq: seq, from: m.From}, 0, m.Batched)
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
			o.at = s.clock.monoNow()
		}
		// The queue is bounded by bytes as well as by count: 1 MiB publishes fill memory
		// long before a million of them are queued (audit finding 7).
		if err := s.pushOp(o, int64(len(o.data)+len(o.reply)), m.Batched); err != nil {
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

// push queues an op of the server's own (a timer's, a leadership change), past the queue's
// limits: each such op clears the mark its timer set (sub.timerAt, heldTimer, ageAt, …),
// so a dropped one would leave that work waiting for good. There is one per timer at most.
func (s *Server) push(o op) { s.q.PushAlways(o) }

// pushOp queues a request's op. A batched delivery (core.Msg.Batched) queues it quietly:
// endOfBuffer, at the end of the publisher's read buffer, wakes the engine or runs it.
func (s *Server) pushOp(o op, n int64, batched bool) error {
	if batched {
		return s.q.PushQuiet(o, n, s.opts.QueueBytes)
	}
	return s.q.PushBytes(o, n, s.opts.QueueBytes)
}

// inlineMax is the longest queue endOfBuffer handles itself; a longer one is throughput
// work, which the engine's goroutine does beside the publishers' readers.
const inlineMax = 8

// syncedAtOnce: every commit group completes as it is made — standalone, on a store that
// never splits its Sync (memory).
func (s *Server) syncedAtOnce() bool { return !s.replicated && !s.splitMeta }

// syncedInlineMax is the longest queue endOfBuffer handles itself where every commit
// group completes as it is made (syncedAtOnce: the memory store, standalone). There the
// throughput work has nothing to overlap with (no fsync, no log round), and handing it to
// the engine's goroutine costs a goroutine hand-off per read buffer, often a thread's
// wake-up. A bound all the same: a read buffer holds at most a few hundred requests, a
// longer queue has other clients' requests in it too.
const syncedInlineMax = 1024

// endOfBuffer runs on a client's read goroutine at the end of a read buffer that queued
// requests quietly. If the engine is idle (no iteration running, no commit group in
// flight) and only a few ops wait, it runs the engine's iteration right here: a request
// and its reply (a synchronous publish and its PubAck, an ack and the next message) then
// cross no goroutine, where waking the engine and then a writer cost two thread wake-ups,
// each spinning the other core's scheduler. Otherwise it wakes the engine. The engine's
// state is owned by whoever holds runMu.
func (s *Server) endOfBuffer(idle func() bool) {
	n := s.q.Len()
	if n == 0 {
		return // drained already
	}
	// Commit groups in flight mean a client keeps requests in flight (an async publisher):
	// that is throughput work, and the engine's goroutine batches it better — unless
	// groups complete as they are made, and there is nothing to batch for, or the store
	// coalesces its commits (bolt): the committer then waits for the publishers' window
	// anyway, and the hand-off to the engine's goroutine cost a wake-up per read buffer
	// (~7 per commit at 1 KiB) for no overlap. Such an iteration starts only with the
	// pipeline at most half full (roomFor), so a reader does not wait for the committer
	// (waitCommits) to make room.
	c := s.commit
	limit := inlineMax
	if s.syncedAtOnce() || !c.coalesceOff {
		limit = syncedInlineMax
	}
	before := 0
	if n > limit || !s.lockInline(func() bool {
		before = c.groups
		return before == 0 || !c.coalesceOff && c.roomFor(n, s.q.Bytes())
	}) {
		s.q.Wake()
		return
	}
	s.inlineBatch = s.q.Pop(s.inlineBatch[:0])
	c.quietWake = before == 0
	s.iterate(s.inlineBatch)
	c.quietWake = false
	clear(s.inlineBatch)
	pass := before == 0 && c.groups > 0 // enqueued quietly by this iteration
	s.unlockInline()
	switch {
	case pass && idle():
		// Its fsync, outside runMu, then its completion: a synchronous publish on the file
		// store wakes no other goroutine either. Only for a client that sent nothing more:
		// one with publishes in flight would otherwise have them read one fsync at a time.
		c.passHere()
	case pass:
		signal(c.wake)
	}
}

// completeInline runs on the committer's goroutine once it has synced a pass of msgs
// messages: if the pass is small, the engine idle and no other group waits for an fsync,
// it completes the pass right there, so a synchronous publisher's PubAck leaves without
// waking the engine's goroutine (and then a writer's). A large pass is throughput work:
// the committer goes back to its fsyncs while the engine completes it — unless the store
// coalesces its commits (bolt): the next pass waits for the publishers' window, which
// refills only once this pass's PubAcks are out, so the hand-off overlapped nothing. It
// reports whether it did; if not, the engine is signalled.
func (s *Server) completeInline(msgs int) bool {
	// The engine enqueues only while holding runMu: nothing queued now means this
	// iteration cannot wait for the committer (waitCommits), which is this goroutine.
	if msgs > inlineMax && s.commit.coalesceOff || !s.lockInline(func() bool { return s.commit.queuedLen() == 0 }) {
		return false
	}
	s.iterate(nil)
	s.inlineDone++
	s.unlockInline()
	return true
}

// lockInline takes the engine for an iteration off its goroutine: runMu free, the engine
// running, and ok (checked under runMu) true. It reports whether it holds runMu.
func (s *Server) lockInline(ok func() bool) bool {
	if s.batchBus == nil || !s.runMu.TryLock() {
		return false
	}
	if !s.engineUp || s.stopped || !ok() {
		s.runMu.Unlock()
		return false
	}
	return true
}

// unlockInline releases runMu after an iteration off the engine's goroutine. That goroutine
// waits on the metadata timer it saw when it last went idle: if the iteration armed it,
// the goroutine is told to look again.
func (s *Server) unlockInline() {
	kick := s.metaC != nil && s.metaSeen == nil
	s.runMu.Unlock()
	if kick {
		signal(s.kick)
	}
}

// warnOverloaded logs a full queue at most once per deliveryLogEvery; it runs on
// publishers' goroutines, hence the atomics.
func (s *Server) warnOverloaded() {
	n := s.refusedPubs.Add(1)
	now := s.clock.monoNow() // a step of the system clock back would silence it until caught up
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
		s.runMu.Lock()
		metaC := s.metaC
		s.metaSeen = metaC
		s.runMu.Unlock()
		fired, readied := false, false
		select {
		case <-s.q.Ready():
		case <-s.readyCommits():
			readied = true
		case <-metaC: // records waited metaDelay: commitMeta commits them
			fired = true
		case <-s.kick:
		case <-s.stop:
			s.runMu.Lock()
			s.stopped = true
			s.drainCommits()
			s.runMu.Unlock()
			return
		}
		if !s.runMu.TryLock() {
			if readied {
				// An inline iteration holds the engine, and may wait in waitCommits for
				// the completion this goroutine just took the signal of: hand it back.
				signal(s.commit.ready)
			}
			s.runMu.Lock()
		}
		if fired && s.metaC != nil {
			s.metaFired = true
		}
		batch = s.q.Pop(batch[:0])
		s.iterate(batch)
		s.runMu.Unlock()
		clear(batch)
	}
}

// iterate is one pass of the engine over a batch of ops, on the engine's goroutine or inline
// on a client's read goroutine (endOfBuffer). Caller holds runMu.
func (s *Server) iterate(batch []op) {
	s.leaseAsked = false // asked again in this iteration if it sends (leaseHeld)
	s.scratch.resetSendClock()
	s.completeCommits()
	s.maxPayload = s.bus.MaxPayload()
	for i := range batch {
		o := &batch[i]
		s.ahead = batch[i+1:]
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
	s.ahead = nil
	s.endBatch()
	if s.batchBus != nil {
		// The outputs of up to four destinations (an async publisher's PubAcks, ~110
		// bytes each; a subscriber's deliveries) leave in one non-blocking write each
		// from here, wherever the iteration runs; with more destinations every writer is
		// woken, as by Flush (core.Conn.FlushInPlace says why). On the engine's
		// goroutine a plain Flush woke the publisher's writer for every batch: a goroutine
		// hand-off, often a parked thread's futex wake-up, and a write accounted as a
		// system call, whose first after an idle spell sets Go's sysmon polling every 20 µs
		// again. Measured (perf stat, memory store, 1 KiB, no subscriber, per message):
		// accounted system calls 0.010 → 0.003, sysmon's sleeps 0.021 → 0.011, context
		// switches 0.051 → 0.036.
		s.batchBus.FlushInPlace()
	} else {
		s.bus.Flush()
	}
}

// endBatch proposes what the batch left: its last publishes, and the records of its
// deliveries and acks — standalone now; replicated they ride the next group's entry, or
// one of their own once nothing is in flight (commitMeta).
func (s *Server) endBatch() {
	s.flushResumes()
	clear(s.createFailed) // refusals are the batch's: the next one tries again
	s.flushPublishes()
	s.completeCommits() // an fsync that returned meanwhile: its PubAcks go in this flush
	if !s.replicated {
		s.flushSentAcks()
	}
	s.commitMeta()
	s.pollSentAcks()
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
	if o.kind != opAck && len(s.resumes) > 0 {
		s.flushResumes() // before anything but another ack sees the subscriptions
	}
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
	case opHeal:
		s.processHeal(o.ch)
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

// takeOverRetry is how long a leader whose takeover failed (a barrier that timed out, a
// store error) waits before it tries again.
const takeOverRetry = time.Second

// termer is a log that tells its current term (raftlog.Node); Local never loses leadership.
type termer interface{ Term() uint64 }

// termChanged reports whether the log's term moved since this engine took over.
func (s *Server) termChanged() bool {
	t, ok := s.rlog.(termer)
	return ok && t.Term() != s.leaderTerm
}

// processLeadership records the role. Only the leader performs effects (replies, PubAcks,
// deliveries, heartbeats); standalone the log leads from the start and never stops.
func (s *Server) processLeadership(leader bool) {
	if !leader {
		s.clearTakeOverFailures() // before the check below: a failed takeover left s.leader false
	}
	// Lost and regained between two reports (the log keeps only the newest value): the
	// view is of the old term, and the other leader's commands are not in it.
	regained := leader && s.leader && s.termChanged()
	if leader == s.leader && !regained {
		return
	}
	if leader {
		if regained {
			s.log.Warn("streaming leadership lost and regained unseen; taking over again")
			s.stepDown()
			s.leader = false
		}
		if err := s.takeOver(); err != nil {
			// Still a follower for the engine. The log reports only changes, so while it
			// goes on leading nothing else would try again.
			s.stepDown()
			s.takeOverFailed(err)
			return
		}
		s.clearTakeOverFailures()
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
