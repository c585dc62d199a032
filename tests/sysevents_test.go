package tests

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// An account's connection count is announced on both CONNS subjects when it changes,
// before the connect or disconnect event, as nats-server does (`nats server watch
// accounts` follows them); the global account has none.
func TestSystemAccountConnsEvents(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	ch := make(chan *nats.Msg, 64)
	for _, subj := range []string{"$SYS.ACCOUNT.A.>", "$SYS.SERVER.ACCOUNT.A.CONNS", "$SYS.ACCOUNT.$G.>", "$SYS.SERVER.ACCOUNT.$G.CONNS"} {
		_, err := sys.ChanSubscribe(subj, ch)
		must(t, err)
	}
	must(t, sys.Flush())
	a1 := connect(t, m, nats.UserInfo("a", "a"))
	must(t, a1.Publish("x", []byte("hello")))
	must(t, a1.Flush())
	a2 := connect(t, m, nats.UserInfo("a", "a"))
	connect(t, m, nats.UserInfo("g", "g"))
	a2.Close()
	type conns struct {
		Type   string `json:"type"`
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
		Account string `json:"acc"`
		Conns   int    `json:"conns"`
		Total   int    `json:"total_conns"`
		Subs    int    `json:"num_subscriptions"`
	}
	var got []string
	for _, msg := range recvN(t, ch, 10, 3*time.Second) {
		line := msg.Subject
		if strings.HasSuffix(msg.Subject, ".CONNS") {
			var c conns
			must(t, json.Unmarshal(msg.Data, &c))
			if c.Type != "io.nats.server.advisory.v1.account_connections" || c.Server.ID != m.Server().ID() ||
				c.Account != "A" || c.Total != c.Conns || c.Subs == 0 {
				t.Fatalf("%s: %s", msg.Subject, msg.Data)
			}
			line += fmt.Sprint(" ", c.Conns)
		}
		got = append(got, line)
	}
	want := []string{
		"$SYS.SERVER.ACCOUNT.A.CONNS 1", "$SYS.ACCOUNT.A.SERVER.CONNS 1", "$SYS.ACCOUNT.A.CONNECT",
		"$SYS.SERVER.ACCOUNT.A.CONNS 2", "$SYS.ACCOUNT.A.SERVER.CONNS 2", "$SYS.ACCOUNT.A.CONNECT",
		"$SYS.ACCOUNT.$G.CONNECT",
		"$SYS.SERVER.ACCOUNT.A.CONNS 1", "$SYS.ACCOUNT.A.SERVER.CONNS 1", "$SYS.ACCOUNT.A.DISCONNECT",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	expectNone(t, ch, 100*time.Millisecond)
}

// Every server publishes its statsz on $SYS.SERVER.<id>.STATSZ, soon after start and then
// periodically, as nats-server does (`nats server watch servers` follows it).
func TestSystemAccountStatszEvents(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	ch := chanSub(t, sys, "$SYS.SERVER.*.STATSZ")
	connect(t, m, nats.UserInfo("a", "a"))
	for _, msg := range recvN(t, ch, 2, 3*time.Second) {
		var r sysResp
		must(t, json.Unmarshal(msg.Data, &r))
		if msg.Subject != "$SYS.SERVER."+m.Server().ID()+".STATSZ" || r.Server.ID != m.Server().ID() ||
			r.Statsz == nil || r.Statsz.Connections < 2 || r.Statsz.ActiveServers != 1 {
			t.Fatalf("%s: %s", msg.Subject, msg.Data)
		}
	}
}
