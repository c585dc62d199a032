package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const (
	runTimeout      = 60 * time.Second // one run, setup to last delivery; ~10x a normal run
	quickRunTimeout = 30 * time.Second
	versionTimeout  = 5 * time.Second
)

// options are the command-line flags.
type options struct {
	starling   string
	natsServer string
	nats       string
	rounds     int
	quick      bool
	msgs       int
	skipMem    bool
	skipCore   bool
	// streaming (stan-bench) rows
	stanBench     string
	natsStreaming string
	baseline      string // another Starling build in nats-streaming-server's place (an A/B run)
	skipStreaming bool
	skipDurable   bool
	skipSync      bool
	skipCluster   bool
	skipStanClust bool
	onlyReplay    bool // only the durable section's replay rows (file and memory)
}

func parseFlags(args []string, errOut io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&o.starling, "starling", "bin/starling", "Starling server binary")
	fs.StringVar(&o.natsServer, "nats-server", "bin/nats-server", "nats-server binary (v2.15.2)")
	fs.StringVar(&o.nats, "nats", "bin/nats", "nats CLI binary (natscli v0.5.0)")
	fs.IntVar(&o.rounds, "rounds", 3, "runs per scenario and server; the median is reported")
	fs.BoolVar(&o.quick, "quick", false, "short runs (~0.5 s each) for a smoke test")
	fs.IntVar(&o.msgs, "msgs", 0, "messages per run for every scenario (0: per-scenario defaults);\n"+
		"request/reply manages only ~10-15k/s on 2 cores, so a large N times it out")
	fs.BoolVar(&o.skipMem, "skip-mem", false, "skip the 10,000 idle connections memory test")
	fs.StringVar(&o.stanBench, "stan-bench", "bin/stan-bench", "stan-bench binary (github.com/nats-io/stan.go/examples/stan-bench v0.10.4)")
	fs.StringVar(&o.natsStreaming, "nats-streaming-server", "bin/nats-streaming-server", "nats-streaming-server binary (v0.25.6)")
	fs.StringVar(&o.baseline, "baseline", "", "another Starling binary run in nats-streaming-server's place on the streaming\n"+
		"and durable rows, with Starling's own flags: an A/B of two builds alternated in one run\n"+
		"(ratios are this build over the baseline; the rows' targets do not apply)")
	fs.BoolVar(&o.skipStreaming, "skip-streaming", false, "skip the memory-store streaming (stan-bench) rows")
	fs.BoolVar(&o.skipDurable, "skip-durable", false, "skip the durable-store streaming rows (file and bolt stores)")
	fs.BoolVar(&o.skipSync, "skip-sync", false, "skip the synchronous publish rows (stan.go Publish; memory and file stores) and the disk's write+fsync rate")
	fs.BoolVar(&o.skipCore, "skip-core", false, "skip the core NATS (nats bench) rows")
	fs.BoolVar(&o.skipCluster, "skip-cluster", false, "skip the cluster rows (nats bench across a route, idle 3-server mesh)")
	fs.BoolVar(&o.skipStanClust, "skip-stan-cluster", false, "skip the streaming cluster rows (stan-bench against three Raft nodes)")
	fs.BoolVar(&o.onlyReplay, "only-replay", false, "run only the replay rows (file and memory stores); every other section and row is skipped")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.onlyReplay {
		o.skipCore, o.skipMem, o.skipStreaming, o.skipSync, o.skipCluster, o.skipStanClust = true, true, true, true, true, true
		o.skipDurable = false
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.rounds < 1 {
		return o, fmt.Errorf("-rounds: must be at least 1, got %d", o.rounds)
	}
	if o.msgs < 0 {
		return o, fmt.Errorf("-msgs: must not be negative, got %d", o.msgs)
	}
	bins := map[string]string{"-starling": o.starling}
	if !o.skipCore || !o.skipMem || !o.skipCluster {
		bins["-nats-server"] = o.natsServer
	}
	if !o.skipCore || !o.skipCluster {
		bins["-nats"] = o.nats
	}
	if !o.skipStreaming || (!o.skipDurable && !o.onlyReplay) || !o.skipStanClust {
		bins["-stan-bench"] = o.stanBench
	}
	if !o.skipStreaming || !o.skipDurable || !o.skipSync || !o.skipStanClust {
		if o.baseline != "" {
			bins["-baseline"] = o.baseline
		} else {
			bins["-nats-streaming-server"] = o.natsStreaming
		}
	}
	for flagName, path := range bins {
		if _, err := exec.LookPath(path); err != nil {
			return o, fmt.Errorf("%s: %w", flagName, err)
		}
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	// Ctrl-C cancels ctx; every child process and server is then stopped before exit.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, o, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run measures everything, writes the report to out and returns the exit code.
func run(ctx context.Context, o options, argv []string, out, progress io.Writer) int {
	logDir, err := os.MkdirTemp("", "starling-compare-")
	if err != nil {
		fmt.Fprintln(progress, "compare:", err)
		return 1
	}
	rep := &report{
		argv: argv, started: time.Now(), loadStart: loadAvg(), rounds: o.rounds, quick: o.quick,
		servers:  [2]serverSpec{{name: "nats-server", path: o.natsServer}, {name: "starling", path: o.starling}},
		natsPath: o.nats, natsVersion: binaryVersion(o.nats, "--version"), ab: o.baseline != "",
	}
	for i, s := range rep.servers {
		rep.versions[i] = binaryVersion(s.path, "-v")
	}
	r := runner{nats: natsCLI{o.nats}, timeout: runTimeout, stall: stallTimeout}
	if o.quick {
		r.timeout = quickRunTimeout
	}
	for _, sc := range scenarios() {
		if ctx.Err() != nil || o.skipCore {
			break
		}
		rep.rows = append(rep.rows, measureScenario(ctx, r, rep.servers, sc, o, logDir, progress))
	}
	if !o.skipStreaming && ctx.Err() == nil {
		rep.stan = measureStreaming(ctx, o, r.timeout, logDir, progress)
	}
	if !o.skipDurable && ctx.Err() == nil {
		rep.durable = measureDurable(ctx, o, r.timeout, logDir, progress)
	}
	if !o.skipSync && ctx.Err() == nil {
		rep.sync = measureSync(ctx, o, r.timeout, logDir, progress)
	}
	if !o.skipCluster && ctx.Err() == nil {
		rep.cluster = measureCluster(ctx, o, r, logDir, progress)
	}
	if !o.skipStanClust && ctx.Err() == nil {
		rep.stanCluster = measureStanCluster(ctx, o, r.timeout, logDir, progress)
	}
	if !o.skipMem && ctx.Err() == nil {
		rep.mem = measureAllMemory(ctx, rep.servers, logDir, progress)
	}
	rep.write(out)
	if rep.failed() || ctx.Err() != nil {
		fmt.Fprintf(progress, "compare: failures; server logs kept in %s\n", logDir)
		return 1
	}
	_ = os.RemoveAll(logDir)
	return 0
}

// measureScenario runs sc o.rounds times per server, alternating which server goes first.
func measureScenario(ctx context.Context, r runner, servers [2]serverSpec, sc scenario, o options, logDir string, progress io.Writer) row {
	rw := row{sc: sc, msgs: sc.msgs}
	if o.quick {
		rw.msgs = sc.quickMsgs
	}
	if o.msgs > 0 {
		rw.msgs = o.msgs
	}
	extra, err := sc.config.serverArgs(logDir)
	if err != nil {
		rw.cells[0].err, rw.cells[1].err = err, err
		fmt.Fprintf(progress, "[%s] FAILED: %v\n", sc.name, err)
		return rw
	}
	alternate(ctx, o.rounds, rw.cells[:], sc.name, servers[:], progress, func(i int) (runResult, error) {
		return runOnce(ctx, r, servers[i], sc, rw.msgs, logDir, extra)
	})
	return rw
}

// alternate calls measure rounds times per server, rotating which server goes first each
// round (A B, B A, ... for two) so that drift in the machine's state does not favour one of
// them. A server's first failure ends its rounds.
func alternate(ctx context.Context, rounds int, cells []cell, label string, servers []serverSpec, progress io.Writer, measure func(i int) (runResult, error)) {
	for round := range rounds {
		for k := range servers {
			i := (k + round) % len(servers)
			c := &cells[i]
			if c.err != nil || ctx.Err() != nil {
				continue
			}
			res, err := measure(i)
			if err != nil {
				c.err = fmt.Errorf("round %d: %w", round+1, err)
				fmt.Fprintf(progress, "[%s] round %d %s: FAILED: %v\n", label, round+1, servers[i].name, err)
				continue
			}
			c.runs = append(c.runs, res)
			cpu := ""
			if res.serverCPUPerMsg > 0 {
				cpu = fmt.Sprintf(", servers %.2f µs/msg", float64(res.serverCPUPerMsg)/float64(time.Microsecond))
			}
			fmt.Fprintf(progress, "[%s] round %d %s: %s msgs/s%s (%s)\n", label, round+1, servers[i].name,
				fmtRate(res.rate.msgsPerSec), cpu, res.duration.Round(10*time.Millisecond))
		}
	}
}

// runOnce measures sc once on a server started for this run alone, with extra server flags.
func runOnce(ctx context.Context, r runner, spec serverSpec, sc scenario, msgs int, logDir string, extra []string) (runResult, error) {
	s, err := startServer(ctx, spec, logDir, extra)
	if err != nil {
		return runResult{}, err
	}
	defer s.stop()
	if sc.config != nil && sc.config.check != nil {
		if err := sc.config.check(s.addr()); err != nil {
			return runResult{}, fmt.Errorf("%w (server log: %s)", err, s.logPath)
		}
	}
	cpu := startCPU(s.pid())
	res, err := r.run(ctx, s, sc.plan(s.url(), msgs))
	if err != nil {
		return res, fmt.Errorf("%w (server log: %s)", err, s.logPath)
	}
	// The server's CPU per message of the run, clients' set-up included (a queue group's
	// members join inside r.run): the figure of record where the client caps msgs/s.
	res.serverCPUPerMsg = cpu.perMsg(msgs)
	return res, nil
}

func measureAllMemory(ctx context.Context, servers [2]serverSpec, logDir string, progress io.Writer) *[2]memCell {
	var mem [2]memCell
	for i, s := range servers {
		fmt.Fprintf(progress, "[memory] %s: opening %d connections...\n", s.name, idleConns)
		res, err := measureMemory(ctx, s, logDir)
		mem[i] = memCell{res: res, err: err}
		if err != nil {
			fmt.Fprintf(progress, "[memory] %s: FAILED: %v\n", s.name, err)
			continue
		}
		fmt.Fprintf(progress, "[memory] %s: VmRSS %s, /varz mem %s\n", s.name, fmtBytes(float64(res.rss)), fmtBytes(float64(res.varzMem)))
	}
	return &mem
}

// binaryVersion runs `path flag` and returns its first output line, for the report only.
func binaryVersion(path, flag string) string {
	ctx, cancel := context.WithTimeout(context.Background(), versionTimeout)
	defer cancel()
	b, err := exec.CommandContext(ctx, path, flag).CombinedOutput()
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return first
}
