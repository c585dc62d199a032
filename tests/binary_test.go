package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// starlingBinary returns the binary under test: $STARLING_BIN (make builds it), or one
// built once for this test run.
func starlingBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STARLING_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "starling-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "starling")
		out, err := exec.Command("go", "build", "-o", builtBin, "../cmd/starling").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// natsCLI returns the nats CLI installed by `make tools`; the test is skipped when run
// outside make without it.
func natsCLI(t *testing.T) string { return madeTool(t, "NATS_CLI", "nats") }

// madeTool returns the tool named by env, or else the one `make tools` puts in ../bin; the
// test is skipped without either.
func madeTool(t *testing.T, env, name string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		p = "../bin/" + name
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not installed (run `make tools`): %v", name, err)
	}
	return p
}

type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

// startProc runs a command, collecting its output, and kills it when the test ends.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	if slices.Contains(args, "--clustered") && !slices.Contains(args, "--cluster_raft_listen") {
		// Without it the node's raft listener takes a free port, which the kernel may hand
		// out again to a port this test picked for another listener ("address in use").
		t.Fatal("a clustered node in a test needs a --cluster_raft_listen picked with the test's other ports")
	}
	p := &proc{cmd: exec.Command(name, args...), out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	must(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(d):
		t.Fatalf("%s still running after %v; output:\n%s", p.cmd.Path, d, p.out.String())
		return nil
	}
}

// startBinary runs the built starling on free client and monitoring ports and waits until
// it accepts clients. It returns the process, the client URL and the monitoring address.
func startBinary(t *testing.T, args ...string) (*proc, string, string) {
	t.Helper()
	port, mport := freePort(t), freePort(t)
	p := startProc(t, starlingBinary(t), append([]string{"-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(mport)}, args...)...)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, func() error {
		nc, err := nats.Connect(url)
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
	return p, url, fmt.Sprintf("127.0.0.1:%d", mport)
}

// The nats CLI (pub, sub, request, reply) against the built binary.
func TestNatsCLI(t *testing.T) {
	cli := natsCLI(t)
	_, url, mon := startBinary(t)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, cli, append([]string{"-s", url}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("nats %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// sub + pub
	sub := startProc(t, cli, "-s", url, "sub", "cli.greet", "--count", "1", "--raw")
	waitForSubscribers(t, mon, "cli.greet")
	run("pub", "cli.greet", "hello from the cli")
	if err := sub.wait(t, 10*time.Second); err != nil {
		t.Fatalf("nats sub: %v\n%s", err, sub.out.String())
	}
	if !strings.Contains(sub.out.String(), "hello from the cli") {
		t.Fatalf("nats sub output:\n%s", sub.out.String())
	}

	// reply + request
	startProc(t, cli, "-s", url, "reply", "cli.svc", "the answer")
	waitForSubscribers(t, mon, "cli.svc")
	if out := run("request", "cli.svc", "question", "--raw"); !strings.Contains(out, "the answer") {
		t.Fatalf("nats request output:\n%s", out)
	}
	// request with nobody listening fails fast with no responders
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	// The CLI reports it and exits 0, as it does against nats-server.
	out, err := exec.CommandContext(ctx, cli, "-s", url, "request", "cli.nobody", "x").CombinedOutput()
	if !bytes.Contains(bytes.ToLower(out), []byte("no responders")) || time.Since(start) > 5*time.Second {
		t.Fatalf("request to nobody: err %v after %v:\n%s", err, time.Since(start), out)
	}
}

// waitForSubscribers polls the binary's /subsz until someone listens on subject.
func waitForSubscribers(t *testing.T, monitor, subject string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + monitor + "/subsz?subs=1&test=" + subject)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var sz struct{ Total int }
		if err := json.NewDecoder(resp.Body).Decode(&sz); err != nil {
			return err
		}
		if sz.Total == 0 {
			return fmt.Errorf("no subscriber on %s yet", subject)
		}
		return nil
	})
}

func TestBinarySignals(t *testing.T) {
	// SIGTERM: graceful shutdown, exit code 0.
	p, _, _ := startBinary(t)
	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out.String())
	}

	// SIGUSR2: lame duck — the client is told (ldm), then closed, then the server exits.
	p, url, _ := startBinary(t, "--lame_duck_duration", "2s", "--lame_duck_grace_period", "200ms")
	ldm := make(chan struct{}, 1)
	nc, err := nats.Connect(url, nats.NoReconnect(), nats.LameDuckModeHandler(func(*nats.Conn) { ldm <- struct{}{} }))
	must(t, err)
	defer nc.Close()
	must(t, nc.Flush())
	must(t, p.cmd.Process.Signal(syscall.SIGUSR2))
	select {
	case <-ldm:
	case <-time.After(5 * time.Second):
		t.Fatal("no lame duck INFO")
	}
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("exit after lame duck: %v\n%s", err, p.out.String())
	}
}
