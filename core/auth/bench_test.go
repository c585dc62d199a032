package auth_test

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/starling-io/starling/core/auth"
)

// rules20 is a realistic permission set: 10 allow and 10 deny patterns with
// wildcards.
func rules20() *auth.Permissions {
	allow := []string{"orders.>", "_INBOX.>", "events.*.created", "events.*.deleted", "svc.*.req",
		"metrics.host.*", "logs.>", "cmd.a.*", "cmd.b.*", "status"}
	deny := []string{"orders.secret", "orders.*.admin", "events.internal.*", "svc.admin.req", "logs.audit.>",
		"metrics.host.root", "cmd.a.reboot", "cmd.b.reboot", "_INBOX.sys.>", "orders.x.y.z"}
	return &auth.Permissions{
		Publish:   &auth.SubjectPermission{Allow: allow, Deny: deny},
		Subscribe: &auth.SubjectPermission{Allow: allow, Deny: deny},
	}
}

var benchSubjects = [][]byte{
	[]byte("orders.eu.new"), []byte("orders.secret"), []byte("events.user.created"),
	[]byte("svc.admin.req"), []byte("logs.app.web.1"), []byte("nope.nothing"),
	[]byte("_INBOX.abcdefgh.1"), []byte("metrics.host.root"),
}

func BenchmarkPubCacheHit(b *testing.B) {
	c := mustCompile(b, rules20())
	pc := auth.NewPubCache(c, 0)
	for _, s := range benchSubjects {
		pc.CanPublish(s)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pc.CanPublish(benchSubjects[i%len(benchSubjects)])
	}
}

// BenchmarkPubCacheSameSubject is a publisher repeating its subject, as `nats bench pub`
// does: the common case, answered by the last subject allowed.
func BenchmarkPubCacheSameSubject(b *testing.B) {
	c := mustCompile(b, rules20())
	pc := auth.NewPubCache(c, 0)
	subj := []byte("orders.eu.new")
	pc.CanPublish(subj)
	b.ReportAllocs()
	for b.Loop() {
		if !pc.CanPublish(subj) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkCheckerCanPublish20Rules(b *testing.B) {
	c := mustCompile(b, rules20())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.CanPublish(benchSubjects[i%len(benchSubjects)])
	}
}

func BenchmarkCheckerCanPublish20RulesParallel(b *testing.B) {
	c := mustCompile(b, rules20())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			c.CanPublish(benchSubjects[i%len(benchSubjects)])
		}
	})
}

// BenchmarkPubCacheMissUnique publishes to a new subject every time (the
// worst case: each miss copies the key and fills the checker's match cache).
func BenchmarkPubCacheMissUnique(b *testing.B) {
	c := mustCompile(b, rules20())
	pc := auth.NewPubCache(c, 0)
	subjects := make([][]byte, 1<<14)
	for i := range subjects {
		subjects[i] = fmt.Appendf(nil, "orders.%d.new", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pc.CanPublish(subjects[i%len(subjects)])
	}
}

func BenchmarkCheckerCanSubscribe20Rules(b *testing.B) {
	c := mustCompile(b, rules20())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.CanSubscribe(benchSubjects[i%len(benchSubjects)], nil)
	}
}

func BenchmarkDenySubscribeDelivery(b *testing.B) {
	c := mustCompile(b, rules20())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.DenySubscribeDelivery(benchSubjects[i%len(benchSubjects)], nil)
	}
}

func BenchmarkResponsesRecordUse(b *testing.B) {
	r := auth.NewResponses(&auth.ResponsePermission{})
	replies := make([][]byte, 1024)
	for i := range replies {
		replies[i] = fmt.Appendf(nil, "_INBOX.abcdefghijklmnop.%d", i)
	}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		reply := replies[i%len(replies)]
		r.Record(reply, now)
		r.Use(reply, now)
	}
}

func BenchmarkNkeyCheck(b *testing.B) {
	nk := newNkeyUser(b)
	a := mustNew(b, auth.Options{Users: []*auth.User{{Username: "bob", Password: "pw"}, {Nkey: nk.pub}}})
	nonce := auth.NewNonce(nil)
	c := auth.Credentials{Nkey: nk.pub, Sig: nk.sign(b, nonce, base64.RawURLEncoding), Nonce: nonce}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Check(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckPlainPassword(b *testing.B) {
	users := make([]*auth.User, 100)
	for i := range users {
		users[i] = &auth.User{Username: fmt.Sprintf("user%d", i), Password: fmt.Sprintf("password-%d", i)}
	}
	a := mustNew(b, auth.Options{Users: users})
	c := auth.Credentials{User: "user42", Pass: "password-42"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Check(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckBcryptPassword uses cost 11, what `nats server passwd` makes.
func BenchmarkCheckBcryptPassword(b *testing.B) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), 11)
	if err != nil {
		b.Fatal(err)
	}
	a := mustNew(b, auth.Options{Users: []*auth.User{{Username: "alice", Password: string(h)}}})
	c := auth.Credentials{User: "alice", Pass: "pw"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Check(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewNonce(b *testing.B) {
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		buf = auth.NewNonce(buf[:0])
	}
}
