package core

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core/auth"
)

// A route that last named an account a reload removed and then added back finds the new
// account, not the old one: before, its one-entry cache matched by name only, so the
// re-added account's subscriptions landed in the old account's index on the other server
// and no message crossed the route ("nats: timeout").
func TestRouteFindsAnAccountAddedBack(t *testing.T) {
	users := func(withA bool) *auth.Authenticator {
		us := []*auth.User{{Username: "b", Password: "b", Account: "B"}}
		if withA {
			us = append(us, &auth.User{Username: "a", Password: "a", Account: "A"})
		}
		au, err := auth.New(auth.Options{Users: us})
		if err != nil {
			t.Fatal(err)
		}
		return au
	}
	accs := func(withA bool) []AccountConfig {
		out := []AccountConfig{{Name: "B"}}
		if withA {
			out = append(out, AccountConfig{Name: "A"})
		}
		return out
	}
	srvs := startMesh(t, 2, func(i int, o *Options) { o.Auth, o.Accounts = users(true), accs(true) })
	conn := func(s *Server) *nats.Conn {
		nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("a", "a"), nats.NoReconnect())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	// The route from 1 to 0 names A last.
	first := conn(srvs[1])
	if _, err := first.SubscribeSync("x"); err != nil {
		t.Fatal(err)
	}
	if err := first.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	reload := func(withA bool) {
		for _, s := range srvs {
			o := *s.o()
			o.Auth, o.Accounts = users(withA), accs(withA)
			if err := s.Reload(o); err != nil {
				t.Fatal(err)
			}
		}
	}
	reload(false)
	reload(true)
	sub := conn(srvs[1])
	sy, err := sub.SubscribeSync("y")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := conn(srvs[0])
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := pub.Publish("y", []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, err := sy.NextMsg(200 * time.Millisecond); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a message of the account added back never crossed the route")
		}
	}
}
