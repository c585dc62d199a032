package core

import (
	"testing"
	"time"
)

// The peer's interest learnt over the route that loses the tie-break must not vanish before
// the peer has announced it again over the route that stays: a message published here in
// between goes to the peer over the kept route, once, and interest the peer does not announce
// again by the PONG that follows its INFO leaves the index. (Before, retire dropped it at
// once: a publish after the retire and before the peer's RS+ on the kept route was lost.)
func TestRetiredRouteInterestCarriesOver(t *testing.T) {
	s, lost, dialed, info := simultaneousDial(t, "RS+ $G bar\r\nRS+ $G baz\r\nRS+ $G qq grp 3\r\n")
	onLoser := readRoute(lost, "bar")
	onWinner := readRoute(dialed, "bar")
	local := mustConnect(t, s)
	waitFor(t, 2*time.Second, func() bool {
		return interest(s, "bar") == 1 && interest(s, "baz") == 1 && interest(s, "qq") == 1
	})

	// s keeps the route it dialed and retires the other; the peer has not announced its
	// interest on the kept route yet.
	if _, err := dialed.Write([]byte(info)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-onLoser.eof:
	case <-time.After(3 * time.Second):
		t.Fatal("the retired route was never shut")
	}
	const n = 200
	for range n {
		_ = local.Publish("bar", "", nil, []byte("xyz"))
	}
	local.Flush()
	waitFor(t, 2*time.Second, func() bool { return onWinner.msgs.Load() == n })
	if got := interest(s, "baz"); got != 1 {
		t.Fatalf("interest in baz %d before the peer's PONG, want 1", got)
	}

	// The peer announces bar (and its queue group) again, not baz, then answers s's PING.
	if _, err := dialed.Write([]byte("RS+ $G bar\r\nRS+ $G qq grp 1\r\nPONG\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return interest(s, "baz") == 0 })
	if b, q := interest(s, "bar"), interest(s, "qq"); b != 1 || q != 1 {
		t.Fatalf("interest in bar %d, qq %d after the PONG, want 1 and 1", b, q)
	}
	for range n {
		_ = local.Publish("bar", "", nil, []byte("xyz"))
	}
	local.Flush()
	waitFor(t, 2*time.Second, func() bool { return onWinner.msgs.Load() == 2*n })
	time.Sleep(100 * time.Millisecond)
	if got, lo := onWinner.msgs.Load(), onLoser.msgs.Load(); got != 2*n || lo != 0 {
		t.Fatalf("the peer got %d messages on the kept route and %d on the retired one, want %d and 0", got, lo, 2*n)
	}
}
