package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/nats-io/nats.go"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/monitor"
	"github.com/starling-io/starling/streaming"
)

// Main is one run of the server: ParseFlags, then Run (or Start), then Close.
type Main struct {
	Stdout, Stderr io.Writer
	// HandleSignals makes Run react to SIGINT/SIGTERM (shutdown), SIGUSR2 (lame duck),
	// SIGHUP (Reload) and SIGUSR1 (reopen the log file).
	HandleSignals bool

	args []string                   // the command line, applied over the file again by every Reload
	mu   sync.Mutex                 // serialises Reload; guards cfg
	cfg  *settings                  // the configuration in force
	tls  atomic.Pointer[tls.Config] // in force, for HTTPS monitoring (certificates reload)

	level     *slog.LevelVar // changed live by Reload
	stanLevel *slog.LevelVar // the streaming layer's (-SD, -SV), changed live by Reload
	log       *slog.Logger
	stanLog   *slog.Logger
	logFile   *logFile // -l; nil when logging to Stderr
	srv       *core.Server
	conn      *core.Conn        // streaming's in-process connection to core
	nc        *nats.Conn        // or its connection to an external NATS server (-ns)
	stan      *streaming.Server // nil with --no_streaming
	mon       *monitor.Monitor
	prof      *http.Server // --profile (profile.go)
	ready     chan struct{}
	// starting is cancelled by a stop asked for during Start (Run): streaming's restore
	// abandons its fetches. nil: none.
	starting context.Context

	// wrapLog, a test hook, wraps each logger's handler: it sees every log call, even
	// those below the level.
	wrapLog func(slog.Handler) slog.Handler
}

// NewMain returns a Main writing to the given streams.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{Stdout: stdout, Stderr: stderr, ready: make(chan struct{}), level: new(slog.LevelVar), stanLevel: new(slog.LevelVar)}
}

// ParseFlags reads the command line and the configuration file it names (-c): defaults,
// then the file, then the flags given, which win. It loads the TLS certificates, builds the
// Authenticator and validates every option. A flag that cannot be parsed is returned as is
// (it names the flag: a usage error); every other problem is reported in one *ConfigError,
// each naming its file:line:col and key, or its flag.
func (m *Main) ParseFlags(args []string) error {
	s, err := configureFor(args, m.Stdout, true)
	if err != nil {
		return err
	}
	m.args = append([]string(nil), args...)
	m.cfg = s
	return nil
}

func (m *Main) setupLogging(c *settings) error {
	out := m.Stderr
	if c.logFile != "" {
		f, err := openLogFile(c.logFile, c.logSizeLimit, c.logMaxNum, m.Stderr)
		if err != nil {
			return fmt.Errorf("log file: %w", err)
		}
		out, m.logFile = f, f
	}
	m.setLevels(c)
	// One handler, two loggers filtering at their own levels: core's (-D, -V) and the
	// streaming layer's (also -SD, -SV).
	h := newLogHandler(out, c)
	logger := func(level slog.Leveler) *slog.Logger {
		var lh slog.Handler = &levelHandler{h: h, level: level}
		if m.wrapLog != nil {
			lh = m.wrapLog(lh)
		}
		return slog.New(lh)
	}
	m.log = logger(m.level)
	m.stanLog = logger(m.stanLevel).With("layer", "streaming")
	return nil
}

// reopenLog reopens the log file (SIGUSR1): after logrotate moved it, logging goes on in a
// new file of the same name.
func (m *Main) reopenLog() {
	if m.logFile == nil {
		m.log.Info("no log file to reopen: logging to stderr")
		return
	}
	if err := m.logFile.Reopen(); err != nil {
		m.log.Error("reopening the log file failed; logging goes on to the old file", "file", m.logFile.path, "error", err)
		return
	}
	m.log.Info("log file reopened", "file", m.logFile.path)
}

func (m *Main) setLevels(c *settings) {
	m.level.Set(c.level())
	m.stanLevel.Set(c.streaming.level(c.level()))
}

// logWarnings logs the users whose passwords (or the token) are plain text, never a
// secret, and the settings that are accepted but not used.
func (m *Main) logWarnings(c *settings) {
	if len(c.plain) > 0 {
		m.log.Warn("plain-text passwords in the configuration: use bcrypt hashes", "users", c.plain)
	}
	for _, w := range c.warnings {
		m.log.Warn(w)
	}
	for _, w := range c.streaming.warnings {
		m.stanLog.Warn(w)
	}
}

// Start builds and starts every component; it returns once clients can connect.
func (m *Main) Start() error {
	m.mu.Lock() // a Reload waits until everything is built
	defer m.mu.Unlock()
	if m.cfg == nil {
		if err := m.ParseFlags(nil); err != nil {
			return err
		}
	}
	c := m.cfg
	if c.version {
		fmt.Fprintf(m.Stdout, "starling version %s (NATS protocol %s, %s)\n", core.Version, core.NATSVersion, runtime.Version())
		return nil
	}
	if err := m.setupLogging(c); err != nil {
		return err
	}
	m.logWarnings(c)
	o := c.coreOptions(m.log)
	o.ReloadConfig = m.Reload // $SYS.REQ.SERVER.<id>.RELOAD
	srv, err := core.New(o)
	if err != nil {
		return err
	}
	m.srv = srv
	// Streaming is up (store recovered, subjects subscribed in-process) before core
	// accepts its first client, so a client never finds the router without streaming.
	// Clustered, startStreaming starts core once the raft log is opened and checked, before
	// raft restores its snapshot (streaming.go): a node restoring a raft snapshot fetches
	// over the routes.
	clustered := !c.streaming.off && c.streaming.cluster.on
	if !c.streaming.off {
		if o.Cluster != nil && !c.streaming.cluster.on {
			// Unclustered, each streaming server owns its channels alone: two in
			// one mesh with the same cluster ID would both answer every request.
			m.log.Warn("streaming runs on this server alone: in a mesh, run it on one server (or use --no_streaming on the others), or cluster it (--clustered)")
		}
		if err := m.startStreaming(c); err != nil {
			return err
		}
	}
	if !clustered {
		if err := srv.Start(); err != nil {
			return err
		}
	}
	if port := c.monitorPort(); port != 0 {
		addr := net.JoinHostPort(c.monitorHost(), strconv.Itoa(max(port, 0)))
		m.mon = monitor.New(srv, c.basePath, m.log)
		var cfg *tls.Config
		if c.httpsPort != 0 {
			m.tls.Store(c.core.TLS)
			cfg = &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: m.currentTLS}
		}
		if err := m.mountStreaming(c); err != nil {
			return err
		}
		if err := m.mon.StartTLS(addr, cfg); err != nil {
			return err
		}
	}
	if err := m.startProfiling(c); err != nil {
		return err
	}
	if c.pidFile != "" {
		if err := os.WriteFile(c.pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("PID file: %w", err)
		}
	}
	if err := m.writePortsFile(c); err != nil {
		return err
	}
	if c.configFile != "" {
		m.log.Info("configuration loaded", "file", c.configFile)
	}
	close(m.ready)
	return nil
}

// currentTLS serves HTTPS monitoring with the TLS configuration in force, so that a reload
// with new certificates applies to it too.
func (m *Main) currentTLS(*tls.ClientHelloInfo) (*tls.Config, error) {
	return m.tls.Load(), nil
}

// Streaming returns the streaming layer (nil before Start and with --no_streaming).
func (m *Main) Streaming() *streaming.Server { return m.stan }

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
// HandleSignals) SIGINT/SIGTERM; SIGUSR2 enters lame-duck mode and then exits; SIGHUP
// reloads the configuration file (a failed reload is logged and the server keeps going);
// SIGUSR1 reopens the log file.
func (m *Main) Run(ctx context.Context) error {
	var sigs chan os.Signal
	if m.HandleSignals { // before Start: a signal sent once Ready is closed must not kill us
		sigs = make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP)
		defer signal.Stop(sigs)
	}
	started := make(chan struct{})
	var aborted atomic.Bool
	if sigs != nil {
		// A stop asked for while the node starts abandons the fetches of a raft snapshot it
		// restores (streaming.Options.Context; clustered, that can take as long as copying
		// what it missed): Start ends at once, and the signal, in sigs too, stops the server.
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGINT, syscall.SIGTERM)
		startCtx, abort := context.WithCancel(context.Background())
		m.starting = startCtx
		go func() {
			defer signal.Stop(term)
			select {
			case <-term:
				aborted.Store(true)
				abort()
			case <-started:
			}
		}()
	}
	err := m.Start()
	close(started)
	if err != nil {
		if aborted.Load() && m.log != nil {
			m.log.Info("stopped while starting", "err", err)
			return m.Close()
		}
		return errors.Join(err, m.Close()) // stop what did start
	}
	if m.srv == nil { // -v starts nothing
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return m.Close()
		case <-m.srv.Done():
			return m.Close()
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				m.log.Info("received signal, reloading the configuration", "signal", sig.String())
				_ = m.Reload() // logged; the running configuration stays on failure
				continue
			case syscall.SIGUSR1:
				m.reopenLog()
				continue
			case syscall.SIGUSR2:
				m.log.Info("received signal, entering lame duck mode", "signal", sig.String())
				st := m.stan
				go func() {
					// A streaming leader hands over first, while core still routes the
					// others' requests here: its clients stay for the grace period, and
					// core goes down before the streaming layer does. Leader or not, the
					// node stands for election no more.
					if st != nil {
						st.HandOver()
					}
					_ = m.srv.LameDuck(ctx)
				}()
				continue
			}
			m.log.Info("received signal, shutting down", "signal", sig.String())
			return m.Close()
		}
	}
}

// Close shuts everything down, at most 10 seconds: monitoring, then streaming (which
// closes its store), then core.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if m.mon != nil {
		errs = append(errs, m.mon.Close(ctx))
	}
	if m.prof != nil {
		_ = m.prof.Close()
	}
	if m.stan != nil {
		errs = append(errs, m.stan.Shutdown())
		if m.conn != nil {
			m.conn.Close()
		}
		if m.nc != nil {
			m.nc.Close()
		}
		m.stan, m.conn, m.nc = nil, nil, nil
	}
	if m.srv != nil {
		errs = append(errs, m.srv.Shutdown(ctx))
	}
	m.mu.Lock()
	c := m.cfg
	m.mu.Unlock()
	if c != nil && c.pidFile != "" && m.srv != nil {
		_ = os.Remove(c.pidFile)
	}
	if c != nil && c.portsDir != "" && m.srv != nil {
		_ = os.Remove(portsFile(c.portsDir))
	}
	if m.logFile != nil {
		errs = append(errs, m.logFile.Close())
		m.logFile = nil
	}
	return errors.Join(errs...)
}

// Execute is the whole binary: parse, then check (-t), signal (--signal) or run until a
// signal. Exit codes: 0 ok, 1 configuration or runtime failure, 2 usage.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "store" {
		return runStoreCommand(args[1:], stdout, stderr)
	}
	m := NewMain(stdout, stderr)
	m.HandleSignals = true
	err := m.ParseFlags(args)
	var ce *ConfigError
	switch {
	case errors.Is(err, ErrHelp):
		return 0
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "starling: configuration has %d error(s):\n%s\n", len(ce.Errs), ce)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "starling: %v\nThe options: starling --help\n", err)
		return 2
	}
	c := m.cfg
	switch {
	case c.version:
		fmt.Fprintf(stdout, "starling version %s (NATS protocol %s, %s)\n", core.Version, core.NATSVersion, runtime.Version())
		return 0
	case c.check:
		if len(c.plain) > 0 {
			fmt.Fprintf(stderr, "starling: warning: plain-text passwords for %q: use bcrypt hashes\n", c.plain)
		}
		for _, w := range slices.Concat(c.warnings, c.streaming.warnings) {
			fmt.Fprintf(stderr, "starling: warning: %s\n", w)
		}
		fmt.Fprintln(stdout, "configuration OK")
		return 0
	case c.signal != "":
		if err := m.SendSignal(); err != nil {
			fmt.Fprintln(stderr, "starling:", err)
			return 1
		}
		return 0
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "starling:", err)
		return 1
	}
	return 0
}
