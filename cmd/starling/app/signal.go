package app

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// signalByName maps --signal commands to what Run reacts to.
func signalByName(cmd string) (syscall.Signal, bool) {
	switch cmd {
	case "reload":
		return syscall.SIGHUP, true
	case "stop", "term":
		return syscall.SIGTERM, true
	case "quit":
		return syscall.SIGINT, true
	case "ldm":
		return syscall.SIGUSR2, true
	case "reopen":
		return syscall.SIGUSR1, true
	}
	return 0, false
}

// SendSignal carries out --signal CMD[=PID]: it sends CMD's signal to the running server
// named by PID (a number, or a PID file), else by the PID file of -P or the configuration's
// pid_file.
func (m *Main) SendSignal() error {
	c := m.cfg
	cmd, target, hasTarget := strings.Cut(c.signal, "=")
	sig, ok := signalByName(cmd)
	if !ok {
		return fmt.Errorf("flag --signal: unknown signal %q", cmd)
	}
	var pid int
	var err error
	switch {
	case hasTarget:
		if pid, err = strconv.Atoi(target); err != nil {
			pid, err = readPIDFile(target)
		}
	case c.pidFile != "":
		pid, err = readPIDFile(c.pidFile)
	default:
		err = ErrNoPID
	}
	if err != nil {
		return fmt.Errorf("flag --signal %s: %w", cmd, err)
	}
	if pid <= 0 {
		return fmt.Errorf("flag --signal %s: invalid PID %d", cmd, pid)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("flag --signal %s: process %d: %w", cmd, pid, err)
	}
	fmt.Fprintf(m.Stdout, "sent %s (%s) to process %d\n", cmd, sig, pid)
	return nil
}

func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("PID file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("PID file %s: %q is not a PID", path, strings.TrimSpace(string(b)))
	}
	return pid, nil
}
