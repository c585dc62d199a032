package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/raftlog"
)

// failingTakeoverLog is a node's raft log as its engine sees it: while fail is set its
// barriers fail, so that the engine cannot take over when raft elects the node — as when
// its store cannot restore or its disk refuses writes raft does not make. Everything else
// is the real raftlog.Node.
type failingTakeoverLog struct {
	*raftlog.Node
	fail *atomic.Bool
}

var errNoTakeOver = errors.New("injected by the test: this node cannot take over")

func (l *failingTakeoverLog) Barrier(ctx context.Context) error {
	if l.fail.Load() {
		return errNoTakeOver
	}
	return l.Node.Barrier(ctx)
}

// TestStanClusterLeaderCannotTakeOver: raft elects nodes whose streaming engine cannot
// take over. Each gives raft leadership up after a few attempts (showing the failure in
// /healthz meanwhile) to the next node round the group, until the node that can take over
// leads and serves, with what was published before. Before, the first node elected stayed raft
// leader, retrying every second, and nobody served.
func TestStanClusterLeaderCannotTakeOver(t *testing.T) {
	pc := startPowerClusterWith(t, uint64(time.Now().UnixNano()), func(n *powerNode, rn *raftlog.Node) raftlog.Log {
		return &failingTakeoverLog{Node: rn, fail: &n.noTakeOver}
	})
	good := pc.leader()
	sc := stanOn(t, good.fake, "before")
	if err := sc.Publish("tk", []byte("before")); err != nil {
		t.Fatal(err)
	}
	var failing []*powerNode
	for _, n := range pc.nodes {
		if n != good {
			n.noTakeOver.Store(true)
			failing = append(failing, n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// To the node after it, which hands leadership to the other failing node, which hands
	// it back: raft's own choice (the first of two up-to-date voters) could have handed it
	// between the two failing nodes forever.
	if err := good.log.HandOff(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	shown := map[string]bool{}
	waitFor(t, 45*time.Second, func() error {
		for _, n := range failing {
			if err := n.srv.Health(); err != nil && strings.Contains(err.Error(), "cannot take over") {
				shown[n.id] = true
			}
		}
		if good.srv.Serverz().Role != "Leader" {
			return fmt.Errorf("%s does not lead", good.id)
		}
		return nil
	})
	t.Logf("%s leads again %v after handing over; failures shown in /healthz by %v", good.id, time.Since(start).Round(time.Millisecond), shown)
	if len(shown) != len(failing) {
		t.Errorf("failures shown in Health by %v, want both failing nodes", shown)
	}
	sc2 := stanOn(t, good.fake, "after")
	if err := sc2.Publish("tk", []byte("after")); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 2)
	sub, err := sc2.Subscribe("tk", func(m *stan.Msg) { got <- string(m.Data) }, stan.DeliverAllAvailable())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for _, want := range []string{"before", "after"} {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%q not delivered", want)
		}
	}
	for _, n := range failing {
		if n.srv.Serverz().Role == "Leader" {
			t.Errorf("%s, which cannot take over, leads", n.id)
		}
	}
}
