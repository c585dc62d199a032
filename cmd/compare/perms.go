package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The permissions scenario: both servers load the same nats-server configuration file, which
// defines one user whose publish permissions hold 20 rules, and `nats bench pub` publishes as that
// user on a subject that an allow rule admits and no deny rule matches. Before every measured run
// checkPermissions proves the server enforces the file: a server that ignored it would be
// benchmarked open and its row would show permissions as free.

const (
	permUser     = "bench"
	permPassword = "bench"
	permSubject  = "bench.perm" // allowed by "bench.>", matched by no deny rule
	// permDenied is allowed by "bench.>" but denied by "bench.secret.>": refusing it shows that
	// deny rules are applied on top of allow rules.
	permDenied   = "bench.secret.check"
	permConfFile = "pub-perms.conf"
	checkTimeout = 5 * time.Second
	checkPings   = 3 // PINGs sent while waiting for the check's replies
)

// permAllow and permDeny are the 20 publish rules, a mix of literals, * and > wildcards; some
// deny rules nearly match permSubject ("bench.perm.*", "bench.*.private").
var (
	permAllow = []string{"bench.>", "orders.*.created", "metrics.>", "a.b.c.*", "events.*.*.updated",
		"logs.app.>", "telemetry.*.cpu", "svc.*.request", "inventory.eu.*", "_INBOX.>"}
	permDeny = []string{"bench.secret.>", "bench.*.private", "admin.>", "orders.*.deleted", "metrics.internal.>",
		"a.b.c.d", "system.>", "bench.perm.*", "events.*.*.purged", "logs.app.audit.>"}
)

// serverConfig is a configuration file that both servers load with -c for a scenario.
type serverConfig struct {
	file  string                  // base name, written into the run's temp dir
	text  string                  // nats-server configuration format
	check func(addr string) error // run on each fresh server before it is measured; nil for none
}

func permConfig() *serverConfig {
	return &serverConfig{file: permConfFile, check: checkPermissions, text: fmt.Sprintf(`authorization {
  users = [
    {user: %s, password: %s, permissions: {
      publish: { allow: [%s], deny: [%s] }
      subscribe: { allow: [">"] }
    }}
  ]
}
`, permUser, permPassword, quoteList(permAllow), quoteList(permDeny))}
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

// serverArgs writes the file into dir and returns the flags that load it; none without a config.
func (c *serverConfig) serverArgs(dir string) ([]string, error) {
	if c == nil {
		return nil, nil
	}
	path := filepath.Join(dir, c.file)
	if err := os.WriteFile(path, []byte(c.text), 0o600); err != nil {
		return nil, err
	}
	return []string{"-c", path}, nil
}

// checkPermissions fails unless the server at addr refuses a client without credentials, refuses
// the user's publish to permDenied with a permissions error, and delivers its publish to
// permSubject.
func checkPermissions(addr string) error {
	if err := refusesAnonymous(addr, permConfFile); err != nil {
		return fmt.Errorf("permissions check: %w", err)
	}
	user := fmt.Sprintf("CONNECT {\"verbose\":false,\"protocol\":1,\"user\":%q,\"pass\":%q}\r\n", permUser, permPassword) +
		"SUB " + permSubject + " 1\r\nSUB " + permDenied + " 2\r\nPUB " + permDenied + " 1\r\nx\r\nPUB " + permSubject + " 1\r\nx\r\nPING\r\n"
	var denied, delivered bool
	err := converse(addr, user, func(line string) (bool, error) {
		switch {
		case strings.HasPrefix(line, "-ERR") && strings.Contains(strings.ToLower(line), "permission") && strings.Contains(line, permDenied):
			denied = true
		case strings.HasPrefix(line, "-ERR"):
			return false, fmt.Errorf("server said %s", line)
		case strings.HasPrefix(line, "MSG "+permDenied+" "):
			return false, fmt.Errorf("a publish to %s was delivered: deny rules not applied", permDenied)
		case strings.HasPrefix(line, "MSG "+permSubject+" "):
			delivered = true
		}
		return denied && delivered, nil
	})
	if err != nil {
		return fmt.Errorf("permissions check as %q (denied %s: %v, delivered %s: %v): %w",
			permUser, permDenied, denied, permSubject, delivered, err)
	}
	return nil
}

var errClosed = errors.New("connection closed")

// refusesAnonymous fails unless the server at addr refuses a client without credentials: the
// configuration file (named in the error) was loaded.
func refusesAnonymous(addr, file string) error {
	anon := "CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\n"
	err := converse(addr, anon, func(line string) (bool, error) {
		switch {
		case strings.HasPrefix(line, "PONG"):
			return false, fmt.Errorf("server accepted a client without credentials: was %s loaded?", file)
		case strings.HasPrefix(line, "-ERR"):
			return true, nil
		}
		return false, nil
	})
	if err != nil && !errors.Is(err, errClosed) { // closing without -ERR is a refusal too
		return fmt.Errorf("no credentials: %w", err)
	}
	return nil
}

// converse connects to addr, sends send, and passes every received line (without CRLF) to
// handle until it reports done or fails. Each PONG gets a further PING, up to checkPings, so
// that replies queued behind the first PONG still arrive; the whole exchange is bounded by
// checkTimeout.
func converse(addr, send string, handle func(line string) (bool, error)) error {
	c, err := net.DialTimeout("tcp", addr, checkTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(checkTimeout))
	if _, err := c.Write([]byte(send)); err != nil {
		return err
	}
	rc := &rawConn{c: c, r: bufio.NewReaderSize(c, 4096)}
	pongs := 0
	for {
		b, err := rc.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				return errClosed
			}
			return err
		}
		line := strings.TrimRight(string(b), "\r\n")
		done, err := handle(line)
		if err != nil || done {
			return err
		}
		switch {
		case strings.HasPrefix(line, "PING"):
			_, err = c.Write([]byte("PONG\r\n"))
		case strings.HasPrefix(line, "PONG"):
			if pongs++; pongs >= checkPings {
				return errors.New("no complete reply after " + strconv.Itoa(pongs) + " PINGs")
			}
			_, err = c.Write([]byte("PING\r\n"))
		}
		if err != nil {
			return err
		}
	}
}
