package core

import (
	"encoding/json"
	"strconv"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core/auth"
)

var (
	nsubsOnce sync.Once
	nsubsSrv  *Server
)

// numSubsAnswer must not panic on any body, and answers either nothing or a count no
// larger than the account's subscriptions.
func FuzzNumSubsAnswer(f *testing.F) {
	for _, seed := range []struct{ subj, queue, raw string }{
		{"foo", "", `{"acc":"A","subject":"foo"}`},
		{">.a", "q1", `{"acc":"A","subject":">.a","queue":"cTE="}`},
		{"a..b", "", `{"acc":"A","subject":"","queue":""}`},
		{"*.>", "q2", `{"acc":"A","subject":"foo bar","queue":null}`},
		{"", "", `{"acc":"A","subject":123}`},
		{"bar. x", "x", "junk"},
	} {
		f.Add(seed.subj, []byte(seed.queue), []byte(seed.raw))
	}
	f.Fuzz(func(t *testing.T, subj string, queue, raw []byte) {
		nsubsOnce.Do(func() { nsubsSrv = nsubsServer() })
		s := nsubsSrv
		body, err := json.Marshal(map[string]any{"acc": "A", "subject": subj, "queue": queue})
		if err != nil {
			t.Fatal(err)
		}
		max := int64(s.account("A").subs.Count())
		for _, b := range [][]byte{body, raw} {
			ans := s.numSubsAnswer(b)
			if ans == nil {
				continue
			}
			if n, err := strconv.ParseInt(string(ans), 10, 64); err != nil || n < 0 || n > max {
				t.Fatalf("%q: answer %q (of %d subs)", b, ans, max)
			}
		}
	})
}

// nsubsServer runs a server whose account A has a client with plain, wildcard and queue
// subscriptions; it lives for the fuzz process.
func nsubsServer() *Server {
	au, err := auth.New(auth.Options{Users: []*auth.User{{Username: "a", Password: "a", Account: "A"}}})
	if err != nil {
		panic(err)
	}
	s, err := New(Options{Host: "127.0.0.1", Port: -1, Auth: au, SystemAccount: "SYS",
		Accounts: []AccountConfig{{Name: "A"}, {Name: "SYS"}}})
	if err != nil {
		panic(err)
	}
	if err := s.Start(); err != nil {
		panic(err)
	}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("a", "a"))
	if err != nil {
		panic(err)
	}
	for _, subj := range []string{"foo", "foo", "bar.x", "foo.>", "x.*.z", ">"} {
		if _, err := nc.Subscribe(subj, func(*nats.Msg) {}); err != nil {
			panic(err)
		}
	}
	for _, q := range [][2]string{{"foo", "q1"}, {"bar.*", "q2"}, {"bar.x", "q2"}} {
		if _, err := nc.QueueSubscribe(q[0], q[1], func(*nats.Msg) {}); err != nil {
			panic(err)
		}
	}
	if err := nc.Flush(); err != nil {
		panic(err)
	}
	return s
}
