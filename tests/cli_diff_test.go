package tests

import (
	"context"
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
	t.Helper()
	path := filepath.Join(t.TempDir(), "cli.conf")
	must(t, os.WriteFile(path, []byte(conf), 0o600))
	var out []cliTarget
	ref := os.Getenv("NATS_SERVER")
	if ref == "" {
		ref = "../bin/nats-server"
	}
	if _, err := os.Stat(ref); err == nil {
		port := freePort(t)
		startProc(t, ref, "-c", path, "-a", "127.0.0.1", "-p", fmt.Sprint(port))
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
	m := startServer(t, "-c", path)
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
