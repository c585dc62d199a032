package streaming

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// pendingPub is a validated publish waiting for its batch to be stored.
type pendingPub struct {
	ch    *channel
	reply string
	guid  []byte // aliases the request, which the engine owns
	msg   stores.Msg
	chunk *pubChunk // the request's copy, released with the group (pubbuf.go)
}

// scratch is engine-owned memory reused across batches.
type scratch struct {
	pubs      []pendingPub
	touched   []*channel
	out       []byte
	enc       []byte // a proposal's encoded publish commands (proposeGroup)
	ackEnc    []byte // and its sent/ack commands (appendSentAcks)
	bodies    []int  // the publish commands' encoded sizes (proposeGroup)
	pub       pubMsgView
	load      stores.Msg
	sentChans []*channel        // channels with sent/ack events waiting (channel.events)
	sentVals  []cmdSentAck      // their commands (appendSentAcks)
	sentCmds  []raftlog.Command // and their proposal (flushSentAcks)
	dirty     []*stores.Channel // SubStores to flush (flushMetaInto)
	batchCh   *channel          // the channel whose batch is being delivered
	batch     []stores.Msg      // its messages, for those limits evicted at once
	clock     time.Time         // the time sends stamp standalone (sendTime)
	mono      int64             // and the engine's deadline time then (engineClock)
	clockUses int               // sends stamped with it so far; 0: read the clock again
	stats     Stats             // counted since the last flushStats
	sentBytes uint64            // MsgProto bytes sent, ever (heldBack paces its looks by them)
	run       sendRun           // first deliveries to one inbox, published together (sendrun.go)
	acks      pubAckRun         // a group's PubAcks to one reply subject, published together
}

// sendClockUses is how many sends share one reading of the clock, standalone.
const sendClockUses = 64

// sendTime is the time a send stamps: for its lease check, and as the engine's deadline
// time (engineClock.mono) for its ack-wait deadline. Standalone, the clock is read once per
// sendClockUses sends and again at every engine iteration (resetSendClock): deadlines are
// seconds apart, and a reading costs ~60 ns on this VM, 7 % of the server's CPU in a
// replay. Replicated, every send reads it: the lease check must see a pause (SIGSTOP) the
// moment the process resumes.
func (sc *scratch) sendTime(replicated bool, c *engineClock) (time.Time, int64) {
	if replicated {
		t := time.Now()
		return t, c.mono(t)
	}
	if sc.clockUses == 0 {
		sc.clock = time.Now()
		sc.mono = c.mono(sc.clock)
	}
	if sc.clockUses++; sc.clockUses == sendClockUses {
		sc.clockUses = 0
	}
	return sc.clock, sc.mono
}

// resetSendClock makes the next send read the clock: at every engine iteration, so that no
// stamp is older than the iteration that sends.
func (sc *scratch) resetSendClock() { sc.clockUses = 0 }

func (s *Server) sendPubAck(reply string, guid []byte, errText string) {
	if reply == "" {
		return
	}
	s.scratch.out = appendPubAck(s.scratch.out[:0], guid, errText)
	_ = s.bus.Publish(reply, "", nil, s.scratch.out)
}

// pubAckRun collects consecutive PubAcks to one reply subject — an async publisher's ack
// inbox, the same for all its messages — published in one call (runBus) when the subject
// changes or the group's PubAcks end (flushPubAcks). One Publish each cost a subject check,
// a match, a lock of the publisher's connection and a wake-up mark per PubAck (~11 % of the
// server's CPU in an async 1 KiB publish run with no subscriber), now paid once per run.
// Nothing else is published between addPubAck and flushPubAcks, so each connection gets
// what it got before, in the same order.
type pubAckRun struct {
	reply string
	data  []byte // the PubAcks
	ends  []int  // where each ends in data
}

// addPubAck is sendPubAck for a run of them (completeGroup): on a bus that takes runs, the
// PubAck joins the run, which goes out at flushPubAcks or when the reply subject changes.
func (s *Server) addPubAck(reply string, guid []byte, errText string) {
	r := &s.scratch.acks
	if s.runBus == nil || reply == "" {
		s.sendPubAck(reply, guid, errText)
		return
	}
	if len(r.ends) > 0 && r.reply != reply {
		s.flushPubAcks()
	}
	r.reply = reply
	r.data = appendPubAck(r.data, guid, errText)
	r.ends = append(r.ends, len(r.data))
}

// flushPubAcks publishes the PubAcks collected by addPubAck. A run refused for max_payload
// (a reload lowered it below a PubAck, some tens of bytes) is published one by one, so that
// each fails or not as it did before runs; any other error drops them, as sendPubAck does.
func (s *Server) flushPubAcks() {
	r := &s.scratch.acks
	if len(r.ends) == 0 {
		return
	}
	if err := s.runBus.PublishRun(r.reply, r.data, r.ends); errors.Is(err, core.ErrMaxPayload) {
		prev := 0
		for _, e := range r.ends {
			_ = s.bus.Publish(r.reply, "", nil, r.data[prev:e])
			prev = e
		}
	}
	r.reply = ""
	r.ends = r.ends[:0]
	r.data = r.data[:0]
	if cap(r.data) > maxScratchEnc {
		r.data = nil
	}
}

// queuePublish validates one PubMsg and adds it to the current batch (spec §6).
func (s *Server) queuePublish(o *op) {
	pm := &s.scratch.pub
	if err := decodePubMsg(o.data, pm); err != nil {
		s.log.Debug("invalid publish request", "err", err)
		s.sendPubAck(o.reply, nil, errInvalidPubReq)
		return
	}
	if !pubValid(pm) {
		s.log.Debug("invalid publish request", "guid", string(pm.guid), "channel", string(pm.subject))
		s.sendPubAck(o.reply, pm.guid, errInvalidPubReq)
		return
	}
	c := s.pubClient(pm)
	if c == nil {
		s.log.Debug("publish from an unknown client", "client_id", string(pm.clientID))
		s.sendPubAck(o.reply, pm.guid, errInvalidPubReq)
		return
	}
	if o.from != c.nats {
		switch s.bind(c, o) {
		case bindHeld:
			return
		case bindRefused:
			s.refusedLog(&s.pubLog, "publish refused", "client_id", c.id, "cause", s.bindRefusal(c, o.from))
			s.sendPubAck(o.reply, pm.guid, errInvalidPubReq)
			return
		}
	}
	if msgProtoMax(len(pm.subject), len(pm.reply), len(pm.data)) > s.maxPayload {
		// It would be acknowledged and then never delivered: its MsgProto (redelivered,
		// with a 10-byte sequence) would not fit max_payload (audit finding 6).
		s.refusedLog(&s.pubLog, "publish refused", "client_id", c.id, "channel", string(pm.subject), "cause", "message too large to deliver", "bytes", len(pm.data))
		s.sendPubAck(o.reply, pm.guid, errMsgTooLarge)
		return
	}
	ch := s.channels[string(pm.subject)]
	if ch == nil {
		var errText string
		if ch, errText = s.lookupOrCreateChannel(string(pm.subject)); ch == nil {
			s.sendPubAck(o.reply, pm.guid, errText)
			return
		}
	}
	var reply string
	if len(pm.reply) > 0 {
		reply = string(pm.reply)
	}
	s.scratch.pubs = append(s.scratch.pubs, pendingPub{ch: ch, reply: o.reply, guid: pm.guid,
		msg: stores.Msg{Reply: reply, Data: pm.data}, chunk: o.chunk}) // views into o.data, which we own
	s.scratch.stats.InMsgs++
	s.scratch.stats.InBytes += uint64(len(pm.data))
}

// pubValid reports whether a decoded PubMsg is well formed: a GUID, a valid channel, and a
// reply that is UTF-8 (it travels in MsgProto's string field, which Marshal refuses
// otherwise: a catch-up fetch of the channel would fail at that message).
func pubValid(pm *pubMsgView) bool {
	return len(pm.guid) > 0 && validChannel(string(pm.subject)) && utf8.Valid(pm.reply)
}

// pubClient returns the client a PubMsg names (nil: unknown).
func (s *Server) pubClient(pm *pubMsgView) *client {
	if len(pm.connID) > 0 {
		return s.byConnID[string(pm.connID)]
	}
	return s.clients[string(pm.clientID)]
}

// flushPublishes stores the batch channel by channel (one proposal each) as one commit
// group, which completes once it is durable (finish): then its messages are delivered and
// its PubAcks sent, in arrival order. A store that splits its Sync is only flushed here and
// the committer's goroutine fsyncs it while the engine goes on (commit.go); any other is
// synced now and the group completes at once. Either way a PubAck follows the sync that
// covers its message, and nothing is delivered before it.
func (s *Server) flushPublishes() {
	pubs := s.scratch.pubs
	if len(pubs) == 0 {
		return
	}
	for i := 0; i < len(s.scratch.pubs); i++ {
		if ch := s.scratch.pubs[i].ch; ch.broken && !s.heal(ch) {
			s.refuseBroken(ch)
			i = -1 // rare: scan the shortened batch again
		}
	}
	pubs = s.scratch.pubs
	if len(pubs) == 0 {
		return
	}
	start := time.Now()
	mono := s.clock.mono(start)
	touched := s.scratch.touched[:0]
	g := s.commit.group()
	g.start = start
	// Sequences and timestamps are the proposer's: each channel's batch continues where
	// the previous proposal left it, whether or not that one is applied yet.
	for i := 0; i < len(pubs); i++ {
		ch := pubs[i].ch
		if containsChan(touched, ch) {
			continue
		}
		touched = append(touched, ch)
		from := len(g.msgs)
		last := ch.assigned
		t := s.clock.chanTime(&ch.clock, start)
		for j := i; j < len(pubs); j++ {
			if pubs[j].ch == ch {
				last++
				m := pubs[j].msg
				m.Seq, m.Time = last, t
				g.msgs = append(g.msgs, m)
				g.bytes += len(m.Data) + len(m.Reply)
			}
		}
		g.n += len(g.msgs) - from
		g.spans = append(g.spans, commitSpan{from, len(g.msgs)})
		g.chans = append(g.chans, commitChan{ch: ch})
		ch.assigned, ch.clock = last, chanClock{t, mono}
	}
	clear(touched)
	s.scratch.touched = touched[:0]
	s.proposeGroup(g)
	select {
	case <-g.fut.Done(): // standalone: applied already
		s.settle(g)
	default: // replicated: the group completes once the log has committed and applied it
		g.inflight = true
	}
	if g.needsSync() {
		// Acks and changes made before these publishes ride their fsync. The subscription
		// records go first: a store that keeps them beside the messages (the file store's
		// journal) then hands both to the OS in one write. Other stores commit them at the
		// end of the engine's batch (commitMeta).
		s.flushMetaInto(g)
		s.flushGroupChans(g)
	} else if s.replicated {
		// Replies to commands proposed before these publishes complete with them, first: the
		// log's commit of the group covers theirs.
		s.takeWaiting(g)
	}
	g.pubs, s.scratch.pubs = pubs, g.pubs[:0] // the group takes the batch
	s.finish(g)
}

// publishPieceBytes bounds a replicated publish command's messages: a channel's batch is
// proposed as commands of about this size, so that the log can spread a large batch over
// several entries (it splits only between commands; raftlog's DESIGN.md, "Entry size").
const publishPieceBytes = 4 << 10

// proposeGroup proposes the batches of g's channels as one batch of commands: standalone one
// publish command per channel, replicated one per piece of publishPieceBytes, naming the
// messages in g (which live until g is recycled).
func (s *Server) proposeGroup(g *commitGroup) {
	for i := range g.chans {
		ref := refOf(g.chans[i].ch)
		msgs := g.msgs[g.spans[i].from:g.spans[i].to]
		g.chans[i].cmds.from = len(g.cmds)
		for len(msgs) > 0 {
			n := len(msgs)
			if s.replicated {
				n = publishPiece(msgs)
			}
			g.cmds = append(g.cmds, cmdPublish{chanRef: ref, msgs: msgs[:n]})
			msgs = msgs[n:]
		}
		g.chans[i].cmds.to = len(g.cmds)
	}
	// Replicated, the commands are encoded back to back into one buffer of the engine's,
	// reused for the next proposal: the log copies them into its entries and keeps nothing
	// of cs once ProposeBatch returns (raftlog.Log). A buffer of their own each was a fresh
	// allocation per 4 KiB of payload, a fifth of a loaded leader's page faults at 1 KiB.
	// Its size is known first, so that it grows at most once: a batch of large messages
	// must not be copied again at every doubling.
	enc := s.scratch.enc[:0]
	if s.replicated {
		bodies := s.scratch.bodies[:0]
		total := 0
		for i := range g.cmds {
			n := publishBody(&g.cmds[i])
			bodies = append(bodies, n)
			total += publishSize(n)
		}
		enc = slices.Grow(enc, total)
		for i := range g.cmds {
			from := len(enc)
			enc = appendPublish(enc, &g.cmds[i], bodies[i])
			g.rcmds = append(g.rcmds, raftlog.Command{Value: &g.cmds[i], Data: enc[from:len(enc):len(enc)]})
		}
		s.scratch.bodies = bodies
	} else {
		for i := range g.cmds {
			g.rcmds = append(g.rcmds, raftlog.Command{Value: &g.cmds[i]})
		}
	}
	if s.replicated {
		g.rcmds = s.appendSentAcks(g.rcmds)
	}
	g.fut = s.rlog.ProposeBatch(context.Background(), g.rcmds)
	for i := range g.rcmds {
		g.rcmds[i].Data = nil // the buffer is reused: nothing may read it through g
	}
	if cap(enc) <= maxScratchEnc {
		s.scratch.enc = enc[:0]
	}
}

// maxScratchEnc bounds the encoding buffer the engine keeps between proposals.
const maxScratchEnc = 4 << 20

// settle reads the outcome of g's proposal, once resolved: a channel whose batch was not
// applied fails its PubAcks and is broken until healed (its proposer's sequence ran ahead).
// Standalone, an applied batch is durable once its store syncs: now, or — a store that
// splits its Sync — by the committer; replicated, the log's commit made it durable.
func (s *Server) settle(g *commitGroup) {
	_, refusal := g.fut.Wait()
	for i := range g.chans {
		cc := &g.chans[i]
		ch := cc.ch
		err := refusal
		for j := cc.cmds.from; j < cc.cmds.to && err == nil; j++ {
			if r, ok := g.fut.ResultAt(j).(error); ok && r != nil {
				err = r
			}
		}
		if err == nil && !s.replicated {
			if sp, ok := ch.store.Msgs.(stores.SplitSyncer); ok && s.started && !g.inflight {
				cc.sp = sp // flushed by flushGroupChans, fsynced by the committer
				continue   // stored once flushed
			}
			err = ch.store.Msgs.Sync()
		}
		if err == nil {
			s.stored(ch, g.msgs[g.spans[i].from].Time)
			continue
		}
		s.log.Error("storing messages failed", "channel", ch.name, "err", err)
		s.markBroken(ch)
		cc.err = err
	}
}

// flushGroupChans flushes the batches appended to g's channels, noting the channels whose
// flush failed.
func (s *Server) flushGroupChans(g *commitGroup) {
	for i := range g.chans {
		cc := &g.chans[i]
		if cc.sp == nil {
			continue
		}
		if err := cc.sp.Flush(); err != nil {
			s.log.Error("storing messages failed", "channel", cc.ch.name, "err", err)
			s.markBroken(cc.ch)
			cc.sp, cc.err = nil, err
			continue
		}
		s.stored(cc.ch, g.msgs[g.spans[i].from].Time)
	}
}

// refuseBroken answers the queued publishes to ch, whose store is still failing, with an
// error PubAck and drops them from the batch.
func (s *Server) refuseBroken(ch *channel) {
	pubs := s.scratch.pubs
	kept := pubs[:0]
	for _, p := range pubs {
		if p.ch == ch {
			s.sendPubAck(p.reply, p.guid, errStoreFailing)
			continue
		}
		kept = append(kept, p)
	}
	clear(pubs[len(kept):])
	s.scratch.pubs = kept
}

// stored notes that a batch whose first message is stamped first is in ch's store.
func (s *Server) stored(ch *channel, first int64) {
	s.touch(ch)
	s.armAge(ch, ch.limits.ExpiresAt(first))
}

// publishPiece returns how many of msgs, at least one, make a command of about
// publishPieceBytes.
func publishPiece(msgs []stores.Msg) int {
	size := 0
	for i := range msgs {
		size += len(msgs[i].Data) + len(msgs[i].Reply) + 24 // the tags, the sequence, the time
		if size > publishPieceBytes && i > 0 {
			return i
		}
	}
	return len(msgs)
}

func lowerName(name string) string { return strings.ToLower(name) }

func containsChan(list []*channel, ch *channel) bool {
	for _, c := range list {
		if c == ch {
			return true
		}
	}
	return false
}

func (s *Server) addChannel(st *stores.Channel) *channel {
	ch := &channel{name: st.Name, id: st.ID, store: st, subs: map[*subState]struct{}{},
		durables: map[durableID]*subState{}, queues: map[queueID]*queueGroup{}, synced: st.Msgs.State().Last,
		assigned: st.Msgs.State().Last}
	s.channels[ch.name] = ch
	s.lowerNames[lowerName(ch.name)] = ch.name
	ch.limits = s.opts.Limits.For(ch.name)
	s.touch(ch)
	return ch
}
