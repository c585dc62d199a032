package streaming

import (
	"context"
	"errors"

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
	cmdCreateChannel struct {
		name string
		id   uint64 // chosen by the proposer (stateMachine.nextChannelID)
	}
	cmdPublish struct {
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
		// last is the channel's last sequence as the proposer knew it (ch.assigned): a store
		// holding a later one already holds what the pass left (0: not known, an older
		// proposer's pass).
		last uint64
	}
	cmdDeleteChannel struct{ chanRef }
)

// chanRef names a channel in a command: by name, and by ID so that a command proposed for a
// channel that was deleted meanwhile never reaches a new channel of the same name.
type chanRef struct {
	channel string
	chanID  uint64
}

// proposeAsync hands one command to the log without waiting for it. A replicated log
// carries the command's encoding (Data); the standalone one applies Value as it is, before
// returning. A command that does not encode (a bug) comes back as a refused Future.
func (s *Server) proposeAsync(cmd any) raftlog.Future {
	c, err := s.command(cmd)
	if err != nil {
		return raftlog.Refused(err)
	}
	return s.rlog.Propose(context.Background(), c)
}

// command is cmd as the log takes it: encoded when replicated.
func (s *Server) command(cmd any) (raftlog.Command, error) {
	c := raftlog.Command{Value: cmd}
	if s.replicated {
		var err error
		if c.Data, err = encodeCommand(cmd); err != nil {
			return c, err
		}
	}
	return c, nil
}

func refOf(ch *channel) chanRef { return chanRef{channel: ch.name, chanID: ch.id} }

type expireResult struct {
	removed int
	next    int64
	skipped bool // the pass was not applied (fsm.go): next is unknown, not "none"
}

// errUnknownCommand: state must not diverge, so an unknown command stops the node.
var errUnknownCommand = errors.New("streaming: unknown command")

// errNoChannel: a command names a channel this replica does not have (deleted meanwhile).
var errNoChannel = errors.New("streaming: no such channel")

// errDiscontinuous: a publish batch does not continue its channel's last sequence.
var errDiscontinuous = errors.New("streaming: publish batch does not continue the channel's sequence")

// outcomeOf waits for f and returns its command's result, or the error that refused it or
// that Apply returned.
func outcomeOf(f raftlog.Future) (any, error) {
	if _, err := f.Wait(); err != nil {
		return nil, err
	}
	return f.Result(), nil
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
