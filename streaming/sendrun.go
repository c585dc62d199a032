package streaming

import (
	"errors"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/stores"
)

// publishMsg publishes message seq's MsgProto to sub's inbox, or adds it to the run being
// collected (sendRun), and returns its encoded size.
func (s *Server) publishMsg(sub *subState, seq uint64, ld *stores.Msg, count uint32) int {
	if r := &s.scratch.run; r.on {
		if len(r.ends) > 0 && r.sub != sub {
			s.flushRun()
		}
		from := len(r.data)
		r.data = appendMsgProto(r.data, seq, sub.ch.name, ld.Reply, ld.Data, ld.Time, count > 0, count)
		n := len(r.data) - from
		if n <= s.maxPayload {
			if len(r.ends) == 0 {
				r.sub, r.first = sub, seq
			}
			r.ends = append(r.ends, len(r.data))
			if len(r.data) >= runBytes {
				s.flushRun()
			}
			return n
		}
		// Over max_payload: published alone below, for its error, after the run before it.
		r.data = r.data[:from]
		s.flushRun()
	}
	b := appendMsgProto(s.scratch.out[:0], seq, sub.ch.name, ld.Reply, ld.Data, ld.Time, count > 0, count)
	s.scratch.out = b
	if err := s.bus.Publish(sub.inbox, "", nil, b); err != nil {
		s.deliveryFailed(sub, seq, err)
	}
	return len(b)
}

// sendRun collects the MsgProtos of consecutive first deliveries to one inbox, published in
// one call (runBus) when the inbox changes, the run reaches runBytes, something looks at the
// destination's backlog (heldBack), or the sender that started it returns (endRun). A replay,
// or a subscriber that acks by the hundred, is sent hundreds of messages in a row: one
// publish each cost a subject check, a match, two locks and a pool round trip per message
// (~60 % of what a replayed message cost the engine's side of core), now paid once per run.
// Nothing else is published while a run is open: each inbox, and each connection, gets what
// it got before, in the same order.
type sendRun struct {
	on    bool      // a sender collects (startRun)
	sub   *subState // whose inbox the run goes to
	first uint64    // its first sequence (a failure's log line)
	data  []byte    // the MsgProtos
	ends  []int     // where each ends in data
}

// runBytes is how many bytes of MsgProtos a run collects before it is published: enough
// for hundreds of small messages, little enough not to hold the destination's lock long.
const runBytes = 64 << 10

// startRun opens a run for a sender when the bus takes runs and none is open; it reports
// whether one was open already (endRun then leaves it to the outer sender).
func (s *Server) startRun() (outer bool) {
	r := &s.scratch.run
	if r.on || s.runBus == nil {
		return true
	}
	r.on = true
	return false
}

// endRun publishes the run and closes it, unless an outer sender opened it.
func (s *Server) endRun(outer bool) {
	if outer {
		return
	}
	s.flushRun()
	s.scratch.run.on = false
}

// flushRun publishes the run collected so far. A message over max_payload refuses the whole
// run: max_payload was lowered by a reload since publishMsg compared with it, and each is
// then published alone, so that only those over it fail, as they did before runs.
func (s *Server) flushRun() {
	r := &s.scratch.run
	if len(r.ends) == 0 {
		if cap(r.data) > maxScratchEnc {
			r.data = nil // a lone message over max_payload grew it (publishMsg)
		}
		return
	}
	sub := r.sub
	err := s.runBus.PublishRun(sub.inbox, r.data, r.ends)
	switch {
	case errors.Is(err, core.ErrMaxPayload):
		prev := 0
		for _, e := range r.ends {
			if err := s.bus.Publish(sub.inbox, "", nil, r.data[prev:e]); err != nil {
				s.deliveryFailed(sub, r.first, err)
			}
			prev = e
		}
	case err != nil:
		for range r.ends {
			s.deliveryFailed(sub, r.first, err)
		}
	}
	r.sub = nil
	r.ends = r.ends[:0]
	r.data = r.data[:0]
	if cap(r.data) > maxScratchEnc {
		r.data = nil // one large message: do not keep its buffer
	}
}
