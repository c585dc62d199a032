package streaming

import (
	"testing"
)

// deletedSince tells, from the channel IDs, an incarnation this node deleted: it holds the
// name under a higher ID (the answer is that incarnation's first sequence, or its last plus
// one when it holds none), or none and gave out the ID (the remembered last plus one). An
// ID it has not given out yet, or the incarnation it holds, is not gone.
func TestDeletedSince(t *testing.T) {
	m, _ := newReplica(t)
	gone := func(id uint64) uint64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.deletedSince("x", id, m.chans["x"])
	}
	applyCmds(t, m, &cmdCreateChannel{name: "x", id: 1})
	applyCmds(t, m, &cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(1, 5)})
	if g := gone(1); g != 0 {
		t.Fatalf("x#1 held: gone %d", g)
	}
	applyCmds(t, m, &cmdDeleteChannel{chanRef{"x", 1}})
	if g := gone(1); g != 6 {
		t.Fatalf("x#1 deleted at 5: gone %d, want 6", g)
	}
	if g := gone(2); g != 0 {
		t.Fatalf("x#2 not created yet: gone %d", g)
	}
	applyCmds(t, m, &cmdCreateChannel{name: "x", id: 2})
	if g := gone(1); g != 6 {
		t.Fatalf("x#2 created empty after 5: x#1 gone %d, want 6", g)
	}
	applyCmds(t, m, &cmdPublish{chanRef: chanRef{"x", 2}, msgs: msgRun(6, 3)})
	if g, h := gone(1), gone(2); g != 6 || h != 0 {
		t.Fatalf("x#2 holds 6..8: x#1 gone %d (want 6), x#2 gone %d (want 0)", g, h)
	}
	applyCmds(t, m, &cmdDeleteChannel{chanRef{"x", 2}})
	if g, h, k := gone(1), gone(2), gone(3); g != 9 || h != 9 || k != 0 {
		t.Fatalf("x#2 deleted at 8: gone %d, %d, %d; want 9, 9, 0", g, h, k)
	}
}
