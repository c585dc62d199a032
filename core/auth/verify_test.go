package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fakeBcrypt replaces the bcrypt comparison of an Authenticator: it counts calls,
// tracks how many run at once, and can hold every call until released.
type fakeBcrypt struct {
	calls, running, peak atomic.Int64
	entered              chan struct{} // one value per call, when it starts (if not nil)
	hold                 chan struct{} // calls wait for a value or a close (if not nil)
}

func (f *fakeBcrypt) install(a *Authenticator) {
	a.verify.compare = func(hash, pw []byte) error {
		f.calls.Add(1)
		n := f.running.Add(1)
		for p := f.peak.Load(); n > p && !f.peak.CompareAndSwap(p, n); p = f.peak.Load() {
		}
		if f.entered != nil {
			f.entered <- struct{}{}
		}
		if f.hold != nil {
			<-f.hold
		}
		f.running.Add(-1)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
}

func hashOf(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func newBcryptUsers(t testing.TB, concurrency int) *Authenticator {
	t.Helper()
	a, err := New(Options{BcryptConcurrency: concurrency, Users: []*User{
		{Username: "alice", Password: hashOf(t, "alicepw")},
		{Username: "bob", Password: hashOf(t, "bobpw")},
		{Username: "plain", Password: "plainpw"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBcryptConcurrencyDefault(t *testing.T) {
	if n := cap(newBcryptUsers(t, 0).verify.gate); n != bcryptConcurrency() || n < 1 {
		t.Fatalf("default concurrency %d, want GOMAXPROCS/2 (at least 1) = %d", n, bcryptConcurrency())
	}
	if n := cap(newBcryptUsers(t, 3).verify.gate); n != 3 {
		t.Fatalf("concurrency %d, want 3", n)
	}
}

// No more than BcryptConcurrency comparisons run at once; the others wait their turn
// and then all get their answer.
func TestGateBoundsBcrypt(t *testing.T) {
	a := newBcryptUsers(t, 2)
	f := &fakeBcrypt{hold: make(chan struct{})}
	f.install(a)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := a.Check(Credentials{User: "alice", Pass: fmt.Sprintf("wrong-%d", i)})
			errs <- err
		}()
	}
	waitUntil(t, "two comparisons running", func() bool { return f.running.Load() == 2 })
	for range n {
		f.hold <- struct{}{} // let one finish; the next waiter takes its slot
	}
	for range n {
		if err := <-errs; !errors.Is(err, ErrAuthorization) {
			t.Fatalf("Check = %v, want ErrAuthorization", err)
		}
	}
	if p, c := f.peak.Load(), f.calls.Load(); p != 2 || c != n {
		t.Fatalf("peak %d comparisons at once (want 2), %d calls (want %d)", p, c, n)
	}
}

// A check waiting for a slot gives up when its context ends, and never runs bcrypt
// afterwards; the slot it did not get stays free for others.
func TestGateWaitGivesUp(t *testing.T) {
	a := newBcryptUsers(t, 1)
	f := &fakeBcrypt{hold: make(chan struct{}), entered: make(chan struct{}, 1)}
	f.install(a)
	first := make(chan error, 1)
	go func() {
		_, err := a.Check(Credentials{User: "alice", Pass: "alicepw"})
		first <- err
	}()
	<-f.entered // the only slot is taken

	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan error, 1)
	go func() {
		_, err := a.CheckContext(ctx, Credentials{User: "bob", Pass: "bobpw"})
		waiting <- err
	}()
	cancel()
	select {
	case err := <-waiting:
		if !errors.Is(err, ErrCheckAborted) || !errors.Is(err, context.Canceled) || errors.Is(err, ErrAuthorization) {
			t.Fatalf("CheckContext = %v, want ErrCheckAborted wrapping context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting check did not give up when its context ended")
	}
	// A context that has already ended: no wait, no bcrypt, even with a free slot.
	close(f.hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := a.CheckContext(ctx, Credentials{User: "bob", Pass: "bobpw"}); !errors.Is(err, ErrCheckAborted) {
		t.Fatalf("CheckContext with an ended context = %v", err)
	}
	if c := f.calls.Load(); c != 1 {
		t.Fatalf("%d bcrypt comparisons, want 1 (only the first check)", c)
	}
	if len(a.verify.gate) != 0 {
		t.Fatal("a slot was not given back")
	}
	// Credentials already verified need no slot: an ended context does not matter.
	if _, err := a.CheckContext(ctx, Credentials{User: "alice", Pass: "alicepw"}); err != nil {
		t.Fatalf("cached credentials with an ended context: %v", err)
	}
}

// enter checks the context again after getting a slot: select picks at random when
// both the slot and Done are ready, and the check must not start then.
func TestGateEnterEndedContext(t *testing.T) {
	g := make(gate, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 200 {
		if err := g.enter(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("enter with an ended context = %v", err)
		}
		if len(g) != 0 {
			t.Fatal("enter kept a slot after failing")
		}
	}
}

// Right and wrong answers are remembered: a repeat costs no bcrypt until its TTL
// passes; other passwords and other users are checked.
func TestVerifierCaches(t *testing.T) {
	a := newBcryptUsers(t, 1)
	f := &fakeBcrypt{}
	f.install(a)
	now := time.Now()
	a.verify.now = func() time.Time { return now }
	check := func(user, pass string, wantOK bool, wantCalls int64) {
		t.Helper()
		id, err := a.Check(Credentials{User: user, Pass: pass})
		if wantOK && (err != nil || id == nil || id.Name != user) {
			t.Fatalf("Check(%s) = %v, %v; want success", user, id, err)
		}
		if !wantOK && (!errors.Is(err, ErrAuthorization) || id != nil) {
			t.Fatalf("Check(%s, wrong) = %v, %v; want ErrAuthorization", user, id, err)
		}
		if c := f.calls.Load(); c != wantCalls {
			t.Fatalf("after Check(%s): %d bcrypt comparisons, want %d", user, c, wantCalls)
		}
	}
	check("alice", "alicepw", true, 1)
	check("alice", "alicepw", true, 1) // verified cache
	check("alice", "wrong", false, 2)
	check("alice", "wrong", false, 2) // refused cache
	check("bob", "alicepw", false, 3) // the key includes the user
	check("alice", "alicepw2", false, 4)
	check("plain", "plainpw", true, 4) // plain passwords never reach bcrypt
	check("plain", "nope", false, 4)

	now = now.Add(RefusedTTL)
	check("alice", "wrong", false, 5) // refused entry expired
	check("alice", "alicepw", true, 5)
	now = now.Add(VerifiedTTL - RefusedTTL)
	check("alice", "alicepw", true, 6) // verified entry expired: not extended by use
	check("alice", "alicepw", true, 6)
}

// Many checks of the same wrong password at once cost one bcrypt: whoever waited for
// the slot finds the answer in the cache.
func TestVerifierConcurrentRepeats(t *testing.T) {
	a := newBcryptUsers(t, 1)
	f := &fakeBcrypt{hold: make(chan struct{}), entered: make(chan struct{}, 1)}
	f.install(a)
	var wg sync.WaitGroup
	check := func() {
		defer wg.Done()
		if _, err := a.Check(Credentials{User: "alice", Pass: "same-wrong"}); !errors.Is(err, ErrAuthorization) {
			t.Errorf("Check = %v", err)
		}
	}
	wg.Add(1)
	go check()
	<-f.entered
	for range 16 {
		wg.Add(1)
		go check()
	}
	close(f.hold)
	wg.Wait()
	if c := f.calls.Load(); c != 1 {
		t.Fatalf("%d bcrypt comparisons for one repeated password, want 1", c)
	}
}

// Single user and token secrets that are bcrypt hashes go through the same gate and
// caches.
func TestVerifierSingleAndToken(t *testing.T) {
	for _, o := range []Options{
		{Username: "u", Password: hashOf(t, "pw")},
		{Token: hashOf(t, "pw")},
	} {
		a, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeBcrypt{}
		f.install(a)
		c := Credentials{User: o.Username, Pass: "pw", Token: "pw"}
		for range 3 {
			if _, err := a.Check(c); err != nil {
				t.Fatal(err)
			}
			c.Pass, c.Token = "bad", "bad"
			if _, err := a.Check(c); !errors.Is(err, ErrAuthorization) {
				t.Fatal(err)
			}
			c.Pass, c.Token = "pw", "pw"
		}
		if n := f.calls.Load(); n != 2 {
			t.Fatalf("%+v: %d bcrypt comparisons, want 2", o, n)
		}
	}
}

// A new Authenticator (a reload) starts with empty caches and its own key.
func TestVerifierNotSharedAcrossAuthenticators(t *testing.T) {
	a1, a2 := newBcryptUsers(t, 1), newBcryptUsers(t, 1)
	f1, f2 := &fakeBcrypt{}, &fakeBcrypt{}
	f1.install(a1)
	f2.install(a2)
	for _, a := range []*Authenticator{a1, a2, a1, a2} {
		if _, err := a.Check(Credentials{User: "alice", Pass: "alicepw"}); err != nil {
			t.Fatal(err)
		}
	}
	if f1.calls.Load() != 1 || f2.calls.Load() != 1 {
		t.Fatalf("bcrypt calls %d and %d, want 1 each", f1.calls.Load(), f2.calls.Load())
	}
	if a1.verify.key == a2.verify.key || a1.verify.mac("x") == a2.verify.mac("x") {
		t.Fatal("two Authenticators share an HMAC key")
	}
}

func TestCredCacheTTLAndBound(t *testing.T) {
	const max = 64
	c := newCredCache(time.Minute, max)
	acc := &account{}
	key := func(i int) credKey {
		k := credKey{acc: acc}
		copy(k.mac[:], fmt.Sprint(i))
		return k
	}
	t0 := time.Now()
	c.add(key(0), t0)
	if !c.has(key(0), t0.Add(time.Minute-1)) || c.has(key(0), t0.Add(time.Minute)) {
		t.Fatal("entry not valid for exactly its TTL")
	}
	if c.len() != 0 {
		t.Fatal("an expired entry was kept after a lookup")
	}
	// Never above the bound; the newest entry always stays.
	for i := range 10 * max {
		c.add(key(i), t0)
		if c.len() > max {
			t.Fatalf("%d entries > bound %d", c.len(), max)
		}
		if !c.has(key(i), t0) {
			t.Fatalf("entry %d dropped as soon as added", i)
		}
	}
	// Full of expired entries: they go first, nothing live is evicted.
	c.add(key(-1), t0.Add(time.Minute))
	if c.len() != 1 || !c.has(key(-1), t0.Add(time.Minute)) {
		t.Fatalf("%d entries after adding to a cache of expired ones, want 1", c.len())
	}
	// Re-adding an existing key in a full cache evicts nothing.
	for i := range max - 1 {
		c.add(key(i), t0.Add(time.Minute))
	}
	c.add(key(0), t0.Add(time.Minute))
	if c.len() != max {
		t.Fatalf("%d entries, want %d", c.len(), max)
	}
}
