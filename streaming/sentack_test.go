package streaming

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
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
	h := &recordsHandler{}
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
	waitUntil(t, "the failed proposal of the delivery's record logged", func() bool {
		s.takeSnapshot(false) // an iteration: the engine looks at what resolved
		return len(h.lines("recording deliveries failed")) > 0
	})
	// Apply refused it (not a lost leadership): an error, naming its one channel.
	if l := h.lines("recording deliveries failed")[0]; l.level != slog.LevelError || l.attrs["channel"] != "foo" {
		t.Fatalf("logged at %v with %v, want an error naming channel foo", l.level, l.attrs)
	}
}

// recordsHandler keeps the records logged, with their attributes as text.
type recordsHandler struct {
	mu   sync.Mutex
	recs []loggedLine
}

type loggedLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (h *recordsHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordsHandler) Handle(_ context.Context, r slog.Record) error {
	l := loggedLine{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, l)
	return nil
}
func (h *recordsHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordsHandler) WithGroup(string) slog.Handler      { return h }

// lines returns the records logged with message msg.
func (h *recordsHandler) lines(msg string) []loggedLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []loggedLine
	for _, l := range h.recs {
		if l.msg == msg {
			out = append(out, l)
		}
	}
	return out
}

// TestSentAckFailuresLogLevelAndChannel: the failures of sent/ack proposals in flight
// (pollSentAcks) are logged at most once per deliveryLogEvery; at Info when the proposals
// failed because leadership was lost, not held, or the log closed — every leadership
// change fails the proposals then in flight — else at Error; and the line names a channel
// only when every failed command was of that one channel. Before (39a860e), every failure
// was an Error line, one per engine iteration, naming the first channel of the first failed
// proposal though it covered others, whose command may have been the one that failed.
func TestSentAckFailuresLogLevelAndChannel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		props   []ackProposal // their futures fail with err
		err     error
		level   slog.Level
		channel string // "": none named
	}{
		{name: "one channel", props: []ackProposal{{channel: "foo", channels: 1, records: 2}}, err: errNoChannel,
			level: slog.LevelError, channel: "foo"},
		{name: "one channel twice", props: []ackProposal{{channel: "foo", channels: 1}, {channel: "foo", channels: 1}},
			err: errNoChannel, level: slog.LevelError, channel: "foo"},
		{name: "two channels", props: []ackProposal{{channel: "foo", channels: 2, records: 3}}, err: errNoChannel,
			level: slog.LevelError},
		{name: "two proposals, two channels", props: []ackProposal{{channel: "foo", channels: 1}, {channel: "bar", channels: 1}},
			err: errNoChannel, level: slog.LevelError},
		{name: "leadership lost", props: []ackProposal{{channel: "foo", channels: 1}}, err: raftlog.ErrLeadershipLost,
			level: slog.LevelInfo, channel: "foo"},
		{name: "not the leader", props: []ackProposal{{channel: "foo", channels: 1}}, err: &raftlog.NotLeaderError{},
			level: slog.LevelInfo, channel: "foo"},
		{name: "closed", props: []ackProposal{{channel: "foo", channels: 1}}, err: raftlog.ErrClosed,
			level: slog.LevelInfo, channel: "foo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newEngine(t)
			h := &recordsHandler{}
			s.log = slog.New(h)
			fail := func() {
				for _, p := range tc.props {
					p.f = raftlog.Refused(tc.err)
					s.acksInFlight = append(s.acksInFlight, p)
				}
				s.pollSentAcks()
			}
			fail()
			fail() // the next iteration's: within deliveryLogEvery
			lines := h.lines("recording deliveries failed")
			if len(lines) == 0 {
				t.Fatal("nothing logged")
			}
			if l := lines[0]; l.level != tc.level || l.attrs["channel"] != tc.channel || l.attrs["proposals"] != strconv.Itoa(len(tc.props)) {
				t.Errorf("logged at %v with %v; want %v, channel %q, %d proposals", l.level, l.attrs, tc.level, tc.channel, len(tc.props))
			}
			if len(lines) != 1 {
				t.Errorf("%d lines for two polls with failures, want 1 (rate-limited)", len(lines))
			}
		})
	}
}
