package raftlog

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// AddressFunc adapts a function to raft.ServerAddressProvider: it maps a node ID to the
// address its raft transport listens on (learned, later, from the route mesh).
type AddressFunc func(id raft.ServerID) (raft.ServerAddress, error)

// ServerAddr implements raft.ServerAddressProvider.
func (f AddressFunc) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) { return f(id) }

// TCPTransportConfig configures NewTCPTransport.
type TCPTransportConfig struct {
	// Listen is the host:port raft listens on, apart from the client and route ports; port 0
	// picks a free one.
	Listen string
	// Advertise is the address peers dial, when it is not the listener's own (a wildcard
	// Listen such as ":7422" needs one).
	Advertise string
	// Resolve maps a peer's node ID (which the raft configuration holds as its address) to
	// the address it listens on, each time a connection is dialled, so that addresses can be
	// learned late and can change. nil: node IDs are dialled as they are (host:port IDs).
	Resolve raft.ServerAddressProvider
	// MaxPool is the number of idle connections kept per peer (default 3); Timeout the I/O
	// deadline of an RPC (default 10s; raft scales it up for snapshots).
	MaxPool int
	Timeout time.Duration
	// Logger receives the transport's messages from Level up; NoLog drops them.
	Logger *slog.Logger
	Level  slog.Level
	NoLog  bool
}

// NewTCPTransport returns raft's TCP transport on its own listener.
func NewTCPTransport(c TCPTransportConfig) (*raft.NetworkTransport, error) {
	if c.MaxPool == 0 {
		c.MaxPool = 3
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	var adv net.Addr
	if c.Advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", c.Advertise)
		if err != nil {
			return nil, fmt.Errorf("raftlog: raft advertise address %q: %w", c.Advertise, err)
		}
		adv = a
	}
	level := hclogLevel(c.Level)
	if c.NoLog {
		level = hclog.Off
	}
	t, err := raft.NewTCPTransportWithConfig(c.Listen, adv, &raft.NetworkTransportConfig{
		ServerAddressProvider: c.Resolve,
		Logger:                newHCLogger(c.Logger, "raft-net", level),
		MaxPool:               c.MaxPool,
		Timeout:               c.Timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("raftlog: raft transport on %q: %w", c.Listen, err)
	}
	return t, nil
}
