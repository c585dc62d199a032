package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// procStopGrace is how long a process gets between SIGTERM and SIGKILL.
	procStopGrace = 2 * time.Second
	// stallTimeout fails a run whose deliveries stopped before the expected count: a server that
	// drops messages (slow consumer) would otherwise leave `nats bench sub` waiting until the run
	// timeout, since it exits only after receiving --msgs messages.
	stallTimeout = 5 * time.Second
	stallPoll    = 250 * time.Millisecond
)

// errStalled reports deliveries that stopped before every expected message arrived.
var errStalled = errors.New("deliveries stalled")

// natsCLI runs `nats bench` (natscli v0.5.0); with path set to stan-bench, stan-bench.
type natsCLI struct {
	path string
}

// proc is one running `nats` process with its output captured in memory.
type proc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	exited chan struct{} // closed once the process is reaped; then waitErr and the buffers are final
	err    error
}

func (n natsCLI) start(args []string) (*proc, error) {
	p := &proc{exited: make(chan struct{})}
	p.cmd = exec.Command(n.path, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = orphanKill()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", n.path, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// run starts args and waits for it to exit by deadline.
func (n natsCLI) run(ctx context.Context, args []string, deadline time.Time) (*proc, error) {
	p, err := n.start(args)
	if err != nil {
		return nil, err
	}
	return p, p.wait(ctx, deadline)
}

// wait returns when the process exits, or kills it at deadline or when ctx ends.
func (p *proc) wait(ctx context.Context, deadline time.Time) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-p.exited:
		return p.exitErr()
	case <-timer.C:
		p.kill()
		return fmt.Errorf("%s: run timeout reached, killed", p.name())
	case <-ctx.Done():
		p.kill()
		return ctx.Err()
	}
}

// waitDelivering is wait for a consumer: it also fails fast when progress stops moving.
func (p *proc) waitDelivering(ctx context.Context, deadline time.Time, stall time.Duration, progress func() (int64, error)) error {
	err := waitProgress(ctx, p.exited, deadline, stall, progress)
	if err != nil {
		p.kill()
		return fmt.Errorf("%s: %w", p.name(), err)
	}
	return p.exitErr()
}

// waitProgress blocks until done closes. It gives up at deadline, when ctx ends, or when progress
// (a delivered-message counter) has not moved for stall.
func waitProgress(ctx context.Context, done <-chan struct{}, deadline time.Time, stall time.Duration, progress func() (int64, error)) error {
	tick := time.NewTicker(min(stallPoll, stall/2))
	defer tick.Stop()
	last, lastMove := int64(-1), time.Now()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			if now.After(deadline) {
				return errors.New("run timeout reached")
			}
			n, err := progress()
			if err != nil || n != last {
				last, lastMove = n, now // an unreadable counter is not evidence of a stall
				continue
			}
			if now.Sub(lastMove) > stall {
				return fmt.Errorf("%w: no deliveries for %v", errStalled, stall)
			}
		}
	}
}

// terminate stops a process that never exits on its own (`nats bench service serve`).
// natscli v0.5.0's serve ignores SIGINT, so SIGTERM, then SIGKILL.
func (p *proc) terminate() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(procStopGrace):
		p.kill()
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func (p *proc) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("%s: %w: %s", p.name(), p.err, lastLine(p.stderr.String()))
	}
	return nil
}

// name is the subcommand, e.g. "bench service request": the arguments before the first flag;
// the program's name when there are none (stan-bench).
func (p *proc) name() string {
	args := p.cmd.Args[1:]
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			args = args[:i]
			break
		}
	}
	if len(args) == 0 {
		return filepath.Base(p.cmd.Path)
	}
	return strings.Join(args, " ")
}

// warnings returns natscli's own warnings ("WARNING: at least one of the clients disconnected..."),
// which mean the numbers of that run are suspect.
func (p *proc) warnings() []string {
	var w []string
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, "WARNING") || strings.Contains(line, "Error") {
			w = append(w, strings.TrimSpace(line))
		}
	}
	return w
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// benchRate is one parsed `nats bench` result.
type benchRate struct {
	msgsPerSec  float64
	bytesPerSec float64 // 0 when not printed
}

// parseBenchOutput reads the rate from `nats bench` stdout. v0.5.0 prints one of
//
//	NATS Core NATS publisher stats: 1,867,767 msgs/sec ~ 28 MiB/sec ~ min: 0.06us ~ ...
//	 NATS Core NATS subscriber aggregated stats: 919,614 msgs/sec ~ 14 MiB/sec
//
// the second (after per-client "[n] ..." lines) when --clients > 1. The aggregate is the sum of
// every client's messages over the span from the first client's start to the last one's end.
func parseBenchOutput(out string) (benchRate, error) {
	line := findLine(out, "aggregated stats: ")
	if line == "" {
		line = findLine(out, " stats: ")
	}
	if line == "" {
		return benchRate{}, fmt.Errorf("no stats line in nats bench output %q", clip(out, 300))
	}
	_, after, _ := strings.Cut(line, "stats: ")
	parts := strings.Split(after, " ~ ")
	msgs, ok := strings.CutSuffix(parts[0], " msgs/sec")
	if !ok {
		return benchRate{}, fmt.Errorf("no msgs/sec in %q", line)
	}
	rate, err := strconv.ParseFloat(strings.ReplaceAll(msgs, ",", ""), 64)
	if err != nil {
		return benchRate{}, fmt.Errorf("msgs/sec in %q: %w", line, err)
	}
	r := benchRate{msgsPerSec: rate}
	if len(parts) > 1 {
		r.bytesPerSec, _ = parseIBytes(strings.TrimSuffix(parts[1], "/sec")) // optional column
	}
	return r, nil
}

func findLine(out, marker string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, marker) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// parseIBytes inverts go-humanize's IBytes ("900 B", "5.5 MiB"), which natscli uses for bytes/sec.
func parseIBytes(s string) (float64, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return 0, fmt.Errorf("no unit in %q", s)
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(num, ",", ""), 64)
	if err != nil {
		return 0, err
	}
	for i, u := range []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"} {
		if u == unit {
			return v * float64(uint64(1)<<(10*i)), nil
		}
	}
	return 0, fmt.Errorf("unknown unit %q", unit)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
