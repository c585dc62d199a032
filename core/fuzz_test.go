package core_test

import (
	"bufio"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/starling-io/starling/core"
)

var (
	fuzzOnce sync.Once
	fuzzSrv  *core.Server
)

// FuzzServerInput feeds arbitrary bytes to a live server over a socket, after a CONNECT
// that turns headers on, and checks that the server still answers a fresh client: no input
// may panic it or wedge it.
func FuzzServerInput(f *testing.F) {
	for _, seed := range []string{
		"PUB foo 5\r\nhello\r\n",
		"SUB foo 1\r\nPUB foo bar 2\r\nhi\r\nUNSUB 1 1\r\n",
		"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
		"SUB _INBOX.* 9\r\nPUB nobody _INBOX.x 0\r\n\r\n",
		"CONNECT {\"protocol\":5}\r\n",
		"SUB foo..bar 1\r\nPUB foo.* 0\r\n\r\n",
		"PING\r\nPONG\r\n+OK\r\n-ERR 'x'\r\n",
		"PUB foo 3\r\nabcXY",
		"SUB a q 1\r\nSUB a q 2\r\nPUB a 1\r\nx\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzOnce.Do(func() {
			s, err := core.New(core.Options{Host: "127.0.0.1", Port: -1, MaxPayload: 4096, MaxControlLine: 256})
			if err != nil {
				panic(err)
			}
			if err := s.Start(); err != nil {
				panic(err)
			}
			fuzzSrv = s
		})
		addr := fuzzSrv.Addr().String()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = nc.Write([]byte("CONNECT {\"verbose\":false,\"pedantic\":true,\"headers\":true,\"no_responders\":true,\"protocol\":1}\r\n"))
		_, _ = nc.Write(in)
		nc.Close()

		probeHealthy(t, addr, "PING\r\n", in)
	})
}

// probeHealthy checks that a fresh client gets INFO, then PONG for send, after input in.
func probeHealthy(t *testing.T, addr, send string, in []byte) {
	t.Helper()
	probe, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	_ = probe.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(probe)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("no INFO after input %q: %v", in, err)
	}
	_, _ = probe.Write([]byte(send))
	if l, err := r.ReadString('\n'); err != nil || l != "PONG\r\n" {
		t.Fatalf("server unhealthy after input %q: %q %v", in, l, err)
	}
}

var (
	routeFuzzOnce sync.Once
	routeFuzzSrv  *core.Server
)

// FuzzRouteInput is FuzzServerInput for the route port: a peer that completed the handshake
// (CONNECT and INFO) then sends anything. The server must stay up and keep serving clients.
func FuzzRouteInput(f *testing.F) {
	for _, seed := range []string{
		"RS+ $G foo\r\nRS+ $G bar q 3\r\nRS- $G foo\r\n",
		"RMSG $G foo 5\r\nhello\r\nRMSG $G foo + _INBOX.1 q 2\r\nhi\r\n",
		"HMSG foo | q 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
		"INFO {\"server_id\":\"NOTHER\",\"ip\":\"nats-route://127.0.0.1:1/\"}\r\n",
		"RS+ $G foo..bar\r\n", "RMSG $G foo 99999999\r\n", "PING\r\nPONG\r\n-ERR 'x'\r\n",
		// Accounts: known and unknown ones, a service reply, an imported service and stream.
		"RS+ A svc.x\r\nRMSG A svc.x _R_.x.1 2\r\nhi\r\nRMSG B ask.x r 2\r\nhi\r\nRS+ NOPE x\r\nRMSG NOPE x 0\r\n\r\n",
		"RS+ B imp.>\r\nRMSG A pub.x 1\r\nx\r\nRS- A svc.x\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		routeFuzzOnce.Do(func() {
			s, err := core.New(core.Options{Host: "127.0.0.1", Port: -1, MaxPayload: 4096,
				Cluster: &core.ClusterOptions{Host: "127.0.0.1", Port: -1},
				Accounts: []core.AccountConfig{
					{Name: "A", Exports: []core.Export{{Subject: "pub.>"}, {Service: true, Subject: "svc.*"}}},
					{Name: "B", Imports: []core.Import{{Account: "A", Subject: "pub.>", Prefix: "imp"},
						{Service: true, Account: "A", Subject: "svc.*", To: "ask.*"}}},
				}})
			if err != nil {
				panic(err)
			}
			if err := s.Start(); err != nil {
				panic(err)
			}
			routeFuzzSrv = s
		})
		nc, err := net.Dial("tcp", routeFuzzSrv.ClusterAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = nc.Write([]byte("CONNECT {\"name\":\"NFUZZ\"}\r\nINFO {\"server_id\":\"NFUZZ\"}\r\n"))
		_, _ = nc.Write(in)
		nc.Close()

		probeHealthy(t, routeFuzzSrv.Addr().String(), "CONNECT {\"verbose\":false}\r\nPING\r\n", in)
	})
}
