package tests

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// Helpers of TestStanDiffCluster (stan_diff_cluster_test.go).

// stanConnectTo connects a stan.go client with id to url (a list of URLs too).
func stanConnectTo(url, id string) (stan.Conn, error) {
	return stan.Connect("test-cluster", id, stan.NatsURL(url), stan.ConnectWait(5*time.Second), stan.PubAckWait(3*time.Second),
		stan.NatsOptions(nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1)))
}

// replay reads every message the world's server holds on channel, from a client of its
// own, up to sequence last (waiting up to 5 s for it), and returns them as "seq:payload"
// in sequence order, or the error met.
func (w *diffWorld) replay(channel string, last uint64) string {
	var out string
	for attempt := 0; attempt < 3; attempt++ {
		var ok bool
		if out, ok = w.replayOnce(channel, last); ok {
			break
		}
	}
	return out
}

// replayOnce is one attempt of replay; false when a request failed (tried again: a request
// lost with a retired route times out).
func (w *diffWorld) replayOnce(channel string, last uint64) (string, bool) {
	sc, err := stanConnectTo(w.url, fmt.Sprintf("cdiff-replay-%d", time.Now().UnixNano()))
	if err != nil {
		return "connect: " + err.Error(), false
	}
	defer sc.Close()
	var mu sync.Mutex
	var b strings.Builder
	var top uint64
	sub, err := sc.Subscribe(channel, func(m *stan.Msg) {
		mu.Lock()
		fmt.Fprintf(&b, " %d:%s%s", m.Sequence, m.Data, redelivMark(m.Redelivered))
		top = max(top, m.Sequence)
		mu.Unlock()
	}, stan.DeliverAllAvailable(), stan.MaxInflight(1024))
	if err != nil {
		return "subscribe: " + err.Error(), false
	}
	defer sub.Close()
	for start := time.Now(); time.Since(start) < 5*time.Second; {
		mu.Lock()
		done := top >= last
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // anything past last: a difference
	mu.Lock()
	defer mu.Unlock()
	return b.String(), true
}

// clusterSnapDiff lists the keys whose deliveries differ beyond what TestStanDiffCluster
// allows: a first delivery of a sequence up to uncertain[channel] that Starling (sg)
// flagged redelivered and nss (sa) did not.
func clusterSnapDiff(sa, sg map[string]string, ref *diffWorld, uncertain map[string]uint64) []string {
	var out []string
	for _, k := range diffSnapshots(sa, sg) {
		if !flagOnlyDiff(sa[k], sg[k], subChannel(ref, k), uncertain) {
			out = append(out, k)
		}
	}
	return out
}

// subChannel is the channel of the subscription keyed "subN" ("" for another key).
func subChannel(w *diffWorld, key string) string {
	var i int
	if _, err := fmt.Sscanf(key, "sub%d", &i); err != nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if i < 0 || i >= len(w.subs) {
		return ""
	}
	return w.subs[i].op.channel
}

// flagOnlyDiff reports whether the delivery lists a (nss) and g (Starling) differ only by
// allowed flags: g's entry is a's plus "R", for a sequence seen first there and at most
// uncertain[channel].
func flagOnlyDiff(a, g, channel string, uncertain map[string]uint64) bool {
	fa, fg := strings.Fields(a), strings.Fields(g)
	if channel == "" || len(fa) != len(fg) {
		return false
	}
	seen := map[string]bool{}
	for i := range fa {
		seq, _, _ := strings.Cut(fa[i], ":")
		first := !seen[seq]
		seen[seq] = true
		if fa[i] == fg[i] {
			continue
		}
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil || !first || fg[i] != fa[i]+"R" || n > uncertain[channel] {
			return false
		}
	}
	return true
}
