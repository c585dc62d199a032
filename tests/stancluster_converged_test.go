package tests

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A node whose process died by itself (a panic while catching up, say) is not a node the
// test took down: the cluster has not converged, however equal the other two nodes are.
func TestConvergedNeedsNodesThatDidNotCrash(t *testing.T) {
	serverz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"role":"Follower","digest":"d1"}`)
	}))
	defer serverz.Close()
	mport := serverz.Listener.Addr().(*net.TCPAddr).Port
	up := func(name string) *node {
		return &node{t: t, name: name, mport: mport, p: startProc(t, "sleep", "60")}
	}
	c := &stanCluster{t: t, nodes: []*node{up("n1"), up("n2")}}
	if err := c.convergedErr(time.Second); err != nil {
		t.Fatalf("two equal nodes: %v", err)
	}

	// Taken down by the test (SIGKILL): the others are compared without it.
	killed := up("n3")
	killed.kill()
	c.nodes = append(c.nodes, killed)
	if err := c.convergedErr(time.Second); err != nil {
		t.Fatalf("a node the test killed: %v", err)
	}

	// Exited on its own with a failure.
	crashed := &node{t: t, name: "n3", mport: mport, p: startProc(t, "sh", "-c", "echo 'panic: replay'; exit 2")}
	err := <-crashed.p.done
	crashed.p.done <- err
	c.nodes[2] = crashed
	if err := c.convergedErr(time.Second); err == nil {
		t.Fatal("converged with a node that crashed by itself")
	}
}
