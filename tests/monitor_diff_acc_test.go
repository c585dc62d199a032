package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The monitoring endpoints against nats-server with accounts that export and import
// streams and services, after traffic across them, a slow consumer (max_pending is small:
// one large message makes its subscriber one) and closed connections.

const monAccConf = `max_pending: 4096
max_payload: 4096
accounts {
  A {
    users [{user: a, password: a}]
    exports [
      {stream: "pub.>"}
      {stream: "priv.x", accounts: [B]}
      {service: "svc.echo"}
      {service: "svc.many", response_type: stream}
    ]
  }
  B {
    users [{user: b, password: b}]
    imports [
      {stream: {account: A, subject: "pub.>"}, prefix: "fromA"}
      {stream: {account: A, subject: "priv.x"}}
      {service: {account: A, subject: "svc.echo"}, to: "echo"}
      {service: {account: A, subject: "svc.many"}}
    ]
  }
  C { users [{user: c, password: c}] }
}
`

// accScenario runs the same traffic on tg: a service request from B to A, a stream from A
// into B, a closed connection with traffic, and a slow consumer in C.
func accScenario(t *testing.T, tg monTarget) (reqCID string) {
	dial := func(name, user string, o ...nats.Option) *nats.Conn {
		nc, err := nats.Connect(tg.url, append(o, nats.Name(name), nats.UserInfo(user, user))...)
		must(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	svc := dial("svc", "a")
	_, err := svc.Subscribe("svc.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	must(t, err)
	must(t, svc.Flush())
	got := make(chan struct{}, 10)
	sub := dial("sub", "b")
	_, err = sub.Subscribe("fromA.pub.>", func(*nats.Msg) { got <- struct{}{} })
	must(t, err)
	_, err = sub.Subscribe("priv.x", func(*nats.Msg) { got <- struct{}{} })
	must(t, err)
	must(t, sub.Flush())
	req := dial("req", "b")
	if _, err := req.Request("echo", []byte("ping"), 5*time.Second); err != nil {
		t.Fatalf("%s: request: %v", tg.name, err)
	}
	id, err := req.GetClientID()
	must(t, err)
	reqCID = fmt.Sprint(id)
	req.Close() // closed, with traffic, before slow is (sort=stop)
	waitFor(t, 5*time.Second, func() error {
		var cz struct{ Total int }
		if err := json.Unmarshal(tg.get(t, "/connz?state=closed").body, &cz); err != nil || cz.Total != 1 {
			return fmt.Errorf("%s: req not closed yet (%v)", tg.name, err)
		}
		return nil
	})
	pub := dial("pub", "a")
	must(t, pub.Publish("pub.one", []byte("1")))
	must(t, pub.Publish("priv.x", []byte("22")))
	must(t, pub.Flush())
	for range 2 {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: stream imports delivered nothing", tg.name)
		}
	}
	slow := dial("slow", "c", nats.NoReconnect())
	_, err = slow.Subscribe("big", func(*nats.Msg) {})
	must(t, err)
	must(t, slow.Flush())
	cpub := dial("cpub", "c")
	must(t, cpub.Publish("big", make([]byte, 4090))) // more than max_pending with its MSG line
	must(t, cpub.Flush())
	waitFor(t, 5*time.Second, func() error { // req and slow are in the closed list
		var cz struct{ Total int }
		if err := json.Unmarshal(tg.get(t, "/connz?state=closed").body, &cz); err != nil || cz.Total != 2 {
			return fmt.Errorf("%s: %d closed (%v)", tg.name, cz.Total, err)
		}
		return nil
	})
	return reqCID
}

// withoutSysImports drops from an /accountz?acc= answer the service imports from $SYS that
// nats-server adds to every account (Starling answers those requests without listing them).
func withoutSysImports(r monResp) monResp {
	ad, _ := r.v.(map[string]any)["account_detail"].(map[string]any)
	ims, _ := ad["imports"].([]any)
	var keep []any
	for _, im := range ims {
		if m, _ := im.(map[string]any); m["account"] != "$SYS" {
			keep = append(keep, im)
		}
	}
	if keep == nil {
		delete(ad, "imports")
	} else {
		ad["imports"] = keep
	}
	return r
}

// monAccUncomparable drops the values of this scenario that differ for reasons outside the
// monitoring endpoints: the message that made "slow" a slow consumer, which nats-server
// counts as sent (to slow, in /varz) and Starling, which never queued it, does not; the
// Nats-Request-Info header nats-server adds to a request through a service import; and
// /accstatz "sent", which nats-server counts under the account the message was published in
// (or the service import led to), Starling under
// the account of the connection it was delivered to: the same without imports
// (TestMonitorDiffCore compares it), not across them.
func monAccUncomparable(p string, v any) {
	m, _ := v.(map[string]any)
	switch {
	case p == "/varz":
		delete(m, "out_client_msgs")
		delete(m, "out_client_bytes")
	case strings.HasPrefix(p, "/accstatz"):
		list, _ := m["account_statz"].([]any)
		for _, e := range list {
			delete(e.(map[string]any), "sent")
		}
	case strings.HasPrefix(p, "/connz"):
		list, _ := m["connections"].([]any)
		for _, e := range list {
			switch ci := e.(map[string]any); ci["name"] {
			case "slow":
				delete(ci, "out_msgs")
				delete(ci, "out_bytes")
			case "svc": // the request came with nats-server's Nats-Request-Info header
				delete(ci, "out_bytes")
			}
		}
	}
}

func TestMonitorDiffAccounts(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "acc.conf")
	must(t, os.WriteFile(conf, []byte(monAccConf), 0o600))
	ref, got := startRefCore(t, conf), startStarlingCore(t, conf)
	refReq, gotReq := accScenario(t, ref), accScenario(t, got)
	paths := []string{"/varz", "/accstatz", "/accstatz?unused=1",
		"/accountz", "/accountz?acc=A", "/accountz?acc=B", "/accountz?acc=C",
		"/connz?state=closed", "/connz?state=closed&sort=reason", "/connz?state=closed&sort=stop",
		"/connz?state=all&sort=cid", "/connz?acc=B&subs=1", "/connz?state=closed&acc=B",
		"/connz?state=closed&limit=1", "/connz?state=closed&offset=1", "/connz?state=any",
		"/connz?state=open&sort=stop", "/connz?state=all&sort=reason", "/connz?sort=idle", "/connz?sort=last",
		"/connz?sort=pending", "/connz?sort=subs", "/connz?sort=uptime", "/connz?state=closed&sort=uptime",
		"/connz?sort=rtt", "/connz?state=closed&sort=idle", "/connz?sort=bytes_from&limit=2&offset=1",
		"/subsz?subs=1&acc=B", "/subsz?subs=1&acc=A&test=svc.echo", "/subsz?acc=C&subs=1&limit=1",
		"/healthz?js-server-only=true", "/healthz?js-meta-only=1", "/healthz?js-enabled=1", "/healthz?details=true",
		"/healthz?account=A", "/healthz?account=A&stream=x", "/healthz?stream=x", "/healthz?stream=x&details=1",
		"/healthz?consumer=c", "/healthz?account=A&consumer=c&details=true", "/healthz?details=maybe",
		"/healthz?js-server-only=2",
		"/connz?state=closed&subs=detail", "/connz?state=closed&subs=1&auth=1", "/connz?user=b&auth=1",
		"/connz?user=b", "/connz?state=closed&sort=rtt",
		"/connz?state=closed&sort=msgs_from", "/connz?state=CLOSED&limit=5&offset=-1", "/connz?acc=nope",
		"/connz?state=all&sort=stop", "/connz?sort=start&limit=3", "/connz?auth=1&subs=detail&acc=A",
		"/accountz?acc=", "/accountz?acc=%24SYS", "/accstatz?acc=A", "/accstatz?unused=true&acc=C",
		"/connz?state=closed&cid=REQ", "/connz?state=all&cid=REQ", "/connz?cid=REQ", "/connz?state=closed&cid=REQ&acc=A"}
	for _, p := range paths {
		r, g := ref.get(t, strings.Replace(p, "REQ", refReq, 1)), got.get(t, strings.Replace(p, "REQ", gotReq, 1))
		if strings.HasPrefix(p, "/accountz?acc=") {
			r = withoutSysImports(r)
		}
		if r.v != nil && g.v != nil {
			monAccUncomparable(p, r.v)
			monAccUncomparable(p, g.v)
		}
		compare(t, p, r, g)
	}
}
