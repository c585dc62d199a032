package core

import (
	"net"
	"runtime"
	"slices"
	"testing"
	"time"
)

// spinPair is rawPair with spinning on and the state of a connection that was just written
// a reply, after a request whose gap averaged gap.
func spinPair(t *testing.T, gap time.Duration) *client {
	t.Helper()
	c, _ := rawPair(t)
	c.srv = &Server{}
	c.rid = 1 << 40
	was := spinEnabled.Load()
	spinEnabled.Store(true)
	t.Cleanup(func() { spinEnabled.Store(was) })
	lastReader.Store(c.rid) // the last connection that read anything
	now := time.Now().UnixNano()
	c.spin.lastIn = now - int64(time.Millisecond)
	c.spin.gap = int64(gap)
	c.spin.single = spinSingles
	c.spin.own = true
	c.lastOut.Store(now)
	return c
}

// TestSpinBounds: a reader spins for the next request only when spinning is on, right after
// a write to its connection, with a recent gap within spinMax, GOMAXPROCS > 1, few client
// sockets, no other spinner and no other connection reading since; and never past its
// budget after the write.
func TestSpinBounds(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS > 1")
	}
	buf := make([]byte, 64)
	noSpin := func(name string, c *client) {
		t.Helper()
		c.rin.b = buf
		if done, _ := c.spinRead(); done || c.spin.spins != 0 {
			t.Fatalf("%s: spun (done %v, spins %d)", name, done, c.spin.spins)
		}
	}

	c := spinPair(t, 50*time.Microsecond)
	spinEnabled.Store(false)
	noSpin("disabled", c)

	c = spinPair(t, 50*time.Microsecond)
	c.srv.sockets.Store(spinMaxConns + 1)
	noSpin("many connections", c)

	c = spinPair(t, time.Duration(spinMax)+time.Microsecond)
	noSpin("gap past spinMax", c)

	c = spinPair(t, 50*time.Microsecond)
	out := c.lastOut.Load()
	c.noteBatch(2, out-1)
	for range spinSingles - 1 {
		c.noteBatch(1, out-1)
	}
	noSpin("several messages per read buffer lately", c)

	c = spinPair(t, 50*time.Microsecond)
	c.noteBatch(1, c.lastOut.Load()) // nothing written while the buffer was handled
	noSpin("written from elsewhere", c)

	c = spinPair(t, 50*time.Microsecond)
	c.spin.lastIn = c.lastOut.Load() // no write since the last read
	noSpin("no reply written", c)

	c = spinPair(t, 50*time.Microsecond)
	c.lastOut.Store(time.Now().UnixNano() - int64(time.Millisecond)) // the budget ran out already
	noSpin("budget over", c)

	c = spinPair(t, 50*time.Microsecond)
	lastReader.Store(c.rid + 1)
	noSpin("another connection read since", c)

	c = spinPair(t, 50*time.Microsecond)
	spinner.Store(true)
	noSpin("another spinner", c)
	spinner.Store(false)

	c = spinPair(t, 50*time.Microsecond)
	prev := runtime.GOMAXPROCS(1)
	noSpin("GOMAXPROCS 1", c)
	runtime.GOMAXPROCS(prev)

	// Nothing comes: the spin ends by its deadline (the write + 5/4 of the gap), or earlier
	// if a poll stalled; it leaves the read to the poller and the spinner slot free. A
	// thread preempted mid-poll overruns by the preemption: the median is checked, and the
	// polls do not yield (a yield on a busy machine lasts another thread's time slice).
	defer func(y func()) { spinYield = y }(spinYield)
	spinYield = func() {}
	var overs []int64
	for skipped := 0; len(overs) < 21; {
		c = spinPair(t, 40*time.Microsecond)
		c.rin.b = buf
		c.lastOut.Store(time.Now().UnixNano())
		done, err := c.spinRead()
		end := time.Now().UnixNano()
		if !done && err == nil && c.spin.spins == 0 {
			// Not started: another connection in this process (a server left by another
			// test) read meanwhile (lastReader) or is spinning.
			if skipped++; skipped > 200 {
				t.Fatal("no spin started in 200 attempts")
			}
			continue
		}
		if done || err != nil || c.spin.spins != 1 || c.spin.caught != 0 {
			t.Fatalf("no input: done %v, err %v, spins %d, caught %d", done, err, c.spin.spins, c.spin.caught)
		}
		overs = append(overs, end-(c.lastOut.Load()+50*int64(time.Microsecond)))
		if spinner.Load() {
			t.Fatal("spinner slot still held")
		}
	}
	// One poll past the deadline (a read and a yield) is all the spin may overrun.
	slices.Sort(overs)
	if over := overs[len(overs)/2]; over > spinStall+int64(time.Millisecond) {
		t.Fatalf("spun %v past its budget (median of %d)", time.Duration(over), len(overs))
	}
}

// TestSpinBudget: the deadline is never past spinMax after the write, is the write + 5/4
// of the average gap below that, and there is none for a gap past spinMax.
func TestSpinBudget(t *testing.T) {
	c := &client{}
	out := time.Now().UnixNano()
	c.lastOut.Store(out)
	c.spin.lastIn = out - 1
	for g := int64(1000); g <= 2*spinMax; g += 1000 {
		c.spin.gap = g
		d := c.spinBudget(out)
		switch {
		case g > spinMax && d != 0:
			t.Fatalf("gap %d: deadline %d, want none", g, d-out)
		case g <= spinMax && d-out != min(g+g/4, spinMax):
			t.Fatalf("gap %d: budget %d, want %d", g, d-out, min(g+g/4, spinMax))
		}
	}
	c.spin.gap = 0
	if c.spinBudget(out) != 0 {
		t.Fatal("spins without a gap seen")
	}
}

// TestSpinCatchesAndLearns: a request already there (or arriving during the spin) is read
// by the spin; a read records the gap from the last write, a quarter at a time.
func TestSpinCatchesAndLearns(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS > 1")
	}
	c, peer := rawPair(t)
	c.srv = &Server{}
	c.rid = 1 << 41 // no real server's client: lastReader is process-wide
	c.spin.single = spinSingles
	c.spin.own = true
	was := spinEnabled.Load()
	spinEnabled.Store(true)
	defer spinEnabled.Store(was)

	c.noteRead(1000) // a first read: no write before it, no gap
	if c.spin.gap != 0 {
		t.Fatalf("gap %d without a write", c.spin.gap)
	}
	c.lastOut.Store(2000)
	c.noteRead(42000)
	if c.spin.gap != 40000 {
		t.Fatalf("gap %d, want 40000", c.spin.gap)
	}
	c.lastOut.Store(50000)
	c.noteRead(130000) // 80000: the average moves a quarter of the way
	if c.spin.gap != 50000 {
		t.Fatalf("gap %d, want 50000", c.spin.gap)
	}
	c.noteRead(140000) // no write since: unchanged
	if c.spin.gap != 50000 {
		t.Fatalf("gap %d after a read without a write, want 50000", c.spin.gap)
	}

	// Servers left by other tests in this process may read meanwhile (lastReader) or
	// spin (spinner): a spin that did not start is tried again.
	buf := make([]byte, 64)
	for attempt := 1; c.spin.caught == 0; attempt++ {
		if attempt > 50 {
			t.Fatalf("spins %d, caught %d in %d attempts", c.spin.spins, c.spin.caught, attempt-1)
		}
		if _, err := peer.Write([]byte("PUB x 1\r\n1\r\n")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		spins := c.spin.spins
		c.spin.gap = 50000
		lastReader.Store(c.rid)
		c.lastOut.Store(time.Now().UnixNano())
		n, err := c.readInput(buf)
		if err != nil || string(buf[:n]) != "PUB x 1\r\n1\r\n" {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
		if c.spin.spins > spins && c.spin.caught == 0 {
			t.Fatalf("a spin with input waiting did not read it (spins %d)", c.spin.spins)
		}
	}

	// Another connection's read ends a spin at its next poll (here long before its budget,
	// stretched to 625 ms; a stalled poll may end it earlier, which is fine too).
	defer func(m int64) { spinMax = m }(spinMax)
	spinMax = int64(time.Second)
	for attempt := 1; ; attempt++ {
		if attempt > 20 {
			t.Fatal("no spin started in 20 attempts")
		}
		spins := c.spin.spins
		c.spin.gap = int64(500 * time.Millisecond)
		lastReader.Store(c.rid)
		c.lastOut.Store(time.Now().UnixNano())
		flipped := make(chan struct{})
		go func() {
			time.Sleep(time.Millisecond)
			lastReader.Store(c.rid + 1)
			close(flipped)
		}()
		c.rin.b = buf
		start := time.Now()
		if done, _ := c.spinRead(); done {
			t.Fatal("read data nobody sent")
		}
		spun := time.Since(start)
		<-flipped // lands before the next attempt, and before the test ends
		if c.spin.spins == spins {
			continue
		}
		if spun > 300*time.Millisecond {
			t.Fatalf("spun %v after another connection read", spun)
		}
		break
	}
	lastReader.Store(c.rid)
	c.spin.gap = 50000
	c.rin.b = buf
	c.lastOut.Store(time.Now().UnixNano())
	c.spin.lastIn = 0
	if a := testing.AllocsPerRun(100, func() { _, _ = c.spinRead() }); a != 0 {
		t.Fatalf("spinRead allocates %v times", a)
	}
}

// TestLastReaderAcrossServers: two servers in one process number their clients alike, and a
// read on one server's connection still ends another's claim to be the only reader.
func TestLastReaderAcrossServers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c1 := (&Server{}).newSocketClient(kindClient, a)
	c2 := (&Server{}).newSocketClient(kindClient, b)
	if c1.cid != c2.cid {
		t.Fatalf("client ids %d and %d: the test wants two servers' first clients", c1.cid, c2.cid)
	}
	now := time.Now().UnixNano()
	c1.noteRead(now)
	c2.noteRead(now + 1)
	if lastReader.Load() != c2.rid || lastReader.Load() == c1.rid {
		t.Fatal("a read on another server's connection with the same client id left c1 the last reader")
	}
}
