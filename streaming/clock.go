package streaming

import (
	"sync/atomic"
	"time"
)

// engineClock holds the engine's two times. Deadlines (ack waits, heartbeat answers,
// reassigned and restored messages, MaxInactivity) are durations: they count monotonic ns
// (mono), which no step of the system clock moves, either way; from the wall time at New,
// so they stay positive (0 means none) and read as unix ns in a debugger. Message timestamps and MaxAge expiry are
// wall times, read per channel (chanTime). Set by New, read-only since (step aside).
type engineClock struct {
	base time.Time    // mono's origin: a time.Now reading (its monotonic part counts) moved back
	step atomic.Int64 // added to the system's wall time: tests step the clock with it, anywhere
}

// mono returns the engine's deadline time at t, a reading of time.Now.
func (c *engineClock) mono(t time.Time) int64 { return int64(t.Sub(c.base)) }

// monoNow is the engine's deadline time now.
func (c *engineClock) monoNow() int64 { return c.mono(time.Now()) }

// chanClock is a channel's wall time, which its timestamps and MaxAge read: the system's,
// unless that is behind the channel's newest timestamp plus the monotonic time elapsed
// since it was stamped (or restored). So timestamps never go back within a channel, and a
// message's age is the time elapsed since its stamp: a step of the system clock back by an
// hour does not stop MaxAge for an hour (TestClockStepBack*), and messages stamped by a
// former leader whose clock ran ahead expire MaxAge after they were stamped, not MaxAge
// plus the skew (TestRestoredStampAheadExpiresOnTime). Per channel, not one clock for the
// engine: a step forward and back again leaves ahead only the channels stamped meanwhile,
// not every channel's timestamps until real time catches up
// (TestClockStepForwardAndBackStampsNearWall).
type chanClock struct {
	last int64 // the newest timestamp, unix ns; 0: none
	at   int64 // engineClock.mono when it was stamped or restored
}

// chanTime returns cc's wall time at t, a reading of time.Now.
func (c *engineClock) chanTime(cc *chanClock, t time.Time) int64 {
	w := t.UnixNano() + c.step.Load()
	if cc.last != 0 {
		w = max(w, cc.last+c.mono(t)-cc.at)
	}
	return w
}

// chanNow is cc's wall time now.
func (c *engineClock) chanNow(cc *chanClock) int64 { return c.chanTime(cc, time.Now()) }
