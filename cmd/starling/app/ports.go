package app

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// portsInfo is the ports file's content, as nats-server writes it (its Ports type): the
// URLs each listener can be reached at.
type portsInfo struct {
	Nats       []string `json:"nats,omitempty"`
	Monitoring []string `json:"monitoring,omitempty"`
	Cluster    []string `json:"cluster,omitempty"`
}

// portsFile is ports_file_dir/<executable>_<pid>.ports ("" when ports_file_dir is unset).
func portsFile(dir string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("%s_%d.ports", filepath.Base(os.Args[0]), os.Getpid()))
}

// writePortsFile writes the ports file once every listener is bound; a tool started with
// random ports (-p -1) reads it to find them.
func (m *Main) writePortsFile(c *settings) error {
	name := portsFile(c.portsDir)
	if name == "" {
		return nil
	}
	var p portsInfo
	scheme := "nats"
	if c.core.TLS != nil && !c.core.AllowNonTLS {
		scheme = "tls"
	}
	p.Nats = listenerURLs(scheme, m.srv.Addr())
	if m.mon != nil {
		if a, ok := m.mon.Addr().(*net.TCPAddr); ok {
			scheme = "http"
			if c.httpsPort != 0 {
				scheme = "https"
			}
			p.Monitoring = listenerURLs(scheme, a)
		}
	}
	if a := m.srv.ClusterAddr(); a != nil {
		scheme = "nats"
		if c.core.Cluster.TLS != nil {
			scheme = "tls"
		}
		p.Cluster = listenerURLs(scheme, a)
	}
	b, _ := json.Marshal(p)
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return fmt.Errorf("ports file: %w", err)
	}
	return nil
}

// listenerURLs lists scheme://host:port for a listener: its address, or when it listens on
// every interface, each interface address (loopback included), as nats-server does.
func listenerURLs(scheme string, a *net.TCPAddr) []string {
	if a == nil {
		return nil
	}
	port := strconv.Itoa(a.Port)
	var hosts []string
	if a.IP.IsUnspecified() {
		addrs, _ := net.InterfaceAddrs()
		for _, ad := range addrs {
			if ipn, ok := ad.(*net.IPNet); ok {
				hosts = append(hosts, ipn.IP.String())
			}
		}
	}
	if len(hosts) == 0 {
		hosts = []string{a.IP.String()}
	}
	urls := make([]string, len(hosts))
	for i, h := range hosts {
		urls[i] = scheme + "://" + net.JoinHostPort(h, port)
	}
	return urls
}
