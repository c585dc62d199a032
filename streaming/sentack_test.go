package streaming

import (
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/raftlog"
)

// ackRefusingSM refuses every proposal made only of sent/ack records, as Apply refuses the
// records of a channel it does not have; the rest it applies.
type ackRefusingSM struct{ raftlog.StateMachine }

func (m *ackRefusingSM) Apply(index uint64, cmds []raftlog.Command) []any {
	for _, c := range cmds {
		if _, ok := c.Value.(*cmdSentAck); !ok {
			return m.StateMachine.Apply(index, cmds)
		}
	}
	res := make([]any, len(cmds))
	for i := range res {
		res[i] = errNoChannel
	}
	return res
}

// TestFailedSentAckProposalIsLogged: over the replicated log, the proposal of sent/ack
// records is not waited for; when it fails once in flight (here, refused by Apply), a line
// says so. Before, only a proposal already resolved when made (standalone) was looked at:
// the replicated one's failure was silent, and its messages were redelivered after AckWait
// for no reason anyone could see.
func TestFailedSentAckProposalIsLogged(t *testing.T) {
	if testing.Short() {
		t.Skip("an election takes a moment")
	}
	_, trans := raft.NewInmemTransport("n1")
	bus := &dataBus{}
	h := &countHandler{n: map[string]int{}}
	var node *raftlog.Node
	s := startEngineWith(t, bus, newMemStore(t), Options{Logger: slog.New(h)}, func(sm raftlog.StateMachine) (raftlog.Log, error) {
		n, err := raftlog.NewNode(raftlog.Config{Group: "g0", NodeID: "n1", Peers: []string{"n1"}, Dir: t.TempDir(),
			Transport: trans, HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
			LeaderLeaseTimeout: 100 * time.Millisecond, NoRaftLog: true}, &ackRefusingSM{sm})
		node = n
		return n, err
	})
	t.Cleanup(func() {
		close(s.stop)
		<-s.done
		_ = node.Close()
	})
	waitUntil(t, "the engine leads", func() bool { return s.takeSnapshot(false).leader })
	s.push(connectReq("c1", "hb.c1", 1, "r.conn"))
	s.push(subscribeReq("c1", "foo", "", "in.c1", 1, "r.sub"))
	waitUntil(t, "subscribed", func() bool { return len(bus.to("r.sub")) == 1 })
	s.push(publishReq("c1", "foo", "m1", 1, "r.pub"))
	waitUntil(t, "delivered", func() bool { return len(bus.to("in.c1")) == 1 })
	logged := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.n["recording deliveries failed"]
	}
	waitUntil(t, "the failed proposal of the delivery's record logged", func() bool {
		s.takeSnapshot(false) // an iteration: the engine looks at what resolved
		return logged() > 0
	})
}
