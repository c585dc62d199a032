package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
	"github.com/starling-io/starling/streaming"
	stanmon "github.com/starling-io/starling/streaming/monitor"
)

// The hostile-client tests (issue 10, audit findings 2, 3, 5, 6, 7, 9, 11, 14) attack a
// real in-process server with real clients and raw STAN protobuf requests, and check
// the refusals in the server's log.

const hostileWait = 2 * time.Second // a request's answer

// hostileServer is core + streaming (memory store) on a random port, with the
// /streaming monitoring endpoints on an httptest server and the streaming log captured.
type hostileServer struct {
	core     *core.Server
	st       *streaming.Server
	url      string
	mon      string // http://host:port of the monitoring endpoints
	logs     *syncBuffer
	discover string // the discover subject (connect requests)
}

func startHostile(t testing.TB, coreMod func(*core.Options), mod func(*streaming.Options)) *hostileServer {
	t.Helper()
	return startHostileStore(t, coreMod, mod, nil)
}

// startHostileStore is startHostile with the memory store wrapped by wrap (nil: as is).
func startHostileStore(t testing.TB, coreMod func(*core.Options), mod func(*streaming.Options), wrap func(stores.Store) stores.Store) *hostileServer {
	t.Helper()
	co := core.Options{Host: "127.0.0.1", Port: -1}
	if coreMod != nil {
		coreMod(&co)
	}
	cs, err := core.New(co)
	must(t, err)
	must(t, cs.Start())
	conn, err := cs.Connect("_STARLING-test")
	must(t, err)
	var store stores.Store
	store, err = memstore.New(memstore.Options{})
	must(t, err)
	if wrap != nil {
		store = wrap(store)
	}
	logs := &syncBuffer{}
	opts := streaming.Options{ClusterID: "test-cluster",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	if mod != nil {
		mod(&opts)
	}
	st, err := streaming.New(streaming.InProcess(conn), store, raftlog.Standalone, opts)
	must(t, err)
	must(t, st.Start())
	mux := http.NewServeMux()
	for path, h := range stanmon.New(st).Routes() {
		mux.Handle(path, h)
	}
	web := httptest.NewServer(mux)
	prefix := opts.DiscoverPrefix
	if prefix == "" {
		prefix = streaming.DefaultDiscoverPrefix
	}
	t.Cleanup(func() {
		web.Close()
		_ = st.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
		if t.Failed() {
			t.Logf("streaming log:\n%s", tail(logs.String(), 6000))
		}
	})
	return &hostileServer{core: cs, st: st, url: cs.ClientURL(), mon: web.URL, logs: logs, discover: prefix + ".test-cluster"}
}

// monGetJSON fetches a monitoring endpoint (path with its query) into v.
func monGetJSON(t testing.TB, base, path string, v any) {
	t.Helper()
	resp, err := http.Get(base + path)
	must(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	must(t, json.NewDecoder(resp.Body).Decode(v))
}

// channelSubs returns the subscriptions of channel as /streaming/channelsz?subs=1 shows them.
func channelSubs(t testing.TB, base, channel string) []*streaming.Subscriptionz {
	t.Helper()
	var z stanmon.Channelsz
	monGetJSON(t, base, "/streaming/channelsz?subs=1", &z)
	for _, ch := range z.Channels {
		if ch.Name == channel {
			return ch.Subscriptions
		}
	}
	return nil
}

// clientIDs returns the registered client IDs (/streaming/clientsz).
func clientIDs(t testing.TB, base string) []string {
	t.Helper()
	var z stanmon.Clientsz
	monGetJSON(t, base, "/streaming/clientsz", &z)
	var ids []string
	for _, c := range z.Clients {
		ids = append(ids, c.ID)
	}
	return ids
}

func hasID(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// logLines counts the lines of a captured log that contain every part.
func logLines(logs *syncBuffer, parts ...string) int {
	n := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

// wantLogLines asserts exactly n log lines contain every part (a refusal is logged once).
func wantLogLines(t testing.TB, logs *syncBuffer, n int, parts ...string) {
	t.Helper()
	if got := logLines(logs, parts...); got != n {
		t.Errorf("%d log lines with %q, want %d", got, parts, n)
	}
}

// STAN request subjects for cluster test-cluster.
const (
	stanSubReq      = "_STAN.sub.test-cluster"
	stanUnsubReq    = "_STAN.unsub.test-cluster"
	stanSubCloseReq = "_STAN.subclose.test-cluster"
	stanCloseReq    = "_STAN.close.test-cluster"
	stanPubPrefix   = "_STAN.pub.test-cluster"
)

// natsDial opens a plain NATS connection, closed at the end of the test.
func natsDial(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// stanReq sends a STAN protobuf request and decodes the answer into resp.
func stanReq(t testing.TB, nc *nats.Conn, subject string, req, resp proto.Message) {
	t.Helper()
	b, err := proto.Marshal(req)
	must(t, err)
	m, err := nc.Request(subject, b, hostileWait)
	if err != nil {
		t.Fatalf("request on %s: %v", subject, err)
	}
	must(t, proto.Unmarshal(m.Data, resp))
}

// rawClient is a STAN client made of raw protobuf requests over its own NATS connection;
// it answers the server's heartbeats.
type rawClient struct {
	t        testing.TB
	nc       *nats.Conn
	id       string
	connID   []byte
	hbInbox  string
	discover string
}

var rawConnIDs struct {
	sync.Mutex
	n int
}

// rawRegister registers client id from nc (a heartbeat-answering inbox of its own).
func rawRegister(t testing.TB, nc *nats.Conn, discover, id string) *rawClient {
	t.Helper()
	rawConnIDs.Lock()
	rawConnIDs.n++
	connID := []byte(fmt.Sprintf("raw-conn-%s-%d", id, rawConnIDs.n))
	rawConnIDs.Unlock()
	r := &rawClient{t: t, nc: nc, id: id, connID: connID, hbInbox: nats.NewInbox(), discover: discover}
	_, err := nc.Subscribe(r.hbInbox, func(m *nats.Msg) { _ = m.Respond(nil) })
	must(t, err)
	resp := r.connect(&stanpb.ConnectRequest{ClientID: id, HeartbeatInbox: r.hbInbox, Protocol: 1, ConnID: connID, PingInterval: 5, PingMaxOut: 88})
	if resp.Error != "" {
		t.Fatalf("register %s: %s", id, resp.Error)
	}
	return r
}

func (r *rawClient) connect(req *stanpb.ConnectRequest) *stanpb.ConnectResponse {
	r.t.Helper()
	resp := &stanpb.ConnectResponse{}
	stanReq(r.t, r.nc, r.discover, req, resp)
	return resp
}

// subscribe sends req with r's client ID unless req names one.
func (r *rawClient) subscribe(req *stanpb.SubscriptionRequest) *stanpb.SubscriptionResponse {
	r.t.Helper()
	if req.ClientID == "" {
		req.ClientID = r.id
	}
	if req.MaxInFlight == 0 {
		req.MaxInFlight = 1024
	}
	if req.AckWaitInSecs == 0 {
		req.AckWaitInSecs = 30
	}
	resp := &stanpb.SubscriptionResponse{}
	stanReq(r.t, r.nc, stanSubReq, req, resp)
	return resp
}

func (r *rawClient) unsubscribe(subject string, req *stanpb.UnsubscribeRequest) *stanpb.SubscriptionResponse {
	r.t.Helper()
	resp := &stanpb.SubscriptionResponse{}
	stanReq(r.t, r.nc, subject, req, resp)
	return resp
}

func (r *rawClient) closeClient(clientID string) *stanpb.CloseResponse {
	r.t.Helper()
	resp := &stanpb.CloseResponse{}
	stanReq(r.t, r.nc, stanCloseReq, &stanpb.CloseRequest{ClientID: clientID}, resp)
	return resp
}

func (r *rawClient) ping(connID []byte) *stanpb.PingResponse {
	r.t.Helper()
	resp := &stanpb.PingResponse{}
	stanReq(r.t, r.nc, r.discover+".pings", &stanpb.Ping{ConnID: connID}, resp)
	return resp
}

var rawGUIDs struct {
	sync.Mutex
	n int
}

// publish sends one PubMsg as client r and returns the PubAck's error text.
func (r *rawClient) publish(channel string, data []byte) string {
	r.t.Helper()
	rawGUIDs.Lock()
	rawGUIDs.n++
	guid := "g" + strconv.Itoa(rawGUIDs.n)
	rawGUIDs.Unlock()
	ack := &stanpb.PubAck{}
	stanReq(r.t, r.nc, stanPubPrefix+"."+channel, &stanpb.PubMsg{ClientID: r.id, Guid: guid, Subject: channel, Data: data, ConnID: r.connID}, ack)
	if ack.Guid != guid {
		r.t.Fatalf("PubAck for %q, want %q", ack.Guid, guid)
	}
	return ack.Error
}

// ackPrefixOf returns the server's ack prefix ("_INBOX.<serverid>") from an ack inbox.
func ackPrefixOf(t testing.TB, ackInbox string) string {
	t.Helper()
	i := strings.LastIndexByte(ackInbox, '.')
	if i <= 0 {
		t.Fatalf("ack inbox %q has no prefix", ackInbox)
	}
	return ackInbox[:i]
}

// rawWatcher is a raw-socket subscriber to ">" that parses the frames it receives strictly,
// as a client library does: a CR LF injected into a subject shows as a frame of its own.
type rawWatcher struct {
	mu       sync.Mutex
	subjects []string
	bad      []string
}

// watchAll subscribes ">" on a raw socket to the server at url (nats://host:port).
func watchAll(t testing.TB, url string) *rawWatcher {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "nats://"))
	must(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = c.Write([]byte("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB > 1\r\nPING\r\n"))
	must(t, err)
	w := &rawWatcher{}
	ready := make(chan struct{})
	go func() {
		r := bufio.NewReaderSize(c, 1<<16)
		pong := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\r\n")
			f := strings.Fields(line)
			switch {
			case strings.HasPrefix(line, "INFO "), line == "+OK":
			case line == "PING":
				_, _ = c.Write([]byte("PONG\r\n"))
			case line == "PONG":
				if !pong {
					pong = true
					close(ready)
				}
			case len(f) >= 4 && len(f) <= 5 && f[0] == "MSG":
				n, err := strconv.Atoi(f[len(f)-1])
				if err != nil || n < 0 {
					w.note(&w.bad, line)
					continue
				}
				if _, err := r.Discard(n + 2); err != nil {
					return
				}
				w.note(&w.subjects, f[1])
			default:
				w.note(&w.bad, line)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(hostileWait):
		t.Fatal("raw watcher: no PONG")
	}
	return w
}

func (w *rawWatcher) note(list *[]string, s string) {
	w.mu.Lock()
	*list = append(*list, s)
	w.mu.Unlock()
}

// check fails if the watcher saw a frame that is no protocol or a message to a subject
// under one of the prefixes other than allowed.
func (w *rawWatcher) check(t testing.TB, allowed map[string]bool, prefixes ...string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.bad) > 0 {
		t.Errorf("raw subscriber to > parsed lines that are no protocol (injected): %q", clipList(w.bad))
	}
	seen := map[string]bool{}
	for _, s := range w.subjects {
		for _, p := range prefixes {
			if strings.HasPrefix(s, p) && !allowed[s] && !seen[s] {
				seen[s] = true
				t.Errorf("raw subscriber to > got a forged message on %.60q", s)
			}
		}
	}
}

// sawSubject reports whether the watcher got a message on subject.
func (w *rawWatcher) sawSubject(subject string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.subjects {
		if s == subject {
			return true
		}
	}
	return false
}

// clientz returns the registered clients as /streaming/clientsz lists them.
func clientz(t testing.TB, base string) []*streaming.Clientz {
	t.Helper()
	var z stanmon.Clientsz
	monGetJSON(t, base, "/streaming/clientsz", &z)
	return z.Clients
}

// gatedStore holds every Append to its channels' messages until open is called: the
// streaming engine then stops draining its queue, whatever the machine's speed.
type gatedStore struct {
	stores.Store
	gate chan struct{}
	once sync.Once
}

func newGatedStore(s stores.Store) *gatedStore {
	return &gatedStore{Store: s, gate: make(chan struct{})}
}

func (g *gatedStore) open() { g.once.Do(func() { close(g.gate) }) }

func (g *gatedStore) CreateChannel(name string, id uint64) (*stores.Channel, error) {
	return g.wrap(g.Store.CreateChannel(name, id))
}

func (g *gatedStore) CreateChannelAfter(name string, id, after uint64) (*stores.Channel, error) {
	return g.wrap(g.Store.CreateChannelAfter(name, id, after))
}

func (g *gatedStore) wrap(ch *stores.Channel, err error) (*stores.Channel, error) {
	if err != nil {
		return ch, err
	}
	return &stores.Channel{Name: ch.Name, ID: ch.ID, Msgs: gatedMsgs{ch.Msgs, g.gate}, Subs: ch.Subs}, nil
}

type gatedMsgs struct {
	stores.MsgStore
	gate chan struct{}
}

func (m gatedMsgs) Append(batch []stores.Msg) error {
	<-m.gate
	return m.MsgStore.Append(batch)
}
