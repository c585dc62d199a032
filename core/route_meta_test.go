package core

import (
	"testing"
	"time"
)

// TestRouteMeta: what a server advertises reaches every peer of the mesh, changes reach
// them as INFO updates, and a withdrawn key disappears.
func TestRouteMeta(t *testing.T) {
	srvs := startMesh(t, 3, nil)
	srvs[0].SetRouteMeta("raft.g.n0", "127.0.0.1:7000")
	srvs[2].SetRouteMeta("raft.g.n2", "127.0.0.1:7002")
	has := func(s *Server, key, want string) func() bool {
		return func() bool { v, ok := s.RouteMeta(key); return ok == (want != "") && v == want }
	}
	waitFor(t, 5*time.Second, has(srvs[1], "raft.g.n0", "127.0.0.1:7000"))
	waitFor(t, 5*time.Second, has(srvs[2], "raft.g.n0", "127.0.0.1:7000"))
	waitFor(t, 5*time.Second, has(srvs[0], "raft.g.n2", "127.0.0.1:7002"))
	if _, ok := srvs[0].RouteMeta("raft.g.n0"); ok {
		t.Fatal("a server found its own metadata among its peers'")
	}
	srvs[0].SetRouteMeta("raft.g.n0", "127.0.0.1:7001")
	waitFor(t, 5*time.Second, has(srvs[1], "raft.g.n0", "127.0.0.1:7001"))
	srvs[0].SetRouteMeta("raft.g.n0", "")
	waitFor(t, 5*time.Second, has(srvs[2], "raft.g.n0", ""))
	if v, ok := srvs[1].RouteMeta("raft.g.n2"); !ok || v != "127.0.0.1:7002" {
		t.Fatalf("n2 on s1: %q %v", v, ok)
	}
}
