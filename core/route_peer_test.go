package core

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// While a simultaneous dial's loser is retired, messages from one server arrive over two
// routes with two cids; RoutePeer names the same server for both, so a layer that binds a
// remote client to the route its requests come over can tell that it has not moved. A
// client connection is no route.
func TestRoutePeerNamesTheServerOfBothRoutes(t *testing.T) {
	s, lost, dialed, info := simultaneousDial(t, "")
	fid := strings.TrimSuffix(strings.TrimPrefix(info, `INFO {"server_id":"`), `","cluster":"mesh"}`+"\r\n")
	local := mustConnect(t, s)
	var mu sync.Mutex
	from := map[string]uint64{}
	if _, err := local.Subscribe("foo", "", func(m Msg) {
		mu.Lock()
		from[string(m.Data)] = m.From
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := dialed.Write([]byte(info)); err != nil {
		t.Fatal(err)
	}
	// Both routes are open now: the loser retired (it still reads), the winner registered.
	if _, err := lost.Write([]byte("RMSG $G foo 4\r\nlost\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := dialed.Write([]byte("RMSG $G foo 3\r\nwon\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(from) == 2 })
	mu.Lock()
	a, b := from["lost"], from["won"]
	mu.Unlock()
	if a == b {
		t.Fatalf("both messages came with cid %d: want two routes", a)
	}
	for _, cid := range []uint64{a, b} {
		if id, ok := local.RoutePeer(cid); !ok || id != fid {
			t.Fatalf("RoutePeer(%d) = %q, %v; want %q, true", cid, id, ok, fid)
		}
	}
	if id, ok := local.RoutePeer(local.c.cid); ok {
		t.Fatalf("RoutePeer of a client connection = %q, true", id)
	}
}
