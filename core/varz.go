package core

import (
	"crypto/tls"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Varz is /varz (monitoring spec §2): field names and JSON types as nats-server's, because
// nats-top and prometheus-nats-exporter decode them into its structs.
type Varz struct {
	ServerID           string             `json:"server_id"`
	ServerName         string             `json:"server_name"`
	Version            string             `json:"version"`
	Proto              int                `json:"proto"`
	GoVersion          string             `json:"go"`
	Host               string             `json:"host"`
	Port               int                `json:"port"`
	AuthRequired       bool               `json:"auth_required,omitempty"`
	TLSRequired        bool               `json:"tls_required,omitempty"`
	TLSVerify          bool               `json:"tls_verify,omitempty"`
	ConnectURLs        []string           `json:"connect_urls,omitempty"`
	MaxConn            int                `json:"max_connections"`
	MaxSubs            int                `json:"max_subscriptions,omitempty"`
	PingInterval       time.Duration      `json:"ping_interval"`
	MaxPingsOut        int                `json:"ping_max"`
	HTTPHost           string             `json:"http_host"`
	HTTPPort           int                `json:"http_port"`
	HTTPBasePath       string             `json:"http_base_path"`
	HTTPSPort          int                `json:"https_port"`
	AuthTimeout        float64            `json:"auth_timeout"`
	MaxControlLine     int                `json:"max_control_line"`
	MaxPayload         int                `json:"max_payload"`
	MaxPending         int64              `json:"max_pending"`
	Cluster            ClusterOptsVarz    `json:"cluster"`
	Gateway            struct{}           `json:"gateway"`
	LeafNode           struct{}           `json:"leaf"`
	MQTT               struct{}           `json:"mqtt"`
	Websocket          struct{}           `json:"websocket"`
	JetStream          struct{}           `json:"jetstream"`
	TLSTimeout         float64            `json:"tls_timeout"`
	WriteDeadline      time.Duration      `json:"write_deadline"`
	Start              time.Time          `json:"start"`
	Now                time.Time          `json:"now"`
	Uptime             string             `json:"uptime"`
	Mem                int64              `json:"mem"`
	Cores              int                `json:"cores"`
	MaxProcs           int                `json:"gomaxprocs"`
	CPU                float64            `json:"cpu"`
	Connections        int                `json:"connections"`
	TotalConnections   uint64             `json:"total_connections"`
	Routes             int                `json:"routes"`
	Remotes            int                `json:"remotes"`
	Leafs              int                `json:"leafnodes"`
	InMsgs             int64              `json:"in_msgs"`
	OutMsgs            int64              `json:"out_msgs"`
	InBytes            int64              `json:"in_bytes"`
	OutBytes           int64              `json:"out_bytes"`
	InClientMsgs       int64              `json:"in_client_msgs"`
	OutClientMsgs      int64              `json:"out_client_msgs"`
	InClientBytes      int64              `json:"in_client_bytes"`
	OutClientBytes     int64              `json:"out_client_bytes"`
	SlowConsumers      int64              `json:"slow_consumers"`
	StaleConnections   int64              `json:"stale_connections"`
	StalledClients     int64              `json:"stalled_clients"`
	Subscriptions      uint32             `json:"subscriptions"`
	HTTPReqStats       map[string]uint64  `json:"http_req_stats"`
	ConfigLoadTime     time.Time          `json:"config_load_time"`
	SystemAccount      string             `json:"system_account,omitempty"`
	SlowConsumersStats SlowConsumersStats `json:"slow_consumer_stats"`
}

// ClusterOptsVarz is the cluster section of /varz (empty until clustering exists).
type ClusterOptsVarz struct {
	Name        string   `json:"name,omitempty"`
	Host        string   `json:"addr,omitempty"`
	Port        int      `json:"cluster_port,omitempty"`
	AuthTimeout float64  `json:"auth_timeout,omitempty"`
	URLs        []string `json:"urls,omitempty"`
	TLSTimeout  float64  `json:"tls_timeout,omitempty"`
	TLSRequired bool     `json:"tls_required,omitempty"`
	TLSVerify   bool     `json:"tls_verify,omitempty"`
	PoolSize    int      `json:"pool_size,omitempty"`
}

// SlowConsumersStats splits slow consumers by connection kind.
type SlowConsumersStats struct {
	Clients  uint64 `json:"clients"`
	Routes   uint64 `json:"routes"`
	Gateways uint64 `json:"gateways"`
	Leafs    uint64 `json:"leafs"`
}

// Varz returns the server's configuration and statistics.
func (s *Server) Varz() *Varz {
	now := time.Now()
	o := s.o()
	v := &Varz{
		ServerID: s.id, ServerName: s.name, Version: NATSVersion, Proto: 1,
		GoVersion: runtime.Version(), Host: o.Host, Port: s.port,
		MaxConn: o.MaxConnections, MaxSubs: o.MaxSubscriptions,
		PingInterval: o.PingInterval, MaxPingsOut: o.PingMax,
		HTTPHost: o.HTTPHost, HTTPPort: o.HTTPPort, HTTPSPort: o.HTTPSPort, HTTPBasePath: o.HTTPBasePath,
		AuthTimeout: o.AuthTimeout.Seconds(), MaxControlLine: o.MaxControlLine,
		MaxPayload: o.MaxPayload, MaxPending: o.MaxPending,
		TLSTimeout: 2, WriteDeadline: o.WriteDeadline,
		Start: s.start.UTC(), Now: now.UTC(), Uptime: compactDuration(now.Sub(s.start)),
		Cores: runtime.NumCPU(), MaxProcs: runtime.GOMAXPROCS(0),
		Mem: rss(), CPU: s.cpu.percent(now),
		TotalConnections: s.totalConn.Load(),
		SlowConsumers:    s.slow.Load(), StaleConnections: s.stale.Load(),
		Subscriptions:  uint32(s.NumSubscriptions()),
		HTTPReqStats:   map[string]uint64{},
		ConfigLoadTime: time.Unix(0, s.configAt.Load()).UTC(),
	}
	v.SlowConsumersStats.Clients = uint64(v.SlowConsumers)
	if s.sysAcc != nil {
		v.SystemAccount = s.sysAcc.name
	}
	if o.Auth != nil {
		v.AuthRequired = o.Auth.HasCredentials() // with a no_auth_user too, unlike INFO
	}
	if o.TLS != nil {
		v.TLSRequired = true
		v.TLSVerify = o.TLS.ClientAuth >= tls.VerifyClientCertIfGiven
		v.TLSTimeout = o.TLSTimeout.Seconds()
	}
	s.mu.Lock()
	// As nats-server's: the cluster's client URLs, ours among them, once other servers of
	// the cluster have told theirs; none on a server alone, clustered or not, with
	// client_advertise or not (`nats server info` shows no "Client URLs" there).
	if p := s.clusterURLs.Load(); p != nil && len(*p) > 0 {
		v.ConnectURLs = s.connectURLs()
	}
	v.Connections = len(s.clients) - s.internal // client connections, as nats-server counts them
	in, out := s.gone.inMsgs.Load(), s.gone.outMsgs.Load()
	inb, outb := s.gone.inBytes.Load(), s.gone.outBytes.Load()
	for _, c := range s.clients {
		in += c.stats.inMsgs.Load()
		out += c.stats.outMsgs.Load()
		inb += c.stats.inBytes.Load()
		outb += c.stats.outBytes.Load()
	}
	s.mu.Unlock()
	v.InClientMsgs, v.OutClientMsgs, v.InClientBytes, v.OutClientBytes = in, out, inb, outb
	if co := o.Cluster; co != nil {
		rin, rout, rinb, routb := s.routeTraffic()
		in, out, inb, outb = in+rin, out+rout, inb+rinb, outb+routb
		v.Routes = s.NumRoutes()
		v.Remotes = v.Routes // the servers routed to: one route each (nats-server pools several)
		v.Cluster = ClusterOptsVarz{Name: co.Name, Host: co.Host, AuthTimeout: co.AuthTimeout.Seconds(), TLSTimeout: o.TLSTimeout.Seconds(), PoolSize: 1}
		if a := s.ClusterAddr(); a != nil {
			v.Cluster.Port = a.Port
		}
		if co.TLS != nil {
			v.Cluster.TLSRequired = true
			v.Cluster.TLSVerify = co.TLS.ClientAuth >= tls.VerifyClientCertIfGiven
		}
		for _, u := range co.Routes {
			v.Cluster.URLs = append(v.Cluster.URLs, u.Host)
		}
	}
	v.InMsgs, v.OutMsgs, v.InBytes, v.OutBytes = in, out, inb, outb
	v.SlowConsumersStats.Routes = uint64(s.slowRoutes.Load())
	v.SlowConsumers += s.slowRoutes.Load()
	return v
}

// compactDuration renders d the way nats-server's uptime/idle fields do: "7d13h49m13s".
func compactDuration(d time.Duration) string {
	sec := int64(d / time.Second)
	if sec < 0 {
		sec = 0
	}
	y, sec := sec/(365*86400), sec%(365*86400)
	days, sec := sec/86400, sec%86400
	h, sec := sec/3600, sec%3600
	m, sec := sec/60, sec%60
	var b strings.Builder
	put := func(n int64, unit byte, force bool) {
		if n > 0 || force {
			b.WriteString(strconv.FormatInt(n, 10))
			b.WriteByte(unit)
		}
	}
	put(y, 'y', false)
	put(days, 'd', y > 0)
	put(h, 'h', y > 0 || days > 0)
	put(m, 'm', y > 0 || days > 0 || h > 0)
	put(sec, 's', true)
	return b.String()
}

// rss reads the resident set size from /proc (Linux); elsewhere the Go runtime's view.
func rss() int64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			if pages, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return pages * int64(os.Getpagesize())
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.Sys)
}

// cpuMeter turns process CPU time into a percentage between two /varz calls.
type cpuMeter struct {
	mu      sync.Mutex
	lastAt  time.Time
	lastCPU time.Duration
	last    float64
}

func (m *cpuMeter) percent(now time.Time) float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.lastAt.IsZero() {
		if el := now.Sub(m.lastAt); el > 100*time.Millisecond {
			m.last = float64(int64(float64(used-m.lastCPU)/float64(el)*1000)) / 10
		} else {
			return m.last
		}
	}
	m.lastAt, m.lastCPU = now, used
	return m.last
}
