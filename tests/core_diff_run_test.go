package tests

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The runner of TestCoreDiff: it plays a generated session of raw protocol bytes against
// one server and turns what each connection receives into a comparable token stream.

// diffAction is one step of a session: open connection conn, or send data on it, in one
// write or, with cuts, in pieces split at those offsets.
type diffAction struct {
	conn int
	open bool
	data string
	cuts []int
}

// diffTok is one thing a connection received, tagged with the step it arrived in.
type diffTok struct {
	step int
	s    string
}

const (
	diffMaxPayload = 1024
	diffMaxControl = 512
	diffMaxSubs    = 4
)

// startDiffServers starts nats-server and Starling with the same settings and returns
// their client addresses.
func startDiffServers(t *testing.T, extraConf string) (ref, star string) {
	t.Helper()
	natsBin := madeTool(t, "NATS_SERVER", "nats-server")
	conf := func(port int) string {
		p := filepath.Join(t.TempDir(), "diff.conf")
		must(t, os.WriteFile(p, fmt.Appendf(nil,
			"listen: 127.0.0.1:%d\nmax_payload: %d\nmax_control_line: %d\nmax_subscriptions: %d\nping_interval: \"10m\"\n%s",
			port, diffMaxPayload, diffMaxControl, diffMaxSubs, extraConf), 0o600))
		return p
	}
	rp, sp := freePort(t), freePort(t)
	startProc(t, natsBin, "-c", conf(rp))
	startProc(t, starlingBinary(t), "--no_streaming", "-m", "0", "-c", conf(sp))
	ref, star = fmt.Sprintf("127.0.0.1:%d", rp), fmt.Sprintf("127.0.0.1:%d", sp)
	for _, a := range []string{ref, star} {
		waitFor(t, 10*time.Second, func() error {
			c, err := net.Dial("tcp", a)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	return ref, star
}

type diffConn struct {
	c    net.Conn
	r    *bufio.Reader
	dead bool
}

// A barrier's wait: only a server stuck waiting for payload bytes that never come (both
// should be) reaches it. A mismatch is checked again with the long one, in case a loaded
// machine made an answer late.
const (
	diffWait     = 300 * time.Millisecond
	diffWaitLong = 2 * time.Second
)

// runDiffSession plays acts against addr and returns each connection's tokens.
func runDiffSession(addr string, acts []diffAction, wait time.Duration) map[int][]diffTok {
	out := map[int][]diffTok{}
	conns := map[int]*diffConn{}
	defer func() {
		for _, c := range conns {
			if c.c != nil {
				c.c.Close()
			}
		}
	}()
	add := func(i, step int, s string) { out[i] = append(out[i], diffTok{step, s}) }
	// barrier sends data and a marker on conn i and reads until the marker's answer: a
	// publish to a reserved subject, refused with an -ERR that names it. Unlike a PONG it
	// cannot be mistaken for the answer to a PING in data (or to a "PINGX" line, or to a
	// PING that a wrong byte count turned into payload).
	seq := 0
	barrier := func(i, step int, data string, cuts []int) {
		dc := conns[i]
		if dc == nil || dc.dead {
			return
		}
		seq++
		mark := fmt.Sprintf("$NRG.sync.%d", seq)
		want := fmt.Sprintf(`-ERR 'Permissions Violation for Publish to "%s"'`, mark)
		// The pieces, each a write of its own. With a few, a pause after each makes it
		// likely a read of its own too; byte by byte, the pauses would cost too much time
		// (a short sleep takes a millisecond on a loaded machine), and the server's reads
		// take what has come.
		last := 0
		for _, c := range cuts {
			if _, err := dc.c.Write([]byte(data[last:c])); err != nil {
				break // the close shows on the read below
			}
			last = c
			if len(cuts) <= 3 {
				time.Sleep(50 * time.Microsecond)
			}
		}
		// The marker in the same write as the last piece: a server that closes on data must
		// have read the marker too, or it would reset the connection, and the reset can drop
		// what it sent before.
		if _, err := dc.c.Write([]byte(data[last:] + "PUB " + mark + " 0\r\n\r\n")); err != nil {
			_ = err // the close shows on the read below
		}
		dc.c.SetReadDeadline(time.Now().Add(wait))
		for {
			tok, err := readDiffTok(dc.r)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					add(i, step, "HUNG")
				} else if errors.Is(err, syscall.ECONNRESET) {
					add(i, step, "RESET")
				} else {
					add(i, step, "CLOSED")
				}
				dc.dead = true
				dc.c.Close()
				return
			}
			switch tok {
			case "":
				continue // a server PING: timing, not protocol
			case want:
				return
			}
			add(i, step, tok)
		}
	}
	for step, a := range acts {
		if a.open {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				add(a.conn, step, "DIAL "+err.Error())
				continue
			}
			dc := &diffConn{c: c, r: bufio.NewReader(c)}
			conns[a.conn] = dc
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			tok, err := readDiffTok(dc.r)
			if err != nil {
				tok = "NO INFO"
			}
			add(a.conn, step, tok)
			continue
		}
		barrier(a.conn, step, a.data, a.cuts)
		for i := range conns {
			if i != a.conn {
				barrier(i, step, "", nil)
			}
		}
	}
	return out
}

// readDiffTok reads one protocol unit and normalises it: "" for a server PING, the INFO
// fields clients rely on (not ids or versions), MSG/HMSG with their payload.
func readDiffTok(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	op, rest, _ := strings.Cut(line, " ")
	switch op {
	case "PING":
		return "", nil
	case "INFO":
		var info struct {
			Proto       int    `json:"proto"`
			Headers     bool   `json:"headers"`
			MaxPayload  int    `json:"max_payload"`
			AuthReq     bool   `json:"auth_required"`
			ConnectInfo bool   `json:"connect_info"`
			RemoteAcc   string `json:"remote_account"`
		}
		if err := json.Unmarshal([]byte(rest), &info); err != nil {
			return "INFO bad json " + err.Error(), nil
		}
		b, _ := json.Marshal(info)
		return "INFO " + string(b), nil
	case "MSG", "HMSG":
		// Split at single spaces, as both servers write them: a CR a PUB left in the
		// subject or reply must show.
		f := strings.Split(rest, " ")
		if len(f) < 3 {
			return "BAD " + line, nil
		}
		n, perr := strconv.Atoi(f[len(f)-1])
		if perr != nil || n < 0 || n > 1<<20 {
			return "BAD " + line, nil
		}
		body := make([]byte, n+2)
		if _, err := readFull(r, body); err != nil {
			return "", err
		}
		// nats-server repeats the publisher's size bytes ("005"), Starling writes the
		// number: both read the same.
		nums := 1
		if op == "HMSG" {
			nums = 2
		}
		for i := len(f) - nums; i < len(f); i++ {
			if v, err := strconv.Atoi(f[i]); err == nil {
				f[i] = strconv.Itoa(v)
			}
		}
		return fmt.Sprintf("%s %s %q", op, strings.Join(f, " "), body), nil
	}
	return line, nil
}

func readFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// normDiff removes what may legitimately differ: which member of a queue group got a
// message (queue deliveries become a per-step multiset keyed by group), which of the
// publisher's matching subscriptions carries a no-responders status, and the order in
// which one message reaches several subscriptions of one connection.
func normDiff(toks map[int][]diffTok, qsids map[string]string) (map[int][]string, map[int][]string) {
	per := map[int][]string{}
	queued := map[int][]string{}
	for conn, ts := range toks {
		var run []diffTok
		flush := func() {
			slices.SortFunc(run, func(a, b diffTok) int { return strings.Compare(a.s, b.s) })
			for _, t := range run {
				per[conn] = append(per[conn], fmt.Sprintf("%d: %s", t.step, t.s))
			}
			run = run[:0]
		}
		for _, t := range cleanPedantic(ts) {
			key, sid, ok := msgKey(t.s)
			if ok && (strings.HasPrefix(key, "MSG $SYS.") || strings.HasPrefix(key, "HMSG $SYS.")) {
				// nats-server with a single configured user delivers its auth error
				// advisories to that user's '>' subscribers; Starling keeps them in the
				// system account.
				continue
			}
			if !ok {
				flush()
				per[conn] = append(per[conn], fmt.Sprintf("%d: %s", t.step, t.s))
				continue
			}
			if strings.Contains(t.s, `"NATS/1.0 503`) {
				t.s = key // to any of the publisher's subscriptions that match the reply
			} else if q, ok := qsids[fmt.Sprintf("%d/%s", conn, sid)]; ok {
				queued[t.step] = append(queued[t.step], "queue "+q+": "+key)
				continue
			}
			if len(run) > 0 {
				if k, _, _ := msgKey(run[0].s); k != key {
					flush()
				}
			}
			run = append(run, t)
		}
		flush()
	}
	for _, q := range queued {
		slices.Sort(q)
	}
	return per, queued
}

// cleanPedantic drops the "Invalid Publish Subject" errors that depend on how nats-server
// happens to read, not on the protocol.
func cleanPedantic(ts []diffTok) []diffTok {
	const bad = "-ERR 'Invalid Publish Subject'"
	var out []diffTok
	for i, t := range ts {
		// nats-server checks a pedantic PUB's subject again when the payload is split
		// across reads (clonePubArg), so the error may come twice.
		if t.s == bad && i > 0 && ts[i-1].s == bad {
			continue
		}
		out = append(out, t)
	}
	for i := 0; i+1 < len(out); i++ {
		// nats-server checks it on the control line, Starling once the message is
		// complete: a message that never is (a bad terminator, a payload that does not
		// come) shows the difference. The spec asks for the error for messages only.
		if n := out[i+1].s; out[i].s == bad && (n == "-ERR 'Unknown Protocol Operation'" || n == "HUNG") {
			out = slices.Delete(out, i, i+1)
		}
	}
	return out
}

// msgKey returns a MSG/HMSG token without its sid, and the sid.
func msgKey(s string) (key, sid string, ok bool) {
	if !strings.HasPrefix(s, "MSG ") && !strings.HasPrefix(s, "HMSG ") {
		return "", "", false
	}
	f := strings.SplitN(s, " ", 4)
	if len(f) < 4 {
		return "", "", false
	}
	return f[0] + " " + f[1] + " ? " + f[3], f[2], true
}
