package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	serverStartTimeout = 10 * time.Second
	serverStopGrace    = 5 * time.Second
	pollInterval       = 20 * time.Millisecond
	// startAttempts covers the small race between probing a free port and the server binding it.
	startAttempts = 3
)

// serverSpec names a server binary under test.
type serverSpec struct {
	name string // label in the report: "nats-server", "starling" or "nats-streaming-server"
	path string
	args []string // flags for every start of this server, after serverArgs
}

// server is one running server process, started fresh for every run so that no run inherits
// another's heap, subscriptions or slow-consumer state.
type server struct {
	spec     serverSpec
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process has been reaped
	port     int
	httpPort int
	logPath  string
	http     *http.Client
}

// serverArgs are the nats-server flags that Starling also accepts.
func serverArgs(port, httpPort string) []string {
	return []string{"-a", "127.0.0.1", "-p", port, "-m", httpPort}
}

// startServer starts spec on fresh loopback ports, with extra flags (e.g. -c FILE) after the usual
// ones, and returns once its monitoring endpoint answers. The server's output goes to a log file
// in logDir, named in errors so a failed start can be read.
func startServer(ctx context.Context, spec serverSpec, logDir string, extra []string) (*server, error) {
	var err error
	for attempt := 0; attempt < startAttempts; attempt++ {
		var s *server
		s, err = tryStartServer(ctx, spec, logDir, extra)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("start %s (%s): %w", spec.name, spec.path, err)
}

func tryStartServer(ctx context.Context, spec serverSpec, logDir string, extra []string) (*server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	logFile, err := os.CreateTemp(logDir, spec.name+"-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor

	args := append(append(serverArgs(strconv.Itoa(ports[0]), strconv.Itoa(ports[1])), spec.args...), extra...)
	cmd := exec.Command(spec.path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = orphanKill()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{
		spec: spec, cmd: cmd, exited: make(chan struct{}),
		port: ports[0], httpPort: ports[1], logPath: logFile.Name(),
		http: &http.Client{Timeout: 5 * time.Second},
	}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.stop()
		return nil, fmt.Errorf("%w (log: %s)", err, s.logPath)
	}
	return s, nil
}

// orphanKill makes the kernel SIGKILL a child when this process dies without stopping it
// (SIGKILL, a crash), so no server or bench client outlives the tool.
func orphanKill() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// freePorts asks the kernel for n distinct unused loopback ports. They are released before the
// server binds them, hence the retry in startServer.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("probe free port: %w", err)
		}
		defer l.Close() // held until all are chosen so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitReady polls /varz and the client port: a server counts as started when both answer.
func (s *server) waitReady(ctx context.Context) error {
	return pollUntil(ctx, serverStartTimeout, func() (bool, error) {
		select {
		case <-s.exited:
			return false, fmt.Errorf("exited during start: %v", s.cmd.ProcessState)
		default:
		}
		if _, err := s.varz(); err != nil {
			return false, nil
		}
		c, err := net.DialTimeout("tcp", s.addr(), time.Second)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	})
}

// stop sends SIGTERM (a clean shutdown), then SIGKILL if the server has not exited in time.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(serverStopGrace):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *server) pid() int        { return s.cmd.Process.Pid }
func (s *server) addr() string    { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }
func (s *server) url() string     { return "nats://" + s.addr() }
func (s *server) monitor() string { return "http://127.0.0.1:" + strconv.Itoa(s.httpPort) }

// varzInfo is the part of /varz this tool reads; both servers use nats-server's field names.
type varzInfo struct {
	Version       string `json:"version"`
	Mem           int64  `json:"mem"`
	Connections   int    `json:"connections"`
	Subscriptions int    `json:"subscriptions"`
	OutMsgs       int64  `json:"out_msgs"`
	SlowConsumers int64  `json:"slow_consumers"`
}

// connzInfo is the part of /connz?subs=1 used to tell when benchmark clients have subscribed.
type connzInfo struct {
	NumConns int `json:"num_connections"`
	Conns    []struct {
		Subs []string `json:"subscriptions_list"`
	} `json:"connections"`
}

func (s *server) varz() (varzInfo, error) {
	var v varzInfo
	return v, s.getJSON("/varz", &v)
}

// connsSubscribedTo counts client connections holding a subscription on subject.
func (s *server) connsSubscribedTo(subject string) (int, error) {
	var c connzInfo
	if err := s.getJSON("/connz?subs=1&limit=4096", &c); err != nil {
		return 0, err
	}
	n := 0
	for _, conn := range c.Conns {
		for _, sub := range conn.Subs {
			if sub == subject {
				n++
				break
			}
		}
	}
	return n, nil
}

// waitSubscribed returns once want connections are subscribed to subject: the benchmark's
// publisher must not start before its subscribers, or the first messages go nowhere.
func (s *server) waitSubscribed(ctx context.Context, subject string, want int, timeout time.Duration) error {
	err := pollUntil(ctx, timeout, func() (bool, error) {
		n, err := s.connsSubscribedTo(subject)
		return err == nil && n >= want, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %d subscribers on %q: %w", want, subject, err)
	}
	return nil
}

func (s *server) getJSON(path string, into any) error {
	resp, err := s.http.Get(s.monitor() + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// rssBytes reads the server's resident set size (VmRSS) from /proc.
func (s *server) rssBytes() (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(s.pid()), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// errTimeout marks a poll that ran out of time (as opposed to a poll that failed).
var errTimeout = errors.New("timed out")

// pollUntil calls check every pollInterval until it reports done, fails, timeout passes or ctx ends.
func pollUntil(ctx context.Context, timeout time.Duration, check func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v", errTimeout, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}
