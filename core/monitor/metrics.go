package monitor

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/starling-io/starling/core"
)

// MetricsPath serves the Prometheus text format, relative to the base path.
const MetricsPath = "/metrics"

// Collector exposes core's figures to Prometheus. It keeps no metric of its own: every
// Collect reads the counters the server already keeps for /varz, so publishing costs
// nothing more with it than without it.
type Collector struct {
	srv *core.Server

	info, connections, maxConnections, subscriptions, routes *prometheus.Desc
	connectionsTotal, staleTotal, slowTotal                  *prometheus.Desc
	inMsgs, inBytes, outMsgs, outBytes                       *prometheus.Desc

	// per route (remote_id, remote_name): the route connection's own counters, which start
	// again from 0 when the route reconnects (a reset, as Prometheus expects of a counter)
	rInMsgs, rInBytes, rOutMsgs, rOutBytes, rPending, rSubs, rRTT *prometheus.Desc

	mu   sync.Mutex // serialises Collect: last is read and written
	last [numCounters]float64
}

// counters held monotonic by Collect (see monotonic).
const (
	cInMsgs = iota
	cInBytes
	cOutMsgs
	cOutBytes
	numCounters
)

// NewCollector returns the collector of srv's figures.
func NewCollector(srv *core.Server) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("starling_"+name, help, labels, nil)
	}
	return &Collector{
		srv:            srv,
		info:           d("info", "Always 1; the labels name the server.", "server_id", "server_name", "version"),
		connections:    d("connections", "Open client connections (the streaming layer's in-process one is none)."),
		maxConnections: d("max_connections", "The configured limit of client connections."),
		subscriptions:  d("subscriptions", "Subscriptions in the subject index (clients' and routes')."),
		routes:         d("routes", "Servers this one has a route to."),
		connectionsTotal: d("connections_total",
			"Client connections accepted since the server started."),
		staleTotal: d("stale_connections_total",
			"Connections closed because they did not answer pings."),
		slowTotal: d("slow_consumers_total",
			"Connections closed for exceeding their pending-bytes budget, by kind (client, route).", "kind"),
		inMsgs: d("received_messages_total",
			"Messages received from clients and routes."),
		inBytes: d("received_bytes_total",
			"Payload bytes received from clients and routes."),
		outMsgs: d("sent_messages_total",
			"Messages sent to clients and routes."),
		outBytes: d("sent_bytes_total",
			"Payload bytes sent to clients and routes."),
		rInMsgs:   d("route_received_messages_total", "Messages received over the route.", "remote_id", "remote_name"),
		rInBytes:  d("route_received_bytes_total", "Payload bytes received over the route.", "remote_id", "remote_name"),
		rOutMsgs:  d("route_sent_messages_total", "Messages sent over the route.", "remote_id", "remote_name"),
		rOutBytes: d("route_sent_bytes_total", "Payload bytes sent over the route.", "remote_id", "remote_name"),
		rPending:  d("route_pending_bytes", "Bytes queued for the route, not written yet.", "remote_id", "remote_name"),
		rSubs:     d("route_subscriptions", "Interest the remote server has registered over the route.", "remote_id", "remote_name"),
		rRTT:      d("route_rtt_seconds", "The route's last measured round-trip time.", "remote_id", "remote_name"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.connections, c.maxConnections, c.subscriptions, c.routes,
		c.connectionsTotal, c.staleTotal, c.slowTotal, c.inMsgs, c.inBytes, c.outMsgs, c.outBytes,
		c.rInMsgs, c.rInBytes, c.rOutMsgs, c.rOutBytes, c.rPending, c.rSubs, c.rRTT} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one Varz, the figures /varz shows, and when
// clustered one Routez.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	v := c.srv.Varz()
	gauge := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, labels...)
	}
	counter := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, x, labels...)
	}
	gauge(c.info, 1, v.ServerID, v.ServerName, core.Version)
	gauge(c.connections, float64(v.Connections))
	gauge(c.maxConnections, float64(v.MaxConn))
	gauge(c.subscriptions, float64(v.Subscriptions))
	gauge(c.routes, float64(v.Routes))
	counter(c.connectionsTotal, float64(v.TotalConnections))
	counter(c.staleTotal, float64(v.StaleConnections))
	counter(c.slowTotal, float64(v.SlowConsumersStats.Clients), "client")
	counter(c.slowTotal, float64(v.SlowConsumersStats.Routes), "route")
	in, inb, out, outb := c.monotonic(v)
	counter(c.inMsgs, in)
	counter(c.inBytes, inb)
	counter(c.outMsgs, out)
	counter(c.outBytes, outb)
	if v.Routes == 0 {
		return
	}
	for _, r := range c.srv.Routez(false, false) {
		counter(c.rInMsgs, float64(r.InMsgs), r.RemoteID, r.RemoteName)
		counter(c.rInBytes, float64(r.InBytes), r.RemoteID, r.RemoteName)
		counter(c.rOutMsgs, float64(r.OutMsgs), r.RemoteID, r.RemoteName)
		counter(c.rOutBytes, float64(r.OutBytes), r.RemoteID, r.RemoteName)
		gauge(c.rPending, float64(r.Pending), r.RemoteID, r.RemoteName)
		gauge(c.rSubs, float64(r.NumSubs), r.RemoteID, r.RemoteName)
		if rtt, err := time.ParseDuration(r.RTT); err == nil {
			gauge(c.rRTT, rtt.Seconds(), r.RemoteID, r.RemoteName)
		}
	}
}

// monotonic returns the traffic totals, never below what the previous Collect reported.
// Varz sums the open connections' counters and those of closed ones, and a closing
// connection moves from the first set to the second under the lock Varz reads them with,
// so its totals do not go back; holding the last value guards the counters anyway:
// Prometheus would take a dip for a counter reset and rate() would jump by the whole
// total. The counters never reset while the process lives.
func (c *Collector) monotonic(v *core.Varz) (in, inb, out, outb float64) {
	now := [numCounters]float64{cInMsgs: float64(v.InMsgs), cInBytes: float64(v.InBytes),
		cOutMsgs: float64(v.OutMsgs), cOutBytes: float64(v.OutBytes)}
	c.mu.Lock()
	for i, x := range now {
		c.last[i] = max(c.last[i], x)
	}
	r := c.last
	c.mu.Unlock()
	return r[cInMsgs], r[cInBytes], r[cOutMsgs], r[cOutBytes]
}

// newRegistry holds core's collector and the Go runtime and process collectors (go_*,
// process_*: memory, CPU, goroutines, file descriptors).
func newRegistry(srv *core.Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(srv), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Register adds a collector to /metrics (e.g. the streaming layer's).
func (m *Monitor) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// metricsHandler serves the registry in the text format. Concurrent scrapes share one
// gathering; a collector that fails leaves its metrics out and is logged, the rest is served.
func (m *Monitor) metricsHandler() http.HandlerFunc {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:       errorLog{m},
		ErrorHandling:  promhttp.ContinueOnError,
		CoalesceGather: true,
	})
	return h.ServeHTTP
}

// errorLog adapts the logger to promhttp.Logger.
type errorLog struct{ m *Monitor }

func (l errorLog) Println(v ...any) { l.m.log.Error("metrics: " + fmt.Sprint(v...)) }
