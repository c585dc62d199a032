package streaming

import "time"

// HoldEngine stalls s's engine, as a long iteration would, and has monitoring snapshots
// wait at most wait for it. release lets it run again.
func HoldEngine(s *Server, wait time.Duration) (release func()) {
	s.snapWait.Store(int64(wait))
	s.runMu.Lock()
	return s.runMu.Unlock
}

// setFetchTimes sets how long s's fetches go without progress before they fail (instead of
// fetchTimeout) and how long they wait before asking again (instead of fetchRetry). No fetch
// of s may be running.
func setFetchTimes(s *Server, timeout, retry time.Duration) {
	s.fetchTimes = fetchTimes{timeout, retry}
}

// StepClock steps the wall clock s's engine reads by d, as NTP or an operator stepping the
// system clock would: its wall time moves, its monotonic time does not. It may be called
// from any goroutine, the engine's included (a Bus's Publish).
func StepClock(s *Server, d time.Duration) { s.clock.step.Add(int64(d)) }
