package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// Replicated commands. Standalone they travel as Command.Value and are never encoded; the
// clustered log (a later milestone) encodes them as proto/raftpb ops.
type (
	cmdConnect    struct{ info stores.ClientInfo }
	cmdDisconnect struct{ clientID string }
	cmdPublish    struct {
		ch   *channel
		msgs []stores.Msg
	}
	cmdCreateChannel struct{ name string }
	cmdSubscribe     struct {
		state stores.SubState
		ch    *channel
	}
	cmdUpdateSub struct {
		state stores.SubState
		ch    *channel
	}
	cmdDeleteSub struct {
		id uint64
		ch *channel
	}
	cmdExpire struct {
		ch  *channel
		now int64 // chosen by the proposer: Apply never reads the clock
	}
	cmdDeleteChannel struct{ ch *channel }
	cmdSentAck       struct {
		ch     *channel
		events []stores.SubEvent
	}
)

type expireResult struct {
	removed int
	next    int64
}

// errUnknownCommand: state must not diverge, so an unknown command stops the node.
var errUnknownCommand = errors.New("streaming: unknown command")

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
	case *cmdPublish:
		return c.ch.store.Msgs.Append(c.msgs)
	case *cmdSubscribe:
		s.markSubsDirty(c.ch)
		return c.ch.store.Subs.CreateSub(&c.state)
	case *cmdUpdateSub:
		s.markSubsDirty(c.ch)
		return c.ch.store.Subs.UpdateSub(&c.state)
	case *cmdDeleteSub:
		s.markSubsDirty(c.ch)
		return c.ch.store.Subs.DeleteSub(c.id)
	case *cmdSentAck:
		s.markSubsDirty(c.ch)
		return c.ch.store.Subs.Record(c.events)
	case *cmdExpire:
		removed, next := c.ch.store.Msgs.Expire(c.now)
		return expireResult{removed: removed, next: next}
	case *cmdDeleteChannel:
		return s.deleteChannel(c.ch)
	default:
		panic(fmt.Errorf("%w: %T", errUnknownCommand, v))
	}
}

// Decode is for the replicated log; standalone commands are never encoded.
func (s *Server) Decode(data []byte) (raftlog.Command, error) {
	return raftlog.Command{}, fmt.Errorf("%w: encoded commands arrive with clustering", raftlog.ErrUnknownOp)
}

// Snapshot and Restore arrive with clustering.
func (s *Server) Snapshot() (raftlog.Snapshot, error) {
	return nil, errors.New("streaming: snapshots arrive with clustering")
}

// Restore arrives with clustering.
func (s *Server) Restore(r io.Reader) error {
	return errors.New("streaming: restore arrives with clustering")
}
