package tests

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestCoreDiffClients: what nats.go sees of request/reply, headers and queue groups, the
// same on nats-server and Starling: no-responders (new and old request styles, with and
// without headers on the request), a request with headers answered with headers, and queue
// groups where each message reaches exactly one member of each group (which one may differ).
func TestCoreDiffClients(t *testing.T) {
	ref, star := startDiffServers(t, "")
	r := diffClientScenario(t, "nats://"+ref)
	s := diffClientScenario(t, "nats://"+star)
	if !slices.Equal(r, s) {
		t.Fatalf("nats.go sees different results\nnats-server:\n  %s\nstarling:\n  %s",
			strings.Join(r, "\n  "), strings.Join(s, "\n  "))
	}
}

func diffClientScenario(t *testing.T, url string) []string {
	var out []string
	add := func(f string, a ...any) { out = append(out, fmt.Sprintf(f, a...)) }
	conn := func(opts ...nats.Option) *nats.Conn {
		nc, err := nats.Connect(url, opts...)
		must(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	errText := func(err error) string {
		switch {
		case err == nil:
			return "ok"
		case errors.Is(err, nats.ErrNoResponders):
			return "no responders"
		case errors.Is(err, nats.ErrTimeout):
			return "timeout"
		}
		return err.Error()
	}

	nc := conn()
	// No responders, new and old request styles, with and without headers.
	_, err := nc.Request("nobody", []byte("x"), 5*time.Second)
	add("request to nobody: %s", errText(err))
	m := nats.NewMsg("nobody")
	m.Header.Set("K", "v")
	_, err = nc.RequestMsg(m, 5*time.Second)
	add("request with headers to nobody: %s", errText(err))
	old := conn(nats.UseOldRequestStyle())
	_, err = old.Request("nobody", []byte("x"), 5*time.Second)
	add("old-style request to nobody: %s", errText(err))
	// The old style subscribes a fresh inbox with "UNSUB sid 1" each time.
	_, err = old.Request("nobody", nil, 5*time.Second)
	add("second old-style request to nobody: %s", errText(err))

	// A responder echoing headers and payload, with one of its own.
	resp := conn()
	_, err = resp.Subscribe("svc.*", func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Data = append([]byte("re:"), m.Data...)
		r.Header = m.Header
		if r.Header == nil {
			r.Header = nats.Header{}
		}
		r.Header.Set("Responder", m.Subject)
		_ = resp.PublishMsg(r)
	})
	must(t, err)
	must(t, resp.Flush())
	m = nats.NewMsg("svc.a")
	m.Header.Add("Multi", "1")
	m.Header.Add("Multi", "2")
	m.Header.Set("Case-Kept", "Yes")
	m.Data = []byte("payload")
	rm, err := nc.RequestMsg(m, 2*time.Second)
	if err != nil {
		add("request with headers: %s", errText(err))
	} else {
		add("reply %q multi=%v case=%q responder=%q status=%q", rm.Data, rm.Header.Values("Multi"),
			rm.Header.Get("Case-Kept"), rm.Header.Get("Responder"), rm.Header.Get("Status"))
	}
	rm, err = nc.Request("svc.b", nil, 2*time.Second)
	if err != nil {
		add("plain request: %s", errText(err))
	} else {
		add("reply %q responder=%q", rm.Data, rm.Header.Get("Responder"))
	}

	// Queue groups: g1 has members with different subjects on three connections, g2 two
	// members, plus a plain subscriber; 60 messages over three subjects.
	counts := map[string]int{}
	got := make(chan string, 1000)
	subscribe := func(c *nats.Conn, subj, queue, name string) {
		var err error
		h := func(m *nats.Msg) { got <- name + " " + m.Subject }
		if queue == "" {
			_, err = c.Subscribe(subj, h)
		} else {
			_, err = c.QueueSubscribe(subj, queue, h)
		}
		must(t, err)
		must(t, c.Flush())
	}
	a, b, c := conn(), conn(), conn()
	subscribe(a, "q.*", "g1", "g1")
	subscribe(b, "q.>", "g1", "g1")
	subscribe(c, "q.x", "g1", "g1")
	subscribe(a, "q.x", "g2", "g2")
	subscribe(b, "q.*", "g2", "g2")
	subscribe(c, "q.>", "", "plain")
	const n = 60
	for i := range n {
		must(t, nc.Publish([]string{"q.x", "q.y", "q.y.z"}[i%3], nil))
	}
	must(t, nc.Flush())
	want := n + n + n*2/3 // plain all, g1 all (q.> matches all), g2 q.x and q.y
	deadline := time.After(5 * time.Second)
	for total := 0; total < want; total++ {
		select {
		case s := <-got:
			counts[s]++
		case <-deadline:
			add("queue deliveries: only %d of %d", total, want)
			total = want
		}
	}
	select {
	case s := <-got:
		add("queue delivery beyond the expected: %s", s)
	case <-time.After(100 * time.Millisecond):
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		add("%s: %d", k, counts[k])
	}
	return out
}
