package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// sysRaw sends a request and decodes the whole answer; none within d is an error.
func sysRaw(t *testing.T, nc *nats.Conn, subj, body string, d time.Duration) (map[string]json.RawMessage, error) {
	t.Helper()
	m, err := nc.Request(subj, []byte(body), d)
	if err != nil {
		return nil, err
	}
	var r map[string]json.RawMessage
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("%s: %v: %s", subj, err, m.Data)
	}
	return r, nil
}

// A request about an account this server does not know answers as nats-server's does: an
// empty CONNZ (no server_id, no connections) and SUBSZ, an error for INFO, nothing for
// STATZ (another server of the cluster may have the account).
func TestSystemAccountRequestsAboutAnUnknownAccount(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	connect(t, m, nats.UserInfo("a", "a"))

	r, err := sysRaw(t, sys, "$SYS.REQ.ACCOUNT.NOPE.CONNZ", `{"limit":5}`, 2*time.Second)
	must(t, err)
	var cz struct {
		ID    *string           `json:"server_id"`
		Num   *int              `json:"num_connections"`
		Limit int               `json:"limit"`
		Conns []json.RawMessage `json:"connections"`
	}
	if r["error"] != nil || json.Unmarshal(r["data"], &cz) != nil || cz.ID == nil || *cz.ID != "" ||
		cz.Num == nil || *cz.Num != 0 || cz.Limit != 5 || cz.Conns != nil || string(r["data"]) == "" {
		t.Fatalf("connz of an unknown account: %s %s", r["data"], r["error"])
	}
	r, err = sysRaw(t, sys, "$SYS.REQ.ACCOUNT.NOPE.SUBSZ", "", 2*time.Second)
	must(t, err)
	var sz struct {
		ID   string `json:"server_id"`
		Subs *int   `json:"num_subscriptions"`
	}
	if r["error"] != nil || json.Unmarshal(r["data"], &sz) != nil || sz.ID != m.Server().ID() || sz.Subs == nil || *sz.Subs != 0 {
		t.Fatalf("subsz of an unknown account: %s %s", r["data"], r["error"])
	}
	r, err = sysRaw(t, sys, "$SYS.REQ.ACCOUNT.NOPE.INFO", "", 2*time.Second)
	must(t, err)
	if string(r["error"]) != `{"code":500,"description":"Account NOPE does not exist"}` {
		t.Fatalf("info of an unknown account: %s", r["error"])
	}
	if _, err := sysRaw(t, sys, "$SYS.REQ.ACCOUNT.NOPE.STATZ", "", 300*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("statz of an unknown account: %v", err)
	}
}

// $SYS.REQ.ACCOUNT.<acc>.SUBSZ lists the account's subscriptions without being asked to,
// as nats-server's does.
func TestSystemAccountSubszListsSubscriptions(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	a := connect(t, m, nats.UserInfo("a", "a"))
	chanSub(t, a, "mine.a")
	var sz struct {
		Subs []struct {
			Subject string `json:"subject"`
		} `json:"subscriptions_list"`
	}
	must(t, json.Unmarshal(sysRequest(t, sys, "$SYS.REQ.ACCOUNT.A.SUBSZ", "").Data, &sz))
	found := false
	for _, s := range sz.Subs {
		found = found || s.Subject == "mine.a"
	}
	if !found {
		t.Fatalf("subsz of A: %+v", sz)
	}
}

// In the system account, $SYS.REQ.ACCOUNT.PING.<KIND> is about an account named PING, as
// with nats-server, except STATZ (every account's).
func TestSystemAccountPingRequestsOfTheSystemUser(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	r, err := sysRaw(t, sys, "$SYS.REQ.ACCOUNT.PING.CONNZ", "", 2*time.Second)
	must(t, err)
	var cz struct {
		ID  string `json:"server_id"`
		Num int    `json:"num_connections"`
	}
	if r["error"] != nil || json.Unmarshal(r["data"], &cz) != nil || cz.ID != "" || cz.Num != 0 {
		t.Fatalf("PING.CONNZ as sys: %s %s", r["data"], r["error"])
	}
	r, err = sysRaw(t, sys, "$SYS.REQ.ACCOUNT.PING.INFO", "", 2*time.Second)
	must(t, err)
	if string(r["error"]) != `{"code":500,"description":"Account PING does not exist"}` {
		t.Fatalf("PING.INFO as sys: %s %s", r["data"], r["error"])
	}
	var st struct {
		Stats []struct {
			Account string `json:"acc"`
		} `json:"account_statz"`
	}
	must(t, json.Unmarshal(sysRequest(t, sys, "$SYS.REQ.ACCOUNT.PING.STATZ", "").Data, &st))
	if len(st.Stats) != 1 || st.Stats[0].Account != "SYS" {
		t.Fatalf("PING.STATZ as sys: %+v", st)
	}
}

// $SYS.REQ.ACCOUNT.<acc>.CONNS is answered with the account's CONNS event by a server
// where the account has connections, as nats-server's; otherwise (or when the body names
// another account) by nobody, though the subject is served.
func TestSystemAccountConnsRequest(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	connect(t, m, nats.UserInfo("a", "a"))
	connect(t, m, nats.UserInfo("g", "g"))
	for _, c := range []struct{ acc, body string }{{"A", ""}, {"A", `{"acc":"A"}`}, {"$G", ""}} {
		msg, err := sys.Request("$SYS.REQ.ACCOUNT."+c.acc+".CONNS", []byte(c.body), 2*time.Second)
		must(t, err)
		var ev struct {
			Type   string `json:"type"`
			Server struct {
				ID string `json:"id"`
			} `json:"server"`
			Account string `json:"acc"`
			Conns   int    `json:"conns"`
			Total   int    `json:"total_conns"`
		}
		must(t, json.Unmarshal(msg.Data, &ev))
		if ev.Type != "io.nats.server.advisory.v1.account_connections" || ev.Server.ID != m.Server().ID() ||
			ev.Account != c.acc || ev.Conns != 1 || ev.Total != 1 {
			t.Fatalf("CONNS of %s: %s", c.acc, msg.Data)
		}
	}
	for _, c := range []struct{ acc, body string }{{"C", ""}, {"NOPE", ""}, {"A", `{"acc":"B"}`}, {"A", "junk"}} {
		if _, err := sys.Request("$SYS.REQ.ACCOUNT."+c.acc+".CONNS", []byte(c.body), 300*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("CONNS of %s %q: %v, want no answer", c.acc, c.body, err)
		}
	}
}

// $SYS.REQ.ACCOUNT.NSUBS counts an account's client subscriptions for a subject, as
// nats-server's does (the counts below are the reference server's for the same
// subscriptions); servers where the account has no connections do not answer.
func TestSystemAccountNumSubsRequest(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	a := connect(t, m, nats.UserInfo("a", "a"))
	for _, subj := range []string{"foo", "foo", "bar.x"} {
		chanSub(t, a, subj)
	}
	_, err := a.QueueSubscribe("foo", "q1", func(*nats.Msg) {})
	must(t, err)
	must(t, a.Flush())
	for body, want := range map[string]string{
		`{"acc":"A","subject":"foo"}`:                "3",
		`{"acc":"A","subject":"foo","queue":"cTE="}`: "1", // q1
		`{"acc":"A","subject":">"}`:                  "4",
		`{"acc":"A","subject":"bar.*"}`:              "1",
		`{"acc":"A","subject":"nothing"}`:            "0",
		`{"acc":"A"}`:                                "0",
		// Odd bodies, answered as nats-server v2.15.2 answers them: an empty queue
		// counts only plain subscriptions for a wildcard subject, none for a literal one.
		`{"acc":"A","subject":">","queue":""}`:   "3",
		`{"acc":"A","subject":"foo","queue":""}`: "0",
		`{"acc":"A","subject":"*.>"}`:            "1",
		`{"acc":"A","subject":"a..b"}`:           "0",
		`{"acc":"A","subject":"foo bar"}`:        "0",
		`{"acc":"A","subject":""}`:               "0",
		// nats-server reads a '>' that is not last as matching the rest (it answers 4);
		// an invalid subject reaches nothing here, deliberately: no client relies on it.
		`{"acc":"A","subject":">.a"}`: "0",
	} {
		msg, err := sys.Request("$SYS.REQ.ACCOUNT.NSUBS", []byte(body), 2*time.Second)
		must(t, err)
		if string(msg.Data) != want {
			t.Errorf("NSUBS %s: %s, want %s", body, msg.Data, want)
		}
	}
	for _, body := range []string{`{"acc":"C","subject":"foo"}`, `{"acc":"NOPE","subject":"foo"}`, "junk", ""} {
		if _, err := sys.Request("$SYS.REQ.ACCOUNT.NSUBS", []byte(body), 300*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("NSUBS %q: %v, want no answer", body, err)
		}
	}
	if _, err := sys.Request("$SYS.REQ.ACCOUNT.A.NSUBS", []byte(`{"acc":"A","subject":"foo"}`), time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("$SYS.REQ.ACCOUNT.A.NSUBS: %v, want no responders", err)
	}
}

// $SYS.REQ.SERVER.<id>.LDM {"cid":N} tells one client, as nats-server does, that the
// server is in lame duck mode: its lame duck handler runs, and it stays connected. The
// request names a server: PING.LDM has no responders. Without a body naming the client
// there is no answer, as with nats-server.
func TestSystemAccountLameDuckOneClient(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	ldm := make(chan struct{}, 1)
	a := connect(t, m, nats.UserInfo("a", "a"), nats.LameDuckModeHandler(func(*nats.Conn) { ldm <- struct{}{} }))
	b := connect(t, m, nats.UserInfo("b", "b"), nats.LameDuckModeHandler(func(*nats.Conn) { t.Error("b told lame duck") }))
	cid, err := a.GetClientID()
	must(t, err)
	subj := "$SYS.REQ.SERVER." + m.Server().ID() + ".LDM"
	r, err := sysRaw(t, sys, subj, fmt.Sprintf(`{"cid":%d}`, cid), 2*time.Second)
	must(t, err)
	if r["error"] != nil || r["server"] == nil {
		t.Fatalf("LDM: %v", r)
	}
	select {
	case <-ldm:
	case <-time.After(2 * time.Second):
		t.Fatal("no lame duck INFO")
	}
	must(t, a.Flush())
	must(t, b.Flush())
	if !a.IsConnected() {
		t.Fatal("client closed by LDM")
	}
	r, err = sysRaw(t, sys, subj, `{"cid":99999}`, 2*time.Second)
	must(t, err)
	if string(r["error"]) != `{"code":500,"description":"no such client id"}` {
		t.Fatalf("LDM of no client: %s", r["error"])
	}
	for _, body := range []string{"", "junk"} {
		if _, err := sysRaw(t, sys, subj, body, 300*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("LDM %q: %v, want no answer", body, err)
		}
	}
	if _, err := sysRaw(t, sys, "$SYS.REQ.SERVER.PING.LDM", fmt.Sprintf(`{"cid":%d}`, cid), time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("PING.LDM: %v", err)
	}
}

// KICK answers nats-server's error text for an unknown client, and nothing at all without
// a body naming the client (nats-server's neither).
func TestSystemAccountKickErrors(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	subj := "$SYS.REQ.SERVER." + m.Server().ID() + ".KICK"
	for _, body := range []string{`{"cid":987654}`, `{}`} {
		r, err := sysRaw(t, sys, subj, body, 2*time.Second)
		must(t, err)
		if string(r["error"]) != `{"code":500,"description":"no such client or leafnode id"}` {
			t.Fatalf("KICK %s: %s", body, r["error"])
		}
	}
	for _, body := range []string{"", "junk"} {
		if _, err := sysRaw(t, sys, subj, body, 300*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("KICK %q: %v, want no answer", body, err)
		}
	}
}

// $SYS.REQ.USER.<acc>.INFO, the target of nats-server's USER.INFO imports, answers the
// system user directly as nats-server does: the requester's permissions, no user or
// account. Ordinary users cannot reach it.
func TestSystemAccountDirectUserInfo(t *testing.T) {
	conf := strings.Replace(sysConf, "{user: sys, password: sys}",
		`{user: sys, password: sys}, {user: sys2, password: sys2, permissions: {publish: {deny: ["x.>"]}, subscribe: {allow: [">"]}}}`, 1)
	m := startAccounts(t, conf)
	for _, c := range []struct{ user, want string }{
		{"sys", `{"user":"","account":""}`},
		{"sys2", `{"user":"","account":"","permissions":{"publish":{"deny":["x.\u003e"]},"subscribe":{"allow":["\u003e"]}}}`},
	} {
		nc := connect(t, m, nats.UserInfo(c.user, c.user))
		for _, subj := range []string{"$SYS.REQ.USER.A.INFO", "$SYS.REQ.USER.SYS.INFO"} {
			r, err := sysRaw(t, nc, subj, "", 2*time.Second)
			must(t, err)
			if string(r["data"]) != c.want || r["error"] != nil {
				t.Fatalf("%s as %s: %s %s", subj, c.user, r["data"], r["error"])
			}
		}
	}
	a := connect(t, m, nats.UserInfo("a", "a"))
	if _, err := a.Request("$SYS.REQ.USER.A.INFO", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("$SYS.REQ.USER.A.INFO as a: %v", err)
	}
}

// STATSZ counts the clients' traffic apart, as nats-server's sent_to_clients and
// received_from_clients.
func TestSystemAccountStatszClientTraffic(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	a := connect(t, m, nats.UserInfo("a", "a"))
	ch := chanSub(t, a, "foo")
	must(t, a.Publish("foo", []byte("hello")))
	<-ch
	m2, err := sys.Request("$SYS.REQ.SERVER.PING.STATSZ", nil, 2*time.Second)
	must(t, err)
	type mb struct {
		Msgs  int64 `json:"msgs"`
		Bytes int64 `json:"bytes"`
	}
	var r struct {
		Statsz struct {
			ToClients   *mb `json:"sent_to_clients"`
			FromClients *mb `json:"received_from_clients"`
		} `json:"statsz"`
	}
	must(t, json.Unmarshal(m2.Data, &r))
	if st := r.Statsz; st.ToClients == nil || st.FromClients == nil || st.ToClients.Msgs < 1 || st.FromClients.Bytes < 5 {
		t.Fatalf("statsz: %s", m2.Data)
	}
}

// GATEWAYZ is answered in its empty form (Starling has no gateways), as /gatewayz and as
// nats-server without gateways.
func TestSystemAccountGatewayz(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	for _, subj := range []string{"$SYS.REQ.SERVER.PING.GATEWAYZ", "$SYS.REQ.SERVER." + m.Server().ID() + ".GATEWAYZ"} {
		var gz struct {
			ID  string                     `json:"server_id"`
			Out map[string]json.RawMessage `json:"outbound_gateways"`
			In  map[string]json.RawMessage `json:"inbound_gateways"`
		}
		must(t, json.Unmarshal(sysRequest(t, sys, subj, "").Data, &gz))
		if gz.ID != m.Server().ID() || gz.Out == nil || len(gz.Out) != 0 || gz.In == nil || len(gz.In) != 0 {
			t.Fatalf("%s: %+v", subj, gz)
		}
	}
}

// An endpoint's error is a 500 in the endpoint's words, as nats-server answers it; a body
// that is not JSON is a 400.
func TestSystemAccountRequestErrors(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	for _, c := range []struct{ subj, body, want string }{
		{"$SYS.REQ.SERVER.PING.CONNZ", `{"sort":"bogus"}`, `{"code":500,"description":"invalid sorting option: bogus"}`},
		{"$SYS.REQ.SERVER.PING.SUBSZ", `{"test":"a.*"}`, `{"code":500,"description":"invalid test subject, must be valid publish subject: a.*"}`},
		{"$SYS.REQ.SERVER.PING.ACCOUNTZ", `{"account":"NOPE"}`, `{"code":500,"description":"Account NOPE does not exist"}`},
		{"$SYS.REQ.ACCOUNT.A.CONNZ", `{"sort":"stop"}`, `{"code":500,"description":"sort by stop only valid on closed connections"}`},
		{"$SYS.REQ.SERVER.PING.CONNZ", `junk`, `{"code":400,"description":"invalid character 'j' looking for beginning of value"}`},
	} {
		r, err := sysRaw(t, sys, c.subj, c.body, 2*time.Second)
		must(t, err)
		if string(r["error"]) != c.want {
			t.Errorf("%s %s: %s, want %s", c.subj, c.body, r["error"], c.want)
		}
	}
}

// A healthy server's HEALTHZ has no error field, as nats-server's.
func TestSystemAccountHealthzShape(t *testing.T) {
	m := startAccounts(t, sysConf)
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	r, err := sysRaw(t, sys, "$SYS.REQ.SERVER.PING.HEALTHZ", "", 2*time.Second)
	must(t, err)
	if string(r["data"]) != `{"status":"ok","status_code":200}` {
		t.Fatalf("healthz: %s", r["data"])
	}
}
