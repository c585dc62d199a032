package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Bounds of the credential caches (see verify).
const (
	// VerifiedTTL is how long a user name and password that passed a bcrypt
	// check log in again without one. It is not extended by use: at least one
	// bcrypt check per user and password every VerifiedTTL.
	VerifiedTTL = 2 * time.Minute
	// RefusedTTL is how long a user name and password that failed a bcrypt
	// check are refused again without one.
	RefusedTTL = time.Minute
	// MaxVerified and MaxRefused bound the entries of each cache (about 80
	// bytes each).
	MaxVerified = 1024
	MaxRefused  = 1024
)

// bcryptConcurrency is the default bound on bcrypt checks in progress: half the
// processors Go uses, at least one, so that password guessing can never take
// more than half the CPU from the connections already logged in.
func bcryptConcurrency() int { return max(runtime.GOMAXPROCS(0)/2, 1) }

// gate bounds the bcrypt checks in progress: a counting semaphore.
type gate chan struct{}

// enter waits for a slot until ctx ends. After getting one it checks ctx once
// more, so a check whose deadline passed while it waited never starts (select
// picks at random when both are ready).
func (g gate) enter(ctx context.Context) error {
	select {
	case g <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		g.leave()
		return err
	}
	return nil
}

func (g gate) leave() { <-g }

// credKey names a user (its account in this Authenticator) and a password by an
// HMAC-SHA256 under the Authenticator's random key: the caches never hold a
// password, and a memory dump of them is useless without the key.
type credKey struct {
	acc *account
	mac [sha256.Size]byte
}

// credCache is a bounded set of credKeys that expire ttl after they were added.
// Safe for concurrent use; no method calls out while holding the lock.
type credCache struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[credKey]time.Time // expiry
}

func newCredCache(ttl time.Duration, max int) *credCache {
	return &credCache{ttl: ttl, max: max, m: make(map[credKey]time.Time)}
}

// has reports whether k was added less than ttl before now; an expired k is
// forgotten.
func (c *credCache) has(k credKey, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[k]
	if ok && !now.Before(exp) {
		delete(c.m, k)
		return false
	}
	return ok
}

// add remembers k until now+ttl. When the cache is full the expired entries go
// first, then, if it is still full, a quarter of it chosen at random (map
// iteration order): amortised O(1), and nobody can pin an entry.
func (c *credCache) add(k credKey, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for key, exp := range c.m {
			if !now.Before(exp) {
				delete(c.m, key)
			}
		}
		if n := len(c.m) - c.max*3/4; n > 0 {
			for key := range c.m {
				delete(c.m, key)
				if n--; n == 0 {
					break
				}
			}
		}
	}
	c.m[k] = now.Add(c.ttl)
}

// len returns the number of entries, expired ones included.
func (c *credCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// verifier checks bcrypt secrets: at most cap(gate) at a time, and not at all
// for a user and password checked recently (either way).
type verifier struct {
	gate     gate
	key      [32]byte // HMAC key, random per Authenticator
	verified *credCache
	refused  *credCache

	// Test hooks (internal tests only): the clock and the bcrypt comparison.
	now     func() time.Time
	compare func(hash, password []byte) error
}

func newVerifier(concurrency int) *verifier {
	if concurrency <= 0 {
		concurrency = bcryptConcurrency()
	}
	v := &verifier{
		gate:     make(gate, concurrency),
		verified: newCredCache(VerifiedTTL, MaxVerified),
		refused:  newCredCache(RefusedTTL, MaxRefused),
		now:      time.Now,
		compare:  bcrypt.CompareHashAndPassword,
	}
	_, _ = rand.Read(v.key[:]) // never fails (crypto/rand panics rather than return an error)
	return v
}

// match reports whether the client's plain text p is acc's secret. A plain
// secret is compared at once. A bcrypt one is looked up in the caches first;
// otherwise the check waits for a slot of the gate — giving up with ctx's error
// when ctx ends first — looks again (the same credentials may have been checked
// while it waited: a flood repeating one password costs one bcrypt), and only
// then runs bcrypt and remembers the answer.
func (v *verifier) match(ctx context.Context, acc *account, p string) (bool, error) {
	if acc.pass.bcrypt == nil {
		return acc.pass.match(p), nil
	}
	k := credKey{acc: acc, mac: v.mac(p)}
	if ok, known := v.known(k); known {
		return ok, nil
	}
	if err := v.gate.enter(ctx); err != nil {
		return false, err
	}
	defer v.gate.leave()
	if ok, known := v.known(k); known {
		return ok, nil
	}
	ok := v.compare(acc.pass.bcrypt, []byte(p)) == nil
	if ok {
		v.verified.add(k, v.now())
	} else {
		v.refused.add(k, v.now())
	}
	return ok, nil
}

// known returns the cached answer for k, if any.
func (v *verifier) known(k credKey) (ok, known bool) {
	now := v.now()
	if v.verified.has(k, now) {
		return true, true
	}
	if v.refused.has(k, now) {
		return false, true
	}
	return false, false
}

func (v *verifier) mac(p string) [sha256.Size]byte {
	h := hmac.New(sha256.New, v.key[:])
	h.Write([]byte(p))
	var m [sha256.Size]byte
	h.Sum(m[:0])
	return m
}
