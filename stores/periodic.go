package stores

import "time"

// Periodic runs fn every interval on a goroutine of its own until the returned stop is
// called; stop waits for a running fn to return. The stores' AutoSync uses it.
func Periodic(interval time.Duration, fn func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}
