package core

import (
	"crypto/tls"
	"encoding/json"
	"runtime"
)

// serverInfo is the INFO object (spec §4); omitted fields follow the reference.
type serverInfo struct {
	ServerID      string   `json:"server_id"`
	ServerName    string   `json:"server_name"`
	Version       string   `json:"version"`
	Proto         int      `json:"proto"`
	Go            string   `json:"go"`
	Host          string   `json:"host"`
	Port          int      `json:"port"`
	Headers       bool     `json:"headers"`
	AuthRequired  bool     `json:"auth_required,omitempty"`
	TLSRequired   bool     `json:"tls_required,omitempty"`
	TLSVerify     bool     `json:"tls_verify,omitempty"`
	TLSAvailable  bool     `json:"tls_available,omitempty"`
	MaxPayload    int      `json:"max_payload"`
	ClientID      uint64   `json:"client_id,omitempty"`
	ClientIP      string   `json:"client_ip,omitempty"`
	Nonce         string   `json:"nonce,omitempty"`
	Cluster       string   `json:"cluster,omitempty"`
	ConnectURLs   []string `json:"connect_urls,omitempty"`
	LameDuckMode  bool     `json:"ldm,omitempty"`
	ConnectInfo   bool     `json:"connect_info,omitempty"`
	RemoteAccount string   `json:"remote_account,omitempty"`
	AccIsSys      bool     `json:"acc_is_sys,omitempty"`
}

// infoKind says which INFO infoJSON renders.
type infoKind uint8

const (
	infoPlain        infoKind = iota
	infoAfterConnect          // the INFO that follows the first PONG (connect_info)
	infoLDM                   // an LDM request's: ldm set for this client alone
)

// infoJSON renders the INFO of kind for one client.
func (s *Server) infoJSON(c *client, kind infoKind) []byte {
	s.mu.Lock()
	info := serverInfo{
		ServerID:     s.id,
		ServerName:   s.name,
		Version:      NATSVersion,
		Proto:        1,
		Go:           runtime.Version(),
		Host:         s.o().Host,
		Port:         s.port,
		Headers:      !s.o().NoHeaderSupport,
		MaxPayload:   s.o().MaxPayload,
		ClientID:     c.cid,
		ClientIP:     c.ip,
		LameDuckMode: s.ldm && !c.ldmTold || kind == infoLDM, // once: a client reacts to each INFO that has it
		Nonce:        string(c.nonce),
		ConnectURLs:  s.connectURLs(),
	}
	if s.ldm {
		c.ldmTold = true // guarded by s.mu, like the rest of this INFO's inputs
	}
	if o := s.o(); o.Auth != nil {
		info.AuthRequired = o.Auth.Required()
	}
	if o := s.o(); o.TLS != nil {
		info.TLSRequired = !o.AllowNonTLS || c.tlsFirst.Load()
		info.TLSAvailable = !info.TLSRequired
		info.TLSVerify = o.TLS.ClientAuth >= tls.VerifyClientCertIfGiven
	}
	s.mu.Unlock()
	if kind == infoAfterConnect {
		info.ConnectInfo = true
		info.RemoteAccount = c.acc.name // the read goroutine, which alone sets it
		info.AccIsSys = c.acc == s.sysAcc
	}
	b, _ := json.Marshal(info)
	return b
}
