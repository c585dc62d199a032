package tests

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// linkProxy is one direction of a link between two nodes (what one dials of the other),
// for network partitions. It forwards the connections it accepts to a target: cut
// drops the connections it carries and holds new ones without forwarding a byte (a
// partition that drops packets: a dial succeeds, nothing gets through), heal lets them
// through again.
type linkProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{} // forwarded, both ends
	held  []net.Conn            // accepted while cut
}

// newLinkProxy listens on a port never handed out before and forwards to target.
func newLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", nodePorts(t)[0]))
	must(t, err)
	p := &linkProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(p.close)
	go p.serve()
	return p
}

func (p *linkProxy) addr() string { return p.ln.Addr().String() }

func (p *linkProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.held = append(p.held, c)
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *linkProxy) forward(c net.Conn) {
	u, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(u, c)
	go pipe(c, u)
	<-done
	c.Close()
	u.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// partition drops the connections and holds new ones.
func (p *linkProxy) partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// heal forwards new connections again (the held ones are closed: their peers redial).
func (p *linkProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for _, c := range p.held {
		c.Close()
	}
	p.held = nil
}

func (p *linkProxy) close() {
	p.ln.Close()
	p.partition()
	p.heal()
}
