package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A reload may add and remove accounts, as nats-server's may: a removed account's clients
// are closed and its users refused; a new account's users connect and its imports work at
// once (with the system account's requests). Before, any change to the accounts was
// refused ("accounts cannot change").
func TestAccountsReloadAddsAndRemovesAccounts(t *testing.T) {
	const cBlock = `  C {
    users: [ {user: c, password: c} ]
    imports: [ {stream: {account: A, subject: "public.>"}} ]
  }
`
	const dBlock = `  D {
    users: [ {user: d, password: d} ]
    imports: [
      {stream: {account: A, subject: "public.>"}}
      {service: {account: A, subject: "help.>"}, to: "d.help.>"}
    ]
  }
`
	if !strings.Contains(sysConf, cBlock) {
		t.Fatal("sysConf has no C block to replace")
	}
	path := filepath.Join(t.TempDir(), "accounts.conf")
	must(t, os.WriteFile(path, []byte(sysConf), 0o600))
	m := startServer(t, "-c", path)
	a := connect(t, m, nats.UserInfo("a", "a"))
	b := connect(t, m, nats.UserInfo("b", "b"))
	closed := make(chan struct{})
	connect(t, m, nats.UserInfo("c", "c"), nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if _, err := nats.Connect(clientURL(m), nats.UserInfo("d", "d")); err == nil {
		t.Fatal("d connected before its account exists")
	}

	must(t, os.WriteFile(path, []byte(strings.Replace(sysConf, cBlock, dBlock, 1)), 0o600))
	if err := m.Reload(); err != nil {
		t.Fatalf("reload adding D and removing C: %v", err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("a client of the removed account C stays connected")
	}
	if _, err := nats.Connect(clientURL(m), nats.UserInfo("c", "c")); err == nil {
		t.Fatal("c connected after its account was removed")
	}
	must(t, b.Flush()) // the other accounts' clients stay

	d := connect(t, m, nats.UserInfo("d", "d"))
	news := chanSub(t, d, "public.>")
	must(t, d.Flush())
	_, err := a.Subscribe("help.>", func(m *nats.Msg) { _ = m.Respond(append([]byte("re:"), m.Data...)) })
	must(t, err)
	must(t, a.Flush())
	must(t, a.Publish("public.x", []byte("hello")))
	if got := recvN(t, news, 1, 2*time.Second); string(got[0].Data) != "hello" {
		t.Fatalf("stream import of D: %q", got[0].Data)
	}
	r, err := d.Request("d.help.me", []byte("q"), 2*time.Second)
	must(t, err)
	if string(r.Data) != "re:q" {
		t.Fatalf("service import of D: %q", r.Data)
	}
	var ui struct {
		Account string `json:"account"`
	}
	must(t, json.Unmarshal(sysRequest(t, d, "$SYS.REQ.USER.INFO", "").Data, &ui))
	var cz struct {
		Conns []struct {
			Account string `json:"account"`
		} `json:"connections"`
	}
	must(t, json.Unmarshal(sysRequest(t, d, "$SYS.REQ.ACCOUNT.PING.CONNZ", `{"auth":true}`).Data, &cz))
	if ui.Account != "D" || len(cz.Conns) != 1 || cz.Conns[0].Account != "D" {
		t.Fatalf("system requests of D: user info %+v, connz %+v", ui, cz)
	}
	var az struct {
		Accounts []string `json:"accounts"`
	}
	getJSON(t, m, "/accountz", &az)
	if strings.Join(az.Accounts, ",") != "$G,A,B,D,SYS" {
		t.Fatalf("accounts after the reload: %v", az.Accounts)
	}

	// An account in both configurations may not change; the system account may not go.
	for _, bad := range []string{
		strings.Replace(sysConf, cBlock, strings.Replace(dBlock, `{service: {account: A, subject: "help.>"}, to: "d.help.>"}`, "", 1), 1),
		strings.Replace(strings.Replace(sysConf, cBlock, dBlock, 1), "  SYS { users: [ {user: sys, password: sys} ] }\n", "", 1),
	} {
		must(t, os.WriteFile(path, []byte(bad), 0o600))
		if err := m.Reload(); err == nil {
			t.Fatalf("reload accepted:\n%s", bad)
		}
	}
	if _, err := d.Request("d.help.me", []byte("q"), 2*time.Second); err != nil {
		t.Fatalf("D after refused reloads: %v", err)
	}
}
