package app

import (
	"fmt"
	"io"
	"strings"
)

// Reload re-reads the configuration file, applies the command-line flags over it again,
// rebuilds everything (Authenticator, TLS certificates, limits, log levels, the log file's
// size limit and number of files) and puts it in force with core's Server.Reload: clients
// whose user was removed or whose credentials changed are closed, the others keep going
// with their new permissions. If the new configuration is invalid, or changes something
// that needs a restart (the listen address, server_name, monitoring, profiling, the log or
// PID file, the log format or timestamps), every problem is logged, the running
// configuration stays, and the error is returned. Streaming settings need a restart, except its log levels (sd,
// sv).
func (m *Main) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.srv == nil {
		return ErrNotStarted
	}
	cur := m.cfg
	if cur.configFile == "" {
		m.log.Error("configuration reload failed", "error", ErrNoConfigFile)
		return ErrNoConfigFile
	}
	next, err := configure(m.args, io.Discard)
	if err == nil {
		err = restartOnly(cur, next)
	}
	if err == nil {
		err = m.srv.Reload(next.coreOptions(m.log)) // wraps core.ErrReload for what cannot change
	}
	if err != nil {
		for _, e := range unjoin(err) {
			m.log.Error("configuration reload failed; the running configuration stays", "file", cur.configFile, "error", e)
		}
		return err
	}
	m.cfg = next
	m.setLevels(next)
	if m.logFile != nil {
		m.logFile.setLimits(next.logSizeLimit, next.logMaxNum)
	}
	if next.core.TLS != nil {
		m.tls.Store(next.core.TLS)
	}
	m.logWarnings(next)
	m.log.Info("configuration file reloaded", "file", next.configFile)
	return nil
}

// restartOnly returns an error naming the settings that next changes but that only a
// restart can change. (core refuses a new listen address, server_name, client_advertise
// or cluster block itself.)
func restartOnly(cur, next *settings) error {
	var changed []string
	if cur.httpHost != next.httpHost || cur.httpPort != next.httpPort || cur.httpsPort != next.httpsPort {
		changed = append(changed, "http/https (monitoring address)")
	}
	if cur.basePath != next.basePath {
		changed = append(changed, "http_base_path")
	}
	if cur.profilePort != next.profilePort {
		changed = append(changed, "prof_port")
	}
	if cur.logFile != next.logFile {
		changed = append(changed, "logfile")
	}
	if cur.logFormat != next.logFormat || cur.logTime != next.logTime || cur.logUTC != next.logUTC {
		changed = append(changed, "log_format, logtime, logtime_utc")
	}
	if cur.pidFile != next.pidFile {
		changed = append(changed, "pid_file")
	}
	if cur.portsDir != next.portsDir {
		changed = append(changed, "ports_file_dir")
	}
	if !cur.streaming.sameRestart(&next.streaming) {
		changed = append(changed, "streaming settings (only stan_debug and stan_trace change live)")
	}
	if len(changed) > 0 {
		return fmt.Errorf("reload: %s cannot change while the server runs (restart instead)", strings.Join(changed, ", "))
	}
	return nil
}
