package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// The streaming rows: stan-bench (github.com/nats-io/stan.go/examples/stan-bench v0.10.4)
// against nats-streaming-server v0.25.6 and Starling, both with the memory store.

const (
	stanCluster  = "test-cluster"
	stanSubject  = "bench.stan"
	stanClientID = "bench" // stan-bench names its clients bench-pub-0, bench-sub-0
	// stanProbeWait is how long one readiness probe waits for the discover subject's answer.
	stanProbeWait = 250 * time.Millisecond
	probeInbox    = "_INBOX.compare.stanprobe"
)

// stanScenario is one row of the streaming table: one publisher in stan-bench's default async
// mode (PublishAsync, up to 512 acks in flight; its rate counts acked messages) and subs
// subscribers, each started before the publisher with DeliverAllAvailable and receiving every
// message.
type stanScenario struct {
	name      string
	size      int // payload bytes
	subs      int
	msgs      int  // per run; sized for ~2-5 s against nats-streaming-server on 2 cores
	quickMsgs int  // per run with -quick (~0.5 s)
	sync      bool // stan-bench -sync: each publish waits for its PubAck
}

func stanScenarios() []stanScenario {
	return []stanScenario{
		{name: "async pub 16 B, 0 subs", size: 16, subs: 0, msgs: 500_000, quickMsgs: 80_000},
		{name: "async pub 16 B, 1 sub", size: 16, subs: 1, msgs: 300_000, quickMsgs: 50_000},
		{name: "async pub 1 KiB, 0 subs", size: 1024, subs: 0, msgs: 250_000, quickMsgs: 40_000},
		{name: "async pub 1 KiB, 1 sub", size: 1024, subs: 1, msgs: 200_000, quickMsgs: 30_000},
	}
}

// side is where the row's rate is measured: with a subscriber, its delivery rate (first message
// received to last), since a publisher's acks say the message was stored, not delivered.
func (sc stanScenario) side() string {
	if sc.sync {
		return "publisher (sync)"
	}
	if sc.subs == 0 {
		return "publisher (acked)"
	}
	return "subscriber"
}

func stanArgs(url string, sc stanScenario, msgs int) []string {
	var sync []string
	if sc.sync {
		sync = []string{"-sync"}
	}
	return append(sync, "-s", url, "-c", stanCluster, "-id", stanClientID, "-np", "1", "-ns", strconv.Itoa(sc.subs),
		"-n", strconv.Itoa(msgs), "-ms", strconv.Itoa(sc.size), stanSubject)
}

// stanServers are the two streaming servers. nats-streaming-server embeds its own NATS server,
// which takes the usual -a/-p/-m; Starling serves streaming by default (cluster test-cluster,
// memory store), so it gets no extra flags.
func stanServers(o options) [2]serverSpec {
	if o.baseline != "" {
		return [2]serverSpec{{name: baselineName, path: o.baseline}, {name: "starling", path: o.starling}}
	}
	return [2]serverSpec{
		{name: "nats-streaming-server", path: o.natsStreaming, args: []string{"-cid", stanCluster, "-st", "MEMORY"}},
		{name: "starling", path: o.starling},
	}
}

// stanRow is one streaming scenario on both servers, indexed like stanReport.servers.
type stanRow struct {
	sc    stanScenario
	msgs  int
	cells [2]cell
}

// stanReport is the streaming part of the report.
type stanReport struct {
	servers      [2]serverSpec
	versions     [2]string
	benchPath    string
	benchVersion string
	rows         []stanRow
}

// measureStreaming runs every streaming scenario, alternating the servers like the core rows.
func measureStreaming(ctx context.Context, o options, timeout time.Duration, logDir string, progress io.Writer) *stanReport {
	rep := &stanReport{servers: stanServers(o), benchPath: o.stanBench, benchVersion: moduleVersion(o.stanBench)}
	for i, s := range rep.servers {
		rep.versions[i] = binaryVersion(s.path, "-v")
	}
	for _, sc := range stanScenarios() {
		if ctx.Err() != nil {
			break
		}
		rw := stanRow{sc: sc, msgs: sc.msgs}
		if o.quick {
			rw.msgs = sc.quickMsgs
		}
		if o.msgs > 0 {
			rw.msgs = o.msgs
		}
		label := "stan " + sc.name
		alternate(ctx, o.rounds, rw.cells[:], label, rep.servers[:], progress, func(i int) (runResult, error) {
			return runStanOnce(ctx, o.stanBench, rep.servers[i], sc, rw.msgs, logDir, timeout)
		})
		rep.rows = append(rep.rows, rw)
	}
	return rep
}

// runStanOnce measures sc once on a server started for this run alone.
func runStanOnce(ctx context.Context, benchPath string, spec serverSpec, sc stanScenario, msgs int, logDir string, timeout time.Duration) (runResult, error) {
	s, err := startServer(ctx, spec, logDir, nil)
	if err != nil {
		return runResult{}, err
	}
	defer s.stop()
	res, err := runStan(ctx, benchPath, s, sc, msgs, timeout)
	if err != nil {
		return res, fmt.Errorf("%w (server log: %s)", err, s.logPath)
	}
	return res, nil
}

func runStan(ctx context.Context, benchPath string, s *server, sc stanScenario, msgs int, timeout time.Duration) (runResult, error) {
	if err := waitStanReady(ctx, s.addr(), readyTimeout); err != nil {
		return runResult{}, err
	}
	start := time.Now()
	cpu := startCPU(s.pid())
	p, err := natsCLI{benchPath}.start(stanArgs(s.url(), sc, msgs))
	if err != nil {
		return runResult{}, err
	}
	// stan-bench exits only once its subscriber has every message, so a server that loses one
	// would leave it waiting: fail once the server's outbound message count stops moving.
	err = p.waitDelivering(ctx, start.Add(timeout), stallTimeout, func() (int64, error) {
		v, err := s.varz()
		return v.OutMsgs, err
	})
	if err != nil {
		return runResult{}, err
	}
	st, err := parseStanBench(p.stdout.String())
	if err != nil {
		return runResult{}, err
	}
	res := runResult{stan: st, rate: st.pub, pubRate: st.pub.msgsPerSec, notes: p.warnings(), duration: time.Since(start)}
	res.serverCPUPerMsg = cpu.perMsg(msgs)
	if ps := p.cmd.ProcessState; ps != nil && msgs > 0 {
		res.clientCPUPerMsg = (ps.UserTime() + ps.SystemTime()) / time.Duration(msgs)
	}
	if sc.subs > 0 {
		if st.sub.msgsPerSec <= 0 || st.agg.msgsPerSec <= 0 {
			return res, fmt.Errorf("no Sub stats or Pub/Sub stats line in stan-bench output %q", clip(p.stdout.String(), 300))
		}
		res.rate = st.sub
	}
	return res, nil
}

// waitStanReady returns once a streaming server answers on the cluster's discover subject.
// /varz answering is not enough: nats-streaming-server starts its embedded NATS server first and
// its streaming layer a moment later, and stan-bench exits on a connect timeout.
func waitStanReady(ctx context.Context, addr string, timeout time.Duration) error {
	var last error
	err := pollUntil(ctx, timeout, func() (bool, error) {
		last = stanProbe(addr)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("streaming server not answering on _STAN.discover.%s: %w (last probe: %v)", stanCluster, err, last)
	}
	return nil
}

// stanProbe sends an empty connect request, which both servers answer with a ConnectResponse
// carrying "invalid connection request": any reply shows the streaming layer is serving.
func stanProbe(addr string) error {
	rc, err := dialRaw(addr, []byte("SUB "+probeInbox+" 1\r\n"), 4096, stanProbeWait)
	if err != nil {
		return err
	}
	defer rc.close()
	_ = rc.c.SetDeadline(time.Now().Add(stanProbeWait))
	if _, err := rc.c.Write([]byte("PUB _STAN.discover." + stanCluster + " " + probeInbox + " 0\r\n\r\n")); err != nil {
		return err
	}
	for {
		line, err := rc.readLine()
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("no reply to a connect request within %v", stanProbeWait)
		}
		if err != nil {
			return err
		}
		switch {
		case bytes.HasPrefix(line, []byte("MSG ")):
			return nil
		case bytes.HasPrefix(line, []byte("-ERR")):
			return fmt.Errorf("server said %s", bytes.TrimSpace(line))
		}
	}
}

// stanResult is one parsed stan-bench report.
type stanResult struct {
	pub benchRate // publisher: messages acked over first publish to last ack
	sub benchRate // subscriber: messages over first received to last received; 0 with -ns 0
	agg benchRate // pub + sub messages over the whole span; 0 with -ns 0
}

// parseStanBench reads stan-bench's stdout (nats.go v1.22.1's bench.Report), with -ns 0:
//
//	Pub stats: 156,000 msgs/sec ~ 2.38 MB/sec
//
// and with subscribers:
//
//	NATS Streaming Pub/Sub stats: 210,815 msgs/sec ~ 3.22 MB/sec
//	 Pub stats: 105,407 msgs/sec ~ 1.61 MB/sec
//	 Sub stats: 105,558 msgs/sec ~ 1.61 MB/sec
func parseStanBench(out string) (stanResult, error) {
	var r stanResult
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		var dst *benchRate
		switch {
		case strings.Contains(line, "Pub/Sub stats: "):
			dst = &r.agg
		case strings.HasPrefix(line, "Pub stats: "):
			dst = &r.pub
		case strings.HasPrefix(line, "Sub stats: "):
			dst = &r.sub
		default:
			continue
		}
		_, after, _ := strings.Cut(line, "stats: ")
		rate, err := parseStanRate(after)
		if err != nil {
			return r, fmt.Errorf("%w in %q", err, line)
		}
		*dst = rate
	}
	if r.pub.msgsPerSec <= 0 {
		return r, fmt.Errorf("no Pub stats line in stan-bench output %q", clip(out, 300))
	}
	return r, nil
}

// parseStanRate parses "105,407 msgs/sec ~ 1.61 MB/sec".
func parseStanRate(s string) (benchRate, error) {
	msgs, bytesPart, _ := strings.Cut(s, " ~ ")
	n, ok := strings.CutSuffix(msgs, " msgs/sec")
	if !ok {
		return benchRate{}, fmt.Errorf("no msgs/sec")
	}
	rate, err := strconv.ParseFloat(strings.ReplaceAll(n, ",", ""), 64)
	if err != nil {
		return benchRate{}, fmt.Errorf("msgs/sec: %w", err)
	}
	r := benchRate{msgsPerSec: rate}
	if b, ok := strings.CutSuffix(bytesPart, "/sec"); ok {
		r.bytesPerSec, _ = parseHumanBytes(b) // optional column
	}
	return r, nil
}

// parseHumanBytes inverts nats.go bench's HumanBytes(v, false): "%.2f" with B, KB, MB, GB...
// in powers of 1024.
func parseHumanBytes(s string) (float64, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return 0, fmt.Errorf("no unit in %q", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, err
	}
	for i, u := range []string{"B", "KB", "MB", "GB", "TB", "PB", "EB"} {
		if u == unit {
			return v * float64(uint64(1)<<(10*i)), nil
		}
	}
	return 0, fmt.Errorf("unknown unit %q", unit)
}

// moduleVersion names the main package and module version a Go binary was built from, e.g.
// "github.com/nats-io/stan.go/examples/stan-bench v0.10.4"; stan-bench has no version flag.
func moduleVersion(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	return bi.Path + " " + bi.Main.Version + ", " + bi.GoVersion
}
