package core_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core"
)

// A reload that lowers max_connections below the clients connected closes the newest ones
// until the rest fit, each told "maximum connections exceeded", as nats-server does; the
// in-process connections are not counted. Before, every client stayed and the new limit
// only applied to later accepts.
func TestReloadLowersMaxConnections(t *testing.T) {
	s := startCore(t, func(o *core.Options) { o.MaxConnections = 10 })
	if _, err := s.Connect("in-process"); err != nil {
		t.Fatal(err)
	}
	type conn struct {
		nc     *nats.Conn
		errs   chan error
		closed chan struct{}
	}
	var conns []conn
	for range 5 {
		c := conn{errs: make(chan error, 4), closed: make(chan struct{})}
		nc, err := nats.Connect(s.ClientURL(), nats.NoReconnect(),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.errs <- err }),
			nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		c.nc = nc
		conns = append(conns, c)
	}
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, MaxConnections: 2}); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns[2:] {
		select {
		case <-c.closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("client %d still connected over the lowered max_connections", i+2)
		}
		if err := c.nc.LastError(); err == nil || !strings.Contains(err.Error(), "maximum connections exceeded") {
			t.Errorf("client %d closed with %v, want maximum connections exceeded", i+2, err)
		}
	}
	for i, c := range conns[:2] {
		if err := c.nc.Flush(); err != nil {
			t.Fatalf("client %d within the limit: %v", i, err)
		}
	}
	if n := s.Varz().Connections; n != 2 {
		t.Fatalf("%d connections after the reload, want 2", n)
	}
	cz, err := s.Connz(core.ConnzOptions{State: "closed"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range cz.Conns {
		if ci.Reason != "Maximum Connections Exceeded" {
			t.Errorf("closed connection %d: reason %q", ci.Cid, ci.Reason)
		}
	}
	// Still the limit for new connections (refused at once: nats.go may see the -ERR or,
	// as against nats-server, a broken pipe writing its CONNECT).
	if nc, err := nats.Connect(s.ClientURL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a third connection was accepted")
	}
}
