package streaming

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/starling-io/starling/proto/stanpb"
)

// TestStateDigestParts: the parts name what they hash — the clients, each channel's
// messages, each subscription — with the digest StateDigest gives; a change shows in the
// part it changed alone, so that nodes whose digests differ tell where
// (/streaming/serverz?digest=parts, which the e2e cluster tests print when they do not
// converge).
func TestStateDigestParts(t *testing.T) {
	_, s := startOnFile(t)
	do := func(kind opKind, m any) { s.push(requestOp(kind, "r", m)); s.takeSnapshot(false) }
	pub := func(subject string, i int) {
		do(opPublish, &stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", subject, i), Subject: subject,
			Data: []byte(fmt.Sprint("m", i)), ConnID: []byte("x")})
	}
	do(opConnect, &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")})
	do(opSubscribe, &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in.dur", MaxInFlight: 1000,
		AckWaitInSecs: 30, DurableName: "d", StartPosition: stanpb.StartPosition_First})
	for i := range 3 {
		pub("foo", i)
	}
	pub("bar", 0)
	parts := func() map[string]string {
		t.Helper()
		d, ps, err := s.StateDigestParts()
		if err != nil {
			t.Fatal(err)
		}
		if whole, err := s.StateDigest(); err != nil || whole != d {
			t.Fatalf("StateDigest %s (%v), StateDigestParts %s", whole, err, d)
		}
		return ps
	}
	before := parts()
	keys := slices.Sorted(maps.Keys(before))
	if want := []string{"channel bar", "channel foo", "channel foo sub 1", "clients"}; !slices.Equal(keys, want) {
		t.Fatalf("parts %q, want %q", keys, want)
	}
	for k, want := range map[string]string{"clients": "1 ", "channel foo": " first 1 last 3 msgs 3 ",
		"channel foo sub 1": `client "c1" durable "d" queue "" last_sent `} {
		if !strings.Contains(before[k], want) {
			t.Errorf("%s: %q, want it to hold %q", k, before[k], want)
		}
	}
	pub("bar", 1)
	after := parts()
	for _, k := range []string{"clients", "channel foo", "channel bar"} { // the durable may have been sent foo's meanwhile
		if changed := after[k] != before[k]; changed != (k == "channel bar") {
			t.Errorf("%s: %q before a publish to bar, %q after", k, before[k], after[k])
		}
	}
}
