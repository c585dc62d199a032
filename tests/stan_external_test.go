package tests

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/cmd/starling/app"
	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores/memstore"
	"github.com/starling-io/starling/streaming"
	"github.com/starling-io/starling/streaming/natsbus"
)

// TestStreamingOnExternalNATS: streaming as a client of an external NATS server (-ns), as
// with nats-streaming-server: stan.go connects to that server — a Starling core server
// without streaming, and nats-server with a user and password — and works as usual;
// a durable resumes where it left off after the streaming server restarts on its store.
func TestStreamingOnExternalNATS(t *testing.T) {
	for _, ext := range []struct {
		name  string
		start func(t *testing.T) (clientURL, streamingURL string)
	}{
		{"starling core", func(t *testing.T) (string, string) {
			_, url, _ := startBinary(t, "--no_streaming")
			return url, url
		}},
		{"nats-server", func(t *testing.T) (string, string) {
			bin := madeTool(t, "NATS_SERVER", "nats-server")
			port := freePort(t)
			startProc(t, bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "--user", "stan", "--pass", "s3cret")
			url := fmt.Sprintf("nats://stan:s3cret@127.0.0.1:%d", port)
			waitFor(t, 10*time.Second, func() error {
				nc, err := nats.Connect(url)
				if err == nil {
					nc.Close()
				}
				return err
			})
			return url, url
		}},
	} {
		t.Run(ext.name, func(t *testing.T) {
			clientURL, nsURL := ext.start(t)
			dir := t.TempDir()
			startStreaming := func() *proc {
				p, _, _ := startBinary(t, "-ns", nsURL, "--store", "file", "--dir", dir)
				return p
			}
			p := startStreaming()
			connect := func(id string) stan.Conn {
				var sc stan.Conn
				waitFor(t, 10*time.Second, func() (err error) {
					sc, err = stan.Connect("test-cluster", id, stan.NatsURL(clientURL), stan.ConnectWait(time.Second))
					return err
				})
				return sc
			}
			sc := connect("c1")
			for i := range 10 {
				must(t, sc.Publish("orders", []byte(fmt.Sprint("m", i))))
			}
			got := make(chan *stan.Msg, 100)
			sub, err := sc.Subscribe("orders", func(m *stan.Msg) { got <- m; _ = m.Ack() },
				stan.DurableName("d"), stan.DeliverAllAvailable(), stan.SetManualAckMode())
			must(t, err)
			for i := range 10 {
				select {
				case m := <-got:
					if m.Sequence != uint64(i+1) {
						t.Fatalf("delivery %d: sequence %d", i, m.Sequence)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%d of 10 delivered through the external server", i)
				}
			}
			must(t, sub.Close()) // the durable stays, at 10
			must(t, sc.Close())

			// The streaming server restarts on its store; the durable resumes at 11.
			_ = p.cmd.Process.Kill()
			_ = p.wait(t, 10*time.Second)
			startStreaming()
			sc = connect("c1") // a durable belongs to its client ID
			defer sc.Close()
			for i := 10; i < 15; i++ {
				must(t, sc.Publish("orders", []byte(fmt.Sprint("m", i))))
			}
			sub, err = sc.Subscribe("orders", func(m *stan.Msg) { got <- m; _ = m.Ack() },
				stan.DurableName("d"), stan.SetManualAckMode())
			must(t, err)
			defer sub.Close()
			for i := 10; i < 15; {
				select {
				case m := <-got:
					switch {
					case m.Sequence <= 10 && m.Redelivered:
						// acked too late to be recorded before the close: at least once
					case m.Sequence != uint64(i+1):
						t.Fatalf("after the restart, delivery %d: sequence %d (redelivered %v)", i, m.Sequence, m.Redelivered)
					default:
						i++
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("after the restart, %d of 5 delivered", i-10)
				}
			}
		})
	}
}

// Over an external NATS server the engine cannot tell connections apart; a connect with
// the ID of a live client must still probe it and be refused, as nats-streaming-server
// does. It replaced the live client at once.
func TestStreamingOnExternalNATSDuplicateOfLiveClientRefused(t *testing.T) {
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	must(t, err)
	must(t, cs.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
	})
	nc, err := nats.Connect(cs.ClientURL())
	must(t, err)
	t.Cleanup(nc.Close)
	store, err := memstore.New(memstore.Options{})
	must(t, err)
	st, err := streaming.New(natsbus.New(nc), store, raftlog.Standalone, streaming.Options{ClusterID: "test-cluster"})
	must(t, err)
	must(t, st.Start())
	t.Cleanup(func() { _ = st.Shutdown() })
	must(t, nc.Flush()) // the server has the streaming subscriptions

	sc, err := stan.Connect("test-cluster", "alive", stan.NatsURL(cs.ClientURL()))
	must(t, err)
	defer sc.Close()
	duplicateOfLiveRefused(t, cs.ClientURL(), sc, nil)
}

// Two streaming servers with one cluster ID on one external NATS server would both answer
// every request (two PubAcks, two deliveries, two diverging stores): the second refuses to
// start, as nats-streaming-server does, after asking the discover subject.
func TestStreamingOnExternalNATSDuplicateClusterIDRefused(t *testing.T) {
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	must(t, err)
	must(t, cs.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
	})
	start := func() (*streaming.Server, error) {
		nc, err := nats.Connect(cs.ClientURL())
		must(t, err)
		t.Cleanup(nc.Close)
		store, err := memstore.New(memstore.Options{})
		must(t, err)
		st, err := streaming.New(natsbus.New(nc), store, raftlog.Standalone, streaming.Options{ClusterID: "test-cluster"})
		must(t, err)
		if err := st.Start(); err != nil {
			_ = store.Close()
			return nil, err
		}
		t.Cleanup(func() { _ = st.Shutdown() })
		must(t, nc.Flush()) // the server has the streaming subscriptions
		return st, nil
	}
	first, err := start()
	must(t, err)
	if _, err := start(); err == nil || !strings.Contains(err.Error(), `discovered another streaming server with cluster ID "test-cluster"`) {
		t.Fatalf("a second streaming server with the same cluster ID: %v", err)
	}
	// The first serves on, and the probe left no client behind.
	sc, err := stan.Connect("test-cluster", "c1", stan.NatsURL(cs.ClientURL()))
	must(t, err)
	defer sc.Close()
	must(t, sc.Publish("x", []byte("1")))
	waitFor(t, 2*time.Second, func() error {
		if cl := first.Clients(false); len(cl) != 1 || cl[0].ID != "c1" {
			return fmt.Errorf("clients %v", cl)
		}
		return nil
	})
}

// The streaming block's tls keys are nats-streaming-server's: client_cert, client_key,
// client_ca (or client_cacert), server_name and insecure, for the connection to the
// external server. A configuration written for nats-streaming-server works unchanged.
func TestStreamingOnExternalNATSOverTLS(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	ext := startServer(t, "-c", writeConfig(t, dir, fmt.Sprintf(`tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }`,
		pki.serverCert, pki.serverKey, pki.caFile)))
	start := func(serverName string) (*app.Main, error) {
		conf := filepath.Join(t.TempDir(), "stan.conf")
		must(t, os.WriteFile(conf, []byte(fmt.Sprintf(`streaming {
  nats_server_url: "tls://127.0.0.1:%d"
  tls { client_cert: %q, client_key: %q, client_ca: %q, server_name: %q }
}`, ext.Server().Addr().Port, pki.clientCert, pki.clientKey, pki.caFile, serverName)), 0o600))
		m := app.NewMain(io.Discard, io.Discard)
		if err := m.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-c", conf}); err != nil {
			return nil, err
		}
		t.Cleanup(func() { _ = m.Close() })
		return m, m.Start()
	}
	// server_name is the name the server's certificate is checked against.
	if _, err := start("elsewhere.example"); err == nil || !strings.Contains(err.Error(), "elsewhere.example") {
		t.Fatalf("a certificate for another name: %v", err)
	}
	_, err := start("localhost")
	must(t, err)
	sc, err := stan.Connect("test-cluster", "c1", stan.NatsURL(clientURL(ext)),
		stan.NatsOptions(nats.RootCAs(pki.caFile), nats.ClientCert(pki.clientCert, pki.clientKey)))
	must(t, err)
	defer sc.Close()
	must(t, sc.Publish("x", []byte("over TLS")))
}

// A token in the external server's URL (nats://<token>@host:port, as nats.go takes it) is a
// secret like a password: the log shows neither.
func TestStreamingOnExternalNATSURLTokenNotLogged(t *testing.T) {
	const token = "s3cr3t-t0ken"
	ext := startServer(t, "--auth", token)
	logs := &syncBuffer{}
	m := app.NewMain(io.Discard, logs)
	must(t, m.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1",
		"-ns", fmt.Sprintf("nats://%s@127.0.0.1:%d", token, ext.Server().Addr().Port)}))
	t.Cleanup(func() { _ = m.Close() })
	must(t, m.Start())
	if !strings.Contains(logs.String(), "external NATS server") {
		t.Fatalf("no log line about the external server:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), token) {
		t.Fatalf("the token is in the log:\n%s", logs.String())
	}
}

// The streaming server's connection to the external server retries for good (as its
// unlimited reconnects say): credentials refused for a while — a password changed and
// changed back — do not end it, where nats.go by default gives up after the same
// authorization error twice and leaves streaming dead until a restart.
func TestStreamingOnExternalNATSSurvivesRefusedReconnects(t *testing.T) {
	dir := t.TempDir()
	users := `authorization { users = [ {user: stan, password: %s}, {user: cl, password: cl} ] }`
	conf := writeConfig(t, dir, fmt.Sprintf(users, "one"))
	ext := startServer(t, "-c", conf)
	m := app.NewMain(io.Discard, io.Discard)
	must(t, m.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1",
		"-ns", fmt.Sprintf("nats://stan:one@127.0.0.1:%d", ext.Server().Addr().Port)}))
	t.Cleanup(func() { _ = m.Close() })
	must(t, m.Start())

	writeConfig(t, dir, fmt.Sprintf(users, "two"))
	must(t, ext.Reload()) // the streaming server's connection is closed, and refused again
	time.Sleep(2 * time.Second)
	writeConfig(t, dir, fmt.Sprintf(users, "one"))
	must(t, ext.Reload())

	var sc stan.Conn
	waitFor(t, 10*time.Second, func() (err error) {
		sc, err = stan.Connect("test-cluster", "c1", stan.NatsURL(clientURL(ext)),
			stan.NatsOptions(nats.UserInfo("cl", "cl")), stan.ConnectWait(time.Second))
		return err
	})
	defer sc.Close()
	must(t, sc.Publish("x", []byte("after the password came back")))
}
