package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

const (
	payloadSize   = 16
	readyTimeout  = 10 * time.Second
	quietPeriod   = 300 * time.Millisecond // after the last expected message, to catch extras
	queueName     = "workers"
	queueMembers  = 4
	fanoutSubs    = 5
	serveClients  = 2 // service instances, all in the micro framework's default queue group
	requestClient = 8 // concurrent requesters: each waits for its reply, so one is latency-bound
)

// Where a scenario's rate is measured. For delivery scenarios the subscriber side is the one
// that counts: a publisher can finish while the server still buffers its messages.
const (
	sidePub  = "publisher"
	sideSub  = "subscribers (aggregate)"
	sideReq  = "requesters (aggregate)"
	sideQSub = "queue members (aggregate, in-process)"
)

// plan is what one run of a scenario executes.
type plan struct {
	background []string // `nats bench` args started first (sub or serve), nil if none
	subject    string   // subject the background process or queue group subscribes to
	wantConns  int      // connections that must be subscribed to subject before the foreground starts
	endless    bool     // background never exits by itself (serve): stop it after the foreground
	queue      int      // in-process raw queue-group members (natscli cannot join queue groups)
	queueWant  int64    // messages the queue group expects in total: each is delivered once
	foreground []string // `nats bench` args measured (pub or request)
	side       string   // which output is the scenario's rate
}

// scenario is one row of the report.
type scenario struct {
	name      string
	msgs      int // per run; sized for ~2-5 s against nats-server on 2 cores
	quickMsgs int // per run with -quick (~0.5 s)
	plan      func(url string, msgs int) plan
	config    *serverConfig // file both servers load with -c; nil: flags only
	self      *selfRatio    // extra line under the table; nil for none
}

// selfRatio asks for a line under the throughput table: this row's Starling median over another
// row's Starling median in the same run, i.e. what a feature costs Starling itself.
type selfRatio struct {
	label    string // e.g. "Starling with 20 rules / Starling open"
	baseline string // name of the row giving the denominator
	target   float64
}

// scenarios are the report's rows. Which side's rate each one reports, and why:
//   - pub-only: the publisher's, the only side there is. The permissions variant publishes as a
//     user with 20 publish rules (perms.go), on both servers loading the same config file.
//   - pub → 1 sub and 1 pub → 5 subs: `nats bench sub`'s aggregate, i.e. messages received by all
//     its clients over the span from the first client's first message to the last client's last
//     one. With 5 subscribers that counts every copy (5 × msgs), the server's real output rate;
//     the publisher's rate is in the details table, since a publisher can finish while the
//     server is still buffering.
//   - queue group: natscli v0.5.0's `bench sub` has no queue option, so 4 raw-protocol members
//     in this process count deliveries (and check each message arrived exactly once);
//     `nats bench pub` publishes.
//   - request/reply: `nats bench service request`'s aggregate, completed requests per second
//     across its clients, against `nats bench service serve` instances.
func scenarios() []scenario {
	return []scenario{
		{name: "pub-only 16 B", msgs: 5_000_000, quickMsgs: 1_000_000, plan: func(url string, n int) plan {
			return plan{foreground: pubArgs(url, "bench.pub", n), side: sidePub}
		}},
		// Right after pub-only, so that its line under the table compares neighbouring rows.
		{name: "pub-only 16 B, user with 20 allow/deny rules", msgs: 5_000_000, quickMsgs: 1_000_000,
			plan: func(url string, n int) plan {
				return plan{foreground: pubArgs(url, permSubject, n, "--user", permUser, "--password", permPassword), side: sidePub}
			},
			config: permConfig(),
			self:   &selfRatio{label: "Starling with 20 rules / Starling open", baseline: "pub-only 16 B", target: 0.95},
		},
		{name: "pub → 1 sub 16 B", msgs: 3_000_000, quickMsgs: 600_000, plan: func(url string, n int) plan {
			return plan{
				background: subArgs(url, "bench.one", 1, n), subject: "bench.one", wantConns: 1,
				foreground: pubArgs(url, "bench.one", n), side: sideSub,
			}
		}},
		// The same through a service import: the publisher's account (cli) imports the
		// subscriber's (svc) exported service under another subject (svcimport.go).
		{name: "pub → 1 sub 16 B through a service import", msgs: 3_000_000, quickMsgs: 600_000, plan: func(url string, n int) plan {
			return plan{
				background: subArgs(url, svcExported, 1, n, "--user", svcUser, "--password", svcUser), subject: svcExported, wantConns: 1,
				foreground: pubArgs(url, svcImported, n, "--user", cliUser, "--password", cliUser), side: sideSub,
			}
		}, config: svcImportConfig()},
		// The subscriber aggregate counts every copy: 5 × msgs over the delivery span.
		{name: "1 pub → 5 subs 16 B", msgs: 600_000, quickMsgs: 100_000, plan: func(url string, n int) plan {
			return plan{
				background: subArgs(url, "bench.fan", fanoutSubs, n), subject: "bench.fan", wantConns: fanoutSubs,
				foreground: pubArgs(url, "bench.fan", n), side: sideSub,
			}
		}},
		{name: "queue group of 4, 1 pub 16 B", msgs: 3_000_000, quickMsgs: 600_000, plan: func(url string, n int) plan {
			return plan{
				queue: queueMembers, queueWant: int64(n), subject: "bench.q", wantConns: queueMembers,
				foreground: pubArgs(url, "bench.q", n), side: sideQSub,
			}
		}},
		{name: "request/reply 16 B", msgs: 40_000, quickMsgs: 8_000, plan: func(url string, n int) plan {
			return plan{
				background: serveArgs(url, "bench.svc", serveClients), subject: "bench.svc",
				wantConns: serveClients, endless: true,
				foreground: requestArgs(url, "bench.svc", requestClient, n), side: sideReq,
			}
		}},
	}
}

// common are the flags every `nats bench` invocation gets: --no-context so a user's saved
// context (credentials, other servers) cannot leak in, --no-progress because bars go to a tty.
func common(url string) []string { return commonSized(url, payloadSize) }

// commonSized is common with a payload of size bytes.
func commonSized(url string, size int) []string {
	return []string{"--no-context", "-s", url, "--no-progress", "--size", strconv.Itoa(size)}
}

// pubArgs: extra are further flags, such as credentials.
func pubArgs(url, subject string, msgs int, extra ...string) []string {
	args := append(append([]string{"bench", "pub"}, common(url)...), "--msgs", strconv.Itoa(msgs))
	return append(append(args, extra...), subject)
}

// subArgs: every one of the clients expects all msgs, and the process exits once each has them.
func subArgs(url, subject string, clients, msgs int, extra ...string) []string {
	args := append(append([]string{"bench", "sub"}, common(url)...),
		"--clients", strconv.Itoa(clients), "--msgs", strconv.Itoa(msgs))
	return append(append(args, extra...), subject)
}

func serveArgs(url, subject string, clients int) []string {
	return append(append([]string{"bench", "service", "serve"}, common(url)...),
		"--clients", strconv.Itoa(clients), subject)
}

func requestArgs(url, subject string, clients, msgs int) []string {
	return append(append([]string{"bench", "service", "request"}, common(url)...),
		"--clients", strconv.Itoa(clients), "--msgs", strconv.Itoa(msgs), subject)
}

// runResult is one measured run.
type runResult struct {
	rate     benchRate
	pubRate  float64    // publisher-side msgs/s where the rate is measured elsewhere; 0 if n/a
	notes    []string   // natscli warnings, queue-group distribution
	stan     stanResult // every rate stan-bench printed; zero for nats bench rows
	duration time.Duration
	// CPU time per published message of the server and of the benchmark client (stan-bench
	// rows only; 0 when unknown): what each side spent, whoever was the bottleneck.
	serverCPUPerMsg, clientCPUPerMsg time.Duration
	// Synchronous publish rows: the Publish call's latency, 50th and 99th percentile of the run.
	p50, p99 time.Duration
	rssAdded int64 // replay rows: the server's VmRSS after loading the messages minus before
}

// runner executes plans against a running server.
type runner struct {
	nats    natsCLI
	timeout time.Duration // per run, covering setup, publishing and delivery
	stall   time.Duration // fail a run once deliveries stop moving for this long
}

func (r runner) run(ctx context.Context, s *server, p plan) (runResult, error) {
	start := time.Now()
	deadline := start.Add(r.timeout)
	var res runResult
	var bg *proc
	var group *queueGroup
	var err error
	if p.queue > 0 {
		if group, err = joinQueueGroup(s.addr(), p.subject, queueName, p.queue, p.queueWant, readyTimeout); err != nil {
			return res, err
		}
		defer group.close()
	}
	if p.background != nil {
		if bg, err = r.nats.start(p.background); err != nil {
			return res, err
		}
		defer func() {
			if bg != nil {
				bg.kill()
			}
		}()
	}
	if p.subject != "" {
		if err := s.waitSubscribed(ctx, p.subject, p.wantConns, readyTimeout); err != nil {
			return res, err
		}
	}
	fg, err := r.nats.run(ctx, p.foreground, deadline)
	if err != nil {
		return res, err
	}
	res.notes = fg.warnings()
	fgRate, err := parseBenchOutput(fg.stdout.String())
	if err != nil {
		return res, err
	}
	res.rate = fgRate
	switch {
	case group != nil:
		res.pubRate = fgRate.msgsPerSec
		err = r.finishQueue(ctx, group, deadline, &res)
	case bg != nil && p.endless:
		bg.terminate()
		bg = nil
	case bg != nil:
		res.pubRate = fgRate.msgsPerSec
		err = r.finishSubs(ctx, s, bg, deadline, &res)
		bg = nil
	}
	res.duration = time.Since(start)
	return res, err
}

// finishSubs waits for the subscriber process to receive everything and reads its rate.
func (r runner) finishSubs(ctx context.Context, s *server, bg *proc, deadline time.Time, res *runResult) error {
	err := bg.waitDelivering(ctx, deadline, r.stall, func() (int64, error) {
		v, err := s.varz()
		return v.OutMsgs, err
	})
	if err != nil {
		return err
	}
	res.notes = append(res.notes, bg.warnings()...)
	res.rate, err = parseBenchOutput(bg.stdout.String())
	return err
}

// finishQueue waits for the queue group to receive every message, then checks for a quiet period
// that no member received more: each message must reach exactly one member.
func (r runner) finishQueue(ctx context.Context, g *queueGroup, deadline time.Time, res *runResult) error {
	err := waitProgress(ctx, g.done, deadline, r.stall, func() (int64, error) { return g.total.Load(), nil })
	if err != nil {
		return fmt.Errorf("queue group got %d of %d messages: %w", g.total.Load(), g.want, err)
	}
	select {
	case err := <-g.errs:
		return err
	case <-time.After(quietPeriod):
	}
	g.close()
	var sum int64
	for _, c := range g.counts {
		sum += c
	}
	if sum != g.want {
		return fmt.Errorf("queue group received %d messages for %d published: a message reached more than one member", sum, g.want)
	}
	secs := g.span().Seconds()
	res.rate = benchRate{msgsPerSec: float64(sum) / secs, bytesPerSec: float64(sum*payloadSize) / secs}
	res.notes = append(res.notes, fmt.Sprintf("split across members: %v", g.counts))
	return nil
}
