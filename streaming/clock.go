package streaming

import "time"

// engineClock holds the engine's two times. Deadlines (ack waits, reassigned and restored
// messages, MaxInactivity) are durations: they count monotonic ns (mono), which no step of
// the system clock moves, either way; from the wall time at New, so they stay positive (0
// means none) and read as unix ns in a debugger. Message timestamps and
// MaxAge expiry are wall times, in unix ns (wall): they follow the system clock forward,
// but never back: a reading is at least the previous one plus the monotonic time elapsed
// since, so that a step back by an hour (NTP at boot, a VM resumed, an operator fixing the
// date) does not stop MaxAge for an hour (TestClockStepBack*). Engine-owned (runMu), but
// for base, set by New.
type engineClock struct {
	base time.Time // mono's origin: a time.Now reading (its monotonic part counts) moved back
	last int64     // the last wall reading, unix ns
	at   time.Time // when it was taken (its monotonic reading counts)
	step int64     // added to the system's wall time: tests step the clock with it
}

// mono returns the engine's deadline time at t, a reading of time.Now: ns since base.
func (c *engineClock) mono(t time.Time) int64 { return int64(t.Sub(c.base)) }

// monoNow is the engine's deadline time now.
func (c *engineClock) monoNow() int64 { return c.mono(time.Now()) }

// wall returns the engine's wall time at t, a reading of time.Now (so that a caller that
// reads the clock anyway reads it once).
func (c *engineClock) wall(t time.Time) int64 {
	w := t.UnixNano() + c.step
	if !c.at.IsZero() {
		if m := c.last + int64(t.Sub(c.at)); w < m {
			w = m // the system clock stepped back
		}
	}
	if t.After(c.at) {
		c.last, c.at = w, t
	}
	return w
}

// now is the engine's wall time now.
func (c *engineClock) now() int64 { return c.wall(time.Now()) }

// until is how long from now until the engine's wall time at, unix ns.
func (c *engineClock) until(at int64) time.Duration { return time.Duration(at - c.now()) }
