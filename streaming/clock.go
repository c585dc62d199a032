package streaming

import "time"

// engineClock is the wall clock the engine stamps and compares its deadlines with (ack
// waits, message timestamps, MaxAge expiry), in unix ns. It follows the system clock
// forward, but never back: a reading is at least the previous one plus the monotonic time
// elapsed since. Deadlines are wall times because a restart or a new leader resumes them
// from message timestamps; yet a step of the system clock back by an hour (NTP at boot, a
// VM resumed, an operator fixing the date) made every pending message wait an hour more
// for its redelivery (a subscriber at max in flight stalled), and MaxAge expire nothing
// for an hour (TestClockStepBack*). A step forward is followed: deadlines come early,
// which at-least-once allows. Engine-owned (runMu).
type engineClock struct {
	last int64     // the last reading, unix ns
	at   time.Time // when it was taken (its monotonic reading counts)
	step int64     // added to the system's wall time: tests step the clock with it
}

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
