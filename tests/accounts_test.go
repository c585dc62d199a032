package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/cmd/starling/app"
)

// accountsConf: A exports streams (one public, one to B only) and a service; B imports
// them under other names; C imports only the public stream; G is a user of the global
// account. Clients without credentials log in as b.
const accountsConf = `accounts {
  A {
    users: [ {user: a, password: a} ]
    exports: [
      {stream: "public.>"}
      {stream: "private.>", accounts: [B]}
      {service: "help.>"}
      {service: "feed", response_type: stream}
    ]
  }
  B {
    users: [ {user: b, password: b} ]
    imports: [
      {stream: {account: A, subject: "public.>"}, prefix: from_a}
      {stream: {account: A, subject: "private.foo"}, to: "foo"}
      {service: {account: A, subject: "help.>"}, to: "ask.>"}
      {service: {account: A, subject: "feed"}}
    ]
  }
  C {
    users: [ {user: c, password: c} ]
    imports: [ {stream: {account: A, subject: "public.>"}} ]
  }
}
authorization { users: [ {user: g, password: g} ] }
no_auth_user: b
`

func startAccounts(t testing.TB, text string, args ...string) *app.Main {
	t.Helper()
	path := filepath.Join(t.TempDir(), "accounts.conf")
	must(t, os.WriteFile(path, []byte(text), 0o600))
	return startServer(t, append([]string{"-c", path}, args...)...)
}

func chanSub(t testing.TB, nc *nats.Conn, subj string) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 1024)
	_, err := nc.ChanSubscribe(subj, ch)
	must(t, err)
	must(t, nc.Flush())
	return ch
}

// A subscriber on ">" in one account sees nothing published in another; the global account
// is an account like the others.
func TestAccountsIsolation(t *testing.T) {
	m := startAccounts(t, accountsConf)
	a := connect(t, m, nats.UserInfo("a", "a"))
	b := connect(t, m, nats.UserInfo("b", "b"))
	g := connect(t, m, nats.UserInfo("g", "g"))
	inA, inB, inG := chanSub(t, a, ">"), chanSub(t, b, ">"), chanSub(t, g, ">")
	must(t, a.Publish("secret.a", []byte("1")))
	must(t, g.Publish("secret.g", []byte("2")))
	must(t, a.Flush())
	must(t, g.Flush())
	if m := recvN(t, inA, 1, 2*time.Second)[0]; m.Subject != "secret.a" {
		t.Fatalf("A got %q", m.Subject)
	}
	if m := recvN(t, inG, 1, 2*time.Second)[0]; m.Subject != "secret.g" {
		t.Fatalf("G got %q", m.Subject)
	}
	expectNone(t, inB, 200*time.Millisecond)
	expectNone(t, inA, 10*time.Millisecond)
	// A request nobody in the account answers fails fast, whoever listens elsewhere.
	c := connect(t, m, nats.UserInfo("c", "c"))
	if _, err := c.Request("secret.a", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request across accounts: %v", err)
	}
}

// no_auth_user names a user of an account: a client without credentials lands there.
func TestAccountsNoAuthUser(t *testing.T) {
	m := startAccounts(t, accountsConf)
	anon := connect(t, m)
	b := connect(t, m, nats.UserInfo("b", "b"))
	ch := chanSub(t, b, "hello")
	must(t, anon.Publish("hello", []byte("x")))
	must(t, anon.Flush())
	recvN(t, ch, 1, 2*time.Second)
	if _, err := nats.Connect(clientURL(m), nats.UserInfo("b", "wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}
}

// Stream imports: A's messages appear in B under the prefix or the `to` subject, in C
// under their own name; B's wildcard subscribers get them mapped; a restricted export
// reaches only the account it names.
func TestAccountsStreamImport(t *testing.T) {
	m := startAccounts(t, accountsConf)
	a := connect(t, m, nats.UserInfo("a", "a"))
	b := connect(t, m, nats.UserInfo("b", "b"))
	c := connect(t, m, nats.UserInfo("c", "c"))
	bPrefixed, bAll, bFoo := chanSub(t, b, "from_a.public.*"), chanSub(t, b, ">"), chanSub(t, b, "foo")
	cAll := chanSub(t, c, ">")
	bq := make(chan *nats.Msg, 16)
	for range 2 {
		_, err := b.ChanQueueSubscribe("from_a.>", "workers", bq)
		must(t, err)
	}
	must(t, b.Flush())
	must(t, a.Publish("public.news", []byte("n")))
	must(t, a.Publish("private.foo", []byte("p")))
	must(t, a.Publish("private.bar", []byte("not imported")))
	must(t, a.Flush())
	if m := recvN(t, bPrefixed, 1, 2*time.Second)[0]; m.Subject != "from_a.public.news" || string(m.Data) != "n" {
		t.Fatalf("B prefixed got %q %q", m.Subject, m.Data)
	}
	if m := recvN(t, bFoo, 1, 2*time.Second)[0]; m.Subject != "foo" || string(m.Data) != "p" {
		t.Fatalf("B foo got %q %q", m.Subject, m.Data)
	}
	got := map[string]bool{}
	for _, m := range recvN(t, bAll, 2, 2*time.Second) {
		got[m.Subject] = true
	}
	if !got["from_a.public.news"] || !got["foo"] {
		t.Fatalf("B > got %v", got)
	}
	if m := recvN(t, cAll, 1, 2*time.Second)[0]; m.Subject != "public.news" {
		t.Fatalf("C got %q", m.Subject)
	}
	recvN(t, bq, 1, 2*time.Second) // one member of the queue group
	expectNone(t, bq, 100*time.Millisecond)
	expectNone(t, bAll, 10*time.Millisecond)
	expectNone(t, cAll, 10*time.Millisecond)
	// Publishing in B under the imported names does not reach A.
	aAll := chanSub(t, a, ">")
	must(t, b.Publish("from_a.public.news", []byte("back")))
	must(t, b.Flush())
	expectNone(t, aAll, 200*time.Millisecond)
}

// Service imports: B's request on ask.* reaches A's responder on help.*, with a reply
// subject of A's space that leads back to B's inbox; a stream service answers many times.
func TestAccountsServiceImport(t *testing.T) {
	m := startAccounts(t, accountsConf)
	a := connect(t, m, nats.UserInfo("a", "a"))
	b := connect(t, m, nats.UserInfo("b", "b"))
	var gotSubj, gotReply string
	_, err := a.Subscribe("help.>", func(msg *nats.Msg) {
		gotSubj, gotReply = msg.Subject, msg.Reply
		_ = msg.Respond(append([]byte("answer to "), msg.Data...))
	})
	must(t, err)
	_, err = a.Subscribe("feed", func(msg *nats.Msg) {
		for i := range 3 {
			_ = a.Publish(msg.Reply, msgf("chunk %d", i))
		}
	})
	must(t, err)
	must(t, a.Flush())
	for i := range 20 {
		resp, err := b.Request("ask.me", msgf("q%d", i), 2*time.Second)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if string(resp.Data) != string(msgf("answer to q%d", i)) {
			t.Fatalf("reply %q", resp.Data)
		}
	}
	if gotSubj != "help.me" || len(gotReply) < 5 || gotReply[:4] != "_R_." {
		t.Fatalf("responder saw subject %q reply %q", gotSubj, gotReply)
	}
	// A reply subject answers once: a second reply to it goes nowhere.
	inbox := nats.NewInbox()
	ch := chanSub(t, b, inbox)
	must(t, b.PublishRequest("ask.again", inbox, []byte("x")))
	recvN(t, ch, 1, 2*time.Second)
	must(t, a.Publish(gotReply, []byte("late")))
	must(t, a.Flush())
	expectNone(t, ch, 200*time.Millisecond)
	// A stream service: three replies to one request.
	inbox = nats.NewInbox()
	ch = chanSub(t, b, inbox)
	must(t, b.PublishRequest("feed", inbox, nil))
	recvN(t, ch, 3, 2*time.Second)
	// No responder in A: B's request fails fast.
	must(t, a.Drain())
	waitFor(t, 2*time.Second, func() error {
		_, err := b.Request("ask.me", nil, time.Second)
		if !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("not yet no responders: %v", err)
		}
		return nil
	})
}

// The reply subject a service import gives a request in the exporter cannot be guessed
// from an earlier one (nats-server's are random): a client of the exporting account that
// saw one cannot answer the importer's next request before the real responder.
func TestAccountsServiceReplyUnguessable(t *testing.T) {
	m := startAccounts(t, accountsConf)
	a := connect(t, m, nats.UserInfo("a", "a"))
	b := connect(t, m, nats.UserInfo("b", "b"))
	replies := make(chan string, 16)
	_, err := a.Subscribe("help.>", func(msg *nats.Msg) { replies <- msg.Reply }) // answers nothing
	must(t, err)
	must(t, a.Flush())
	seen := map[string]bool{}
	var last string
	for i := range 8 {
		inbox := nats.NewInbox()
		ch := chanSub(t, b, inbox)
		must(t, b.PublishRequest("ask.me", inbox, nil))
		var cur string
		select {
		case cur = <-replies:
		case <-time.After(2 * time.Second):
			t.Fatal("request not delivered")
		}
		if seen[cur] || !strings.HasPrefix(cur, "_R_.") {
			t.Fatalf("reply subject %q reused or malformed", cur)
		}
		seen[cur] = true
		if i > 0 {
			// While the request waits for its answer, forge one on the subject that
			// follows the last one seen, as if they came from a counter.
			k := strings.LastIndexByte(last, '.')
			if n, err := strconv.ParseUint(last[k+1:], 36, 64); err == nil {
				must(t, a.Publish(last[:k+1]+strconv.FormatUint(n+1, 36), []byte("forged")))
			}
		}
		must(t, a.Publish(cur, []byte("real")))
		must(t, a.Flush())
		if got := recvN(t, ch, 1, 2*time.Second)[0]; string(got.Data) != "real" {
			t.Fatalf("request %d answered %q", i, got.Data)
		}
		last = cur
	}
}

// Monitoring knows the accounts: /accountz lists and details them, /connz and /subsz
// filter by account (nats-server's acc parameter).
func TestAccountsMonitoring(t *testing.T) {
	m := startAccounts(t, accountsConf)
	a := connect(t, m, nats.UserInfo("a", "a"))
	b := connect(t, m, nats.UserInfo("b", "b"))
	chanSub(t, a, "mine.a")
	chanSub(t, b, "mine.b")
	var az struct {
		Accounts []string `json:"accounts"`
		Detail   *struct {
			Name    string    `json:"account_name"`
			Updated time.Time `json:"update_time"`
			Clients int       `json:"client_connections"`
			Exports []struct {
				Subject string `json:"subject"`
				Type    string `json:"type"`
			} `json:"exports"`
		} `json:"account_detail"`
	}
	getJSON(t, m, "/accountz", &az)
	if strings.Join(az.Accounts, ",") != "$G,$SYS,A,B,C" {
		t.Fatalf("accounts %v", az.Accounts)
	}
	getJSON(t, m, "/accountz?acc=A", &az)
	if az.Detail == nil || az.Detail.Name != "A" || az.Detail.Clients != 1 || len(az.Detail.Exports) != 4 || az.Detail.Exports[2].Type != "service" {
		t.Fatalf("account A %+v", az.Detail)
	}
	// When the account was configured (`nats server account info` shows it; it said "never").
	if age := time.Since(az.Detail.Updated); age < 0 || age > time.Minute {
		t.Fatalf("account A update_time %v", az.Detail.Updated)
	}
	if code := getJSON(t, m, "/accountz?acc=NOPE", nil); code != 400 {
		t.Fatalf("unknown account: %d", code)
	}
	var cz struct {
		Conns []struct {
			Account string   `json:"account"`
			Subs    []string `json:"subscriptions_list"`
		} `json:"connections"`
	}
	getJSON(t, m, "/connz?acc=B&subs=1&auth=1", &cz)
	if len(cz.Conns) != 1 || cz.Conns[0].Account != "B" || strings.Join(cz.Conns[0].Subs, ",") != "mine.b" {
		t.Fatalf("connz of B %+v", cz)
	}
	var sz struct {
		Subs []struct {
			Account string `json:"account"`
			Subject string `json:"subject"`
		} `json:"subscriptions_list"`
	}
	getJSON(t, m, "/subsz?subs=1&acc=A", &sz)
	found := false
	for _, sub := range sz.Subs { // A's own reply subscription (_R_.…) is listed too
		found = found || sub.Subject == "mine.a"
		if sub.Account != "A" || sub.Subject == "mine.b" {
			t.Fatalf("subsz of A lists %+v", sub)
		}
	}
	if !found {
		t.Fatalf("subsz of A %+v", sz)
	}
}

// A reload keeps the accounts: users may change, the accounts themselves may not (the reload
// is refused and the running configuration stays); a user moved to another account is
// disconnected.
func TestAccountsReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "accounts.conf")
	must(t, os.WriteFile(path, []byte(accountsConf), 0o600))
	m := startServer(t, "-c", path)
	closed := make(chan struct{})
	a := connect(t, m, nats.UserInfo("a", "a"), nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	b := connect(t, m, nats.UserInfo("b", "b"))

	// A new user in the global account: accepted, nobody dropped.
	must(t, os.WriteFile(path, []byte(strings.Replace(accountsConf, "{user: g, password: g}", "{user: g, password: g}, {user: h, password: h}", 1)), 0o600))
	must(t, m.Reload())
	connect(t, m, nats.UserInfo("h", "h"))
	// Changed exports: refused.
	must(t, os.WriteFile(path, []byte(strings.Replace(accountsConf, `{stream: "public.>"}`, `{stream: "public.>"}, {stream: "extra.>"}`, 1)), 0o600))
	if err := m.Reload(); err == nil || !strings.Contains(err.Error(), "accounts cannot change") {
		t.Fatalf("reload changing the accounts: %v", err)
	}
	must(t, a.Flush())
	must(t, b.Flush())
	// User a moved from A to B: accepted (the accounts' exports and imports are the same),
	// and a's client, bound to A, is closed.
	moved := strings.Replace(accountsConf, "users: [ {user: a, password: a} ]", "", 1)
	moved = strings.Replace(moved, "users: [ {user: b, password: b} ]", "users: [ {user: b, password: b}, {user: a, password: a} ]", 1)
	must(t, os.WriteFile(path, []byte(moved), 0o600))
	if err := m.Reload(); err != nil {
		t.Fatalf("reload moving a user: %v", err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("a client of a user moved to another account stays connected")
	}
	must(t, b.Flush())
}

// A closed connection in /connz?state=closed shows what an open one would: its
// subscriptions only with subs=1 (subjects) or subs=detail, its user and account only with
// auth=1, and user=NAME finds it.
func TestConnzClosedAsRequested(t *testing.T) {
	m := startAccounts(t, accountsConf)
	a := connect(t, m, nats.UserInfo("a", "a"))
	chanSub(t, a, "mine.a")
	a.Close()
	type conn struct {
		User    string   `json:"authorized_user"`
		Account string   `json:"account"`
		Subs    []string `json:"subscriptions_list"`
		Detail  []struct {
			Subject string `json:"subject"`
		} `json:"subscriptions_list_detail"`
	}
	closed := func(query string) []conn {
		var cz struct {
			Conns []conn `json:"connections"`
		}
		if code := getJSON(t, m, "/connz?state=closed"+query, &cz); code != 200 {
			t.Fatalf("/connz?state=closed%s: %d", query, code)
		}
		return cz.Conns
	}
	waitFor(t, 2*time.Second, func() error {
		if len(closed("")) != 1 {
			return errString("not closed yet")
		}
		return nil
	})
	if c := closed("")[0]; c.User != "" || c.Account != "" || c.Subs != nil || c.Detail != nil {
		t.Errorf("plain: %+v", c)
	}
	if c := closed("&subs=1")[0]; strings.Join(c.Subs, ",") != "mine.a" || c.Detail != nil {
		t.Errorf("subs=1: %+v", c)
	}
	if c := closed("&subs=detail")[0]; len(c.Detail) != 1 || c.Detail[0].Subject != "mine.a" || c.Subs != nil {
		t.Errorf("subs=detail: %+v", c)
	}
	if c := closed("&auth=1")[0]; c.User != "a" || c.Account != "A" {
		t.Errorf("auth=1: %+v", c)
	}
	if cs := closed("&user=a"); len(cs) != 1 {
		t.Errorf("user=a: %+v", cs)
	}
}

// /connz names a connection's account only with auth=1, and not the global account, as
// nats-server does; acc=NAME filters either way. Closed connections alike.
func TestConnzAccountWithAuth(t *testing.T) {
	m := startAccounts(t, accountsConf)
	a := connect(t, m, nats.UserInfo("a", "a"), nats.Name("in-a"))
	connect(t, m, nats.UserInfo("g", "g"), nats.Name("in-g"))
	must(t, a.Flush())
	accounts := func(query string) map[string]string {
		var cz struct {
			Conns []struct {
				Name    string `json:"name"`
				Account string `json:"account"`
			} `json:"connections"`
		}
		getJSON(t, m, "/connz"+query, &cz)
		out := map[string]string{}
		for _, c := range cz.Conns {
			out[c.Name] = c.Account
		}
		return out
	}
	if got := accounts(""); len(got) != 2 || got["in-a"] != "" || got["in-g"] != "" {
		t.Errorf("without auth: %v", got)
	}
	if got := accounts("?auth=1"); len(got) != 2 || got["in-a"] != "A" || got["in-g"] != "" {
		t.Errorf("auth=1: %v", got)
	}
	if got := accounts("?acc=A"); len(got) != 1 || got["in-a"] != "" {
		t.Errorf("acc=A: %v", got)
	}
	a.Close()
	waitFor(t, 2*time.Second, func() error {
		if len(accounts("?state=closed")) != 1 {
			return errString("not closed yet")
		}
		return nil
	})
	if got := accounts("?state=closed"); got["in-a"] != "" {
		t.Errorf("closed without auth: %v", got)
	}
	if got := accounts("?state=closed&auth=1&acc=A"); len(got) != 1 || got["in-a"] != "A" {
		t.Errorf("closed auth=1: %v", got)
	}
}

// /subsz?acc=NAME gives that account's index statistics, not every account's, as
// nats-server does.
func TestSubszAccountStats(t *testing.T) {
	m := startAccounts(t, accountsConf)
	a := connect(t, m, nats.UserInfo("a", "a"))
	b := connect(t, m, nats.UserInfo("b", "b"))
	for _, s := range []string{"a.one", "a.two", "a.three"} {
		chanSub(t, a, s)
	}
	chanSub(t, b, "b.one")
	var all, ofA struct {
		NumSubs uint32 `json:"num_subscriptions"`
		Total   int    `json:"total"`
	}
	getJSON(t, m, "/subsz", &all)
	getJSON(t, m, "/subsz?acc=A&subs=1", &ofA)
	if ofA.NumSubs >= all.NumSubs || int(ofA.NumSubs) != ofA.Total {
		t.Fatalf("num_subscriptions of A %d (listed %d), of all %d", ofA.NumSubs, ofA.Total, all.NumSubs)
	}
}

// filter_subject is not an HTTP parameter of /connz: nats-server's HandleConnz never reads
// it (server/monitor.go:748-791), so /connz?filter_subject=S lists every connection (of the
// account with acc=NAME), subs=1 and subs=detail included, and needs no acc. It is a field
// of the CONNZ system request's options (ConnzOptions.FilterSubject, monitor.go:98-99), where
// it selects the account's connections with interest in S.
func TestConnzFilterSubject(t *testing.T) {
	m := startAccounts(t, sysConf)
	in := connect(t, m, nats.UserInfo("a", "a"), nats.Name("in"))
	out := connect(t, m, nats.UserInfo("a", "a"), nats.Name("out"))
	other := connect(t, m, nats.UserInfo("b", "b"), nats.Name("b-in"))
	chanSub(t, in, "orders.new")
	chanSub(t, out, "other")
	chanSub(t, other, "orders.x")
	type connz struct {
		Conns []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	names := func(cz connz) string {
		var n []string
		for _, c := range cz.Conns {
			if c.Name != "" {
				n = append(n, c.Name)
			}
		}
		sort.Strings(n)
		return strings.Join(n, ",")
	}
	for q, want := range map[string]string{
		"acc=A&filter_subject=orders.*":             "in,out",
		"acc=A&filter_subject=orders.*&subs=1":      "in,out",
		"acc=A&filter_subject=orders.*&subs=detail": "in,out",
		"filter_subject=orders.*":                   "b-in,in,out",
		"filter_subject=orders.*&subs=detail":       "b-in,in,out",
	} {
		var cz connz
		if code := getJSON(t, m, "/connz?"+q, &cz); code != 200 || names(cz) != want {
			t.Errorf("/connz?%s: %d %q, want 200 %q", q, code, names(cz), want)
		}
	}
	sys := connect(t, m, nats.UserInfo("sys", "sys"))
	var cz connz
	must(t, json.Unmarshal(sysRequest(t, sys, "$SYS.REQ.ACCOUNT.A.CONNZ", `{"filter_subject":"orders.*"}`).Data, &cz))
	if names(cz) != "in" {
		t.Fatalf("CONNZ of A with filter_subject orders.*: %q", names(cz))
	}
}
