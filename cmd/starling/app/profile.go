package app

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
)

// startProfiling serves Go's profiles (--profile) on their own listener, apart from the
// monitoring port, as nats-server does: they are for whoever runs the machine, not for
// dashboards.
func (m *Main) startProfiling(c *settings) error {
	if c.profilePort == 0 {
		return nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.monitorHost(), strconv.Itoa(max(c.profilePort, 0))))
	if err != nil {
		return fmt.Errorf("profiling listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.prof = &http.Server{Handler: mux}
	m.log.Info("serving profiles", "addr", ln.Addr().String())
	go func() {
		if err := m.prof.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Warn("profiling listener stopped", "err", err)
		}
	}()
	return nil
}
