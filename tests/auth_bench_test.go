package tests

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/auth"
)

// BenchmarkNkeyConnect authenticates real nats.go connections with an nkey signature over
// the per-connection nonce. The target: 1,000 connections in under a second, i.e.
// under 1 ms per op here. Run: go test -run '^$' -bench NkeyConnect -benchtime 1000x ./tests/
func BenchmarkNkeyConnect(b *testing.B) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		b.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	a, err := auth.New(auth.Options{Users: []*auth.User{{Nkey: pub}}})
	if err != nil {
		b.Fatal(err)
	}
	s, err := core.New(core.Options{Host: "127.0.0.1", Port: -1, Auth: a})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(b.Context())
	opt := nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) })
	conns := make([]*nats.Conn, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		nc, err := nats.Connect(s.ClientURL(), opt)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, nc)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	for _, nc := range conns {
		nc.Close()
	}
}
