package core

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core/auth"
)

// respEntries is the size of account a's service reply map.
func respEntries(a *account) int {
	a.resp.mu.Lock()
	defer a.resp.mu.Unlock()
	return len(a.resp.m)
}

// A request through a service import that nobody in the exporting account receives leaves
// no reply map entry behind: before, each one stayed for the response threshold (two
// minutes by default), so a client retrying a service that is down grew the map by one
// entry per request.
func TestServiceImportNoResponderLeavesNoReplyEntry(t *testing.T) {
	au, err := auth.New(auth.Options{Users: []*auth.User{
		{Username: "a", Password: "a", Account: "A"}, {Username: "b", Password: "b", Account: "B"}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Host: "127.0.0.1", Port: -1, Auth: au, Accounts: []AccountConfig{
		{Name: "A", Exports: []Export{{Service: true, Subject: "help.>"}}},
		{Name: "B", Imports: []Import{{Service: true, Account: "A", Subject: "help.>"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("b", "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const n = 200
	for i := range n {
		if _, err := nc.Request("help.me", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("request %d: %v, want no responders", i, err)
		}
	}
	if got := respEntries(s.accountMap()["A"]); got != 0 {
		t.Fatalf("%d reply map entries left by %d requests nobody received, want 0", got, n)
	}

	// A request that is answered still finds its way back.
	svc, err := nats.Connect(s.ClientURL(), nats.UserInfo("a", "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, err := svc.Subscribe("help.>", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := nc.Request("help.me", nil, time.Second); err != nil || string(m.Data) != "ok" {
		t.Fatalf("answered request: %v %v", m, err)
	}
	if got := respEntries(s.accountMap()["A"]); got != 0 {
		t.Fatalf("%d reply map entries left after an answered request, want 0", got)
	}
}

// An old-style request (nats.UseOldRequestStyle: SUB inbox, UNSUB sid 1, PUB) that nobody
// receives leaves no subscription behind, here or on the other servers. The 503 it gets is
// the one message the inbox was limited to: nats.go forgets the subscription on receiving
// it and sends no UNSUB, so before, the server kept every such inbox — in its index and in
// each peer's route interest — until the connection closed.
func TestOldStyleRequestNoRespondersLeavesNoSubscription(t *testing.T) {
	srvs := startMesh(t, 2, nil)
	nc, err := nats.Connect(srvs[0].ClientURL(), nats.UseOldRequestStyle())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const n = 20
	for i := range n {
		if _, err := nc.Request("nobody.home", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("request %d: %v, want no responders", i, err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return srvs[0].NumSubscriptions() == 0 && srvs[1].NumSubscriptions() == 0 })
}
