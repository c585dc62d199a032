package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cell is one scenario measured on one server over all rounds.
type cell struct {
	runs []runResult
	err  error // the first failure; later rounds of this cell are skipped
}

// row is one scenario on both servers, indexed like report.servers.
type row struct {
	sc    scenario
	msgs  int
	cells [2]cell
}

// memCell is one server's idle-connection footprint.
type memCell struct {
	res memResult
	err error
}

// report is everything printed at the end, as Markdown on stdout.
type report struct {
	argv        []string
	started     time.Time
	loadStart   string
	servers     [2]serverSpec
	versions    [2]string // from /varz, filled on first start
	natsPath    string
	natsVersion string
	rounds      int
	quick       bool
	rows        []row
	mem         *[2]memCell        // nil with -skip-mem
	stan        *stanReport        // nil with -skip-streaming
	durable     *durableReport     // nil with -skip-durable
	sync        *syncReport        // nil with -skip-sync
	ab          bool               // -baseline: another Starling build in nats-streaming-server's place
	cluster     *clusterReport     // nil with -skip-cluster
	stanCluster *stanClusterReport // nil with -skip-stan-cluster
}

func (r *report) write(w io.Writer) {
	if r.stan != nil || r.durable != nil || r.sync != nil {
		fmt.Fprintf(w, "# nats bench: Starling vs nats-server; stan-bench: Starling vs nats-streaming-server\n\n")
	} else {
		fmt.Fprintf(w, "# nats bench: Starling vs nats-server\n\n")
	}
	r.writeMachine(w)
	if len(r.rows) > 0 { // none with -skip-core
		r.writeThroughput(w)
		r.writeDetails(w)
	}
	if r.stan != nil {
		r.stan.write(w)
	}
	if r.durable != nil {
		r.durable.write(w)
	}
	if r.sync != nil {
		r.sync.write(w)
	}
	if r.stan != nil || r.durable != nil || r.sync != nil {
		writeIssue13(w, issue13Goals(r.stan, r.durable, r.sync), r.ab)
	}
	if r.cluster != nil {
		r.cluster.write(w)
	}
	if r.stanCluster != nil {
		r.stanCluster.write(w)
	}
	if r.mem != nil {
		r.writeMemory(w)
	}
	r.writeCommands(w)
	r.writeErrors(w)
}

func (r *report) writeMachine(w io.Writer) {
	fmt.Fprintf(w, "- date: %s (run took %s)\n", r.started.UTC().Format(time.RFC3339), time.Since(r.started).Round(time.Second))
	fmt.Fprintf(w, "- machine: %d cores, %s, Linux %s\n", runtime.NumCPU(), cpuModel(), readTrim("/proc/sys/kernel/osrelease"))
	// Everything shares the same cores, so other load on the machine moves every number.
	fmt.Fprintf(w, "- load average (1/5/15 min): %s at start, %s at end\n", r.loadStart, loadAvg())
	fmt.Fprintf(w, "- Go: %s %s/%s (compare tool)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for i, s := range r.servers {
		fmt.Fprintf(w, "- %s: `%s` (%s)\n", s.name, s.path, orUnknown(r.versions[i]))
	}
	fmt.Fprintf(w, "- nats CLI: %s\n", orUnknown(r.natsVersion))
	mode := "full"
	if r.quick {
		mode = "quick"
	}
	fmt.Fprintf(w, "- %d rounds per scenario (%s runs), servers alternated A B / B A, each run on a fresh server; median reported\n\n", r.rounds, mode)
}

func (r *report) writeThroughput(w io.Writer) {
	fmt.Fprintf(w, "## Throughput (median msgs/s)\n\n")
	fmt.Fprintf(w, "| scenario | %s msgs/s | %s msgs/s | ratio (%s/%s) |\n|---|---:|---:|---:|\n",
		r.servers[0].name, r.servers[1].name, r.servers[1].name, r.servers[0].name)
	for _, row := range r.rows {
		a, b := row.cells[0].median(), row.cells[1].median()
		if row.cells[0].err != nil || row.cells[1].err != nil {
			a, b = 0, 0 // a median over fewer rounds would not be comparable; see Failures
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", row.sc.name, row.cells[0].cellRate(), row.cells[1].cellRate(), fmtRatio(b, a))
	}
	fmt.Fprintln(w)
	r.writeSelfRatios(w)
}

// writeSelfRatios prints the lines asked for by scenarios' selfRatio: Starling (servers[1]) on
// one row against Starling on another row of the same run.
func (r *report) writeSelfRatios(w io.Writer) {
	found := false
	for _, row := range r.rows {
		sr := row.sc.self
		if sr == nil {
			continue
		}
		var base float64 // 0, printed as "–", when the baseline row is missing or failed
		for _, b := range r.rows {
			if b.sc.name == sr.baseline {
				base = b.cells[1].okMedian()
			}
		}
		fmt.Fprintf(w, "%s (%s): %s (target ≥ %.2f)\n", sr.label, sr.baseline, fmtRatio(row.cells[1].okMedian(), base), sr.target)
		found = true
	}
	if found {
		fmt.Fprintln(w)
	}
}

func (r *report) writeDetails(w io.Writer) {
	fmt.Fprintf(w, "## Details\n\n")
	fmt.Fprintf(w, "| scenario | server | rate measured at | msgs/run | msgs/s per round | median bytes/s | median publisher msgs/s | median server CPU µs/msg |\n")
	fmt.Fprintf(w, "|---|---|---|---:|---|---:|---:|---:|\n")
	for _, row := range r.rows {
		side := row.sc.plan("", row.msgs).side
		for i, c := range row.cells {
			rounds := make([]string, len(c.runs))
			for j, run := range c.runs {
				rounds[j] = fmtRate(run.rate.msgsPerSec)
			}
			if c.err != nil {
				rounds = append(rounds, "failed") // later rounds were skipped
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", row.sc.name, r.servers[i].name, side,
				fmtInt(int64(row.msgs)), strings.Join(rounds, ", "), fmtBytes(c.medianOf(bytesOf)), fmtRate(c.medianOf(pubOf)),
				fmtServerUs(usOf(c, func(res runResult) time.Duration { return res.serverCPUPerMsg })))
		}
	}
	fmt.Fprintln(w)
	for _, row := range r.rows {
		for i, c := range row.cells {
			for j, run := range c.runs {
				for _, n := range run.notes {
					fmt.Fprintf(w, "- %s, %s, round %d: %s\n", row.sc.name, r.servers[i].name, j+1, n)
				}
			}
		}
	}
	fmt.Fprintln(w)
}

// fmtServerUs prints a median server CPU per message; "–" when it was not measured.
func fmtServerUs(us float64) string {
	if us <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", us)
}

func (r *report) writeMemory(w io.Writer) {
	fmt.Fprintf(w, "## Memory: %s idle connections × %d subscriptions\n\n", fmtInt(idleConns), idleSubsPerConn)
	fmt.Fprintf(w, "| server | connections | subscriptions | VmRSS | /varz mem | RSS per connection | open time |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|\n")
	for i, m := range r.mem {
		if m.err != nil {
			fmt.Fprintf(w, "| %s | error | | | | | |\n", r.servers[i].name)
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.servers[i].name, fmtInt(int64(m.res.conns)),
			fmtInt(int64(m.res.subs)), fmtBytes(float64(m.res.rss)), fmtBytes(float64(m.res.varzMem)),
			fmtBytes(float64(m.res.rss)/float64(max(m.res.conns, 1))), m.res.openTime.Round(time.Millisecond))
	}
	a, b := r.mem[0], r.mem[1]
	if a.err == nil && b.err == nil {
		fmt.Fprintf(w, "\nRSS ratio (%s/%s): %s\n", r.servers[1].name, r.servers[0].name,
			fmtRatio(float64(b.res.rss), float64(a.res.rss)))
	}
	fmt.Fprintln(w)
}

// writeCommands prints the exact invocations; only the ports differ per run, as each run gets
// fresh ones.
func (r *report) writeCommands(w io.Writer) {
	// argv[0] is a temporary binary under `go run`, so name the package instead.
	fmt.Fprintf(w, "## Commands\n\n```\ngo run ./cmd/compare %s\n", strings.Join(r.argv[1:], " "))
	for _, s := range r.servers {
		if len(r.rows) == 0 && r.mem == nil {
			break // -skip-core -skip-mem: only the streaming servers ran
		}
		fmt.Fprintf(w, "%s %s\n", s.path, strings.Join(serverArgs("$PORT", "$HTTP_PORT"), " "))
	}
	for _, row := range r.rows {
		p := row.sc.plan("nats://127.0.0.1:$PORT", row.msgs)
		fmt.Fprintf(w, "# %s\n", row.sc.name)
		if c := row.sc.config; c != nil {
			fmt.Fprintf(w, "# (both servers also get: -c $TMPDIR/%s, shown below)\n", c.file)
		}
		if p.queue > 0 {
			fmt.Fprintf(w, "(in-process) %d raw TCP connections: %sSUB %s %s 1\\r\\nPING\\r\\n\n",
				p.queue, strings.TrimSuffix(connectLine, "\r\n")+`\r\n`, p.subject, queueName)
		}
		if p.background != nil {
			fmt.Fprintf(w, "%s %s &\n", r.natsPath, strings.Join(p.background, " "))
		}
		fmt.Fprintf(w, "%s %s\n", r.natsPath, strings.Join(p.foreground, " "))
	}
	if r.mem != nil {
		fmt.Fprintf(w, "# memory\n(in-process) %d raw TCP connections, each: %sSUB idle.<conn>.<i> <i>\\r\\n (i=1..%d) PING\\r\\n\n",
			idleConns, strings.TrimSuffix(connectLine, "\r\n")+`\r\n`, idleSubsPerConn)
	}
	if r.stan != nil {
		r.stan.writeCommands(w)
	}
	if r.durable != nil {
		r.durable.writeCommands(w)
	}
	if r.sync != nil {
		r.sync.writeCommands(w)
	}
	if r.cluster != nil {
		r.cluster.writeCommands(w)
	}
	if r.stanCluster != nil {
		r.stanCluster.writeCommands(w)
	}
	fmt.Fprintf(w, "```\n\n")
	for _, row := range r.rows {
		if c := row.sc.config; c != nil {
			fmt.Fprintf(w, "%s:\n\n```\n%s```\n\n", c.file, c.text)
		}
	}
}

func (r *report) writeErrors(w io.Writer) {
	var errs []string
	for _, row := range r.rows {
		for i, c := range row.cells {
			if c.err != nil {
				errs = append(errs, fmt.Sprintf("- %s on %s: %v", row.sc.name, r.servers[i].name, c.err))
			}
		}
	}
	if r.mem != nil {
		for i, m := range r.mem {
			if m.err != nil {
				errs = append(errs, fmt.Sprintf("- memory on %s: %v", r.servers[i].name, m.err))
			}
		}
	}
	if r.stan != nil {
		errs = append(errs, r.stan.errors()...)
	}
	if r.durable != nil {
		errs = append(errs, r.durable.errors()...)
	}
	if r.sync != nil {
		errs = append(errs, r.sync.errors()...)
	}
	if r.cluster != nil {
		errs = append(errs, r.cluster.errors()...)
	}
	if r.stanCluster != nil {
		errs = append(errs, r.stanCluster.errors()...)
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "## Failures\n\n%s\n\n", strings.Join(errs, "\n"))
	}
}

// failed reports whether any measurement failed (which makes the tool exit non-zero).
func (r *report) failed() bool {
	for _, row := range r.rows {
		for _, c := range row.cells {
			if c.err != nil {
				return true
			}
		}
	}
	if r.stan != nil && len(r.stan.errors()) > 0 {
		return true
	}
	if r.durable != nil && len(r.durable.errors()) > 0 {
		return true
	}
	if r.sync != nil && len(r.sync.errors()) > 0 {
		return true
	}
	if r.cluster != nil && len(r.cluster.errors()) > 0 {
		return true
	}
	if r.stanCluster != nil && len(r.stanCluster.errors()) > 0 {
		return true
	}
	return r.mem != nil && (r.mem[0].err != nil || r.mem[1].err != nil)
}

func rateOf(r runResult) float64  { return r.rate.msgsPerSec }
func bytesOf(r runResult) float64 { return r.rate.bytesPerSec }
func pubOf(r runResult) float64   { return r.pubRate }

func (c cell) median() float64 { return c.medianOf(rateOf) }

// okMedian is the median, or 0 when a round failed (a median over fewer rounds is not comparable).
func (c cell) okMedian() float64 {
	if c.err != nil {
		return 0
	}
	return c.median()
}

// cellRate is the median for the summary table, or "failed".
func (c cell) cellRate() string {
	if c.err != nil {
		return "failed"
	}
	return fmtRate(c.median())
}

// medianOf is the median of f over the runs; 0 with no runs.
func (c cell) medianOf(f func(runResult) float64) float64 {
	xs := make([]float64, len(c.runs))
	for i, r := range c.runs {
		xs[i] = f(r)
	}
	return median(xs)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func fmtRate(v float64) string {
	if v <= 0 {
		return "–"
	}
	return fmtInt(int64(v + 0.5))
}

func fmtRatio(num, den float64) string {
	if num <= 0 || den <= 0 {
		return "–"
	}
	return strconv.FormatFloat(num/den, 'f', 2, 64)
}

// fmtInt writes n with thousands separators, as nats bench does.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtBytes(v float64) string {
	if v <= 0 {
		return "–"
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	return strings.Join(f[:min(3, len(f))], " ")
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return orUnknown(strings.TrimSpace(string(b)))
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
