package core

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// peerSide reads what a server sends a fake peer on one route connection: every RMSG's
// payload per subject (with the queue groups it named), the PINGs and the PONGs.
type peerSide struct {
	mu     sync.Mutex
	got    map[string][]string // subject -> payloads, in arrival order
	queues map[string][]string // subject -> queue groups named, one entry per message
	pings  atomic.Int64
	pongs  atomic.Int64
	eof    chan struct{}
}

func readPeer(nc net.Conn) *peerSide {
	p := &peerSide{got: map[string][]string{}, queues: map[string][]string{}, eof: make(chan struct{})}
	go func() {
		defer close(p.eof)
		br := bufio.NewReader(nc)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(line)
			if len(f) == 1 && f[0] == "PING" {
				p.pings.Add(1)
				continue
			}
			if len(f) == 1 && f[0] == "PONG" {
				p.pongs.Add(1)
				continue
			}
			if len(f) < 4 || f[0] != "RMSG" {
				continue
			}
			n, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				return
			}
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(br, buf); err != nil {
				return
			}
			var qs []string
			switch f[3] {
			case "|":
				qs = f[4 : len(f)-1]
			case "+":
				qs = f[5 : len(f)-1]
			}
			p.mu.Lock()
			p.got[f[2]] = append(p.got[f[2]], string(buf[:n]))
			p.queues[f[2]] = append(p.queues[f[2]], strings.Join(qs, ","))
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *peerSide) payloads(subj string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got[subj]...)
}

func (p *peerSide) queuesOf(subj string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.queues[subj]...)
}

// swap makes s keep the route it dialed and retire the peer's (which had the peer's
// interest), and waits until s has shut its side of the retired one.
func swap(t *testing.T, dialed net.Conn, info string, onLost *peerSide) {
	t.Helper()
	if _, err := dialed.Write([]byte(info)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-onLost.eof:
	case <-time.After(3 * time.Second):
		t.Fatal("the retired route was never shut")
	}
}

func write(t *testing.T, nc net.Conn, s string) {
	t.Helper()
	if _, err := nc.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// A subscriber behind the peer, a publisher here publishing all through a simultaneous
// dial's swap: every message reaches the peer exactly once. The peer re-announces its
// interest on the route that stays only a round trip after s retired the other; what s
// published in between went nowhere (the retired route's interest had left the index at
// once), where now the retired route's interest is carried over to the route that stays
// until the peer's answer to a PING shows its re-announcement complete.
func TestRouteSwapDeliversEveryMessageOnce(t *testing.T) {
	s, lost, dialed, info := simultaneousDial(t, "RS+ $G bar\r\n")
	onLost, onKept := readPeer(lost), readPeer(dialed)
	local := mustConnect(t, s)
	waitFor(t, 2*time.Second, func() bool { return interest(s, "bar") == 1 })

	var published atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = local.Publish("bar", "", nil, []byte(strconv.Itoa(i)))
			published.Add(1)
			if i%20 == 19 {
				local.Flush()
				time.Sleep(time.Millisecond)
			}
		}
	}()
	atLeast := func(n int64) {
		t.Helper()
		from := published.Load()
		waitFor(t, 3*time.Second, func() bool { return published.Load() >= from+n })
	}
	finish := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
		local.Flush()
	}
	defer finish()
	received := func() int {
		return len(onLost.payloads("bar")) + len(onKept.payloads("bar"))
	}

	atLeast(50)
	swap(t, dialed, info, onLost)
	atLeast(100) // published after the retire, before the peer re-announced anything
	from := published.Load()
	deadline := time.Now().Add(3 * time.Second)
	for int64(received()) < from && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := received(); int64(got) < from {
		t.Fatalf("the peer got %d of the first %d messages: those published after the swap, before its re-announcement, were lost", got, from)
	}
	// The peer re-announces its interest on the route that stays, then answers s's PING.
	write(t, dialed, "RS+ $G bar\r\n")
	waitFor(t, 2*time.Second, func() bool { return onKept.pings.Load() > 0 })
	write(t, dialed, "PONG\r\n")
	atLeast(100)
	finish()

	n := int(published.Load())
	waitFor(t, 3*time.Second, func() bool { return received() >= n })
	time.Sleep(100 * time.Millisecond) // any duplicate would have come by now
	seen := make(map[string]int, n)
	for _, p := range append(onLost.payloads("bar"), onKept.payloads("bar")...) {
		seen[p]++
	}
	for i := range n {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Fatalf("message %d arrived %d times (of %d published; %d on the retired route, %d on the kept one)",
				i, c, n, len(onLost.payloads("bar")), len(onKept.payloads("bar")))
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages arrived, %d published", len(seen), n)
	}
	if got := interest(s, "bar"); got != 1 {
		t.Fatalf("interest in bar %d after the re-announcement, want 1 (carried and announced are one entry)", got)
	}
}

// An UNSUB from the peer while its interest is carried wins at once, whichever of the two
// routes it comes over, before the PING's answer.
func TestRouteSwapUnsubDuringCarryWins(t *testing.T) {
	s, lost, dialed, info := simultaneousDial(t, "RS+ $G bar\r\nRS+ $G baz\r\nRS+ $G qux\r\nRS+ $G qq grp 2\r\nRS+ $G mark\r\n")
	onLost, onKept := readPeer(lost), readPeer(dialed)
	local := mustConnect(t, s)
	waitFor(t, 2*time.Second, func() bool {
		return interest(s, "bar") == 1 && interest(s, "baz") == 1 && interest(s, "qux") == 1 && interest(s, "qq") == 1
	})
	swap(t, dialed, info, onLost)
	for _, subj := range []string{"bar", "baz", "qux", "qq"} {
		if got := interest(s, subj); got != 1 {
			t.Fatalf("interest in %s %d right after the swap, want 1 (carried)", subj, got)
		}
	}
	// The peer unsubscribes baz after switching to the kept route, and qux before it
	// switched (so on the retired one, which s still reads).
	write(t, dialed, "RS- $G baz\r\nRS- $G qq grp\r\n")
	write(t, lost, "RS- $G qux\r\n")
	waitFor(t, 2*time.Second, func() bool {
		return interest(s, "baz") == 0 && interest(s, "qux") == 0 && interest(s, "qq") == 0
	})
	for _, subj := range []string{"baz", "qux", "qq", "bar"} {
		_ = local.Publish(subj, "", nil, []byte("x"))
	}
	local.Flush()
	waitFor(t, 2*time.Second, func() bool { return len(onKept.payloads("bar")) == 1 })
	time.Sleep(50 * time.Millisecond)
	for _, subj := range []string{"baz", "qux", "qq"} {
		if n := len(onKept.payloads(subj)) + len(onLost.payloads(subj)); n != 0 {
			t.Fatalf("%d messages on %s reached the peer after it unsubscribed", n, subj)
		}
	}
	// A stale UNSUB on the retired route does not undo what the peer announced since on the
	// kept one.
	write(t, dialed, "RS+ $G bar\r\nPING\r\n")
	waitFor(t, 2*time.Second, func() bool { return onKept.pongs.Load() > 0 })
	write(t, lost, "RS- $G bar\r\nRS- $G mark\r\n") // mark: read in order after bar's
	waitFor(t, 2*time.Second, func() bool { return interest(s, "mark") == 0 })
	if got := interest(s, "bar"); got != 1 {
		t.Fatalf("interest in bar %d, want 1: a stale UNSUB on the retired route undid a newer RS+", got)
	}
	waitFor(t, 2*time.Second, func() bool { return onKept.pings.Load() > 0 })
	write(t, dialed, "PONG\r\n")
	time.Sleep(50 * time.Millisecond)
	if got := interest(s, "bar"); got != 1 {
		t.Fatalf("interest in bar %d, want 1: announced on the kept route after the stale UNSUB was sent", got)
	}
}

// A queue group's interest is carried too, with its weight, and messages for it cross the
// kept route naming the group; what the peer does not announce again by its PONG leaves.
func TestRouteSwapCarriesQueueInterestUntilPong(t *testing.T) {
	s, lost, dialed, info := simultaneousDial(t, "RS+ $G qq grp 3\r\nRS+ $G bar\r\nRS+ $G baz\r\nRS+ $G gone grp 1\r\n")
	onLost, onKept := readPeer(lost), readPeer(dialed)
	local := mustConnect(t, s)
	waitFor(t, 2*time.Second, func() bool {
		return interest(s, "qq") == 1 && interest(s, "bar") == 1 && interest(s, "baz") == 1 && interest(s, "gone") == 1
	})
	swap(t, dialed, info, onLost)
	const n = 100
	for range n {
		_ = local.Publish("qq", "", nil, []byte("x"))
	}
	local.Flush()
	waitFor(t, 2*time.Second, func() bool { return len(onKept.payloads("qq")) == n })
	for _, q := range onKept.queuesOf("qq") {
		if q != "grp" {
			t.Fatalf("a carried queue message named groups %q, want grp", q)
		}
	}
	r := s.gacc.subs.Match([]byte("qq"))
	if len(r.Queues) != 1 || len(r.Queues[0].Members) != 1 || r.Queues[0].Members[0].weight.Load() != 3 {
		t.Fatalf("carried queue interest %+v, want one member of weight 3", r.Queues)
	}

	// The peer announces qq (weight now 1) and bar again, not baz or gone, then answers.
	write(t, dialed, "RS+ $G qq grp 1\r\nRS+ $G bar\r\n")
	waitFor(t, 2*time.Second, func() bool { return onKept.pings.Load() > 0 })
	time.Sleep(50 * time.Millisecond)
	if interest(s, "baz") != 1 || interest(s, "gone") != 1 {
		t.Fatal("carried interest left before the peer's PONG")
	}
	write(t, dialed, "PONG\r\n")
	waitFor(t, 2*time.Second, func() bool { return interest(s, "baz") == 0 && interest(s, "gone") == 0 })
	if interest(s, "qq") != 1 || interest(s, "bar") != 1 {
		t.Fatalf("interest in qq %d, bar %d after the PONG, want 1 and 1", interest(s, "qq"), interest(s, "bar"))
	}
	r = s.gacc.subs.Match([]byte("qq"))
	if w := r.Queues[0].Members[0].weight.Load(); w != 1 {
		t.Fatalf("queue weight %d after the re-announcement, want 1", w)
	}
	for range n {
		_ = local.Publish("qq", "", nil, []byte("x"))
	}
	local.Flush()
	waitFor(t, 2*time.Second, func() bool { return len(onKept.payloads("qq")) == 2*n })
	if got := len(onLost.payloads("qq")); got != 0 {
		t.Fatalf("%d queue messages on the retired route, want 0", got)
	}
}

// A hit recorded on a route just before it retired (matched on interest that moved since)
// goes to the route that took the interest over, down a chain of them, and only once: when
// that route is among the message's hits already, the queue groups join its hit.
func TestRetiredRouteHitRedirects(t *testing.T) {
	x := &client{kind: kindRoute, route: &routeState{}}
	y := &client{kind: kindRoute, route: &routeState{}}
	z := &client{kind: kindRoute, route: &routeState{}}
	x.route.next.Store(y)
	y.route.next.Store(z)

	var hb hitBuf
	hb.hits = append(hb.hits, routeHit{c: x, queues: []string{"g1"}})
	hb.redirect(0)
	if hb.hits[0].c != z || len(hb.hits[0].queues) != 1 {
		t.Fatalf("a lone hit on a retired route went to %p with %v, want the last successor %p", hb.hits[0].c, hb.hits[0].queues, z)
	}

	hb.hits = append(hb.hits[:0], routeHit{c: x, queues: []string{"g1", "g2"}}, routeHit{c: z, queues: []string{"g2"}})
	hb.redirect(0)
	if hb.hits[0].c != nil {
		t.Fatal("a retired route's hit was kept beside its successor's: the peer would get the message twice")
	}
	if q := hb.hits[1].queues; len(q) != 2 || q[0] != "g2" || q[1] != "g1" {
		t.Fatalf("the successor's hit names groups %v, want [g2 g1]", q)
	}

	// add redirects at once: a match on both routes' interest records one hit.
	hb.hits = hb.hits[:0]
	hb.add(x, "")
	hb.add(z, "g3")
	if len(hb.hits) != 1 || hb.hits[0].c != z || len(hb.hits[0].queues) != 1 {
		t.Fatalf("hits %+v, want one on the successor naming g3", hb.hits)
	}
}
