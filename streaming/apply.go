package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// Replicated commands. They name channels by name and ID (chanRef) and subscriptions by
// their ID in the channel, never by pointer, so that any replica can apply them: encoded as
// proto/raftpb ops (replicate.go) when the log is replicated; standalone they travel as
// Command.Value and are never encoded.
type (
	cmdConnect       struct{ info stores.ClientInfo }
	cmdDisconnect    struct{ clientID string }
	cmdCreateChannel struct{ name string }
	cmdPublish       struct {
		chanRef
		msgs []stores.Msg // sequences continue the channel's last with no gap
	}
	cmdSubscribe struct {
		chanRef
		state stores.SubState
	}
	cmdUpdateSub struct {
		chanRef
		state stores.SubState
	}
	cmdDeleteSub struct {
		chanRef
		id uint64
	}
	cmdSentAck struct {
		chanRef
		events []stores.SubEvent
	}
	cmdExpire struct {
		chanRef
		now int64 // chosen by the proposer: Apply never reads the clock
	}
	cmdDeleteChannel struct{ chanRef }
)

// chanRef names a channel in a command: by name, and by ID so that a command proposed for a
// channel that was deleted meanwhile never reaches a new channel of the same name.
type chanRef struct {
	channel string
	chanID  uint64
}

func refOf(ch *channel) chanRef { return chanRef{channel: ch.name, chanID: ch.id} }

type expireResult struct {
	removed int
	next    int64
}

// errUnknownCommand: state must not diverge, so an unknown command stops the node.
var errUnknownCommand = errors.New("streaming: unknown command")

// errNoChannel: a command names a channel this replica does not have (deleted meanwhile).
var errNoChannel = errors.New("streaming: no such channel")

// errDiscontinuous: a publish batch does not continue its channel's last sequence.
var errDiscontinuous = errors.New("streaming: publish batch does not continue the channel's sequence")

// propose runs one command through the log and returns its result.
func (s *Server) propose(cmd any) (any, error) {
	f := s.rlog.Propose(context.Background(), raftlog.Command{Value: cmd})
	if _, err := f.Wait(); err != nil {
		return nil, err
	}
	if err, ok := f.Result().(error); ok && err != nil {
		return nil, err
	}
	return f.Result(), nil
}

// Apply implements raftlog.StateMachine: the only place replicated state changes.
func (s *Server) Apply(index uint64, cmds []raftlog.Command) []any {
	out := s.applyOut[:0] // the log copies results it keeps before the next Apply
	for _, c := range cmds {
		out = append(out, s.applyOne(c.Value))
	}
	s.applyOut = out
	return out
}

func (s *Server) applyOne(v any) any {
	switch c := v.(type) {
	case *cmdConnect:
		return s.addClient(c.info)
	case *cmdDisconnect:
		return s.dropClient(c.clientID)
	case *cmdCreateChannel:
		ch, err := s.createChannel(c.name)
		if err != nil {
			return err
		}
		return ch
	}
	ref, ok := commandRef(v)
	if !ok {
		panic(fmt.Errorf("%w: %T", errUnknownCommand, v))
	}
	ch := s.channels[ref.channel]
	if ch == nil || ch.id != ref.chanID {
		return fmt.Errorf("%w: %q (ID %d)", errNoChannel, ref.channel, ref.chanID)
	}
	switch c := v.(type) {
	case *cmdPublish:
		if len(c.msgs) == 0 {
			return nil
		}
		// Every replica refuses a run that does not continue the channel: the proposer
		// keeps its own next sequence, and a proposal made on a stale view must not leave
		// a gap or a repeat in any replica's log.
		if last := ch.store.Msgs.State().Last; c.msgs[0].Seq != last+1 {
			return fmt.Errorf("%w: %q: batch starts at %d, last is %d", errDiscontinuous, ch.name, c.msgs[0].Seq, last)
		}
		return ch.store.Msgs.Append(c.msgs)
	case *cmdSubscribe:
		s.markSubsDirty(ch)
		return ch.store.Subs.CreateSub(&c.state)
	case *cmdUpdateSub:
		s.markSubsDirty(ch)
		return ch.store.Subs.UpdateSub(&c.state)
	case *cmdDeleteSub:
		s.markSubsDirty(ch)
		return ch.store.Subs.DeleteSub(c.id)
	case *cmdSentAck:
		s.markSubsDirty(ch)
		return ch.store.Subs.Record(c.events)
	case *cmdExpire:
		removed, next := ch.store.Msgs.Expire(c.now)
		return expireResult{removed: removed, next: next}
	case *cmdDeleteChannel:
		return s.deleteChannel(ch)
	}
	panic(fmt.Errorf("%w: %T", errUnknownCommand, v))
}

// commandRef returns the channel a channel command names.
func commandRef(v any) (chanRef, bool) {
	switch c := v.(type) {
	case *cmdPublish:
		return c.chanRef, true
	case *cmdSubscribe:
		return c.chanRef, true
	case *cmdUpdateSub:
		return c.chanRef, true
	case *cmdDeleteSub:
		return c.chanRef, true
	case *cmdSentAck:
		return c.chanRef, true
	case *cmdExpire:
		return c.chanRef, true
	case *cmdDeleteChannel:
		return c.chanRef, true
	}
	return chanRef{}, false
}

// Snapshot and Restore arrive with clustering.
func (s *Server) Snapshot() (raftlog.Snapshot, error) {
	return nil, errors.New("streaming: snapshots arrive with clustering")
}

// Restore arrives with clustering.
func (s *Server) Restore(r io.Reader) error {
	return errors.New("streaming: restore arrives with clustering")
}
