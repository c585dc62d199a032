package core

import (
	"github.com/starling-io/starling/core/subject"
	"github.com/starling-io/starling/core/wire"
)

// PublishRun publishes a run of messages to one subject, without reply or header: message
// i is data[ends[i-1]:ends[i]] (the first from 0). Its subscribers get what len(ends)
// Publish calls would, in the same order, but the subject is checked and matched once,
// and a lone socket subscriber — the streaming layer's sends to a subscription's inbox —
// gets the run's frames appended under one lock of its connection. Every message must fit
// max_payload: otherwise PublishRun returns ErrMaxPayload and delivers none of them. Frames
// for socket subscribers are sent at the next Flush, as Publish's.
func (nc *Conn) PublishRun(subj string, data []byte, ends []int) error {
	c := nc.c
	o := c.srv.o()
	largest, prev := 0, 0
	for _, e := range ends {
		largest, prev = max(largest, e-prev), e
	}
	if largest > o.MaxPayload {
		return ErrMaxPayload
	}
	if !subject.ValidPublish(subj) || !validPubArgs(o.MaxControlLine, subj, "", 0, largest) {
		return ErrBadSubject
	}
	if c.isClosed() {
		return ErrConnClosed
	}
	if len(ends) == 0 {
		return nil
	}
	s := bytesOf(subj)
	c.stats.inMsgs.Add(int64(len(ends)))
	c.stats.inBytes.Add(int64(prev))
	r := c.acc.subs.Match(s)
	done := 0
	if len(r.Queues) == 0 && len(r.Plain) == 1 {
		done = c.prod.deliverRun(r.Plain[0], s, data, ends)
	}
	prev = 0
	if done > 0 {
		prev = ends[done-1]
	}
	for _, e := range ends[done:] {
		c.prod.route(c.acc, r, s, nil, 0, data[prev:e])
		prev = e
	}
	return nil
}

// deliverRun appends a run of MSG frames (no reply, no header) for one plain subscription
// of a socket client, under one lock of its connection, as deliver and deliverFrame would
// one by one, and returns how many of the messages it took. It takes none for a
// subscription deliver must look at message by message (in-process, a route, an import,
// subscribe denies checked per message, an auto-unsubscribe limit), and stops at a limit or
// an unsubscribe that arrives meanwhile: the caller routes the rest one by one, as before. A
// closed subscription or connection takes them all and delivers nothing, as deliver's false
// would route nothing elsewhere for a plain subscription.
func (p *producer) deliverRun(sub *subscription, subj, data []byte, ends []int) int {
	dst := sub.client
	if sub.handler != nil || sub.imp != nil || dst.kind != kindClient || p.lock == nil || p.trace != nil ||
		sub.filter.Load() || sub.max.Load() != 0 {
		return 0
	}
	if sub.closed.Load() {
		return len(ends)
	}
	n, prev := 0, 0
	dst.mu.Lock()
	if dst.closed {
		dst.mu.Unlock()
		return len(ends)
	}
	slow := false
	for _, e := range ends {
		if sub.max.Load() != 0 || sub.closed.Load() {
			break // an UNSUB (with a limit or not) meanwhile: the rest message by message
		}
		msg := data[prev:e]
		if dst.overPending(len(subj) + len(sub.sid) + len(msg) + 32) {
			slow = true
			break
		}
		b := wire.AppendMsg(dst.out.buf, subj, sub.sid, nil, len(msg))
		b = append(b, msg...)
		dst.out.buf = append(b, '\r', '\n')
		dst.out.sealIfLarge()
		n++
		prev = e
	}
	dst.mu.Unlock()
	if n > 0 {
		sub.delivered.Add(int64(n))
		p.addPending(dst)
		dst.stats.outMsgs.Add(int64(n))
		dst.stats.outBytes.Add(int64(prev))
	}
	if slow {
		dst.markSlowConsumer()
		return len(ends) // the rest dropped, as deliver drops each past the pending limit
	}
	return n
}
