package tests

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"github.com/nats-io/stan.go/pb"
)

// fakeStreaming answers streaming connect (and close) requests on a core-only node, from
// when its serve is called; until then nobody listens on the discover subject, as on a node
// raft just elected whose engine has not taken over yet. With answer false it takes the
// connect requests and never answers. It counts the connect requests that reached it.
type fakeStreaming struct {
	t        *testing.T
	nc       *nats.Conn
	answer   bool
	requests atomic.Int32
}

func newFakeStreaming(t *testing.T, n *node, answer bool) *fakeStreaming {
	t.Helper()
	nc, err := nats.Connect(n.url())
	must(t, err)
	t.Cleanup(nc.Close)
	return &fakeStreaming{t: t, nc: nc, answer: answer}
}

func (f *fakeStreaming) serve() {
	const closeSubject = "_FAKE.close"
	_, err := f.nc.Subscribe(stan.DefaultDiscoverPrefix+".test-cluster", func(m *nats.Msg) {
		f.requests.Add(1)
		if !f.answer {
			return
		}
		b, _ := (&pb.ConnectResponse{PubPrefix: "_FAKE.pub", SubRequests: "_FAKE.sub", UnsubRequests: "_FAKE.unsub",
			SubCloseRequests: "_FAKE.subclose", CloseRequests: closeSubject, Protocol: 1}).Marshal()
		_ = m.Respond(b)
	})
	must(f.t, err)
	_, err = f.nc.Subscribe(closeSubject, func(m *nats.Msg) {
		b, _ := (&pb.CloseResponse{}).Marshal()
		_ = m.Respond(b)
	})
	must(f.t, err)
	must(f.t, f.nc.Flush())
}

// TestStanOnWaitsForTheServingLeader: a streaming connect through a node nobody serves on
// yet fails at once with no responders (stan.go: ErrConnectReqTimeout); stanOn tries again
// within its ConnectWait, and connects once the node serves. Before, it made one attempt:
// TestStanClusterLameDuckIsNotElectedAgain, which connects as soon as /streaming/serverz
// names the new leader (raft's role), failed within milliseconds when it asked between
// raft's election and the engine's takeover (2 to 22 ms later on a loaded machine).
func TestStanOnWaitsForTheServingLeader(t *testing.T) {
	n := newNode(t, "core").start() // core only: nobody serves streaming
	f := newFakeStreaming(t, n, true)
	const late = 300 * time.Millisecond
	time.AfterFunc(late, f.serve)
	start := time.Now()
	stanOn(t, n, "early")
	if took := time.Since(start); took < late {
		t.Fatalf("connected after %v, before anyone served (%v)", took, late)
	}
	if got := f.requests.Load(); got != 1 {
		t.Fatalf("%d connect requests reached the server, want 1: only those nobody received are repeated", got)
	}
}

// TestStanConnectWithinSendsAReceivedRequestOnce: a connect request that reached a server and got
// no answer used the whole ConnectWait and is not sent again (the server may have
// registered the client ID).
func TestStanConnectWithinSendsAReceivedRequestOnce(t *testing.T) {
	n := newNode(t, "core").start()
	f := newFakeStreaming(t, n, false)
	f.serve()
	start := time.Now()
	_, attempts, err := stanConnectWithin("silent", stan.NatsURL(n.url()), stan.ConnectWait(time.Second))
	took := time.Since(start)
	if !errors.Is(err, stan.ErrConnectReqTimeout) || attempts != 1 || f.requests.Load() != 1 {
		t.Fatalf("got %v after %d attempts (%d requests received), want one request that times out", err, attempts, f.requests.Load())
	}
	if took < time.Second || took > 3*time.Second {
		t.Fatalf("gave up after %v, want its ConnectWait (1s)", took)
	}
}
