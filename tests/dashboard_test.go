package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/nats-io/stan.go"
	dto "github.com/prometheus/client_model/go"
)

// Every metric the Grafana dashboard queries (docs/grafana-dashboard.json), and every label
// its selectors match on, is in a real scrape of a server with streaming, a channel and a
// subscriber, routed to a second server — so a renamed metric breaks this test, not
// somebody's dashboard.
func TestGrafanaDashboardMetricsExist(t *testing.T) {
	raw, err := os.ReadFile("../docs/grafana-dashboard.json")
	must(t, err)
	var dash any
	must(t, json.Unmarshal(raw, &dash))
	var exprs []string
	walkJSON(dash, func(key string, v string) {
		if key == "expr" || key == "definition" {
			exprs = append(exprs, v)
		}
	})
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found in the dashboard", len(exprs))
	}

	// A route to a second server (pinging often, so that the route has a round-trip time).
	fast := []string{"--cluster", "nats://127.0.0.1:-1", "--ping_interval", "50ms"}
	m := startMetricsServer(t, fast...)
	startServer(t, append(fast, "--routes", "nats://"+m.Server().ClusterAddr().String())...)
	sc, err := stan.Connect(metricsCluster, "dash-client", stan.NatsURL(clientURL(m)))
	must(t, err)
	defer sc.Close()
	must(t, sc.Publish("dash", []byte("x")))
	_, err = sc.Subscribe("dash", func(*stan.Msg) {}, stan.DeliverAllAvailable())
	must(t, err)
	var mfs map[string]*dto.MetricFamily
	waitFor(t, 5*time.Second, func() error {
		mfs = scrapeMetrics(t, m)
		if _, ok := metricValue(mfs, "starling_streaming_subscription_lag_messages", "channel", "dash"); !ok {
			return fmt.Errorf("no subscription series yet")
		}
		if _, ok := metricValue(mfs, "starling_route_rtt_seconds"); !ok {
			return fmt.Errorf("no route round trip yet")
		}
		return nil
	})

	used := map[string]bool{}
	for _, e := range exprs {
		for _, sel := range promSelectors(e) {
			used[sel.metric] = true
			mf := mfs[sel.metric]
			for _, suffix := range []string{"_bucket", "_count", "_sum"} { // a histogram's series
				if base, ok := strings.CutSuffix(sel.metric, suffix); ok && mf == nil {
					if f := mfs[base]; f != nil && f.GetType() == dto.MetricType_HISTOGRAM {
						mf = f
					}
				}
			}
			if mf == nil {
				t.Errorf("dashboard uses %s (in %q): not in /metrics", sel.metric, e)
				continue
			}
			for _, l := range sel.labels {
				if l == "instance" || l == "job" { // added by Prometheus from the target
					continue
				}
				if !slices.ContainsFunc(mf.GetMetric(), func(s *dto.Metric) bool {
					return slices.ContainsFunc(s.GetLabel(), func(lp *dto.LabelPair) bool { return lp.GetName() == l })
				}) {
					t.Errorf("dashboard matches %s on label %q (in %q): %s has no such label", sel.metric, l, e, sel.metric)
				}
			}
		}
	}
	if len(used) < 20 {
		t.Errorf("only %d metrics found in the dashboard's expressions: %v", len(used), used)
	}
}

// walkJSON calls f for every string value in v with the key it is under.
func walkJSON(v any, f func(key, s string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok {
				f(k, s)
			} else {
				walkJSON(x, f)
			}
		}
	case []any:
		for _, x := range v {
			walkJSON(x, f)
		}
	}
}

// selector is a metric named in a PromQL expression, with the labels its matchers name.
type selector struct {
	metric string
	labels []string
}

// promSelectors finds the metrics of a PromQL expression (or a Grafana label_values query):
// identifiers that are not functions (followed by "("), keywords, label names in {...} or
// after by/without, Grafana variables, or durations.
func promSelectors(expr string) []selector {
	// Grafana's label_values(metric{matchers}, label): the label must be on the metric too.
	if m := regexp.MustCompile(`^\s*label_values\((.*),\s*(\w+)\s*\)\s*$`).FindStringSubmatch(expr); m != nil {
		sels := promSelectors(m[1])
		if len(sels) == 1 {
			sels[0].labels = append(sels[0].labels, m[2])
		}
		return sels
	}
	// PromQL words that are neither metrics nor functions.
	keywords := []string{"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
		"and", "or", "unless"}
	// Aggregations, which may take "by (...)" before their parenthesis.
	aggregations := []string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
		"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
	var out []selector
	isIdent := func(r rune) bool { return r == '_' || r == ':' || unicode.IsLetter(r) || unicode.IsDigit(r) }
	rs := []rune(expr)
	skipSpace := func(i int) int {
		for i < len(rs) && unicode.IsSpace(rs[i]) {
			i++
		}
		return i
	}
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == '"' || r == '\'': // a string literal
			j := i + 1
			for j < len(rs) && rs[j] != r {
				if rs[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case r == '[': // a range: [5m], [$__rate_interval]
			for i < len(rs) && rs[i] != ']' {
				i++
			}
		case r == '$': // a Grafana variable
			i++
			for i < len(rs) && (isIdent(rs[i]) || rs[i] == '{' || rs[i] == '}') {
				i++
			}
		case unicode.IsDigit(r):
			for i < len(rs) && isIdent(rs[i]) {
				i++
			}
		case isIdent(r):
			j := i
			for j < len(rs) && isIdent(rs[j]) {
				j++
			}
			word := string(rs[i:j])
			k := skipSpace(j)
			switch {
			case k < len(rs) && rs[k] == '(' && !slices.Contains(keywords, word) || slices.Contains(aggregations, word):
				i = j // a function
			case word == "by" || word == "without" || word == "on" || word == "ignoring":
				for k < len(rs) && rs[k] != ')' { // the label list
					k++
				}
				i = k
			case slices.Contains(keywords, word):
				i = j
			default:
				sel := selector{metric: word}
				if k < len(rs) && rs[k] == '{' {
					end := k
					for end < len(rs) && rs[end] != '}' {
						end++
					}
					for _, m := range strings.Split(string(rs[k+1:end]), ",") {
						name, _, ok := strings.Cut(m, "=")
						if ok {
							sel.labels = append(sel.labels, strings.TrimRight(strings.TrimSpace(name), "!~"))
						}
					}
					j = end
				}
				out = append(out, sel)
				i = j
			}
		default:
			i++
		}
	}
	return out
}

// The dashboard parser finds metrics and matcher labels, and skips functions, keywords,
// label lists, strings, ranges and Grafana variables.
func TestPromSelectors(t *testing.T) {
	got := promSelectors(`sum by (instance) (rate(starling_sent_bytes_total{instance=~"$instance", kind!="x"}[$__rate_interval])) / on(instance) starling_connections` +
		` + time() - max(process_start_time_seconds) > 5e3 and deriv(a:b_c[5m] offset 1h)`)
	want := []selector{{"starling_sent_bytes_total", []string{"instance", "kind"}}, {"starling_connections", nil},
		{"process_start_time_seconds", nil}, {"a:b_c", nil}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	got = promSelectors(`label_values(starling_streaming_channel_messages{instance=~"$instance"}, channel)`)
	want = []selector{{"starling_streaming_channel_messages", []string{"instance", "channel"}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("label_values: got %v, want %v", got, want)
	}
}
