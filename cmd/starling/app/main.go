package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/monitor"
)

// levelTrace is below Debug: protocol tracing (-V).
const levelTrace = slog.LevelDebug - 4

// Main is one run of the server: ParseFlags, then Run, then Close.
type Main struct {
	Stdout, Stderr io.Writer
	// HandleSignals makes Run react to SIGINT/SIGTERM (shutdown) and SIGUSR2 (lame duck).
	HandleSignals bool

	core       core.Options
	httpHost   string
	httpPort   int
	basePath   string
	pidFile    string
	logFile    string
	configFile string
	debug      bool
	trace      bool
	version    bool

	log    *slog.Logger
	logOut io.Closer
	srv    *core.Server
	mon    *monitor.Monitor
	ready  chan struct{}
}

// NewMain returns a Main writing to the given streams.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{Stdout: stdout, Stderr: stderr, ready: make(chan struct{})}
}

// ErrHelp is returned by ParseFlags for -h/--help after printing usage.
var ErrHelp = flag.ErrHelp

// ParseFlags reads the command line. Flag errors name the flag.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("starling", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	o := &m.core
	fs.StringVar(&o.Host, "a", "0.0.0.0", "client listen address")
	fs.StringVar(&o.Host, "addr", "0.0.0.0", "client listen address")
	fs.StringVar(&o.Host, "net", "0.0.0.0", "client listen address")
	fs.IntVar(&o.Port, "p", core.DefaultPort, "client port (-1 = random)")
	fs.IntVar(&o.Port, "port", core.DefaultPort, "client port (-1 = random)")
	fs.StringVar(&o.ServerName, "n", "", "server name (default: the server id)")
	fs.StringVar(&o.ServerName, "name", "", "server name")
	fs.StringVar(&o.ServerName, "server_name", "", "server name")
	fs.StringVar(&o.ClientAdvertise, "client_advertise", "", "client URL advertised to other servers' clients (host:port)")
	fs.IntVar(&m.httpPort, "m", 0, "HTTP monitoring port (0 = off, -1 = random)")
	fs.IntVar(&m.httpPort, "http_port", 0, "HTTP monitoring port")
	fs.StringVar(&m.httpHost, "http_host", "", "HTTP monitoring host (default: the client host)")
	fs.StringVar(&m.basePath, "http_base_path", "", "prefix for monitoring paths")
	fs.Func("max_payload", "maximum message payload in bytes (default 1MB)", sizeFlag(&o.MaxPayload))
	fs.Func("max_control_line", "maximum protocol control line in bytes (default 4KB)", sizeFlag(&o.MaxControlLine))
	fs.IntVar(&o.MaxConnections, "max_connections", 0, "maximum client connections (default 65536)")
	fs.IntVar(&o.MaxSubscriptions, "max_subscriptions", 0, "maximum subscriptions per connection (0 = unlimited)")
	fs.Func("max_pending", "maximum bytes buffered for a client before it is a slow consumer (default 64MB)", func(v string) error {
		n, err := parseSize(v)
		o.MaxPending = int64(n)
		return err
	})
	fs.DurationVar(&o.PingInterval, "ping_interval", 0, "server PING interval (default 2m)")
	fs.IntVar(&o.PingMax, "ping_max", 0, "unanswered PINGs before a connection is stale (default 2)")
	fs.DurationVar(&o.WriteDeadline, "write_deadline", 0, "write deadline before a client is a slow consumer (default 10s)")
	fs.DurationVar(&o.LameDuckDuration, "lame_duck_duration", 0, "time to spread client closes over in lame duck mode (default 2m)")
	fs.DurationVar(&o.LameDuckGracePeriod, "lame_duck_grace_period", 0, "wait before lame duck starts closing clients (default 10s)")
	fs.BoolVar(&m.debug, "D", false, "debug logging")
	fs.BoolVar(&m.debug, "debug", false, "debug logging")
	fs.BoolVar(&m.trace, "V", false, "protocol trace logging")
	fs.BoolVar(&m.trace, "trace", false, "protocol trace logging")
	fs.Func("DV", "debug and trace logging", func(string) error { m.debug, m.trace = true, true; return nil })
	fs.StringVar(&m.logFile, "l", "", "log file (default: stderr)")
	fs.StringVar(&m.logFile, "log", "", "log file")
	fs.StringVar(&m.pidFile, "P", "", "PID file")
	fs.StringVar(&m.pidFile, "pid", "", "PID file")
	fs.StringVar(&m.configFile, "c", "", "configuration file")
	fs.StringVar(&m.configFile, "config", "", "configuration file")
	fs.BoolVar(&m.version, "v", false, "print the version and exit")
	fs.BoolVar(&m.version, "version", false, "print the version and exit")
	// -DV is a boolean-looking flag; flag.Func needs a value, so accept it bare.
	for i, a := range args {
		if a == "-DV" || a == "--DV" {
			args[i] = "-DV=true"
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	if m.configFile != "" {
		return fmt.Errorf("flag -c: configuration files are not supported yet (%s)", m.configFile)
	}
	return nil
}

// sizeFlag parses "1048576", "1MB", "64KB", "2GB".
func sizeFlag(dst *int) func(string) error {
	return func(v string) error {
		n, err := parseSize(v)
		*dst = n
		return err
	}
}

func parseSize(v string) (int, error) {
	mult := 1
	for _, u := range []struct {
		suffix string
		m      int
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if len(v) > len(u.suffix) && (v[len(v)-len(u.suffix):] == u.suffix) {
			v, mult = v[:len(v)-len(u.suffix)], u.m
			break
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	return n * mult, nil
}

func (m *Main) setupLogging() error {
	out := m.Stderr
	if m.logFile != "" {
		f, err := os.OpenFile(m.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("flag -l: %w", err)
		}
		out, m.logOut = f, f
	}
	level := slog.LevelInfo
	if m.debug {
		level = slog.LevelDebug
	}
	if m.trace {
		level = levelTrace
	}
	m.log = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
	return nil
}

// Start builds and starts every component; it returns once clients can connect.
func (m *Main) Start() error {
	if m.version {
		fmt.Fprintf(m.Stdout, "starling version %s (NATS protocol %s, %s)\n", core.Version, core.NATSVersion, runtime.Version())
		return nil
	}
	if err := m.setupLogging(); err != nil {
		return err
	}
	o := m.core
	o.Logger = m.log
	if m.httpPort != 0 {
		o.HTTPHost = m.httpHost
		if o.HTTPHost == "" {
			o.HTTPHost = o.Host
		}
		o.HTTPPort = m.httpPort
	}
	srv, err := core.New(o)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	m.srv = srv
	if m.httpPort != 0 {
		port := max(m.httpPort, 0)
		m.mon = monitor.New(srv, m.basePath, m.log)
		if err := m.mon.Start(net.JoinHostPort(o.HTTPHost, strconv.Itoa(port))); err != nil {
			return err
		}
	}
	if m.pidFile != "" {
		if err := os.WriteFile(m.pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("flag -P: %w", err)
		}
	}
	close(m.ready)
	return nil
}

// Ready is closed once the server accepts clients.
func (m *Main) Ready() <-chan struct{} { return m.ready }

// Server returns the core server (nil before Start).
func (m *Main) Server() *core.Server { return m.srv }

// MonitorAddr returns the monitoring address ("" when off).
func (m *Main) MonitorAddr() string {
	if m.mon == nil || m.mon.Addr() == nil {
		return ""
	}
	return m.mon.Addr().String()
}

// Run starts the server and blocks until ctx ends, the server stops, or (with
// HandleSignals) SIGINT/SIGTERM; SIGUSR2 enters lame-duck mode and then exits.
func (m *Main) Run(ctx context.Context) error {
	if err := m.Start(); err != nil || m.version {
		return err
	}
	var sigs chan os.Signal
	if m.HandleSignals {
		sigs = make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR2)
		defer signal.Stop(sigs)
	}
	for {
		select {
		case <-ctx.Done():
			return m.Close()
		case <-m.srv.Done():
			return m.Close()
		case sig := <-sigs:
			if sig == syscall.SIGUSR2 {
				m.log.Info("received signal, entering lame duck mode", "signal", sig.String())
				go func() { _ = m.srv.LameDuck(ctx) }()
				continue
			}
			m.log.Info("received signal, shutting down", "signal", sig.String())
			return m.Close()
		}
	}
}

// Close shuts everything down, at most 10 seconds.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if m.mon != nil {
		errs = append(errs, m.mon.Close(ctx))
	}
	if m.srv != nil {
		errs = append(errs, m.srv.Shutdown(ctx))
	}
	if m.pidFile != "" {
		_ = os.Remove(m.pidFile)
	}
	if m.logOut != nil {
		errs = append(errs, m.logOut.Close())
		m.logOut = nil
	}
	return errors.Join(errs...)
}

// Execute is the whole binary: parse, run until a signal, return the exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	m := NewMain(stdout, stderr)
	m.HandleSignals = true
	if err := m.ParseFlags(args); err != nil {
		if errors.Is(err, ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "starling:", err)
		return 2
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "starling:", err)
		return 1
	}
	return 0
}
