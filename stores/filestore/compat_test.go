package filestore

import (
	"testing"

	"github.com/starling-io/starling/stores"
)

// Records written before User existed end right before it: they decode with User "".
func TestRecordsWithoutUser(t *testing.T) {
	c := stores.ClientInfo{ID: "a", HbInbox: "hb", ConnID: []byte("x"), Protocol: 1, PingInterval: 2, PingMaxOut: 3, User: "alice"}
	full := encClient(nil, &c)
	old := full[:len(full)-len(putStr(nil, c.User))]
	s := &Store{clients: map[string]stores.ClientInfo{}}
	s.replay(old)
	if got := s.clients["a"]; got.User != "" || got.PingMaxOut != 3 || string(got.ConnID) != "x" {
		t.Fatalf("old client record = %+v", got)
	}
	s.replay(full)
	if got := s.clients["a"]; got.User != "alice" {
		t.Fatalf("client record = %+v", got)
	}

	st := stores.SubState{ID: 7, ClientID: "a", Inbox: "in", LastSent: 9, IsDurable: true, User: "bob"}
	fullSub := encSub(nil, subCreate, &st)
	oldSub := fullSub[:len(fullSub)-len(putStr(nil, st.User))]
	ss := &subStore{subs: map[uint64]*sub{}}
	ss.replay(oldSub)
	want := st
	want.User = ""
	if got := ss.subs[7].state; got != want {
		t.Fatalf("old sub record = %+v", got)
	}
	ss.replay(append([]byte{subUpdate}, fullSub[1:]...))
	if got := ss.subs[7].state; got != st {
		t.Fatalf("sub record = %+v", got)
	}
}
