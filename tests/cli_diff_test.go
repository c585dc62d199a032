package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The nats CLI against Starling and, where it is installed, nats-server with the same
// configuration: what a user or operator runs must give them the same answer.

// cliTarget is one server the CLI talks to.
type cliTarget struct {
	name string // "nats-server" or "starling"
	url  string // client URL
}

// startCLITargets starts Starling (in-process, as the binary runs) on conf and, when
// ../bin/nats-server (or $NATS_SERVER) exists, nats-server on the same file; nats-server
// comes first.
func startCLITargets(t *testing.T, conf string) []cliTarget {
	return startCLITargetsEach(t, func(string) string { return conf })
}

// startCLITargetsEach is startCLITargets with each server's own configuration, conf(name)
// (for ports that cannot be shared).
func startCLITargetsEach(t *testing.T, conf func(name string) string) []cliTarget {
	t.Helper()
	write := func(name string) string {
		path := filepath.Join(t.TempDir(), name+".conf")
		must(t, os.WriteFile(path, []byte(conf(name)), 0o600))
		return path
	}
	var out []cliTarget
	ref := os.Getenv("NATS_SERVER")
	if ref == "" {
		ref = "../bin/nats-server"
	}
	if _, err := os.Stat(ref); err == nil {
		port := freePort(t)
		startProc(t, ref, "-c", write("nats-server"), "-a", "127.0.0.1", "-p", fmt.Sprint(port))
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		waitFor(t, 10*time.Second, func() error {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		})
		out = append(out, cliTarget{"nats-server", "nats://" + addr})
	}
	m := startServer(t, "-c", write("starling"))
	return append(out, cliTarget{"starling", clientURL(m)})
}

// runCLI runs the nats CLI against tg and returns its combined output and error.
func runCLI(t *testing.T, tg cliTarget, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, natsCLI(t), append([]string{"-s", tg.url, "--timeout", "2s"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir()) // no user's context
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const cliSysConf = `server_name: CLI
accounts {
  A { users: [ {user: a, password: a} ] }
  SYS { users: [ {user: sys, password: sys} ] }
}
system_account: SYS
`

// `nats events` shows a client's traffic as the client's: "Published" what it sent,
// "Received" what it was sent. Starling's disconnect event had sent and received the
// server's way round (nats-server's sent is the client's in_msgs), so the CLI showed a
// publisher as a receiver.
func TestNatsCLIEventsTraffic(t *testing.T) {
	for _, tg := range startCLITargets(t, cliSysConf) {
		t.Run(tg.name, func(t *testing.T) {
			ev := startProc(t, natsCLI(t), "-s", tg.url, "--user", "sys", "--password", "sys", "events")
			waitFor(t, 10*time.Second, func() error {
				if !strings.Contains(ev.out.String(), "Listening for Client Disconnection") {
					return fmt.Errorf("nats events not listening yet:\n%s", ev.out.String())
				}
				return nil
			})
			var block string
			for i := 0; block == "" && i < 20; i++ { // until the listener's subscription is in
				name := fmt.Sprintf("publisher-%d", i)
				nc, err := nats.Connect(tg.url, nats.UserInfo("a", "a"), nats.Name(name))
				must(t, err)
				must(t, nc.Publish("cli.events", []byte("12345")))
				must(t, nc.Publish("cli.events", []byte("678")))
				must(t, nc.Flush())
				nc.Close()
				deadline := time.Now().Add(500 * time.Millisecond)
				for block == "" && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
					for _, b := range strings.Split(ev.out.String(), "] Client Disconnection") {
						if strings.Contains(b, "Name: "+name) && strings.Contains(b, "Client Published") {
							block = b
						}
					}
				}
			}
			if block == "" {
				t.Fatalf("no disconnect event in\n%s", ev.out.String())
			}
			if !strings.Contains(block, "Client Published: 2 messages (8 B)") || !strings.Contains(block, "Client Received: 0 messages (0 B)") {
				t.Fatalf("disconnect event:\n%s", block)
			}
		})
	}
}

// `nats server report leafnodes|jetstream` and `nats server request leafnodes|jetstream|raft`
// get nats-server's answers of a server without leaf nodes or JetStream (an empty leaf
// list; JetStream disabled, all zeros; no raft groups). Starling did not answer LEAFZ,
// JSZ or RAFTZ, so each failed with "server request failed, ensure the account used has
// system privileges".
func TestNatsCLILeafzJsz(t *testing.T) {
	var answers []map[string]string
	for _, tg := range startCLITargets(t, cliSysConf) {
		sys := func(args ...string) string {
			t.Helper()
			out, err := runCLI(t, tg, append([]string{"--user", "sys", "--password", "sys"}, args...)...)
			if err != nil {
				t.Fatalf("%s: nats %s: %v\n%s", tg.name, strings.Join(args, " "), err, out)
			}
			return out
		}
		if out := sys("server", "report", "leafnodes", "1"); !strings.Contains(out, "Leafnode Report") {
			t.Errorf("%s: nats server report leafnodes:\n%s", tg.name, out)
		}
		if out := sys("server", "report", "jetstream", "1"); !strings.Contains(out, "│ CLI ") {
			t.Errorf("%s: nats server report jetstream:\n%s", tg.name, out)
		}
		got := map[string]string{}
		for _, kind := range []string{"leafnodes", "jetstream", "raft"} {
			var r struct {
				Data map[string]any `json:"data"`
			}
			args := []string{"server", "request", kind, "1"}
			if kind == "raft" { // takes no count
				args = args[:3]
			}
			out := sys(args...)
			if err := json.Unmarshal([]byte(out), &r); err != nil || r.Data == nil {
				t.Fatalf("%s: nats server request %s: %v\n%s", tg.name, kind, err, out)
			}
			delete(r.Data, "server_id")
			delete(r.Data, "now")
			b, _ := json.Marshal(r.Data)
			got[kind] = string(b)
		}
		answers = append(answers, got)
	}
	if len(answers) == 2 {
		for k, v := range answers[0] {
			if answers[1][k] != v {
				t.Errorf("nats server request %s:\nnats-server %s\nstarling    %s", k, v, answers[1][k])
			}
		}
	}
}

// A server configured without accounts has the system account $SYS all the same, as
// nats-server has, so that its users (all in $G) learn who they are and about their
// account: `nats account info` shows the user and account, `nats account report
// connections|statistics` work. Starling set no system account up without an accounts
// block: account info lacked them, and both reports failed ("server request failed").
// no_system_account turns it off, as in nats-server.
func TestNatsCLIAccountWithoutAccounts(t *testing.T) {
	for _, c := range []struct {
		conf string
		auth []string
		user string // the account info's User line; "" when there is no system account
	}{
		{conf: "server_name: CLI\n", user: "User: \n"},
		{conf: "server_name: CLI\nauthorization { token: s3cret }\n", auth: []string{"--token", "s3cret"}, user: "User: [REDACTED]\n"},
		{conf: "server_name: CLI\nno_system_account: true\n"},
	} {
		for _, tg := range startCLITargets(t, c.conf) {
			run := func(args ...string) (string, error) {
				return runCLI(t, tg, append(append([]string{}, c.auth...), args...)...)
			}
			out, err := run("account", "info")
			if err != nil {
				t.Fatalf("%s %q: nats account info: %v\n%s", tg.name, c.conf, err, out)
			}
			if c.user == "" {
				if strings.Contains(out, "User:") || strings.Contains(out, "Account:") {
					t.Errorf("%s %q: nats account info without a system account:\n%s", tg.name, c.conf, out)
				}
				if out, err := run("account", "report", "connections"); err == nil {
					t.Errorf("%s %q: nats account report connections without a system account:\n%s", tg.name, c.conf, out)
				}
				continue
			}
			if !strings.Contains(out, c.user) || !strings.Contains(out, "Account: $G ($G)") {
				t.Errorf("%s %q: nats account info:\n%s", tg.name, c.conf, out)
			}
			if out, err := run("account", "report", "connections"); err != nil || !strings.Contains(out, "NATS CLI Version") {
				t.Errorf("%s %q: nats account report connections: %v\n%s", tg.name, c.conf, err, out)
			}
			if out, err := run("account", "report", "statistics"); err != nil || !strings.Contains(out, "Server Statistics") {
				t.Errorf("%s %q: nats account report statistics: %v\n%s", tg.name, c.conf, err, out)
			}
		}
	}
}

// `nats server info` of a server alone shows no "Client URLs", as nats-server's /varz has no
// connect_urls until other servers of a cluster tell theirs: Starling listed its own URL
// (or its client_advertise) there, clustered or not.
func TestNatsCLIServerInfoClientURLs(t *testing.T) {
	for _, extra := range []string{"", "client_advertise: \"example.com:4222\"\n", "cluster"} {
		conf := func(string) string {
			if extra == "cluster" { // a cluster port of its own for each
				return cliSysConf + fmt.Sprintf("cluster { name: alone, listen: \"127.0.0.1:%d\" }\n", freePort(t))
			}
			return cliSysConf + extra
		}
		for _, tg := range startCLITargetsEach(t, conf) {
			out, err := runCLI(t, tg, "--user", "sys", "--password", "sys", "server", "info", "CLI")
			if err != nil || !strings.Contains(out, "Server information for CLI") {
				t.Fatalf("%s %q: nats server info: %v\n%s", tg.name, extra, err, out)
			}
			if strings.Contains(out, "Client URLs") {
				t.Errorf("%s %q: nats server info of a server alone:\n%s", tg.name, extra, out)
			}
		}
	}
}

// `nats server request profile <name> <dir>` writes each server's profile, as against
// nats-server, whose system account answers $SYS.REQ.SERVER.PING.PROFILEZ with a runtime
// profile. Starling did not answer it: "server request failed".
func TestNatsCLIServerProfile(t *testing.T) {
	for _, tg := range startCLITargets(t, cliSysConf) {
		dir := t.TempDir()
		for _, name := range []string{"goroutine", "heap"} {
			out, err := runCLI(t, tg, "--user", "sys", "--password", "sys", "server", "request", "profile", name, dir)
			if err != nil || !strings.Contains(out, `Server "CLI" profile written`) {
				t.Fatalf("%s: nats server request profile %s: %v\n%s", tg.name, name, err, out)
			}
		}
		files, err := filepath.Glob(filepath.Join(dir, "*-CLI"))
		must(t, err)
		if len(files) != 2 {
			t.Fatalf("%s: profiles written: %v", tg.name, files)
		}
		for _, f := range files {
			if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
				t.Fatalf("%s: profile %s: %v", tg.name, f, err)
			}
		}
	}
}

// A token's client is shown as nats-server shows it, "[REDACTED]": the User of `nats account
// info` ($SYS.REQ.USER.INFO), /connz?auth=1's authorized_user and the events' client user.
// Starling showed no user at all.
func TestTokenUserShownRedacted(t *testing.T) {
	m := startServer(t, "--auth", "s3cret")
	nc := connect(t, m, nats.Token("s3cret"))
	var connz struct {
		Conns []struct {
			User string `json:"authorized_user"`
		} `json:"connections"`
	}
	getJSON(t, m, "/connz?auth=1", &connz)
	if len(connz.Conns) != 1 || connz.Conns[0].User != "[REDACTED]" {
		t.Fatalf("/connz?auth=1: %+v", connz.Conns)
	}
	r, err := nc.Request("$SYS.REQ.USER.INFO", nil, 2*time.Second)
	must(t, err)
	if !strings.Contains(string(r.Data), `"user":"[REDACTED]"`) || strings.Contains(string(r.Data), "s3cret") {
		t.Fatalf("user info: %s", r.Data)
	}
}

// A login refused for its credentials is announced twice, as nats-server does: on
// $SYS.SERVER.<id>.CLIENT.AUTH.ERR and, as every client it closes, on its account's
// $SYS.ACCOUNT.<acc>.DISCONNECT; `nats events` shows both. Starling sent the first alone,
// so a listener on the accounts' disconnections never heard of refused logins.
func TestNatsCLIEventsAuthFailure(t *testing.T) {
	for _, tg := range startCLITargets(t, cliSysConf) {
		t.Run(tg.name, func(t *testing.T) {
			ev := startProc(t, natsCLI(t), "-s", tg.url, "--user", "sys", "--password", "sys", "events")
			waitFor(t, 10*time.Second, func() error {
				if !strings.Contains(ev.out.String(), "Listening for Authentication Errors") {
					return fmt.Errorf("nats events not listening yet:\n%s", ev.out.String())
				}
				return nil
			})
			count := func(name string) int {
				n := 0
				for _, b := range strings.Split(ev.out.String(), "] Client Disconnection") {
					if strings.Contains(b, "Name: "+name+"\n") && strings.Contains(b, "Reason: Authentication Failure") {
						n++
					}
				}
				return n
			}
			got := 0
			for i := 0; got < 2 && i < 10; i++ { // until the listener's subscriptions are in
				name := fmt.Sprintf("guesser-%d", i)
				if nc, err := nats.Connect(tg.url, nats.UserInfo("a", "wrong"), nats.Name(name), nats.NoReconnect()); err == nil {
					nc.Close()
					t.Fatal("connected with a wrong password")
				}
				time.Sleep(500 * time.Millisecond)
				got = count(name)
			}
			if got != 2 {
				t.Fatalf("%d authentication failure events, want 2:\n%s", got, ev.out.String())
			}
		})
	}
}

// Every client connection closed is announced on its account's DISCONNECT, as nats-server
// does: one closed before its CONNECT too (a socket opened and closed; a protocol error),
// on $G, without a CONNS event. Starling announced only the connections whose connect it
// had announced.
func TestNatsCLIEventsClosedBeforeConnect(t *testing.T) {
	for _, tg := range startCLITargets(t, cliSysConf) {
		t.Run(tg.name, func(t *testing.T) {
			ev := startProc(t, natsCLI(t), "-s", tg.url, "--user", "sys", "--password", "sys", "events", "--json")
			addr := strings.TrimPrefix(tg.url, "nats://")
			count := func() (n int) {
				for _, l := range strings.Split(ev.out.String(), "\n") {
					if strings.Contains(l, `"acc":"$G"`) && strings.Contains(l, "client_disconnect") {
						n++
					}
				}
				return n
			}
			waitFor(t, 10*time.Second, func() error {
				c, err := net.Dial("tcp", addr) // opened and closed at once
				must(t, err)
				_, _ = bufio.NewReader(c).ReadString('\n') // INFO
				c.Close()
				time.Sleep(200 * time.Millisecond)
				if count() == 0 {
					return fmt.Errorf("no $G disconnect event yet:\n%s", ev.out.String())
				}
				return nil
			})
		})
	}
}

// An operation before CONNECT where authentication is required is an authorization
// violation announced as a refused login, as nats-server's: on
// $SYS.SERVER.<id>.CLIENT.AUTH.ERR as well as on $SYS.ACCOUNT.$G.DISCONNECT. Starling sent
// the second alone.
func TestNatsCLIEventsOpBeforeConnect(t *testing.T) {
	for _, tg := range startCLITargets(t, cliSysConf) {
		t.Run(tg.name, func(t *testing.T) {
			ev := startProc(t, natsCLI(t), "-s", tg.url, "--user", "sys", "--password", "sys", "events", "--json")
			failures := func() (n int) {
				for _, l := range strings.Split(ev.out.String(), "\n") {
					if strings.Contains(l, `"reason":"Authentication Failure"`) {
						n++
					}
				}
				return n
			}
			// Both of the listener's subscriptions are in once a refused login shows twice.
			waitFor(t, 10*time.Second, func() error {
				before := failures()
				if nc, err := nats.Connect(tg.url, nats.UserInfo("a", "wrong"), nats.NoReconnect()); err == nil {
					nc.Close()
				}
				time.Sleep(300 * time.Millisecond)
				if failures()-before != 2 {
					return fmt.Errorf("listener not ready:\n%s", ev.out.String())
				}
				return nil
			})
			before := failures()
			c, err := net.Dial("tcp", strings.TrimPrefix(tg.url, "nats://"))
			must(t, err)
			r := bufio.NewReader(c)
			_, _ = r.ReadString('\n') // INFO
			_, err = c.Write([]byte("SUB foo 1\r\n"))
			must(t, err)
			if line, _ := r.ReadString('\n'); line != "-ERR 'Authorization Violation'\r\n" {
				t.Fatalf("SUB before CONNECT: %q", line)
			}
			c.Close()
			waitFor(t, 10*time.Second, func() error { // the CLI prints them when it gets them: a loaded machine lags
				if n := failures() - before; n < 2 {
					return fmt.Errorf("%d authentication failure events for SUB before CONNECT so far, want 2:\n%s", n, ev.out.String())
				}
				return nil
			})
			time.Sleep(300 * time.Millisecond) // a third would have come with them
			if n := failures() - before; n != 2 {
				t.Fatalf("%d authentication failure events for SUB before CONNECT, want 2:\n%s", n, ev.out.String())
			}
		})
	}
}
