package streaming

import (
	"errors"

	"github.com/starling-io/starling/raftlog"
)

// Rare commands in flight. Connects, closes, subscribes, unsubscribes, the records that
// follow them and expiries are proposed without the engine waiting for the log: with a
// replicated log each wait was a Raft commit, during which nothing was delivered or
// acknowledged, and a burst of N connects took N commits in a row. Instead:
//
//   - The engine changes its own view at once, as if the command were applied (a client
//     registered or gone, a subscription created, closed or removed), so that a request
//     behind it sees its effect — and the command of that request follows it in the log,
//     which every replica applies in order.
//   - What must wait for the outcome (the reply, the undo of a refused change, a log line)
//     is an afterCommit. It rides the next commit group (flushMetaInto) and runs when the
//     group completes: after the command is committed and applied — and, for a reply,
//     after the group's records are as durable as a PubAck makes messages. The group is
//     completed by the one completion stage that sends PubAcks (commit.go), so replies go
//     out in the order their commands were proposed.
//   - Standalone, the log applies a command before Propose returns: an afterCommit then
//     waits only for the group's sync, as replies always did.
//
// If a command is refused, every command proposed after it is too (one log, applied in
// order; a replica that failed applies nothing more), so each dependent undoes itself in
// its own afterCommit. Channel creation and deletion still wait (propose): a channel's
// store exists only once its creation is applied, and every publish and subscription
// reads it.

// afterCommit is what the engine does once a proposal resolves: fn gets the command's result
// or the error that refused it, or — durable set — the failure of the commit that was to
// make it durable (a notDurable).
type afterCommit struct {
	fut     raftlog.Future // the proposal, when it was in flight (wait set)
	wait    bool
	durable bool
	v       any // its result, when it was applied already
	fn      func(v any, err error)
}

// notDurable is the failure of the commit that was to make an applied command durable: the
// command changed the state, so undoing it takes another command.
type notDurable struct{ err error }

func (e notDurable) Error() string { return e.err.Error() }
func (e notDurable) Unwrap() error { return e.err }

func isNotDurable(err error) bool {
	var nd notDurable
	return errors.As(err, &nd)
}

// proposeThen proposes cmd without waiting and runs fn on the engine once it is applied
// (or refused): at once when it is already (standalone), else when the group that carries
// it completes.
func (s *Server) proposeThen(cmd any, fn func(v any, err error)) raftlog.Future {
	f := s.proposeAsync(cmd)
	s.await(f, false, fn)
	return f
}

// proposeReply is proposeThen for a reply: fn runs once the command is applied and its
// records are durable.
func (s *Server) proposeReply(cmd any, fn func(v any, err error)) raftlog.Future {
	f := s.proposeAsync(cmd)
	s.await(f, true, fn)
	return f
}

// proposeLogged proposes a command whose outcome nothing waits for but the log.
func (s *Server) proposeLogged(cmd any, what string, ref chanRef) raftlog.Future {
	return s.proposeThen(cmd, func(_ any, err error) {
		if err != nil {
			s.log.Error(what+" failed", "channel", ref.channel, "err", err)
		}
	})
}

// await runs fn once f resolves (see proposeThen, proposeReply). A refusal known now is
// handled now: there is nothing to make durable.
func (s *Server) await(f raftlog.Future, durable bool, fn func(v any, err error)) {
	a := afterCommit{fut: f, durable: durable, fn: fn}
	select {
	case <-f.Done():
		v, err := outcomeOf(f)
		if err != nil || !durable {
			fn(v, err)
			return
		}
		a.v = v
	default:
		a.wait = true
	}
	s.waiting = append(s.waiting, a)
}

// run calls a's fn with its outcome; metaErr is its group's commit failure (engine, when
// the group completes).
func (a *afterCommit) run(metaErr error) {
	v, err := a.v, error(nil)
	if a.wait {
		v, err = outcomeOf(a.fut)
	}
	if err == nil && a.durable && metaErr != nil {
		err = notDurable{metaErr}
	}
	a.fn(v, err)
}

// waits reports whether g completes only once proposals still in flight resolve.
func (g *commitGroup) waits() bool {
	for i := range g.after {
		if g.after[i].wait {
			return true
		}
	}
	return false
}

// waitProposals blocks until every proposal g waits for has resolved (committer).
func (g *commitGroup) waitProposals() {
	for i := range g.after {
		if a := &g.after[i]; a.wait {
			<-a.fut.Done()
		}
	}
}
