package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The idle mesh: three servers routed to each other, 1,000 raw connections spread over them
// round-robin, each with 100 subscriptions on subjects of its own (100,000 in all), then
// nothing. Each server holds its own clients' subscriptions and learns the other servers'
// interest over the routes. Reported per server: RSS and CPU over an idle window.

const (
	meshNodes       = 3
	meshConns       = 1_000
	meshSubsPerConn = 100
	idleWindow      = 5 * time.Second
	quickIdleWindow = 2 * time.Second
	// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every
	// Linux architecture Go supports.
	clockTicks = 100
)

// meshNode is one server of the idle mesh.
type meshNode struct {
	conns   int     // client connections (/varz)
	subs    int     // subscriptions (/varz; servers differ in whether remote interest counts)
	rss     int64   // VmRSS after the window
	varzMem int64   // /varz mem
	cpu     float64 // percent of one core over the window
}

// meshResult is one server kind's idle mesh.
type meshResult struct {
	nodes []meshNode
	setup time.Duration // opening the connections and propagating interest
}

func (m meshResult) totalRSS() int64 {
	var t int64
	for _, n := range m.nodes {
		t += n.rss
	}
	return t
}

func (m meshResult) totalCPU() float64 {
	var t float64
	for _, n := range m.nodes {
		t += n.cpu
	}
	return t
}

// meshCell is one server kind's idle mesh, or why it failed.
type meshCell struct {
	res meshResult
	err error
}

// measureMesh starts a fresh three-server cluster of spec, opens the subscriptions, waits until
// every server knows every other one's interest, lets it settle, and samples each process's
// CPU over window and its RSS at the end.
func measureMesh(ctx context.Context, spec serverSpec, logDir string, window time.Duration) (meshResult, error) {
	var res meshResult
	cl, err := startCluster(ctx, spec, meshNodes, logDir)
	if err != nil {
		return res, err
	}
	defer cl.stop()

	start := time.Now()
	conns, err := openConns(ctx, meshConns, func(i int) (*rawConn, error) {
		return dialRaw(cl.nodes[i%meshNodes].addr(), meshSubs(i), 512, dialTimeout)
	})
	defer closeAll(conns)
	if err != nil {
		return res, err
	}
	for _, from := range cl.nodes {
		for _, to := range cl.nodes {
			if from == to {
				continue
			}
			if err := awaitRouted(ctx, from, to, countTimeout); err != nil {
				return res, err
			}
		}
	}
	res.setup = time.Since(start)
	if err := sleepCtx(ctx, settleTime); err != nil {
		return res, err
	}

	before := make([]int64, len(cl.nodes))
	for i, s := range cl.nodes {
		if before[i], err = cpuTicks(s.pid()); err != nil {
			return res, err
		}
	}
	t0 := time.Now()
	if err := sleepCtx(ctx, window); err != nil {
		return res, err
	}
	elapsed := time.Since(t0)
	for i, s := range cl.nodes {
		after, err := cpuTicks(s.pid())
		if err != nil {
			return res, err
		}
		v, err := s.varz()
		if err != nil {
			return res, err
		}
		rss, err := s.rssBytes()
		if err != nil {
			return res, err
		}
		res.nodes = append(res.nodes, meshNode{
			conns: v.Connections, subs: v.Subscriptions, rss: rss, varzMem: v.Mem,
			cpu: cpuPercent(after-before[i], elapsed),
		})
	}
	return res, nil
}

// meshSubs is connection i's subscriptions: SUB mesh.<i>.<j> <j>.
func meshSubs(i int) []byte {
	var b bytes.Buffer
	for j := 1; j <= meshSubsPerConn; j++ {
		fmt.Fprintf(&b, "SUB mesh.%d.%d %d\r\n", i, j, j)
	}
	return b.Bytes()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// cpuTicks is the process's user plus system CPU time so far, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(string(b))
}

// parseStatTicks reads utime and stime (fields 14 and 15) from a /proc/<pid>/stat line. The
// command name (field 2) is in parentheses and may contain spaces, so fields are counted from
// the last ')'.
func parseStatTicks(stat string) (int64, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("no command name in /proc stat")
	}
	f := strings.Fields(stat[end+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat: %q", clip(stat, 200))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat times: %w", err)
	}
	return utime + stime, nil
}

// cpuPercent is ticks of CPU time over elapsed wall time, in percent of one core.
func cpuPercent(ticks int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(ticks) / clockTicks / elapsed.Seconds() * 100
}

// ticksDuration converts /proc clock ticks to time.
func ticksDuration(ticks int64) time.Duration { return time.Duration(ticks) * time.Second / clockTicks }

// cpuMeter measures one server process's CPU over a run (/proc, in clock ticks).
type cpuMeter struct {
	pid    int
	ticks0 int64
	err    error
}

// startCPU reads pid's CPU at the start of a run.
func startCPU(pid int) cpuMeter {
	t, err := cpuTicks(pid)
	return cpuMeter{pid: pid, ticks0: t, err: err}
}

// perMsg is the CPU pid used since startCPU, per message of msgs; 0 when /proc could not
// be read or there were no messages.
func (m cpuMeter) perMsg(msgs int) time.Duration {
	t, err := cpuTicks(m.pid)
	if err != nil || m.err != nil || msgs <= 0 {
		return 0
	}
	return ticksDuration(t-m.ticks0) / time.Duration(msgs)
}
