package auth_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-io/starling/core/auth"
)

func TestPubCacheAgreesWithChecker(t *testing.T) {
	c := mustCompile(t, pubPerm([]string{"a.>", "b.*"}, []string{"a.secret", "b.x"}))
	pc := auth.NewPubCache(c, 8)
	subjects := []string{"a.b", "a.secret", "b.y", "b.x", "c", "a", "b.y.z"}
	for round := range 3 {
		for i := range 40 { // more distinct subjects than the cache holds
			s := subjects[i%len(subjects)]
			if i >= len(subjects) {
				s = fmt.Sprintf("a.n%d", i)
			}
			if got, want := pc.CanPublish([]byte(s)), c.CanPublish([]byte(s)); got != want {
				t.Fatalf("round %d: PubCache.CanPublish(%q) = %v, Checker says %v", round, s, got, want)
			}
			if pc.Len() > 8 {
				t.Fatalf("cache holds %d > 8 entries", pc.Len())
			}
		}
	}
}

// TestPubCacheLastSubject: the last subject allowed is answered without the map; subjects
// next to it (same length, prefix, extension, denied, long) still get the checker's answer,
// in every order.
func TestPubCacheLastSubject(t *testing.T) {
	long := "a." + strings.Repeat("x", 200)
	c := mustCompile(t, pubPerm([]string{"a.>", "b.*"}, []string{"a.secret", "b.x", "a." + strings.Repeat("x", 199) + "y"}))
	subjects := []string{"a.b", "a.c", "a.secret", "a.secre", "a.secrets", "b.x", "b.y", "b", "a", "",
		long, long[:len(long)-1] + "y", long + ".z"}
	for _, first := range subjects {
		for _, second := range subjects {
			pc := auth.NewPubCache(c, 4)
			for _, s := range []string{first, second, first, first, second, second} {
				if got, want := pc.CanPublish([]byte(s)), c.CanPublish([]byte(s)); got != want {
					t.Fatalf("%q after %q, %q: PubCache says %v, Checker %v", s, first, second, got, want)
				}
			}
		}
	}
}

func TestPubCacheWithoutRules(t *testing.T) {
	for _, c := range []*auth.Checker{nil, mustCompile(t, subPerm([]string{"x"}, nil))} {
		pc := auth.NewPubCache(c, 0)
		if !pc.CanPublish([]byte("anything")) || pc.Len() != 0 {
			t.Fatalf("checker %p: publish refused or cached", c)
		}
	}
	var pc *auth.PubCache
	if !pc.CanPublish([]byte("x")) || pc.Len() != 0 {
		t.Fatal("nil PubCache refuses")
	}
}

func TestPubCacheHitAllocs(t *testing.T) {
	c := mustCompile(t, pubPerm([]string{"orders.>"}, []string{"orders.secret"}))
	pc := auth.NewPubCache(c, 0)
	yes, no := []byte("orders.new"), []byte("orders.secret")
	other, long := []byte("orders.other"), []byte("orders."+strings.Repeat("x", 300))
	for _, s := range [][]byte{yes, no, other, long} {
		pc.CanPublish(s)
	}
	// the last subject allowed twice, a denied one, alternating allowed ones, a long one twice
	seq := []struct {
		subj []byte
		want bool
	}{{yes, true}, {yes, true}, {no, false}, {other, true}, {yes, true}, {long, true}, {long, true}}
	if n := testing.AllocsPerRun(1000, func() {
		for _, p := range seq {
			if pc.CanPublish(p.subj) != p.want {
				t.Fatalf("CanPublish(%q) != %v", p.subj, p.want)
			}
		}
	}); n != 0 {
		t.Fatalf("PubCache hit: %v allocs/op, want 0", n)
	}
}

func TestDeliveryDenyAllocs(t *testing.T) {
	c := mustCompile(t, subPerm(nil, []string{"secret.>", "x.* q"}))
	msg := []byte("public.subject.a")
	if n := testing.AllocsPerRun(1000, func() {
		if c.DenySubscribeDelivery(msg, nil) || c.DenySubscribeDelivery(msg, []byte("q")) {
			t.Fatal("wrong answer")
		}
	}); n != 0 {
		t.Fatalf("DenySubscribeDelivery: %v allocs/op, want 0", n)
	}
}

func TestResponsesMaxMsgs(t *testing.T) {
	now := time.Now()
	for _, m := range []int{0, 1, 3} {
		r := auth.NewResponses(&auth.ResponsePermission{MaxMsgs: m})
		reply := []byte("_INBOX.abc")
		if r.Use(reply, now) {
			t.Fatal("unrecorded reply allowed")
		}
		r.Record(reply, now)
		n := 0
		for r.Use(reply, now) {
			if n++; n > 10 {
				break
			}
		}
		if want := max(1, m); n != want {
			t.Fatalf("MaxMsgs %d: %d uses, want %d", m, n, want)
		}
		if r.Len() != 0 {
			t.Fatalf("used-up reply kept: Len %d", r.Len())
		}
		r.Record(reply, now) // a new delivery renews it
		if !r.Use(reply, now) {
			t.Fatal("renewed reply refused")
		}
	}
}

func TestResponsesUnlimited(t *testing.T) {
	r := auth.NewResponses(&auth.ResponsePermission{MaxMsgs: -1, Expires: -1})
	now := time.Now()
	r.Record([]byte("r"), now)
	for i := range 1000 {
		if !r.Use([]byte("r"), now.Add(time.Duration(i)*time.Hour)) {
			t.Fatalf("use %d refused", i)
		}
	}
	if r.Use([]byte("other"), now) {
		t.Fatal("other subject allowed")
	}
}

func TestResponsesExpiry(t *testing.T) {
	r := auth.NewResponses(&auth.ResponsePermission{MaxMsgs: -1, Expires: time.Second})
	now := time.Now()
	r.Record([]byte("a"), now)
	r.Record([]byte("b"), now)
	if !r.Use([]byte("a"), now.Add(time.Second)) {
		t.Fatal("refused at exactly Expires")
	}
	if r.Use([]byte("a"), now.Add(time.Second+1)) {
		t.Fatal("allowed after Expires")
	}
	r.Record([]byte("b"), now.Add(10*time.Second)) // renewed
	if !r.Use([]byte("b"), now.Add(10500*time.Millisecond)) {
		t.Fatal("renewed reply refused")
	}

	d := auth.NewResponses(&auth.ResponsePermission{}) // defaults: 1 use, 2 minutes
	d.Record([]byte("x"), now)
	d.Record([]byte("y"), now)
	if d.Use([]byte("x"), now.Add(2*time.Minute+time.Millisecond)) || !d.Use([]byte("y"), now.Add(119*time.Second)) {
		t.Fatal("default expiry is not 2 minutes")
	}
}

func TestResponsesNil(t *testing.T) {
	r := auth.NewResponses(nil)
	if r != nil {
		t.Fatal("NewResponses(nil) != nil")
	}
	r.Record([]byte("x"), time.Now())
	if r.Use([]byte("x"), time.Now()) || r.Len() != 0 {
		t.Fatal("nil Responses allows")
	}
}

func TestResponsesPrunesExpired(t *testing.T) {
	r := auth.NewResponses(&auth.ResponsePermission{Expires: time.Second})
	now := time.Now()
	for i := range 10000 {
		// One new reply per millisecond: about 1000 are live at any time.
		r.Record(fmt.Appendf(nil, "_INBOX.%d", i), now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := r.Len(); n > 2500 {
		t.Fatalf("%d replies kept, expired ones not pruned", n)
	}
}

func TestResponsesNoAllocOnUse(t *testing.T) {
	r := auth.NewResponses(&auth.ResponsePermission{MaxMsgs: -1})
	now := time.Now()
	reply := []byte("_INBOX.reply")
	r.Record(reply, now)
	if n := testing.AllocsPerRun(1000, func() {
		r.Record(reply, now) // renewal
		if !r.Use(reply, now) {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Fatalf("Record (renewal) + Use: %v allocs/op, want 0", n)
	}
}

func TestResponsesConcurrent(t *testing.T) {
	r := auth.NewResponses(&auth.ResponsePermission{MaxMsgs: 1})
	var wg sync.WaitGroup
	now := time.Now()
	const n = 2000
	uses := make(chan int, 2)
	wg.Go(func() { // deliveries
		for i := range n {
			r.Record(fmt.Appendf(nil, "r.%d", i), now)
		}
	})
	for range 2 { // two publishers racing for the same replies
		wg.Go(func() {
			got := 0
			for range 3 {
				for i := range n {
					if r.Use(fmt.Appendf(nil, "r.%d", i), now) {
						got++
					}
				}
			}
			uses <- got
		})
	}
	wg.Wait()
	total := <-uses + <-uses
	for i := range n { // whatever the publishers missed is still there, once
		if r.Use(fmt.Appendf(nil, "r.%d", i), now) {
			total++
		}
	}
	if total != n {
		t.Fatalf("%d uses of %d single-use replies", total, n)
	}
}

// TestPublishPath shows how a connection combines its PubCache and Responses:
// the cache first, the responses only after a refusal.
func TestPublishPath(t *testing.T) {
	c := mustCompile(t, &auth.Permissions{
		Publish:        &auth.SubjectPermission{Allow: []string{"svc.>"}},
		AllowResponses: &auth.ResponsePermission{MaxMsgs: 2},
	})
	pc := auth.NewPubCache(c, 0)
	resp := auth.NewResponses(c.AllowResponses())
	now := time.Now()
	canPublish := func(s string) bool { return pc.CanPublish([]byte(s)) || resp.Use([]byte(s), now) }

	resp.Record([]byte("_INBOX.1"), now) // a request delivered to this connection
	resp.Record([]byte("svc.x"), now)    // allowed anyway
	for i, want := range []bool{true, true, false} {
		if got := canPublish("_INBOX.1"); got != want {
			t.Fatalf("reply publish %d: %v, want %v", i, got, want)
		}
	}
	for range 5 {
		if !canPublish("svc.x") || canPublish("other") {
			t.Fatal("explicit permissions broken")
		}
	}
	if !resp.Use([]byte("svc.x"), now) {
		t.Fatal("an allowed subject used up a response")
	}
}
