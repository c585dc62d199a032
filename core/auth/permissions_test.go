package auth_test

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-io/starling/core/auth"
)

func mustCompile(t testing.TB, p *auth.Permissions) *auth.Checker {
	t.Helper()
	c, err := auth.Compile(p)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

func pubPerm(allow, deny []string) *auth.Permissions {
	return &auth.Permissions{Publish: &auth.SubjectPermission{Allow: allow, Deny: deny}}
}

func subPerm(allow, deny []string) *auth.Permissions {
	return &auth.Permissions{Subscribe: &auth.SubjectPermission{Allow: allow, Deny: deny}}
}

// sub is one SUB: subject and optional queue.
type sub struct{ subj, queue string }

func checkPub(t *testing.T, c *auth.Checker, allowed, denied []string) {
	t.Helper()
	for _, s := range allowed {
		if !c.CanPublish([]byte(s)) {
			t.Errorf("PUB %q denied, want allowed", s)
		}
	}
	for _, s := range denied {
		if c.CanPublish([]byte(s)) {
			t.Errorf("PUB %q allowed, want denied", s)
		}
	}
}

func checkSub(t *testing.T, c *auth.Checker, allowed, denied []sub) {
	t.Helper()
	for _, s := range allowed {
		if !c.CanSubscribe([]byte(s.subj), []byte(s.queue)) {
			t.Errorf("SUB %q %q denied, want allowed", s.subj, s.queue)
		}
	}
	for _, s := range denied {
		if c.CanSubscribe([]byte(s.subj), []byte(s.queue)) {
			t.Errorf("SUB %q %q allowed, want denied", s.subj, s.queue)
		}
	}
}

func TestCompileNilAllowsEverything(t *testing.T) {
	for _, p := range []*auth.Permissions{
		nil,
		{},
		{Publish: &auth.SubjectPermission{}, Subscribe: &auth.SubjectPermission{}},
		{Subscribe: &auth.SubjectPermission{Allow: []string{}}}, // empty subscribe allow = none
	} {
		c := mustCompile(t, p)
		if c != nil {
			t.Fatalf("Compile(%+v) = %p, want nil", p, c)
		}
	}
	var c *auth.Checker
	checkPub(t, c, []string{"a", "a.b", "_INBOX.x"}, nil)
	checkSub(t, c, []sub{{"a", ""}, {">", "q"}}, nil)
	if c.HasDenies() || c.DenySubscribeDelivery([]byte("a"), nil) || c.FilterDelivery(">") || c.AllowResponses() != nil {
		t.Fatal("nil checker restricts something")
	}
}

// TestA4Alice is the user alice of transcript A4 (spec appendix A).
func TestA4Alice(t *testing.T) {
	c := mustCompile(t, &auth.Permissions{
		Publish:   &auth.SubjectPermission{Allow: []string{"pub.>"}, Deny: []string{"pub.secret"}},
		Subscribe: &auth.SubjectPermission{Allow: []string{"sub.*", "q.foo grp"}, Deny: []string{"sub.bad"}},
	})
	checkPub(t, c, []string{"pub.a", "pub.a.b"}, []string{"pub.secret", "other", "pub", "sub.x"})
	checkSub(t, c,
		[]sub{{"q.foo", "grp"}, {"sub.x", ""}, {"sub.*", ""}, {"sub.>", ""}, {"sub.x", "anyq"}},
		[]sub{{"sub.bad", ""}, {"sub.bad", "grp"}, {"q.foo", ""}, {"q.foo", "other"}, {"sub.a.b", ""}, {"q.bar", "grp"}})
}

func TestPublishRules(t *testing.T) {
	cases := []struct {
		name            string
		p               *auth.Permissions
		allowed, denied []string
	}{
		{"allow only", pubPerm([]string{"orders.>", "_INBOX.>"}, nil),
			[]string{"orders.new", "orders.a.b", "_INBOX.abc"}, []string{"orders", "other", "_INBOX"}},
		{"deny wins", pubPerm([]string{"orders.>"}, []string{"orders.secret", "*.admin"}),
			[]string{"orders.new", "orders.secret.x"}, []string{"orders.secret", "orders.admin", "x"}},
		{"deny only", pubPerm(nil, []string{"secret.>", "admin"}),
			[]string{"a", "secret", "admin.x"}, []string{"secret.a", "admin"}},
		{"star token", pubPerm([]string{"a.*.c"}, nil),
			[]string{"a.b.c", "a.*.c"}, []string{"a.b.c.d", "a.c"}},
		{"wildcard publish subject is literal", pubPerm([]string{"foo.bar"}, nil),
			[]string{"foo.bar"}, []string{"foo.*", "foo.>"}},
		{"malformed subjects", pubPerm([]string{">"}, nil),
			[]string{"x"}, []string{"", "a..b", ".a", "a."}},
		{"non-nil empty allow allows nothing", pubPerm([]string{}, nil),
			nil, []string{"a", "b.c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkPub(t, mustCompile(t, tc.p), tc.allowed, tc.denied)
		})
	}
}

func TestSubscribeRules(t *testing.T) {
	cases := []struct {
		name            string
		p               *auth.Permissions
		allowed, denied []sub
	}{
		// §14.2 verified example.
		{"foo and foo v1", subPerm([]string{"foo", "foo v1"}, nil),
			[]sub{{"foo", ""}, {"foo", "v1"}}, []sub{{"foo", "v2"}, {"bar", ""}}},
		{"foo v1 alone", subPerm([]string{"foo v1"}, nil),
			[]sub{{"foo", "v1"}}, []sub{{"foo", ""}, {"foo", "v2"}}},
		{"plain entry allows any queue", subPerm([]string{"foo"}, nil),
			[]sub{{"foo", ""}, {"foo", "any"}}, []sub{{"foo.bar", ""}}},
		// The subscription subject goes through the allow index as if published.
		{"quirk foo.*", subPerm([]string{"foo.*"}, nil),
			[]sub{{"foo.*", ""}, {"foo.bar", ""}, {"foo.>", "q"}}, []sub{{"foo", ""}, {">", ""}, {"foo.a.b", ""}}},
		{"quirk foo.>", subPerm([]string{"foo.>"}, nil),
			[]sub{{"foo.*", ""}, {"foo.>", ""}, {"foo.a.b", ""}}, []sub{{"foo", ""}, {"*.bar", ""}}},
		{"quirk >", subPerm([]string{">"}, nil),
			[]sub{{"foo.*", ""}, {">", ""}, {"*", ""}}, nil},
		{"quirk foo.bar", subPerm([]string{"foo.bar"}, nil),
			[]sub{{"foo.bar", ""}}, []sub{{"foo.*", ""}, {"foo.>", ""}, {"*.bar", ""}}},
		{"quirk sub.> allowed by sub.*", subPerm([]string{"sub.*"}, nil),
			[]sub{{"sub.>", ""}}, []sub{{"sub.a.>", ""}}},
		{"wildcard queue entry", subPerm([]string{"foo v1.*", "bar v2.>"}, nil),
			[]sub{{"foo", "v1.a"}, {"foo", "v1.*"}, {"bar", "v2.a"}, {"bar", "v2.a.b"}, {"bar", "v2.>"}},
			[]sub{{"foo", "v1.>"}, {"foo", "v1"}, {"foo", "v1.a.b"}, {"foo", "v2.a"}, {"foo", ""}, {"bar", "v2"}}},
		{"literal queue entry is not a pattern", subPerm([]string{"foo v1"}, nil),
			nil, []sub{{"foo", "v1.a"}, {"foo", "*"}, {"foo", ">"}}},
		{"entry whitespace", subPerm([]string{"  foo \t v1 "}, nil),
			[]sub{{"foo", "v1"}}, []sub{{"foo", "v2"}}},
		{"empty allow = everything", subPerm([]string{}, []string{"x"}),
			[]sub{{"a", ""}, {">", "q"}}, []sub{{"x", ""}}},
		{"plain deny", subPerm(nil, []string{"foo.*"}),
			[]sub{{"foo", ""}, {"foo.a.b", ""}}, []sub{{"foo.a", ""}, {"foo.a", "q"}, {"foo.*", ""}, {"foo.>", ""}}},
		{"queue deny", subPerm(nil, []string{"foo q1"}),
			[]sub{{"foo", ""}, {"foo", "q2"}}, []sub{{"foo", "q1"}}},
		{"plain deny beats queue deny", subPerm(nil, []string{"foo", "foo q1"}),
			nil, []sub{{"foo", ""}, {"foo", "q1"}, {"foo", "q2"}}},
		{"deny after allow", subPerm([]string{"foo.>"}, []string{"foo.secret"}),
			[]sub{{"foo.public", ""}}, []sub{{"foo.secret", ""}, {"bar", ""}}},
		// Allowed by the quirk, filtered at delivery (§14.3).
		{"wildcard over a deny", subPerm([]string{">"}, []string{"secret.>"}),
			[]sub{{">", ""}, {"secret", ""}, {"*.x", ""}}, []sub{{"secret.x", ""}, {"secret.>", ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkSub(t, mustCompile(t, tc.p), tc.allowed, tc.denied)
		})
	}
}

func TestDeliveryDeny(t *testing.T) {
	c := mustCompile(t, subPerm([]string{">"}, []string{"secret.>", "grp.only grp"}))
	if !c.HasDenies() {
		t.Fatal("HasDenies false")
	}
	if !c.CanSubscribe([]byte(">"), nil) {
		t.Fatal("SUB > denied")
	}
	cases := []struct {
		subj, queue string
		deny        bool
	}{
		{"secret.a", "", true},
		{"secret.a.b", "q", true},
		{"secret", "", false},
		{"public.a", "", false},
		{"grp.only", "grp", true},
		{"grp.only", "other", false},
		{"grp.only", "", false},
	}
	for _, tc := range cases {
		if got := c.DenySubscribeDelivery([]byte(tc.subj), []byte(tc.queue)); got != tc.deny {
			t.Errorf("DenySubscribeDelivery(%q, %q) = %v, want %v", tc.subj, tc.queue, got, tc.deny)
		}
	}
	for subj, want := range map[string]bool{">": true, "secret.*": true, "public": false, "secret.x": false} {
		if got := c.FilterDelivery(subj); got != want {
			t.Errorf("FilterDelivery(%q) = %v, want %v", subj, got, want)
		}
	}
	noDeny := mustCompile(t, subPerm([]string{"a.>"}, nil))
	if noDeny.HasDenies() || noDeny.FilterDelivery("a.>") || noDeny.DenySubscribeDelivery([]byte("a.b"), nil) {
		t.Fatal("checker without denies filters deliveries")
	}
}

func TestAllowResponses(t *testing.T) {
	in := &auth.Permissions{AllowResponses: &auth.ResponsePermission{}}
	c := mustCompile(t, in)
	if c == nil {
		t.Fatal("nil checker with allow_responses")
	}
	checkPub(t, c, nil, []string{"a", "_INBOX.x", "reply"}) // an empty allow list installed
	checkSub(t, c, []sub{{"a", ""}}, nil)
	if got, want := *c.AllowResponses(), (auth.ResponsePermission{MaxMsgs: 1, Expires: 2 * time.Minute}); got != want {
		t.Fatalf("AllowResponses = %+v, want %+v", got, want)
	}
	if in.Publish != nil || *in.AllowResponses != (auth.ResponsePermission{}) {
		t.Fatal("Compile modified its input")
	}

	c = mustCompile(t, &auth.Permissions{
		Publish:        &auth.SubjectPermission{Deny: []string{"x"}},
		AllowResponses: &auth.ResponsePermission{MaxMsgs: -1, Expires: -1},
	})
	checkPub(t, c, nil, []string{"x", "y"}) // deny only: still an empty allow list
	if r := c.AllowResponses(); r.MaxMsgs != -1 || r.Expires != -1 {
		t.Fatalf("negative values not kept: %+v", r)
	}

	c = mustCompile(t, &auth.Permissions{
		Publish:        &auth.SubjectPermission{Allow: []string{"svc.>"}},
		AllowResponses: &auth.ResponsePermission{MaxMsgs: 5, Expires: time.Minute},
	})
	checkPub(t, c, []string{"svc.a"}, []string{"other"})
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		p    *auth.Permissions
		want []string
	}{
		{pubPerm([]string{"foo..bar"}, nil), []string{"publish allow", `"foo..bar"`}},
		{pubPerm(nil, []string{"foo.>.bar"}), []string{"publish deny", `"foo.>.bar"`}},
		{pubPerm([]string{"foo q"}, nil), []string{"publish allow", `"foo q"`}},
		{pubPerm([]string{""}, nil), []string{"publish allow", `""`}},
		{subPerm([]string{"a b c"}, nil), []string{"subscribe allow", `"a b c"`}},
		{subPerm(nil, []string{".x q"}), []string{"subscribe deny", `".x q"`}},
		{subPerm([]string{"  "}, nil), []string{"subscribe allow"}},
		{&auth.Permissions{Publish: &auth.SubjectPermission{Allow: []string{"a..b"}}, Subscribe: &auth.SubjectPermission{Deny: []string{"c..d"}}},
			[]string{`"a..b"`, `"c..d"`}},
	}
	for _, tc := range cases {
		c, err := auth.Compile(tc.p)
		if err == nil || c != nil || !errors.Is(err, auth.ErrInvalidPermission) {
			t.Errorf("Compile(%+v) = %v, %v; want ErrInvalidPermission", tc.p, c, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
	}
}

func TestCheckerConcurrent(t *testing.T) {
	c := mustCompile(t, &auth.Permissions{
		Publish:   &auth.SubjectPermission{Allow: []string{"a.>"}, Deny: []string{"a.secret"}},
		Subscribe: &auth.SubjectPermission{Allow: []string{">", "q.* grp"}, Deny: []string{"s.>", "x.* g"}},
	})
	subjects := []string{"a.b", "a.secret", "b", "s.x", "x.y", "q.a"}
	want := make([][4]bool, len(subjects))
	for i, s := range subjects {
		want[i] = [4]bool{c.CanPublish([]byte(s)), c.CanSubscribe([]byte(s), []byte("grp")),
			c.DenySubscribeDelivery([]byte(s), nil), c.DenySubscribeDelivery([]byte(s), []byte("g"))}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for n := range 2000 {
				i := n % len(subjects)
				s := []byte(subjects[i])
				got := [4]bool{c.CanPublish(s), c.CanSubscribe(s, []byte("grp")),
					c.DenySubscribeDelivery(s, nil), c.DenySubscribeDelivery(s, []byte("g"))}
				if !reflect.DeepEqual(got, want[i]) {
					t.Errorf("%q: got %v want %v", s, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}
