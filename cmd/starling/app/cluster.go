package app

import (
	"crypto/tls"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/conf"
)

// clusterFlags are nats-server's cluster flags; given, they win over the cluster block.
type clusterFlags struct {
	listen, routes, name, advertise string
	noAdvertise                     *bool
}

// clusterUnused returns the keys of the cluster block that nats-server has and Starling
// accepts without using, with where they are and why they do nothing: logged at start.
func (r *fileReader) clusterUnused(e *conf.Entry, path string) []ignoredKey {
	m, ok := e.Value.Map, e.Value.Kind == conf.KindMap
	if !ok {
		return nil // reserved reported it
	}
	var out []ignoredKey
	each(m, path, func(key, kpath string, e *conf.Entry) {
		var why string
		switch key {
		case "pool_size":
			why = "is not used: servers keep one route connection per pair"
		case "connect_retries":
			why = "is not used: a configured route is retried with backoff until shutdown, a gossiped one 3 times"
		case "ping_interval":
			why = "is not used: routes are pinged at the server's ping_interval, at most every 30s"
		case "ping_max":
			why = "is not used: routes use the server's ping_max"
		default:
			return
		}
		out = append(out, ignoredKey{at: fileOrigin(e.KeyPos, kpath), why: why})
	})
	return out
}

// buildCluster turns the cluster block and flags into core options; nil when neither
// --cluster nor a cluster block is given.
func (s *settings) buildCluster(p *problems) *core.ClusterOptions {
	m, fl := s.cluster, s.clusterFlags
	if m == nil && fl.listen == "" {
		return nil
	}
	co := s.clusterBlockOptions(p)
	// Flags last: they win.
	if !fl.override(co, p) {
		return nil
	}
	s.addRoutes(co, p)
	return co
}

// clusterKeyOrigin is where the cluster block's key is written, else the block.
func (s *settings) clusterKeyOrigin(key string) origin {
	pos := s.clusterAt.pos
	if o, ok := s.clusterKeyAt[key]; ok {
		pos = o.pos
	}
	if pos.Line == 0 {
		return origin{name: "cluster." + key}
	}
	return origin{pos: pos, name: "cluster." + key}
}

// clusterBlockOptions maps the cluster block (all but its routes) onto core options.
func (s *settings) clusterBlockOptions(p *problems) *core.ClusterOptions {
	m := s.cluster
	co := &core.ClusterOptions{}
	str := func(key string) string { v, _ := m[key].(string); return v }
	co.Name = str("name")
	co.Advertise = str("advertise")
	co.NoAdvertise, _ = m["no_advertise"].(bool)
	if v, ok := m["listen"].(string); ok {
		host, port, _ := net.SplitHostPort(v)
		co.Host = host
		co.Port, _ = strconv.Atoi(port)
	}
	if v := str("host"); v != "" {
		co.Host = v
	}
	if v, ok := m["port"].(int); ok {
		co.Port = v
	}
	if a, ok := m["authorization"].(map[string]any); ok {
		co.Username, _ = a["user"].(string)
		co.Password, _ = a["password"].(string)
		co.AuthTimeout, _ = a["timeout"].(time.Duration)
		if _, tok := a["token"]; tok {
			p.add(s.clusterKeyOrigin("authorization.token").errorf("routes authenticate with user and password (or TLS), not a token"))
		}
	}
	if t, ok := m["tls"].(tlsSettings); ok {
		co.TLS, co.TLSClient = buildRouteTLS(&t, p)
	}
	return co
}

// override sets the cluster flags given over co; false when --cluster is not a listen URL.
func (fl *clusterFlags) override(co *core.ClusterOptions, p *problems) bool {
	if fl.listen != "" {
		host, port, user, pass, ok := parseListenURL(fl.listen)
		if !ok {
			p.add(flagOrigin("cluster").errorf("want nats://HOST:PORT (PORT -1: any free port), got %q", fl.listen))
			return false
		}
		co.Host, co.Port = host, port
		if user != "" {
			co.Username, co.Password = user, pass
		}
	}
	if fl.name != "" {
		if strings.Contains(fl.name, " ") {
			p.add(flagOrigin("cluster_name").errorf("%q cannot contain spaces", fl.name))
		}
		co.Name = fl.name
	}
	if fl.advertise != "" {
		co.Advertise = fl.advertise
	}
	if fl.noAdvertise != nil {
		co.NoAdvertise = *fl.noAdvertise
	}
	return true
}

// addRoutes parses the routes to dial into co: --routes, else the block's routes.
func (s *settings) addRoutes(co *core.ClusterOptions, p *problems) {
	routes, _ := s.cluster["routes"].([]string)
	routesAt := s.clusterKeyOrigin("routes")
	if s.clusterFlags.routes != "" {
		routes, routesAt = strings.Split(s.clusterFlags.routes, ","), flagOrigin("routes")
	}
	for _, r := range routes {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		u, err := url.Parse(r)
		if err != nil || u.Host == "" || u.Port() == "" {
			p.add(routesAt.errorf("route %q: want nats://[user:pass@]HOST:PORT", r))
			continue
		}
		co.Routes = append(co.Routes, u)
	}
}

// buildRouteTLS makes the route TLS configurations from the cluster's tls block: the same
// certificate on both ends, each verifying the other against the block's CA.
func buildRouteTLS(t *tlsSettings, p *problems) (srv, cli *tls.Config) {
	t.on = true
	srv = t.build(p)
	if srv == nil {
		return nil, nil
	}
	if srv.ClientCAs != nil {
		srv.ClientAuth = tls.RequireAndVerifyClientCert
	}
	cli = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: srv.Certificates, RootCAs: srv.ClientCAs,
		CipherSuites: srv.CipherSuites, CurvePreferences: srv.CurvePreferences}
	return srv, cli
}

// parseListenURL reads [nats://|nats-route://][user:pass@]host:port; the port may be -1.
func parseListenURL(v string) (host string, port int, user, pass string, ok bool) {
	if i := strings.Index(v, "://"); i >= 0 {
		v = v[i+3:]
	}
	v = strings.TrimSuffix(v, "/")
	if i := strings.LastIndex(v, "@"); i >= 0 {
		user, pass, _ = strings.Cut(v[:i], ":")
		v = v[i+1:]
	}
	h, p, err := net.SplitHostPort(v)
	if err != nil {
		return "", 0, "", "", false
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, "", "", false
	}
	return h, port, user, pass, true
}
