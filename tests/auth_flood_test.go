package tests

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/starling-io/starling/core"
)

// passwordFlood is the audit's attack (finding 10): sockets that loop on CONNECT as a
// known user with a wrong password, as fast as the server answers.
type passwordFlood struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool // open sockets, closed by Stop

	sent, refused, timedOut atomic.Int64
}

// startPasswordFlood opens n sockets that log in as user with pass() until Stop.
func startPasswordFlood(t *testing.T, addr string, n int, user string, pass func() string) *passwordFlood {
	f := &passwordFlood{stop: make(chan struct{}), conns: make(map[net.Conn]bool)}
	for range n {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for f.attempt(addr, user, pass()) {
			}
		}()
	}
	t.Cleanup(f.Stop)
	return f
}

// attempt makes one login and reports whether to go on.
func (f *passwordFlood) attempt(addr, user, pass string) bool {
	select {
	case <-f.stop:
		return false
	default:
	}
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	f.mu.Lock()
	if f.conns == nil { // stopped meanwhile
		f.mu.Unlock()
		nc.Close()
		return false
	}
	f.conns[nc] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, nc)
		f.mu.Unlock()
		nc.Close()
	}()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(nc)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		return true
	}
	if _, err := fmt.Fprintf(nc, "CONNECT {\"verbose\":false,\"pedantic\":false,\"user\":%q,\"pass\":%q}\r\nPING\r\n", user, pass); err != nil {
		return true
	}
	f.sent.Add(1)
	line, _ := r.ReadString('\n')
	switch {
	case strings.Contains(line, "Authorization Violation"):
		f.refused.Add(1)
	case strings.Contains(line, "Authentication Timeout"):
		f.timedOut.Add(1)
	}
	return true
}

// Stop ends the flood and closes its sockets.
func (f *passwordFlood) Stop() {
	f.mu.Lock()
	if f.conns == nil {
		f.mu.Unlock()
		return
	}
	close(f.stop)
	for nc := range f.conns {
		nc.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
}

func randomPassword() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// connectWithin connects with nats.go's defaults (a 2 s handshake deadline, the
// server's default auth timeout) and fails unless that succeeds.
func connectWithin(t *testing.T, url, what string, opts ...nats.Option) {
	t.Helper()
	start := time.Now()
	nc, err := nats.Connect(url, append(opts, nats.NoReconnect())...)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%s: %v after %v", what, err, took.Round(time.Millisecond))
	}
	nc.Close()
	if took >= core.DefaultAuthTimeout {
		t.Fatalf("%s took %v, more than the auth timeout", what, took)
	}
	t.Logf("%s: connected in %v", what, took.Round(time.Millisecond))
}

// A flood of wrong passwords for a bcrypt (cost 11) user no longer starves the server
// (audit finding 10): bcrypt runs at most GOMAXPROCS/2 at a time, a check still waiting
// when its auth timer fires gives up, and recent answers are cached. With 64 sockets
// flooding:
//   - random wrong passwords: a client that logged in before reconnects at once (verified
//     cache), and a connected pub/sub pair keeps exchanging messages;
//   - one wrong password repeated: it costs one bcrypt (refused cache), so a brand-new
//     client with the right password gets the free bcrypt slot and connects.
func TestBcryptFloodDoesNotStarve(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector one cost-11 bcrypt check takes longer than nats.go's 2 s handshake")
	}
	hashes := make([]string, 2)
	var hw sync.WaitGroup
	for i, pw := range []string{"alice-pw", "carol-pw"} {
		hw.Add(1)
		go func() {
			defer hw.Done()
			h, err := bcrypt.GenerateFromPassword([]byte(pw), 11)
			if err != nil {
				t.Error(err)
			}
			hashes[i] = string(h)
		}()
	}
	hw.Wait()
	m := startServer(t, "-c", writeConfig(t, t.TempDir(), fmt.Sprintf(`
authorization { users = [
  {user: alice, password: %q}
  {user: carol, password: %q}
  {user: app, password: app-pw}
]}`, hashes[0], hashes[1])))
	url, addr := clientURL(m), m.Server().Addr().String()

	connectWithin(t, url, "alice before the flood", nats.UserInfo("alice", "alice-pw"))
	sub := connect(t, m, nats.UserInfo("app", "app-pw"))
	pub := connect(t, m, nats.UserInfo("app", "app-pw"))
	msgs := make(chan *nats.Msg, 16)
	_, err := sub.ChanSubscribe("flood.check", msgs)
	must(t, err)
	must(t, sub.Flush())
	baseline := m.Server().NumClients()

	// Random wrong passwords: every attempt needs bcrypt. Wait until all 64 sockets have
	// sent a CONNECT and a few have their answer: the other checks are queued.
	random := startPasswordFlood(t, addr, 64, "alice", randomPassword)
	waitFor(t, 5*time.Second, func() error {
		if random.sent.Load() < 64 || random.refused.Load()+random.timedOut.Load() < 2 {
			return fmt.Errorf("flood: %d sent, %d refused", random.sent.Load(), random.refused.Load())
		}
		return nil
	})

	// The pub/sub pair exchanges messages for the whole of this phase.
	var exchanged atomic.Int64
	var slowest atomic.Int64
	done, exErr := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(exErr)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			start := time.Now()
			if err := pub.Publish("flood.check", fmt.Appendf(nil, "%d", i)); err != nil {
				exErr <- err
				return
			}
			select {
			case m := <-msgs:
				if string(m.Data) != fmt.Sprint(i) {
					exErr <- fmt.Errorf("message %d: got %q", i, m.Data)
					return
				}
			case <-time.After(time.Second):
				exErr <- fmt.Errorf("message %d not received within 1s", i)
				return
			}
			slowest.Store(max(slowest.Load(), int64(time.Since(start))))
			exchanged.Add(1)
			time.Sleep(5 * time.Millisecond) // a steady trickle, not a benchmark
		}
	}()

	connectWithin(t, url, "alice reconnecting during a random-password flood", nats.UserInfo("alice", "alice-pw"))
	// Keep going until the auth timer has made queued checks give up: proof that the
	// flood saturated bcrypt, and that waiting checks end with the connection.
	waitFor(t, 5*time.Second, func() error {
		if random.timedOut.Load() == 0 {
			return fmt.Errorf("no flood connection timed out yet (%d sent, %d refused)", random.sent.Load(), random.refused.Load())
		}
		return nil
	})
	close(done)
	if err := <-exErr; err != nil {
		t.Fatalf("pub/sub pair during the flood: %v", err)
	}
	t.Logf("random flood: %d attempts, %d refused, %d timed out; pub/sub exchanged %d messages, slowest %v",
		random.sent.Load(), random.refused.Load(), random.timedOut.Load(), exchanged.Load(), time.Duration(slowest.Load()).Round(time.Millisecond))
	if exchanged.Load() < 10 {
		t.Fatalf("only %d messages exchanged during the flood", exchanged.Load())
	}
	random.Stop()
	// The server still holds the checks queued by the flood until their auth timers fire.
	waitFor(t, 5*time.Second, func() error {
		if n := m.Server().NumClients(); n > baseline {
			return fmt.Errorf("%d connections, %d before the flood", n, baseline)
		}
		return nil
	})

	// One wrong password, repeated: one bcrypt, then answered from the cache.
	fixed := startPasswordFlood(t, addr, 64, "alice", func() string { return "always-the-same-wrong-pw" })
	waitFor(t, 5*time.Second, func() error {
		if fixed.refused.Load() < 256 {
			return fmt.Errorf("flood: %d sent, %d refused", fixed.sent.Load(), fixed.refused.Load())
		}
		return nil
	})
	connectWithin(t, url, "carol, new, during a repeated-password flood", nats.UserInfo("carol", "carol-pw"))
	t.Logf("repeated-password flood: %d attempts, %d refused, %d timed out", fixed.sent.Load(), fixed.refused.Load(), fixed.timedOut.Load())
	if fixed.timedOut.Load() != 0 {
		t.Fatalf("%d repeated-password attempts timed out: they should cost no bcrypt", fixed.timedOut.Load())
	}
}
