package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// sysConf is accountsConf with a system account and its user.
var sysConf = strings.Replace(accountsConf, "  C {", "  SYS { users: [ {user: sys, password: sys} ] }\n  C {", 1) +
	"system_account: SYS\n"

type sysResp struct {
	Server struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Ver  string `json:"ver"`
	} `json:"server"`
	Statsz *struct {
		Connections   int `json:"connections"`
		ActiveServers int `json:"active_servers"`
	} `json:"statsz"`
	Data  json.RawMessage `json:"data"`
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

func sysRequest(t *testing.T, nc *nats.Conn, subj, body string) sysResp {
	t.Helper()
	m, err := nc.Request(subj, []byte(body), 2*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subj, err)
	}
	var r sysResp
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("%s: %v: %s", subj, err, m.Data)
	}
	if r.Error != nil {
		t.Fatalf("%s: error %+v", subj, r.Error)
	}
	return r
}

// The system user's $SYS.REQ.SERVER requests are answered from the monitoring data; other
// accounts' users can neither send them nor see them.
func TestSystemAccountRequests(t *testing.T) {
	m := startAccounts(t, sysConf)
	id := m.Server().ID()
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	a := connect(t, m, nats.UserInfo("a", "a"))
	g := connect(t, m, nats.UserInfo("g", "g"))
	spyA, spyG := chanSub(t, a, "$SYS.>"), chanSub(t, g, ">")

	r := sysRequest(t, sys, "$SYS.REQ.SERVER.PING", "")
	if r.Server.ID != id || r.Statsz == nil || r.Statsz.Connections < 3 || r.Statsz.ActiveServers != 1 {
		t.Fatalf("statsz %+v %+v", r.Server, r.Statsz)
	}
	for _, kind := range []string{"VARZ", "CONNZ", "SUBSZ", "ROUTEZ", "HEALTHZ", "ACCOUNTZ", "STATSZ"} {
		for _, subj := range []string{"$SYS.REQ.SERVER.PING." + kind, "$SYS.REQ.SERVER." + id + "." + kind} {
			r := sysRequest(t, sys, subj, `{"server_name":"`+m.Server().Name()+`","exact_match":true}`)
			if r.Server.ID != id || (kind != "STATSZ" && len(r.Data) == 0) {
				t.Fatalf("%s: %+v", subj, r)
			}
		}
	}
	var cz struct {
		Conns []struct {
			Account string `json:"account"`
			User    string `json:"authorized_user"`
		} `json:"connections"`
	}
	r = sysRequest(t, sys, "$SYS.REQ.SERVER.PING.CONNZ", `{"acc":"A","auth":true}`)
	must(t, json.Unmarshal(r.Data, &cz))
	if len(cz.Conns) != 1 || cz.Conns[0].Account != "A" || cz.Conns[0].User != "a" {
		t.Fatalf("connz of account A: %+v", cz)
	}
	var az struct {
		System   string   `json:"system_account"`
		Accounts []string `json:"accounts"`
	}
	r = sysRequest(t, sys, "$SYS.REQ.SERVER.PING.ACCOUNTZ", "")
	must(t, json.Unmarshal(r.Data, &az))
	if az.System != "SYS" || strings.Join(az.Accounts, ",") != "$G,A,B,C,SYS" {
		t.Fatalf("accountz %+v", az)
	}
	// Filtered out: no answer.
	if _, err := sys.Request("$SYS.REQ.SERVER.PING.VARZ", []byte(`{"server_name":"nobody"}`), 300*time.Millisecond); err == nil {
		t.Fatal("a server that does not match the filter answered")
	}
	// Ordinary users: nothing answers, nothing leaks.
	b := connect(t, m, nats.UserInfo("b", "b"))
	c := connect(t, m, nats.UserInfo("c", "c"))
	for _, nc := range []*nats.Conn{b, c} {
		if _, err := nc.Request("$SYS.REQ.SERVER.PING", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("ordinary user's $SYS request: %v", err)
		}
	}
	must(t, sys.Publish("$SYS.REQ.SERVER.PING.VARZ", nil))
	must(t, sys.Flush())
	expectNone(t, spyA, 200*time.Millisecond)
	for {
		select {
		case m := <-spyG:
			if strings.HasPrefix(m.Subject, "$SYS") || strings.HasPrefix(m.Subject, "_INBOX") {
				t.Fatalf("global account saw %q", m.Subject)
			}
			continue
		default:
		}
		break
	}
}

// natscli's server commands work as the system user.
func TestNatsCLIServerCommands(t *testing.T) {
	cli := natsCLI(t)
	m := startAccounts(t, sysConf, "-n", "cli-node")
	connect(t, m, nats.UserInfo("a", "a"), nats.Name("an-a-client"))
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		all := append([]string{"-s", clientURL(m), "--user", "sys", "--password", "sys", "--timeout", "2s"}, args...)
		out, err := exec.CommandContext(ctx, cli, all...).CombinedOutput()
		if err != nil {
			t.Fatalf("nats %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "ping", "1"}, "cli-node"},
		{[]string{"server", "list", "1"}, "cli-node"},
		{[]string{"server", "info", "cli-node"}, "cli-node"},
		{[]string{"server", "report", "connections", "1"}, "an-a-client"},
		{[]string{"server", "report", "health", "1"}, "ok: 1 / err: 0"},
		{[]string{"server", "report", "accounts"}, "│ A "},
	} {
		if out := run(c.args...); !strings.Contains(out, c.want) {
			t.Errorf("nats %s: no %q in\n%s", strings.Join(c.args, " "), c.want, out)
		}
	}
}

// The system account hears clients of every account connect and disconnect.
func TestSystemAccountConnectEvents(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	ch := chanSub(t, sys, "$SYS.ACCOUNT.A.*")
	a, err := nats.Connect(clientURL(m), nats.UserInfo("a", "a"), nats.Name("evented"))
	must(t, err)
	must(t, a.Flush())
	a.Close()
	type event struct {
		Type   string `json:"type"`
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
		Client struct {
			Account string `json:"acc"`
			User    string `json:"user"`
			Name    string `json:"name"`
		} `json:"client"`
		Received struct {
			Msgs int64 `json:"msgs"`
		} `json:"received"`
		Reason string `json:"reason"`
	}
	var got []string
	for _, msg := range recvN(t, ch, 2, 3*time.Second) {
		var ev event
		must(t, json.Unmarshal(msg.Data, &ev))
		if ev.Client.Account != "A" || ev.Client.User != "a" || ev.Client.Name != "evented" || ev.Server.ID != m.Server().ID() {
			t.Fatalf("%s: %+v", msg.Subject, ev)
		}
		got = append(got, msg.Subject+" "+ev.Type+" "+ev.Reason)
	}
	want := []string{
		"$SYS.ACCOUNT.A.CONNECT io.nats.server.advisory.v1.client_connect ",
		"$SYS.ACCOUNT.A.DISCONNECT io.nats.server.advisory.v1.client_disconnect Client Closed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// /varz names the system account, as nats-server does.
func TestVarzSystemAccount(t *testing.T) {
	m := startAccounts(t, sysConf)
	var varz struct {
		SystemAccount string `json:"system_account"`
	}
	if getJSON(t, m, "/varz", &varz); varz.SystemAccount != "SYS" {
		t.Fatalf("system_account %q, want SYS", varz.SystemAccount)
	}
}

// The account-level requests answer as nats-server's: every user learns who it is
// ($SYS.REQ.USER.INFO, which `nats account info` shows) and sees its own account's
// connections and statistics; the system user asks about any account with
// $SYS.REQ.ACCOUNT.<acc>.<KIND>, which ordinary users cannot reach.
func TestSystemAccountAccountRequests(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	a := connect(t, m, nats.UserInfo("a", "a"), nats.Name("an-a"))
	connect(t, m, nats.UserInfo("b", "b"), nats.Name("a-b"))
	chanSub(t, a, "mine.a")

	type userInfo struct {
		User    string `json:"user"`
		Account string `json:"account"`
	}
	for _, c := range []struct {
		nc         *nats.Conn
		user, acct string
	}{{a, "a", "A"}, {sys, "sys", "SYS"}} {
		var ui userInfo
		must(t, json.Unmarshal(sysRequest(t, c.nc, "$SYS.REQ.USER.INFO", "not json: ignored").Data, &ui))
		if ui.User != c.user || ui.Account != c.acct {
			t.Fatalf("user info of %s: %+v", c.user, ui)
		}
	}
	type connz struct {
		Conns []struct {
			Name    string `json:"name"`
			Account string `json:"account"`
		} `json:"connections"`
	}
	names := func(r sysResp) string {
		var cz connz
		must(t, json.Unmarshal(r.Data, &cz))
		var n []string
		for _, c := range cz.Conns {
			n = append(n, c.Account+"/"+c.Name)
		}
		return strings.Join(n, ",")
	}
	// An ordinary user sees its own account only, however it asks.
	for _, subj := range []string{"$SYS.REQ.SERVER.PING.CONNZ", "$SYS.REQ.ACCOUNT.PING.CONNZ"} {
		for _, body := range []string{`{"auth":true}`, `{"auth":true,"acc":"B"}`} {
			if got := names(sysRequest(t, a, subj, body)); got != "A/an-a" {
				t.Fatalf("%s %s as a: %s", subj, body, got)
			}
		}
	}
	var st struct {
		Stats []struct {
			Account string `json:"acc"`
			Conns   int    `json:"conns"`
		} `json:"account_statz"`
	}
	must(t, json.Unmarshal(sysRequest(t, a, "$SYS.REQ.ACCOUNT.PING.STATZ", `{"accounts":["B"]}`).Data, &st))
	if len(st.Stats) != 1 || st.Stats[0].Account != "A" || st.Stats[0].Conns != 1 {
		t.Fatalf("account statz as a: %+v", st)
	}
	for _, subj := range []string{"$SYS.REQ.ACCOUNT.B.CONNZ", "$SYS.REQ.ACCOUNT.A.INFO", "$SYS.REQ.SERVER.PING.VARZ"} {
		if _, err := a.Request(subj, nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("%s as a: %v", subj, err)
		}
	}
	// The system user asks about any account.
	if got := names(sysRequest(t, sys, "$SYS.REQ.ACCOUNT.B.CONNZ", `{"auth":true}`)); got != "B/a-b" {
		t.Fatalf("connz of B: %s", got)
	}
	var sz struct {
		Subs []struct {
			Subject string `json:"subject"`
		} `json:"subscriptions_list"`
	}
	must(t, json.Unmarshal(sysRequest(t, sys, "$SYS.REQ.ACCOUNT.A.SUBSZ", `{"subscriptions":true}`).Data, &sz))
	found := false
	for _, s := range sz.Subs {
		found = found || s.Subject == "mine.a"
	}
	if !found {
		t.Fatalf("subsz of A: %+v", sz)
	}
	var ai struct {
		Name    string `json:"account_name"`
		Clients int    `json:"client_connections"`
	}
	must(t, json.Unmarshal(sysRequest(t, sys, "$SYS.REQ.ACCOUNT.A.INFO", "").Data, &ai))
	if ai.Name != "A" || ai.Clients != 1 {
		t.Fatalf("info of A: %+v", ai)
	}
	must(t, json.Unmarshal(sysRequest(t, sys, "$SYS.REQ.ACCOUNT.PING.STATZ", "").Data, &st))
	var accs []string
	for _, s := range st.Stats {
		accs = append(accs, s.Account)
	}
	if strings.Join(accs, ",") != "A,B,SYS" {
		t.Fatalf("account statz as sys: %v", accs)
	}

	// natscli's account info shows the user and account.
	cli := natsCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, "-s", clientURL(m), "--user", "a", "--password", "a", "--timeout", "2s", "account", "info").CombinedOutput()
	if err != nil {
		t.Fatalf("nats account info: %v\n%s", err, out)
	}
	for _, want := range []string{"User: a", "Account: A"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nats account info: no %q in\n%s", want, out)
		}
	}
}

// A refused login is announced to the system account on $SYS.SERVER.<id>.CLIENT.AUTH.ERR,
// as nats-server does (`nats events` shows it): the user it claimed and the reason. So is a
// client a reload refuses.
func TestSystemAccountAuthErrorEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sys.conf")
	must(t, os.WriteFile(path, []byte(sysConf), 0o600))
	m := startServer(t, "-c", path)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	ch := chanSub(t, sys, "$SYS.SERVER."+m.Server().ID()+".CLIENT.AUTH.ERR")
	type event struct {
		Type   string `json:"type"`
		Client struct {
			User string `json:"user"`
			Name string `json:"name"`
			Acc  string `json:"acc"`
		} `json:"client"`
		Reason string `json:"reason"`
	}
	expect := func(user, name, acc string) {
		t.Helper()
		var ev event
		must(t, json.Unmarshal(recvN(t, ch, 1, 3*time.Second)[0].Data, &ev))
		if ev.Type != "io.nats.server.advisory.v1.client_disconnect" || ev.Client.User != user || ev.Client.Name != name ||
			ev.Client.Acc != acc || ev.Reason != "Authentication Failure" {
			t.Fatalf("auth error event %+v", ev)
		}
	}
	if nc, err := nats.Connect(clientURL(m), nats.UserInfo("a", "wrong"), nats.Name("guesser"), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("connected with a wrong password")
	}
	expect("a", "guesser", "$G")

	connect(t, m, nats.UserInfo("c", "c"), nats.Name("removed"), nats.NoReconnect())
	must(t, os.WriteFile(path, []byte(strings.Replace(sysConf, "users: [ {user: c, password: c} ]", "", 1)), 0o600))
	must(t, m.Reload())
	expect("c", "removed", "C")
	expectNone(t, ch, 100*time.Millisecond)
}

// `nats server request kick <cid> <server id>` closes that client ($SYS.REQ.SERVER.<id>.KICK,
// as nats-server 2.10+), with reason Kicked; client ids are per server, so the PING form
// kicks nobody. IDZ names the server.
func TestSystemAccountKick(t *testing.T) {
	cli := natsCLI(t)
	m := startAccounts(t, sysConf)
	id := m.Server().ID()
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	closed := make(chan struct{})
	a := connect(t, m, nats.UserInfo("a", "a"), nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	cid, err := a.GetClientID()
	must(t, err)
	// Requests nobody answers have no responders at once, as with nats-server: KICK needs
	// a server named, and kinds not served are not subscribed (these timed out).
	for _, subj := range []string{"$SYS.REQ.SERVER.PING.KICK", "$SYS.REQ.SERVER.PING.LDM", "$SYS.REQ.SERVER.PING.NOPE",
		"$SYS.REQ.SERVER." + id + ".NOPE", "$SYS.REQ.ACCOUNT.A.NOPE"} {
		if _, err := sys.Request(subj, msgf(`{"cid":%d}`, cid), time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("%s: %v, want no responders", subj, err)
		}
	}
	must(t, a.Flush())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, "-s", clientURL(m), "--user", "sys", "--password", "sys", "--timeout", "2s",
		"server", "request", "kick", strconv.FormatUint(cid, 10), id).CombinedOutput()
	if err != nil || strings.Contains(string(out), `"error"`) {
		t.Fatalf("nats server request kick: %v\n%s", err, out)
	}
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("the kicked client is still connected")
	}
	var cz struct {
		Conns []struct {
			Cid    uint64 `json:"cid"`
			Reason string `json:"reason"`
		} `json:"connections"`
	}
	getJSON(t, m, "/connz?state=closed&cid="+strconv.FormatUint(cid, 10), &cz)
	if len(cz.Conns) != 1 || cz.Conns[0].Cid != cid || cz.Conns[0].Reason != "Kicked" {
		t.Fatalf("closed connections %+v", cz.Conns)
	}
	// An unknown client: an error, nobody closed.
	r, err := sys.Request("$SYS.REQ.SERVER."+id+".KICK", []byte(`{"cid":987654}`), time.Second)
	must(t, err)
	if !strings.Contains(string(r.Data), `"error"`) {
		t.Fatalf("kick of an unknown client: %s", r.Data)
	}
	r, err = sys.Request("$SYS.REQ.SERVER.PING.IDZ", nil, time.Second)
	must(t, err)
	var idz struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	must(t, json.Unmarshal(r.Data, &idz))
	if idz.ID != id || idz.Name != m.Server().Name() {
		t.Fatalf("idz %s", r.Data)
	}
}

// An ordinary account's users flooding the account-level system requests cannot crowd out
// the system account's events: the refused login's AUTH.ERR event still comes. They shared
// one queue, and a full queue dropped whatever came next.
func TestSystemAccountEventsSurviveAnAccountRequestFlood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sys.conf")
	must(t, os.WriteFile(path, []byte(sysConf), 0o600))
	m := startServer(t, "-c", path)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	ch := chanSub(t, sys, "$SYS.SERVER."+m.Server().ID()+".CLIENT.AUTH.ERR")
	flooder := connect(t, m, nats.UserInfo("a", "a"))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for range 500 {
				_ = flooder.PublishRequest("$SYS.REQ.ACCOUNT.PING.CONNZ", "_INBOX.flood", []byte(`{"subscriptions_detail":true}`))
			}
			_ = flooder.Flush()
		}
	}()
	defer func() { close(stop); <-done }()
	time.Sleep(200 * time.Millisecond) // the flood is on
	for i := range 5 {
		if nc, err := nats.Connect(clientURL(m), nats.UserInfo("a", "wrong"), nats.Name(fmt.Sprint("guesser", i)), nats.NoReconnect()); err == nil {
			nc.Close()
			t.Fatal("connected with a wrong password")
		}
	}
	recvN(t, ch, 5, 5*time.Second)
}

// An account named PING does not reach the system account's own PING requests through
// its imports of the account requests ($SYS.REQ.ACCOUNT.PING.STATZ is every account's
// statistics): its users get no answer rather than the other accounts' figures.
func TestSystemAccountRequestsOfAnAccountNamedPing(t *testing.T) {
	m := startAccounts(t, strings.Replace(sysConf, "  C {", "  PING { users: [ {user: p, password: p} ] }\n  C {", 1))
	connect(t, m, nats.UserInfo("a", "a"))
	p := connect(t, m, nats.UserInfo("p", "p"))
	for _, subj := range []string{"$SYS.REQ.ACCOUNT.PING.STATZ", "$SYS.REQ.ACCOUNT.PING.CONNZ", "$SYS.REQ.SERVER.PING.CONNZ"} {
		if r, err := p.Request(subj, nil, time.Second); err == nil {
			t.Fatalf("%s answered to account PING: %s", subj, r.Data)
		}
	}
}

// $SYS.REQ.SERVER.<id>.RELOAD re-reads the configuration file, as nats-server's (`nats server
// config reload`): the answer has no error when the reload took, the reload's error when
// it did not. PING.RELOAD has no responders. Before, nothing answered it.
func TestSystemAccountReloadRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sys.conf")
	must(t, os.WriteFile(path, []byte(sysConf), 0o600))
	m := startServer(t, "-c", path)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	subj := "$SYS.REQ.SERVER." + m.Server().ID() + ".RELOAD"
	if _, err := sys.Request("$SYS.REQ.SERVER.PING.RELOAD", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("PING.RELOAD: %v", err)
	}
	must(t, os.WriteFile(path, []byte(strings.Replace(sysConf, "{user: g, password: g}", "{user: g, password: g}, {user: h, password: h}", 1)), 0o600))
	r := sysRequest(t, sys, subj, "")
	if r.Server.ID != m.Server().ID() {
		t.Fatalf("reload answer %+v", r)
	}
	connect(t, m, nats.UserInfo("h", "h")) // the new user is in
	must(t, os.WriteFile(path, []byte(sysConf+"\nbogus {\n"), 0o600))
	msg, err := sys.Request(subj, nil, 2*time.Second)
	must(t, err)
	var bad sysResp
	must(t, json.Unmarshal(msg.Data, &bad))
	if bad.Error == nil || bad.Error.Code != 500 || bad.Error.Description == "" {
		t.Fatalf("reload of a broken file: %s", msg.Data)
	}
	connect(t, m, nats.UserInfo("h", "h")) // the running configuration stays
}
